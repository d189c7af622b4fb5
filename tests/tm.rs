//! End to end through the transaction layer: `tests/data/tm.cfg` (t_relay, record_route,
//! loose_route, branch/onreply/failure routes) with a Rust UAC and Rust UASs on 127.0.0.1.
//! Every flow runs on ksr and, when installed, on Kamailio 5.6 with the same assertions, so
//! the test itself is checked against the oracle.

mod common;
use common::*;
use std::net::UdpSocket;

/// Receives until `pred` accepts a message (bounded); None on timeout.
fn recv_until(sock: &UdpSocket, ms: u64, pred: impl Fn(&str) -> bool) -> Option<String> {
    for _ in 0..20 {
        let m = recv(sock, ms)?;
        if pred(&m) {
            return Some(m);
        }
    }
    None
}

fn is_status(code: u16) -> impl Fn(&str) -> bool {
    move |m: &str| status_line(m).starts_with(&format!("SIP/2.0 {code} "))
}

fn is_method(method: &'static str) -> impl Fn(&str) -> bool {
    move |m: &str| status_line(m).starts_with(&format!("{method} "))
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().map(|a| a.port()).unwrap_or(0)
}

/// A UAS reply to `req`: Vias, From, Call-ID, CSeq and Record-Route copied, To tagged.
fn reply_to(req: &str, code: u16, reason: &str, uas: &UdpSocket) -> String {
    reply_with(req, code, reason, uas, "")
}

fn reply_with(req: &str, code: u16, reason: &str, uas: &UdpSocket, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n{extra}");
    for l in req.split("\r\n").skip(1) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" | "record-route" => {
                out.push_str(l);
                out.push_str("\r\n");
            }
            "to" | "t" => {
                out.push_str(l);
                if !l.contains("tag=") {
                    out.push_str(";tag=uas1");
                }
                out.push_str("\r\n");
            }
            _ => {}
        }
    }
    out.push_str(&format!(
        "Contact: <sip:bob@127.0.0.1:{}>\r\nContent-Length: 0\r\n\r\n",
        port(uas)
    ));
    out
}

fn send(sock: &UdpSocket, to_port: u16, msg: &str) {
    sock.send_to(msg.as_bytes(), ("127.0.0.1", to_port))
        .expect("send");
}

/// Where a reply from the UAS goes: the proxy (top Via).
fn answer(uas: &UdpSocket, s: &Server, req: &str, code: u16, reason: &str) {
    send(uas, s.port, &reply_to(req, code, reason, uas));
}

fn invite(uac: &UdpSocket, callid: &str, uas: &UdpSocket, extra: &str) -> String {
    let ruri = format!("sip:bob@127.0.0.1:{}", port(uas));
    let m = request("INVITE", &ruri, uac, callid, extra);
    m.replace(
        "Max-Forwards: 70\r\n",
        &format!(
            "Max-Forwards: 70\r\nContact: <sip:alice@127.0.0.1:{}>\r\n",
            port(uac)
        ),
    )
}

/// In-dialog request from the UAC after a 2xx: to the Contact, through the Record-Route.
fn in_dialog(
    method: &str,
    uac: &UdpSocket,
    ok: &str,
    callid: &str,
    cseq: u32,
    branch: &str,
) -> String {
    let contact = header(ok, "Contact")
        .unwrap_or("")
        .trim_matches(|c| c == '<' || c == '>');
    let rr = header(ok, "Record-Route").unwrap_or("");
    let to = header(ok, "To").unwrap_or("");
    format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-{branch};rport\r\nRoute: {rr}\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: {to}\r\nCall-ID: {callid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        port(uac)
    )
}

fn servers() -> Vec<Server> {
    let cfg = root().join("tests/data/tm.cfg");
    let mut v = vec![start_ksr(&cfg, &[])];
    if kamailio_available() {
        v.push(start_kamailio(&cfg, &[]));
    }
    v
}

fn still_alive(s: &Server) {
    let c = client();
    let r = exchange(
        s,
        &c,
        &request(
            "OPTIONS",
            &format!("sip:ping@127.0.0.1:{}", s.port),
            &c,
            "alive",
            "",
        ),
    );
    assert!(
        r.is_some_and(|r| status_line(&r).contains("200")),
        "{} stopped answering",
        s.name
    );
}

fn call_flow(s: &Server) {
    let (uac, uas) = (client(), client());
    let callid = format!("call-{}", s.name);
    send(&uac, s.port, &invite(&uac, &callid, &uas, ""));
    let inv = recv_until(&uas, 2000, is_method("INVITE")).expect("UAS gets the INVITE");
    assert!(
        header(&inv, "Record-Route").is_some_and(|r| r.contains(";lr")),
        "{}: {inv}",
        s.name
    );
    assert_eq!(header(&inv, "X-Branch"), Some("0"), "{}: {inv}", s.name);
    assert!(header(&inv, "X-Wrong").is_none(), "{}: {inv}", s.name);
    assert_eq!(inv.matches("Via:").count(), 2, "{}: {inv}", s.name);
    let trying = recv_until(&uac, 2000, |_| true).expect("100 Trying");
    assert!(is_status(100)(&trying), "{}: {trying}", s.name);
    answer(&uas, s, &inv, 180, "Ringing");
    let ring = recv_until(&uac, 2000, |_| true).expect("180 relayed");
    assert!(is_status(180)(&ring), "{}: {ring}", s.name);
    assert_eq!(ring.matches("Via:").count(), 1, "{}: {ring}", s.name);
    // 183 is dropped in onreply_route.
    answer(&uas, s, &inv, 183, "Progress");
    answer(&uas, s, &inv, 200, "OK");
    let ok = recv_until(&uac, 2000, |_| true).expect("200 relayed");
    assert!(
        is_status(200)(&ok),
        "{}: 183 must be dropped, got {ok}",
        s.name
    );
    assert!(header(&ok, "Record-Route").is_some(), "{}: {ok}", s.name);
    // ACK and BYE follow the route set.
    send(
        &uac,
        s.port,
        &in_dialog("ACK", &uac, &ok, &callid, 1, "ack1"),
    );
    let ack = recv_until(&uas, 2000, is_method("ACK")).expect("UAS gets the ACK");
    assert!(
        header(&ack, "Route").is_none(),
        "{}: own Route removed: {ack}",
        s.name
    );
    send(
        &uac,
        s.port,
        &in_dialog("BYE", &uac, &ok, &callid, 2, "bye1"),
    );
    let bye = recv_until(&uas, 2000, is_method("BYE")).expect("UAS gets the BYE");
    assert!(
        header(&bye, "X-Routed").is_some_and(|r| r.contains("lr")),
        "{}: {bye}",
        s.name
    );
    answer(&uas, s, &bye, 200, "OK");
    let ok2 = recv_until(&uac, 2000, |_| true).expect("200 for BYE");
    assert!(
        is_status(200)(&ok2) && ok2.contains("BYE"),
        "{}: {ok2}",
        s.name
    );
}

fn serial_fork(s: &Server) {
    let (uac, uas1, uas2) = (client(), client(), client());
    let callid = format!("fork-{}", s.name);
    let alt = format!(
        "X-Alt: sip:carol@127.0.0.1:{}\r\nX-NatTest: 1\r\n",
        port(&uas2)
    );
    send(&uac, s.port, &invite(&uac, &callid, &uas1, &alt));
    let inv = recv_until(&uas1, 2000, is_method("INVITE")).expect("first INVITE");
    assert_eq!(
        header(&inv, "Record-Route"),
        Some(format!("<sip:127.0.0.1:{};lr;ftag=a1;nat=yes>", s.port).as_str()),
        "{}: {inv}",
        s.name
    );
    answer(&uas1, s, &inv, 486, "Busy Here");
    let ack = recv_until(&uas1, 2000, is_method("ACK")).expect("hop-by-hop ACK for 486");
    assert!(ack.contains("CSeq: 1 ACK"), "{}: {ack}", s.name);
    let inv2 = recv_until(&uas2, 2000, is_method("INVITE")).expect("failure_route re-relays");
    assert!(inv2.starts_with("INVITE sip:carol@"), "{}: {inv2}", s.name);
    // t_relay in failure_route runs branch_route only when t_on_branch is armed again.
    assert_eq!(header(&inv2, "X-Branch"), None, "{}: {inv2}", s.name);
    assert!(
        header(&inv2, "Record-Route").is_some(),
        "{}: {inv2}",
        s.name
    );
    answer(&uas2, s, &inv2, 200, "OK");
    let ok = recv_until(&uac, 2000, |m| !is_status(100)(m)).expect("final reply");
    assert!(
        is_status(200)(&ok),
        "{}: the 486 must not reach the UAC: {ok}",
        s.name
    );
    // failure_route answering itself.
    let callid = format!("gone-{}", s.name);
    send(&uac, s.port, &invite(&uac, &callid, &uas1, ""));
    let inv = recv_until(&uas1, 2000, is_method("INVITE")).expect("INVITE");
    answer(&uas1, s, &inv, 480, "Unavailable");
    let r = recv_until(&uac, 2000, |m| !is_status(100)(m)).expect("t_reply in failure_route");
    assert_eq!(
        header(&r, "X-Failed-Uri"),
        Some(format!("sip:bob@127.0.0.1:{}", port(&uas1)).as_str()),
        "{}: {r}",
        s.name
    );
    assert!(
        status_line(&r).contains("404 Gone Unavailable"),
        "{}: {r}",
        s.name
    );
}

/// Parallel forking: the best of the final replies wins, challenges are aggregated, every
/// negative reply is ACKed hop by hop, a 503 goes upstream as 500.
fn parallel_fork(s: &Server) {
    let (uac, uas1, uas2) = (client(), client(), client());
    let callid = format!("par-{}", s.name);
    let fork = format!("X-Fork: sip:dave@127.0.0.1:{}\r\n", port(&uas2));
    send(&uac, s.port, &invite(&uac, &callid, &uas1, &fork));
    let a = recv_until(&uas1, 2000, is_method("INVITE")).expect("branch 0");
    let b = recv_until(&uas2, 2000, is_method("INVITE")).expect("branch 1");
    assert_eq!(header(&b, "X-Branch"), Some("1"), "{}: {b}", s.name);
    let pa = "Proxy-Authenticate: Digest realm=\"one\", nonce=\"n1\"\r\n";
    let wa = "WWW-Authenticate: Digest realm=\"two\", nonce=\"n2\"\r\n";
    send(
        &uas1,
        s.port,
        &reply_with(&a, 407, "Proxy Authentication Required", &uas1, pa),
    );
    recv_until(&uas1, 2000, is_method("ACK")).expect("ACK for 407");
    send(
        &uas2,
        s.port,
        &reply_with(&b, 401, "Unauthorized", &uas2, wa),
    );
    recv_until(&uas2, 2000, is_method("ACK")).expect("ACK for 401");
    let r = recv_until(&uac, 2000, |m| !is_status(100)(m)).expect("final reply");
    assert!(is_status(401)(&r), "{}: {r}", s.name);
    assert!(
        r.contains("realm=\"one\"") && r.contains("realm=\"two\""),
        "{}: {r}",
        s.name
    );
    // 503 is not relayed as such.
    let callid = format!("busy503-{}", s.name);
    send(&uac, s.port, &invite(&uac, &callid, &uas1, ""));
    let a = recv_until(&uas1, 2000, is_method("INVITE")).expect("INVITE");
    answer(&uas1, s, &a, 503, "Service Unavailable");
    let r = recv_until(&uac, 2000, |m| !is_status(100)(m)).expect("final reply");
    assert!(is_status(500)(&r), "{}: {r}", s.name);
}

/// A 6xx on one branch cancels the other pending branches and wins; after
/// `t_set_disable_6xx(1)` the other branches keep running and the 6xx still wins by
/// priority once all are final.
fn six_xx_flow(s: &Server) {
    for disabled in [false, true] {
        let (uac, uas1, uas2) = (client(), client(), client());
        let callid = format!("6xx-{disabled}-{}", s.name);
        let mut extra = format!("X-Fork: sip:dave@127.0.0.1:{}\r\n", port(&uas2));
        if disabled {
            extra.push_str("X-No6xx: 1\r\n");
        }
        send(&uac, s.port, &invite(&uac, &callid, &uas1, &extra));
        let a = recv_until(&uas1, 2000, is_method("INVITE")).expect("branch 0");
        let b = recv_until(&uas2, 2000, is_method("INVITE")).expect("branch 1");
        answer(&uas2, s, &b, 180, "Ringing");
        recv_until(&uac, 2000, is_status(180)).expect("180");
        answer(&uas1, s, &a, 603, "Decline");
        recv_until(&uas1, 2000, is_method("ACK")).expect("ACK for 603");
        if disabled {
            assert!(
                recv_until(&uas2, 400, is_method("CANCEL")).is_none(),
                "{}: CANCEL sent although 6xx handling is disabled",
                s.name
            );
            answer(&uas2, s, &b, 486, "Busy Here");
        } else {
            let c = recv_until(&uas2, 2000, is_method("CANCEL")).expect("CANCEL after 6xx");
            answer(&uas2, s, &c, 200, "OK");
            answer(&uas2, s, &b, 487, "Request Terminated");
        }
        recv_until(&uas2, 2000, is_method("ACK")).expect("ACK branch 1");
        let r = recv_until(&uac, 2000, |m| !is_status(100)(m)).expect("final reply");
        assert!(is_status(603)(&r), "{} disabled={disabled}: {r}", s.name);
    }
}

fn cancel_flow(s: &Server) {
    let (uac, uas) = (client(), client());
    let callid = format!("cancel-{}", s.name);
    let inv_msg = invite(&uac, &callid, &uas, "");
    send(&uac, s.port, &inv_msg);
    let inv = recv_until(&uas, 2000, is_method("INVITE")).expect("INVITE");
    answer(&uas, s, &inv, 180, "Ringing");
    recv_until(&uac, 2000, is_status(180)).expect("180");
    let cancel = inv_msg
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    send(&uac, s.port, &cancel);
    let ok = recv_until(&uac, 2000, |_| true).expect("200 for CANCEL");
    assert!(
        is_status(200)(&ok) && ok.contains("CANCEL"),
        "{}: {ok}",
        s.name
    );
    let c = recv_until(&uas, 2000, is_method("CANCEL")).expect("UAS gets CANCEL");
    answer(&uas, s, &c, 200, "OK");
    answer(&uas, s, &inv, 487, "Request Terminated");
    recv_until(&uas, 2000, is_method("ACK")).expect("ACK for 487");
    let r = recv_until(&uac, 2000, |_| true).expect("487 relayed");
    assert!(is_status(487)(&r), "{}: {r}", s.name);
    let ack = inv_msg
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    send(&uac, s.port, &ack);
    // The ACK for 487 is absorbed: the UAS sees nothing more.
    assert!(
        recv_until(&uas, 300, is_method("ACK")).is_none(),
        "{}: ACK leaked",
        s.name
    );
}

fn timeout_flow(s: &Server) {
    let (uac, uas) = (client(), client());
    let callid = format!("timeout-{}", s.name);
    send(&uac, s.port, &invite(&uac, &callid, &uas, ""));
    recv_until(&uas, 2000, is_method("INVITE")).expect("INVITE");
    // No answer: fr_timer (1 s) expires, a local 408 comes back.
    let r = recv_until(&uac, 4000, |m| !is_status(100)(m)).expect("408");
    assert!(is_status(408)(&r), "{}: {r}", s.name);
    assert!(
        header(&r, "To").is_some_and(|t| t.contains("tag=")),
        "{}: {r}",
        s.name
    );
}

fn retransmission_flow(s: &Server) {
    let (uac, uas) = (client(), client());
    let callid = format!("retr-{}", s.name);
    let inv_msg = invite(&uac, &callid, &uas, "");
    send(&uac, s.port, &inv_msg);
    let inv = recv_until(&uas, 2000, is_method("INVITE")).expect("INVITE");
    answer(&uas, s, &inv, 180, "Ringing");
    recv_until(&uac, 2000, is_status(180)).expect("180");
    send(&uac, s.port, &inv_msg);
    let again = recv_until(&uac, 2000, |_| true).expect("last reply re-sent");
    assert!(is_status(180)(&again), "{}: {again}", s.name);
    assert!(
        recv_until(&uas, 300, is_method("INVITE")).is_none(),
        "{}: the retransmission must be absorbed",
        s.name
    );
    answer(&uas, s, &inv, 603, "Decline");
    let r = recv_until(&uac, 2000, |_| true).expect("603");
    assert!(is_status(603)(&r), "{}: {r}", s.name);
}

/// `t_newtran` + `t_forward_nonack_uri`, and tmx `t_reply_callid` answering another
/// transaction.
fn nonack_and_reply_callid(s: &Server) {
    let (uac, uas) = (client(), client());
    let msg = request(
        "MESSAGE",
        &format!("sip:bob@127.0.0.1:{}", port(&uas)),
        &uac,
        &format!("nonack-{}", s.name),
        "X-Nonack: 1\r\n",
    );
    send(&uac, s.port, &msg);
    let m = recv_until(&uas, 2000, is_method("MESSAGE")).expect("forwarded statefully");
    assert!(
        header(&m, "Via").is_some_and(|v| v.contains(&s.port.to_string())),
        "{}: {m}",
        s.name
    );
    answer(&uas, s, &m, 202, "Accepted");
    let r = recv_until(&uac, 2000, |_| true).expect("202 relayed");
    assert!(is_status(202)(&r), "{}: {r}", s.name);
    // An INVITE nobody answers, then answered from another request by Call-ID.
    let callid = format!("byid-{}", s.name);
    send(&uac, s.port, &invite(&uac, &callid, &uas, ""));
    recv_until(&uas, 2000, is_method("INVITE")).expect("INVITE");
    recv_until(&uac, 2000, is_status(100)).expect("100");
    let c2 = client();
    let m = request(
        "MESSAGE",
        &format!("sip:proxy@127.0.0.1:{}", s.port),
        &c2,
        &format!("replier-{}", s.name),
        &format!("X-ReplyCallid: {callid}\r\n"),
    );
    let r = exchange(s, &c2, &m).expect("reply to MESSAGE");
    assert!(status_line(&r).contains("200 Done"), "{}: {r}", s.name);
    let r = recv_until(&uac, 2000, |m| !is_status(100)(m)).expect("486 by Call-ID");
    assert!(
        status_line(&r).contains("486 Busy Elsewhere"),
        "{}: {r}",
        s.name
    );
}

/// UDP in, TCP out: two Record-Route headers (outbound first), each with `r2=on`.
fn double_rr_over_tcp(s: &Server) {
    use std::io::{Read, Write};
    let uac = client();
    let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
        return;
    };
    let tport = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let callid = format!("tcp-{}", s.name);
    let ruri = format!("sip:bob@127.0.0.1:{tport};transport=tcp");
    let msg = request("INVITE", &ruri, &uac, &callid, "");
    send(&uac, s.port, &msg);
    // Bounded wait for the proxy's connection.
    let _ = listener.set_nonblocking(true);
    let mut accepted = None;
    for _ in 0..200 {
        if let Ok((c, _)) = listener.accept() {
            accepted = Some(c);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut conn = accepted.expect("proxy connects over TCP");
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(2000)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..50 {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let inv = String::from_utf8_lossy(&buf).into_owned();
    let rrs: Vec<&str> = inv
        .split("\r\n")
        .filter(|l| l.starts_with("Record-Route:"))
        .collect();
    assert_eq!(
        rrs,
        vec![
            format!(
                "Record-Route: <sip:127.0.0.1:{};transport=tcp;r2=on;lr;ftag=a1>",
                s.port
            ),
            format!("Record-Route: <sip:127.0.0.1:{};r2=on;lr;ftag=a1>", s.port),
        ],
        "{}: {inv}",
        s.name
    );
    let uas = client();
    let reply = reply_to(&inv, 486, "Busy Here", &uas);
    let _ = conn.write_all(reply.as_bytes());
    let r = recv_until(&uac, 2000, |m| !is_status(100)(m)).expect("486 relayed");
    assert!(is_status(486)(&r), "{}: {r}", s.name);
}

fn bad_input(s: &Server) {
    let c = client();
    // A reply for a transaction that does not exist, with our branch format and others.
    for branch in ["z9hG4bKtmffffff.0", "z9hG4bKtm.x", "z9hG4bKother"] {
        let r = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch={branch}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: bad-{branch}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            s.port
        );
        send(&c, s.port, &r);
    }
    // ACK and CANCEL without a transaction.
    let uas = client();
    let ack = request(
        "ACK",
        &format!("sip:x@127.0.0.1:{}", port(&uas)),
        &c,
        "noack",
        "",
    );
    send(
        &c,
        s.port,
        &ack.replace("To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=9"),
    );
    send(
        &c,
        s.port,
        &request(
            "CANCEL",
            &format!("sip:x@127.0.0.1:{}", port(&uas)),
            &c,
            "nocancel",
            "",
        ),
    );
    send(&c, s.port, "garbage\r\n\r\n");
    still_alive(s);
}

#[test]
fn stateful_proxy_flows_on_ksr_and_kamailio() {
    for s in servers() {
        call_flow(&s);
        serial_fork(&s);
        parallel_fork(&s);
        six_xx_flow(&s);
        cancel_flow(&s);
        retransmission_flow(&s);
        timeout_flow(&s);
        nonack_and_reply_callid(&s);
        double_rr_over_tcp(&s);
        bad_input(&s);
        still_alive(&s);
    }
}

/// The same proxy in Lua: KSR.tm.* / KSR.rr.* / KSR.tmx.*, failure and branch callbacks by
/// function name. Run on ksr and on Kamailio's app_lua.
#[test]
fn lua_kemi_flows_on_ksr_and_kamailio() {
    let cfg = root().join("tests/data/tm-lua.cfg");
    let script = format!(
        "LUA_SCRIPT=\"{}\"",
        root().join("tests/data/tm.lua").display()
    );
    let mut v = vec![start_ksr(&cfg, &[&script])];
    if kamailio_available()
        && std::path::Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so").exists()
    {
        v.push(start_kamailio(&cfg, &[&script]));
    }
    for s in v {
        call_flow(&s);
        serial_fork(&s);
        cancel_flow(&s);
        timeout_flow(&s);
        still_alive(&s);
    }
}

/// `ksr check` knows the route names tm functions take and where tm/rr functions may run.
#[test]
fn check_reports_missing_tm_routes() {
    let dir = std::env::temp_dir().join(format!("ksr-tm-check-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let cfg = dir.join("bad.cfg");
    std::fs::write(
        &cfg,
        "loadmodule \"tm.so\"\nloadmodule \"rr.so\"\nrequest_route {\n  t_on_failure(\"NOPE\");\n  t_on_branch(\"B\");\n  t_relay();\n}\nbranch_route[B] {\n  loose_route();\n}\n",
    )
    .expect("write cfg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ksr"))
        .arg("check")
        .arg("-f")
        .arg(&cfg)
        .output()
        .expect("run ksr check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    // Kamailio only warns about a missing failure_route (it runs nothing there).
    assert!(
        text.contains("warning: failure_route[NOPE] is not defined"),
        "{text}"
    );
    // loose_route is not allowed in branch_route: that one is an error.
    assert!(text.contains("error: function 'loose_route'"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many calls with real SIP stacks on both sides: sipp's built-in UAC and a UAS
/// (`tests/sipp/uas_rr.xml`) through the proxy, over UDP and TCP, on ksr and on Kamailio.
#[test]
fn sipp_calls_through_the_stateful_proxy() {
    if std::process::Command::new("sipp")
        .arg("-v")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("KSR_SKIP_SIPP").is_ok(),
            "sipp is not installed (run .ci/run, or set KSR_SKIP_SIPP=1)"
        );
        return;
    }
    let cfg = root().join("tests/data/tm.cfg");
    let uas_port = free_port();
    let define = format!("UASPORT={uas_port}");
    let mut v = vec![start_ksr(&cfg, &[&define])];
    if kamailio_available() {
        v.push(start_kamailio(&cfg, &[&define]));
    }
    for s in v {
        let dir =
            std::env::temp_dir().join(format!("ksr-tm-sipp-{}-{}", std::process::id(), s.port));
        let _ = std::fs::create_dir_all(&dir);
        let mut uas = std::process::Command::new("sipp")
            .current_dir(&dir)
            .arg("-sf")
            .arg(root().join("tests/sipp/uas_rr.xml"))
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-m", "20", "-timeout", "30s", "-nostdin"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start sipp uas");
        // Over UDP, then over TCP to the proxy (UDP to the UAS: double Record-Route).
        for transport in ["u1", "t1"] {
            let out = std::process::Command::new("sipp")
                .current_dir(&dir)
                .arg(format!("127.0.0.1:{}", s.port))
                .args([
                    "-sn",
                    "uac",
                    "-s",
                    "sippuas",
                    "-i",
                    "127.0.0.1",
                    "-t",
                    transport,
                ])
                .args(["-p", &free_port().to_string()])
                .args([
                    "-m", "10", "-r", "10", "-d", "100", "-timeout", "30s", "-nostdin",
                ])
                .output()
                .expect("run sipp uac");
            assert!(
                out.status.success(),
                "{} over {transport}: sipp uac failed:\n{}{}",
                s.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = uas.kill();
        let _ = uas.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The `ACC:` records of a server log, timestamps removed, sorted (workers interleave).
fn acc_records(log: &str) -> Vec<String> {
    let mut v: Vec<String> = log
        .lines()
        .filter_map(|l| l.find("ACC: ").map(|i| &l[i..]))
        .filter(|r| !r.contains("method=OPTIONS"))
        .map(|r| {
            r.split(';')
                .map(|part| match part.find("timestamp=") {
                    Some(p) => format!("{}T", &part[..p + "timestamp=".len()]),
                    None => part.to_string(),
                })
                .collect::<Vec<_>>()
                .join(";")
        })
        .collect();
    v.sort();
    v
}

fn acc_flows(s: &Server) -> Vec<String> {
    let (uac, uas) = (client(), client());
    // Answered call.
    let callid = format!("acc-ok-{}", s.name)
        .replace("kamailio", "x")
        .replace("ksr", "x");
    send(&uac, s.port, &invite(&uac, &callid, &uas, ""));
    let inv = recv_until(&uas, 2000, is_method("INVITE")).expect("INVITE");
    answer(&uas, s, &inv, 180, "Ringing");
    answer(&uas, s, &inv, 200, "OK");
    recv_until(&uac, 2000, is_status(200)).expect("200");
    // Busy call.
    let callid = format!("acc-busy-{}", s.name)
        .replace("kamailio", "x")
        .replace("ksr", "x");
    send(&uac, s.port, &invite(&uac, &callid, &uas, ""));
    let inv = recv_until(&uas, 2000, is_method("INVITE")).expect("INVITE");
    answer(&uas, s, &inv, 486, "Busy Here");
    recv_until(&uac, 2000, is_status(486)).expect("486");
    // Unanswered call: local 408.
    let callid = format!("acc-none-{}", s.name)
        .replace("kamailio", "x")
        .replace("ksr", "x");
    send(&uac, s.port, &invite(&uac, &callid, &uas, ""));
    recv_until(&uac, 4000, is_status(408)).expect("408");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = std::fs::read_to_string(s.dir.join(format!("{}.log", s.name))).unwrap_or_default();
    acc_records(&log)
}

/// acc's transaction accounting through tm's hooks: answered, failed and missed calls
/// logged as Kamailio logs them (local To tags aside).
#[test]
fn acc_transaction_records_match_kamailio() {
    let cfg = root().join("tests/data/tm-acc.cfg");
    let s = start_ksr(&cfg, &[]);
    let mine = acc_flows(&s);
    drop(s);
    assert!(
        mine.iter()
            .any(|r| r.starts_with("ACC: transaction answered:") && r.contains("code=200")),
        "{mine:#?}"
    );
    assert!(
        mine.iter()
            .any(|r| r.starts_with("ACC: call missed:") && r.contains("code=486")),
        "{mine:#?}"
    );
    if kamailio_available() {
        let k = start_kamailio(&cfg, &[]);
        let theirs = acc_flows(&k);
        drop(k);
        // The local 408's To tag is each server's own.
        let norm = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|r| {
                    if r.contains("code=408") {
                        r.split(';')
                            .map(|p| {
                                if p.starts_with("to_tag=") {
                                    "to_tag=L"
                                } else {
                                    p
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(";")
                    } else {
                        r.clone()
                    }
                })
                .collect()
        };
        assert_eq!(norm(&mine), norm(&theirs));
    }
}
