//! `ksr check` on configs that parse but cannot run: each problem reported with its place,
//! exit status non-zero, like `kamailio -c`.

mod common;
use common::root;
use std::process::Command;

fn check(text: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("ksr-check-{}-{}", std::process::id(), text.len()));
    let _ = std::fs::create_dir_all(&dir);
    let f = dir.join("t.cfg");
    std::fs::write(&f, text).expect("write cfg");
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["check", "--one-line", "-f"])
        .arg(&f)
        .output()
        .expect("run ksr check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn semantic_errors_are_reported_with_their_line() {
    let (ok, err) = check(
        "loadmodule \"sl.so\"\nloadmodule \"pv.so\"\nrequest_route {\n  nosuch_function(\"x\");\n  sl_send_reply(\"200\");\n  route(MISSING);\n  $var(x = 1;\n}\nreply_route {\n  sl_send_reply(\"200\", \"x\");\n}\n",
    );
    assert!(!ok);
    // The parse error stops before name resolution; fix it and look again.
    assert!(err.contains("line 7"), "{err}");
    let (ok, err) = check(
        "loadmodule \"sl.so\"\nloadmodule \"pv.so\"\nrequest_route {\n  nosuch_function(\"x\");\n  sl_send_reply(\"200\");\n  route(MISSING);\n  $nosuch = 1;\n  xlog(\"L_INFO\", \"x\");\n}\nreply_route {\n  sl_send_reply(\"200\", \"x\");\n}\n",
    );
    assert!(!ok);
    for want in [
        "line 4, column 3-22: unknown function 'nosuch_function'",
        "line 5, column 3-22: function 'sl_send_reply' takes 2 parameter(s), not 1",
        "line 6, column 3-16: route[MISSING] is not defined",
        "line 7, column 3-9: invalid pseudo-variable $nosuch",
        "line 8, column 3-21: unknown function 'xlog'",
        "line 11, column 3-27: function 'sl_send_reply' cannot be used in reply_route",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn the_examples_check_clean() {
    for cfg in [
        "examples/kamailio.cfg",
        "examples/kamailio-lua.cfg",
        "tests/data/semantics.cfg",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
            .args(["check", "-f"])
            .arg(root().join(cfg))
            .output()
            .expect("run ksr check");
        assert!(
            out.status.success(),
            "{cfg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn api_lists_the_exports_every_engine_sees() {
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["api", "--format", "json"])
        .output()
        .expect("run ksr api");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let list = v.as_array().expect("array");
    assert!(list.len() > 200, "{} exports", list.len());
    let has = |m: &str, n: &str, params: &[&str]| {
        list.iter().any(|e| {
            e["module"] == m
                && e["name"] == n
                && e["params"].as_array().is_some_and(|p| {
                    p.len() == params.len() && p.iter().zip(params).all(|(a, b)| a == b)
                })
        })
    };
    assert!(has("sl", "sl_send_reply", &["int", "str"]));
    assert!(has("pv", "sets", &["str", "str"]));
    assert!(has("", "is_myself_ruri", &[]));
    assert!(has("kx", "gete_ua", &[]));
    let lua = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["api", "--format", "lua"])
        .output()
        .expect("run ksr api");
    let text = String::from_utf8_lossy(&lua.stdout);
    assert!(
        text.contains("function KSR.sl.sl_send_reply(p0, p1) end"),
        "{text}"
    );
}

#[test]
fn bench_runs_the_corpus_under_both_engines() {
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .current_dir(root())
        .args([
            "bench",
            "-f",
            "examples/kamailio.cfg",
            "-f",
            "examples/kamailio-lua.cfg",
            "-n",
            "3",
            "--json",
        ])
        .output()
        .expect("run ksr bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json_start = text.find('[').expect("json output");
    let v: serde_json::Value = serde_json::from_str(&text[json_start..]).expect("json");
    let rows = v.as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["engine"], "native");
    assert_eq!(rows[1]["engine"], "lua");
    for r in rows {
        assert_eq!(r["messages"], 18, "6 messages x 3 passes");
        assert!(r["p50_us"].as_f64().unwrap_or(0.0) > 0.0);
    }
}

#[test]
fn emit_asm_lists_the_bytecode() {
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["compile", "--emit", "asm", "-f"])
        .arg(root().join("examples/kamailio.cfg"))
        .output()
        .expect("ksr compile");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("request_route:"), "{text}");
    assert!(text.contains("route[LOCAL]:"), "{text}");
    // Constant arguments are converted at compile time: the 483 is an integer constant.
    assert!(
        text.lines().any(|l| l.contains("loadi")
            && l.split('#')
                .next()
                .is_some_and(|c| c.trim_end().ends_with(", 483"))),
        "{text}"
    );
    assert!(text.contains("sl.sl_send_reply"), "{text}");
    // Instructions carry their cfg line.
    assert!(text.contains("# line "), "{text}");
}

#[test]
fn check_loads_kemi_scripts() {
    let dir = std::env::temp_dir().join(format!("ksr-check-lua-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let cfg = |script: &std::path::Path| {
        format!(
            "listen=udp:127.0.0.1:5099\nloadmodule \"sl.so\"\nloadmodule \"app_lua.so\"\nmodparam(\"app_lua\", \"load\", \"{}\")\ncfgengine \"lua\"\n",
            script.display()
        )
    };
    let run = |script_text: &str, name: &str| {
        let script = dir.join(format!("{name}.lua"));
        std::fs::write(&script, script_text).expect("write");
        let c = dir.join(format!("{name}.cfg"));
        std::fs::write(&c, cfg(&script)).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
            .args(["check", "-f"])
            .arg(&c)
            .output()
            .expect("ksr check");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(
        "function ksr_request_route()\n KSR.sl.sl_send_reply(200, 'ok')\nend\n",
        "good",
    );
    assert!(ok, "{err}");
    let (ok, err) = run("function ksr_request_rout()\nend\n", "misspelled");
    assert!(!ok);
    assert!(err.contains("no function ksr_request_route()"), "{err}");
    let (ok, err) = run("function ksr_request_route(\n", "broken");
    assert!(!ok);
    assert!(err.contains("broken.lua"), "{err}");
}

#[test]
fn missing_modules_are_named_with_the_fix() {
    let (ok, err) = check(
        "loadmodule \"sl.so\"\nloadmodule \"lcr.so\"\nmodparam(\"lcr\", \"db_url\", \"/x\")\nmodparam(\"sl\", \"no_such_param\", 1)\nrequest_route {\n  load_gws(\"1\");\n  xlog(\"L_INFO\", \"x\\n\");\n  sl_send_reply(\"200\", \"ok\");\n}\n",
    );
    assert!(!ok);
    for want in [
        "line 2, column 1-19: module 'lcr' is not available in ksr",
        "line 3, column 1-31: modparam: module 'lcr' is not available in ksr",
        "line 4, column 1-34: modparam: module 'sl' has no parameter 'no_such_param'",
        "line 6, column 3-15: unknown function 'load_gws' (exported by Kamailio module 'lcr', which ksr does not provide yet)",
        "line 7, column 3-23: unknown function 'xlog' (exported by module 'xlog', which is not loaded: add loadmodule \"xlog.so\")",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Each problem once, the routing block still checked after the module errors.
    assert_eq!(err.matches("load_gws").count(), 1, "{err}");
    assert!(!err.contains("sl_send_reply"), "{err}");

    // Pseudo-variables name their module the same way.
    let (ok, err) = check(
        "loadmodule \"sl.so\"\nrequest_route {\n  sl_send_reply(\"200\", \"ok $rm\");\n  if ($dlg_var(a) == 1) { drop; }\n}\n",
    );
    assert!(!ok);
    for want in [
        "line 3, column 24-31: invalid format string \"ok $rm\": unknown pseudo-variable $rm (exported by module 'pv', which is not loaded: add loadmodule \"pv.so\")",
        "unknown pseudo-variable $dlg_var (exported by Kamailio module 'dialog', which ksr does not provide yet)",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
