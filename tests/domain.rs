//! The domain module (tests/data/domain.cfg): `domain` and `domain_attrs` rows loaded from
//! SQLite, `is_from_local`, `is_uri_host_local`, `is_domain_local`, `lookup_domain` (the AVPs
//! it adds, with and without prefix), `register_myself` (`uri == myself` for a domain of the
//! table, any port), and the `domain.dump` / `domain.reload` RPC commands. Kamailio 5.6 runs
//! the same cfg on its own copy of the database; replies and RPC results must agree. Set
//! KSR_SKIP_ORACLE=1 to skip where Kamailio is not installed.

mod common;
use common::*;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "CREATE TABLE version (id INTEGER PRIMARY KEY NOT NULL, table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL, CONSTRAINT version_table_name_idx UNIQUE (table_name));
INSERT INTO version (table_name, table_version) values ('version','1');
CREATE TABLE domain (id INTEGER PRIMARY KEY NOT NULL, domain VARCHAR(64) NOT NULL, did VARCHAR(64) DEFAULT NULL, last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL, CONSTRAINT domain_domain_idx UNIQUE (domain));
INSERT INTO version (table_name, table_version) values ('domain','2');
CREATE TABLE domain_attrs (id INTEGER PRIMARY KEY NOT NULL, did VARCHAR(64) NOT NULL, name VARCHAR(32) NOT NULL, type INTEGER NOT NULL, value VARCHAR(255) NOT NULL, last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL);
INSERT INTO version (table_name, table_version) values ('domain_attrs','1');
INSERT INTO domain (domain, did) VALUES ('example.com', 'd1');
INSERT INTO domain (domain, did) VALUES ('Alias.Example.org', 'D1');
INSERT INTO domain (domain, did) VALUES ('solo.net', NULL);
INSERT INTO domain (domain, did) VALUES ('bare.io', 'd2');
INSERT INTO domain (domain, did) VALUES ('a.b', 'd3');
INSERT INTO domain (domain, did) VALUES ('zz.example.com', 'd1');
INSERT INTO domain_attrs (did, name, type, value) VALUES ('d1', 'name', 2, 'Alice Corp');
INSERT INTO domain_attrs (did, name, type, value) VALUES ('d1', 'num', 0, '42');
INSERT INTO domain_attrs (did, name, type, value) VALUES ('D1', 'num', 0, '-7');
INSERT INTO domain_attrs (did, name, type, value) VALUES ('solo.net', 'color', 2, 'blue');
INSERT INTO domain_attrs (did, name, type, value) VALUES ('orphan', 'x', 2, 'y');
INSERT INTO domain_attrs (did, name, type, value) VALUES ('d1', 'color', 2, 'red')";

fn exec(path: &Path, sql: &str) {
    let mut d = runtime::db::Sqlite::open(path).expect("open db");
    for stmt in sql.split(";\n") {
        runtime::db::Db::raw_query(&mut d, stmt).expect("sql");
    }
}

fn rpc(sock: &Path, method: &str) -> Json {
    rpc_dgram(sock, method, &[])
}

fn msg(port: u16, ruri: &str, from_host: &str, callid: &str, xd: &str) -> String {
    format!(
        "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{callid};rport\r\nFrom: <sip:alice@{from_host}>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: {callid}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nX-D: {xd}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn ask(s: &Server, seen: &mut Vec<String>) {
    let c = client();
    let port = c.local_addr().map(|a| a.port()).unwrap_or(0);
    let cases: &[(&str, &str, &str)] = &[
        ("sip:u@example.com", "solo.net", "A.B"),
        ("sip:u@EXAMPLE.COM:5099", "Example.Com", "zz.example.com"),
        (
            "sip:u@alias.example.org;transport=tcp",
            "other.org",
            "solo.net",
        ),
        ("sip:u@solo.net", "bare.io", "nothere"),
        ("sip:u@bare.io", "BARE.IO", "Alias.example.ORG"),
        ("sip:u@unknown.example", "10.9.9.9", ""),
        ("sip:u@10.9.9.9", "a.b", "new.example"),
        ("sip:u@new.example", "new.example", "example.com"),
    ];
    for (i, (ruri, from, xd)) in cases.iter().enumerate() {
        let m = msg(port, ruri, from, &format!("dom-{}-{i}", seen.len()), xd);
        let r = exchange(s, &c, &m).unwrap_or_default();
        seen.push(format!(
            "{ruri} from {from} x {xd}: {} | {:?} | {:?} | {:?} | {:?}",
            status_line(&r),
            header(&r, "X-C"),
            header(&r, "X-L"),
            header(&r, "X-P"),
            header(&r, "X-E")
        ));
    }
}

fn observe(kamailio: bool, lua: bool) -> Vec<String> {
    let base: PathBuf = std::env::temp_dir().join(format!(
        "ksr-domain-{}-{}-{}",
        std::process::id(),
        if kamailio { "k" } else { "ksr" },
        free_port()
    ));
    let db = base.with_extension("sqlite");
    let sock = base.with_extension("sock");
    let fifo = base.with_extension("fifo");
    let _ = std::fs::remove_file(&db);
    exec(&db, SCHEMA);
    let defs = [
        format!("RPCSOCK=\"{}\"", sock.display()),
        format!("RPCFIFO=\"{}\"", fifo.display()),
        format!("DBURL=\"sqlite:///{}\"", db.display()),
        format!(
            "LUA_SCRIPT=\"{}\"",
            root().join("tests/data/domain.lua").display()
        ),
    ];
    let defs: Vec<&str> = defs.iter().map(String::as_str).collect();
    let cfg = root().join(if lua {
        "tests/data/domain-lua.cfg"
    } else {
        "tests/data/domain.cfg"
    });
    let s = if kamailio {
        start_kamailio(&cfg, &defs)
    } else {
        start_ksr(&cfg, &defs)
    };
    let mut seen = Vec::new();
    ask(&s, &mut seen);
    seen.push(format!("dump: {}", rpc(&sock, "domain.dump")));
    exec(
        &db,
        "INSERT INTO domain (domain, did) VALUES ('new.example', 'd2');
INSERT INTO domain_attrs (did, name, type, value) VALUES ('d2', 'name', 2, 'Second');
DELETE FROM domain WHERE domain = 'solo.net'",
    );
    seen.push(format!("reload: {}", rpc(&sock, "domain.reload")));
    seen.push(format!("dump: {}", rpc(&sock, "domain.dump")));
    ask(&s, &mut seen);
    // A bad row makes the reload fail and keeps the loaded tables.
    exec(
        &db,
        "INSERT INTO domain_attrs (did, name, type, value) VALUES ('d2', 'bad', 5, 'x')",
    );
    seen.push(format!("reload: {}", rpc(&sock, "domain.reload")));
    seen.push(format!("dump: {}", rpc(&sock, "domain.dump")));
    drop(s);
    let _ = std::fs::remove_file(&db);
    seen
}

#[test]
fn domain_module_matches_kamailio() {
    compare(false);
}

/// The same through KSR.domain.* in Lua (tests/data/domain.lua), on ksr and on Kamailio's
/// app_lua.
#[test]
fn domain_lua_kemi_matches_kamailio() {
    if kamailio_available()
        && !Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so").exists()
    {
        return;
    }
    compare(true);
}

fn compare(lua: bool) {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (set KSR_SKIP_ORACLE=1 to skip)"
        );
        return;
    }
    let want = observe(true, lua);
    let got = observe(false, lua);
    assert_same_lines(&want, &got);
}
