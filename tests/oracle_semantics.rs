//! Differential semantics: the same cfg (tests/data/semantics.cfg) on ksr and on Kamailio
//! 5.6; every case must produce the same reply. Kamailio is installed by `.ci/run`; set
//! KSR_SKIP_ORACLE=1 to skip where it is not available.

mod common;
use common::*;

const CASES: &[&str] = &[
    "truth", "arith", "strings", "flow", "pvs", "funcs", "sanity", "siputils", "misc", "htable",
];

type Variant = (&'static str, fn(String) -> String);

/// Variants of the request sent for each case (the `sanity` case gets broken ones).
fn variants(case: &str) -> Vec<Variant> {
    let mut v: Vec<Variant> = vec![("plain", |m| m)];
    if case == "sanity" {
        v.push(("cseq-method", |m| {
            m.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
        }));
        v.push(("cseq-number", |m| {
            m.replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS")
        }));
        v.push(("version", |m| m.replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1)));
        v.push(("proxy-require", |m| {
            m.replace("Max-Forwards", "Proxy-Require: foo\r\nMax-Forwards")
        }));
        v.push(("expires", |m| {
            m.replace("Max-Forwards", "Expires: soon\r\nMax-Forwards")
        }));
        v.push(("two-from", |m| {
            m.replace("Max-Forwards", "From: <sip:x@y>;tag=2\r\nMax-Forwards")
        }));
        v.push(("auth", |m| {
            m.replace(
                "Max-Forwards",
                "Authorization: Digest username=\"\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\"\r\nMax-Forwards",
            )
        }));
    }
    if case == "siputils" {
        v.push(("totag", |m| {
            m.replace("To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=t1")
        }));
        v.push(("two-vias", |m| {
            m.replace(
                "Max-Forwards",
                "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\nMax-Forwards",
            )
        }));
    }
    v
}

fn ask(s: &Server, case: &str, variant: fn(String) -> String) -> String {
    let c = client();
    let extra = "X-Test: first\r\nX-Test: second\r\n";
    let ruri = if case == "siputils" {
        format!("sip:{case}@127.0.0.1:{};transport=udp;foo=bar", s.port)
    } else {
        format!("sip:{case}@127.0.0.1:{}", s.port)
    };
    let m = variant(request(
        "OPTIONS",
        &ruri,
        &c,
        &format!("call-{case}"),
        extra,
    ));
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
        for (name, variant) in variants(case) {
            let want = ask(&k, case, variant);
            let got = ask(&ours, case, variant);
            let want = want.replace(&format!(":{}", k.port), ":PORT");
            let got = got.replace(&format!(":{}", ours.port), ":PORT");
            if want != got {
                diffs.push(format!(
                    "{case}/{name}:\n  kamailio: {want}\n  ksr:      {got}"
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}
