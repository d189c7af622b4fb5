//! Serial forking by q: `t_load_contacts` + `t_next_contacts` in request_route and
//! failure_route (tests/data/serial.cfg), on ksr and on Kamailio 5.6 with the same callees —
//! the highest q alone first, then the two contacts of equal q in parallel, then the R-URI
//! (no q); every attempt but the last answered 486, the last 200.

mod common;
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

/// A callee answering every INVITE with `code` (and ACKs silently); records what it saw.
fn callee_step(sock: &UdpSocket, code: u16) -> Option<String> {
    let mut buf = [0u8; 4096];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
    if !req.starts_with("INVITE ") {
        return Some(req.lines().next().unwrap_or("").to_string());
    }
    let mut reply = format!(
        "SIP/2.0 {code} {}\r\n",
        if code == 200 { "OK" } else { "Busy Here" }
    );
    for l in req.split("\r\n") {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            reply.push_str(l);
            reply.push_str("\r\n");
        } else if lower.starts_with("to:") {
            reply.push_str(l);
            reply.push_str(";tag=callee\r\n");
        }
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    sock.send_to(reply.as_bytes(), from).ok()?;
    Some(req.lines().next().unwrap_or("").to_string())
}

fn run(kamailio: bool) -> (Vec<String>, String) {
    let cfg = root().join("tests/data/serial.cfg");
    let s = if kamailio {
        start_kamailio(&cfg, &[])
    } else {
        start_ksr(&cfg, &[])
    };
    let callees: Vec<UdpSocket> = (0..4).map(|_| client()).collect();
    let port = |i: usize| callees[i].local_addr().expect("addr").port();
    let uac = client();
    let extra = format!(
        "X-P1: {}\r\nX-P2: {}\r\nX-P3: {}\r\nX-P4: {}\r\n",
        port(0),
        port(1),
        port(2),
        port(3)
    );
    // Each callee answers after 200 ms, so the attempts are apart in time; arrivals within
    // 100 ms of each other belong to one (parallel) attempt.
    let start = std::time::Instant::now();
    let threads: Vec<_> = callees
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            std::thread::spawn(move || {
                c.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("timeout");
                let mut got = None;
                for _ in 0..40 {
                    let code = if i == 0 { 200 } else { 486 };
                    let mut buf = [0u8; 1];
                    if got.is_none() && c.peek_from(&mut buf).is_ok() {
                        let t = start.elapsed();
                        std::thread::sleep(Duration::from_millis(200));
                        if let Some(line) = callee_step(&c, code)
                            && line.starts_with("INVITE")
                        {
                            got = Some(t);
                        }
                    } else {
                        let _ = callee_step(&c, 0);
                    }
                }
                got.map(|t| (t, ["a", "b", "c", "d"][i]))
            })
        })
        .collect();
    let m = request(
        "INVITE",
        &format!("sip:x@127.0.0.1:{}", s.port),
        &uac,
        "serial-1",
        &extra,
    );
    uac.send_to(m.as_bytes(), ("127.0.0.1", s.port))
        .expect("send");
    let mut final_reply = String::new();
    for _ in 0..50 {
        if let Some(r) = recv(&uac, 100)
            && !r.starts_with("SIP/2.0 100")
        {
            final_reply = status_line(&r).to_string();
            break;
        }
    }
    let mut arrivals: Vec<(Duration, &str)> = threads
        .into_iter()
        .filter_map(|t| t.join().ok().flatten())
        .collect();
    arrivals.sort();
    let mut seen: Vec<Vec<&str>> = Vec::new();
    let mut last: Option<Duration> = None;
    for (t, name) in arrivals {
        match (last, seen.last_mut()) {
            (Some(l), Some(group)) if t - l < Duration::from_millis(100) => group.push(name),
            _ => seen.push(vec![name]),
        }
        last = Some(t);
    }
    let seen: Vec<String> = seen
        .into_iter()
        .map(|mut g| {
            g.sort();
            g.join("+")
        })
        .collect();
    (seen, final_reply)
}

#[test]
fn serial_forking_by_q_like_kamailio() {
    let (seen, reply) = run(false);
    assert_eq!(seen, vec!["c", "b+d", "a"], "order of attempts");
    assert_eq!(reply, "SIP/2.0 200 OK");
    if kamailio_available() {
        assert_eq!((seen, reply), run(true));
    }
}
