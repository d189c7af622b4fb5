//! RFC 4475 torture messages: valid ones parse with the right values, invalid ones are
//! rejected (at parse time or by the full header validation a proxy runs before relaying —
//! the sanity checks that answer 400), none panics.

use bytes::Bytes;
use runtime::sip::{Contacts, HdrKind, Method, SipMsg};
use std::path::Path;

fn load(name: &str) -> Bytes {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/torture")
        .join(name);
    Bytes::from(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// What a proxy does with a case.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Parses and passes validation.
    Accept,
    /// Fails to parse or fails validation (dropped or answered 400/505).
    Reject,
}

fn verdict(buf: Bytes) -> Verdict {
    match SipMsg::parse(buf) {
        Err(_) => Verdict::Reject,
        Ok(m) => match m.validate() {
            Ok(()) => Verdict::Accept,
            Err(_) => Verdict::Reject,
        },
    }
}

fn cases() -> Vec<(String, String)> {
    let tsv = String::from_utf8(load("cases.tsv").to_vec()).unwrap();
    tsv.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let file = f.next().unwrap().to_string();
            let category = f.nth(2).unwrap().to_string();
            (file, category)
        })
        .collect()
}

#[test]
fn every_case_has_the_expected_verdict() {
    let all = cases();
    assert_eq!(all.len(), 49);
    // "may reject" cases where RFC 4475 lets a liberal element accept: we accept.
    let liberal = [
        "3.1.2.9_lwsstart.sip",
        "3.1.2.10_trws.sip",
        "3.1.2.11_escruri.sip",
        "3.1.2.12_baddate.sip",
        "3.2.1_badbranch.sip",
        "3.3.3_novelsc.sip",
        "3.3.2_unkscm.sip",
        "3.3.4_unksm2.sip",
        "3.3.13_cparam02.sip",
    ];
    // Application-level rejections that need routing logic (416, 420, 415, 483 ...), not
    // the parser: they must parse.
    for (file, category) in &all {
        let v = verdict(load(file));
        let expected = match category.as_str() {
            "valid" | "backward-compat" => Verdict::Accept,
            "invalid" if liberal.contains(&file.as_str()) => Verdict::Accept,
            "invalid" => Verdict::Reject,
            "transaction" => Verdict::Accept,
            "application" => match file.as_str() {
                // Missing To/From/Call-ID; duplicate singleton headers; conflicting
                // Content-Length: rejected before routing.
                "3.3.1_insuf.sip" | "3.3.8_multi01.sip" | "3.3.9_mcl01.sip" => Verdict::Reject,
                _ => Verdict::Accept,
            },
            other => panic!("unknown category {other}"),
        };
        assert_eq!(v, expected, "{file} ({category})");
    }
}

#[test]
fn valid_messages_carry_the_right_values() {
    let m = SipMsg::parse(load("3.1.1.1_wsinv.sip")).unwrap();
    assert_eq!(m.method(), Method::Invite);
    assert_eq!(m.parsed_ruri().unwrap().host, "chair-dnrc.example.com");
    assert_eq!(m.to().unwrap().tag().unwrap(), "1918181833n");
    assert_eq!(m.from().unwrap().tag().unwrap(), "98asjd8");
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.cseq().unwrap().number, 9);
    assert_eq!(m.cseq().unwrap().method, "INVITE");
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host, "192.0.2.2");
    assert_eq!(vias[0].branch().unwrap(), "390skdjuw");
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[2].branch().unwrap(), "z9hG4bK30239");
    assert_eq!(m.body().len(), 150);
    match m.contacts().unwrap() {
        Some(Contacts::List(l)) => {
            assert_eq!(l.len(), 1);
            assert_eq!(
                l[0].param(b"q").unwrap().value.as_deref(),
                Some(&b"0.33"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(m.routes().unwrap()[0].uri.is_loose());

    let m = SipMsg::parse(load("3.1.1.2_intmeth.sip")).unwrap();
    assert_eq!(m.method(), Method::Other);
    assert_eq!(
        m.method_raw(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert_eq!(m.parsed_ruri().unwrap().host, "example.com");
    assert_eq!(m.max_forwards().unwrap(), Some(255));

    let m = SipMsg::parse(load("3.1.1.4_escnull.sip")).unwrap();
    match m.contacts().unwrap() {
        Some(Contacts::List(l)) => assert_eq!(l.len(), 2),
        other => panic!("{other:?}"),
    }

    let m = SipMsg::parse(load("3.1.1.5_esc02.sip")).unwrap();
    assert_eq!(m.method_raw(), "RE%47IST%45R");
    match m.contacts().unwrap() {
        Some(Contacts::List(l)) => assert_eq!(l.len(), 2, "C%6Fntact is another header"),
        other => panic!("{other:?}"),
    }

    let m = SipMsg::parse(load("3.1.1.6_lwsdisp.sip")).unwrap();
    assert_eq!(m.from().unwrap().display, "caller");

    let m = SipMsg::parse(load("3.1.1.7_longreq.sip")).unwrap();
    assert_eq!(m.vias().unwrap().len(), 34);

    let m = SipMsg::parse(load("3.1.1.8_dblreq.sip")).unwrap();
    assert_eq!(m.method(), Method::Register);
    assert!(m.body().is_empty(), "trailing INVITE ignored");

    let m = SipMsg::parse(load("3.1.1.9_semiuri.sip")).unwrap();
    let u = m.parsed_ruri().unwrap();
    assert_eq!(u.user, "user;par=u%40example.net");
    assert_eq!(u.host, "example.com");

    let m = SipMsg::parse(load("3.1.1.10_transports.sip")).unwrap();
    let t: Vec<&[u8]> = m.vias().unwrap().iter().map(|v| &v.transport[..]).collect();
    assert_eq!(t, vec![&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]);

    let m = SipMsg::parse(load("3.1.1.11_mpart01.sip")).unwrap();
    assert_eq!(Some(m.body().len()), m.content_length());

    let m = SipMsg::parse(load("3.1.1.12_unreason.sip")).unwrap();
    assert_eq!(m.status(), Some(200));
    assert!(std::str::from_utf8(m.reason().unwrap()).is_ok());

    let m = SipMsg::parse(load("3.1.1.13_noreason.sip")).unwrap();
    assert_eq!(m.reason().unwrap(), "");

    let m = SipMsg::parse(load("3.3.11_zeromf.sip")).unwrap();
    assert_eq!(m.max_forwards().unwrap(), Some(0));

    let m = SipMsg::parse(load("3.3.12_cparam01.sip")).unwrap();
    match m.contacts().unwrap() {
        Some(Contacts::List(l)) => {
            assert!(l[0].param(b"unknownparam").is_some(), "contact param");
            assert!(l[0].uri.params.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let m = SipMsg::parse(load("3.3.13_cparam02.sip")).unwrap();
    match m.contacts().unwrap() {
        Some(Contacts::List(l)) => assert!(l[0].uri.param(b"unknownparam").is_some(), "uri param"),
        other => panic!("{other:?}"),
    }
    let m = SipMsg::parse(load("3.4.1_inv2543.sip")).unwrap();
    assert!(m.via1().unwrap().branch().is_none());
    assert!(m.header(HdrKind::MaxForwards).is_none());
}

#[test]
fn mutated_messages_never_panic() {
    // Seeded xorshift mutations of every torture message, bounded.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (file, _) in cases() {
        let base = load(&file);
        for _ in 0..300 {
            let mut b = base.to_vec();
            let n = (next() % 8) as usize + 1;
            for _ in 0..n {
                if b.is_empty() {
                    break;
                }
                let i = (next() as usize) % b.len();
                match next() % 4 {
                    0 => b[i] = next() as u8,
                    1 => {
                        b.remove(i);
                    }
                    2 => b.insert(i, b"\r\n;:,<>\"@ "[(next() % 10) as usize]),
                    _ => b.truncate(i),
                }
            }
            if let Ok(m) = SipMsg::parse(Bytes::from(b)) {
                let _ = m.validate();
                let _ = m.vias();
                let _ = m.contacts();
                let _ = m.parsed_ruri();
                let _ = m.credentials(HdrKind::Authorization);
                let _ = m.serialize(&[]);
            }
        }
    }
}
