//! uac_auth(): the callee challenges (401 or 407, with and without qop, opaque, MD5-sess —
//! which Kamailio 5.6 refuses —, an unknown realm); failure_route answers with the
//! `credential` parameter and relays again.
//! The Authorization header and R-URI the callee sees must be Kamailio 5.6's byte for byte
//! (tests/data/uac_auth.cfg), and the caller's final status too.

mod common;
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

/// Challenges the first INVITE with `challenge`, answers the second 200; returns the second
/// INVITE's R-URI and Authorization/Proxy-Authorization line.
fn callee(sock: UdpSocket, code: u16, challenge: String) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 4096];
        let mut seen = 0;
        let mut out = String::new();
        for _ in 0..30 {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                if seen >= 2 {
                    break;
                }
                continue;
            };
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !req.starts_with("INVITE ") {
                continue;
            }
            seen += 1;
            let (status, extra) = if seen == 1 {
                let h = if code == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                (format!("{code} Auth"), format!("{h}: {challenge}\r\n"))
            } else {
                let first = req.lines().next().unwrap_or("").to_string();
                let auth: Vec<&str> = req
                    .lines()
                    .filter(|l| l.to_ascii_lowercase().contains("authorization:"))
                    .collect();
                out = format!("{first} | {}", auth.join(" | "));
                ("200 OK".to_string(), String::new())
            };
            let mut reply = format!("SIP/2.0 {status}\r\n");
            for l in req.split("\r\n") {
                let lower = l.to_ascii_lowercase();
                if ["via:", "from:", "call-id:", "cseq:"]
                    .iter()
                    .any(|p| lower.starts_with(p))
                {
                    reply.push_str(l);
                    reply.push_str("\r\n");
                } else if lower.starts_with("to:") {
                    reply.push_str(l);
                    reply.push_str(";tag=callee\r\n");
                }
            }
            reply.push_str(&extra);
            reply.push_str("Content-Length: 0\r\n\r\n");
            let _ = sock.send_to(reply.as_bytes(), from);
        }
        out
    })
}

/// A base port for the callees, chosen once per test process.
fn callee_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(|| {
        // Five consecutive free ports: try a few bases (bounded).
        for _ in 0..50 {
            let base = free_port();
            if base < 60000 && (0..5).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok()) {
                return base;
            }
        }
        free_port()
    })
}

fn run(kamailio: bool) -> Vec<String> {
    let cfg = root().join("tests/data/uac_auth.cfg");
    let s = if kamailio {
        start_kamailio(&cfg, &[])
    } else {
        start_ksr(&cfg, &[])
    };
    let cases = [
        (
            407,
            r#"Digest realm="example.com", nonce="n0nce-1", qop="auth", opaque="op9""#,
        ),
        (
            401,
            r#"Digest realm="example.com", nonce="abcdef", algorithm=MD5"#,
        ),
        (
            407,
            r#"Digest realm="other.net", nonce="x1", qop="auth-int,auth""#,
        ),
        (
            401,
            r#"Digest realm="example.com", nonce="s1", qop="auth", algorithm=MD5-sess"#,
        ),
        (401, r#"Digest realm="unknown.org", nonce="zz""#),
    ];
    let mut out = Vec::new();
    for (i, (code, ch)) in cases.iter().enumerate() {
        // The same callee port on both servers: the digest covers the R-URI.
        let port = callee_port() + i as u16;
        let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind the callee port");
        let t = callee(sock, *code, ch.to_string());
        let uac = client();
        let m = request(
            "INVITE",
            "sip:dest@example.com",
            &uac,
            &format!("uacauth-{i}"),
            &format!("X-P1: {port}\r\n"),
        );
        uac.send_to(m.as_bytes(), ("127.0.0.1", s.port))
            .expect("send");
        let mut last = String::from("(none)");
        for _ in 0..40 {
            if let Some(r) = recv(&uac, 100)
                && !r.starts_with("SIP/2.0 1")
            {
                last = status_line(&r).to_string();
                break;
            }
        }
        let seen = t.join().unwrap_or_default();
        out.push(format!("{code} {ch}: {last} || {seen}"));
    }
    out
}

#[test]
fn uac_auth_matches_kamailio() {
    let got = run(false);
    assert!(got[0].contains("SIP/2.0 200 OK"), "{got:#?}");
    assert!(
        got[0].contains("Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n0nce-1\", uri=\"sip:dest@example.com\""),
        "{got:#?}"
    );
    assert!(got[4].contains("SIP/2.0 401"), "{got:#?}");
    if kamailio_available() {
        assert_eq!(got, run(true));
    }
}
