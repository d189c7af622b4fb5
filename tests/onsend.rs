//! `onsend_route` sees where a forwarded request goes (`$snd(...)`) and can drop it; the same
//! config on Kamailio 5.6 must relay and drop the same requests.

mod common;
use common::*;

fn relayed(s: &Server, user: &str) -> bool {
    let c = client();
    let up = client();
    let up_port = up.local_addr().map(|a| a.port()).unwrap_or(0);
    let m = request(
        "MESSAGE",
        &format!("sip:{user}@127.0.0.1:{up_port}"),
        &c,
        &format!("onsend-{user}"),
        "",
    );
    let _ = c.send_to(m.as_bytes(), ("127.0.0.1", s.port));
    recv(&up, 1000).is_some()
}

#[test]
fn onsend_route_drops_like_kamailio() {
    let cfg = root().join("tests/data/onsend.cfg");
    let ours = start_ksr(&cfg, &[]);
    assert!(relayed(&ours, "carol"));
    assert!(!relayed(&ours, "blocked"));
    if kamailio_available() {
        let k = start_kamailio(&cfg, &[]);
        assert!(relayed(&k, "carol"));
        assert!(!relayed(&k, "blocked"));
    }
}

fn forwarded(s: &Server, user: &str) -> Option<String> {
    let c = client();
    let up = client();
    let up_port = up.local_addr().map(|a| a.port()).unwrap_or(0);
    let m = request(
        "MESSAGE",
        &format!("sip:{user}@127.0.0.1:{up_port}"),
        &c,
        "edit-1",
        "X-Test: first one\r\nX-Test: second\r\nX-Other: second second\r\n",
    );
    let _ = c.send_to(m.as_bytes(), ("127.0.0.1", s.port));
    recv(&up, 1000)
}

/// The header lines a test looks at, with ports and branches taken out.
fn edited_lines(m: &str) -> Vec<String> {
    m.split("\r\n")
        .filter(|l| l.starts_with("X-") || l.starts_with("From:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn textops_edits_reach_the_next_hop_like_kamailio() {
    let cfg = root().join("tests/data/onsend.cfg");
    let ours = start_ksr(&cfg, &[]);
    let got = edited_lines(&forwarded(&ours, "edit").expect("forwarded"));
    assert_eq!(
        got,
        vec![
            "From: <sip:ALICE@127.0.0.1>;tag=a1",
            "X-Test: changed one",
            "X-Test: 2nd",
            "X-Other: 2nd 2nd",
        ],
        "{got:?}"
    );
    if kamailio_available() {
        let k = start_kamailio(&cfg, &[]);
        let want = edited_lines(&forwarded(&k, "edit").expect("forwarded"));
        assert_eq!(got, want);
    }
}
