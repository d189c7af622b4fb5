//! path: `add_path()`, `add_path("user")`, `add_path("user", "params")`,
//! `add_path_received()` with and without user/params, before an existing Path header, and on
//! requests leaving over TCP (the address is the sending socket's) — on ksr and on Kamailio
//! 5.6 with the same cfg (tests/data/path.cfg): the forwarded requests' header layout and
//! Path headers must be the same.

mod common;
use common::*;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

/// Sends a REGISTER for `case` and returns the forwarded request's header names in order
/// (Path headers whole), ports replaced.
fn one(port: u16, case: &str, extra: &str, proto: &str) -> String {
    let c = client();
    let (data, cport) = if proto == "udp" {
        let cap = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let _ = cap.set_read_timeout(Some(Duration::from_secs(2)));
        let cport = cap.local_addr().expect("addr").port();
        send(&c, port, case, extra, proto, cport);
        let mut buf = [0u8; 4096];
        let n = cap.recv(&mut buf).unwrap_or(0);
        (buf[..n].to_vec(), cport)
    } else {
        let cap = TcpListener::bind("127.0.0.1:0").expect("bind");
        let cport = cap.local_addr().expect("addr").port();
        send(&c, port, case, extra, proto, cport);
        let _ = cap.set_nonblocking(false);
        let mut out = Vec::new();
        // Bounded: the accept below is the only blocking step and the server connects at once.
        if let Ok((mut s, _)) = cap.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
        (out, cport)
    };
    let text = String::from_utf8_lossy(&data).into_owned();
    let names: Vec<String> = text
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .map(|l| {
            if l.starts_with("Path:") {
                l.replace(&port.to_string(), "PORT").replace(
                    &c.local_addr().map(|a| a.port()).unwrap_or(0).to_string(),
                    "SRC",
                )
            } else {
                l.split(':').next().unwrap_or("").to_string()
            }
        })
        .collect();
    let _ = cport;
    format!("{case} {proto}: {}", names.join("|"))
}

fn send(c: &UdpSocket, port: u16, case: &str, extra: &str, proto: &str, cport: u16) {
    let me = c.local_addr().expect("addr").port();
    let m = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{case}{proto}\r\nFrom: <sip:u@x>;tag=1\r\nTo: <sip:u@x>\r\nCall-ID: p-{case}{proto}{me}\r\nCSeq: 1 REGISTER\r\n{extra}X-Case: {case}\r\nX-Port: {cport}\r\nX-Proto: {proto}\r\nContact: <sip:u@1.2.3.4>\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = c.send_to(m.as_bytes(), ("127.0.0.1", port));
}

fn run(kamailio: bool) -> Vec<String> {
    let cfg = root().join("tests/data/path.cfg");
    let s = if kamailio {
        start_kamailio(&cfg, &[])
    } else {
        start_ksr(&cfg, &[])
    };
    let old = "Path: <sip:old@10.0.0.1;lr>\r\n";
    [
        ("a", "", "udp"),
        ("b", "", "udp"),
        ("c", "", "udp"),
        ("d", "", "udp"),
        ("e", "", "udp"),
        ("a", old, "udp"),
        ("a", "", "tcp"),
        ("d", "", "tcp"),
    ]
    .iter()
    .map(|(case, extra, proto)| one(s.port, case, extra, proto))
    .collect()
}

#[test]
fn add_path_matches_kamailio() {
    let got = run(false);
    assert!(
        got.contains(&"c udp: REGISTER sip|Via|Via|From|To|Call-ID|CSeq|X-Case|X-Port|X-Proto|Contact|Content-Length|Path: <sip:uu@127.0.0.1:PORT;lr;ob;x=1>|X-Rc".to_string()),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|g| g
            .contains("Path: <sip:127.0.0.1:PORT;transport=tcp;lr;received=sip:127.0.0.1:SRC>")),
        "{got:#?}"
    );
    if kamailio_available() {
        assert_eq!(got, run(true));
    }
}
