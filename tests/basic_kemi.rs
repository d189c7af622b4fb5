//! Debian's stateful example, `kamailio-basic-kemi.cfg` with its native routing
//! (`kamailio-basic-kemi-native.cfg`), run with real SIP clients: sipp registers users with
//! digest authentication and places calls through the proxy — answered with Record-Route,
//! cancelled, busy (486 through failure_route), unknown user (404), unanswered (408), with a
//! retransmitted INVITE that must be absorbed. The same files and flows run against Kamailio
//! 5.6, which validates the test itself. Every routing language — native, Lua, Python,
//! JavaScript — must give the same database rows and show the user agents the same messages.
//!
//! The example is used as Debian ships it, except for what the issues allow: the database is
//! SQLite (`db_sqlite` instead of `db_mysql`, `DBURL`), `WITH_NAT` and `WITH_IPAUTH` are off
//! for native and Lua (no RTP proxy here) and on for Python and JS (whose scripts call those
//! modules unconditionally; compared with the native routes run the same way), the include
//! paths point at the test directory, and the server listens on a free 127.0.0.1 port with
//! its own `run_dir`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXAMPLES: &str = "/usr/share/doc/kamailio/examples/kemi";
const SCHEMA: &str = "/usr/share/kamailio/db_sqlite";
const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// Which server runs the example.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Target {
    Ksr,
    Kamailio,
}

/// A prepared example: its directory, cfg and database.
struct Example {
    dir: PathBuf,
    cfg: PathBuf,
    db: PathBuf,
}

/// Routing language: the native routes, or one of the KEMI scripts of the example set.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Routing {
    Native,
    Lua,
    /// The native routes with `WITH_NAT` and `WITH_IPAUTH` on: the reference for the Python
    /// and JS scripts, which call nathelper, rtpproxy and permissions unconditionally.
    NativeNat,
    Python,
    Js,
    /// Not the Debian example: ksr's own `examples/kamailio-proxy.cfg`, with its database
    /// created on demand and the users added by `ksr subscriber add`.
    Proxy,
}

impl Routing {
    /// The define selecting it and the script file.
    fn script(self) -> Option<(&'static str, &'static str)> {
        match self {
            Routing::Native | Routing::NativeNat | Routing::Proxy => None,
            Routing::Lua => Some(("WITH_CFGLUA", "kamailio-basic-kemi-lua.lua")),
            Routing::Python => Some(("WITH_CFGPYTHON3", "kamailio-basic-kemi-python.py")),
            Routing::Js => Some(("WITH_CFGJSDT", "kamailio-basic-kemi-jsdt.js")),
        }
    }

    /// Whether the example's `WITH_NAT` and `WITH_IPAUTH` stay on (nathelper, rtpproxy and
    /// permissions loaded, which the Python and JS scripts call unconditionally; no RTP proxy
    /// answers here, loopback callers are never seen as NATed, the address table is empty).
    fn nat(self) -> bool {
        matches!(self, Routing::NativeNat | Routing::Python | Routing::Js)
    }
}

/// Adds the test users with `ksr subscriber add`.
fn add_subscribers(db: &Path) {
    let url = format!("sqlite:///{}", db.display());
    for u in USERS {
        let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
            .args(["subscriber", "--db-url", &url, "add"])
            .arg(format!("{u}@127.0.0.1"))
            .arg(format!("{u}pw"))
            .output()
            .expect("ksr subscriber add");
        assert!(
            out.status.success(),
            "ksr subscriber add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `examples/kamailio-proxy.cfg` in a test directory: on Kamailio with the schema made from
/// its SQL files, on ksr with nothing (tables are created on demand).
fn prepare_proxy(target: Target, port: u16) -> Example {
    let dir = std::env::temp_dir().join(format!(
        "ksr-proxy-example-{:?}-{}-{port}",
        target,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let db = dir.join("proxy.sqlite");
    if target == Target::Kamailio {
        let mut sql = String::new();
        for f in ["standard", "auth_db", "usrloc", "acc"] {
            sql.push_str(
                &std::fs::read_to_string(Path::new(SCHEMA).join(format!("{f}-create.sql")))
                    .expect("Kamailio's SQLite schema"),
            );
        }
        run_sqlite(&db, &sql);
    }
    add_subscribers(&db);
    let text = std::fs::read_to_string(root().join("examples/kamailio-proxy.cfg"))
        .expect("examples/kamailio-proxy.cfg");
    let cfg = format!(
        "#!define PORT {port}\n#!define DBURL \"sqlite:///{}\"\n{text}",
        db.display()
    );
    let cfg_path = dir.join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).expect("write cfg");
    Example {
        dir,
        cfg: cfg_path,
        db,
    }
}

fn run_sqlite(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .map(|mut s| s.write_all(sql.as_bytes()))
                .transpose()?;
            c.wait_with_output()
        })
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn prepare(target: Target, routing: Routing, port: u16) -> Example {
    if routing == Routing::Proxy {
        return prepare_proxy(target, port);
    }
    let dir = std::env::temp_dir().join(format!(
        "ksr-basic-kemi-{:?}-{:?}-{}-{port}",
        target,
        routing,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let db = dir.join("kamailio.sqlite");
    // Kamailio's schema and the subscribers (password = user name + "pw").
    let mut sql = String::new();
    for f in [
        "standard",
        "auth_db",
        "usrloc",
        "acc",
        "htable",
        "permissions",
    ] {
        sql.push_str(
            &std::fs::read_to_string(Path::new(SCHEMA).join(format!("{f}-create.sql")))
                .expect("Kamailio's SQLite schema (package kamailio-sqlite-modules)"),
        );
    }
    // The extra accounting columns the example asks for (ACCDB_COMMENT).
    for t in ["acc", "missed_calls"] {
        for c in [
            "src_user",
            "src_domain",
            "src_ip",
            "dst_ouser",
            "dst_user",
            "dst_domain",
        ] {
            sql.push_str(&format!(
                "ALTER TABLE {t} ADD COLUMN {c} VARCHAR(128) NOT NULL DEFAULT '';\n"
            ));
        }
    }
    for u in USERS {
        sql.push_str(&format!(
            "INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES ('{u}', '127.0.0.1', '{u}pw', '', '');\n"
        ));
    }
    run_sqlite(&db, &sql);

    let main = std::fs::read_to_string(Path::new(EXAMPLES).join("kamailio-basic-kemi.cfg"))
        .expect("Debian's kemi examples (package kamailio)");
    let native =
        std::fs::read_to_string(Path::new(EXAMPLES).join("kamailio-basic-kemi-native.cfg"))
            .expect("kamailio-basic-kemi-native.cfg");
    let dirs = format!("{}/", dir.display());
    let mut cfg = String::new();
    for line in main.lines() {
        let t = line.trim();
        if (t == "#!define WITH_NAT" || t == "#!define WITH_IPAUTH") && !routing.nat() {
            continue;
        }
        let line = line
            .replace("db_mysql.so", "db_sqlite.so")
            .replace("/usr/local/etc/kamailio/", &dirs);
        cfg.push_str(&line);
        cfg.push('\n');
        if t == "#!KAMAILIO" {
            if let Some((define, _)) = routing.script() {
                cfg.push_str(&format!("#!define {define}\n"));
            }
            cfg.push_str(&format!(
                "#!define DBURL \"sqlite:///{}\"\nlisten=udp:127.0.0.1:{port}\nlisten=tcp:127.0.0.1:{port}\nrun_dir=\"{}\"\n",
                db.display(),
                dir.display()
            ));
        }
    }
    let cfg_path = dir.join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).expect("write cfg");
    std::fs::write(dir.join("kamailio-basic-kemi-native.cfg"), native).expect("write routes");
    if let Some((_, script)) = routing.script() {
        std::fs::copy(Path::new(EXAMPLES).join(script), dir.join(script)).expect("copy script");
    }
    Example {
        dir,
        cfg: cfg_path,
        db,
    }
}

/// Starts the example on `target`; the server process is stopped when dropped.
fn start(target: Target, routing: Routing) -> (Server, Example) {
    let port = free_port();
    let ex = prepare(target, routing, port);
    let log = std::fs::File::create(ex.dir.join("server.log")).expect("log");
    let mut cmd = match target {
        Target::Ksr => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_ksr"));
            c.arg("run").arg("-f").arg(&ex.cfg);
            c
        }
        Target::Kamailio => {
            let mut c = Command::new("/usr/sbin/kamailio");
            c.arg("-f")
                .arg(&ex.cfg)
                .args([
                    "-L",
                    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
                    "-E",
                    "-DD",
                ])
                .arg("-Y")
                .arg(&ex.dir)
                .arg("-P")
                .arg(ex.dir.join("k.pid"));
            c
        }
    };
    cmd.current_dir(&ex.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    let child = cmd.spawn().expect("start server");
    let s = Server {
        child,
        port,
        name: "server",
        dir: ex.dir.clone(),
    };
    wait_ready(&s, &ex);
    (s, ex)
}

/// Waits (bounded) until the server answers an OPTIONS to itself (the example replies 200
/// to OPTIONS for its own address).
fn wait_ready(s: &Server, ex: &Example) {
    let sock = client();
    for i in 0..100 {
        let msg = request(
            "OPTIONS",
            &format!("sip:127.0.0.1:{}", s.port),
            &sock,
            &format!("ready-{i}"),
            "",
        );
        let _ = sock.send_to(msg.as_bytes(), ("127.0.0.1", s.port));
        if recv(&sock, 100).is_some() {
            return;
        }
    }
    let log = std::fs::read_to_string(ex.dir.join("server.log")).unwrap_or_default();
    panic!("server did not answer on port {}:\n{log}", s.port);
}

/// A sipp process; killed if still running when dropped.
struct Sipp {
    child: Child,
    name: String,
    dir: PathBuf,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sipp {
    /// Waits (bounded) for sipp to finish; true when every call succeeded.
    fn wait(mut self, limit: Duration) -> (bool, String) {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    let log = std::fs::read_to_string(self.dir.join(format!("{}.err", self.name)))
                        .unwrap_or_default();
                    return (st.success(), log);
                }
                Ok(None) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => return (false, format!("{}: timed out", self.name)),
            }
        }
    }
}

/// Starts sipp on `scenario` against the server, as user `service` (password `<user>pw`).
fn sipp(
    s: &Server,
    ex: &Example,
    name: &str,
    scenario: &Path,
    service: &str,
    local_port: u16,
    keys: &[(&str, String)],
) -> Sipp {
    let mut cmd = Command::new("sipp");
    cmd.arg(format!("127.0.0.1:{}", s.port))
        .arg("-sf")
        .arg(scenario)
        .args(["-i", "127.0.0.1", "-m", "1", "-nostdin"])
        .args(["-p", &local_port.to_string()])
        .args([
            "-s",
            service,
            "-au",
            service,
            "-ap",
            &format!("{service}pw"),
        ])
        .args(["-timeout", "60s", "-timeout_error"])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(ex.dir.join(format!("{name}.msg")))
        .arg("-trace_err")
        .arg("-error_file")
        .arg(ex.dir.join(format!("{name}.err")));
    for (k, v) in keys {
        cmd.args(["-key", k, v]);
    }
    let child = cmd
        .current_dir(&ex.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp");
    Sipp {
        child,
        name: name.to_string(),
        dir: ex.dir.clone(),
    }
}

fn scenario(name: &str) -> PathBuf {
    root().join("tests/sipp/kemi").join(name)
}

/// `uac_fail.xml` expecting `code`.
fn fail_scenario(ex: &Example, code: u16) -> PathBuf {
    let text = std::fs::read_to_string(scenario("uac_fail.xml")).expect("uac_fail.xml");
    let p = ex.dir.join(format!("uac_fail_{code}.xml"));
    std::fs::write(&p, text.replace("@CODE@", &code.to_string())).expect("write scenario");
    p
}

/// Runs every flow against `target`; returns a description of each failure.
fn flows(target: Target, routing: Routing) -> Outcome {
    let (s, ex) = start(target, routing);
    let failures = std::cell::RefCell::new(Vec::new());
    let check = |what: &str, (ok, log): (bool, String)| {
        if !ok {
            failures
                .borrow_mut()
                .push(format!("{target:?}/{routing:?}: {what} failed: {log}"));
        }
    };
    let limit = Duration::from_secs(60);
    // Callees: each registers a contact where a sipp UAS (or nobody, for erin) listens.
    let uas_ports: Vec<u16> = USERS.iter().map(|_| free_port()).collect();
    for (i, u) in USERS.iter().enumerate().skip(1) {
        let reg = sipp(
            &s,
            &ex,
            &format!("register-{u}"),
            &scenario("register.xml"),
            u,
            free_port(),
            &[("contact_port", uas_ports[i].to_string())],
        );
        check(&format!("REGISTER {u}"), reg.wait(limit));
    }
    let port_of = |u: &str| uas_ports[USERS.iter().position(|x| *x == u).unwrap_or(0)];

    // Answered call with a retransmitted INVITE.
    let uas = sipp(
        &s,
        &ex,
        "uas-bob",
        &scenario("uas_answer.xml"),
        "bob",
        port_of("bob"),
        &[],
    );
    let uac = sipp(
        &s,
        &ex,
        "call-bob",
        &scenario("uac_call.xml"),
        "alice",
        free_port(),
        &[("callee", "bob".into())],
    );
    check("call alice->bob (caller)", uac.wait(limit));
    check("call alice->bob (callee)", uas.wait(limit));
    let msgs = std::fs::read_to_string(ex.dir.join("uas-bob.msg")).unwrap_or_default();
    let invites = msgs.matches("INVITE sip:").count();
    if invites != 1 {
        failures.borrow_mut().push(format!(
            "{target:?}: callee saw {invites} INVITEs (the retransmission must be absorbed)"
        ));
    }
    if !msgs.contains("Record-Route:") {
        failures.borrow_mut().push(format!(
            "{target:?}: INVITE to the callee has no Record-Route"
        ));
    }

    // Cancelled while ringing.
    let uas = sipp(
        &s,
        &ex,
        "uas-dave",
        &scenario("uas_cancel.xml"),
        "dave",
        port_of("dave"),
        &[],
    );
    let uac = sipp(
        &s,
        &ex,
        "call-dave",
        &scenario("uac_cancel.xml"),
        "alice",
        free_port(),
        &[("callee", "dave".into())],
    );
    check("CANCEL alice->dave (caller)", uac.wait(limit));
    check("CANCEL alice->dave (callee)", uas.wait(limit));

    // Busy: 486 through failure_route.
    let uas = sipp(
        &s,
        &ex,
        "uas-carol",
        &scenario("uas_busy.xml"),
        "carol",
        port_of("carol"),
        &[],
    );
    let uac = sipp(
        &s,
        &ex,
        "call-carol",
        &fail_scenario(&ex, 486),
        "alice",
        free_port(),
        &[("callee", "carol".into())],
    );
    check("busy alice->carol (caller)", uac.wait(limit));
    check("busy alice->carol (callee)", uas.wait(limit));

    // Unknown user.
    let uac = sipp(
        &s,
        &ex,
        "call-nobody",
        &fail_scenario(&ex, 404),
        "alice",
        free_port(),
        &[("callee", "nobody".into())],
    );
    check("call to an unknown user", uac.wait(limit));

    // Nobody answers at erin's contact: 408 when fr_timer (30 s in the example) expires.
    let uac = sipp(
        &s,
        &ex,
        "call-erin",
        &fail_scenario(&ex, 408),
        "alice",
        free_port(),
        &[("callee", "erin".into())],
    );
    check("unanswered call (408)", uac.wait(Duration::from_secs(90)));

    let mut failures = failures.into_inner();
    if !failures.is_empty() {
        let log = std::fs::read_to_string(ex.dir.join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        failures.push(format!(
            "{target:?} server log (last lines, newest first):\n{}",
            tail.join("\n")
        ));
    }
    drop(s);
    Outcome {
        failures,
        db: db_summary(&ex.db, routing),
        ua: ua_view(&ex.dir),
    }
}

/// What one run of the flows produced.
#[derive(Default)]
struct Outcome {
    failures: Vec<String>,
    db: Vec<String>,
    ua: Vec<String>,
}

/// Runs the flows for each (target, routing) at once (each set takes ~35 s, mostly the 408
/// timer) and returns their outcomes in the same order.
fn run_all(runs: &[(Target, Routing)]) -> Vec<Outcome> {
    let handles: Vec<_> = runs
        .iter()
        .map(|&(t, r)| std::thread::spawn(move || flows(t, r)))
        .collect();
    handles
        .into_iter()
        .zip(runs)
        .map(|(h, (t, r))| {
            h.join().unwrap_or_else(|_| Outcome {
                failures: vec![format!("{t:?}/{r:?} flows panicked")],
                ..Outcome::default()
            })
        })
        .collect()
}

/// Fails with every flow failure of every run.
fn assert_flows_passed(outcomes: &[Outcome]) {
    let failures: Vec<&String> = outcomes.iter().flat_map(|o| &o.failures).collect();
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// The lines of `got` that differ from `want`, for a readable assertion message.
/// Two views are the same when they differ at most by a provisional reply that one run's caller
/// never saw: with several workers a call's 18x and its final reply can be relayed in either
/// order (Kamailio's UDP workers race the same way), and sipp drops a 18x that comes after the
/// final reply. When both callers saw a 18x of a call, those 18x are compared as usual.
fn same_view(want: &[String], got: &[String]) -> bool {
    fn provisional(l: &str) -> Option<&str> {
        let (call, rest) = l.split_once(": ")?;
        rest.starts_with("18").then_some(call)
    }
    let keep = |v: &[String], other: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| match provisional(l) {
                Some(call) => other.iter().any(|o| provisional(o) == Some(call)),
                None => true,
            })
            .cloned()
            .collect()
    };
    keep(want, got) == keep(got, want)
}

fn view_diff(want: &[String], got: &[String]) -> String {
    let mut out = String::new();
    for l in want.iter().filter(|l| !got.contains(l)) {
        out.push_str(&format!("- {l}\n"));
    }
    for l in got.iter().filter(|l| !want.contains(l)) {
        out.push_str(&format!("+ {l}\n"));
    }
    if out.is_empty() && want != got {
        out.push_str("same messages, different order\n");
    }
    out
}

/// What the user agents saw: for every sipp run of the flows, each SIP message it received —
/// the method or status line and its header names in order, with the CSeq method and whether
/// To has a tag — without the values that change from run to run (ports, tags, branches,
/// times). Consecutive repeats (retransmissions, whose number depends on timing) count once.
fn ua_view(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "msg"));
    files.sort();
    let mut view = Vec::new();
    for f in files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let mut seen: Vec<String> = Vec::new();
        for chunk in text.split("-----------------------------------------------") {
            let mut lines = chunk.lines().skip(1);
            if !lines.next().is_some_and(|l| l.contains("message received")) {
                continue;
            }
            let mut lines = lines.skip_while(|l| l.trim().is_empty());
            let Some(start) = lines.next() else { continue };
            let start = match start.strip_prefix("SIP/2.0 ") {
                Some(status) => status.to_string(),
                None => start.split(' ').next().unwrap_or("").to_string(),
            };
            let mut hdrs = Vec::new();
            for l in lines.take_while(|l| !l.trim().is_empty()) {
                let Some((n, v)) = l.split_once(':') else {
                    continue;
                };
                let n = n.trim().to_ascii_lowercase();
                let item = match n.as_str() {
                    "cseq" => format!("cseq({})", v.split_whitespace().nth(1).unwrap_or("")),
                    "to" | "t" => format!("to(tag={})", v.contains(";tag=")),
                    _ => n,
                };
                hdrs.push(item);
            }
            let entry = format!("{name}: {start} [{}]", hdrs.join(","));
            if seen.last() != Some(&entry) {
                seen.push(entry);
            }
        }
        view.extend(seen);
    }
    view
}

/// Accounting and location rows the flows left in the database, without the values that
/// change from run to run (ports, tags, times), sorted.
fn db_summary(db: &Path, routing: Routing) -> Vec<String> {
    let proxy = "select 'acc', method, sip_code, sip_reason from acc; \
             select 'missed', method, sip_code, sip_reason from missed_calls; \
             select 'location', username, substr(contact, 1, instr(contact, '@')), q, cseq, user_agent, methods, cflags, expires > 0 from location;";
    let q = if routing == Routing::Proxy {
        proxy
    } else {
        "select 'acc', method, sip_code, sip_reason, src_user, src_domain, src_ip, dst_ouser, dst_user, dst_domain from acc; \
             select 'missed', method, sip_code, sip_reason, src_user, src_domain, src_ip, dst_ouser, dst_user, dst_domain from missed_calls; \
             select 'location', username, substr(contact, 1, instr(contact, '@')), q, cseq, user_agent, methods, cflags, expires > 0 from location;"
    };
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(q)
        .output()
        .expect("run sqlite3");
    let mut rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

fn tools_available() -> bool {
    Path::new(EXAMPLES).join("kamailio-basic-kemi.cfg").exists()
        && Command::new("sipp").arg("-v").output().is_ok()
        && Command::new("sqlite3").arg("-version").output().is_ok()
}

#[test]
fn basic_kemi_flows_on_kamailio_validate_the_test() {
    assert!(
        tools_available() && kamailio_available(),
        "needs kamailio, sipp and sqlite3 (run .ci/run)"
    );
    let runs = [
        (Target::Kamailio, Routing::Native),
        (Target::Kamailio, Routing::Lua),
        // Not Python: Kamailio 5.6's app_python3 makes `KSR.tm.t_relay()` raise
        // (`SystemError ... ksr_onsend_route`) now and then when the script has no onsend
        // function, which breaks calls at random; ksr's Python run is compared with
        // Kamailio's native routes instead (below).
    ];
    let out = run_all(&runs);
    assert_flows_passed(&out);
    // What the flows must leave in the database: the answered call and its BYE accounted,
    // the cancelled, busy and unanswered calls as missed calls, four registered contacts.
    let expected = [
        "acc|BYE|200|OK|alice|127.0.0.1|127.0.0.1|bob|bob|127.0.0.1",
        "acc|INVITE|200|OK|alice|127.0.0.1|127.0.0.1|bob|bob|127.0.0.1",
        "location|bob|sip:bob@|-1.0|2|ksr-test||0|1",
        "location|carol|sip:carol@|-1.0|2|ksr-test||0|1",
        "location|dave|sip:dave@|-1.0|2|ksr-test||0|1",
        "location|erin|sip:erin@|-1.0|2|ksr-test||0|1",
        "missed|INVITE|408|Request Timeout|alice|127.0.0.1|127.0.0.1|erin|erin|127.0.0.1",
        "missed|INVITE|486|Busy Here|alice|127.0.0.1|127.0.0.1|carol|carol|127.0.0.1",
        "missed|INVITE|487|Request Terminated|alice|127.0.0.1|127.0.0.1|dave|dave|127.0.0.1",
    ];
    for (o, (_, r)) in out.iter().zip(&runs) {
        assert_eq!(o.db, expected, "{r:?}");
    }
    // The user agents see the same messages whatever the routing language.
    for (o, (_, r)) in out.iter().zip(&runs).skip(1) {
        assert!(
            same_view(&out[0].ua, &o.ua),
            "{r:?} vs native:\n{}",
            view_diff(&out[0].ua, &o.ua)
        );
    }
    // A sanity check of the view itself: the answered call's caller saw 100, 180, 200.
    for want in [
        "call-bob: 100 ",
        "call-bob: 180 Ringing",
        "call-bob: 200 OK",
    ] {
        assert!(
            out[0].ua.iter().any(|l| l.starts_with(want)),
            "{want} missing in {:#?}",
            out[0].ua
        );
    }
}

/// The same flows on ksr must pass, leave the same database rows as on Kamailio, and show the
/// user agents the same messages, with the native routes and with the Lua script.
#[test]
fn basic_kemi_flows_on_ksr_match_kamailio() {
    assert!(
        tools_available() && kamailio_available(),
        "needs kamailio, sipp and sqlite3 (run .ci/run)"
    );
    let runs = [
        (Target::Kamailio, Routing::Native),
        (Target::Ksr, Routing::Native),
        (Target::Ksr, Routing::Lua),
    ];
    let out = run_all(&runs);
    assert_flows_passed(&out);
    for (o, r) in out.iter().zip(&runs).skip(1) {
        assert_eq!(o.db, out[0].db, "{r:?} vs Kamailio");
        assert!(
            same_view(&out[0].ua, &o.ua),
            "{r:?} vs Kamailio:\n{}",
            view_diff(&out[0].ua, &o.ua)
        );
    }
}

/// `WITH_NAT` and `WITH_IPAUTH` on (no RTP proxy answering, empty address table): the Python and
/// JavaScript scripts on ksr behave as the native routes do on Kamailio.
#[test]
fn basic_kemi_python_and_js_on_ksr_match_kamailio() {
    assert!(
        tools_available() && kamailio_available(),
        "needs kamailio, sipp and sqlite3 (run .ci/run)"
    );
    let runs = [
        (Target::Kamailio, Routing::NativeNat),
        (Target::Ksr, Routing::Python),
        (Target::Ksr, Routing::Js),
    ];
    let out = run_all(&runs);
    assert_flows_passed(&out);
    for (o, r) in out.iter().zip(&runs).skip(1) {
        assert_eq!(o.db, out[0].db, "{r:?} vs Kamailio");
        assert!(
            same_view(&out[0].ua, &o.ua),
            "{r:?} vs Kamailio:\n{}",
            view_diff(&out[0].ua, &o.ua)
        );
    }
}

/// ksr's own stateful example runs the same flows on ksr and on Kamailio with the same
/// database rows; on ksr its tables are created on demand.
#[test]
fn proxy_example_flows_on_ksr_and_kamailio() {
    assert!(
        tools_available() && kamailio_available(),
        "needs kamailio, sipp and sqlite3 (run .ci/run)"
    );
    let runs = [
        (Target::Kamailio, Routing::Proxy),
        (Target::Ksr, Routing::Proxy),
    ];
    let out = run_all(&runs);
    assert_flows_passed(&out);
    assert_eq!(out[1].db, out[0].db);
    assert!(
        out[1].ua == out[0].ua,
        "ksr vs Kamailio:\n{}",
        view_diff(&out[0].ua, &out[1].ua)
    );
    assert!(
        out[1].db.iter().any(|r| r == "acc|INVITE|200|OK"),
        "{:#?}",
        out[1].db
    );
}
