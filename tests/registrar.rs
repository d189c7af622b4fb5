//! End to end: REGISTER with digest authentication, save/lookup/registered/unregister,
//! registrar error replies, the location table in SQLite with every db_mode (and a restart
//! with preload), sipp's digest client, and the same routing in KEMI Lua. The scenario runs
//! on `ksr run` and on Kamailio 5.6 with the same cfg (tests/data/registrar.cfg) and a
//! SQLite database created from Kamailio's own schema files; the replies must match.

mod common;
use common::*;
use md5::{Digest, Md5};
use sha2::Sha256;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;

const DOMAIN: &str = "reg.test";

fn md5_hex(s: &str) -> String {
    let mut h = Md5::new();
    h.update(s.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(s: &str) -> String {
    let mut h = Sha256::new();
    h.update(s.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn cfg() -> PathBuf {
    root().join("tests/data/registrar.cfg")
}

/// A SQLite database with Kamailio's schema (its own SQL files) and subscriber alice added
/// with `ksr subscriber add`.
fn make_db(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ksr-reg-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let db = dir.join("kamailio.sqlite");
    let _ = std::fs::remove_file(&db);
    let mut sql = String::new();
    for f in ["standard", "auth_db", "usrloc"] {
        let p = format!("/usr/share/kamailio/db_sqlite/{f}-create.sql");
        sql.push_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")));
    }
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(&sql)
        .output()
        .expect("sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["subscriber", "add", "alice@reg.test", "secret", "--db-url"])
        .arg(db_url(&db))
        .output()
        .expect("ksr subscriber");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

fn db_url(db: &Path) -> String {
    format!("sqlite:///{}", db.display())
}

fn sql(db: &Path, q: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(q)
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn available() -> bool {
    let ok = kamailio_available()
        && Path::new("/usr/share/kamailio/db_sqlite/usrloc-create.sql").exists()
        && Command::new("sqlite3").arg("-version").output().is_ok();
    if !ok {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio, kamailio-sqlite-modules and sqlite3 are needed (run .ci/run, or set KSR_SKIP_ORACLE=1)"
        );
    }
    ok
}

struct Ua<'a> {
    s: &'a Server,
    sock: UdpSocket,
    port: u16,
}

impl<'a> Ua<'a> {
    fn new(s: &'a Server) -> Ua<'a> {
        let sock = client();
        let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
        Ua { s, sock, port }
    }

    #[allow(clippy::too_many_arguments)]
    fn msg(
        &self,
        method: &str,
        ruri: &str,
        callid: &str,
        cseq: u32,
        from: &str,
        to: &str,
        extra: &str,
    ) -> String {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK-{callid}-{cseq};rport\r\nFrom: <sip:{from}>;tag=f-{callid}\r\nTo: <sip:{to}>\r\nCall-ID: {callid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
            p = self.port
        )
    }

    fn send(&self, m: &str) -> String {
        exchange(self.s, &self.sock, m).unwrap_or_else(|| "<no reply>".into())
    }

    /// REGISTER for `user` (From = To) with contact and extra headers.
    fn register(&self, user: &str, callid: &str, cseq: u32, extra: &str) -> String {
        let aor = format!("{user}@{DOMAIN}");
        self.send(&self.msg("REGISTER", "sip:reg.test", callid, cseq, &aor, &aor, extra))
    }

    /// REGISTER answered by a challenge first, then with credentials for `auth_user`.
    fn register_auth(
        &self,
        user: &str,
        auth_user: &str,
        password: &str,
        callid: &str,
        extra: &str,
    ) -> (String, String) {
        let first = self.register(user, callid, 1, &format!("X-Auth: 1\r\n{extra}"));
        let www = header(&first, "WWW-Authenticate").unwrap_or("").to_string();
        let realm = param(&www, "realm");
        let nonce = param(&www, "nonce");
        let uri = "sip:reg.test";
        let sha = www.contains("algorithm=SHA-256");
        let h = |s: &str| if sha { sha256_hex(s) } else { md5_hex(s) };
        let alg = if sha { "SHA-256" } else { "MD5" };
        let ha1 = h(&format!("{auth_user}:{realm}:{password}"));
        let ha2 = h(&format!("REGISTER:{uri}"));
        let auth = if www.contains("qop=\"auth\"") {
            let resp = h(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
            format!(
                "Authorization: Digest username=\"{auth_user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={alg}, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
            )
        } else {
            let resp = h(&format!("{ha1}:{nonce}:{ha2}"));
            format!(
                "Authorization: Digest username=\"{auth_user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm={alg}\r\n"
            )
        };
        let second = self.register(user, callid, 2, &format!("X-Auth: 1\r\n{auth}{extra}"));
        (first, second)
    }

    fn query(&self, method: &str, user: &str, op: &str, callid: &str) -> String {
        let ruri = format!("sip:{user}@{DOMAIN}");
        self.send(&self.msg(
            method,
            &ruri,
            callid,
            1,
            &format!("q@{DOMAIN}"),
            &format!("{user}@{DOMAIN}"),
            &format!("X-Op: {op}\r\n"),
        ))
    }
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

/// The parts of a reply both servers must agree on; expires rounded to tens (a second may
/// pass between save and reply), ports replaced by names.
fn norm(reply: &str, ua: &Ua<'_>) -> String {
    let mut out = vec![status_line(reply).to_string()];
    for name in [
        "X-Auth-Rc",
        "X-Rc",
        "X-Ruri",
        "X-Du",
        "X-Br",
        "Contact",
        "P-Registrar-Error",
        "Min-Expires",
        "Unsupported",
        "Path",
    ] {
        for line in reply.split("\r\n") {
            if let Some((n, v)) = line.split_once(':')
                && n.trim().eq_ignore_ascii_case(name)
            {
                out.push(format!("{name}: {}", round_expires(v.trim())));
            }
        }
    }
    for name in ["WWW-Authenticate", "Proxy-Authenticate"] {
        if let Some(w) = header(reply, name) {
            let nonce = param(w, "nonce");
            out.push(format!("{name}: {}", w.replace(&nonce, "NONCE")));
        }
    }
    out.join(" | ")
        .replace(&format!(":{}", ua.port), ":CPORT")
        .replace(&format!(":{}", ua.s.port), ":SPORT")
}

fn round_expires(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("expires=") {
        out.push_str(&rest[..i + 8]);
        rest = &rest[i + 8..];
        let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest = &rest[n.len()..];
        let v: i64 = n.parse().unwrap_or(-1);
        out.push_str(&((v + 5) / 10 * 10).to_string());
    }
    out.push_str(rest);
    out
}

/// The whole conversation; returns one normalized line per reply.
fn scenario(s: &Server) -> Vec<String> {
    let ua = Ua::new(s);
    let mut t = Vec::new();
    let mut push = |label: &str, r: &str| t.push(format!("{label}: {}", norm(r, &ua)));
    let c1 = "Contact: <sip:alice@192.0.2.1:5070>\r\nExpires: 600\r\n";

    // Digest authentication: no credentials, wrong password, unknown user, identity
    // mismatch, garbage nonce, then success.
    let r = ua.register("alice", "reg-a1", 1, &format!("X-Auth: 1\r\n{c1}"));
    push("no credentials", &r);
    let (_, r) = ua.register_auth("alice", "alice", "wrong", "reg-a2", c1);
    push("wrong password", &r);
    let (_, r) = ua.register_auth("bob", "bob", "secret", "reg-a3", c1);
    push("unknown user", &r);
    let (_, r) = ua.register_auth("mallory", "alice", "secret", "reg-a4", c1);
    push("identity mismatch", &r);
    let r = ua.register(
        "alice",
        "reg-a5",
        1,
        &format!("X-Auth: 1\r\nAuthorization: Digest username=\"alice\", realm=\"reg.test\", nonce=\"garbage\", uri=\"sip:reg.test\", response=\"00000000000000000000000000000000\"\r\n{c1}"),
    );
    push("garbage nonce", &r);
    let r = ua.register(
        "alice",
        "reg-a6",
        1,
        "X-Auth: 1\r\nAuthorization: Digest username=\"alice\"\r\n",
    );
    push("incomplete credentials", &r);
    let (_, r) = ua.register_auth("alice", "alice", "secret", "reg-a7", c1);
    push("authenticated", &r);

    // Registrar semantics (no authentication from here).
    let r = ua.register(
        "alice",
        "reg-b1",
        1,
        "Contact: <sip:alice@192.0.2.2:5070>;q=0.5;expires=120\r\nAllow: INVITE, ACK, BYE, OPTIONS\r\n",
    );
    push("second contact", &r);
    push("lookup", &ua.query("OPTIONS", "alice", "lookup", "q-1"));
    push(
        "lookup filtered",
        &ua.query("MESSAGE", "alice", "lookup", "q-2"),
    );
    push(
        "registered",
        &ua.query("OPTIONS", "alice", "registered", "q-3"),
    );
    push(
        "not registered",
        &ua.query("OPTIONS", "bob", "registered", "q-4"),
    );
    push(
        "lookup unknown",
        &ua.query("OPTIONS", "bob", "lookup", "q-5"),
    );
    let r = ua.register(
        "alice",
        "reg-b1",
        1,
        "Contact: <sip:alice@192.0.2.2:5070>\r\n",
    );
    push("retransmission", &r);
    let r = ua.register(
        "alice",
        "reg-b1",
        0,
        "Contact: <sip:alice@192.0.2.2:5070>\r\n",
    );
    push("old cseq", &r);
    let r = ua.register(
        "alice",
        "reg-b2",
        1,
        "Contact: <sip:alice@192.0.2.3>;expires=10\r\n",
    );
    push("min expires", &r);
    let r = ua.register(
        "alice",
        "reg-b3",
        1,
        "Contact: <sip:alice@192.0.2.3>;expires=99999\r\n",
    );
    push("max expires", &r);
    let r = ua.register(
        "alice",
        "reg-b4",
        1,
        "Contact: <sip:alice@192.0.2.4>;q=2\r\n",
    );
    push("bad q", &r);
    let r = ua.register("alice", "reg-b5", 1, "Contact: <sip:alice@192.0.2.5>\r\n");
    push("too many", &r);
    let r = ua.register("alice", "reg-b6", 1, "Contact: *\r\n");
    push("star without expires 0", &r);
    let r = ua.register(
        "alice",
        "reg-b7",
        1,
        "Contact: *\r\nContact: <sip:alice@192.0.2.6>\r\nExpires: 0\r\n",
    );
    push("star with contacts", &r);
    let r = ua.register("alice", "reg-b8", 1, "");
    push("no contacts", &r);
    let r = ua.register(
        "alice",
        "reg-b3",
        2,
        "Contact: <sip:alice@192.0.2.3>;expires=0\r\n",
    );
    push("remove one", &r);
    let r = ua.register(
        "carol",
        "reg-c1",
        1,
        "X-Nat: 1\r\nX-Quiet: 1\r\nContact: <sip:carol@10.0.0.1:5060>\r\n",
    );
    push("quiet save", &r);
    push(
        "lookup received",
        &ua.query("OPTIONS", "carol", "lookup", "q-6"),
    );
    push(
        "unregister",
        &ua.query("OPTIONS", "carol", "unregister", "q-7"),
    );
    push(
        "lookup after unregister",
        &ua.query("OPTIONS", "carol", "lookup", "q-8"),
    );
    let r = ua.register("alice", "reg-b9", 1, "Contact: *\r\nExpires: 0\r\n");
    push("star", &r);
    push(
        "lookup after star",
        &ua.query("OPTIONS", "alice", "lookup", "q-9"),
    );
    let r = ua.register("dave", "reg-d1", 1, "Contact: <sip:dave@[broken\r\n");
    push("bad contact", &r);

    // Path (use_path, path_mode 2): refused without "Supported: path", echoed with it, and
    // the first hop becomes $du on lookup.
    let path = "Path: <sip:edge.test;lr>\r\nPath: <sip:core.test;lr>\r\n";
    let r = ua.register(
        "erin",
        "reg-e1",
        1,
        &format!("{path}Contact: <sip:erin@192.0.2.7>\r\n"),
    );
    push("path unsupported", &r);
    let r = ua.register(
        "erin",
        "reg-e2",
        1,
        &format!("{path}Supported: path\r\nContact: <sip:erin@192.0.2.7>\r\n"),
    );
    push("path", &r);
    push(
        "lookup path",
        &ua.query("OPTIONS", "erin", "lookup", "q-10"),
    );

    push(
        "is_subscriber",
        &ua.query("OPTIONS", "alice", "is_subscriber", "q-11"),
    );
    push(
        "not subscriber",
        &ua.query("OPTIONS", "zed", "is_subscriber", "q-12"),
    );
    // proxy_authorize + proxy_challenge (stale flag) for a MESSAGE.
    let r = ua.query("MESSAGE", "alice", "proxy_auth", "q-13");
    push("proxy challenge", &r);
    let pa = header(&r, "Proxy-Authenticate").unwrap_or("").to_string();
    let (realm, nonce) = (param(&pa, "realm"), param(&pa, "nonce"));
    let ha1 = md5_hex(&format!("q:{realm}:nopass"));
    let resp = md5_hex(&format!(
        "{ha1}:{nonce}:{}",
        md5_hex("MESSAGE:sip:alice@reg.test")
    ));
    let m = ua.msg(
        "MESSAGE",
        "sip:alice@reg.test",
        "q-14",
        2,
        &format!("q@{DOMAIN}"),
        &format!("alice@{DOMAIN}"),
        &format!("X-Op: proxy_auth\r\nProxy-Authorization: Digest username=\"q\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:alice@reg.test\", response=\"{resp}\"\r\n"),
    );
    push("proxy unknown user", &ua.send(&m));

    // Contact forms: duplicates in one REGISTER, display names and URI parameters,
    // +sip.instance/reg-id, AoR case, several contacts removed by Expires: 0.
    let r = ua.register(
        "frank",
        "reg-f1",
        1,
        "Contact: <sip:frank@192.0.2.40>;expires=300, <sip:frank@192.0.2.40>;expires=600\r\nContact: \"Frank F\" <sip:frank@192.0.2.41;transport=tcp>;q=1;expires=120\r\n",
    );
    push("duplicates and display names", &r);
    let r = ua.register(
        "frank",
        "reg-f2",
        1,
        "Contact: <sip:frank@192.0.2.42>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;expires=200\r\n",
    );
    push("instance", &r);
    let r = ua.register(
        "frank",
        "reg-f3",
        1,
        "Contact: <sip:frank@192.0.2.43>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;expires=200\r\n",
    );
    push("same instance new call-id", &r);
    let aor = format!("Frank@{DOMAIN}");
    let r = ua.send(&ua.msg("REGISTER", "sip:reg.test", "reg-f4", 1, &aor, &aor, ""));
    push("aor case", &r);
    let r = ua.register(
        "frank",
        "reg-f5",
        1,
        "Contact: <sip:frank@192.0.2.40>, <sip:frank@192.0.2.41;transport=tcp>\r\nExpires: 0\r\n",
    );
    push("expires 0 for two", &r);
    push(
        "lookup frank",
        &ua.query("OPTIONS", "frank", "lookup", "q-15"),
    );

    // Digest with qop=auth.
    let (first, r) = ua.register_auth(
        "alice",
        "alice",
        "secret",
        "reg-q1",
        "X-Qop: 1\r\nContact: <sip:alice@192.0.2.1:5070>\r\n",
    );
    push("qop challenge", &first);
    push("qop authenticated", &r);
    t
}

fn expect(t: &[String], label: &str, parts: &[&str]) {
    let line = t
        .iter()
        .find(|l| l.starts_with(&format!("{label}: ")))
        .unwrap_or_else(|| panic!("no step {label}"));
    for p in parts {
        assert!(line.contains(p), "{label}: expected '{p}' in\n{line}");
    }
}

fn check_transcript(t: &[String]) {
    expect(
        t,
        "no credentials",
        &["401 Unauthorized", "X-Auth-Rc: -5", "realm=\"reg.test\""],
    );
    expect(t, "wrong password", &["401", "X-Auth-Rc: -2"]);
    expect(t, "unknown user", &["401", "X-Auth-Rc: -3"]);
    expect(t, "identity mismatch", &["401", "X-Auth-Rc: -8"]);
    expect(t, "garbage nonce", &["401", "X-Auth-Rc: -1"]);
    expect(
        t,
        "authenticated",
        &["200 OK", "Contact: <sip:alice@192.0.2.1:5070>;expires=600"],
    );
    expect(
        t,
        "second contact",
        &[
            "Contact: <sip:alice@192.0.2.2:5070>;q=0.5;expires=120, <sip:alice@192.0.2.1:5070>;expires=600",
        ],
    );
    expect(
        t,
        "lookup",
        &[
            "X-Rc: 1",
            "X-Ruri: sip:alice@192.0.2.2:5070",
            "X-Br: sip:alice@192.0.2.1:5070",
        ],
    );
    expect(
        t,
        "lookup filtered",
        &["X-Rc: 1", "X-Ruri: sip:alice@192.0.2.1:5070"],
    );
    expect(t, "registered", &["X-Rc: 1"]);
    expect(t, "not registered", &["X-Rc: -1"]);
    expect(
        t,
        "lookup unknown",
        &["X-Rc: -1", "X-Ruri: sip:bob@reg.test"],
    );
    expect(
        t,
        "old cseq",
        &["400 Bad Request", "P-Registrar-Error: Invalid CSeq number"],
    );
    expect(t, "min expires", &["sip:alice@192.0.2.3>;expires=60"]);
    expect(t, "max expires", &["sip:alice@192.0.2.3>;expires=3600"]);
    expect(
        t,
        "bad q",
        &["400", "P-Registrar-Error: Invalid q param in contact"],
    );
    expect(
        t,
        "too many",
        &["503 Service Unavailable", "Too many registered contacts"],
    );
    expect(
        t,
        "star without expires 0",
        &["400", "* used in contact and expires is not zero"],
    );
    expect(t, "no contacts", &["200 OK", "Contact: "]);
    expect(
        t,
        "quiet save",
        &[
            "200 Saved quietly",
            "X-Rc: 1",
            "Contact: <sip:carol@10.0.0.1:5060>;expires=3600;received=\"sip:127.0.0.1:CPORT\"",
        ],
    );
    expect(
        t,
        "lookup received",
        &["X-Rc: 1", "X-Du: sip:127.0.0.1:CPORT"],
    );
    expect(t, "unregister", &["X-Rc: 1"]);
    expect(t, "lookup after unregister", &["X-Rc: -1"]);
    expect(t, "star", &["200 OK"]);
    expect(t, "lookup after star", &["X-Rc: -1"]);
    expect(
        t,
        "path unsupported",
        &["420 Bad Extension", "Unsupported: path"],
    );
    expect(
        t,
        "path",
        &["200 OK", "Path: <sip:edge.test;lr>,<sip:core.test;lr>"],
    );
    expect(t, "lookup path", &["X-Rc: 1", "X-Du: sip:edge.test;lr"]);
    expect(t, "qop challenge", &["qop=\"auth\""]);
    expect(t, "is_subscriber", &["X-Rc: 1"]);
    expect(t, "not subscriber", &["X-Rc: -2"]);
    expect(
        t,
        "proxy challenge",
        &[
            "407 Proxy Authentication Required",
            "X-Auth-Rc: -5",
            "stale=true",
        ],
    );
    expect(t, "proxy unknown user", &["407", "X-Auth-Rc: -3"]);
    expect(t, "qop authenticated", &["200 OK"]);
}

#[test]
fn register_auth_and_location_match_kamailio() {
    if !available() {
        return;
    }
    let kdb = make_db("k");
    let k = start_kamailio(&cfg(), &[&format!("DBURL=\"{}\"", db_url(&kdb))]);
    let want = scenario(&k);
    drop(k);
    for l in &want {
        eprintln!("kamailio {l}");
    }
    check_transcript(&want);

    let db = make_db("n");
    let s = start_ksr(&cfg(), &[&format!("DBURL=\"{}\"", db_url(&db))]);
    let got = scenario(&s);
    drop(s);
    for (w, g) in want.iter().zip(got.iter()) {
        assert_eq!(g, w, "\n  kamailio: {w}\n  ksr:      {g}");
    }
    assert_eq!(got.len(), want.len());

    // The same routing in KEMI Lua.
    let db = make_db("l");
    let lua = root().join("tests/data/registrar.lua");
    let s = start_ksr(
        &cfg(),
        &[
            &format!("DBURL=\"{}\"", db_url(&db)),
            "WITH_LUA",
            &format!("LUAFILE=\"{}\"", lua.display()),
        ],
    );
    let lua_t = scenario(&s);
    drop(s);
    for (w, g) in want.iter().zip(lua_t.iter()) {
        assert_eq!(g, w, "\n  kamailio: {w}\n  ksr lua:  {g}");
    }
}

#[test]
fn sha256_digest_matches_kamailio() {
    if !available() {
        return;
    }
    let run = |s: &Server| {
        let ua = Ua::new(s);
        let (first, r) = ua.register_auth(
            "alice",
            "alice",
            "secret",
            "sha-1",
            "Contact: <sip:alice@192.0.2.1>\r\n",
        );
        let (_, bad) = ua.register_auth(
            "alice",
            "alice",
            "nope",
            "sha-2",
            "Contact: <sip:alice@192.0.2.1>\r\n",
        );
        vec![norm(&first, &ua), norm(&r, &ua), norm(&bad, &ua)]
    };
    let kdb = make_db("sk");
    let k = start_kamailio(
        &cfg(),
        &[&format!("DBURL=\"{}\"", db_url(&kdb)), "WITH_SHA256"],
    );
    let want = run(&k);
    drop(k);
    let db = make_db("sn");
    let s = start_ksr(
        &cfg(),
        &[&format!("DBURL=\"{}\"", db_url(&db)), "WITH_SHA256"],
    );
    let got = run(&s);
    assert_eq!(got, want);
    assert!(got[0].contains("algorithm=SHA-256"), "{}", got[0]);
    assert!(got[1].starts_with("SIP/2.0 200 OK"), "{}", got[1]);
    assert!(got[2].contains("X-Auth-Rc: -2"), "{}", got[2]);
}

#[test]
fn nonce_count_and_one_time_nonce_match_kamailio() {
    if !available() {
        return;
    }
    let run = |s: &Server| {
        let ua = Ua::new(s);
        let c = "Contact: <sip:alice@192.0.2.1>\r\n";
        let mut out = Vec::new();
        // nonce_count with qop=auth
        let first = ua.register("alice", "nc-1", 1, &format!("X-Auth: 1\r\nX-Qop: 1\r\n{c}"));
        let nonce = param(header(&first, "WWW-Authenticate").unwrap_or(""), "nonce");
        let ha1 = md5_hex("alice:reg.test:secret");
        let ha2 = md5_hex("REGISTER:sip:reg.test");
        for (cseq, nc) in [(2, "00000001"), (3, "00000001"), (4, "00000002")] {
            let resp = md5_hex(&format!("{ha1}:{nonce}:{nc}:cn:auth:{ha2}"));
            let auth = format!(
                "Authorization: Digest username=\"alice\", realm=\"reg.test\", nonce=\"{nonce}\", uri=\"sip:reg.test\", response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"cn\"\r\n"
            );
            let r = ua.register("alice", "nc-1", cseq, &format!("X-Auth: 1\r\n{auth}{c}"));
            out.push(format!("nc {nc}: {}", norm(&r, &ua)));
        }
        // one_time_nonce without qop
        let first = ua.register("alice", "otn-1", 1, &format!("X-Auth: 1\r\n{c}"));
        let nonce = param(header(&first, "WWW-Authenticate").unwrap_or(""), "nonce");
        let resp = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        let auth = format!(
            "Authorization: Digest username=\"alice\", realm=\"reg.test\", nonce=\"{nonce}\", uri=\"sip:reg.test\", response=\"{resp}\"\r\n"
        );
        for cseq in [2, 3] {
            let r = ua.register("alice", "otn-1", cseq, &format!("X-Auth: 1\r\n{auth}{c}"));
            out.push(format!("otn {cseq}: {}", norm(&r, &ua)));
        }
        out
    };
    let kdb = make_db("nck");
    let k = start_kamailio(&cfg(), &[&format!("DBURL=\"{}\"", db_url(&kdb)), "WITH_NC"]);
    let want = run(&k);
    drop(k);
    let db = make_db("ncn");
    let s = start_ksr(&cfg(), &[&format!("DBURL=\"{}\"", db_url(&db)), "WITH_NC"]);
    let got = run(&s);
    assert_eq!(got, want);
    assert!(got[0].contains("200 OK"), "{}", got[0]);
    assert!(got[1].contains("X-Auth-Rc: -4"), "{}", got[1]);
    assert!(got[2].contains("200 OK"), "{}", got[2]);
    assert!(got[3].contains("200 OK"), "{}", got[3]);
    assert!(got[4].contains("X-Auth-Rc: -6"), "{}", got[4]);
}

#[test]
fn authentication_info_matches_kamailio() {
    if !available() {
        return;
    }
    let run = |s: &Server| {
        let ua = Ua::new(s);
        let c = "Contact: <sip:alice@192.0.2.1>\r\n";
        let (first, r) = ua.register_auth(
            "alice",
            "alice",
            "secret",
            "ai-1",
            &format!("X-Qop: 1\r\n{c}"),
        );
        let nonce = param(header(&first, "WWW-Authenticate").unwrap_or(""), "nonce");
        let info = header(&r, "Authentication-Info").unwrap_or("").to_string();
        // rspauth: the response with an empty method
        let ha1 = md5_hex("alice:reg.test:secret");
        let ha2 = md5_hex(":sip:reg.test");
        let want = md5_hex(&format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
        assert_eq!(param(&info, "rspauth"), want, "{info}");
        info.replace(&nonce, "NONCE").replace(&want, "RSPAUTH")
    };
    let kdb = make_db("aik");
    let k = start_kamailio(
        &cfg(),
        &[&format!("DBURL=\"{}\"", db_url(&kdb)), "WITH_AUTHINFO"],
    );
    let want = run(&k);
    drop(k);
    let db = make_db("ain");
    let s = start_ksr(
        &cfg(),
        &[&format!("DBURL=\"{}\"", db_url(&db)), "WITH_AUTHINFO"],
    );
    assert_eq!(run(&s), want);
    assert_eq!(
        want,
        "nextnonce=\"NONCE\", qop=auth, rspauth=\"RSPAUTH\", cnonce=\"c0ffee\", nc=00000001"
    );
}

/// Registers alice (with authentication) and bob, stops the server, checks the location
/// table, restarts it (preload) and looks them up.
fn persistence(
    start: &dyn Fn(&str) -> Server,
    db: &Path,
    mode: u32,
) -> (String, String, String, String) {
    let s = start(&mode.to_string());
    let ua = Ua::new(&s);
    let (_, r) = ua.register_auth(
        "alice",
        "alice",
        "secret",
        &format!("p-{mode}"),
        "Contact: <sip:alice@192.0.2.9:5060>;q=0.8\r\nExpires: 900\r\n",
    );
    assert_eq!(status_line(&r), "SIP/2.0 200 OK", "mode {mode}: {r}");
    let r = ua.register(
        "bob",
        &format!("pb-{mode}"),
        1,
        "Contact: <sip:bob@192.0.2.8>\r\n",
    );
    assert_eq!(status_line(&r), "SIP/2.0 200 OK", "mode {mode}: {r}");
    if mode == 3 {
        let r = ua.query("OPTIONS", "bob", "unregister", "pu");
        assert!(r.contains("X-Rc: 1"), "{r}");
    }
    let port = s.port;
    drop(ua);
    drop(s);
    let rows = sql(
        db,
        "select username || '@' || domain || ' ' || contact || ' ' || q from location order by username",
    );
    // Every column as Kamailio writes it (times only by their format).
    let cols = sql(
        db,
        "select username, domain, contact, received is null, path is null, q, callid, cseq, \
         flags, cflags, user_agent, socket, methods is null, instance is null, reg_id, server_id, \
         connection_id, keepalive, partition, length(ruid) > 0, \
         typeof(expires), typeof(last_modified), \
         abs(expires - julianday('now')) < 1, abs(last_modified - julianday('now')) < 1 \
         from location order by username",
    )
    .replace(&port.to_string(), "SPORT");
    let rows = format!("{rows}\n{cols}");
    let s = start(&mode.to_string());
    let ua = Ua::new(&s);
    let a = ua.query("OPTIONS", "alice", "lookup", "pl-1");
    let b = ua.query("OPTIONS", "bob", "registered", "pl-2");
    (rows, norm(&a, &ua), norm(&b, &ua), bindings(&s))
}

/// alice's bindings as a REGISTER without Contact lists them (remaining expires included).
fn bindings(s: &Server) -> String {
    let ua = Ua::new(s);
    norm(&ua.register("alice", "bind-1", 1, ""), &ua)
}

#[test]
fn location_persists_with_every_db_mode_like_kamailio() {
    if !available() {
        return;
    }
    for mode in [1u32, 2, 3] {
        let kdb = make_db(&format!("pk{mode}"));
        let kurl = db_url(&kdb);
        let kam = |m: &str| {
            start_kamailio(
                &cfg(),
                &[&format!("DBURL=\"{kurl}\""), &format!("DBMODE={m}")],
            )
        };
        let want = persistence(&kam, &kdb, mode);
        let db = make_db(&format!("pn{mode}"));
        let url = db_url(&db);
        let ksr = |m: &str| {
            start_ksr(
                &cfg(),
                &[&format!("DBURL=\"{url}\""), &format!("DBMODE={m}")],
            )
        };
        let got = persistence(&ksr, &db, mode);
        assert_eq!(got, want, "db_mode {mode}");
        assert!(
            got.0
                .contains("alice@reg.test sip:alice@192.0.2.9:5060 0.8"),
            "{}",
            got.0
        );
        assert!(got.1.contains("X-Rc: 1"), "{}", got.1);
        assert!(
            got.3
                .contains("<sip:alice@192.0.2.9:5060>;q=0.8;expires=900"),
            "{}",
            got.3
        );
        // Each server reads the table the other wrote.
        let on_k = start_ksr(
            &cfg(),
            &[&format!("DBURL=\"{kurl}\""), &format!("DBMODE={mode}")],
        );
        assert_eq!(bindings(&on_k), want.3, "ksr on Kamailio's table");
        drop(on_k);
        let k = start_kamailio(
            &cfg(),
            &[&format!("DBURL=\"{url}\""), &format!("DBMODE={mode}")],
        );
        assert_eq!(bindings(&k), got.3, "Kamailio on ksr's table");
        if mode == 3 {
            assert!(got.2.contains("X-Rc: -1"), "{}", got.2);
        } else {
            assert!(got.2.contains("X-Rc: 1"), "{}", got.2);
        }
    }
}

#[test]
fn garbage_never_stops_the_registrar() {
    let db = std::env::temp_dir().join(format!(
        "ksr-reg-g-{}-{}.sqlite",
        std::process::id(),
        free_port()
    ));
    let s = start_ksr(&cfg(), &[&format!("DBURL=\"{}\"", db_url(&db)), "DBMODE=1"]);
    let ua = Ua::new(&s);
    let junk = [
        "X-Auth: 1\r\nAuthorization: Digest\r\n",
        "X-Auth: 1\r\nAuthorization: Digest username=\"alice\", realm=\"reg.test\", nonce=\"0000000000000000000000000000000000000000000000000\", uri=\"x\", response=\"y\", qop=auth\r\n",
        "X-Auth: 1\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\n",
        "X-Auth: 1\r\nAuthorization: Digest username=\"alice\", realm=\"reg.test\", nonce=\"\u{ff}\u{fe}\", uri=\"sip:reg.test\", response=\"\", algorithm=SHA-999\r\n",
        "Contact: <sip:alice@h>;expires=-5;q=-1\r\n",
        "Contact: <sip:alice@h>;expires=4294967296\r\nExpires: abc\r\n",
        "Contact: <>\r\n",
        "Contact: sip:a@b, , ,\r\n",
        "Contact: <sip:alice@h>;+sip.instance=\"<urn:x>\";reg-id=zz\r\n",
        "Path: <sip:p@h;lr>\r\nContact: <sip:alice@h>\r\n",
    ];
    for (i, j) in junk.iter().enumerate() {
        let _ = ua.register("alice", &format!("g-{i}"), 1, j);
    }
    let r = ua.send(&ua.msg(
        "REGISTER",
        "sip:reg.test",
        "g-x",
        1,
        "@",
        "@",
        "Contact: <sip:x@y>\r\n",
    ));
    let _ = r;
    // A database failure answers 500 with usrloc's error and the server goes on.
    let _ = sql(&db, "drop table location");
    let r = ua.register("alice", "g-db", 1, "Contact: <sip:alice@192.0.2.77>\r\n");
    assert!(r.starts_with("SIP/2.0 500 Server Internal Error"), "{r}");
    assert!(
        r.contains("P-Registrar-Error: usrloc_contact_insert failed"),
        "{r}"
    );
    // still serving
    let (_, r) = ua.register_auth(
        "alice",
        "alice",
        "secret",
        "g-ok",
        "Contact: <sip:alice@h>\r\n",
    );
    assert!(
        r.starts_with("SIP/2.0 401") || r.starts_with("SIP/2.0 200"),
        "{r}"
    );
    assert!(
        ua.query("OPTIONS", "alice", "registered", "g-q")
            .contains("X-Rc: ")
    );
}

/// sipp's digest client: REGISTER, 401, REGISTER with credentials, 200.
#[test]
fn sipp_registers_with_digest() {
    if Command::new("sipp").arg("-v").output().is_err() {
        assert!(
            std::env::var("KSR_SKIP_SIPP").is_ok(),
            "sipp is not installed"
        );
        return;
    }
    let db = std::env::temp_dir().join(format!(
        "ksr-reg-s-{}-{}.sqlite",
        std::process::id(),
        free_port()
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["subscriber", "add", "alice@reg.test", "secret", "--db-url"])
        .arg(db_url(&db))
        .output()
        .expect("ksr subscriber");
    assert!(out.status.success());
    let s = start_ksr(&cfg(), &[&format!("DBURL=\"{}\"", db_url(&db)), "DBMODE=1"]);
    let dir = std::env::temp_dir().join(format!(
        "ksr-sipp-reg-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::create_dir_all(&dir);
    for (transport, proto) in [("u1", "udp"), ("t1", "tcp")] {
        let port = free_port();
        let out = Command::new("sipp")
            .current_dir(&dir)
            .arg(format!("127.0.0.1:{}", s.port))
            .arg("-sf")
            .arg(root().join("tests/sipp/register_auth.xml"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", transport])
            .args(["-m", "20", "-r", "50", "-timeout", "20s", "-nostdin"])
            .output()
            .expect("sipp");
        assert!(
            out.status.success(),
            "{transport}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // One binding (the same contact each time), received on the transport used.
        let rows = sql(
            &db,
            &format!(
                "select socket from location where username='alice' and contact like '%:{port}'"
            ),
        );
        assert_eq!(rows, format!("{proto}:127.0.0.1:{}", s.port));
    }
}
