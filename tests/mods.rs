//! Differential test of the everyday modules (siputils, textops, kex): the same cfg
//! (tests/data/mods.cfg) on ksr and on Kamailio 5.6 must give the same replies. Set
//! KSR_SKIP_ORACLE=1 to skip where Kamailio is not installed.

mod common;
use common::*;

const CASES: &[&str] = &["su", "tx", "kx", "cu"];

fn ask(s: &Server, case: &str) -> String {
    let c = client();
    let extra = "Supported: 100rel, Timer\r\nX-Test: first\r\nX-Test: second\r\n";
    let ruri = format!("sip:{case}@127.0.0.1:{};transport=udp;foo=bar", s.port);
    let m = request("OPTIONS", &ruri, &c, &format!("call-{case}"), extra);
    exchange(s, &c, &m)
        .map(|r| status_line(&r).replace(&format!(":{}", s.port), ":PORT"))
        .unwrap_or_else(|| "<no reply>".into())
}

/// `options_reply` for an OPTIONS without R-URI user: status line and its headers.
fn ask_options(s: &Server) -> String {
    let c = client();
    let ruri = format!("sip:127.0.0.1:{}", s.port);
    let m = request("OPTIONS", &ruri, &c, "call-opt", "");
    let Some(r) = exchange(s, &c, &m) else {
        return "<no reply>".into();
    };
    let mut out = status_line(&r).to_string();
    for h in ["Accept", "Accept-Encoding", "Accept-Language", "Supported"] {
        out.push_str(&format!(" | {h}: {:?}", header(&r, h)));
    }
    out
}

#[test]
fn everyday_module_functions_match_kamailio() {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (set KSR_SKIP_ORACLE=1 to skip)"
        );
        return;
    }
    let cfg = root().join("tests/data/mods.cfg");
    let k = start_kamailio(&cfg, &[]);
    let ours = start_ksr(&cfg, &[]);
    let mut diffs = Vec::new();
    for case in CASES {
        let (want, got) = (ask(&k, case), ask(&ours, case));
        eprintln!("{case}: {got}");
        if want != got {
            diffs.push(format!("{case}:\n  kamailio: {want}\n  ksr:      {got}"));
        }
    }
    let (want, got) = (ask_options(&k), ask_options(&ours));
    eprintln!("options: {got}");
    if want != got {
        diffs.push(format!("options:\n  kamailio: {want}\n  ksr:      {got}"));
    }
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}
