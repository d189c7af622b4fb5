//! acc: `acc_log_request`/`acc_db_request` on ksr and on Kamailio 5.6 with the same cfg
//! (tests/data/acc.cfg) and messages; the log records (timestamps aside) and the database
//! rows (ids and times aside) must be the same.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

fn create_db(path: &Path) {
    let schema = std::fs::read_to_string("/usr/share/kamailio/db_sqlite/acc-create.sql")
        .expect("Kamailio's SQLite schema (kamailio-sqlite-modules)");
    let standard = std::fs::read_to_string("/usr/share/kamailio/db_sqlite/standard-create.sql")
        .expect("standard-create.sql");
    let sql = format!(
        "{standard}{schema}ALTER TABLE acc ADD COLUMN src_user VARCHAR(64) NOT NULL DEFAULT '';\nALTER TABLE acc ADD COLUMN ua VARCHAR(64) NOT NULL DEFAULT '';\nALTER TABLE acc ADD COLUMN nope VARCHAR(64);\n"
    );
    let mut child = Command::new("sqlite3")
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sqlite3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(sql.as_bytes()).expect("write schema");
    }
    assert!(child.wait().expect("sqlite3").success());
}

/// The `ACC:` records in a server log, timestamps removed.
fn records(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.find("ACC: ").map(|i| &l[i..]))
        // The readiness probes are OPTIONS.
        .filter(|r| !r.contains("method=OPTIONS"))
        .map(|r| {
            let mut out = String::new();
            for (i, part) in r.split(';').enumerate() {
                if i > 0 {
                    out.push(';');
                }
                if let Some(p) = part.find("timestamp=") {
                    out.push_str(&part[..p + "timestamp=".len()]);
                    out.push('T');
                } else {
                    out.push_str(part);
                }
            }
            out
        })
        .collect()
}

fn rows(db: &Path) -> Vec<String> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("select method, from_tag, to_tag, callid, sip_code, sip_reason, typeof(time), abs(time - julianday('now')) < 0.01, src_user, ua, coalesce(nope, 'NULL') from acc where method != 'OPTIONS' order by id")
        .output()
        .expect("sqlite3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn run(kamailio: bool) -> (Vec<String>, Vec<String>) {
    let dir = std::env::temp_dir().join(format!(
        "ksr-acc-{}-{}-{}",
        std::process::id(),
        kamailio,
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("acc.sqlite");
    create_db(&db);
    let url = format!("DBURL=\"sqlite:///{}\"", db.display());
    let cfg = root().join("tests/data/acc.cfg");
    let s = if kamailio {
        start_kamailio(&cfg, &[&url, "WITH_TM"])
    } else {
        start_ksr(&cfg, &[&url])
    };
    let c = client();
    let dst = format!("sip:bob@127.0.0.1:{}", s.port);
    // A dialog-creating request (no To tag: the database refuses the row, as in Kamailio)
    // and an in-dialog one.
    let m = request("INVITE", &dst, &c, "acc-1", "User-Agent: UA one\r\n");
    assert!(exchange(&s, &c, &m).is_some());
    let m = request("BYE", &dst, &c, "acc-2", "User-Agent: UA two\r\n").replacen(
        "To: <sip:bob@127.0.0.1>",
        "To: <sip:bob@127.0.0.1>;tag=tt9",
        1,
    );
    assert!(m.contains(";tag=tt9"), "{m}");
    assert!(exchange(&s, &c, &m).is_some());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let name = s.name;
    let log_path = s.dir.join(format!("{name}.log"));
    drop(s);
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    (records(&log), rows(&db))
}

#[test]
fn acc_requests_match_kamailio() {
    let (log, db) = run(false);
    assert_eq!(log.len(), 6, "{log:#?}");
    assert!(log[2].contains(";code=;reason=7;"), "{log:#?}");
    assert!(
        log[0].starts_with("ACC: request accounted: timestamp=T;method=INVITE;from_tag="),
        "{log:#?}"
    );
    assert!(
        log[0].contains(";code=403;reason=Forbidden Stuff;src_user="),
        "{log:#?}"
    );
    assert!(log[1].contains(";code=;reason=some comment;"), "{log:#?}");
    assert_eq!(db.len(), 1, "{db:#?}");
    assert!(db[0].starts_with("BYE|"), "{db:#?}");
    if kamailio_available() {
        let (klog, kdb) = run(true);
        assert_eq!(log, klog);
        assert_eq!(db, kdb);
    }
}
