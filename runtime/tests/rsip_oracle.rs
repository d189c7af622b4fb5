//! rsip (an independent SIP parser) as an oracle: for every valid message it can parse —
//! the RFC 4475 messages ksr accepts and the bench corpus — our zero-copy parser must find
//! the same kind, method/status, Call-ID and CSeq. rsip is only a test dependency: it misses
//! compact headers and rejects several valid messages (see ../shared/notes/crate-eval.md), so
//! messages it cannot parse are skipped, and the test requires that most are compared.

use bytes::Bytes;
use rsip::prelude::*;
use runtime::sip::SipMsg;
use std::path::Path;

fn messages() -> Vec<(String, Bytes)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("tests/data/torture"),
        root.join("../benches/corpus"),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "sip")
                && let Ok(b) = std::fs::read(&p)
            {
                let text = String::from_utf8_lossy(&b).replace("{port}", "5060");
                out.push((p.display().to_string(), Bytes::from(text.into_bytes())));
            }
        }
    }
    out
}

#[test]
fn our_parse_agrees_with_rsip() {
    let mut compared = 0;
    let mut ours_ok = 0;
    for (name, buf) in messages() {
        let Ok(ours) = SipMsg::parse(buf.clone()) else {
            continue;
        };
        if ours.validate().is_err() {
            continue;
        }
        ours_ok += 1;
        let Ok(theirs) = rsip::SipMessage::try_from(&buf[..]) else {
            continue;
        };
        compared += 1;
        match theirs {
            rsip::SipMessage::Request(r) => {
                assert!(ours.is_request(), "{name}");
                assert_eq!(
                    r.method.to_string().as_bytes(),
                    &ours.method_raw()[..],
                    "{name}: method"
                );
                if let Ok(c) = r.call_id_header() {
                    assert_eq!(
                        c.value().trim().as_bytes(),
                        &ours.callid().cloned().unwrap_or_default()[..],
                        "{name}: Call-ID"
                    );
                }
                if let Ok(seq) = r.cseq_header().and_then(|c| c.typed()) {
                    assert_eq!(
                        seq.seq,
                        ours.cseq().map(|c| c.number).unwrap_or(u32::MAX),
                        "{name}: CSeq"
                    );
                }
            }
            rsip::SipMessage::Response(r) => {
                assert!(ours.is_reply(), "{name}");
                assert_eq!(
                    Some(u16::from(r.status_code.clone())),
                    ours.status(),
                    "{name}: status"
                );
                if let Ok(c) = r.call_id_header() {
                    assert_eq!(
                        c.value().trim().as_bytes(),
                        &ours.callid().cloned().unwrap_or_default()[..],
                        "{name}: Call-ID"
                    );
                }
            }
        }
    }
    eprintln!("rsip compared {compared} of {ours_ok} valid messages");
    assert!(ours_ok >= 20, "only {ours_ok} valid messages");
    assert!(compared >= 10, "rsip compared only {compared} of {ours_ok}");
}
