//! dispatcher end to end: the same cfg and list file (tests/data/dispatcher.cfg,
//! dispatcher.list) on ksr and on Kamailio 5.6; every request must get the same reply
//! (where `$du`/`$ru` point, `$rc`, the `$xavp(_dsdst_)` records, RPC output). The hash
//! algorithms are checked over many Call-IDs / users. Set KSR_SKIP_ORACLE=1 to skip the
//! comparison where Kamailio is not installed.

mod common;
use common::*;
use std::net::UdpSocket;

struct Req {
    case: &'static str,
    set: i64,
    alg: i64,
    ruri: String,
    from_user: String,
    to_user: String,
    callid: String,
    extra: String,
}

impl Req {
    fn new(case: &'static str, set: i64, alg: i64) -> Req {
        Req {
            case,
            set,
            alg,
            ruri: "sip:bob@test.invalid".into(),
            from_user: "alice".into(),
            to_user: "bob".into(),
            callid: format!("{case}-{set}-{alg}"),
            extra: String::new(),
        }
    }
}

fn send(s: &Server, sock: &UdpSocket, r: &Req) -> String {
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    let m = format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{cid};rport\r\n\
         From: <sip:{fu}@example.org>;tag=a1\r\nTo: <sip:{tu}@example.net:5070>\r\n\
         Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nX-Case: {case}\r\n\
         X-Set: {set}\r\nX-Alg: {alg}\r\n{extra}Content-Length: 0\r\n\r\n",
        ruri = r.ruri,
        cid = r.callid,
        fu = r.from_user,
        tu = r.to_user,
        case = r.case,
        set = r.set,
        alg = r.alg,
        extra = r.extra,
    );
    let Some(rep) = exchange(s, sock, &m) else {
        return "<no reply>".into();
    };
    let mut out = status_line(&rep).to_string();
    for h in ["X-Rpl", "X-List"] {
        if let Some(v) = header(&rep, h) {
            out.push_str(&format!("\n{h}: {v}"));
        }
    }
    out
}

fn requests() -> Vec<Req> {
    let mut v = Vec::new();
    // Hash algorithms over many inputs, on two sets.
    for set in [1, 2] {
        for i in 0..40 {
            let mut r = Req::new("dst", set, 0);
            r.callid = format!("c{i}-{}x@host{}", i * 7919, i % 3);
            v.push(r);
        }
        for i in 0..15 {
            let mut r = Req::new("dst", set, 1);
            r.from_user = format!("user{i}");
            v.push(r);
            let mut r = Req::new("dst", set, 2);
            r.to_user = format!("u{}", i * 13);
            v.push(r);
            let mut r = Req::new("dst", set, 3);
            r.ruri = if i % 2 == 0 {
                format!("sip:n{i}@test.invalid")
            } else {
                format!("sip:n{i}@test.invalid:{}", 5060 + i)
            };
            v.push(r);
            let mut r = Req::new("dst", set, 7);
            r.from_user = format!("f{i}");
            r.ruri = format!("sip:r{}@test.invalid", i * 3);
            v.push(r);
            let mut r = Req::new("dst", set, 5);
            r.extra = format!(
                "Authorization: Digest username=\"user{i}\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\"\r\n"
            );
            v.push(r);
        }
    }
    // Round robin (and auth-user without credentials falls back to it), serial, weights.
    for alg in [4, 5, 4, 4, 8, 9, 11] {
        for set in [1, 2, 3] {
            v.push(Req::new("dst", set, alg));
        }
    }
    for (set, lim) in [(1, 1), (1, 2), (1, 0), (2, 1)] {
        let mut r = Req::new("limit", set, 0);
        r.extra = format!("X-Lim: {lim}\r\n");
        v.push(r);
    }
    for set in [1, 2, 9, 77] {
        v.push(Req::new("dst", set, 0));
        v.push(Req::new("select", set, 0));
        v.push(Req::new("domain", set, 0));
        let mut r = Req::new("domain", set, 8);
        r.ruri = "sip:test.invalid;lr?X=1".into();
        v.push(r);
        v.push(Req::new("next", set, 0));
        v.push(Req::new("next", set, 4));
        v.push(Req::new("nextdomain", set, 8));
        v.push(Req::new("parallel", set, 0));
    }
    for uri in [
        "sip:127.0.0.1:5071",
        "sip:127.0.0.1:5073;transport=tcp",
        "sip:127.0.0.2:5074",
        "sip:127.0.0.1:9999",
        "sip:127.0.0.9:5060",
        "sip:127.0.0.3:5075",
    ] {
        for (set, mode) in [
            (1, 0),
            (1, 1),
            (1, 2),
            (1, 3),
            (4, 0),
            (9, 4),
            (9, 7),
            (1, 4),
        ] {
            let mut r = Req::new("from", set, mode);
            r.extra = format!("X-Uri: {uri}\r\n");
            v.push(r);
        }
    }
    for (set, uri) in [
        (1, "sip:127.0.0.1:5072"),
        (1, "sip:127.0.0.3:5075"),
        (5, "sip:x"),
        (9, "sip:127.0.0.9:5061"),
        (3, ""),
    ] {
        let mut r = Req::new("exists", set, 0);
        r.extra = format!("X-Uri: {uri}\r\n");
        v.push(r);
    }
    // States: marks on set 3, then the RPC view and set_state.
    for st in ["i", "x", "a", "tp", "tp", "i", "a", "d", "a"] {
        let mut r = Req::new("mark", 3, 8);
        r.extra = format!("X-State: {st}\r\n");
        v.push(r);
    }
    for rpc in [
        r#"{"jsonrpc": "2.0", "method": "dispatcher.list", "params": ["short"], "id": 2}"#,
        r#"{"jsonrpc": "2.0", "method": "dispatcher.set_state", "params": ["ip", 2, "sip:127.0.0.1:6002"], "id": 3}"#,
        r#"{"jsonrpc": "2.0", "method": "dispatcher.set_state", "params": ["d", 2, "sip:127.0.0.1:9"], "id": 4}"#,
        r#"{"jsonrpc": "2.0", "method": "dispatcher.set_state", "params": ["1", 3, "all"], "id": 5}"#,
        r#"{"jsonrpc": "2.0", "method": "dispatcher.reload", "id": 6}"#,
    ] {
        let mut r = Req::new("rpc", 0, 0);
        r.extra = format!("X-Rpc: {rpc}\r\n");
        v.push(r);
        v.push(Req::new("dst", 2, 8));
        v.push(Req::new("next", 2, 8));
    }
    v
}

/// An SQLite database in Kamailio's schema holding the rows of tests/data/dispatcher.list.
fn create_db(path: &std::path::Path) {
    use std::io::Write;
    let standard = std::fs::read_to_string("/usr/share/kamailio/db_sqlite/standard-create.sql")
        .expect("Kamailio's SQLite schema (kamailio-sqlite-modules)");
    let schema = std::fs::read_to_string("/usr/share/kamailio/db_sqlite/dispatcher-create.sql")
        .expect("dispatcher-create.sql");
    let list = std::fs::read_to_string(root().join("tests/data/dispatcher.list")).expect("list");
    let mut sql = format!("{standard}{schema}");
    for line in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        sql.push_str(&format!(
            "INSERT INTO dispatcher (setid, destination, flags, priority, attrs) VALUES ({}, '{}', {}, {}, '{}');\n",
            f[0],
            f[1],
            f.get(2).unwrap_or(&"0"),
            f.get(3).unwrap_or(&"0"),
            f.get(4).unwrap_or(&""),
        ));
    }
    let mut child = std::process::Command::new("sqlite3")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(sql.as_bytes())
        .expect("write schema");
    assert!(child.wait().expect("sqlite3").success());
}

fn start(kamailio: bool) -> Server {
    start_with(kamailio, None, false)
}

fn start_with(kamailio: bool, db: Option<&std::path::Path>, use_default: bool) -> Server {
    let list = root().join("tests/data/dispatcher.list");
    let sock = std::env::temp_dir().join(format!(
        "ksr-ds-{}-{}-{}.sock",
        std::process::id(),
        if kamailio { "k" } else { "ksr" },
        free_port()
    ));
    let d1 = format!("DSLIST=\"{}\"", list.display());
    let d2 = format!("RPCSOCK=\"{}\"", sock.display());
    let cfg = root().join("tests/data/dispatcher.cfg");
    let mut defs = vec![d1, d2];
    if let Some(db) = db {
        defs.push(format!("DBURL=\"sqlite:///{}\"", db.display()));
    }
    if use_default {
        defs.push("USEDEFAULT=1".into());
    }
    let defs: Vec<&str> = defs.iter().map(String::as_str).collect();
    if kamailio {
        start_kamailio(&cfg, &defs)
    } else {
        start_ksr(&cfg, &defs)
    }
}

#[test]
fn dispatcher_matches_kamailio() {
    compare(None, false);
}

/// `use_default`: the last destination of a set is only used when all others are out.
#[test]
fn use_default_matches_kamailio() {
    compare(None, true);
}

/// The same sets loaded from the `dispatcher` table instead of the list file.
#[test]
fn dispatcher_from_db_matches_kamailio() {
    let dir = std::env::temp_dir().join(format!("ksr-dsdb-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::create_dir_all(&dir);
    let kdb = dir.join("k.sqlite");
    let odb = dir.join("o.sqlite");
    create_db(&kdb);
    create_db(&odb);
    compare(Some((&kdb, &odb)), false);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same cases through KSR.dispatcher.* in Lua (tests/data/dispatcher.lua), on ksr and on
/// Kamailio's app_lua.
#[test]
fn lua_kemi_matches_kamailio() {
    if !kamailio_available()
        || !std::path::Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so").exists()
    {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (run .ci/run, or set KSR_SKIP_ORACLE=1)"
        );
        return;
    }
    let cfg = root().join("tests/data/dispatcher-lua.cfg");
    let d1 = format!(
        "DSLIST=\"{}\"",
        root().join("tests/data/dispatcher.list").display()
    );
    let d2 = format!(
        "LUA_SCRIPT=\"{}\"",
        root().join("tests/data/dispatcher.lua").display()
    );
    let k = start_kamailio(&cfg, &[&d1, &d2]);
    let ours = start_ksr(&cfg, &[&d1, &d2]);
    let (ck, co) = (client(), client());
    let mut diffs = Vec::new();
    let reqs: Vec<Req> = requests()
        .into_iter()
        .filter(|r| r.case != "rpc" && r.case != "parallel")
        .collect();
    let mut selected = 0;
    for r in &reqs {
        let want = send(&k, &ck, r);
        let got = send(&ours, &co, r);
        if got.contains("rc=1 du=sip:") {
            selected += 1;
        }
        if want != got {
            diffs.push(format!(
                "{} set={} alg={} {}:\n  kamailio: {want}\n  ksr:      {got}",
                r.case,
                r.set,
                r.alg,
                r.extra.trim()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        reqs.len(),
        diffs.join("\n")
    );
    assert!(selected > 200, "only {selected} selections");
}

fn compare(db: Option<(&std::path::Path, &std::path::Path)>, use_default: bool) {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (run .ci/run, or set KSR_SKIP_ORACLE=1)"
        );
        return;
    }
    let k = start_with(true, db.map(|d| d.0), use_default);
    let ours = start_with(false, db.map(|d| d.1), use_default);
    let ck = client();
    let co = client();
    let mut diffs = Vec::new();
    let reqs = requests();
    let mut selected = 0;
    for r in &reqs {
        let want = send(&k, &ck, r);
        let got = send(&ours, &co, r);
        if got.contains("rc=1 du=sip:") {
            selected += 1;
        }
        if want != got {
            diffs.push(format!(
                "{} set={} alg={} cid={} {}:\n  kamailio: {want}\n  ksr:      {got}",
                r.case,
                r.set,
                r.alg,
                r.callid,
                r.extra.trim()
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} differ:\n{}",
        diffs.len(),
        reqs.len(),
        diffs.join("\n")
    );
    assert!(selected > 200, "only {selected} selections");
}

#[test]
fn random_selection_picks_an_active_destination() {
    let s = start(false);
    let c = client();
    for i in 0..20 {
        let mut r = Req::new("dst", 1, 6);
        r.callid = format!("rnd-{i}");
        let got = send(&s, &c, &r);
        assert!(got.contains("rc=1 du=sip:127.0.0."), "{got}");
        // Flag 8 (probing) does not make a destination inactive; none here is.
        assert!(got.contains(" n=5 "), "{got}");
    }
}

/// A callee answering every INVITE with `code` (ACKs silently) until `stop`; counts INVITEs.
fn callee(sock: UdpSocket, code: u16, stop: std::time::Instant) -> usize {
    let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(100)));
    let mut n = 0;
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < stop {
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let req = String::from_utf8_lossy(&buf[..len]).into_owned();
        if !req.starts_with("INVITE ") {
            continue;
        }
        n += 1;
        let mut reply = format!("SIP/2.0 {code} Reply\r\n");
        for l in req.split("\r\n") {
            let lower = l.to_ascii_lowercase();
            if ["via:", "from:", "call-id:", "cseq:"]
                .iter()
                .any(|p| lower.starts_with(p))
            {
                reply.push_str(l);
                reply.push_str("\r\n");
            } else if lower.starts_with("to:") {
                reply.push_str(l);
                reply.push_str(";tag=callee\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        let _ = sock.send_to(reply.as_bytes(), from);
    }
    n
}

/// Two calls: the first tries the 503 destination then the next one; the second goes
/// straight to the next one (the first was marked inactive). Returns the final replies and
/// how many INVITEs each callee saw.
fn failover_run(kamailio: bool) -> (Vec<String>, Vec<usize>) {
    let callees: Vec<UdpSocket> = (0..3).map(|_| client()).collect();
    let port = |i: usize| callees[i].local_addr().map(|a| a.port()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "ksr-dsf-{}-{}-{}",
        std::process::id(),
        kamailio,
        free_port()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let list = dir.join("dispatcher.list");
    // Highest priority first: the 503 one, then the 200 one, then the 486 one.
    std::fs::write(
        &list,
        format!(
            "1 sip:127.0.0.1:{} 0 10\n1 sip:127.0.0.1:{} 0 5\n1 sip:127.0.0.1:{} 0 1\n",
            port(0),
            port(1),
            port(2)
        ),
    )
    .expect("write list");
    let cfg = root().join("tests/data/dispatcher-failover.cfg");
    let d = format!("DSLIST=\"{}\"", list.display());
    let s = if kamailio {
        start_kamailio(&cfg, &[&d])
    } else {
        start_ksr(&cfg, &[&d])
    };
    let stop = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let threads: Vec<_> = callees
        .into_iter()
        .zip([503u16, 200, 486])
        .map(|(c, code)| std::thread::spawn(move || callee(c, code, stop)))
        .collect();
    let uac = client();
    let mut finals = Vec::new();
    for call in 0..2 {
        let m = request(
            "INVITE",
            &format!("sip:x@127.0.0.1:{}", s.port),
            &uac,
            &format!("dsf-{call}"),
            "",
        );
        let _ = uac.send_to(m.as_bytes(), ("127.0.0.1", s.port));
        let mut fin = "<none>".to_string();
        for _ in 0..40 {
            if let Some(r) = recv(&uac, 100)
                && !r.starts_with("SIP/2.0 100")
            {
                fin = status_line(&r).to_string();
                break;
            }
        }
        finals.push(fin);
    }
    let counts = threads.into_iter().map(|t| t.join().unwrap_or(0)).collect();
    let _ = std::fs::remove_dir_all(&dir);
    (finals, counts)
}

#[test]
fn failover_with_ds_next_dst_and_t_relay() {
    let (finals, counts) = failover_run(false);
    assert_eq!(finals, ["SIP/2.0 200 Reply", "SIP/2.0 200 Reply"]);
    assert_eq!(counts, [1, 2, 0]);
    if kamailio_available() {
        let (kf, kc) = failover_run(true);
        assert_eq!((kf, kc), (finals, counts));
    }
}

/// A destination answering every request but ACK with `code` (or never, with 0) until
/// `stop`; returns the request lines it saw.
fn pinged(sock: UdpSocket, code: u16, stop: std::time::Instant) -> Vec<String> {
    let _ = sock.set_read_timeout(Some(std::time::Duration::from_millis(100)));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < stop {
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let req = String::from_utf8_lossy(&buf[..len]).into_owned();
        seen.push(
            req.lines()
                .find(|l| l.starts_with("From:"))
                .unwrap_or("")
                .split(";tag")
                .next()
                .unwrap_or("")
                .to_string(),
        );
        if code == 0 || req.starts_with("ACK ") {
            continue;
        }
        let mut reply = format!("SIP/2.0 {code} OK\r\n");
        for l in req.split("\r\n") {
            let lower = l.to_ascii_lowercase();
            if ["via:", "from:", "to:", "call-id:", "cseq:"]
                .iter()
                .any(|p| lower.starts_with(p))
            {
                reply.push_str(l);
                reply.push_str("\r\n");
            }
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        let _ = sock.send_to(reply.as_bytes(), from);
    }
    seen
}

/// Where `ds_select_dst("1", "8")` points before and after the keepalives found the silent
/// destination dead, and the From of the keepalives the live one got.
fn probe_run(kamailio: bool) -> (String, String, Vec<String>) {
    let dests: Vec<UdpSocket> = (0..2).map(|_| client()).collect();
    let ports: Vec<u16> = dests
        .iter()
        .map(|d| d.local_addr().map(|a| a.port()).unwrap_or(0))
        .collect();
    let port = |i: usize| ports[i];
    let dir = std::env::temp_dir().join(format!(
        "ksr-dsp-{}-{}-{}",
        std::process::id(),
        kamailio,
        free_port()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let list = dir.join("dispatcher.list");
    std::fs::write(
        &list,
        format!(
            "1 sip:127.0.0.1:{} 0 10\n1 sip:127.0.0.1:{} 0 5\n",
            port(0),
            port(1)
        ),
    )
    .expect("write list");
    let cfg = root().join("tests/data/dispatcher-probe.cfg");
    let d = format!("DSLIST=\"{}\"", list.display());
    let s = if kamailio {
        start_kamailio(&cfg, &[&d])
    } else {
        start_ksr(&cfg, &[&d])
    };
    let stop = std::time::Instant::now() + std::time::Duration::from_secs(9);
    let mut it = dests.into_iter();
    let (silent, live) = (it.next().expect("dest"), it.next().expect("dest"));
    let t_silent = std::thread::spawn(move || pinged(silent, 0, stop));
    let t_live = std::thread::spawn(move || pinged(live, 200, stop));
    let uac = client();
    let ask = |i: usize| {
        let m = request(
            "INVITE",
            &format!("sip:x@127.0.0.1:{}", s.port),
            &uac,
            &format!("dsp-{i}"),
            "",
        );
        exchange(&s, &uac, &m)
            .map(|r| status_line(&r).replace(&port(0).to_string(), "SILENT"))
            .map(|r| r.replace(&port(1).to_string(), "LIVE"))
            .unwrap_or_default()
    };
    let first = ask(0);
    let mut last = first.clone();
    // Bounded wait for the keepalive timeout to take the silent destination out.
    for i in 1..60 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        last = ask(i);
        if last != first {
            break;
        }
    }
    drop(s);
    let _ = t_silent.join();
    let mut froms = t_live.join().unwrap_or_default();
    froms.dedup();
    let _ = std::fs::remove_dir_all(&dir);
    (first, last, froms)
}

#[test]
fn probing_takes_silent_destination_out() {
    let got = probe_run(false);
    assert_eq!(got.0, "SIP/2.0 200 du=sip:127.0.0.1:SILENT");
    assert_eq!(got.1, "SIP/2.0 200 du=sip:127.0.0.1:LIVE");
    assert_eq!(got.2, ["From: <sip:probe@ksr.test>"]);
    if kamailio_available() {
        assert_eq!(probe_run(true), got);
    }
}
