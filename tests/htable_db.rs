//! htable with a database (tests/data/htable_db.cfg): tables loaded from SQLite at start-up
//! (plain items, arrays, integer values, custom `cols`), the `htable.*` RPC commands, and
//! `dbmode=1` writing the table back at shutdown. Kamailio 5.6 runs the same cfg on its own
//! copy of the database; replies, RPC results and the rows left behind must agree. Set
//! KSR_SKIP_ORACLE=1 to skip where Kamailio is not installed.

mod common;
use common::*;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "CREATE TABLE htable (id INTEGER PRIMARY KEY NOT NULL, key_name VARCHAR(64) DEFAULT '' NOT NULL, key_type INTEGER DEFAULT 0 NOT NULL, value_type INTEGER DEFAULT 0 NOT NULL, key_value VARCHAR(128) DEFAULT '' NOT NULL, expires INTEGER DEFAULT 0 NOT NULL);
CREATE TABLE htable_c (id INTEGER PRIMARY KEY NOT NULL, key_name VARCHAR(64) NOT NULL, key_value VARCHAR(128), extra VARCHAR(128));
INSERT INTO htable (key_name, key_type, value_type, key_value) VALUES ('k1', 0, 0, 'v1');
INSERT INTO htable (key_name, key_type, value_type, key_value) VALUES ('k2', 0, 1, '42');
INSERT INTO htable (key_name, key_type, value_type, key_value) VALUES ('arr', 1, 0, 'x');
INSERT INTO htable (key_name, key_type, value_type, key_value) VALUES ('arr', 1, 0, 'y');
INSERT INTO htable_c (key_name, key_value, extra) VALUES ('r1', 'kv', NULL);
INSERT INTO htable_c (key_name, key_value, extra) VALUES ('r2', 'a', 'b');";

fn make_db(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut d = runtime::db::Sqlite::open(path).expect("create db");
    for stmt in SCHEMA.split(";\n") {
        runtime::db::Db::raw_query(&mut d, stmt).expect("schema");
    }
}

fn rows(path: &Path) -> Vec<String> {
    let mut d = runtime::db::Sqlite::open(path).expect("open db");
    let r = runtime::db::Db::raw_query(
        &mut d,
        "SELECT key_name, key_type, value_type, key_value, expires FROM htable ORDER BY key_name",
    )
    .expect("select");
    r.rows.iter().map(|row| format!("{row:?}")).collect()
}

fn rpc(sock: &Path, method: &str, params: &[&str]) -> Json {
    rpc_dgram(sock, method, params)
}

/// `htable.get` without its `expire` time (a wall-clock date).
fn without_expire(mut v: Json) -> Json {
    if let Some(item) = v.pointer_mut("/result/item").and_then(Json::as_object_mut) {
        item.remove("expire");
    }
    v
}

fn observe(kamailio: bool) -> Vec<String> {
    let base: PathBuf = std::env::temp_dir().join(format!(
        "ksr-htdb-{}-{}-{}",
        std::process::id(),
        if kamailio { "k" } else { "ksr" },
        free_port()
    ));
    let db = base.with_extension("sqlite");
    let sock = base.with_extension("sock");
    let fifo = base.with_extension("fifo");
    make_db(&db);
    let defs = [
        format!("RPCSOCK=\"{}\"", sock.display()),
        format!("RPCFIFO=\"{}\"", fifo.display()),
        format!("DBURL=\"sqlite:///{}\"", db.display()),
    ];
    let defs: Vec<&str> = defs.iter().map(String::as_str).collect();
    let cfg = root().join("tests/data/htable_db.cfg");
    let s = if kamailio {
        start_kamailio(&cfg, &defs)
    } else {
        start_ksr(&cfg, &defs)
    };
    let mut seen = Vec::new();
    let c = client();
    for user in ["get", "set", "get"] {
        let m = request(
            "OPTIONS",
            &format!("sip:{user}@127.0.0.1:{}", s.port),
            &c,
            &format!("ht-{user}-{}", seen.len()),
            "",
        );
        let r = exchange(&s, &c, &m).unwrap_or_default();
        seen.push(format!("{user}: {:?}", header(&r, "X-A")));
    }
    let calls: &[(&str, &[&str])] = &[
        ("htable.dump", &["a"]),
        ("htable.dump", &["b"]),
        ("htable.dump", &["c"]),
        ("htable.listTables", &[]),
        ("htable.stats", &[]),
        ("htable.delete", &["a", "k1"]),
        ("htable.delete", &["a", "k1"]),
        ("htable.sets", &["a", "s1", "hello"]),
        ("htable.seti", &["a", "i1", "7"]),
        ("htable.setxi", &["b", "t", "3", "100"]),
        ("htable.setex", &["b", "x", "50"]),
        ("htable.reload", &["c"]),
        ("htable.store", &["b"]),
        ("htable.dump", &["a"]),
        ("htable.flush", &["b"]),
        ("htable.dump", &["b"]),
        ("htable.dump", &["nosuch"]),
        ("htable.sets", &["a"]),
        ("corex.list_sockets", &[]),
        ("corex.list_aliases", &[]),
        ("corex.debug", &[]),
        ("corex.debug", &["3"]),
        ("corex.debug", &[]),
    ];
    for (m, p) in calls {
        let r = rpc(&sock, m, p).to_string();
        seen.push(format!(
            "{m} {p:?}: {}",
            r.replace(&s.port.to_string(), "PORT")
        ));
    }
    for (t, k) in [("a", "k2"), ("b", "t"), ("a", "nokey")] {
        seen.push(format!(
            "get {t} {k}: {}",
            without_expire(rpc(&sock, "htable.get", &[t, k]))
        ));
    }
    // Expired items: the sweep (timer_interval 1) runs the event route for each.
    let m = request(
        "OPTIONS",
        &format!("sip:exp@127.0.0.1:{}", s.port),
        &c,
        "ht-exp",
        "",
    );
    let _ = exchange(&s, &c, &m);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    seen.push(format!("log: {}", rpc(&sock, "htable.dump", &["log"])));
    drop(s);
    // dbmode=1: the table is written back when the server stops.
    seen.extend(rows(&db));
    seen
}

#[test]
fn htable_database_and_rpc_match_kamailio() {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (set KSR_SKIP_ORACLE=1 to skip)"
        );
        return;
    }
    let want = observe(true);
    let got = observe(false);
    assert_same_lines(&want, &got);
}
