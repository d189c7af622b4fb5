//! Differential test of the front-end against Kamailio 5.6's own parser (`kamailio -c`):
//! every cfg Debian's kamailio package ships must be accepted by `ksr` exactly when Kamailio
//! accepts its syntax, and rejected at the same line where Kamailio rejects it.
//!
//! `kamailio -c` also fails for reasons that are not syntax (modules that are not installed,
//! unknown functions, bad pseudo-variables); only its syntax and preprocessor verdicts are
//! compared.

use compiler::frontend;
use compiler::preprocess::Options;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules";

#[derive(Debug)]
struct OracleVerdict {
    /// Lines (in the main file) of syntax/preprocessor errors Kamailio reported.
    syntax_error_lines: Vec<usize>,
    /// Kamailio reported a syntax error in a file other than the main one, or one without a
    /// line (preprocessor balance, unterminated comment).
    other_syntax_error: bool,
}

fn kamailio() -> PathBuf {
    let p = PathBuf::from("/usr/sbin/kamailio");
    assert!(
        p.exists(),
        "Kamailio 5.6 is the oracle of this test: install the Debian package `kamailio` (CI does, see .ci/run)"
    );
    p
}

fn is_syntax_message(msg: &str) -> bool {
    let m = msg.trim();
    m.starts_with("syntax error")
        || m.starts_with("bad command")
        || m.is_empty()
        || m.contains("invalid subst")
        || m.starts_with("bad ")
}

fn oracle(cfg: &Path, defines: &[String]) -> OracleVerdict {
    let mut cmd = Command::new(kamailio());
    cmd.arg("-c").arg("-f").arg(cfg).arg("-L").arg(MODULES);
    for d in defines {
        cmd.arg("-A").arg(d);
    }
    let out = cmd.output().expect("run kamailio -c");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let main = cfg.to_string_lossy().to_string();
    let mut v = OracleVerdict {
        syntax_error_lines: Vec::new(),
        other_syntax_error: false,
    };
    for line in text.lines() {
        if line.contains("pp_ifdef_level_error")
            || line.contains("unexpected EOF")
            || line.contains("cannot open included file")
            || line.contains("too many includes")
        {
            v.other_syntax_error = true;
            continue;
        }
        let Some(rest) = line.split("parse error in config file ").nth(1) else {
            continue;
        };
        // "<file>, line L, column C[-C2]: MSG" or "<file>, from line L, column C to ...: MSG"
        let Some((file, tail)) = rest.split_once(", ") else {
            continue;
        };
        let msg = tail.split_once(": ").map(|x| x.1).unwrap_or("");
        if !is_syntax_message(msg) {
            continue;
        }
        let line_no = tail
            .trim_start_matches("from ")
            .strip_prefix("line ")
            .and_then(|t| t.split(',').next())
            .and_then(|n| n.trim().parse::<usize>().ok());
        match line_no {
            Some(l) if file == main => v.syntax_error_lines.push(l),
            _ => v.other_syntax_error = true,
        }
    }
    v
}

struct Ours {
    error_lines: Vec<(String, usize)>,
}

fn ours(cfg: &Path, defines: &[String]) -> Ours {
    let opts = Options {
        defines: defines
            .iter()
            .map(|d| match d.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (d.clone(), None),
            })
            .collect(),
    };
    let r = frontend::parse_file(cfg, &opts).expect("read cfg");
    Ours {
        error_lines: r
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| (r.sources.path(d.span.file), r.sources.line_col(d.span).0))
            .collect(),
    }
}

fn compare(cfg: &Path, defines: &[String], failures: &mut Vec<String>) {
    let o = oracle(cfg, defines);
    let k = ours(cfg, defines);
    let kamailio_ok = o.syntax_error_lines.is_empty() && !o.other_syntax_error;
    let ksr_ok = k.error_lines.is_empty();
    let what = format!("{} {:?}", cfg.display(), defines);
    if kamailio_ok != ksr_ok {
        failures.push(format!(
            "{what}: kamailio syntax ok={kamailio_ok} (lines {:?}, other={}), ksr ok={ksr_ok} ({:?})",
            o.syntax_error_lines, o.other_syntax_error, k.error_lines
        ));
        return;
    }
    if let Some(first) = o.syntax_error_lines.first() {
        let main = cfg.to_string_lossy().to_string();
        let ours_first = k
            .error_lines
            .iter()
            .find(|(f, _)| *f == main)
            .map(|(_, l)| *l);
        if ours_first != Some(*first) {
            failures.push(format!(
                "{what}: kamailio's first syntax error is at line {first}, ours at {ours_first:?}"
            ));
        }
    }
}

fn example_cfgs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/usr/share/doc/kamailio/examples")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".cfg")
                || p.to_string_lossy().ends_with(".cfg.sample")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn default_cfg_with_each_define_matches_kamailio() {
    let cfg = PathBuf::from("/etc/kamailio/kamailio.cfg");
    kamailio();
    let text = std::fs::read_to_string(&cfg)
        .expect("/etc/kamailio/kamailio.cfg from the kamailio package");
    let mut defs: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("WITH_"))
        .map(String::from)
        .collect();
    defs.sort();
    defs.dedup();
    assert!(defs.len() > 5, "expected WITH_* defines in the default cfg");
    let mut failures = Vec::new();
    compare(&cfg, &[], &mut failures);
    compare(&cfg, &defs, &mut failures);
    for d in &defs {
        compare(&cfg, std::slice::from_ref(d), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_example_cfgs_match_kamailio() {
    kamailio();
    let cfgs = example_cfgs();
    assert!(
        cfgs.len() > 40,
        "expected the example configs of the kamailio package"
    );
    let mut failures = Vec::new();
    for cfg in &cfgs {
        compare(cfg, &[], &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
