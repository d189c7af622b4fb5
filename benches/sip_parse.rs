//! SIP parsing cost per message: the zero-copy scan every received message gets (start line
//! and header index), and the same plus the lazily parsed values a typical request route
//! reads (top Via, From/To tags, CSeq, R-URI, Contact). rsip, the independent parser used as
//! a test oracle, is measured on the same bytes for comparison.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use runtime::sip::SipMsg;
use std::hint::black_box;

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-776asdhds;rport\r\nVia: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-1234;received=192.0.2.21\r\nMax-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\nCall-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@192.0.2.10:5060;transport=udp>\r\nUser-Agent: bench/1.0\r\nAllow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\nContent-Type: application/sdp\r\nContent-Length: 134\r\n\r\nv=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

const REGISTER: &str = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds7;rport\r\nMax-Forwards: 70\r\nTo: <sip:alice@example.com>\r\nFrom: <sip:alice@example.com>;tag=456248\r\nCall-ID: 843817637684230@998sdasdh09\r\nCSeq: 1826 REGISTER\r\nContact: <sip:alice@192.0.2.10:5060>;expires=3600\r\nAuthorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", uri=\"sip:example.com\", response=\"dfe56131d1958046689d83306477ecc\", algorithm=MD5\r\nExpires: 7200\r\nContent-Length: 0\r\n\r\n";

fn route_reads(m: &SipMsg) {
    black_box(m.via1().ok().map(|v| v.branch().is_some()));
    black_box(m.from().ok().and_then(|f| f.tag().cloned()));
    black_box(m.to().ok().and_then(|t| t.tag().cloned()));
    black_box(m.cseq().ok().map(|c| c.number));
    black_box(m.parsed_ruri().ok().map(|u| u.host.len()));
    black_box(m.contacts().ok().flatten().is_some());
}

fn bench(c: &mut Criterion) {
    for (name, text) in [("invite", INVITE), ("register", REGISTER)] {
        let data = Bytes::from_static(text.as_bytes());
        assert!(SipMsg::parse(data.clone()).is_ok());
        c.bench_function(&format!("scan {name}"), |b| {
            b.iter(|| black_box(SipMsg::parse(black_box(data.clone())).is_ok()))
        });
        c.bench_function(&format!("scan + route reads {name}"), |b| {
            b.iter(|| {
                if let Ok(m) = SipMsg::parse(black_box(data.clone())) {
                    route_reads(&m);
                }
            })
        });
        if std::env::var("KSR_BENCH_BREAKDOWN").is_ok() {
            type Read = fn(&SipMsg);
            let reads: [(&str, Read); 6] = [
                ("via1", |m| {
                    black_box(m.via1().ok().map(|v| v.branch().is_some()));
                }),
                ("from", |m| {
                    black_box(m.from().ok().and_then(|f| f.tag().cloned()));
                }),
                ("to", |m| {
                    black_box(m.to().ok().and_then(|t| t.tag().cloned()));
                }),
                ("cseq", |m| {
                    black_box(m.cseq().ok().map(|c| c.number));
                }),
                ("ruri", |m| {
                    black_box(m.parsed_ruri().ok().map(|u| u.host.len()));
                }),
                ("contact", |m| {
                    black_box(m.contacts().ok().flatten().is_some());
                }),
            ];
            for (what, read) in reads {
                c.bench_function(&format!("scan + {what} {name}"), |b| {
                    b.iter(|| {
                        if let Ok(m) = SipMsg::parse(black_box(data.clone())) {
                            read(&m);
                        }
                    })
                });
            }
        }
        c.bench_function(&format!("rsip {name}"), |b| {
            b.iter(|| black_box(rsip::SipMessage::try_from(black_box(text)).is_ok()))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
