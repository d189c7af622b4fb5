//! A toy host for running compiled routing programs in tests and benches: a fixed SIP
//! request, a few pseudo-variable classes, and KSR exports that record what they were
//! called with. Shared by `compiler/tests/*.rs` and `benches/vm_exec.rs`.

#![allow(dead_code)]

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use vm::interp::{Limits, Outcome, Stack, Vm};
use vm::ksr::{ExportSig, KsrTable, ParamHint, ParamType, RetType};
use vm::program::Program;
use vm::pv::{PvClass, PvError, PvIndex, PvParam, PvRegistry, PvSpec};
use vm::{Host, RouteKind, RouteMask, Value};

/// The request a test runs on (an OPTIONS like the oracle script sends).
#[derive(Clone, Debug)]
pub struct Msg {
    pub method: String,
    pub ruri: String,
    pub from: String,
    pub to: String,
    pub callid: String,
    pub headers: Vec<(String, String)>,
    pub src_ip: String,
    pub src_port: i64,
    pub dst_ip: String,
    pub dst_port: i64,
    pub proto: i64,
    pub status: Option<String>,
    pub len: i64,
}

impl Msg {
    pub fn options(user: &str) -> Msg {
        Msg {
            method: "OPTIONS".into(),
            ruri: format!("sip:{user}@127.0.0.1:5070"),
            from: "sip:alice@127.0.0.1".into(),
            to: "sip:bob@127.0.0.1".into(),
            callid: format!("oracle-{user}"),
            headers: vec![
                ("X-Test".into(), "first".into()),
                ("X-Test".into(), "second".into()),
                ("Max-Forwards".into(), "70".into()),
            ],
            src_ip: "127.0.0.1".into(),
            src_port: 40000,
            dst_ip: "127.0.0.1".into(),
            dst_port: 5070,
            proto: 1,
            status: None,
            len: 300,
        }
    }
}

pub struct Toy {
    pub msg: Msg,
    pub vars: HashMap<Bytes, Value>,
    /// Newest value first, like Kamailio's AVP lists.
    pub avps: HashMap<String, Vec<Value>>,
    pub flags: u64,
    pub calls: Vec<String>,
    pub replies: Vec<(i64, String)>,
    pub logs: Vec<String>,
    pub errors: Vec<String>,
    pub program: Option<Arc<Program>>,
    pub limits: Limits,
    /// Stacks for nested runs (a function running another route), reused.
    pub pool: Vec<Stack>,
    pub nested: Vec<Outcome>,
    /// Calls of the stand-in functions.
    pub stubs: u64,
}

impl Toy {
    pub fn new(msg: Msg) -> Toy {
        Toy {
            msg,
            vars: HashMap::new(),
            avps: HashMap::new(),
            flags: 0,
            calls: Vec::new(),
            replies: Vec::new(),
            logs: Vec::new(),
            errors: Vec::new(),
            program: None,
            limits: Limits::default(),
            pool: Vec::new(),
            nested: Vec::new(),
            stubs: 0,
        }
    }

    pub fn var(&self, name: &str) -> String {
        self.vars
            .get(name.as_bytes())
            .map(|v| v.to_string())
            .unwrap_or_default()
    }

    fn ruri_user(&self) -> String {
        let r = self.msg.ruri.trim_start_matches("sip:");
        match r.split_once('@') {
            Some((u, _)) => u.to_string(),
            None => String::new(),
        }
    }

    /// Is `uri` (`sip:user@host[:port]`) one of the toy's addresses (127.0.0.1:5070)?
    fn uri_is_me(uri: &str) -> bool {
        let r = uri.trim_start_matches('<').trim_start_matches("sip:");
        let hp = r.split_once('@').map(|x| x.1).unwrap_or(r);
        let hp = hp.split([';', '>']).next().unwrap_or("");
        let (h, p) = match hp.split_once(':') {
            Some((h, p)) => (h, p.parse().unwrap_or(0)),
            None => (hp, 5060),
        };
        h == "127.0.0.1" && p == 5070
    }

    fn ruri_host(&self) -> String {
        let r = self.msg.ruri.trim_start_matches("sip:");
        let hp = r.split_once('@').map(|x| x.1).unwrap_or(r);
        hp.split([':', ';']).next().unwrap_or("").to_string()
    }
}

impl Host for Toy {
    fn ksr_table(&self) -> &'static KsrTable<Self> {
        table()
    }
    fn pv_registry(&self) -> &'static PvRegistry<Self> {
        registry()
    }
    fn script_error(&mut self, msg: &str) {
        self.errors.push(msg.to_string());
    }
}

fn text(v: &Value) -> String {
    v.to_string()
}

fn arg_str(a: &[Value], i: usize) -> String {
    match a.get(i) {
        Some(Value::Str(s)) => String::from_utf8_lossy(s).into_owned(),
        Some(Value::Int(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn arg_int(a: &[Value], i: usize) -> i64 {
    a.get(i).and_then(Value::as_int).unwrap_or(0)
}

fn b(v: bool) -> Value {
    Value::Int(if v { 1 } else { -1 })
}

fn sig(owner: &str, module: &str, name: &str, params: &[ParamType], ret: RetType) -> ExportSig {
    ExportSig {
        owner: owner.into(),
        module: module.into(),
        name: name.into(),
        params: params.to_vec(),
        hints: vec![ParamHint::Plain; params.len()],
        ret,
        kemi: true,
    }
}

/// Runs the named route of the current program from inside a KSR function (as tm runs
/// `branch_route` from `t_relay`), on a pooled stack.
fn run_nested(ctx: &mut Toy, kind: RouteKind, name: &str) -> Value {
    let Some(prog) = ctx.program.clone() else {
        return Value::Int(-1);
    };
    let Some(id) = prog.route(kind, Some(name)) else {
        return Value::Int(-1);
    };
    let stack = ctx.pool.pop().unwrap_or_default();
    let mut vm = Vm::with_stack(&prog, ctx.limits, stack);
    let out = vm.run(ctx, id);
    ctx.pool.push(vm.into_stack());
    ctx.nested.push(out);
    Value::Int(if out.drop { -1 } else { 1 })
}

pub fn table() -> &'static KsrTable<Toy> {
    static T: OnceLock<KsrTable<Toy>> = OnceLock::new();
    T.get_or_init(build_table)
}

fn build_table() -> KsrTable<Toy> {
    use ParamType::{Int as I, Str as S};
    let mut t: KsrTable<Toy> = KsrTable::new();
    let any = RouteMask::ANY;
    let idx = t.add(
        sig("sl", "sl", "sl_send_reply", &[I, S], RetType::Int),
        |c, a| {
            c.replies.push((arg_int(a, 0), arg_str(a, 1)));
            c.calls.push(format!(
                "sl_send_reply({},{})",
                arg_int(a, 0),
                arg_str(a, 1)
            ));
            Value::Int(1)
        },
    );
    t.add_native("sl_send_reply", 2, idx, RouteMask(1 | 2));
    let idx = t.add(
        sig("textops", "textops", "is_method", &[S], RetType::Bool),
        |c, a| {
            let want = arg_str(a, 0);
            b(want
                .split('|')
                .any(|m| m.eq_ignore_ascii_case(&c.msg.method)))
        },
    );
    t.add_native("is_method", 1, idx, any);
    for (name, op) in [("setflag", 0u8), ("resetflag", 1), ("isflagset", 2)] {
        let f: fn(&mut Toy, &[Value]) -> Value = match op {
            0 => |c, a| {
                c.flags |= 1 << (arg_int(a, 0) & 63);
                Value::Int(1)
            },
            1 => |c, a| {
                c.flags &= !(1 << (arg_int(a, 0) & 63));
                Value::Int(1)
            },
            _ => |c, a| b(c.flags & (1 << (arg_int(a, 0) & 63)) != 0),
        };
        let idx = t.add(sig("core", "", name, &[I], RetType::Bool), f);
        t.set_hints(idx, &[ParamHint::Flag]);
        t.add_native(name, 1, idx, any);
    }
    let idx = t.add(
        sig("xlog", "", "xlog_native", &[S], RetType::Int),
        |c, a| {
            c.logs.push(arg_str(a, 0));
            Value::Int(1)
        },
    );
    t.add_native("xlog", 1, idx, any);
    let idx = t.add(
        sig("xlog", "", "xlog_native2", &[S, S], RetType::Int),
        |c, a| {
            c.logs.push(arg_str(a, 1));
            Value::Int(1)
        },
    );
    t.add_native("xlog", 2, idx, any);
    // Returns its argument: drives return-code tests.
    let idx = t.add(sig("test", "test", "ret", &[I], RetType::Int), |c, a| {
        c.calls.push(format!("ret({})", arg_int(a, 0)));
        Value::Int(arg_int(a, 0))
    });
    t.add_native("ret", 1, idx, any);
    // Records its arguments.
    let idx = t.add(sig("test", "test", "rec", &[S], RetType::Int), |c, a| {
        c.calls.push(format!("rec({})", arg_str(a, 0)));
        Value::Int(1)
    });
    t.add_native("rec", 1, idx, any);
    let idx = t.add(
        sig("test", "test", "rec2", &[S, I], RetType::Int),
        |c, a| {
            c.calls
                .push(format!("rec2({},{})", arg_str(a, 0), arg_int(a, 1)));
            Value::Int(1)
        },
    );
    t.add_native("rec2", 2, idx, any);
    let idx = t.add(
        sig("tm", "tm", "t_on_failure", &[S], RetType::Int),
        |c, a| {
            c.calls.push(format!("t_on_failure({})", arg_str(a, 0)));
            Value::Int(1)
        },
    );
    t.set_hints(idx, &[ParamHint::Route(RouteKind::Failure)]);
    t.add_native("t_on_failure", 1, idx, RouteMask(1 | 2 | 8));
    // Runs branch_route[NAME] through the same program while the caller is live.
    let idx = t.add(
        sig("tm", "tm", "t_run_branch", &[S], RetType::Int),
        |c, a| {
            let name = arg_str(a, 0);
            run_nested(c, RouteKind::Branch, &name)
        },
    );
    t.add_native("t_run_branch", 1, idx, RouteMask(1 | 2));
    let idx = t.add(
        sig("textops", "textops", "search", &[S], RetType::Bool),
        |c, a| {
            let re = arg_str(a, 0);
            b(c.msg
                .headers
                .iter()
                .any(|(n, v)| format!("{n}: {v}").contains(re.trim_start_matches('^'))))
        },
    );
    t.set_hints(idx, &[ParamHint::Regex]);
    t.add_native("search", 1, idx, any);
    let idx = t.add(
        sig("pv", "pvx", "pv_printf", &[S, S], RetType::Int),
        |c, a| {
            let name = arg_str(a, 0);
            let v = Value::from(arg_str(a, 1));
            let inner = name
                .trim_start_matches("$var(")
                .trim_end_matches(')')
                .to_string();
            c.vars.insert(Bytes::from(inner), v);
            Value::Int(1)
        },
    );
    t.set_hints(idx, &[ParamHint::PvName, ParamHint::Plain]);
    t.add_native("pv_printf", 2, idx, any);
    let idx = t.add(
        sig("sl", "sl", "send_reply_only_reply", &[I, S], RetType::Int),
        |c, a| {
            c.replies.push((arg_int(a, 0), arg_str(a, 1)));
            Value::Int(1)
        },
    );
    t.add_native("reply_only", 2, idx, RouteMask::ONREPLY);
    for (name, f) in [
        (
            "is_myself_ruri",
            (|c: &mut Toy, _: &[Value]| b(Toy::uri_is_me(&c.msg.ruri)))
                as fn(&mut Toy, &[Value]) -> Value,
        ),
        ("is_myself_furi", |c: &mut Toy, _: &[Value]| {
            b(Toy::uri_is_me(&c.msg.from))
        }),
        ("is_myself_turi", |c: &mut Toy, _: &[Value]| {
            b(Toy::uri_is_me(&c.msg.to))
        }),
        ("is_myself_srcip", |c: &mut Toy, _: &[Value]| {
            b(c.msg.src_ip == "127.0.0.1")
        }),
    ] {
        let idx = t.add(sig("core", "", name, &[], RetType::Bool), f);
        // The cfg's `uri == myself` compiles to the `_port` variants (the toy's URIs carry
        // the port, so the same test serves).
        if name != "is_myself_srcip" {
            t.add_native(&format!("{name}_port"), 0, idx, RouteMask::ANY);
        }
    }
    // Stand-ins for a typical request route (tm, rr, registrar, sanity ...): they count
    // the call and answer like the real function on an initial INVITE.
    let ok: fn(&mut Toy, &[Value]) -> Value = |c, _| {
        c.stubs += 1;
        Value::Int(1)
    };
    let no: fn(&mut Toy, &[Value]) -> Value = |c, _| {
        c.stubs += 1;
        Value::Int(-1)
    };
    for (name, owner, params, f) in [
        ("t_check_trans", "tm", &[][..], no),
        ("t_precheck_trans", "tm", &[][..], no),
        ("t_relay", "tm", &[][..], ok),
        ("t_on_branch", "tm", &[S][..], ok),
        ("t_is_set", "tm", &[S][..], no),
        ("remove_hf", "textops", &[S][..], ok),
        ("record_route", "rr", &[][..], ok),
        ("loose_route", "rr", &[][..], no),
        ("has_totag", "siputils", &[][..], no),
        ("lookup", "registrar", &[S][..], ok),
        ("sanity_check", "sanity", &[S, S][..], ok),
        ("mf_process_maxfwd_header", "maxfwd", &[I][..], ok),
        ("sl_reply_error", "sl", &[][..], ok),
    ] {
        let idx = t.add(sig(owner, owner, name, params, RetType::Int), f);
        t.add_native(name, params.len() as u8, idx, any);
    }
    let mut s = sig("core", "", "is_myself_dstip", &[], RetType::Bool);
    s.kemi = false;
    let idx = t.add(s, |c, _| b(c.msg.dst_ip == "127.0.0.1"));
    t.add_native("is_myself_dstip", 0, idx, any);
    t
}

// ---------------------------------------------------------------- pseudo-variables

pub fn registry() -> &'static PvRegistry<Toy> {
    static R: OnceLock<PvRegistry<Toy>> = OnceLock::new();
    R.get_or_init(build_registry)
}

fn key_of(spec: &PvSpec) -> Bytes {
    match &spec.param {
        PvParam::Str(s) => s.clone(),
        _ => Bytes::new(),
    }
}

fn name_of(spec: &PvSpec) -> String {
    match &spec.param {
        PvParam::Str(s) => String::from_utf8_lossy(s).into_owned(),
        _ => String::new(),
    }
}

fn parse_name(s: &str) -> Result<PvParam, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty name".into());
    }
    Ok(PvParam::Str(Bytes::from(t.to_string())))
}

fn ro(name: &'static str, get: fn(&mut Toy, &PvSpec) -> Value) -> PvClass<Toy> {
    PvClass {
        name,
        get,
        set: None,
        parse_name: None,
        name_required: false,
        takes_index: false,
    }
}

fn build_registry() -> PvRegistry<Toy> {
    let mut r: PvRegistry<Toy> = PvRegistry::new();
    r.add(PvClass {
        name: "var",
        get: |c, s| {
            let k = key_of(s);
            c.vars.get(&k).cloned().unwrap_or(Value::Int(0))
        },
        set: Some(|c, s, v| {
            let v = match v {
                Value::Null => Value::Int(0),
                other => other.clone(),
            };
            c.vars.insert(key_of(s), v);
            Ok(())
        }),
        parse_name: Some(parse_name),
        name_required: true,
        takes_index: false,
    });
    r.add(PvClass {
        name: "avp",
        get: |c, s| {
            let list = c.avps.get(&name_of(s));
            let idx = match s.index {
                PvIndex::Int(i) => i,
                _ => 0,
            };
            list.and_then(|l| {
                let i = if idx < 0 { l.len() as i32 + idx } else { idx };
                usize::try_from(i).ok().and_then(|i| l.get(i))
            })
            .cloned()
            .unwrap_or(Value::Null)
        },
        set: Some(|c, s, v| {
            let name = name_of(s);
            match (v, &s.index) {
                (Value::Null, PvIndex::All) => {
                    c.avps.remove(&name);
                }
                (Value::Null, _) => {
                    if let Some(l) = c.avps.get_mut(&name)
                        && !l.is_empty()
                    {
                        l.remove(0);
                    }
                }
                (v, _) => c.avps.entry(name).or_default().insert(0, v.clone()),
            }
            Ok(())
        }),
        parse_name: Some(parse_name),
        name_required: true,
        takes_index: true,
    });
    r.add(PvClass {
        name: "ru",
        get: |c, _| Value::from(c.msg.ruri.as_str()),
        set: Some(|c, _, v| {
            c.msg.ruri = text(v);
            Ok(())
        }),
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
    r.add(PvClass {
        name: "rU",
        get: |c, _| Value::from(c.ruri_user()),
        set: Some(|c, _, v| {
            let host = c.msg.ruri.split_once('@').map(|x| x.1.to_string());
            c.msg.ruri = match host {
                Some(h) => format!("sip:{}@{h}", text(v)),
                None => c.msg.ruri.clone(),
            };
            Ok(())
        }),
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
    r.add(ro("rd", |c, _| Value::from(c.ruri_host())));
    r.add(ro("rm", |c, _| Value::from(c.msg.method.as_str())));
    r.add(ro("fu", |c, _| Value::from(c.msg.from.as_str())));
    r.add(ro("tu", |c, _| Value::from(c.msg.to.as_str())));
    r.add(ro("ci", |c, _| Value::from(c.msg.callid.as_str())));
    r.add(ro("si", |c, _| Value::from(c.msg.src_ip.as_str())));
    r.add(ro("sp", |c, _| Value::Int(c.msg.src_port)));
    r.add(ro("Ri", |c, _| Value::from(c.msg.dst_ip.as_str())));
    r.add(ro("Rp", |c, _| Value::Int(c.msg.dst_port)));
    r.add(ro("prid", |c, _| Value::Int(c.msg.proto)));
    r.add(ro("ml", |c, _| Value::Int(c.msg.len)));
    r.add(ro("mt", |c, _| {
        Value::Int(if c.msg.status.is_some() { 2 } else { 1 })
    }));
    r.add(ro("rs", |c, _| match &c.msg.status {
        Some(s) => Value::from(s.as_str()),
        None => Value::Null,
    }));
    r.add(PvClass {
        name: "hdr",
        get: |c, s| {
            let n = name_of(s);
            let all: Vec<&String> = c
                .msg
                .headers
                .iter()
                .filter(|(h, _)| h.eq_ignore_ascii_case(&n))
                .map(|(_, v)| v)
                .collect();
            let idx = match s.index {
                PvIndex::Int(i) => i,
                _ => 0,
            };
            let i = if idx < 0 { all.len() as i32 + idx } else { idx };
            usize::try_from(i)
                .ok()
                .and_then(|i| all.get(i))
                .map(|v| Value::from(v.as_str()))
                .unwrap_or(Value::Null)
        },
        set: None,
        parse_name: Some(parse_name),
        name_required: true,
        takes_index: true,
    });
    r.add(PvClass {
        name: "ro",
        get: |_, _| Value::from("read-only"),
        set: Some(|_, _, _| Err(PvError::ReadOnly)),
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
    r
}

// ---------------------------------------------------------------- running

/// Parses and compiles a cfg for the toy host; panics with the diagnostics on failure.
pub fn compile(cfg: &str) -> Program {
    match try_compile(cfg) {
        Ok(p) => p,
        Err(d) => panic!("compile failed:\n{d}"),
    }
}

/// Parses and compiles; the rendered diagnostics on failure.
pub fn try_compile(cfg: &str) -> Result<Program, String> {
    let r = compiler::frontend::parse_str("t.cfg", cfg, &compiler::preprocess::Options::default());
    let Some(config) = r.config.as_ref().filter(|_| !r.has_errors()) else {
        return Err(compiler::report::render(&r.sources, &r.diagnostics, false));
    };
    let cat = compiler::Catalog::new(table(), registry()).with_sources(&r.sources);
    compiler::compile(config, &cat).map_err(|d| compiler::report::render(&r.sources, &d, false))
}

/// Every diagnostic (errors and warnings) of a cfg, one per line, as `line: message`.
pub fn diagnostics(cfg: &str) -> Vec<String> {
    diagnostics_with(cfg, None)
}

/// [`diagnostics`] with a module catalog for `modparam` checks and hints.
pub fn diagnostics_with(cfg: &str, modules: Option<&dyn compiler::ModuleCatalog>) -> Vec<String> {
    let r = compiler::frontend::parse_str("t.cfg", cfg, &compiler::preprocess::Options::default());
    let mut out: Vec<String> = r
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", r.sources.line_col(d.span).0, d.message))
        .collect();
    if let Some(config) = r.config.as_ref().filter(|_| !r.has_errors()) {
        let mut cat = compiler::Catalog::new(table(), registry()).with_sources(&r.sources);
        cat.modules = modules;
        for d in compiler::check::check(config, &cat) {
            out.push(format!("{}: {}", r.sources.line_col(d.span).0, d.message));
        }
    }
    out
}

/// Runs the main request route on `msg`.
pub fn run(prog: &Arc<Program>, msg: Msg) -> (Toy, Outcome) {
    run_route(prog, msg, RouteKind::Request, None)
}

pub fn run_route(
    prog: &Arc<Program>,
    msg: Msg,
    kind: RouteKind,
    name: Option<&str>,
) -> (Toy, Outcome) {
    let mut toy = Toy::new(msg);
    toy.program = Some(prog.clone());
    let id = prog.route(kind, name).unwrap_or(u32::MAX);
    let mut vm = Vm::new(prog, toy.limits);
    let out = vm.run(&mut toy, id);
    (toy, out)
}
