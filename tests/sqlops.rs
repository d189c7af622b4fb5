//! sqlops on SQLite: `sql_query` (return codes, `$dbr` rows/cols/cells/column names, indexes
//! from variables, result containers reused and freed), `sql_xquery`, `sql_pvquery`, column
//! types as Kamailio's SQLite driver gives them, on ksr and on Kamailio 5.6 with the same cfg
//! (tests/data/sqlops.cfg) and database: every reply must be the same.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

const CASES: [&str; 9] = [
    "rows", "index", "none", "insert", "error", "free", "expr", "xquery", "pvquery",
];

fn create_db(path: &Path) {
    let sql = "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(64), n INT, big BIGINT, f REAL, note TEXT, t DATETIME);\
        INSERT INTO items (name, n, big, f, note, t) VALUES ('alpha', 42, 9000000000, 1.5, NULL, 2461000.5);\
        INSERT INTO items (name, n, big, f, note, t) VALUES ('beta', -3, 1, 0.25, 'second row', NULL);\
        INSERT INTO items (name, n, big, f, note, t) VALUES ('gamma', 0, NULL, NULL, '', NULL);";
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(out.status.success(), "{out:?}");
}

fn run(kamailio: bool) -> Vec<String> {
    run_cfg(kamailio, false)
}

fn run_cfg(kamailio: bool, lua: bool) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!(
        "ksr-sqlops-{}-{}-{}",
        std::process::id(),
        kamailio,
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("t.sqlite");
    create_db(&db);
    let url = format!("SQLCON=\"c=>sqlite:///{}\"", db.display());
    let script = format!("LUA=\"{}\"", root().join("tests/data/sqlops.lua").display());
    let (cfg, defines) = if lua {
        (
            root().join("tests/data/sqlops-lua.cfg"),
            vec![url.as_str(), script.as_str()],
        )
    } else {
        (root().join("tests/data/sqlops.cfg"), vec![url.as_str()])
    };
    let s = if kamailio {
        start_kamailio(&cfg, &defines)
    } else {
        start_ksr(&cfg, &defines)
    };
    let c = client();
    let mut out = Vec::new();
    let cases: &[&str] = if lua { &["lua"] } else { &CASES };
    for &case in cases {
        let m = request(
            "MESSAGE",
            &format!("sip:{case}@127.0.0.1:{}", s.port),
            &c,
            case,
            "",
        );
        let reply = exchange(&s, &c, &m).unwrap_or_default();
        out.push(format!("{case}: {}", status_line(&reply)));
    }
    out
}

#[test]
fn sqlops_matches_kamailio() {
    let got = run(false);
    // What the cases must show whatever the oracle says (the test cannot pass empty).
    let must = [
        "rows: SIP/2.0 200 rc=1 rows=3 cols=6 c0=name c5=t v00=alpha v01=42 v02=9000000000 v03=<null> v04=<null>",
        "index: SIP/2.0 200 v=beta n=n",
        "none: SIP/2.0 200 none=2 rows=0 noresult=3",
        "insert: SIP/2.0 200 insert=2 count=1",
        "error: SIP/2.0 200 error=-1 rows=0",
        "free: SIP/2.0 200 free=1 rows=0 v=<null>",
    ];
    for m in must {
        assert!(
            got.iter().any(|g| g.starts_with(m)),
            "{m:?} not in {got:#?}"
        );
    }
    if kamailio_available() {
        assert_eq!(got, run(true));
    }
}

#[test]
fn sqlops_from_lua_matches_kamailio() {
    let got = run_cfg(false, true);
    let want = "lua: SIP/2.0 200 q=0 rows=3 cols=3 g00=alpha g01=42 g02=nil e02=[] z02=0 g90=nil null02=1 null00=0 null90=-1 err=-1 none=0 x=1 xn=1 x1=beta p=1 a=alpha b=42 free=1 after=0";
    assert_eq!(got, [want]);
    if kamailio_available() {
        assert_eq!(got, run_cfg(true, true));
    }
}
