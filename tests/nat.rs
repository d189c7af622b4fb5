//! nathelper, rtpproxy, permissions and textopsx end to end: the same requests go through
//! `ksr run` and Kamailio 5.6 on `tests/data/nat.cfg` (same client and next-hop sockets, a
//! fake RTP proxy answering the control protocol, the same SQLite address table) and the
//! headers and bodies they change must be byte-identical.

mod common;
use common::*;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake rtpproxy: answers V/VF/U/L/D over UDP and records each command (without cookie).
struct FakeRtpproxy {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRtpproxy {
    fn start() -> FakeRtpproxy {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind fake rtpproxy");
        let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (st, sn) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let Some((cookie, cmd)) = text.split_once(' ') else {
                    continue;
                };
                let answer = match cmd.chars().next() {
                    Some('V') if cmd.starts_with("VF") => "1".to_string(),
                    Some('V') => "20040107".to_string(),
                    Some('U') => "35000 127.0.0.9".to_string(),
                    Some('L') => "36000 ::9 6".to_string(),
                    Some('D') => "0".to_string(),
                    Some('Q') => "ttl=30 packets=12".to_string(),
                    _ => "E1".to_string(),
                };
                if !cmd.starts_with('V') {
                    sn.lock()
                        .unwrap()
                        .push(cmd.trim_end_matches('\n').to_string());
                }
                let _ = sock.send_to(format!("{cookie} {answer}\n").as_bytes(), from);
            }
        });
        FakeRtpproxy {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for FakeRtpproxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const SDP: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtcp:49171\r\na=rtpmap:0 PCMU/8000\r\n";

struct Peer {
    client: UdpSocket,
    up: UdpSocket,
}

impl Peer {
    fn cport(&self) -> u16 {
        self.client.local_addr().map(|a| a.port()).unwrap_or(0)
    }
    fn uport(&self) -> u16 {
        self.up.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// A request from the client socket with the given Via host, Contact and body.
fn req(
    p: &Peer,
    method: &str,
    ruri: &str,
    via: &str,
    contact: &str,
    extra: &str,
    body: &str,
) -> String {
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    let contact = if contact.is_empty() {
        String::new()
    } else {
        format!("Contact: {contact}\r\n")
    };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-{}-{method};rport\r\nFrom: <sip:alice@example.com>;tag=ft1\r\nTo: <sip:bob@example.com>{}\r\nCall-ID: nat-call-1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{contact}{extra}{ctype}Content-Length: {}\r\n\r\n{body}",
        p.cport(),
        if method == "BYE" || method == "ACK" {
            ";tag=tt1"
        } else {
            ""
        },
        body.len()
    )
}

/// Lines a test compares: the start line, Contact, X- headers, Content-Length and the body.
fn relevant(m: &str) -> String {
    let (head, body) = m.split_once("\r\n\r\n").unwrap_or((m, ""));
    let mut out: Vec<&str> = Vec::new();
    for (i, l) in head.split("\r\n").enumerate() {
        let lower = l.to_ascii_lowercase();
        if i == 0
            || lower.starts_with("contact:")
            || lower.starts_with("x-")
            || lower.starts_with("content-length:")
            || lower.starts_with("content-type:")
            || lower.starts_with("p-")
            || lower.starts_with("subject:")
            || lower.starts_with("supported:")
            || lower.starts_with("allow:")
        {
            out.push(l);
        }
    }
    format!("{}\r\n\r\n{body}", out.join("\r\n"))
}

fn send(s: &Server, p: &Peer, m: &str) {
    let _ = p.client.send_to(m.as_bytes(), ("127.0.0.1", s.port));
}

/// Runs every scenario against one server; returns one text per scenario.
fn scenarios(s: &Server, p: &Peer, rtpp: &FakeRtpproxy) -> Vec<(String, String)> {
    let (c, u) = (p.cport(), p.uport());
    let mut out = Vec::new();
    let mut reply = |name: &str, m: String| {
        send(s, p, &m);
        let got = recv(&p.client, 2000).unwrap_or_else(|| "<no reply>".into());
        out.push((name.to_string(), relevant(&got)));
    };
    reply(
        "natinfo-nat",
        req(
            p,
            "INVITE",
            "sip:natinfo@x",
            "10.0.0.5:5070",
            "<sip:alice@192.168.1.10:5070>",
            "",
            SDP,
        ),
    );
    reply(
        "natinfo-clean",
        req(
            p,
            "OPTIONS",
            "sip:natinfo@x",
            &format!("127.0.0.1:{c}"),
            &format!("<sip:alice@127.0.0.1:{c}>"),
            "",
            "",
        ),
    );
    reply(
        "natinfo-noport",
        req(
            p,
            "OPTIONS",
            "sip:natinfo@x",
            "127.0.0.1",
            "sip:alice@127.0.0.1",
            "",
            "",
        ),
    );
    reply(
        "perm",
        req(p, "OPTIONS", "sip:perm@x", "127.0.0.1", "", "", ""),
    );
    reply(
        "natdest",
        req(
            p,
            "OPTIONS",
            "sip:natdest@10.9.9.9",
            "127.0.0.1",
            "",
            "",
            "",
        ),
    );
    reply(
        "natdest-ws",
        req(
            p,
            "OPTIONS",
            "sip:natdest@10.9.9.9;transport=ws",
            "127.0.0.1",
            "",
            "",
            "",
        ),
    );
    reply(
        "fnm",
        req(p, "OPTIONS", "sip:fnm@x", "127.0.0.1", "", "", ""),
    );
    reply(
        "trust",
        req(p, "OPTIONS", "sip:trust@x", "127.0.0.1", "", "", ""),
    );
    for user in ["route1", "route2", "route2x", "route3", "routex"] {
        reply(
            &format!("routing-{user}"),
            req(
                p,
                "OPTIONS",
                &format!("sip:{user}@x"),
                "127.0.0.1",
                "",
                "",
                "",
            ),
        );
    }
    for contact in [
        "<sip:alice@192.168.1.10:5070>",
        "<sip:evil@h>",
        "<sip:good@h>",
        "<sip:x@h>, <sip:evil@h>",
        "*",
        "",
    ] {
        reply(
            &format!("register-{contact}"),
            req(p, "REGISTER", "sip:route9@x", "127.0.0.1", contact, "", "")
                .replace("To: <sip:bob@example.com>", "To: <sip:bob@example.com>;x=1"),
        );
    }
    let mut fwd_out = Vec::new();
    let mut fwd = |name: &str, m: String| {
        send(s, p, &m);
        let got = recv(&p.up, 2000).unwrap_or_else(|| "<not forwarded>".into());
        fwd_out.push((name.to_string(), relevant(&got)));
    };
    let nat_contact =
        "\"Alice\" <sip:alice@192.168.1.10:5070;transport=udp;maddr=10.0.0.1;ob>;expires=60";
    for name in [
        "fixc",
        "alias",
        "addalias",
        "addalias3",
        "rcv",
        "rcvuri",
        "reg",
    ] {
        fwd(
            name,
            req(
                p,
                "REGISTER",
                &format!("sip:{name}@127.0.0.1:{u}"),
                "10.0.0.5:5070",
                nat_contact,
                "",
                "",
            ),
        );
    }
    fwd(
        "alias-noangle",
        req(
            p,
            "MESSAGE",
            &format!("sip:alias@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "sip:alice@192.168.1.10:5070;expires=30",
            "",
            "",
        ),
    );
    fwd(
        "addalias-noangle",
        req(
            p,
            "MESSAGE",
            &format!("sip:addalias@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "sip:alice@192.168.1.10",
            "",
            "",
        ),
    );
    fwd(
        "addalias-same",
        req(
            p,
            "MESSAGE",
            &format!("sip:addalias@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            &format!("<sip:alice@127.0.0.1:{c};transport=udp>"),
            "",
            "",
        ),
    );
    fwd(
        "sdp",
        req(
            p,
            "INVITE",
            &format!("sip:sdp@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            nat_contact,
            "",
            SDP,
        ),
    );
    fwd(
        "sdpip",
        req(
            p,
            "INVITE",
            &format!("sip:sdpip@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            nat_contact,
            "",
            SDP,
        ),
    );
    fwd(
        "ruri",
        req(
            p,
            "MESSAGE",
            &format!("sip:ruri@10.9.9.9;x=1;alias=127.0.0.1~{u}~1;y=2"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    fwd(
        "tx",
        req(
            p,
            "MESSAGE",
            &format!("sip:tx@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            nat_contact,
            "X-Keep-Me: 1\r\nX-Drop: 2\r\nSubject: hi\r\nP-Asserted-Identity: <sip:a@b>\r\n",
            SDP,
        ),
    );
    for name in ["hfv", "hfv2"] {
        fwd(
            name,
            req(
                p,
                "MESSAGE",
                &format!("sip:{name}@127.0.0.1:{u}"),
                "10.0.0.5:5070",
                "",
                "Supported: 100rel, timer\r\nAllow: INVITE, INFO,BYE\r\nX-One: solo\r\nX-B: b0, bx\r\nX-B: by\r\nX-C: c0\r\nX-D: d0 , d1\r\n",
                "",
            ),
        );
    }
    for name in ["hfv3", "hfv4"] {
        fwd(
            name,
            req(
                p,
                "MESSAGE",
                &format!("sip:{name}@127.0.0.1:{u}"),
                "10.0.0.5:5070",
                "",
                "Allow: INVITE, INFO\r\nX-One: solo\r\nX-B: b0, bx\r\nX-B: by\r\nX-C: c0, c1\r\nX-D: d0 , d1\r\n\
                 X-P: <sip:p1@h;lr>;lr, <sip:p2@h>;x=1;lr;y\r\nX-Q: \"Q, q\" <sip:q@h;bar=1>;bar=2;foo, <sip:q2@h>;bar = \"a b\"\r\n\
                 X-R: a;t=1, b\r\nX-R: c;u\r\nX-Auth: Digest username=\"bob\", realm=\"ex.com\", nonce=\"n1\", uri=\"sip:x\"\r\n\
                 X-Auth2: Digest nonce=\"abc\",realm=r\r\nX-Whole: w1, w0\r\n",
                "",
            ),
        );
    }
    for (i, contact) in [
        "<sip:a@10.0.0.1:5060;alias=192.0.2.1~5070~2>",
        "<sip:a@10.0.0.1;alias=192.0.2.1~5070~6;x=y>;expires=3",
        "<sip:a@10.0.0.1;alias=192.0.2.1~5070>",
        "<sip:a@10.0.0.1>",
    ]
    .iter()
    .enumerate()
    {
        fwd(
            &format!("aliaspv-{i}"),
            req(
                p,
                "MESSAGE",
                &format!("sip:aliaspv@127.0.0.1:{u}"),
                "10.0.0.5:5070",
                contact,
                "Record-Route: <sip:p1;lr;r2=on>, <sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>\r\n",
                "",
            ),
        );
    }
    fwd(
        "handle-ruri-wss",
        req(
            p,
            "MESSAGE",
            &format!("sip:ruri@10.9.9.9;alias=127.0.0.1~{u}~6"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    fwd(
        "handle-ruri-v6",
        req(
            p,
            "MESSAGE",
            &format!("sip:ruri@10.9.9.9;alias=::1~{u}~1;z"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    fwd(
        "iter",
        req(
            p,
            "MESSAGE",
            &format!("sip:iter@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            "X-Keep-Me: 1\r\nX-Drop: 2\r\n",
            SDP,
        ),
    );
    fwd(
        "setbuf",
        req(
            p,
            "MESSAGE",
            &format!("sip:setbuf@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            &format!("X-Up: {u}\r\n"),
            "",
        ),
    );
    fwd(
        "apply",
        req(
            p,
            "MESSAGE",
            &format!("sip:apply@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    let _ = rtpp.take();
    fwd(
        "rtp-offer",
        req(
            p,
            "INVITE",
            &format!("sip:rtp@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            nat_contact,
            "",
            SDP,
        ),
    );
    fwd(
        "rtp-offer-r",
        req(
            p,
            "INVITE",
            &format!("sip:rtpoffer@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            nat_contact,
            "",
            SDP,
        ),
    );
    fwd(
        "rtp-rec-notag",
        req(
            p,
            "MESSAGE",
            &format!("sip:rtprec@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    fwd(
        "rtp-rec",
        req(
            p,
            "BYE",
            &format!("sip:rtprec@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    fwd(
        "rtp-answer-v6",
        req(
            p,
            "ACK",
            &format!("sip:rtpans@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            "",
            SDP,
        ),
    );
    fwd(
        "rtpstat",
        req(
            p,
            "BYE",
            &format!("sip:rtpstat@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    fwd(
        "rtp-bye",
        req(
            p,
            "BYE",
            &format!("sip:rtp@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    fwd(
        "rtp-del",
        req(
            p,
            "BYE",
            &format!("sip:rtpdel@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    out.extend(fwd_out);
    for (i, (ruri, mode)) in [
        ("sip:ruri2@10.9.9.9;alias=127.0.0.1~5090~6", "0"),
        ("sip:ruri2@10.9.9.9;alias=::1~5090~1;z", "0"),
        ("sip:ruri2@10.9.9.9;alias=[::1]~5090~2", "0"),
        ("sip:ruri2@h;alias=1.1.1.1~1~1;alias=2.2.2.2~2~3;q", "1"),
        ("sip:ruri2@h;alias=1.1.1.1~1~1;alias=2.2.2.2~2~3;q", "0"),
        ("sip:ruri2@h;alias=1.1.1.1~1~9", "0"),
        ("sip:ruri2@h;alias=1.1.1.1~1", "0"),
        ("sip:ruri2@h;alias=1.1.1.1~1~1x", "0"),
        ("sip:ruri2@h;alias=1.1.1.1", "0"),
        ("sip:ruri2@h;xalias=1.1.1.1~1~1", "0"),
        ("sip:ruri2@h", "0"),
    ]
    .iter()
    .enumerate()
    {
        send(
            s,
            p,
            &req(
                p,
                "OPTIONS",
                ruri,
                "10.0.0.5:5070",
                "",
                &format!("X-Mode: {mode}\r\n"),
                "",
            ),
        );
        let got = recv(&p.client, 2000).unwrap_or_else(|| "<no reply>".into());
        out.push((format!("ruri2-{i}"), relevant(&got)));
    }
    out.push(("rtpproxy commands".into(), rtpp.take().join("\n")));
    // A 486 from the next hop comes back as 480 "Gone Away" (onreply_route).
    send(
        s,
        p,
        &req(
            p,
            "INVITE",
            &format!("sip:busy@127.0.0.1:{u}"),
            "10.0.0.5:5070",
            nat_contact,
            "",
            "",
        ),
    );
    let mut buf = [0u8; 65535];
    let _ = p.up.set_read_timeout(Some(Duration::from_millis(2000)));
    let status = match p.up.recv_from(&mut buf) {
        Ok((n, from)) => {
            let r = String::from_utf8_lossy(&buf[..n]).to_string();
            let vias: Vec<&str> = r.split("\r\n").filter(|l| l.starts_with("Via:")).collect();
            let keep: Vec<&str> = r
                .split("\r\n")
                .filter(|l| {
                    l.starts_with("From:")
                        || l.starts_with("To:")
                        || l.starts_with("Call-ID:")
                        || l.starts_with("CSeq:")
                })
                .collect();
            let reply = format!(
                "SIP/2.0 486 Busy Here\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
                vias.join("\r\n"),
                keep.join("\r\n")
            );
            let _ = p.up.send_to(reply.as_bytes(), from);
            recv(&p.client, 2000)
                .map(|m| status_line(&m).to_string())
                .unwrap_or_else(|| "<no reply>".into())
        }
        Err(_) => "<not forwarded>".into(),
    };
    out.push(("reply-status".into(), status));
    out
}

fn make_db(path: &std::path::Path) -> bool {
    let sql = "/usr/share/kamailio/db_sqlite";
    let _ = std::fs::remove_file(path);
    let mut script = String::new();
    for f in ["standard-create.sql", "permissions-create.sql"] {
        match std::fs::read_to_string(format!("{sql}/{f}")) {
            Ok(s) => script.push_str(&s),
            Err(_) => return false,
        }
    }
    script.push_str(
        "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '127.0.0.1', 32, 0, 'loop');\n\
         INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (3, '10.20.30.40', 32, 5060, NULL);\n\
         INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (4, '192.168.0.0', 16, 0, 'lan');\n\
         INSERT INTO trusted (src_ip, proto, from_pattern, ruri_pattern, tag, priority) VALUES ('127.0.0.1', 'udp', '^sip:alice@', '^sip:trust@', 'tloop', 1);\n\
         INSERT INTO trusted (src_ip, proto, from_pattern, ruri_pattern, tag, priority) VALUES ('127.0.0.1', 'tcp', NULL, NULL, 'ttcp', 0);\n\
         INSERT INTO trusted (src_ip, proto, from_pattern, ruri_pattern, tag, priority) VALUES ('127.0.0.1', 'any', '^sip:nobody', NULL, 'tnone', 3);\n\
         INSERT INTO trusted (src_ip, proto, from_pattern, ruri_pattern, tag, priority) VALUES ('10.0.0.9', 'any', '^sip:[a-z+]*@trusted\\.example$', NULL, 't9', 0);\n\
         INSERT INTO trusted (src_ip, proto, from_pattern, ruri_pattern, tag, priority) VALUES ('10.0.0.9', 'none', NULL, NULL, 't9none', 2);\n",
    );
    let Ok(mut child) = std::process::Command::new("sqlite3")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
    else {
        return false;
    };
    if let Some(stdin) = child.stdin.as_mut() {
        use std::io::Write;
        let _ = stdin.write_all(script.as_bytes());
    }
    drop(child.stdin.take());
    child.wait().map(|s| s.success()).unwrap_or(false)
}

#[test]
fn nat_modules_match_kamailio() {
    let dir = std::env::temp_dir().join(format!("ksr-nat-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::create_dir_all(&dir);
    let db = dir.join("perm.sqlite");
    if !make_db(&db) {
        eprintln!("sqlite3 or Kamailio's schema files missing: skipped");
        return;
    }
    let rtpp = FakeRtpproxy::start();
    let w = |name: &str, text: &str| {
        let _ = std::fs::write(dir.join(name), text);
        dir.join(name).display().to_string()
    };
    let base = w(
        "perm.allow",
        "# routing rules\n\"^sip:alice@\" : \"^sip:route1@\"\nALL : \"^sip:route2\" EXCEPT \"^sip:route2x@\"\n\n  bad line\n\"^sip:bob@\" : \"^sip:good@\"\n",
    );
    w(
        "perm.deny",
        "ALL : \"^sip:route\"\n\"^sip:bob@\" : \"^sip:(evil|good)@\"\n",
    );
    let def_allow = w("def.allow", "ALL : ALL\n");
    let def_deny = w("def.deny", "\"^sip:ALICE@\" : \"^sip:route3@\"\n");
    let defs = [
        format!("RTPP_SOCK=\"udp:127.0.0.1:{}\"", rtpp.port),
        format!("DBURL=\"sqlite:///{}\"", db.display()),
        format!("PERM_BASE=\"{}\"", base.trim_end_matches(".allow")),
        format!("PERM_DEF_ALLOW=\"{def_allow}\""),
        format!("PERM_DEF_DENY=\"{def_deny}\""),
    ];
    let defs: Vec<&str> = defs.iter().map(String::as_str).collect();
    let cfg = root().join("tests/data/nat.cfg");
    let p = Peer {
        client: client(),
        up: client(),
    };
    let ours = start_ksr(&cfg, &defs);
    let got = scenarios(&ours, &p, &rtpp);
    drop(ours);
    for (n, v) in &got {
        eprintln!("== {n}\n{v}");
    }
    let find = |n: &str| {
        got.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(
        find("natinfo-nat").contains("X-Nat: 1111100110-1-01"),
        "{}",
        find("natinfo-nat")
    );
    assert!(
        find("perm").contains("X-Perm: 101010 4 -1 lan"),
        "{}",
        find("perm")
    );
    assert!(
        find("rtpproxy commands").starts_with("U"),
        "{}",
        find("rtpproxy commands")
    );
    assert!(
        find("rtp-offer").contains("c=IN IP4 127.0.0.9"),
        "{}",
        find("rtp-offer")
    );
    assert_eq!(find("reply-status"), "SIP/2.0 480 Gone Away");
    if kamailio_available() {
        let k = start_kamailio(&cfg, &defs);
        let want = scenarios(&k, &p, &rtpp);
        let k_dir = k.dir.clone();
        drop(k);
        assert_eq!(got.len(), want.len());
        let bad: Vec<String> = got
            .iter()
            .zip(want.iter())
            .filter(|((_, g), (_, w))| g != w)
            .map(|((name, g), (_, w))| format!("scenario {name}:\n ksr: {g:?}\n kam: {w:?}"))
            .collect();
        if !bad.is_empty() {
            let klog = std::fs::read_to_string(k_dir.join("kamailio.log")).unwrap_or_default();
            panic!("{}\n--- kamailio log ---\n{klog}", bad.join("\n"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// No RTP proxy answers: the functions return Kamailio's codes, the SDP is left alone and
/// the requests are still forwarded; the proxy is reported as not responding.
fn without_proxy(s: &Server, p: &Peer) -> Vec<String> {
    let u = p.uport();
    let mut out = Vec::new();
    send(
        s,
        p,
        &req(p, "OPTIONS", "sip:trust@x", "127.0.0.1", "", "", ""),
    );
    out.push(
        recv(&p.client, 2000)
            .map(|m| relevant(&m))
            .unwrap_or_default(),
    );
    let nat_contact = "<sip:alice@192.168.1.10:5070>";
    for (method, user) in [
        ("INVITE", "rtp"),
        ("INVITE", "rtpoffer"),
        ("BYE", "rtp"),
        ("BYE", "rtpdel"),
    ] {
        let body = if method == "INVITE" { SDP } else { "" };
        send(
            s,
            p,
            &req(
                p,
                method,
                &format!("sip:{user}@127.0.0.1:{u}"),
                "10.0.0.5:5070",
                nat_contact,
                "",
                body,
            ),
        );
        out.push(
            recv(&p.up, 4000)
                .map(|m| relevant(&m))
                .unwrap_or_else(|| "<not forwarded>".into()),
        );
    }
    out
}

#[test]
fn rtpproxy_down_like_kamailio() {
    let dir = std::env::temp_dir().join(format!(
        "ksr-nat-down-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let db = dir.join("perm.sqlite");
    if !make_db(&db) {
        eprintln!("sqlite3 or Kamailio's schema files missing: skipped");
        return;
    }
    let dead = free_port();
    let defs = [
        format!("RTPP_SOCK=\"udp:127.0.0.1:{dead}\""),
        format!("DBURL=\"sqlite:///{}\"", db.display()),
        "PERM_CACHE".to_string(),
    ];
    let defs: Vec<&str> = defs.iter().map(String::as_str).collect();
    let cfg = root().join("tests/data/nat.cfg");
    let p = Peer {
        client: client(),
        up: client(),
    };
    let ours = start_ksr(&cfg, &defs);
    let got = without_proxy(&ours, &p);
    let log = std::fs::read_to_string(ours.dir.join("ksr.log")).unwrap_or_default();
    drop(ours);
    assert!(got[1].contains("X-Rc: -3"), "{}", got[1]);
    assert!(got[1].contains("c=IN IP4 192.168.1.10"), "{}", got[1]);
    assert!(log.contains("does not respond, disable it"), "{log}");
    if kamailio_available() {
        let k = start_kamailio(&cfg, &defs);
        let want = without_proxy(&k, &p);
        drop(k);
        eprintln!("kamailio without proxy: {want:?}");
        assert_eq!(got, want);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn kemi_scenarios(s: &Server, p: &Peer) -> Vec<String> {
    let u = p.uport();
    let mut out = Vec::new();
    send(
        s,
        p,
        &req(
            p,
            "INVITE",
            "sip:natinfo@x",
            "10.0.0.5:5070",
            "<sip:alice@192.168.1.10:5070>",
            "",
            SDP,
        ),
    );
    out.push(
        recv(&p.client, 2000)
            .map(|m| relevant(&m))
            .unwrap_or_default(),
    );
    let nat_contact = "<sip:alice@192.168.1.10:5070;ob>";
    for (method, user, body) in [
        ("REGISTER", "alias", ""),
        ("REGISTER", "addalias", ""),
        ("REGISTER", "reg", ""),
        ("INVITE", "rtp", SDP),
        ("INVITE", "sdp", SDP),
        ("MESSAGE", "tx", SDP),
    ] {
        send(
            s,
            p,
            &req(
                p,
                method,
                &format!("sip:{user}@127.0.0.1:{u}"),
                "10.0.0.5:5070",
                nat_contact,
                "X-Keep: 1\r\nX-Not: 2\r\n",
                body,
            ),
        );
        out.push(
            recv(&p.up, 2000)
                .map(|m| relevant(&m))
                .unwrap_or_else(|| "<not forwarded>".into()),
        );
    }
    send(
        s,
        p,
        &req(
            p,
            "MESSAGE",
            &format!("sip:ruri@10.9.9.9;alias=127.0.0.1~{u}~1"),
            "10.0.0.5:5070",
            "",
            "",
            "",
        ),
    );
    out.push(
        recv(&p.up, 2000)
            .map(|m| relevant(&m))
            .unwrap_or_else(|| "<not forwarded>".into()),
    );
    out
}

#[test]
fn nat_modules_from_lua_like_kamailio() {
    let dir = std::env::temp_dir().join(format!(
        "ksr-nat-lua-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let db = dir.join("perm.sqlite");
    if !make_db(&db) {
        eprintln!("sqlite3 or Kamailio's schema files missing: skipped");
        return;
    }
    let rtpp = FakeRtpproxy::start();
    let defs = [
        format!("RTPP_SOCK=\"udp:127.0.0.1:{}\"", rtpp.port),
        format!("DBURL=\"sqlite:///{}\"", db.display()),
        format!(
            "LUA_SCRIPT=\"{}\"",
            root().join("tests/data/nat.lua").display()
        ),
    ];
    let defs: Vec<&str> = defs.iter().map(String::as_str).collect();
    let cfg = root().join("tests/data/nat-lua.cfg");
    let p = Peer {
        client: client(),
        up: client(),
    };
    let ours = start_ksr(&cfg, &defs);
    let got = kemi_scenarios(&ours, &p);
    drop(ours);
    for v in &got {
        eprintln!("--\n{v}");
    }
    assert!(
        got[0].contains("X-Nat: 11111001101 1 -1 0 -1 1 1 4 1"),
        "{}",
        got[0]
    );
    if kamailio_available()
        && std::path::Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so").exists()
    {
        let k = start_kamailio(&cfg, &defs);
        let want = kemi_scenarios(&k, &p);
        drop(k);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want.iter()) {
            assert_eq!(g, w);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same offer through an RTP proxy on a unix stream socket (no cookie, one command per
/// connection).
#[test]
fn rtpproxy_unix_socket_like_kamailio() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!(
        "ksr-nat-unix-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let db = dir.join("perm.sqlite");
    if !make_db(&db) {
        eprintln!("sqlite3 or Kamailio's schema files missing: skipped");
        return;
    }
    let path = dir.join("rtpp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind unix socket");
    let _ = listener.set_nonblocking(true);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (st, sn) = (stop.clone(), seen.clone());
    let t = std::thread::spawn(move || {
        while !st.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 2048];
            let Ok(n) = conn.read(&mut buf) else { continue };
            let cmd = String::from_utf8_lossy(&buf[..n]).to_string();
            let answer = if cmd.starts_with("VF") {
                "1"
            } else if cmd.starts_with('V') {
                "20040107"
            } else {
                sn.lock().unwrap().push(cmd.clone());
                "35002 127.0.0.8 4"
            };
            let _ = conn.write_all(format!("{answer}\n").as_bytes());
        }
    });
    let defs = [
        format!("RTPP_SOCK=\"unix:{}\"", path.display()),
        format!("DBURL=\"sqlite:///{}\"", db.display()),
    ];
    let defs: Vec<&str> = defs.iter().map(String::as_str).collect();
    let cfg = root().join("tests/data/nat.cfg");
    let p = Peer {
        client: client(),
        up: client(),
    };
    let run = |s: &Server| -> (String, Vec<String>) {
        let u = p.uport();
        send(
            s,
            &p,
            &req(
                &p,
                "INVITE",
                &format!("sip:rtp@127.0.0.1:{u}"),
                "10.0.0.5:5070",
                "<sip:a@192.168.1.10>",
                "",
                SDP,
            ),
        );
        let m = recv(&p.up, 3000)
            .map(|m| relevant(&m))
            .unwrap_or_else(|| "<not forwarded>".into());
        (m, std::mem::take(&mut *seen.lock().unwrap()))
    };
    let ours = start_ksr(&cfg, &defs);
    let got = run(&ours);
    drop(ours);
    assert!(got.0.contains("m=audio 35002 "), "{}", got.0);
    assert_eq!(got.1.len(), 1, "{:?}", got.1);
    if kamailio_available() {
        let k = start_kamailio(&cfg, &defs);
        let want = run(&k);
        drop(k);
        assert_eq!(got, want);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = t.join();
    let _ = std::fs::remove_dir_all(&dir);
}
