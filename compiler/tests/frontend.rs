//! Front-end tests on real configurations: pretty-printer round trips, the negative-case
//! suite (each error kind at its exact line:col), and random mutations that must never panic.

use compiler::frontend::{ParseResult, parse_file, parse_str};
use compiler::preprocess::Options;
use std::path::{Path, PathBuf};

type Defines = Vec<(String, Option<String>)>;

fn real_cfgs() -> Vec<(PathBuf, Defines)> {
    let mut out = vec![(PathBuf::from("/etc/kamailio/kamailio.cfg"), vec![])];
    let all: Defines = [
        "WITH_MYSQL",
        "WITH_AUTH",
        "WITH_USRLOCDB",
        "WITH_NAT",
        "WITH_ANTIFLOOD",
        "WITH_ACCDB",
        "WITH_IPAUTH",
        "WITH_PSTN",
        "WITH_PRESENCE",
    ]
    .iter()
    .map(|d| (d.to_string(), None))
    .collect();
    out.push((PathBuf::from("/etc/kamailio/kamailio.cfg"), all));
    out.push((
        PathBuf::from("/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi.cfg"),
        vec![],
    ));
    for (p, _) in &out {
        assert!(
            p.exists(),
            "{} missing: install the kamailio package",
            p.display()
        );
    }
    out
}

fn errors(r: &ParseResult) -> Vec<(usize, usize, String)> {
    r.diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let (l, c) = r.sources.line_col(d.span);
            (l, c, d.message.clone())
        })
        .collect()
}

#[test]
fn pretty_printer_round_trips_real_configs() {
    for (path, defs) in real_cfgs() {
        let r = parse_file(
            &path,
            &Options {
                defines: defs.clone(),
            },
        )
        .unwrap();
        let cfg = r.config.as_ref().unwrap();
        let printed = compiler::pretty::print(cfg);
        let r2 = parse_str("printed.cfg", &printed, &Options::default());
        assert!(
            errors(&r2).is_empty(),
            "{} {defs:?}: printed config does not parse: {:?}",
            path.display(),
            errors(&r2)
        );
        let again = compiler::pretty::print(r2.config.as_ref().unwrap());
        assert_eq!(printed, again, "{}: printing is not stable", path.display());
        assert_eq!(cfg.items.len(), r2.config.as_ref().unwrap().items.len());
    }
}

/// Each error kind, reported at its exact place.
#[test]
fn negative_cases_report_exact_positions() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("request_route {\n  xlog(\"a\")\n}\n", (3, 1), "missing ';'"),
        ("#!ifdef A\nx=1\n", (1, 1), "missing #!endif"),
        ("debug=1\n#!else\n", (2, 1), "#!else without"),
        ("#!endif\n", (1, 1), "#!endif without"),
        (
            "include_file \"/nonexistent/x.cfg\"\n",
            (1, 1),
            "cannot open included file",
        ),
        (
            "request_route {\n  $var(x) = \"abc;\n}\n",
            (2, 13),
            "unterminated string",
        ),
        ("debug=1\n/* open\n", (2, 1), "unterminated comment"),
        ("route[a-b] { exit; }\n", (1, 7), "bad route name"),
        (
            "event_route[nocolon] { exit; }\n",
            (1, 13),
            "bad event route name",
        ),
        (
            "request_route { if (x) { exit; } }\n",
            (1, 22),
            "unexpected ')'",
        ),
        ("request_route { t_on_failure(X); }\n", (1, 30), "bare name"),
        ("request_route { foo; }\n", (1, 17), "missing '('"),
        ("statistics=1\n", (1, 1), "unknown core parameter"),
        (
            "request_route { $var(a) = 999.1.1.1; }\n",
            (1, 27),
            "invalid IP address",
        ),
        (
            "request_route { if (src_ip == 1.2.3.4/33) exit; }\n",
            (1, 39),
            "network mask",
        ),
        (
            "request_route[x] { exit; }\n",
            (1, 15),
            "does not take a name",
        ),
        ("#!ifexp (1 +\nx\n#!endif\n", (1, 1), "#!ifexp"),
        ("#!define A 1\n#!define A 2\n", (2, 1), "already defined"),
    ];
    for (src, (line, col), needle) in cases {
        let r = parse_str("neg.cfg", src, &Options::default());
        let errs = errors(&r);
        assert!(
            errs.iter()
                .any(|(l, c, m)| *l == *line && *c == *col && m.contains(needle)),
            "{src:?}: expected '{needle}' at {line}:{col}, got {errs:?}"
        );
    }
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let src = "request_route {\n  a(\"1\")\n  b(\"2\");\n}\nroute[X] {\n  c(\"3\")\n}\n";
    let r = parse_str("multi.cfg", src, &Options::default());
    let errs = errors(&r);
    assert!(errs.len() >= 2, "{errs:?}");
    assert_eq!(errs[0].0, 3);
    assert!(errs.iter().any(|e| e.0 == 7));
}

#[test]
fn random_mutations_never_panic() {
    let mut sources: Vec<Vec<u8>> = Vec::new();
    for (p, _) in real_cfgs() {
        sources.push(std::fs::read(&p).unwrap());
    }
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let dir = std::env::temp_dir().join(format!("ksr-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for src in &sources {
        for _ in 0..250 {
            let mut b = src.clone();
            for _ in 0..(next() % 6 + 1) {
                if b.is_empty() {
                    break;
                }
                let i = (next() as usize) % b.len();
                match next() % 5 {
                    0 => b[i] = next() as u8,
                    1 => {
                        b.remove(i);
                    }
                    2 => b.insert(i, b"{}()\";$#!/*[]"[(next() % 13) as usize]),
                    3 => b.truncate(i),
                    _ => {
                        let j = (next() as usize) % b.len();
                        b.swap(i, j);
                    }
                }
            }
            let text = String::from_utf8_lossy(&b);
            let r = parse_str("mut.cfg", &text, &Options::default());
            let _ = compiler::report::render(&r.sources, &r.diagnostics, false);
            if let Some(c) = &r.config {
                let _ = compiler::pretty::print(c);
            }
        }
    }
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
