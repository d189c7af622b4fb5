//! Semantics of compiled routing: the oracle scripts in `tests/oracle/` run on the register
//! VM with a toy host must give the answers Kamailio 5.6 gave (recorded in `*.expected` by
//! `tests/oracle/record.py`), and the forms the oracle cannot show are checked directly.

mod toy;

use std::path::PathBuf;
use std::sync::Arc;
use toy::{Msg, compile, run, run_route};
use vm::RouteKind;
use vm::Value;

fn oracle_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle")
}

/// What a case answers: the reason phrase of its last reply, or `<no reply>`.
fn answer(prog: &Arc<vm::program::Program>, case: &str) -> String {
    let (toy, _) = run(prog, Msg::options(case));
    match toy.replies.last() {
        Some((_, reason)) => reason.clone(),
        None => "<no reply>".into(),
    }
}

#[test]
fn oracle_scripts_answer_like_kamailio() {
    let mut diffs = Vec::new();
    let mut checked = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(oracle_dir())
        .expect("oracle dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    for cfg in files {
        let expected = cfg.with_extension("expected");
        let Ok(want) = std::fs::read_to_string(&expected) else {
            continue;
        };
        let text = std::fs::read_to_string(&cfg).expect("read cfg");
        let prog = Arc::new(compile(&text));
        // The same program through an image must behave the same.
        let image = vm::image::write(&prog);
        let loaded = Arc::new(
            vm::image::load(&image, toy::table(), toy::registry())
                .unwrap_or_else(|e| panic!("{}: {e}", cfg.display())),
        );
        for line in want.lines() {
            let Some((case, reply)) = line.split_once('\t') else {
                continue;
            };
            for (how, p) in [("compiled", &prog), ("image", &loaded)] {
                let got = answer(p, case);
                checked += 1;
                if got != reply {
                    diffs.push(format!(
                        "{}/{case} ({how}):\n  kamailio: {reply}\n  ksr:      {got}",
                        cfg.file_name().unwrap_or_default().to_string_lossy()
                    ));
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} oracle cases found");
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}

/// Runs `body` as the request route and returns `$var(r)`.
fn r(body: &str) -> String {
    let cfg = format!("request_route {{\n{body}\n}}\n");
    let prog = Arc::new(compile(&cfg));
    let (toy, _) = run(&prog, Msg::options("x"));
    toy.var("r")
}

fn cfg_run(cfg: &str) -> (toy::Toy, vm::interp::Outcome) {
    let prog = Arc::new(compile(cfg));
    run(&prog, Msg::options("x"))
}

#[test]
fn compiled_programs_validate_and_images_round_trip() {
    for cfg in [
        "request_route { $var(x) = 1; switch ($var(x)) { case 1: rec(\"a\"); break; default: rec(\"b\"); } route(S); }\nroute[S] { $var(z) = 0; $var(y) = 5 / $var(z); if ($rU =~ $var(y)) { return 2; } }\nfailure_route[F] { xlog(\"$ru $rc\"); }",
        "request_route { while ($var(i) < 3) { $var(i) = $var(i) + 1; } if (src_ip == 10.0.0.0/8) { drop; } }",
    ] {
        let p = compile(cfg);
        vm::image::validate(&p).unwrap_or_else(|e| panic!("{e}\n{}", p.disassemble()));
        let img = vm::image::write(&p);
        let q =
            vm::image::load(&img, toy::table(), toy::registry()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.code, p.code);
        assert_eq!(
            vm::image::write(&q),
            img,
            "writing a loaded image gives the same bytes"
        );
    }
}

#[test]
fn exit_drop_and_return_outcomes() {
    let (_, o) = cfg_run("request_route { exit; }");
    assert!(o.exit && !o.drop && o.code == 1, "{o:?}");
    let (_, o) = cfg_run("request_route { drop; }");
    assert!(o.exit && o.drop && o.code == 0, "{o:?}");
    let (_, o) = cfg_run("request_route { return 7; }");
    assert!(!o.exit && o.code == 7, "{o:?}");
    let (_, o) = cfg_run("request_route { return 0; }");
    assert!(o.exit && o.code == 0, "{o:?}");
    let (_, o) = cfg_run("request_route { exit 3; }");
    assert!(o.exit && o.code == 3, "{o:?}");
    // A module function returning 0 ends the script.
    let (toy, o) = cfg_run("request_route { ret(0); rec(\"after\"); }");
    assert!(o.exit, "{o:?}");
    assert_eq!(toy.calls, vec!["ret(0)"]);
    // The route's value is its last statement's return code.
    let (_, o) = cfg_run("request_route { ret(-4); }");
    assert_eq!((o.code, o.exit), (-4, false));
    let (_, o) = cfg_run("request_route { }");
    assert_eq!((o.code, o.exit), (1, false));
    // A drop in a sub-route ends everything.
    let (toy, o) = cfg_run("request_route { route(D); rec(\"after\"); } route[D] { drop; }");
    assert!(o.drop && toy.calls.is_empty());
}

#[test]
fn rc_after_statements() {
    assert_eq!(r("ret(-3); $var(r) = $rc;"), "-3");
    assert_eq!(r("ret(-3); setflag(1); $var(r) = $rc;"), "-3");
    // `$retcode` is an integer at run time, so `+` adds (as in Kamailio).
    assert_eq!(
        r("ret(-3); $var(x) = 1; $var(r) = $retcode + \"/\" + $?;"),
        "-6"
    );
    assert_eq!(
        r("ret(-3); $var(r) = \"\" + $retcode + \"/\" + $?;"),
        "-3/-3"
    );
    assert_eq!(r("ret(5); $var(r) = \"rc=$rc\";"), "rc=$rc");
    assert_eq!(r("ret(5); pv_printf(\"$var(r)\", \"rc=$rc\");"), "rc=5");
    assert_eq!(r("route(S); $var(r) = $rc; } route[S] { return 9;"), "9");
    // `if (f())` records f's code.
    assert_eq!(r("if (ret(-2)) { $var(x) = 1; } $var(r) = $rc;"), "-2");
}

#[test]
fn arithmetic_is_32_bit_and_division_by_zero_skips_the_assignment() {
    assert_eq!(
        r("$var(a) = 2147483647; $var(r) = $var(a) + 1;"),
        "-2147483648"
    );
    assert_eq!(r("$var(r) = 9223372036854775807;"), "-1");
    assert_eq!(r("$var(r) = 5; $var(z) = 0; $var(r) = 10 / $var(z);"), "5");
    assert_eq!(
        r("$var(r) = 5; $var(z) = 0; $var(r) = 10 mod $var(z);"),
        "5"
    );
    assert_eq!(
        r(
            "$var(z) = 0; $var(one) = 1; if (3 / $var(z) || $var(one)) { $var(r) = \"t\"; } else { $var(r) = \"f\"; }"
        ),
        "f"
    );
    // Kamailio's optimizer turns `x || 1` into 1 before anything is evaluated.
    assert_eq!(
        r("$var(z) = 0; if (3 / $var(z) || 1) { $var(r) = \"t\"; } else { $var(r) = \"f\"; }"),
        "t"
    );
    let (toy, _) = cfg_run("request_route { $var(z) = 0; $var(r) = 1 / $var(z); }");
    assert!(
        toy.errors.iter().any(|e| e.contains("div by 0")),
        "{:?}",
        toy.errors
    );
    assert_eq!(
        r("$var(a) = -2147483648; $var(b) = -1; $var(r) = $var(a) / $var(b);"),
        "-2147483648"
    );
}

#[test]
fn strings_nulls_and_casts() {
    assert_eq!(r("$var(s) = \"10\"; $var(r) = 5 + $var(s);"), "15");
    assert_eq!(r("$var(s) = \"10\"; $var(r) = $var(s) + 5;"), "105");
    assert_eq!(r("$var(r) = $avp(nothing) + 5;"), "5");
    assert_eq!(r("$var(r) = (str)$avp(nothing) + \"|\";"), "|");
    assert_eq!(r("$var(r) = strlen(\"héllo\");"), "6");
    assert_eq!(
        r("$avp(x) = 1; $avp(x) = \"two\"; $var(r) = $avp(x) + \"/\" + $(avp(x)[1]);"),
        "two/1"
    );
    assert_eq!(r("$var(r) = (int)\"0x10\" + (int)\"-3\";"), "13");
    assert_eq!(
        r("$var(r) = selval($rm == \"OPTIONS\", \"opt\", 3);"),
        "opt"
    );
    assert_eq!(r("$var(n) = $null; $var(r) = $var(n);"), "0");
    assert_eq!(r("$var(r) = $(rU{s.len}) + 1;"), "2");
    assert_eq!(r("$var(r) = $(hdr(X-Test)[-1]);"), "second");
}

#[test]
fn switch_forms() {
    assert_eq!(
        r(
            "$var(r) = \"\"; $var(i) = 2; switch ($var(i)) { case 1: $var(r) = \"1\"; case 2: $var(r) = $var(r) + \"2\"; case 3: $var(r) = $var(r) + \"3\"; break; default: $var(r) = \"d\"; }"
        ),
        "23"
    );
    // Sparse integer labels (not a dense jump table).
    assert_eq!(
        r(
            "$var(i) = 1000000; switch ($var(i)) { case -5: $var(r) = \"a\"; break; case 1000000: $var(r) = \"b\"; break; case 7: $var(r) = \"c\"; }"
        ),
        "b"
    );
    // String cases mixed with regexes keep their order.
    assert_eq!(
        r(
            "switch ($rU) { case \"y\": $var(r) = \"y\"; break; case /\"^x$\": $var(r) = \"re\"; break; case \"x\": $var(r) = \"str\"; break; }"
        ),
        "re"
    );
    assert_eq!(
        r("$var(r) = \"none\"; switch ($rU) { case \"a\": $var(r) = \"a\"; }"),
        "none"
    );
}

#[test]
fn while_cap_and_recursion_limit_follow_the_limits() {
    let prog = Arc::new(compile(
        "request_route { $var(k) = 0; while ($var(k) < 100000) { $var(k) = $var(k) + 1; } $var(d) = 0; route(R); }\nroute[R] { $var(d) = $var(d) + 1; route(R); }",
    ));
    let mut toy = toy::Toy::new(Msg::options("x"));
    toy.limits = vm::interp::Limits {
        max_while_loops: 7,
        max_recursive_level: 10,
    };
    let id = prog.route(RouteKind::Request, None).unwrap_or(0);
    let mut vm = vm::interp::Vm::new(&prog, toy.limits);
    vm.run(&mut toy, id);
    assert_eq!(toy.var("k"), "7");
    // Depth 1 is request_route; R runs at depths 2..=10.
    assert_eq!(toy.var("d"), "9");
    assert!(toy.errors.iter().any(|e| e.contains("runaway while")));
    assert!(toy.errors.iter().any(|e| e.contains("too many recursive")));
}

#[test]
fn nested_blocks_count_against_the_recursion_limit() {
    // Each if-body is one more level: R's body at odd depths, its if-body one deeper.
    let prog = Arc::new(compile(
        "request_route { $var(d) = 0; $var(e) = 0; route(R); }\nroute[R] { $var(d) = $var(d) + 1; if (1 == 1) { $var(e) = $var(e) + 1; route(R); } }",
    ));
    let mut toy = toy::Toy::new(Msg::options("x"));
    toy.limits.max_recursive_level = 6;
    let id = prog.route(RouteKind::Request, None).unwrap_or(0);
    vm::interp::Vm::new(&prog, toy.limits).run(&mut toy, id);
    // R at depths 2, 4, 6; its if-body at 3, 5 (7 is over the limit and skipped).
    assert_eq!((toy.var("d"), toy.var("e")), ("3".into(), "2".into()));
}

#[test]
fn dynamic_route_names_and_missing_routes() {
    assert_eq!(
        r(
            "$var(n) = \"S\"; route($var(n)); $var(r) = $var(r) + $rc; } route[S] { $var(r) = \"in\"; return 4;"
        ),
        "in4"
    );
    let (toy, _) = cfg_run("request_route { $var(n) = \"nope\"; route($var(n)); $var(r) = $rc; }");
    assert_eq!(toy.var("r"), "-1");
    assert!(toy.errors.iter().any(|e| e.contains("not found")));
}

#[test]
fn functions_get_converted_arguments_and_formats() {
    let (toy, _) = cfg_run(
        "request_route { rec2(\"u=$rU\", \"42\"); rec2(12, 3); $var(n) = \"7\"; rec2($var(n) + 1, $var(n)); }",
    );
    assert_eq!(toy.calls, vec!["rec2(u=x,42)", "rec2(12,3)", "rec2(71,7)"]);
    // A dynamic integer argument that is not a number fails the call with -1.
    let (toy, _) =
        cfg_run("request_route { $var(n) = \"abc\"; rec2(\"x\", $var(n)); $var(r) = $rc; }");
    assert!(toy.calls.is_empty());
    assert_eq!(toy.var("r"), "-1");
    // Named flags.
    let (toy, _) = cfg_run(
        "flags FLT_A:3;\nrequest_route { setflag(FLT_A); if (isflagset(3)) { $var(r) = \"set\"; } }",
    );
    assert_eq!(toy.var("r"), "set");
    assert_eq!(toy.flags, 8);
}

#[test]
fn a_function_can_run_another_route_while_the_caller_is_live() {
    let prog = Arc::new(compile(
        "request_route { $var(r) = \"a\"; t_run_branch(\"B\"); $var(r) = $var(r) + \"c\" + $rc; }\nbranch_route[B] { $var(r) = $var(r) + \"b\"; if (1 == 1) { drop; } }",
    ));
    let (toy, out) = run(&prog, Msg::options("x"));
    assert_eq!(toy.var("r"), "abc-1");
    assert!(!out.exit);
    assert_eq!(toy.nested.len(), 1);
    assert!(toy.nested[0].drop);
    // The same program, run from its branch route directly.
    let (toy, out) = run_route(&prog, Msg::options("x"), RouteKind::Branch, Some("B"));
    assert!(out.drop);
    // An unset $var is the integer 0, so `+ "b"` adds 0.
    assert_eq!(toy.var("r"), "0");
}

#[test]
fn reply_routes_see_status_through_uri() {
    let prog = Arc::new(compile(
        "request_route { if (status == \"sip:x@127.0.0.1:5070\") { $var(r) = \"req\"; } }\nreply_route { if (status == \"404\") { $var(r) = \"404\"; } }",
    ));
    let (toy, _) = run(&prog, Msg::options("x"));
    assert_eq!(toy.var("r"), "req");
    let mut m = Msg::options("x");
    m.status = Some("404".into());
    let (toy, _) = run_route(&prog, m, RouteKind::CoreOnReply, None);
    assert_eq!(toy.var("r"), "404");
}

#[test]
fn expression_blocks_and_assignments_as_values() {
    assert_eq!(r("$var(r) = { ret(-2); };"), "-2");
    assert_eq!(r("$var(r) = ($var(x) = 5);"), "1");
    assert_eq!(
        r("if ({ ret(3); }) { $var(r) = \"t\"; } else { $var(r) = \"f\"; }"),
        "t"
    );
}

#[test]
fn warm_runs_do_not_leak_values_between_messages() {
    let prog = Arc::new(compile(
        "request_route { if ($rU == \"a\") { $var(x) = $rU + \"!\"; } $var(r) = $rU; }",
    ));
    let mut stack = vm::interp::Stack::new();
    for user in ["a", "b", "a"] {
        let mut toy = toy::Toy::new(Msg::options(user));
        let mut rc = 0;
        let id = prog.route(RouteKind::Request, None).unwrap_or(0);
        vm::interp::run(
            &prog,
            &mut toy,
            id,
            &Default::default(),
            &mut stack,
            &mut rc,
        );
        assert_eq!(toy.var("r"), user);
        assert_eq!(
            toy.vars.get(b"x".as_ref()).cloned(),
            (user == "a").then(|| Value::from("a!"))
        );
    }
}
