//! Bad input never panics the NAT modules: thousands of mutated requests (broken Contacts,
//! SDP, alias parameters, Vias) run offline through `tests/data/nat.cfg`, whose routes call
//! every nathelper, rtpproxy, permissions and textopsx function; the worker must still answer
//! afterwards.

use bytes::Bytes;
use compiler::frontend::parse_file;
use compiler::preprocess::Options;
use runtime::native::NativeFactory;
use runtime::offline::Harness;
use std::sync::Arc;

fn harness(dir: &std::path::Path) -> Harness {
    let root = env!("CARGO_MANIFEST_DIR");
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(9);
    let opts = Options {
        defines: vec![
            (
                "RTPP_SOCK".into(),
                Some(format!("\"udp:127.0.0.1:{dead}\"")),
            ),
            (
                "DBURL".into(),
                Some(format!("\"sqlite:///{}/perm.sqlite\"", dir.display())),
            ),
        ],
    };
    let r = parse_file(
        &std::path::Path::new(root).join("tests/data/nat.cfg"),
        &opts,
    )
    .expect("read cfg");
    let config = r.config.expect("parsed");
    let setup = runtime::Setup::from_config(&config).unwrap_or_else(|_| panic!("setup"));
    let program = compiler::lower::compile(&config, &setup.table, &setup.pvs)
        .unwrap_or_else(|_| panic!("compile"));
    Harness::new(
        setup,
        &NativeFactory {
            program: Arc::new(program),
        },
    )
    .expect("harness")
}

const USERS: &[&str] = &[
    "hfv",
    "hfv2",
    "hfv3",
    "hfv4",
    "iter",
    "aliaspv",
    "rtprec",
    "rtpans",
    "route1",
    "rtpstat",
    "setbuf",
    "trust",
    "natdest",
    "ruri2",
    "natinfo",
    "perm",
    "fnm",
    "fixc",
    "alias",
    "addalias",
    "addalias3",
    "rcv",
    "rcvuri",
    "reg",
    "sdp",
    "sdpip",
    "ruri",
    "rtp",
    "rtpoffer",
    "rtpdel",
    "tx",
    "apply",
];

fn base(user: &str, method: &str, contact: &str, body: &str) -> String {
    format!(
        "{method} sip:{user}@127.0.0.1:5999;alias=10.0.0.1~5062~2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-x;rport\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\nCall-ID: robust\r\nCSeq: 1 {method}\r\nContact: {contact}\r\nX-B: b0, \"b,1\r\nX-Q: <sip:q@h;bar=1>;bar=\"x;baz\r\nX-Auth: Digest realm=\"r\", \"\r\nX-P: ;lr;;lr=\r\nSupported: ,,\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn mutated_requests_never_panic() {
    let dir = std::env::temp_dir().join(format!("ksr-nat-robust-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut h = harness(&dir);
    let src: std::net::SocketAddr = "192.168.1.50:5070".parse().unwrap();
    let contacts = [
        "<sip:alice@192.168.1.10:5070;maddr=1.2.3.4>",
        "*",
        "sip:alice@[2001:db8::1]:5070",
        "<sip:alice@192.168.1.10:99999>",
        "<sip:@>",
        "\"x\" <sip:a@b;alias=1.1.1.1~5~>",
        "<sip:a@b;alias=~~~>;expires=1, <sip:c@d>",
        "<tel:+123>",
    ];
    let bodies = [
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4 10.0.0.1\r\n",
        "v=0\r\nc=IN IP6 ::1\r\nm=audio 0 RTP/AVP\r\nc=IN IP4\r\n",
        "m=\r\nc=\r\no=\r\na=rtcp:\r\n",
        "v=0\r\nm=audio x RTP/AVP 0\r\nv=0\r\nm=video 70000/2 RTP/AVP 31\r\na=nortpproxy:yes\r\n",
        "",
        "\r\n\r\n\r\n",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut sent_total = 0;
    for round in 0..6000 {
        let user = USERS[round % USERS.len()];
        let method = ["INVITE", "REGISTER", "BYE", "ACK", "MESSAGE"][round % 5];
        let c = contacts[(next() % contacts.len() as u64) as usize];
        let b = bodies[(next() % bodies.len() as u64) as usize];
        let mut m = base(user, method, c, b).into_bytes();
        let edits = next() % 4;
        for _ in 0..edits {
            if m.is_empty() {
                break;
            }
            let i = (next() % m.len() as u64) as usize;
            match next() % 3 {
                0 => m[i] = (next() & 0xff) as u8,
                1 => {
                    m.remove(i);
                }
                _ => m.insert(i, b"~;:<>@[]= \r\n"[(next() % 12) as usize]),
            }
        }
        h.feed(Bytes::from(m), src);
        sent_total += h.take_sent().len();
    }
    assert!(
        sent_total > 1000,
        "only {sent_total} messages went out: the routes did not run"
    );
    // Still serving.
    h.feed(
        Bytes::from(base("natinfo", "OPTIONS", "<sip:a@10.0.0.1>", "")),
        src,
    );
    let sent = h.take_sent();
    assert!(
        sent.iter().any(|(_, d)| d.starts_with(b"SIP/2.0 200")),
        "no answer after the mutations"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
