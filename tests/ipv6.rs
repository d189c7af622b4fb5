//! IPv6: replies and stateless forwarding over `[::1]` (UDP and TCP), on ksr and on
//! Kamailio 5.6 with the same cfg (tests/data/ipv6.cfg); the messages must match apart from
//! ports, tags and branch values.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

/// Replaces the values that differ between runs and servers.
fn normalize(m: &str, ports: &[(u16, &str)]) -> String {
    let mut out = Vec::new();
    for line in m.split("\r\n") {
        let mut l = line.to_string();
        for (p, name) in ports {
            l = l.replace(&p.to_string(), name);
        }
        if l.starts_with("To:") {
            if let Some(i) = l.find(";tag=") {
                l.truncate(i + 5);
                l.push_str("TAG");
            }
        } else if l.starts_with("Server:") {
            l = "Server: S".into();
        } else if l.starts_with("Via:")
            && l.contains("SPORT;branch=")
            && let Some(i) = l.find("branch=")
        {
            l.truncate(i + 7);
            l.push_str("BRANCH");
        }
        out.push(l);
    }
    out.join("\r\n")
}

fn observe(kamailio: bool) -> Vec<String> {
    let cfg = root().join("tests/data/ipv6.cfg");
    let s = if kamailio {
        start_kamailio(&cfg, &[])
    } else {
        start_ksr(&cfg, &[])
    };
    let c = UdpSocket::bind("[::1]:0").expect("IPv6 loopback");
    c.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let cport = c.local_addr().expect("addr").port();
    let up = UdpSocket::bind("[::1]:0").expect("IPv6 loopback");
    up.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let uport = up.local_addr().expect("addr").port();
    let ports = [(s.port, "SPORT"), (cport, "CPORT"), (uport, "UPORT")];
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];

    let m = format!(
        "OPTIONS sip:x@[::1]:{} SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:{cport};branch=z9hG4bKx;rport\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: v6-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        s.port
    );
    c.send_to(m.as_bytes(), ("::1", s.port)).expect("send");
    let n = c.recv(&mut buf).expect("reply over IPv6 UDP");
    seen.push(normalize(&String::from_utf8_lossy(&buf[..n]), &ports));

    let m = format!(
        "MESSAGE sip:x@[::1]:{uport} SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:{cport};branch=z9hG4bKy\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: v6-2\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 10\r\nContent-Length: 0\r\n\r\n"
    );
    c.send_to(m.as_bytes(), ("::1", s.port)).expect("send");
    let n = up.recv(&mut buf).expect("request forwarded over IPv6");
    seen.push(normalize(&String::from_utf8_lossy(&buf[..n]), &ports));

    let mut t = TcpStream::connect(("::1", s.port)).expect("IPv6 TCP");
    t.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let tport = t.local_addr().expect("addr").port();
    let m = format!(
        "OPTIONS sip:x@[::1]:{} SIP/2.0\r\nVia: SIP/2.0/TCP [::1]:{tport};branch=z9hG4bKz\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: v6-3\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        s.port
    );
    t.write_all(m.as_bytes()).expect("send");
    let n = t.read(&mut buf).expect("reply over IPv6 TCP");
    let ports = [(s.port, "SPORT"), (tport, "CPORT")];
    seen.push(normalize(&String::from_utf8_lossy(&buf[..n]), &ports));
    seen
}

#[test]
fn ipv6_udp_and_tcp_like_kamailio() {
    let ksr = observe(false);
    assert!(ksr[0].starts_with("SIP/2.0 200 OK"), "{}", ksr[0]);
    assert!(
        ksr[0].contains("X-Src: ::1 CPORT ::1 SPORT udp"),
        "{}",
        ksr[0]
    );
    assert!(
        ksr[1].contains("Via: SIP/2.0/UDP [::1]:SPORT;branch=BRANCH"),
        "{}",
        ksr[1]
    );
    assert!(
        ksr[2].contains("X-Src: ::1 CPORT ::1 SPORT tcp"),
        "{}",
        ksr[2]
    );
    if kamailio_available() {
        assert_eq!(ksr, observe(true));
    }
}
