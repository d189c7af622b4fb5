//! alias_db and speeddial on SQLite (tests/data/dbmods.cfg): `alias_db_lookup` (plain, table
//! from a variable, the `r`/`d`/`u` flags, a missing table), `alias_db_find` into an AVP or a
//! script variable, `sd_lookup` with the From user or an owner URI. Two rounds of module
//! parameters (defaults; then `use_domain`, `append_branches` and `domain_prefix`), each also
//! through KEMI from Lua (`KSR.alias_db.lookup/lookup_ex`, `KSR.speeddial.lookup/lookup_owner`,
//! tests/data/dbmods.lua). Kamailio 5.6
//! runs the same cfg on its own copy of the database; the replies must agree. Set
//! KSR_SKIP_ORACLE=1 to skip where Kamailio is not installed.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const SCHEMA: &str = "CREATE TABLE dbaliases (id INTEGER PRIMARY KEY NOT NULL, alias_username VARCHAR(64) DEFAULT '' NOT NULL, alias_domain VARCHAR(64) DEFAULT '' NOT NULL, username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL);
CREATE INDEX dbaliases_alias_user_idx ON dbaliases (alias_username);
CREATE INDEX dbaliases_alias_idx ON dbaliases (alias_username, alias_domain);
CREATE INDEX dbaliases_target_idx ON dbaliases (username, domain);
CREATE TABLE speed_dial (id INTEGER PRIMARY KEY NOT NULL, username VARCHAR(64) DEFAULT '' NOT NULL, domain VARCHAR(64) DEFAULT '' NOT NULL, sd_username VARCHAR(64) DEFAULT '' NOT NULL, sd_domain VARCHAR(64) DEFAULT '' NOT NULL, new_uri VARCHAR(255) DEFAULT '' NOT NULL, fname VARCHAR(64) DEFAULT '' NOT NULL, lname VARCHAR(64) DEFAULT '' NOT NULL, description VARCHAR(64) DEFAULT '' NOT NULL, CONSTRAINT speed_dial_speed_dial_idx UNIQUE (username, domain, sd_domain, sd_username));
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('bob', '127.0.0.1', 'robert', 'example.com');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('bob', 'other.org', 'bobby', 'other.org');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('multi', '127.0.0.1', 'm1', 'a.com');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('multi', '127.0.0.1', 'm2', 'b.com');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('multi', 'x.org', 'm3', 'c.com');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('alice', '127.0.0.1', 'alice-real', 'example.com');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('pre', 'example.net', 'pre-user', 'example.net');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('bobalias', '127.0.0.1', 'bob', '127.0.0.1');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('bobalias2', 'y.org', 'bob', '127.0.0.1');
INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('ma', 'z.org', 'm1', 'a.com');
INSERT INTO speed_dial (username, domain, sd_username, sd_domain, new_uri) VALUES ('alice', '127.0.0.1', '1', '127.0.0.1', 'sip:bob@example.com');
INSERT INTO speed_dial (username, domain, sd_username, sd_domain, new_uri) VALUES ('alice', '127.0.0.1', '2', '127.0.0.1', 'carol@example.com');
INSERT INTO speed_dial (username, domain, sd_username, sd_domain, new_uri) VALUES ('alice', 'other', '1', '127.0.0.1', 'sip:wrong@x.org');
INSERT INTO speed_dial (username, domain, sd_username, sd_domain, new_uri) VALUES ('alice', '127.0.0.1', '3', 'other.host', 'sip:three@x.org');
INSERT INTO speed_dial (username, domain, sd_username, sd_domain, new_uri) VALUES ('carol', 'example.com', '1', 'example.net', 'sip:carol-1@example.com');
INSERT INTO speed_dial (username, domain, sd_username, sd_domain, new_uri) VALUES ('alice', '127.0.0.1', '4', 'example.net', 'sips:four@x.org')";

fn make_db(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut d = runtime::db::Sqlite::open(path).expect("create db");
    for stmt in SCHEMA.split(";\n") {
        runtime::db::Db::raw_query(&mut d, stmt).expect("schema");
    }
}

/// (X-Op, R-URI user@host, extra headers)
const CASES: &[(&str, &str, &str)] = &[
    ("l1", "bob@127.0.0.1", ""),
    ("l1", "bob@other.org", ""),
    ("l1", "nobody@127.0.0.1", ""),
    ("l1", "multi@127.0.0.1", ""),
    ("l1", "pre@sip.example.net", ""),
    ("lpv", "multi@x.org", ""),
    ("lr", "m1@a.com", ""),
    ("lr", "bob@127.0.0.1", ""),
    ("ld", "multi@nowhere", ""),
    ("lu", "bob@other.org", ""),
    ("lu", "pre@SIP.example.net", ""),
    ("lrd", "bob@elsewhere", ""),
    ("lnotab", "bob@127.0.0.1", ""),
    ("f3", "x@127.0.0.1", ""),
    ("f4r", "x@127.0.0.1", ""),
    ("f4ru", "m1@a.com", ""),
    ("fv", "multi@x.org", ""),
    ("fv", "none@x.org", ""),
    ("s1", "1@127.0.0.1", ""),
    ("s1", "2@127.0.0.1", ""),
    ("s1", "3@127.0.0.1", ""),
    ("s1", "4@sip.example.net", ""),
    ("s1", "9@127.0.0.1", ""),
    ("s2", "1@example.net", ""),
    ("s2", "1@sip.example.net", ""),
    ("s2pv", "1@127.0.0.1", "X-Owner: sip:alice@127.0.0.1\r\n"),
    ("s2pv", "1@127.0.0.1", "X-Owner: bad uri\r\n"),
];

/// The same through KEMI (tests/data/dbmods.lua): (X-Op, R-URI user@host).
const LUA_CASES: &[(&str, &str, &str)] = &[
    ("kl1", "bob@127.0.0.1", ""),
    ("kl1", "bob@other.org", ""),
    ("kl1", "multi@127.0.0.1", ""),
    ("kl1", "nobody@127.0.0.1", ""),
    ("klr", "m1@a.com", ""),
    ("kld", "bob@other.org", ""),
    ("klu", "bob@other.org", ""),
    ("klu", "pre@sip.example.net", ""),
    ("ks1", "1@127.0.0.1", ""),
    ("ks1", "3@127.0.0.1", ""),
    ("ks2", "1@sip.example.net", ""),
    ("ks3", "2@127.0.0.1", ""),
    ("ks4", "2@127.0.0.1", ""),
];

fn observe(kamailio: bool, lua: bool, round: &[&str]) -> Vec<String> {
    let base: PathBuf = std::env::temp_dir().join(format!(
        "ksr-dbmods-{}-{}-{}",
        std::process::id(),
        if kamailio { "k" } else { "ksr" },
        free_port()
    ));
    let db = base.with_extension("sqlite");
    make_db(&db);
    let mut defs = vec![format!("DBURL=\"sqlite:///{}\"", db.display())];
    defs.extend(round.iter().map(|s| s.to_string()));
    if lua {
        defs.push(format!(
            "LUA=\"{}\"",
            root().join("tests/data/dbmods.lua").display()
        ));
    }
    let defs: Vec<&str> = defs.iter().map(String::as_str).collect();
    let cfg = root().join(if lua {
        "tests/data/dbmods-lua.cfg"
    } else {
        "tests/data/dbmods.cfg"
    });
    let s = if kamailio {
        start_kamailio(&cfg, &defs)
    } else {
        start_ksr(&cfg, &defs)
    };
    let c = client();
    let mut seen = Vec::new();
    let cases = if lua { LUA_CASES } else { CASES };
    for (i, (op, ruri, extra)) in cases.iter().enumerate() {
        let m = request(
            "OPTIONS",
            &format!("sip:{ruri}"),
            &c,
            &format!("dbm-{i}"),
            &format!("X-Op: {op}\r\n{extra}"),
        );
        let r = exchange(&s, &c, &m).unwrap_or_default();
        let status = r.split("\r\n").next().unwrap_or_default().to_string();
        seen.push(format!(
            "{op} {ruri}: {status} r={:?} u={:?} b={:?} o={:?}",
            header(&r, "X-R"),
            header(&r, "X-U"),
            header(&r, "X-B"),
            header(&r, "X-O")
        ));
    }
    drop(s);
    let _ = std::fs::remove_file(&db);
    seen
}

#[test]
fn alias_db_and_speeddial_match_kamailio() {
    if !kamailio_available() {
        assert!(
            std::env::var("KSR_SKIP_ORACLE").is_ok(),
            "kamailio is not installed (set KSR_SKIP_ORACLE=1 to skip)"
        );
        return;
    }
    let rounds: [&[&str]; 2] = [
        &[],
        &["ALIAS_UD=1", "ALIAS_AB=1", "SD_UD=2", "PFX=\"sip.\""],
    ];
    let mut diffs = Vec::new();
    for (lua, round) in rounds.iter().flat_map(|r| [(false, *r), (true, *r)]) {
        let want = observe(true, lua, round);
        let got = observe(false, lua, round);
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            eprintln!("{round:?} lua={lua} {g}");
            if w != g {
                diffs.push(format!("{round:?}\n  kamailio: {w}\n  ksr:      {g}"));
            }
        }
    }
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}
