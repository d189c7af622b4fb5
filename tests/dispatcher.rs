//! dispatcher end to end: the same cfg and list file (tests/data/dispatcher.cfg,
//! dispatcher.list) on ksr and on Kamailio 5.6; every request must get the same reply
//! (where `$du`/`$ru` point, `$rc`, the `$xavp(_dsdst_)` records, RPC output). The hash
//! algorithms are checked over many Call-IDs / users. Set KSR_SKIP_ORACLE=1 to skip the
//! comparison where Kamailio is not installed.

mod common;
use common::*;
use std::net::UdpSocket;

struct Req {
    case: &'static str,
    set: i64,
    alg: i64,
    ruri: String,
    from_user: String,
    to_user: String,
    callid: String,
    extra: String,
}

impl Req {
    fn new(case: &'static str, set: i64, alg: i64) -> Req {
        Req {
            case,
            set,
            alg,
            ruri: "sip:bob@test.invalid".into(),
            from_user: "alice".into(),
            to_user: "bob".into(),
            callid: format!("{case}-{set}-{alg}"),
            extra: String::new(),
        }
    }
}

fn send(s: &Server, sock: &UdpSocket, r: &Req) -> String {
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    let m = format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{cid};rport\r\n\
         From: <sip:{fu}@example.org>;tag=a1\r\nTo: <sip:{tu}@example.net:5070>\r\n\
         Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nX-Case: {case}\r\n\
         X-Set: {set}\r\nX-Alg: {alg}\r\n{extra}Content-Length: 0\r\n\r\n",
        ruri = r.ruri,
        cid = r.callid,
        fu = r.from_user,
        tu = r.to_user,
        case = r.case,
        set = r.set,
        alg = r.alg,
        extra = r.extra,
    );
    let Some(rep) = exchange(s, sock, &m) else {
        return "<no reply>".into();
    };
    let mut out = status_line(&rep).to_string();
    for h in ["X-Rpl", "X-List"] {
        if let Some(v) = header(&rep, h) {
            out.push_str(&format!("\n{h}: {v}"));
        }
    }
    out
}

fn requests() -> Vec<Req> {
    let mut v = Vec::new();
    // Hash algorithms over many inputs, on two sets.
    for set in [1, 2] {
        for i in 0..40 {
            let mut r = Req::new("dst", set, 0);
            r.callid = format!("c{i}-{}x@host{}", i * 7919, i % 3);
            v.push(r);
        }
        for i in 0..15 {
            let mut r = Req::new("dst", set, 1);
            r.from_user = format!("user{i}");
            v.push(r);
            let mut r = Req::new("dst", set, 2);
            r.to_user = format!("u{}", i * 13);
            v.push(r);
            let mut r = Req::new("dst", set, 3);
            r.ruri = if i % 2 == 0 {
                format!("sip:n{i}@test.invalid")
            } else {
                format!("sip:n{i}@test.invalid:{}", 5060 + i)
            };
            v.push(r);
            let mut r = Req::new("dst", set, 7);
            r.from_user = format!("f{i}");
            r.ruri = format!("sip:r{}@test.invalid", i * 3);
            v.push(r);
            let mut r = Req::new("dst", set, 5);
            r.extra = format!(
                "Authorization: Digest username=\"user{i}\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\"\r\n"
            );
            v.push(r);
        }
    }
    // Round robin (and auth-user without credentials falls back to it), serial, weights.
    for alg in [4, 5, 4, 4, 8, 9, 11] {
        for set in [1, 2, 3] {
            v.push(Req::new("dst", set, alg));
        }
    }
    for (set, lim) in [(1, 1), (1, 2), (1, 0), (2, 1)] {
        let mut r = Req::new("limit", set, 0);
        r.extra = format!("X-Lim: {lim}\r\n");
        v.push(r);
    }
    for set in [1, 2, 9, 77] {
        v.push(Req::new("dst", set, 0));
        v.push(Req::new("select", set, 0));
        v.push(Req::new("domain", set, 0));
        let mut r = Req::new("domain", set, 8);
        r.ruri = "sip:test.invalid;lr?X=1".into();
        v.push(r);
        v.push(Req::new("next", set, 0));
        v.push(Req::new("next", set, 4));
        v.push(Req::new("nextdomain", set, 8));
        v.push(Req::new("parallel", set, 0));
    }
    for uri in [
        "sip:127.0.0.1:5071",
        "sip:127.0.0.1:5073;transport=tcp",
        "sip:127.0.0.2:5074",
        "sip:127.0.0.1:9999",
        "sip:127.0.0.9:5060",
        "sip:127.0.0.3:5075",
    ] {
        for (set, mode) in [
            (1, 0),
            (1, 1),
            (1, 2),
            (1, 3),
            (4, 0),
            (9, 4),
            (9, 7),
            (1, 4),
        ] {
            let mut r = Req::new("from", set, mode);
            r.extra = format!("X-Uri: {uri}\r\n");
            v.push(r);
        }
    }
    for (set, uri) in [
        (1, "sip:127.0.0.1:5072"),
        (1, "sip:127.0.0.3:5075"),
        (5, "sip:x"),
        (9, "sip:127.0.0.9:5061"),
        (3, ""),
    ] {
        let mut r = Req::new("exists", set, 0);
        r.extra = format!("X-Uri: {uri}\r\n");
        v.push(r);
    }
    // States: marks on set 3, then the RPC view and set_state.
    for st in ["i", "x", "a", "tp", "tp", "i", "a", "d", "a"] {
        let mut r = Req::new("mark", 3, 8);
        r.extra = format!("X-State: {st}\r\n");
        v.push(r);
    }
    for rpc in [
        r#"{"jsonrpc": "2.0", "method": "dispatcher.list", "params": ["short"], "id": 2}"#,
        r#"{"jsonrpc": "2.0", "method": "dispatcher.set_state", "params": ["ip", 2, "sip:127.0.0.1:6002"], "id": 3}"#,
        r#"{"jsonrpc": "2.0", "method": "dispatcher.set_state", "params": ["d", 2, "sip:127.0.0.1:9"], "id": 4}"#,
        r#"{"jsonrpc": "2.0", "method": "dispatcher.set_state", "params": ["1", 3, "all"], "id": 5}"#,
        r#"{"jsonrpc": "2.0", "method": "dispatcher.reload", "id": 6}"#,
    ] {
        let mut r = Req::new("rpc", 0, 0);
        r.extra = format!("X-Rpc: {rpc}\r\n");
        v.push(r);
        v.push(Req::new("dst", 2, 8));
        v.push(Req::new("next", 2, 8));
    }
    v
}

fn start(kamailio: bool) -> Server {
    let list = root().join("tests/data/dispatcher.list");
    let sock = std::env::temp_dir().join(format!(
        "ksr-ds-{}-{}-{}.sock",
        std::process::id(),
        if kamailio { "k" } else { "ksr" },
        free_port()
    ));
    let d1 = format!("DSLIST=\"{}\"", list.display());
    let d2 = format!("RPCSOCK=\"{}\"", sock.display());
    let cfg = root().join("tests/data/dispatcher.cfg");
    if kamailio {
        start_kamailio(&cfg, &[&d1, &d2])
    } else {
        start_ksr(&cfg, &[&d1, &d2])
    }
}

#[test]
fn dispatcher_matches_kamailio() {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (run .ci/run, or set KSR_SKIP_ORACLE=1)"
        );
        return;
    }
    let k = start(true);
    let ours = start(false);
    let ck = client();
    let co = client();
    let mut diffs = Vec::new();
    let reqs = requests();
    for r in &reqs {
        let want = send(&k, &ck, r);
        let got = send(&ours, &co, r);
        if want != got {
            diffs.push(format!(
                "{} set={} alg={} cid={} {}:\n  kamailio: {want}\n  ksr:      {got}",
                r.case,
                r.set,
                r.alg,
                r.callid,
                r.extra.trim()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        reqs.len(),
        diffs.join("\n")
    );
}

#[test]
fn random_selection_picks_an_active_destination() {
    let s = start(false);
    let c = client();
    for i in 0..20 {
        let mut r = Req::new("dst", 1, 6);
        r.callid = format!("rnd-{i}");
        let got = send(&s, &c, &r);
        assert!(got.contains("rc=1 du=sip:127.0.0."), "{got}");
        // Flag 8 (probing) does not make a destination inactive; none here is.
        assert!(got.contains(" n=5 "), "{got}");
    }
}

/// A callee answering every INVITE with `code` (ACKs silently) until `stop`; counts INVITEs.
fn callee(sock: UdpSocket, code: u16, stop: std::time::Instant) -> usize {
    let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(100)));
    let mut n = 0;
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < stop {
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let req = String::from_utf8_lossy(&buf[..len]).into_owned();
        if !req.starts_with("INVITE ") {
            continue;
        }
        n += 1;
        let mut reply = format!("SIP/2.0 {code} Reply\r\n");
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
        reply.push_str("Content-Length: 0\r\n\r\n");
        let _ = sock.send_to(reply.as_bytes(), from);
    }
    n
}

/// Two calls: the first tries the 503 destination then the next one; the second goes
/// straight to the next one (the first was marked inactive). Returns the final replies and
/// how many INVITEs each callee saw.
fn failover_run(kamailio: bool) -> (Vec<String>, Vec<usize>) {
    let callees: Vec<UdpSocket> = (0..3).map(|_| client()).collect();
    let port = |i: usize| callees[i].local_addr().map(|a| a.port()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "ksr-dsf-{}-{}-{}",
        std::process::id(),
        kamailio,
        free_port()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let list = dir.join("dispatcher.list");
    // Highest priority first: the 503 one, then the 200 one, then the 486 one.
    std::fs::write(
        &list,
        format!(
            "1 sip:127.0.0.1:{} 0 10\n1 sip:127.0.0.1:{} 0 5\n1 sip:127.0.0.1:{} 0 1\n",
            port(0),
            port(1),
            port(2)
        ),
    )
    .expect("write list");
    let cfg = root().join("tests/data/dispatcher-failover.cfg");
    let d = format!("DSLIST=\"{}\"", list.display());
    let s = if kamailio {
        start_kamailio(&cfg, &[&d])
    } else {
        start_ksr(&cfg, &[&d])
    };
    let stop = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let threads: Vec<_> = callees
        .into_iter()
        .zip([503u16, 200, 486])
        .map(|(c, code)| std::thread::spawn(move || callee(c, code, stop)))
        .collect();
    let uac = client();
    let mut finals = Vec::new();
    for call in 0..2 {
        let m = request(
            "INVITE",
            &format!("sip:x@127.0.0.1:{}", s.port),
            &uac,
            &format!("dsf-{call}"),
            "",
        );
        let _ = uac.send_to(m.as_bytes(), ("127.0.0.1", s.port));
        let mut fin = "<none>".to_string();
        for _ in 0..40 {
            if let Some(r) = recv(&uac, 100)
                && !r.starts_with("SIP/2.0 100")
            {
                fin = status_line(&r).to_string();
                break;
            }
        }
        finals.push(fin);
    }
    let counts = threads.into_iter().map(|t| t.join().unwrap_or(0)).collect();
    let _ = std::fs::remove_dir_all(&dir);
    (finals, counts)
}

#[test]
fn failover_with_ds_next_dst_and_t_relay() {
    let (finals, counts) = failover_run(false);
    assert_eq!(finals, ["SIP/2.0 200 Reply", "SIP/2.0 200 Reply"]);
    assert_eq!(counts, [1, 2, 0]);
    if kamailio_available() {
        let (kf, kc) = failover_run(true);
        assert_eq!((kf, kc), (finals, counts));
    }
}
