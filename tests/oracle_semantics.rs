//! Differential semantics: the same cfg (tests/data/semantics.cfg) on ksr and on Kamailio
//! 5.6; every case must produce the same reply. Kamailio is installed by `.ci/run`; set
//! KSR_SKIP_ORACLE=1 to skip where it is not available.

mod common;
use common::*;

const CASES: &[&str] = &["truth", "arith", "strings", "flow", "pvs", "funcs"];

fn ask(s: &Server, case: &str) -> String {
    let c = client();
    let extra = "X-Test: first\r\nX-Test: second\r\n";
    let m = request(
        "OPTIONS",
        &format!("sip:{case}@127.0.0.1:{}", s.port),
        &c,
        &format!("call-{case}"),
        extra,
    );
    exchange(s, &c, &m)
        .map(|r| status_line(&r).to_string())
        .unwrap_or_else(|| "<no reply>".into())
}

#[test]
fn native_semantics_match_kamailio() {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (run .ci/run, or set KSR_SKIP_ORACLE=1)"
        );
        return;
    }
    let cfg = root().join("tests/data/semantics.cfg");
    let k = start_kamailio(&cfg, &[]);
    let ours = start_ksr(&cfg, &[]);
    let mut diffs = Vec::new();
    for case in CASES {
        let want = ask(&k, case);
        let got = ask(&ours, case);
        let want = want.replace(&format!(":{}", k.port), ":PORT");
        let got = got.replace(&format!(":{}", ours.port), ":PORT");
        if want != got {
            diffs.push(format!("{case}:\n  kamailio: {want}\n  ksr:      {got}"));
        }
    }
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}
