//! tm and rr offline: the real modules and native engine over a recording transport, so
//! what leaves the proxy can be inspected byte for byte and timers can be fired at will.

use bytes::Bytes;
use compiler::frontend::parse_file;
use compiler::preprocess::Options;
use runtime::native::NativeFactory;
use runtime::offline::Harness;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CFG: &str = r#"
listen=udp:127.0.0.1:5060
listen=tcp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "rr.so"
loadmodule "siputils.so"
loadmodule "textops.so"
modparam("tm", "fr_timer", 1000)
request_route {
    if (has_totag()) {
        loose_route();
        $var(rc) = $rc;
        if ($var(rc) > 0) {
            if (check_route_param("nat=yes")) { append_hf("X-Nat: yes\r\n"); }
            if (is_direction("upstream")) { append_hf("X-Dir: up\r\n"); }
            if (rr_next_hop_route()) { append_hf("X-NH: 1\r\n"); }
            t_relay();
            exit;
        }
        sl_send_reply("404", "rc $var(rc)");
        exit;
    }
    if ($hdr(X-Preloaded) != $null) {
        loose_route();
        $var(rc) = $rc;
        sl_send_reply("299", "rc $var(rc)");
        exit;
    }
    record_route();
    add_rr_param(";nat=yes");
    t_on_branch_failure("BF");
    t_on_failure("F");
    t_relay();
}
event_route[tm:branch-failure:BF] {
    $shv(bf) = $T_reply_code;
}
failure_route[F] {
    if ($T_reply_code == 486) {
        # t_reply's reason is one leading variable or literal text (Kamailio's fixup)
        $var(reason) = "bf " + $shv(bf);
        t_reply("499", "$var(reason)");
    }
}
"#;

fn harness() -> Harness {
    harness_with_hook(None)
}

fn harness_with_hook(
    hook: Option<fn(&mut runtime::Ctx, &runtime::modules::tm::TmReply<'_>)>,
) -> Harness {
    let dir = std::env::temp_dir().join(format!("ksr-tm-offline-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("tm{n}.cfg"));
    std::fs::write(&path, CFG).expect("write cfg");
    let r = parse_file(&path, &Options::default()).expect("read cfg");
    let config = r.config.expect("parsed");
    let mut setup = runtime::Setup::from_config(&config).unwrap_or_else(|_| panic!("setup"));
    if let Some(h) = hook {
        setup.hooks.tm_response_out.push(h);
    }
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

fn sent(h: &Harness) -> Vec<(SocketAddr, String)> {
    h.take_sent()
        .into_iter()
        .map(|(d, b)| (d.addr, String::from_utf8_lossy(&b).into_owned()))
        .collect()
}

fn req(first: &str, extra: &str, totag: bool) -> Bytes {
    let to = if totag { ";tag=b1" } else { "" };
    Bytes::from(format!(
        "{first} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{}\r\n{extra}From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>{to}\r\nCall-ID: off-{}\r\nCSeq: 1 {}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        first.len() + extra.len(),
        extra.len(),
        first.split(' ').next().unwrap_or("X")
    ))
}

#[test]
fn record_route_with_params_and_double_rr_on_transport_change() {
    let mut h = harness();
    h.feed(req("MESSAGE sip:bob@10.0.0.2:5070", "", false), src());
    let out = sent(&h);
    let (to, m) = out.iter().find(|(a, _)| a.port() == 5070).expect("relayed");
    assert_eq!(to.to_string(), "10.0.0.2:5070");
    assert!(
        m.contains("Record-Route: <sip:127.0.0.1;lr;ftag=a1;nat=yes>\r\n"),
        "{m}"
    );
    assert_eq!(m.matches("Record-Route:").count(), 1, "{m}");
    h.feed(
        req("MESSAGE sip:bob@10.0.0.2:5070;transport=tcp", "", false),
        src(),
    );
    let out = sent(&h);
    let (_, m) = out.iter().find(|(a, _)| a.port() == 5070).expect("relayed");
    assert!(
        m.contains("Record-Route: <sip:127.0.0.1;transport=tcp;r2=on;lr;ftag=a1;nat=yes>\r\nRecord-Route: <sip:127.0.0.1;r2=on;lr;ftag=a1;nat=yes>\r\n"),
        "{m}"
    );
}

#[test]
fn loose_route_return_codes_and_route_handling() {
    let mut h = harness();
    // Loose routing: our Route removed, $du from the next one, parameters readable.
    h.feed(
        req(
            "BYE sip:bob@10.0.0.9",
            "Route: <sip:127.0.0.1;lr;ftag=b1;nat=yes>, <sip:10.0.0.3;lr>\r\n",
            true,
        ),
        src(),
    );
    let out = sent(&h);
    let (to, m) = out.first().expect("relayed");
    assert_eq!(to.to_string(), "10.0.0.3:5060");
    assert!(m.starts_with("BYE sip:bob@10.0.0.9 "), "{m}");
    assert!(
        m.contains("Route: <sip:10.0.0.3;lr>\r\n") && !m.contains("nat=yes>"),
        "{m}"
    );
    assert!(m.contains("X-Nat: yes") && m.contains("X-Dir: up"), "{m}");
    assert!(m.contains("X-NH: 1"), "{m}");
    // Strict router before us: our URI is the R-URI, the target is the last Route.
    h.feed(
        req(
            "BYE sip:127.0.0.1;ftag=a1",
            "Route: <sip:10.0.0.4;lr>\r\nRoute: <sip:bob@10.0.0.5:5080>\r\n",
            true,
        ),
        src(),
    );
    let out = sent(&h);
    let (to, m) = out.first().expect("relayed");
    assert_eq!(to.to_string(), "10.0.0.4:5060");
    assert!(m.starts_with("BYE sip:bob@10.0.0.5:5080 "), "{m}");
    assert!(!m.contains("10.0.0.5:5080>"), "{m}");
    // Strict next hop: it becomes the R-URI, the R-URI goes to the end of the route set.
    h.feed(
        req(
            "BYE sip:bob@10.0.0.9",
            "Route: <sip:127.0.0.1;lr>, <sip:10.0.0.6>\r\n",
            true,
        ),
        src(),
    );
    let out = sent(&h);
    let (to, m) = out.first().expect("relayed");
    assert_eq!(to.to_string(), "10.0.0.6:5060");
    assert!(m.starts_with("BYE sip:10.0.0.6 "), "{m}");
    assert!(m.contains("Route: <sip:bob@10.0.0.9>\r\n"), "{m}");
    assert_eq!(m.matches("Route:").count(), 1, "{m}");
    // Double Record-Route: both of our entries go.
    h.feed(
        req(
            "BYE sip:bob@10.0.0.9",
            "Route: <sip:127.0.0.1;transport=tcp;r2=on;lr>,<sip:127.0.0.1;r2=on;lr>\r\nRoute: <sip:10.0.0.7;lr>\r\n",
            true,
        ),
        src(),
    );
    let out = sent(&h);
    let (to, m) = out.first().expect("relayed");
    assert_eq!(to.to_string(), "10.0.0.7:5060");
    assert!(
        !m.contains("r2=on") && m.contains("Route: <sip:10.0.0.7;lr>\r\n"),
        "{m}"
    );
    // No Route: -1. Preloaded Route to us only: removed, -3.
    h.feed(req("BYE sip:bob@10.0.0.9", "", true), src());
    let out = sent(&h);
    assert!(out[0].1.starts_with("SIP/2.0 404 rc -1"), "{}", out[0].1);
    h.feed(
        req(
            "INVITE sip:bob@10.0.0.9",
            "X-Preloaded: 1\r\nRoute: <sip:127.0.0.1;lr>\r\n",
            false,
        ),
        src(),
    );
    let out = sent(&h);
    assert!(
        out.iter().any(|(_, m)| m.starts_with("SIP/2.0 299 rc -3")),
        "{out:?}"
    );
}

static COMPLETED: std::sync::Mutex<Vec<(u16, String, u64)>> = std::sync::Mutex::new(Vec::new());

/// What acc would see: the final code with the request context restored.
fn on_completed(ctx: &mut runtime::Ctx, r: &runtime::modules::tm::TmReply<'_>) {
    let method = String::from_utf8_lossy(&ctx.msg.method_raw()).into_owned();
    if let Ok(mut v) = COMPLETED.lock() {
        v.push((r.code, method, ctx.flags));
    }
}

#[test]
fn branch_failure_route_sees_the_negative_reply() {
    let mut h = harness_with_hook(Some(on_completed));
    h.feed(req("INVITE sip:bob@10.0.0.2:5070", "", false), src());
    let out = sent(&h);
    let inv = &out
        .iter()
        .find(|(a, _)| a.port() == 5070)
        .expect("relayed")
        .1;
    let via = inv
        .split("\r\n")
        .filter(|l| l.starts_with("Via:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let reply = format!(
        "SIP/2.0 486 Busy Here\r\n{via}\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=x\r\nCall-ID: off-0\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    h.feed(Bytes::from(reply), "10.0.0.2:5070".parse().unwrap());
    let out = sent(&h);
    assert!(
        out.iter()
            .any(|(a, m)| a.port() == 5070 && m.starts_with("ACK ")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|(a, m)| a.port() == 5999 && m.starts_with("SIP/2.0 499 bf 486")),
        "{out:?}"
    );
    // The completion hook ran once, on the INVITE, with the final code sent upstream.
    let done = COMPLETED.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!((done[0].0, done[0].1.as_str()), (499, "INVITE"));
    // A relayed 2xx: the hook runs in the reply's worker with the request restored.
    h.feed(req("MESSAGE sip:bob@10.0.0.2:5070", "", false), src());
    let out = sent(&h);
    let m = &out
        .iter()
        .find(|(a, _)| a.port() == 5070)
        .expect("relayed")
        .1;
    let via = m
        .split("\r\n")
        .filter(|l| l.starts_with("Via:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let reply = format!(
        "SIP/2.0 200 OK\r\n{via}\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=x\r\nCall-ID: off-0\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    );
    h.feed(Bytes::from(reply), "10.0.0.2:5070".parse().unwrap());
    let out = sent(&h);
    assert!(
        out.iter()
            .any(|(a, m)| a.port() == 5999 && m.starts_with("SIP/2.0 200 OK")),
        "{out:?}"
    );
    let done = COMPLETED.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!((done[1].0, done[1].1.as_str()), (200, "MESSAGE"));
}

#[test]
fn timers_retransmit_then_time_out_with_408() {
    let mut h = harness();
    h.feed(req("OPTIONS sip:bob@10.0.0.2:5070", "", false), src());
    let out = sent(&h);
    assert_eq!(out.len(), 1, "{out:?}");
    let t0 = Instant::now();
    // Timer E: retransmissions at T1, 2T1, 4T1 (capped at T2) before fr_timer (1 s).
    for ms in [600u64, 1700] {
        runtime::modules::tm::flow::run_due(&mut h.ctx, t0 + Duration::from_millis(ms));
    }
    let out = sent(&h);
    assert!(
        out.iter()
            .any(|(a, m)| a.port() == 5070 && m.starts_with("OPTIONS")),
        "{out:?}"
    );
    // The fr timer is re-checked against its deadline, so fire late enough.
    std::thread::sleep(Duration::from_millis(1100));
    runtime::modules::tm::flow::run_due(&mut h.ctx, Instant::now());
    let out = sent(&h);
    let r = out
        .iter()
        .find(|(a, _)| a.port() == 5999)
        .expect("local reply upstream");
    assert!(r.1.starts_with("SIP/2.0 408 Request Timeout"), "{}", r.1);
    let stats = h.core.rpc.call(h.core, "tm.stats", &[]).expect("tm.stats");
    assert_eq!(stats["total"], 1, "{stats}");
    assert_eq!(stats["4xx"], 1, "{stats}");
    assert_eq!(stats["current"], 1, "{stats}");
    // The wait timer frees it.
    runtime::modules::tm::flow::run_due(&mut h.ctx, Instant::now() + Duration::from_secs(10));
    let stats = h.core.rpc.call(h.core, "tm.stats", &[]).expect("tm.stats");
    assert_eq!(stats["current"], 0, "{stats}");
}

#[test]
fn garbage_and_unmatched_messages_never_panic() {
    let mut h = harness();
    let base = [
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKtm1.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: g\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        "SIP/2.0 487 X\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKtm99999999999999999999.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: g\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
        "ACK sip:x@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: g\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        "CANCEL sip:x@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: g\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
        "BYE sip:x@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKnone\r\nRoute: <sip:127.0.0.1;lr>,,<>, <sip:\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: g\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
    ];
    // Deterministic mutations: every byte position replaced by a few characters.
    for m in base {
        let b = m.as_bytes();
        for i in 0..b.len() {
            for c in [b'0', b',', b';', b'\n'] {
                let mut v = b.to_vec();
                v[i] = c;
                h.feed(Bytes::from(v), src());
            }
        }
    }
    runtime::modules::tm::flow::run_due(&mut h.ctx, Instant::now() + Duration::from_secs(300));
    let _ = h.take_sent();
    h.feed(req("OPTIONS sip:bob@10.0.0.2:5070", "", false), src());
    let out = sent(&h);
    assert!(
        !out.is_empty(),
        "route={:?} drop={}",
        h.ctx.route,
        h.ctx.drop
    );
}
