//! auth/auth_db through the offline server: nonce expiry (stale), auth_checks binding the
//! nonce to the Call-ID, qop=auth-int, MD5-sess, precomputed ha1/ha1b columns,
//! load_credentials AVPs, pv_www_authenticate, has_credentials.

use bytes::Bytes;
use compiler::frontend::parse_file;
use compiler::preprocess::Options;
use md5::{Digest, Md5};
use runtime::native::NativeFactory;
use runtime::offline::Harness;
use std::net::SocketAddr;
use std::sync::Arc;

fn md5_hex(s: &str) -> String {
    let mut h = Md5::new();
    h.update(s.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

const CFG: &str = r#"
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "db_sqlite.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "siputils.so"
modparam("auth", "nonce_expire", 1)
modparam("auth", "auth_checks_register", 2)
modparam("auth", "secret", "0123456789abcdef0123456789abcdef")
modparam("auth_db", "db_url", "DBURL")
CALC
modparam("auth_db", "use_domain", 1)
modparam("auth_db", "load_credentials", "$avp(pw)=password;domain")
EXTRA
request_route {
	if ($hdr(X-Op) == "getwww") {
		auth_algorithm("SHA-256");
		auth_get_www_authenticate("reg.test", "1", "$var(h)");
		$var(rc) = $rc;
		auth_algorithm("MD5");
		append_to_reply("X-Rc: $var(rc)\r\nX-W: $(var(h){s.trim})\r\n");
		sl_send_reply("200", "OK");
		exit;
	}
	if ($hdr(X-Op) == "algs") {
		www_challenge("reg.test", "1", "$hdr(X-Algs)");
		exit;
	}
	if ($hdr(X-Op) == "pv") {
		if (!pv_www_authenticate("reg.test", "secret", "0")) {
			$var(rc) = $rc;
			append_to_reply("X-Rc: $var(rc)\r\n");
			www_challenge("reg.test", "0");
			exit;
		}
		append_to_reply("X-Rc: 1\r\n");
		sl_send_reply("200", "OK");
		exit;
	}
	$var(hc) = 0;
	if (has_credentials("reg.test")) { $var(hc) = 1; }
	# nothing is authorized yet: is_user fails
	is_user("alice");
	$var(u0) = $rc;
	if (!www_authenticate("reg.test", "subscriber")) {
		$var(rc) = $rc;
		append_to_reply("X-Rc: $var(rc)\r\nX-Has: $var(hc)\r\n");
		$var(f) = 0;
		if (is_present_hf("X-Flags")) { $var(f) = $(hdr(X-Flags){s.int}); }
		www_challenge("reg.test", "$var(f)");
		exit;
	}
	is_user("alice");
	$var(u1) = $rc;
	is_user("bob");
	$var(u2) = $rc;
	append_to_reply("X-Rc: 1\r\nX-Pw: $avp(pw)\r\nX-Dom: $avp(domain)\r\nX-User: $var(u0) $var(u1) $var(u2)\r\n");
	sl_send_reply("200", "OK");
}
"#;

fn harness(tag: &str, calc: &str) -> Harness {
    harness_with(tag, calc, "")
}

fn harness_with(tag: &str, calc: &str, extra: &str) -> Harness {
    let dir = std::env::temp_dir().join(format!("ksr-auth-{tag}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let db = dir.join("auth.sqlite");
    let _ = std::fs::remove_file(&db);
    {
        let mut d = runtime::db::Sqlite::open(&db).expect("db");
        runtime::modules::auth_db::subscriber::add(&mut d, "alice", "reg.test", "secret")
            .expect("add");
    }
    let path = dir.join("auth.cfg");
    let cfg = CFG
        .replace("DBURL", &format!("sqlite:///{}", db.display()))
        .replace("EXTRA", extra)
        .replace(
            "CALC",
            if calc == "1" {
                "modparam(\"auth_db\", \"calculate_ha1\", yes)\nmodparam(\"auth_db\", \"password_column\", \"password\")"
            } else {
                "modparam(\"auth_db\", \"calculate_ha1\", 0)"
            },
        );
    std::fs::write(&path, cfg).expect("write cfg");
    let r = parse_file(&path, &Options::default()).expect("read cfg");
    let config = r.config.expect("parsed");
    let setup = runtime::Setup::from_config(&config).unwrap_or_else(|_| panic!("setup"));
    let program = compiler::lower::compile(&config, &setup.table, &setup.pvs)
        .unwrap_or_else(|_| panic!("compile"));
    let factory = NativeFactory {
        program: Arc::new(program),
    };
    Harness::new(setup, &factory).expect("harness")
}

fn send(h: &mut Harness, callid: &str, extra: &str, body: &str) -> String {
    let m = format!(
        "REGISTER sip:reg.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{callid}\r\nFrom: <sip:alice@reg.test>;tag=t\r\nTo: <sip:alice@reg.test>\r\nCall-ID: {callid}\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let src: SocketAddr = "127.0.0.1:5999".parse().unwrap();
    h.feed(Bytes::from(m), src);
    let sent = h.take_sent();
    let (_, data) = sent.last().expect("a reply");
    String::from_utf8_lossy(data).into_owned()
}

fn hdr<'a>(m: &'a str, name: &str) -> &'a str {
    m.split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or("")
}

fn param(h: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    h.find(&key)
        .and_then(|i| {
            let rest = &h[i + key.len()..];
            rest.find('"').map(|e| rest[..e].to_string())
        })
        .unwrap_or_default()
}

struct Auth<'a> {
    user: &'a str,
    password: &'a str,
    qop: Option<&'a str>,
    alg: &'a str,
    body: &'a str,
}

fn credentials(a: &Auth<'_>, nonce: &str) -> String {
    let uri = "sip:reg.test";
    let mut ha1 = md5_hex(&format!("{}:reg.test:{}", a.user, a.password));
    if a.alg == "MD5-sess" {
        ha1 = md5_hex(&format!("{ha1}:{nonce}:cn1"));
    }
    let ha2 = match a.qop {
        Some("auth-int") => md5_hex(&format!("REGISTER:{uri}:{}", md5_hex(a.body))),
        _ => md5_hex(&format!("REGISTER:{uri}")),
    };
    let (resp, extra) = match a.qop {
        Some(q) => (
            md5_hex(&format!("{ha1}:{nonce}:00000001:cn1:{q}:{ha2}")),
            format!(", qop={q}, nc=00000001, cnonce=\"cn1\""),
        ),
        None => (md5_hex(&format!("{ha1}:{nonce}:{ha2}")), String::new()),
    };
    format!(
        "Authorization: Digest username=\"{}\", realm=\"reg.test\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={}{extra}\r\n",
        a.user, a.alg
    )
}

fn challenge(h: &mut Harness, callid: &str, flags: &str) -> String {
    let r = send(h, callid, &format!("X-Flags: {flags}\r\n"), "");
    assert!(r.starts_with("SIP/2.0 401 Unauthorized"), "{r}");
    assert_eq!(hdr(&r, "X-Rc"), "-5");
    param(hdr(&r, "WWW-Authenticate"), "nonce")
}

const ALICE: Auth<'static> = Auth {
    user: "alice",
    password: "secret",
    qop: None,
    alg: "MD5",
    body: "",
};

#[test]
fn digest_variants_stale_nonces_and_credentials() {
    let mut h = harness("calc", "1");
    let nonce = challenge(&mut h, "c1", "0");

    let r = send(&mut h, "c1", &credentials(&ALICE, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    assert_eq!(hdr(&r, "X-Pw"), "secret");
    assert_eq!(hdr(&r, "X-Dom"), "reg.test");
    // siputils is_user: only the authorized username, only once authorized.
    assert_eq!(hdr(&r, "X-User"), "-1 1 -1", "{r}");

    // auth_checks_register 2: the nonce is bound to the Call-ID.
    let r = send(&mut h, "other-callid", &credentials(&ALICE, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "-4", "{r}");
    assert_eq!(hdr(&r, "X-Has"), "1");

    // A tampered nonce is not ours.
    let mut bad = nonce.clone().into_bytes();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
    let bad = String::from_utf8(bad).unwrap();
    let r = send(&mut h, "c1", &credentials(&ALICE, &bad), "");
    assert_eq!(hdr(&r, "X-Rc"), "-1", "{r}");

    // qop=auth-int over the body, and MD5-sess.
    let body = "hello body";
    let nonce = challenge(&mut h, "c2", "2");
    let a = Auth {
        qop: Some("auth-int"),
        body,
        ..ALICE
    };
    let r = send(&mut h, "c2", &credentials(&a, &nonce), body);
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    let r = send(&mut h, "c2", &credentials(&a, &nonce), "another body");
    assert_eq!(hdr(&r, "X-Rc"), "-2", "{r}");
    let a = Auth {
        alg: "MD5-sess",
        qop: Some("auth"),
        ..ALICE
    };
    let r = send(&mut h, "c2", &credentials(&a, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    let r = send(
        &mut h,
        "c2",
        &credentials(
            &Auth {
                alg: "SHA-512",
                ..ALICE
            },
            &nonce,
        ),
        "",
    );
    assert_eq!(hdr(&r, "X-Rc"), "-1", "{r}");

    // challenge flags: qop and stale.
    let r = send(&mut h, "c3", "X-Flags: 17\r\n", "");
    let w = hdr(&r, "WWW-Authenticate");
    assert!(
        w.contains("qop=\"auth\"") && w.ends_with("stale=true"),
        "{w}"
    );

    // pv_www_authenticate with the password from the script.
    let nonce = challenge(&mut h, "c4", "0");
    let r = send(
        &mut h,
        "c4",
        &format!("X-Op: pv\r\n{}", credentials(&ALICE, &nonce)),
        "",
    );
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    let bad = Auth {
        password: "x",
        ..ALICE
    };
    let r = send(
        &mut h,
        "c4",
        &format!("X-Op: pv\r\n{}", credentials(&bad, &nonce)),
        "",
    );
    assert_eq!(hdr(&r, "X-Rc"), "-2", "{r}");

    // one challenge per algorithm, sharing the nonce
    let r = send(&mut h, "c7", "X-Op: algs\r\nX-Algs: SHA-256, MD5\r\n", "");
    let ws: Vec<&str> = r
        .split("\r\n")
        .filter(|l| l.starts_with("WWW-Authenticate:"))
        .collect();
    assert_eq!(ws.len(), 2, "{r}");
    assert!(ws[0].ends_with("qop=\"auth\", algorithm=SHA-256"), "{r}");
    assert!(ws[1].ends_with("qop=\"auth\", algorithm=MD5"), "{r}");
    assert_eq!(param(ws[0], "nonce"), param(ws[1], "nonce"));
    let r = send(&mut h, "c8", "X-Op: algs\r\nX-Algs: MD5,SHA-1\r\n", "");
    assert!(r.starts_with("SIP/2.0 500"), "{r}");

    // auth_algorithm + auth_get_www_authenticate
    let r = send(&mut h, "c5", "X-Op: getwww\r\n", "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    let w = hdr(&r, "X-W");
    assert!(
        w.starts_with("WWW-Authenticate: Digest realm=\"reg.test\", nonce=\"")
            && w.ends_with("qop=\"auth\", algorithm=SHA-256"),
        "{w}"
    );
    // auth_algorithm() stays for this worker: challenges now name MD5.
    let r = send(&mut h, "c6", "X-Flags: 0\r\n", "");
    assert!(
        hdr(&r, "WWW-Authenticate").ends_with(", algorithm=MD5"),
        "{r}"
    );

    // nonce_expire 1: an old nonce is stale.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = send(&mut h, "c4", &credentials(&ALICE, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "-4", "{r}");
}

#[test]
fn precomputed_ha1_and_ha1b() {
    let mut h = harness("ha1", "0");
    let nonce = challenge(&mut h, "p1", "0");
    let r = send(&mut h, "p1", &credentials(&ALICE, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    // username with a domain: the ha1b column, HA1 over "alice@reg.test".
    let a = Auth {
        user: "alice@reg.test",
        ..ALICE
    };
    let r = send(&mut h, "p1", &credentials(&a, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    let a = Auth {
        user: "bob",
        ..ALICE
    };
    let r = send(&mut h, "p1", &credentials(&a, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "-3", "{r}");
}

#[test]
fn nonce_count_and_one_time_nonce() {
    let mut h = harness_with(
        "nc",
        "1",
        "modparam(\"auth\", \"nonce_count\", 1)\nmodparam(\"auth\", \"one_time_nonce\", 1)\nmodparam(\"auth\", \"nc_array_order\", 4)\nmodparam(\"auth\", \"otn_in_flight_order\", 5)",
    );
    // nonce_count: every use needs a higher nc (the response covers nc, so recompute).
    let nonce = challenge(&mut h, "n1", "1");
    let cred = |nc: &str| {
        let ha1 = md5_hex("alice:reg.test:secret");
        let ha2 = md5_hex("REGISTER:sip:reg.test");
        let resp = md5_hex(&format!("{ha1}:{nonce}:{nc}:cn1:auth:{ha2}"));
        format!(
            "Authorization: Digest username=\"alice\", realm=\"reg.test\", nonce=\"{nonce}\", uri=\"sip:reg.test\", response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"cn1\"\r\n"
        )
    };
    let r = send(&mut h, "n1", &cred("00000001"), "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    let r = send(&mut h, "n1", &cred("00000001"), "");
    assert_eq!(hdr(&r, "X-Rc"), "-4", "replayed nc: {r}");
    let r = send(&mut h, "n1", &cred("00000003"), "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    let r = send(&mut h, "n1", &cred("00000100"), "");
    assert_eq!(hdr(&r, "X-Rc"), "-4", "nc above 255: {r}");

    // one_time_nonce: without qop/nc a nonce works once.
    let nonce = challenge(&mut h, "o1", "0");
    let r = send(&mut h, "o1", &credentials(&ALICE, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
    let r = send(&mut h, "o1", &credentials(&ALICE, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "-6", "{r}");

    // Only 32 one-time nonces are tracked: an old one is stale once 32 newer ones exist.
    let old = challenge(&mut h, "o2", "0");
    for i in 0..32 {
        challenge(&mut h, &format!("o3-{i}"), "0");
    }
    let r = send(&mut h, "o2", &credentials(&ALICE, &old), "");
    assert_eq!(hdr(&r, "X-Rc"), "-4", "{r}");
}

/// Randomly damaged credentials through www_authenticate/pv_www_authenticate: no panic.
#[test]
fn mutated_credentials_never_panic() {
    let mut h = harness_with(
        "mut",
        "1",
        "modparam(\"auth\", \"nonce_count\", 1)\nmodparam(\"auth\", \"add_authinfo_hdr\", 1)",
    );
    let nonce = challenge(&mut h, "m0", "1");
    let a = Auth {
        qop: Some("auth"),
        ..ALICE
    };
    let good = credentials(&a, &nonce);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let specials = b",=\" \\@:0f-";
    for i in 0..3000 {
        let mut m = good.as_bytes().to_vec();
        let end = m.len() - 2;
        for _ in 0..(1 + rnd() % 3) {
            let p = 15 + (rnd() as usize) % (end - 15);
            match rnd() % 3 {
                0 => m[p] = specials[(rnd() as usize) % specials.len()],
                1 => {
                    m.remove(p);
                }
                _ => m.insert(p, specials[(rnd() as usize) % specials.len()]),
            }
        }
        let extra = String::from_utf8_lossy(&m).into_owned();
        let op = if i % 2 == 0 { "X-Op: pv\r\n" } else { "" };
        let _ = send(&mut h, "m1", &format!("{op}{extra}"), "");
    }
    let nonce = challenge(&mut h, "m2", "0");
    let r = send(&mut h, "m2", &credentials(&ALICE, &nonce), "");
    assert_eq!(hdr(&r, "X-Rc"), "1", "{r}");
}
