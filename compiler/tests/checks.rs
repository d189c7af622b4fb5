//! `compiler::check`: every kind of semantic error, with the line it is reported on.

mod toy;

use compiler::{ModuleCatalog, ParamKind};
use toy::{diagnostics, diagnostics_with};

fn has(d: &[String], line: usize, needle: &str) -> bool {
    d.iter()
        .any(|x| x.starts_with(&format!("{line}: ")) && x.contains(needle))
}

fn assert_has(cfg: &str, want: &[(usize, &str)]) {
    let d = diagnostics(cfg);
    for (line, needle) in want {
        assert!(
            has(&d, *line, needle),
            "missing {line}: {needle:?} in {d:#?}"
        );
    }
}

#[test]
fn unknown_functions_and_wrong_parameter_counts() {
    assert_has(
        "request_route {\n nosuch(\"x\");\n sl_send_reply(\"200\");\n is_method(\"A\", \"B\", \"C\");\n}\n",
        &[
            (2, "unknown function 'nosuch'"),
            (3, "function 'sl_send_reply' takes 2 parameter(s), not 1"),
            (4, "function 'is_method' takes 1 parameter(s), not 3"),
        ],
    );
}

struct Mods;

impl ModuleCatalog for Mods {
    fn is_loaded(&self, m: &str) -> bool {
        matches!(m, "sl" | "tm")
    }
    fn is_known(&self, m: &str) -> bool {
        matches!(m, "sl" | "tm" | "dialog")
    }
    fn param(&self, m: &str, p: &str) -> Option<ParamKind> {
        match (m, p) {
            ("tm", "fr_timer") => Some(ParamKind::Int),
            ("tm", "contacts_avp") => Some(ParamKind::Str),
            ("sl", "bind_tm") => Some(ParamKind::Any),
            _ => None,
        }
    }
    fn exporter_of(&self, name: &str) -> Option<String> {
        (name == "dlg_manage").then(|| "dialog".to_string())
    }
}

#[test]
fn modparams_and_module_hints_use_the_catalog() {
    let cfg = "modparam(\"tm\", \"fr_timer\", 5000)\nmodparam(\"tm\", \"fr_timer\", \"soon\")\nmodparam(\"tm\", \"nosuch\", 1)\nmodparam(\"dialog\", \"x\", 1)\nmodparam(\"bogus\", \"x\", 1)\nmodparam(\"tm|sl\", \"contacts_avp\", 3)\nrequest_route {\n dlg_manage();\n}\n";
    let d = diagnostics_with(cfg, Some(&Mods));
    assert!(!d.iter().any(|x| x.starts_with("1: ")), "{d:#?}");
    for (line, needle) in [
        (2, "takes an integer"),
        (3, "has no parameter 'nosuch'"),
        (4, "module 'dialog' is not loaded"),
        (5, "module 'bogus' is not available in ksr"),
        (6, "parameter 'contacts_avp' of module 'tm' takes a string"),
        (6, "module 'sl' has no parameter 'contacts_avp'"),
        (8, "exported by module 'dialog', which is not loaded"),
    ] {
        assert!(
            has(&d, line, needle),
            "missing {line}: {needle:?} in {d:#?}"
        );
    }
}

#[test]
fn route_names_and_route_types() {
    assert_has(
        "request_route {\n t_on_failure(\"MISSING\");\n t_on_failure(\"F\");\n route(NOPE);\n route(SUB);\n}\nfailure_route[F] { }\nroute[SUB] { sl_send_reply(\"200\", \"ok\"); }\nreply_route {\n sl_send_reply(\"200\", \"x\");\n route(SUB);\n}\nfailure_route[F2] { reply_only(\"200\", \"x\"); }\nroute[SUB2] { reply_only(\"200\", \"x\"); }\n",
        &[
            (2, "failure_route[MISSING] is not defined"),
            (4, "route[NOPE] is not defined"),
            // The sub-route runs from reply_route too: its reply is checked there.
            (
                8,
                "function 'sl_send_reply' is not meant for reply_route (route[SUB] is called from there)",
            ),
            (10, "function 'sl_send_reply' cannot be used in reply_route"),
            (13, "function 'reply_only' cannot be used in failure_route"),
            // Kamailio checks every route[X] body as request_route.
            (14, "(route blocks are checked as request_route)"),
        ],
    );
    let d = diagnostics("request_route { t_on_failure(\"F\"); }\nfailure_route[F] { }\n");
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn pseudo_variables_transformations_and_regexes() {
    assert_has(
        "request_route {\n $nosuch = 1;\n $var(x) = $(ru{s.nosuch});\n $var(x) = $rm;\n $rm = \"x\";\n if ($var(x) =~ \"a(\") { }\n search(\"[z-a]\");\n switch ($rm) { case /\"*x\": break; }\n xlog(\"$nope\");\n pv_printf(\"$nope(x)\", \"v\");\n}\n",
        &[
            (2, "invalid pseudo-variable"),
            (3, "unknown transformation"),
            (5, "read-only"),
            (6, "bad regular expression"),
            (7, "bad regular expression"),
            (8, "bad regular expression"),
            (9, "invalid format string"),
            (10, "invalid pseudo-variable $nope(x)"),
        ],
    );
}

#[test]
fn flags_out_of_range() {
    assert_has(
        "flags A:3, B:32;\nrequest_route {\n setflag(31);\n setflag(32);\n isflagset(-1);\n setflag(A);\n setflag(NOFLAG);\n}\n",
        &[
            (1, "bad flag value 32"),
            (4, "bad flag value 32"),
            (5, "bad flag value -1"),
            (7, "unknown flag 'NOFLAG'"),
        ],
    );
    let d = diagnostics("request_route { setflag(31); }\n");
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn duplicate_routes() {
    assert_has(
        "request_route { }\nroute[A] { }\nroute[A] { }\nroute { }\n",
        &[
            (3, "duplicate route route[A]"),
            (4, "duplicate route route"),
        ],
    );
}

#[test]
fn kamailio_expression_type_errors() {
    // The messages Kamailio's parser gives (kamailio -c on the same text, see
    // tests/oracle/exprs.cfg history): the position is the offending operand.
    assert_has(
        "request_route {\n $var(x) = 5 + \"10\";\n $var(x) = \"10\" + 5;\n if (\"b\" > \"a\") { }\n if ($var(s) ieq \" 10\") { }\n $var(x) = strlen(12);\n $var(x) = -\"a\";\n $var(x) = 5 eq \"a\";\n $var(x) = 1 / 0;\n switch ($var(x)) { case 1: break; case \"a\": break; }\n switch ($var(x)) { case $var(y): break; }\n switch ($var(x)) { default: break; default: break; }\n}\n",
        &[
            (2, "type mismatch: str instead of int"),
            (4, "type mismatch: str instead of int"),
            (5, "type mismatch: str instead of int"),
            (6, "type mismatch: int instead of str"),
            (7, "type mismatch: str instead of int"),
            (8, "type mismatch: str instead of int"),
            (9, "division by zero"),
            (10, "type mismatch in case"),
            (11, "non constant expression in case"),
            (12, "more then one \"default\""),
        ],
    );
    let d = diagnostics("request_route { $var(x) = \"10\" + 5; }\n");
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn warnings_do_not_stop_compilation() {
    let cfg = "request_route {\n if (1) { $var(x) = 1; }\n}\n";
    let d = diagnostics(cfg);
    assert!(has(&d, 2, "constant value in if"), "{d:#?}");
    assert!(toy::try_compile(cfg).is_ok());
}
