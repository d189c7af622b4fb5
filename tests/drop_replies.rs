//! Which stored replies compete for the final answer after failure_route forks again or
//! not: `failure_reply_mode` 0..3 and `t_drop_replies()` (tests/data/drop_replies.cfg), on
//! ksr and on Kamailio 5.6. The first callee answers 302, the second 486.

mod common;
use common::*;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Answers every INVITE on `sock` with `code` (ACKs are ignored) until `stop` is set, for
/// at most 4 s.
fn callee(sock: UdpSocket, code: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 4096];
        for _ in 0..80 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !req.starts_with("INVITE ") {
                continue;
            }
            let reason = if code == 302 {
                "Moved Temporarily"
            } else {
                "Busy Here"
            };
            let mut reply = format!("SIP/2.0 {code} {reason}\r\n");
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
            if code == 302 {
                reply.push_str("Contact: <sip:elsewhere@192.0.2.9>\r\n");
            }
            reply.push_str("Content-Length: 0\r\n\r\n");
            let _ = sock.send_to(reply.as_bytes(), from);
        }
    })
}

/// The final status line for each X-Mode under failure_reply_mode `frm`.
fn run(kamailio: bool, frm: u8, modes: &[&str]) -> Vec<String> {
    let cfg = root().join("tests/data/drop_replies.cfg");
    let define = format!("FRM={frm}");
    let s = if kamailio {
        start_kamailio(&cfg, &[&define])
    } else {
        start_ksr(&cfg, &[&define])
    };
    let mut out = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let (a, b) = (client(), client());
        let extra = format!(
            "X-P1: {}\r\nX-P2: {}\r\nX-Mode: {mode}\r\n",
            a.local_addr().expect("addr").port(),
            b.local_addr().expect("addr").port()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (ta, tb) = (callee(a, 302, stop.clone()), callee(b, 486, stop.clone()));
        let uac = client();
        let m = request(
            "INVITE",
            &format!("sip:x@127.0.0.1:{}", s.port),
            &uac,
            &format!("drop-{frm}-{i}"),
            &extra,
        );
        uac.send_to(m.as_bytes(), ("127.0.0.1", s.port))
            .expect("send");
        let mut last = String::from("(no final reply)");
        for _ in 0..40 {
            if let Some(r) = recv(&uac, 100)
                && !r.starts_with("SIP/2.0 1")
            {
                last = status_line(&r).to_string();
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let _ = (ta.join(), tb.join());
        out.push(format!("mode {frm} {mode}: {last}"));
    }
    out
}

#[test]
fn failure_reply_modes_match_kamailio() {
    let cases: [(u8, &[&str]); 4] = [
        (3, &["fork", "nofork", "keep", "drop", "drop-last"]),
        (0, &["fork", "nofork"]),
        (1, &["fork", "nofork"]),
        (2, &["fork", "nofork", "keep"]),
    ];
    let mut got = Vec::new();
    for (frm, modes) in cases {
        got.extend(run(false, frm, modes));
    }
    // What must hold whatever the oracle says: the default mode forgets the 302 once the
    // second callee is tried, mode 0 keeps it.
    assert!(
        got.contains(&"mode 3 fork: SIP/2.0 486 Busy Here".to_string()),
        "{got:#?}"
    );
    assert!(
        got.contains(&"mode 0 fork: SIP/2.0 302 Moved Temporarily".to_string()),
        "{got:#?}"
    );
    if kamailio_available() {
        let mut want = Vec::new();
        for (frm, modes) in cases {
            want.extend(run(true, frm, modes));
        }
        assert_eq!(got, want);
    }
}
