//! usrloc/registrar through the offline server (real modules and VM, recording transport):
//! the `ul.*` RPC commands and their JSON shape, contact expiry by the timer,
//! `lookup_to_dset`, `unregister` by ruid.

use bytes::Bytes;
use compiler::frontend::parse_file;
use compiler::preprocess::Options;
use runtime::native::NativeFactory;
use runtime::offline::Harness;
use serde_json::{Value as Json, json};
use std::net::SocketAddr;
use std::sync::Arc;

const CFG: &str = r#"
listen=udp:127.0.0.1:5060
listen=udp:127.0.0.1:5070
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "use_domain", 1)
modparam("registrar", "min_expires", 0)
modparam("registrar", "sock_flag", 5)
modparam("registrar", "sock_hdr_name", "X-Sock")
request_route {
	if (is_method("REGISTER")) {
		if (is_present_hf("X-Sock")) {
			setflag(5);
		}
		if (is_present_hf("X-Later")) {
			save("location", "0x02");
			$var(rc) = $rc;
			append_to_reply("X-Save-Rc: $var(rc)\r\n");
			reg_send_reply();
			exit;
		}
		save("location");
		exit;
	}
	$var(rc) = 0;
	if ($hdr(X-Op) == "dset") {
		lookup_to_dset("location");
		$var(rc) = $rc;
	} else if ($hdr(X-Op) == "unreg") {
		unregister("location", "$ru", "$hdr(X-Ruid)");
		$var(rc) = $rc;
	} else if ($hdr(X-Op) == "fetch") {
		reg_fetch_contacts("location", "$ru", "p");
		$var(rc) = $rc;
		append_to_reply("X-Count: $ulc(p=>count)\r\nX-Addr0: $ulc(p=>addr)\r\nX-Addr1: $(ulc(p=>addr)[1])\r\nX-Aor: $ulc(p=>aor)\r\nX-Q: $ulc(p=>q)\r\nX-Ua: $ulc(p=>user_agent)\r\n");
		reg_free_contacts("p");
		append_to_reply("X-Freed: $ulc(p=>count)\r\n");
	} else if ($hdr(X-Op) == "branches") {
		append_branch("sip:bob@reg.test");
		append_branch("sip:nobody@reg.test");
		lookup_branches("location");
		$var(rc) = $rc;
	} else if ($hdr(X-Op) == "fromuser") {
		reg_from_user("location", "$ru", "$hdr(X-Mode)");
		$var(rc) = $rc;
	} else if ($hdr(X-Op) == "xavp") {
		lookup_xavp("location", "$ru", "rx", "cx");
		$var(rc) = $rc;
		append_to_reply("X-Xavp: $xavp(rx=>aor) $xavp(rx=>count) $xavp(cx=>uri) $xavp(cx[1]=>uri) $xavp(cx=>socket)\r\n");
	} else if ($hdr(X-Op) == "sockhdr") {
		add_sock_hdr("X-Sock");
		$var(rc) = $rc;
	} else if ($hdr(X-Op) == "unreg-ruid") {
		unregister("location", "", "$hdr(X-Ruid)");
		$var(rc) = $rc;
	}
	append_to_reply("X-Rc: $var(rc)\r\nX-Ruri: $ru\r\nX-Br0: $(branch(uri)[0])\r\nX-Br1: $(branch(uri)[1])\r\n");
	sl_send_reply("200", "Done");
}
"#;

fn harness() -> Harness {
    let dir = std::env::temp_dir().join(format!("ksr-ulo-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("ul.cfg");
    std::fs::write(&path, CFG).expect("write cfg");
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

fn src() -> SocketAddr {
    "127.0.0.1:5999".parse().unwrap()
}

fn send(h: &mut Harness, method: &str, ruri: &str, callid: &str, extra: &str) -> String {
    send_as(h, "alice", method, ruri, callid, extra)
}

fn send_as(
    h: &mut Harness,
    user: &str,
    method: &str,
    ruri: &str,
    callid: &str,
    extra: &str,
) -> String {
    let m = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{callid}\r\nFrom: <sip:{user}@reg.test>;tag=t-{callid}\r\nTo: <sip:{user}@reg.test>\r\nCall-ID: {callid}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    h.feed(Bytes::from(m), src());
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

fn rpc(h: &Harness, method: &str, params: &[Json]) -> Result<Json, runtime::rpc::RpcError> {
    h.core.rpc.call(h.core, method, params)
}

#[test]
fn rpc_dump_lookup_expiry_dset_ulc_branches_send_reply_and_unregister_by_ruid() {
    let mut h = harness();
    let r = send(
        &mut h,
        "REGISTER",
        "sip:reg.test",
        "r1",
        "Contact: <sip:alice@192.0.2.1>;expires=1, <sip:alice@192.0.2.2>;q=0.7;expires=300\r\nUser-Agent: test-ua\r\n",
    );
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");

    let dump = rpc(&h, "ul.dump", &[]).expect("ul.dump");
    let dom = &dump["Domains"][0]["Domain"];
    assert_eq!(dom["Domain"], "location");
    let info = &dom["AoRs"][0]["Info"];
    assert_eq!(info["AoR"], "alice@reg.test");
    let contacts = info["Contacts"].as_array().expect("contacts");
    assert_eq!(contacts.len(), 2);
    let c0 = &contacts[0]["Contact"];
    assert_eq!(c0["Address"], "sip:alice@192.0.2.2");
    assert_eq!(c0["Q"], json!(0.7));
    assert_eq!(c0["Call-ID"], "r1");
    assert_eq!(c0["CSeq"], 1);
    assert_eq!(c0["User-Agent"], "test-ua");
    assert_eq!(c0["Received"], "[not set]");
    assert_eq!(c0["Socket"], "udp:127.0.0.1:5060");
    assert_eq!(c0["Methods"], json!(0xFFFF_FFFFu32));
    assert!(
        c0["Expires"]
            .as_i64()
            .is_some_and(|e| (290..=300).contains(&e))
    );
    let ruid = c0["Ruid"].as_str().expect("ruid").to_string();
    assert!(ruid.starts_with("uloc-"), "{ruid}");
    for k in [
        "State",
        "Flags",
        "CFlags",
        "Instance",
        "Reg-Id",
        "Last-Modified",
        "Path",
    ] {
        assert!(!c0[k].is_null(), "missing {k}");
    }
    let brief = rpc(&h, "ul.dump", &[json!("brief")]).expect("brief");
    assert_eq!(
        brief["Domains"][0]["Domain"]["AoRs"][0],
        json!({"AoR": "alice@reg.test"})
    );

    let l = rpc(
        &h,
        "ul.lookup",
        &[json!("location"), json!("alice@reg.test")],
    )
    .expect("lookup");
    assert_eq!(l["AoR"], "alice@reg.test");
    assert_eq!(l["Contacts"].as_array().map(Vec::len), Some(2));
    let e = rpc(&h, "ul.lookup", &[json!("location"), json!("bob@reg.test")]).unwrap_err();
    assert_eq!(e.message, "AOR not found in location table");
    let e = rpc(&h, "ul.lookup", &[json!("nope"), json!("bob@reg.test")]).unwrap_err();
    assert_eq!(e.message, "Domain table not found");
    assert!(rpc(&h, "ul.lookup", &[json!("location")]).is_err());

    // lookup_to_dset: every contact as a branch, the R-URI untouched.
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:alice@reg.test",
        "d1",
        "X-Op: dset\r\n",
    );
    assert_eq!(hdr(&r, "X-Rc"), "1");
    assert_eq!(hdr(&r, "X-Ruri"), "sip:alice@reg.test");
    assert_eq!(hdr(&r, "X-Br0"), "sip:alice@192.0.2.2");
    assert_eq!(hdr(&r, "X-Br1"), "sip:alice@192.0.2.1");

    // lookup_xavp
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:alice@reg.test",
        "x1",
        "X-Op: xavp\r\n",
    );
    assert_eq!(hdr(&r, "X-Rc"), "1");
    assert_eq!(
        hdr(&r, "X-Xavp"),
        "alice@reg.test 2 sip:alice@192.0.2.2 sip:alice@192.0.2.1 udp:127.0.0.1:5060"
    );
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:nobody@reg.test",
        "x2",
        "X-Op: xavp\r\n",
    );
    assert_eq!(hdr(&r, "X-Rc"), "-1");

    // reg_fetch_contacts and $ulc
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:alice@reg.test",
        "f1",
        "X-Op: fetch\r\n",
    );
    assert_eq!(hdr(&r, "X-Rc"), "1");
    assert_eq!(hdr(&r, "X-Count"), "2");
    assert_eq!(hdr(&r, "X-Addr0"), "sip:alice@192.0.2.2");
    assert_eq!(hdr(&r, "X-Addr1"), "sip:alice@192.0.2.1");
    assert_eq!(hdr(&r, "X-Aor"), "alice@reg.test");
    assert_eq!(hdr(&r, "X-Q"), "700");
    assert_eq!(hdr(&r, "X-Ua"), "test-ua");
    assert_eq!(hdr(&r, "X-Freed"), "<null>");
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:nobody@reg.test",
        "f2",
        "X-Op: fetch\r\n",
    );
    assert_eq!(hdr(&r, "X-Rc"), "-1");

    // lookup_branches: the R-URI and the clean branches are looked up.
    send_as(
        &mut h,
        "bob",
        "REGISTER",
        "sip:reg.test",
        "rb",
        "Contact: <sip:bob@192.0.2.20>\r\n",
    )
    .starts_with("SIP/2.0 200")
    .then_some(())
    .expect("bob registered");
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:alice@reg.test",
        "b1",
        "X-Op: branches\r\n",
    );
    assert_eq!(hdr(&r, "X-Rc"), "1");
    assert_eq!(hdr(&r, "X-Ruri"), "sip:alice@192.0.2.2");
    assert_eq!(hdr(&r, "X-Br0"), "sip:bob@192.0.2.20");
    assert_eq!(hdr(&r, "X-Br1"), "sip:nobody@reg.test");

    // The 1 s contact expires; the timer removes it.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    h.core.m.usrloc.timer(true);
    let l = rpc(
        &h,
        "ul.lookup",
        &[json!("location"), json!("alice@reg.test")],
    )
    .expect("lookup");
    assert_eq!(l["Contacts"].as_array().map(Vec::len), Some(1));

    // unregister by ruid, with and without the AoR.
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:alice@reg.test",
        "u1",
        &format!("X-Op: unreg\r\nX-Ruid: {ruid}\r\n"),
    );
    assert_eq!(hdr(&r, "X-Rc"), "1");
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:alice@reg.test",
        "u2",
        &format!("X-Op: unreg-ruid\r\nX-Ruid: {ruid}\r\n"),
    );
    assert_eq!(hdr(&r, "X-Rc"), "-3");
    assert!(
        rpc(
            &h,
            "ul.lookup",
            &[json!("location"), json!("alice@reg.test")]
        )
        .is_err()
    );

    // save without reply, then reg_send_reply
    let r = send_as(
        &mut h,
        "carol",
        "REGISTER",
        "sip:reg.test",
        "later",
        "X-Later: 1\r\nContact: <sip:carol@192.0.2.30>;q=0.2\r\n",
    );
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(hdr(&r, "X-Save-Rc"), "1");
    assert_eq!(
        hdr(&r, "Contact"),
        "<sip:carol@192.0.2.30>;q=0.2;expires=3600"
    );
    let r = send_as(
        &mut h,
        "carol",
        "REGISTER",
        "sip:reg.test",
        "later2",
        "X-Later: 1\r\nContact: <sip:carol@192.0.2.30>;q=7\r\n",
    );
    assert!(r.starts_with("SIP/2.0 400 Bad Request"), "{r}");
    assert_eq!(hdr(&r, "X-Save-Rc"), "-1");
    assert_eq!(hdr(&r, "P-Registrar-Error"), "Invalid q param in contact");

    // reg_from_user: carol registered from 127.0.0.1:5999 (the contact says 192.0.2.30).
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:carol@reg.test",
        "fu1",
        "X-Op: fromuser\r\nX-Mode: 0\r\n",
    );
    assert_eq!(hdr(&r, "X-Rc"), "-1");
    send_as(
        &mut h,
        "dan",
        "REGISTER",
        "sip:reg.test",
        "dan1",
        "Contact: <sip:dan@127.0.0.1:5999;transport=udp>\r\n",
    );
    for (mode, want) in [("0", "1"), ("1", "1"), ("3", "1")] {
        let r = send(
            &mut h,
            "OPTIONS",
            "sip:dan@reg.test",
            "fu2",
            &format!("X-Op: fromuser\r\nX-Mode: {mode}\r\n"),
        );
        assert_eq!(hdr(&r, "X-Rc"), want, "mode {mode}");
    }
    send_as(
        &mut h,
        "dan",
        "REGISTER",
        "sip:reg.test",
        "dan2",
        "Contact: *\r\nExpires: 0\r\n",
    );
    send_as(
        &mut h,
        "dan",
        "REGISTER",
        "sip:reg.test",
        "dan3",
        "Contact: <sip:dan@127.0.0.1:5000>\r\n",
    );
    for (mode, want) in [("0", "1"), ("1", "-1"), ("2", "-1")] {
        let r = send(
            &mut h,
            "OPTIONS",
            "sip:dan@reg.test",
            "fu3",
            &format!("X-Op: fromuser\r\nX-Mode: {mode}\r\n"),
        );
        assert_eq!(hdr(&r, "X-Rc"), want, "mode {mode}");
    }
    let r = send(
        &mut h,
        "OPTIONS",
        "sip:dan@reg.test",
        "sh",
        "X-Op: sockhdr\r\n",
    );
    assert_eq!(hdr(&r, "X-Rc"), "1");

    // sock_flag + sock_hdr_name: the socket comes from the header.
    send_as(
        &mut h,
        "erin",
        "REGISTER",
        "sip:reg.test",
        "erin1",
        "X-Sock: udp:127.0.0.1:5070\r\nContact: <sip:erin@192.0.2.50>\r\n",
    );
    let l = rpc(
        &h,
        "ul.lookup",
        &[json!("location"), json!("erin@reg.test")],
    )
    .expect("erin");
    assert_eq!(l["Contacts"][0]["Contact"]["Socket"], "udp:127.0.0.1:5070");
    send_as(
        &mut h,
        "erin",
        "REGISTER",
        "sip:reg.test",
        "erin2",
        "X-Sock: udp:10.9.9.9:5070\r\nContact: <sip:erin@192.0.2.50>\r\n",
    );
    let l = rpc(
        &h,
        "ul.lookup",
        &[json!("location"), json!("erin@reg.test")],
    )
    .expect("erin");
    assert_eq!(l["Contacts"][0]["Contact"]["Socket"], "udp:127.0.0.1:5060");
    rpc(&h, "ul.rm", &[json!("location"), json!("erin@reg.test")]).expect("rm");

    // ul.rm
    send(
        &mut h,
        "REGISTER",
        "sip:reg.test",
        "r2",
        "Contact: <sip:alice@192.0.2.3>\r\n",
    );
    assert!(rpc(&h, "ul.rm", &[json!("location"), json!("alice@reg.test")]).is_ok());
    let dump = rpc(&h, "ul.dump", &[]).expect("ul.dump");
    let aors = dump["Domains"][0]["Domain"]["AoRs"]
        .as_array()
        .expect("aors");
    let names: Vec<&str> = aors
        .iter()
        .filter_map(|a| a["Info"]["AoR"].as_str())
        .collect();
    assert_eq!(names, ["bob@reg.test", "carol@reg.test", "dan@reg.test"]);
}

const LUA: &str = r#"
function ksr_request_route()
	if KSR.is_REGISTER() then
		if KSR.registrar.set_q_override("0.25") < 0 then
			KSR.sl.sl_send_reply(500, "override failed")
			return
		end
		if KSR.registrar.set_q_override("2") > 0 then
			KSR.sl.sl_send_reply(500, "bad q accepted")
			return
		end
		KSR.registrar.save("location", 0)
		return
	end
	local rc = KSR.registrar.reg_fetch_contacts("location", KSR.pv.get("$ru"), "p")
	KSR.hdr.append_to_reply("X-Rc: " .. rc .. "\r\nX-Aor: " .. tostring(KSR.registrar.ulc_rget("p", "aor"))
		.. "\r\nX-Q1: " .. tostring(KSR.registrar.ulc_cget("p", "q", 1))
		.. "\r\nX-Count: " .. tostring(KSR.registrar.ulc_rget("p", "count")) .. "\r\n")
	KSR.sl.sl_send_reply(200, "Done")
end
"#;

#[test]
fn kemi_q_override_and_contact_profiles() {
    let dir = std::env::temp_dir().join(format!("ksr-ulo-lua-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let script = dir.join("ul.lua");
    std::fs::write(&script, LUA).expect("write lua");
    let cfg = dir.join("ul.cfg");
    std::fs::write(
        &cfg,
        format!(
            "listen=udp:127.0.0.1:5060\nloadmodule \"sl.so\"\nloadmodule \"pv.so\"\nloadmodule \"textops.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\nloadmodule \"app_lua.so\"\nmodparam(\"usrloc\", \"use_domain\", 1)\nmodparam(\"app_lua\", \"load\", \"{}\")\ncfgengine \"lua\"\n",
            script.display()
        ),
    )
    .expect("write cfg");
    let r = parse_file(&cfg, &Options::default()).expect("read cfg");
    let config = r.config.expect("parsed");
    let setup = runtime::Setup::from_config(&config).unwrap_or_else(|_| panic!("setup"));
    let factory = engines::lua::LuaFactory { script };
    let mut h = Harness::new(setup, &factory).expect("harness");
    let r = send(
        &mut h,
        "REGISTER",
        "sip:reg.test",
        "k1",
        "Contact: <sip:alice@192.0.2.1>;q=0.9, <sip:alice@192.0.2.2>\r\n",
    );
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert_eq!(
        hdr(&r, "Contact"),
        "<sip:alice@192.0.2.1>;q=0.25;expires=3600, <sip:alice@192.0.2.2>;q=0.25;expires=3600"
    );
    let r = send(&mut h, "OPTIONS", "sip:alice@reg.test", "k2", "");
    assert_eq!(hdr(&r, "X-Rc"), "1");
    assert_eq!(hdr(&r, "X-Aor"), "alice@reg.test");
    assert_eq!(hdr(&r, "X-Q1"), "250");
    assert_eq!(hdr(&r, "X-Count"), "2");
    // an AoR without bindings leaves the profile empty
    let r = send(&mut h, "OPTIONS", "sip:bob@reg.test", "k3", "");
    assert_eq!(hdr(&r, "X-Rc"), "-1");
    assert_eq!(hdr(&r, "X-Aor"), "nil");
}

/// Thousands of randomly damaged REGISTERs (and digest headers) through save() and
/// lookup(): no panic, the worker keeps answering.
#[test]
fn mutated_registers_never_panic() {
    let mut h = harness();
    let base = "REGISTER sip:reg.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-m\r\nFrom: <sip:alice@reg.test>;tag=t\r\nTo: <sip:alice@reg.test>\r\nCall-ID: m1\r\nCSeq: 7 REGISTER\r\nMax-Forwards: 70\r\nContact: \"A\" <sip:alice@192.0.2.1:5060;transport=udp>;q=0.5;expires=60;+sip.instance=\"<urn:uuid:1>\";reg-id=1, <sip:alice@h2>\r\nPath: <sip:p1@edge;lr>\r\nSupported: path\r\nExpires: 120\r\nAllow: INVITE, ACK\r\nAuthorization: Digest username=\"alice\", realm=\"reg.test\", nonce=\"abc\", uri=\"sip:reg.test\", response=\"x\", qop=auth, nc=00000001, cnonce=\"c\"\r\nContent-Length: 0\r\n\r\n";
    let lookup = "OPTIONS sip:alice@reg.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-l\r\nFrom: <sip:q@reg.test>;tag=t\r\nTo: <sip:alice@reg.test>\r\nCall-ID: l1\r\nCSeq: 1 OPTIONS\r\nX-Op: dset\r\nContent-Length: 0\r\n\r\n";
    let src: SocketAddr = "127.0.0.1:5999".parse().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let specials = b";,<>\"=:@*\r\n \t0123456789qQ.-%";
    for _ in 0..3000 {
        let mut m = base.as_bytes().to_vec();
        for _ in 0..(1 + rnd() % 4) {
            let i = (rnd() as usize) % m.len();
            match rnd() % 3 {
                0 => m[i] = specials[(rnd() as usize) % specials.len()],
                1 => {
                    m.remove(i);
                }
                _ => m.insert(i, specials[(rnd() as usize) % specials.len()]),
            }
        }
        h.feed(Bytes::from(m), src);
        h.feed(Bytes::from(lookup), src);
        let _ = h.take_sent();
    }
    let r = send(
        &mut h,
        "REGISTER",
        "sip:reg.test",
        "ok",
        "Contact: <sip:alice@192.0.2.9>\r\n",
    );
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
}
