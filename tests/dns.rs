//! DNS SRV for next hops: a request for `sip:carol@srv.test` is forwarded to the target
//! and port of `_sip._udp.srv.test` (served by a fake DNS server on 127.0.0.1), while a URI
//! with an explicit port is not looked up in SRV.

mod common;
use common::*;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers SRV queries for `_sip._udp.srv.test` with `target:port`, NXDOMAIN otherwise;
/// records every name asked.
fn fake_dns(port: u16, asked: Arc<Mutex<Vec<String>>>) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let srv = sock.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        // Bounded: the test finishes well within this.
        for _ in 0..300 {
            let Ok((n, from)) = srv.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            if q.len() < 17 {
                continue;
            }
            // Question name.
            let mut pos = 12;
            let mut labels = Vec::new();
            while pos < q.len() && q[pos] != 0 {
                let len = q[pos] as usize;
                labels.push(String::from_utf8_lossy(&q[pos + 1..pos + 1 + len]).into_owned());
                pos += 1 + len;
            }
            let qname = labels.join(".");
            asked.lock().unwrap().push(qname.clone());
            let question = &q[12..pos + 5];
            let mut r = vec![q[0], q[1]];
            if qname == "_sip._udp.srv.test" {
                r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
                r.extend_from_slice(question);
                let mut rdata = vec![0, 10, 0, 5];
                rdata.extend_from_slice(&port.to_be_bytes());
                rdata.extend_from_slice(b"\x09localhost\x00");
                r.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 30]);
                r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                r.extend_from_slice(&rdata);
            } else {
                r.extend_from_slice(&[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
                r.extend_from_slice(question);
            }
            let _ = srv.send_to(&r, from);
        }
    });
    sock
}

#[test]
fn srv_records_pick_the_next_hop() {
    let up = client();
    let up_port = up.local_addr().expect("addr").port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let dns = fake_dns(up_port, Arc::clone(&asked));
    let dns_addr = dns.local_addr().expect("addr").to_string();
    let s = start_ksr_env(
        &root().join("examples/kamailio.cfg"),
        &[],
        &[("KSR_DNS_SERVER", dns_addr.as_str())],
    );
    let c = client();
    let m = request("MESSAGE", "sip:carol@srv.test", &c, "dns-1", "");
    c.send_to(m.as_bytes(), ("127.0.0.1", s.port))
        .expect("send");
    let fwd = recv(&up, 3000).expect("forwarded to the SRV target");
    assert!(
        fwd.starts_with("MESSAGE sip:carol@srv.test SIP/2.0"),
        "{fwd}"
    );
    assert!(
        asked
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == "_sip._udp.srv.test"),
        "SRV was not asked"
    );
    // An explicit port: A/AAAA only (here: an IP), no SRV query.
    asked.lock().unwrap().clear();
    let m = request(
        "MESSAGE",
        &format!("sip:carol@127.0.0.1:{up_port}"),
        &c,
        "dns-2",
        "",
    );
    c.send_to(m.as_bytes(), ("127.0.0.1", s.port))
        .expect("send");
    assert!(recv(&up, 3000).is_some());
    assert!(asked.lock().unwrap().is_empty());
}
