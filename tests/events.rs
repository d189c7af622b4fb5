//! `event_route[htable:mod-init]` (once, before serving), `event_route[core:worker-one-init]`
//! (once, in the first worker) and native event routes beside a Lua script (hybrid configs:
//! `event_route[xhttp:request]` with `cfgengine "lua"`), on ksr and on Kamailio 5.6 with the
//! same cfg (tests/data/events.cfg).

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn http_body(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return "(no connection)".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.write_all(b"GET /ev HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"hu=/ev") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

/// `lua`: 0 native only, 1 a Lua script beside the native request_route, 2 the Lua script
/// does the main routing.
fn run(kamailio: bool, lua: u8) -> Vec<String> {
    let cfg = root().join("tests/data/events.cfg");
    let script = format!("LUA=\"{}\"", root().join("tests/data/events.lua").display());
    let mut defines = vec![];
    if lua > 0 {
        defines.push("WITH_LUA");
        defines.push(script.as_str());
    }
    if lua > 1 {
        defines.push("LUA_MAIN");
    }
    let s = if kamailio {
        start_kamailio(&cfg, &defines)
    } else {
        start_ksr(&cfg, &defines)
    };
    let c = client();
    let m = request(
        "MESSAGE",
        &format!("sip:x@127.0.0.1:{}", s.port),
        &c,
        "ev-1",
        "",
    );
    let sip = exchange(&s, &c, &m).unwrap_or_default();
    vec![status_line(&sip).to_string(), http_body(s.port)]
}

#[test]
fn startup_and_hybrid_event_routes_match_kamailio() {
    for lua in [0u8, 1, 2] {
        let got = run(false, lua);
        // The native request_route wins over the script's unless the cfg has none.
        let prefix = if lua == 2 {
            "SIP/2.0 200 lua x=5"
        } else {
            "SIP/2.0 200 x=5"
        };
        assert!(got[0].starts_with(prefix), "{got:#?}");
        assert_eq!(got[1], "x=5 n=1 w=1 hu=/ev", "{got:#?}");
        if kamailio_available() {
            assert_eq!(got, run(true, lua), "lua: {lua}");
        }
    }
}
