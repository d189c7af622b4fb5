//! Random routing programs run four ways — with and without the IR optimizer, with shared
//! and with private frame registers — must behave identically (and the same after an
//! image round trip). Catches register-allocation, layout and optimizer mistakes that
//! hand-written cases miss. Deterministic: a fixed seed per program.

mod toy;

use std::sync::Arc;
use toy::Msg;
use vm::RouteKind;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Static types of Kamailio's expression checker: random expressions are built to pass it.
#[derive(Clone, Copy, PartialEq)]
enum T {
    Int,
    Str,
    /// Known at run time only (pseudo-variables): accepted everywhere.
    Any,
}

fn leaf(r: &mut Rng, t: T) -> String {
    match t {
        T::Int => format!("{}", r.below(12) as i64 - 3),
        T::Str => format!("\"{}\"", r.pick(&["", "a", "10", "0x1f", "-2", "Ab"])),
        T::Any => match r.below(6) {
            0 => "$avp(unset)".into(),
            1 => "$rc".into(),
            2 => "$rU".into(),
            _ => format!("$var(v{})", r.below(4)),
        },
    }
}

/// An integer-compatible operand (int or run-time typed).
fn int_operand(r: &mut Rng, depth: u32) -> String {
    let t = if r.below(2) == 0 { T::Int } else { T::Any };
    expr(r, depth, t)
}

/// A string-compatible operand.
fn str_operand(r: &mut Rng, depth: u32) -> String {
    let t = if r.below(2) == 0 { T::Str } else { T::Any };
    expr(r, depth, t)
}

fn expr(r: &mut Rng, depth: u32, t: T) -> String {
    if depth == 0 || r.below(3) == 0 {
        return leaf(r, t);
    }
    let d = depth - 1;
    match t {
        T::Int => match r.below(10) {
            0..=3 => {
                let op = r.pick(&[
                    "-", "*", "/", "mod", "&", "|", "^", "<<", ">>", "<", ">=", "&&", "||", "ieq",
                ]);
                format!("({} {op} {})", int_operand(r, d), int_operand(r, d))
            }
            4 => format!("(!{})", int_operand(r, d)),
            5 => format!("(-{})", int_operand(r, d)),
            6 => format!("strlen({})", str_operand(r, d)),
            7 => format!("(defined {})", str_operand(r, d)),
            8 => format!(
                "({} =~ \"{}\")",
                str_operand(r, d),
                r.pick(&["^1", "a", "^$", "[0-9]+"])
            ),
            _ => {
                // `==` with a left operand of any type and a right one it accepts.
                let left = r.below(3);
                let (a, b) = match left {
                    0 => (expr(r, d, T::Int), int_operand(r, d)),
                    1 => {
                        let rt = if r.below(2) == 0 { T::Int } else { T::Any };
                        (expr(r, d, T::Str), expr(r, d, rt))
                    }
                    _ => (expr(r, d, T::Any), expr(r, d, T::Any)),
                };
                let op = r.pick(&["==", "!="]);
                if r.below(4) == 0 {
                    format!("ret({})", r.below(5) as i64 - 2)
                } else {
                    format!("({a} {op} {b})")
                }
            }
        },
        T::Str => match r.below(3) {
            0 => format!("((str){})", expr(r, d, T::Any)),
            1 => {
                let rt = if r.below(2) == 0 { T::Int } else { T::Any };
                format!("({} + {})", expr(r, d, T::Str), expr(r, d, rt))
            }
            _ => leaf(r, T::Str),
        },
        T::Any => match r.below(4) {
            0 => format!("({} + {})", expr(r, d, T::Any), expr(r, d, T::Any)),
            1 => format!(
                "selval({}, {}, {})",
                int_operand(r, d),
                expr(r, d, T::Any),
                expr(r, d, T::Any)
            ),
            2 => format!("({} + {})", expr(r, d, T::Any), expr(r, d, T::Int)),
            _ => leaf(r, T::Any),
        },
    }
}

fn any_expr(r: &mut Rng, depth: u32) -> String {
    let t = match r.below(3) {
        0 => T::Int,
        1 => T::Str,
        _ => T::Any,
    };
    expr(r, depth, t)
}

fn stmts(r: &mut Rng, depth: u32, subs: u32, out: &mut String) {
    let n = 1 + r.below(4);
    for _ in 0..n {
        match r.below(if depth == 0 { 4 } else { 9 }) {
            0 | 1 => {
                let e = any_expr(r, 3);
                out.push_str(&format!("$var(v{}) = {e};\n", r.below(4)));
            }
            2 => {
                let e = any_expr(r, 2);
                out.push_str(&format!("rec((str)({e}) + \"\");\n"));
            }
            3 => {
                if subs > 0 {
                    out.push_str(&format!("route(S{});\n", r.below(subs as u64)));
                } else {
                    out.push_str(&format!("ret({});\n", r.below(4) as i64 - 1));
                }
            }
            4 | 5 => {
                let c = int_operand(r, 2);
                out.push_str(&format!("if ({c}) {{\n"));
                stmts(r, depth - 1, subs, out);
                out.push_str("} else {\n");
                stmts(r, depth - 1, subs, out);
                out.push_str("}\n");
            }
            6 => {
                let i = r.below(2);
                out.push_str(&format!(
                    "$var(i{i}) = 0;\nwhile ($var(i{i}) < {}) {{\n$var(i{i}) = $var(i{i}) + 1;\n",
                    r.below(5)
                ));
                stmts(r, depth - 1, subs, out);
                if r.below(3) == 0 {
                    out.push_str("if ($var(v0) == 2) { break; }\n");
                }
                out.push_str("}\n");
            }
            7 => {
                out.push_str(&format!("switch ($var(v{})) {{\n", r.below(4)));
                for c in 0..r.below(4) {
                    out.push_str(&format!("case {}:\n", c as i64 - 1));
                    stmts(r, depth - 1, subs, out);
                    if r.below(2) == 0 {
                        out.push_str("break;\n");
                    }
                }
                if r.below(2) == 0 {
                    out.push_str("default:\n");
                    stmts(r, depth - 1, subs, out);
                }
                out.push_str("}\n");
            }
            _ => {
                if r.below(4) == 0 {
                    out.push_str(&format!("return {};\n", r.below(6) as i64 - 2));
                } else {
                    out.push_str("$var(v3) = $var(v3) + \"x\";\n");
                }
            }
        }
    }
}

fn program(seed: u64) -> String {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut cfg = String::new();
    let subs = r.below(3) as u32;
    // Sub-route k only calls sub-routes before it: no recursion.
    for k in 0..subs {
        cfg.push_str(&format!("route[S{k}] {{\n"));
        stmts(&mut r, 2, k, &mut cfg);
        cfg.push_str("}\n");
    }
    cfg.push_str("request_route {\n$var(v0) = 1; $var(v1) = \"7\";\n");
    stmts(&mut r, 3, subs, &mut cfg);
    cfg.push_str(
        "rec(\"end\" + $var(v0) + \"/\" + $var(v1) + \"/\" + $var(v2) + \"/\" + $var(v3));\n}\n",
    );
    cfg
}

fn build(cfg: &str, optimize: bool, share: bool) -> Option<vm::program::Program> {
    let r = compiler::frontend::parse_str("r.cfg", cfg, &compiler::preprocess::Options::default());
    let config = r.config.as_ref().filter(|_| !r.has_errors())?;
    let cat = compiler::Catalog::new(toy::table(), toy::registry());
    let diags = compiler::check::check(config, &cat);
    if diags.iter().any(|d| d.is_error()) {
        if std::env::var("RP_DEBUG").is_ok() {
            for d in diags.iter().filter(|d| d.is_error()).take(2) {
                eprintln!("{}: {}", r.sources.line_col(d.span).0, d.message);
            }
        }
        return None;
    }
    let (mut m, _) = compiler::lower::lower(config, &cat);
    if optimize {
        compiler::ir::opt::optimize(&mut m);
    }
    let p = compiler::codegen::generate_with(
        &m,
        &compiler::codegen::Options {
            share_registers: share,
        },
    )
    .ok()?;
    vm::image::validate(&p).unwrap_or_else(|e| panic!("invalid code ({e}) for:\n{cfg}"));
    Some(p)
}

fn observe(p: vm::program::Program) -> String {
    let p = Arc::new(p);
    let (toy, out) = toy::run_route(&p, Msg::options("7"), RouteKind::Request, None);
    let mut vars: Vec<String> = toy
        .vars
        .iter()
        .map(|(k, v)| format!("{}={v:?}", String::from_utf8_lossy(k)))
        .collect();
    vars.sort();
    format!("{out:?} {:?} {vars:?} {:?}", toy.calls, toy.errors)
}

#[test]
fn random_programs_behave_the_same_however_compiled() {
    let mut compiled = 0;
    for seed in 0..400u64 {
        let cfg = program(seed);
        let Some(reference) = build(&cfg, false, false) else {
            continue;
        };
        compiled += 1;
        let want = observe(reference);
        for (opt, share) in [(false, true), (true, false), (true, true)] {
            let p = build(&cfg, opt, share)
                .unwrap_or_else(|| panic!("seed {seed}: only the reference compiled"));
            let img = vm::image::write(&p);
            let loaded = vm::image::load(&img, toy::table(), toy::registry())
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            for (how, prog) in [("compiled", p), ("image", loaded)] {
                let got = observe(prog);
                assert_eq!(
                    got, want,
                    "seed {seed}, optimize={opt} share={share} ({how}):\n{cfg}"
                );
            }
        }
    }
    assert!(
        compiled > 250,
        "only {compiled} of 400 random programs compiled"
    );
}
