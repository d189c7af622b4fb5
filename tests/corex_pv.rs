//! Differential test of the pv and corex cfg functions (tests/data/corex_pv.cfg) and of
//! their KEMI side (tests/data/corex_pv.lua): the same cfg on ksr and on Kamailio 5.6 must
//! give the same X-R reply headers, and the send functions (`send_udp`, `sendx`) must send
//! the same datagrams from the same sockets. Set KSR_SKIP_ORACLE=1 to skip where Kamailio
//! is not installed.

mod common;
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

const CASES: &[&str] = &[
    "pvt", "xav", "sbr", "cx", "snd", "xvu", "via1", "via2", "cpy", "tmf", "stcp",
];
const LUA_CASES: &[&str] = &["pvx", "sbr", "cx"];

/// How many datagrams a case sends to the X-Dst socket.
fn datagrams(lua: bool, case: &str) -> usize {
    match (lua, case) {
        (false, "snd") => 4,
        (false, "via1" | "via2") => 1,
        (true, "cx") => 1,
        _ => 0,
    }
}

struct Run {
    server: Server,
    port2: u16,
    lua: bool,
}

fn start(kamailio: bool, lua: bool) -> Run {
    let cfg = root().join(if lua {
        "tests/data/corex_pv-lua.cfg"
    } else {
        "tests/data/corex_pv.cfg"
    });
    let port2 = free_port();
    let define = format!("PORT2={port2}");
    let script = format!(
        "LUA_SCRIPT=\"{}\"",
        root().join("tests/data/corex_pv.lua").display()
    );
    let defines = [define.as_str(), script.as_str()];
    let server = if kamailio {
        start_kamailio(&cfg, &defines)
    } else {
        start_ksr(&cfg, &defines)
    };
    Run { server, port2, lua }
}

fn normalize(r: &Run, s: &str) -> String {
    s.replace(&r.port2.to_string(), "PORT2")
        .replace(&r.server.port.to_string(), "PORT")
}

/// The X-R header of the reply to case `case`, and what the server sent to the X-Dst socket
/// (source port and bytes, normalized).
fn ask(r: &Run, case: &str) -> (String, Vec<String>) {
    let c = client();
    let client_port = c.local_addr().map(|a| a.port()).unwrap_or(0);
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let tcp_sink = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp sink");
    let sink_port = if case == "stcp" {
        tcp_sink.local_addr().map(|a| a.port()).unwrap_or(0)
    } else {
        sink.local_addr().map(|a| a.port()).unwrap_or(0)
    };
    let ruri = format!("sip:{case}@127.0.0.1:{}", r.server.port);
    let extra = format!(
        "X-Dst: 127.0.0.1:{sink_port}\r\nX-Port: {}\r\n",
        r.server.port
    );
    let m = request("OPTIONS", &ruri, &c, &format!("call-{case}"), &extra);
    let xr = match exchange(&r.server, &c, &m) {
        Some(reply) => header(&reply, "X-R").unwrap_or("<none>").to_string(),
        None => "<no reply>".into(),
    };
    let mut sent = Vec::new();
    let want = datagrams(r.lua, case);
    if want > 0 {
        let _ = sink.set_read_timeout(Some(Duration::from_millis(2000)));
        let mut buf = vec![0u8; 65535];
        while sent.len() < want {
            let Ok((n, from)) = sink.recv_from(&mut buf) else {
                break;
            };
            let mut data = String::from_utf8_lossy(&buf[..n]).into_owned();
            if case.starts_with("via") {
                data = top_via(&data);
            }
            let data = data
                .replace(&sink_port.to_string(), "SINK")
                .replace(&client_port.to_string(), "CLIENT");
            sent.push(normalize(r, &format!("from {}: {data}", from.port())));
        }
    }
    if case == "stcp" {
        let data = tcp_received(&tcp_sink, b"tcp sendx")
            .replace(&sink_port.to_string(), "SINK")
            .replace(&client_port.to_string(), "CLIENT");
        sent.push(normalize(r, &data));
    }
    (normalize(r, &xr), sent)
}

/// What arrives on the first connection to `l` until the data ends with `end` (bounded
/// waits, no timing assertions).
fn tcp_received(l: &std::net::TcpListener, end: &[u8]) -> String {
    use std::io::Read;
    let _ = l.set_nonblocking(true);
    let mut conn = None;
    for _ in 0..200 {
        if let Ok((s, _)) = l.accept() {
            conn = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Some(mut s) = conn else {
        return "<no connection>".into();
    };
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(2000)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while !data.ends_with(end) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

fn compare(lua: bool, cases: &[&str]) {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (set KSR_SKIP_ORACLE=1 to skip)"
        );
        return;
    }
    let k = start(true, lua);
    let ours = start(false, lua);
    let mut diffs = Vec::new();
    for case in cases {
        let (want, got) = (ask(&k, case), ask(&ours, case));
        eprintln!("{case}: {}", got.0);
        for s in &got.1 {
            eprintln!("  sent {s:?}");
        }
        if want != got {
            diffs.push(format!(
                "{case}:\n  kamailio: {want:?}\n  ksr:      {got:?}"
            ));
        }
    }
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}

/// The top Via of a forwarded request, its branch value left out (ksr and Kamailio compute
/// stateless branches differently).
fn top_via(msg: &str) -> String {
    let via = msg
        .split("\r\n")
        .find(|l| l.starts_with("Via:"))
        .unwrap_or("<no Via>");
    via.split(';')
        .map(|p| {
            if p.starts_with("branch=") {
                "branch=X"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[test]
fn corex_and_pv_functions_match_kamailio() {
    compare(false, CASES);
}

#[test]
fn corex_and_pvx_kemi_functions_match_kamailio() {
    compare(true, LUA_CASES);
}

/// `fwr`: the request is forwarded statelessly to a socket of the test, which answers; the
/// reply (with `X-Fwr: 1`) runs onreply_route's `forward_reply()`, so it reaches the client
/// twice (once from the function, once from the core). The status lines that come back.
fn forward_reply_run(r: &Run) -> Vec<String> {
    let c = client();
    let uas = UdpSocket::bind("127.0.0.1:0").expect("bind uas");
    let uas_port = uas.local_addr().map(|a| a.port()).unwrap_or(0);
    let ruri = format!("sip:fwr@127.0.0.1:{}", r.server.port);
    let extra = format!("X-Dst: 127.0.0.1:{uas_port}\r\n");
    let m = request("OPTIONS", &ruri, &c, "call-fwr", &extra);
    if c.send_to(m.as_bytes(), ("127.0.0.1", r.server.port))
        .is_err()
    {
        return vec!["<send failed>".into()];
    }
    let _ = uas.set_read_timeout(Some(Duration::from_millis(2000)));
    let mut buf = vec![0u8; 65535];
    let Ok((n, from)) = uas.recv_from(&mut buf) else {
        return vec!["<request not forwarded>".into()];
    };
    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
    let keep = ["Via", "From", "To", "Call-ID", "CSeq"];
    let hdrs: Vec<&str> = req
        .split("\r\n")
        .filter(|l| keep.iter().any(|k| l.split(':').next() == Some(*k)))
        .collect();
    let reply = format!(
        "SIP/2.0 200 OK\r\n{}\r\nX-Fwr: 1\r\nContent-Length: 0\r\n\r\n",
        hdrs.join("\r\n")
    );
    let _ = uas.send_to(reply.as_bytes(), from);
    let mut out = Vec::new();
    while let Some(m) = recv(&c, 1000) {
        out.push(status_line(&m).to_string());
    }
    out
}

#[test]
fn forward_reply_matches_kamailio() {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (set KSR_SKIP_ORACLE=1 to skip)"
        );
        return;
    }
    let want = forward_reply_run(&start(true, false));
    let got = forward_reply_run(&start(false, false));
    eprintln!("fwr: {got:?}");
    assert_eq!(want, got);
}
