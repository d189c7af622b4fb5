//! The register interpreter: one dispatch loop over [`Insn`]s with Kamailio 5.6's
//! semantics.
//!
//! * Values are null, 32-bit integers (wrapping arithmetic, as Kamailio's C `int`) or byte
//!   strings. A string used as an integer is its decimal (or `0x` hex) value, else 0; null
//!   is 0 and "".
//! * A condition is true when its integer value is > 0; `&&`, `||` and `!` use C truth
//!   (`!= 0`), as in Kamailio.
//! * A module function returning 0 ends the script; its return code becomes `$rc`. Core
//!   actions (`setflag`, ...) leave `$rc` alone.
//! * `return 0` ends the script; a route's value when it falls off its end is the return
//!   code of its last executed statement (the compiler tracks that).
//! * Sub-routes run on the same register stack (a frame per call, no Rust recursion), with
//!   Kamailio's depth accounting against `max_recursive_level`.
//! * A KSR function may run another route of the same program while this one is live (tm
//!   running `branch_route` from `t_relay`): that run uses its own [`Stack`], which the
//!   caller takes from and returns to a pool, so nothing is allocated per message once warm.

use crate::bytecode::{BinOp, Insn, UnOp};
use crate::host::Host;
use crate::ksr::RetType;
use crate::program::{ArgConv, CallKind, FmtPart, Program, RouteId, posix_regex, str_to_int};
use crate::value::Value;
use bytes::Bytes;

thread_local! {
    /// The cfg line of the module function call being executed (xlog's `xlogl`).
    static CFG_LINE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The cfg line of the module function call this worker is executing (0 outside one).
pub fn current_cfg_line() -> u32 {
    CFG_LINE.with(|l| l.get())
}

/// How a route run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The route's return value (`return N`, the last statement's code, `exit N`).
    pub code: i32,
    /// `exit`, `drop`, `return 0` or a module function returning 0 ended the script.
    pub exit: bool,
    /// `drop` was executed.
    pub drop: bool,
}

/// Older name of [`Outcome`].
pub type RunResult = Outcome;

/// Limits from the core configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `max_while_loops`: iterations of one `while` before it is stopped (0: no limit).
    pub max_while_loops: u32,
    /// `max_recursive_level`: nesting of action lists and sub-routes.
    pub max_recursive_level: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_while_loops: 100,
            max_recursive_level: 256,
        }
    }
}

/// Frames past this count are refused whatever the depth accounting says (Kamailio resets
/// its depth count for routes called from expressions and would overflow its C stack).
const HARD_FRAME_LIMIT: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Frame {
    ret_ip: usize,
    base: usize,
    dst: u16,
    depth: u32,
}

/// The register stack of one run (frames of the route and its sub-routes). Reusable: a
/// warm stack makes a run allocation-free apart from the values it creates.
#[derive(Debug, Default)]
pub struct Stack {
    regs: Vec<Value>,
    frames: Vec<Frame>,
    /// The last run-time regex per instruction (`=~` with a computed pattern).
    regex_cache: Vec<(usize, Bytes, regex::bytes::Regex)>,
}

impl Stack {
    pub fn new() -> Stack {
        Stack::default()
    }
}

/// A run of one program: the stack, the limits and `$rc`.
pub struct Vm<'p> {
    prog: &'p Program,
    limits: Limits,
    last_rc: i32,
    stack: Stack,
}

impl<'p> Vm<'p> {
    pub fn new(prog: &'p Program, limits: Limits) -> Vm<'p> {
        Vm::with_stack(prog, limits, Stack::new())
    }

    /// A VM over a reused stack (see [`Vm::into_stack`]).
    pub fn with_stack(prog: &'p Program, limits: Limits, stack: Stack) -> Vm<'p> {
        Vm {
            prog,
            limits,
            last_rc: 1,
            stack,
        }
    }

    /// Gives the stack back for reuse.
    pub fn into_stack(self) -> Stack {
        self.stack
    }

    /// The return code of the last function or route (`$rc`).
    pub fn last_rc(&self) -> i32 {
        self.last_rc
    }

    /// Runs route `route` for the host context `ctx`.
    pub fn run<C: Host>(&mut self, ctx: &mut C, route: RouteId) -> Outcome {
        run(
            self.prog,
            ctx,
            route,
            &self.limits,
            &mut self.stack,
            &mut self.last_rc,
        )
    }
}

/// Runs `route` of `prog` on `stack`; `last_rc` is `$rc`, read and updated.
pub fn run<C: Host>(
    prog: &Program,
    ctx: &mut C,
    route: RouteId,
    limits: &Limits,
    stack: &mut Stack,
    last_rc: &mut i32,
) -> Outcome {
    stack.regs.clear();
    stack.frames.clear();
    let Some(info) = prog.routes.get(route as usize) else {
        return Outcome {
            code: -1,
            exit: false,
            drop: false,
        };
    };
    // Kamailio starts each top-level run with `$rc` 0.
    *last_rc = 0;
    stack.regs.resize(info.regs as usize, Value::Null);
    let out = exec(prog, ctx, limits, stack, last_rc, info.entry as usize);
    // Drop what the run left in registers now rather than at the next run.
    stack.regs.clear();
    stack.frames.clear();
    out
}

static NULL: Value = Value::Null;

#[inline(always)]
fn reg(regs: &[Value], base: usize, r: u16) -> &Value {
    regs.get(base + r as usize).unwrap_or(&NULL)
}

#[inline(always)]
fn set(regs: &mut [Value], base: usize, r: u16, v: Value) {
    if let Some(slot) = regs.get_mut(base + r as usize) {
        *slot = v;
    }
}

fn exec<C: Host>(
    prog: &Program,
    ctx: &mut C,
    limits: &Limits,
    stack: &mut Stack,
    last_rc: &mut i32,
    entry: usize,
) -> Outcome {
    let code = &prog.code;
    let mut ip = entry;
    let mut base = 0usize;
    let mut depth: u32 = 1;
    let mut assign_ok = true;
    let max_level = limits.max_recursive_level;
    loop {
        let Some(&insn) = code.get(ip) else {
            ctx.script_error("routing code ended without a return");
            return Outcome {
                code: -1,
                exit: true,
                drop: false,
            };
        };
        ip += 1;
        let regs = &mut stack.regs;
        match insn {
            Insn::LoadK { d, k } => {
                let v = prog.consts.get(k as usize).cloned().unwrap_or(Value::Null);
                set(regs, base, d, v);
            }
            Insn::LoadI { d, i } => set(regs, base, d, Value::Int(i as i64)),
            Insn::Move { d, s } => {
                let v = reg(regs, base, s).clone();
                set(regs, base, d, v);
            }
            Insn::Take { d, s } => {
                let v = regs
                    .get_mut(base + s as usize)
                    .map(std::mem::take)
                    .unwrap_or_default();
                set(regs, base, d, v);
            }
            Insn::Pv { d, pv } => {
                let v = match prog.pvs.get(pv as usize) {
                    Some(spec) => crate::pv::get(ctx, spec),
                    None => Value::Null,
                };
                set(&mut stack.regs, base, d, v);
            }
            Insn::SetPv { s, pv } | Insn::SetPvAll { s, pv } => {
                let Some(spec) = prog.pvs.get(pv as usize) else {
                    assign_ok = false;
                    continue;
                };
                if matches!(insn, Insn::SetPvAll { .. }) {
                    let mut all = spec.clone();
                    all.index = crate::pv::PvIndex::All;
                    let _ = crate::pv::set(ctx, &all, &Value::Null);
                }
                let v = reg(regs, base, s);
                assign_ok = match crate::pv::set(ctx, spec, v) {
                    Ok(()) => true,
                    Err(e) => {
                        ctx.script_error(&format!("assignment to {} failed: {e}", spec.text));
                        false
                    }
                };
            }
            Insn::AssignRc { d } => {
                set(regs, base, d, Value::Int(if assign_ok { 1 } else { -1 }));
            }
            Insn::Fmt { d, f } => {
                let v = match prog.formats.get(f as usize) {
                    Some(fe) => match fe.as_literal() {
                        Some(lit) => Value::Str(lit),
                        None => {
                            let mut out = Vec::with_capacity(64);
                            for part in &fe.parts {
                                match part {
                                    FmtPart::Lit(b) => out.extend_from_slice(b),
                                    FmtPart::Pv(spec) => {
                                        let v = crate::pv::get(ctx, spec);
                                        crate::pv::push_value(&mut out, &v);
                                    }
                                    FmtPart::Rc => {
                                        crate::pv::push_value(
                                            &mut out,
                                            &Value::Int(*last_rc as i64),
                                        );
                                    }
                                }
                            }
                            Value::Str(Bytes::from(out))
                        }
                    },
                    None => Value::Null,
                };
                set(&mut stack.regs, base, d, v);
            }
            Insn::Rc { d } => set(regs, base, d, Value::Int(*last_rc as i64)),
            Insn::Un { op, d, a } => {
                let v = unop(op, reg(regs, base, a));
                set(regs, base, d, v);
            }
            Insn::Bin { op, d, a, b } => {
                let v = binop(op, reg(regs, base, a), reg(regs, base, b));
                set(regs, base, d, v);
            }
            Insn::Div { d, a, b } | Insn::Mod { d, a, b } => {
                let x = to_int(reg(regs, base, a));
                let y = to_int(reg(regs, base, b));
                let div = matches!(insn, Insn::Div { .. });
                if y == 0 {
                    ctx.script_error(if div { "rv div by 0" } else { "rv mod by 0" });
                    // The next instruction is the jump to the failure path.
                    continue;
                }
                let r = if div {
                    x.wrapping_div(y)
                } else {
                    x.wrapping_rem(y)
                };
                set(regs, base, d, Value::Int(r as i64));
                ip += 1;
            }
            Insn::Match { d, a, re } => {
                let hit = match prog.regexes.get(re as usize) {
                    Some(r) => with_str(reg(regs, base, a), |s| r.re.is_match(c_str(s))),
                    None => false,
                };
                set(regs, base, d, Value::Int(hit as i64));
            }
            Insn::MatchDyn { d, a, b } => {
                let pat = to_bytes(reg(regs, base, b));
                let pat = Bytes::copy_from_slice(c_str(&pat));
                let cache = &mut stack.regex_cache;
                let cached = cache.iter().position(|(at, p, _)| *at == ip && *p == pat);
                let idx = match cached {
                    Some(i) => i,
                    None => match posix_regex(&pat, true) {
                        Ok(re) => {
                            cache.retain(|(at, _, _)| *at != ip);
                            if cache.len() >= 64 {
                                cache.remove(0);
                            }
                            cache.push((ip, pat.clone(), re));
                            cache.len() - 1
                        }
                        Err(e) => {
                            ctx.script_error(&format!(
                                "Bad regular expression \"{}\": {e}",
                                String::from_utf8_lossy(&pat)
                            ));
                            continue;
                        }
                    },
                };
                let regs = &mut stack.regs;
                let hit = match stack.regex_cache.get(idx) {
                    Some((_, _, re)) => with_str(reg(regs, base, a), |s| re.is_match(c_str(s))),
                    None => false,
                };
                set(regs, base, d, Value::Int(hit as i64));
                ip += 1;
            }
            Insn::IpMatch { d, a, net } => {
                let hit = prog.nets.get(net as usize).is_some_and(|n| {
                    with_str(reg(regs, base, a), |s| {
                        std::str::from_utf8(s)
                            .ok()
                            .and_then(|t| t.trim_matches(['[', ']']).parse().ok())
                            .is_some_and(|ip| n.contains(ip))
                    })
                });
                set(regs, base, d, Value::Int(hit as i64));
            }
            Insn::Jmp { to } => ip = to as usize,
            Insn::JmpF { c, to } => {
                if to_int(reg(regs, base, c)) <= 0 {
                    ip = to as usize;
                }
            }
            Insn::JmpT { c, to } => {
                if to_int(reg(regs, base, c)) > 0 {
                    ip = to as usize;
                }
            }
            Insn::JmpZ { c, to } => {
                if to_int(reg(regs, base, c)) == 0 {
                    ip = to as usize;
                }
            }
            Insn::JmpNZ { c, to } => {
                if to_int(reg(regs, base, c)) != 0 {
                    ip = to as usize;
                }
            }
            Insn::SwitchInt { s, t } => {
                let v = to_int(reg(regs, base, s));
                match prog.int_switches.get(t as usize) {
                    Some(tab) => ip = tab.lookup(v) as usize,
                    None => ip = code.len(),
                }
            }
            Insn::SwitchStr { s, t } => match prog.str_switches.get(t as usize) {
                Some(tab) => {
                    ip = with_str(reg(regs, base, s), |b| tab.lookup(b)) as usize;
                }
                None => ip = code.len(),
            },
            Insn::LoopGuard { c, to } => {
                if limits.max_while_loops > 0 {
                    let n = to_int(reg(regs, base, c)).saturating_add(1);
                    set(regs, base, c, Value::Int(n as i64));
                    if n as i64 > limits.max_while_loops as i64 {
                        ctx.script_error(&format!(
                            "runaway while: more then {} loops",
                            limits.max_while_loops
                        ));
                        ip = to as usize;
                    }
                }
            }
            Insn::DepthGuard { nest, to } => {
                let level = depth.saturating_add(nest as u32);
                if level > max_level {
                    ctx.script_error(&format!(
                        "too many recursive routing table lookups ({level}) giving up!"
                    ));
                    ip = to as usize;
                }
            }
            Insn::Call { d, site } => {
                let Some(cs) = prog.calls.get(site as usize) else {
                    set(regs, base, d, Value::Int(-1));
                    continue;
                };
                if cs.kind == CallKind::Module {
                    let line = prog.lines.get(ip.wrapping_sub(1)).copied().unwrap_or(0);
                    CFG_LINE.with(|l| l.set(line));
                }
                let rc = call(prog, ctx, regs, base, cs);
                if cs.kind == CallKind::Module {
                    *last_rc = rc;
                    if rc == 0 {
                        return Outcome {
                            code: 0,
                            exit: true,
                            drop: false,
                        };
                    }
                }
                set(&mut stack.regs, base, d, Value::Int(rc as i64));
            }
            Insn::Route { d, site } | Insn::RouteDyn { d, site } => {
                let Some(rs) = prog.route_sites.get(site as usize) else {
                    set(regs, base, d, Value::Int(-1));
                    continue;
                };
                let target = if matches!(insn, Insn::RouteDyn { .. }) {
                    // The register holds the name; an int name is looked up in decimal.
                    let r = reg(regs, base, rs.target as u16);
                    match with_str(r, |n| prog.sub_route(n)) {
                        Some(t) => t,
                        None => {
                            let name = to_bytes(r);
                            ctx.script_error(&format!(
                                "route \"{}\" not found",
                                String::from_utf8_lossy(&name)
                            ));
                            *last_rc = -1;
                            set(&mut stack.regs, base, d, Value::Int(-1));
                            continue;
                        }
                    }
                } else {
                    rs.target
                };
                let Some(info) = prog.routes.get(target as usize) else {
                    set(regs, base, d, Value::Int(-1));
                    continue;
                };
                let callee_depth = if rs.in_expr {
                    2
                } else {
                    depth.saturating_add(rs.nest as u32).saturating_add(1)
                };
                if callee_depth > max_level || stack.frames.len() >= HARD_FRAME_LIMIT {
                    ctx.script_error(&format!(
                        "too many recursive routing table lookups ({callee_depth}) giving up!"
                    ));
                    *last_rc = -1;
                    set(regs, base, d, Value::Int(-1));
                    continue;
                }
                if rs.in_expr {
                    *last_rc = 0;
                }
                stack.frames.push(Frame {
                    ret_ip: ip,
                    base,
                    dst: d,
                    depth,
                });
                base = regs.len();
                regs.resize(base + info.regs as usize, Value::Null);
                depth = callee_depth;
                ip = info.entry as usize;
            }
            Insn::Ret { s } | Insn::Leave { s } => {
                let rc = to_int(reg(regs, base, s));
                if rc == 0 && matches!(insn, Insn::Ret { .. }) {
                    // `return 0` ends the whole script.
                    *last_rc = 0;
                    return Outcome {
                        code: 0,
                        exit: true,
                        drop: false,
                    };
                }
                let Some(f) = stack.frames.pop() else {
                    return Outcome {
                        code: rc,
                        exit: false,
                        drop: false,
                    };
                };
                regs.truncate(base);
                base = f.base;
                ip = f.ret_ip;
                depth = f.depth;
                *last_rc = rc;
                set(regs, base, f.dst, Value::Int(rc as i64));
            }
            Insn::Exit { s } | Insn::Drop { s } => {
                let rc = to_int(reg(regs, base, s));
                *last_rc = rc;
                return Outcome {
                    code: rc,
                    exit: true,
                    drop: matches!(insn, Insn::Drop { .. }),
                };
            }
        }
    }
}

/// Converts the arguments the call site asks for (in place) and calls the export.
fn call<C: Host>(
    prog: &Program,
    ctx: &mut C,
    regs: &mut [Value],
    base: usize,
    cs: &crate::program::CallSite,
) -> i32 {
    let Some(imp) = prog.imports.get(cs.import as usize) else {
        return -1;
    };
    let table = ctx.ksr_table();
    let Some(export) = table.get(imp.export) else {
        return -1;
    };
    let first = base + cs.args as usize;
    let argc = cs.argc as usize;
    if cs.conv != 0 {
        for i in 0..argc {
            let Some(slot) = regs.get_mut(first + i) else {
                return -1;
            };
            match cs.conv(i) {
                ArgConv::None => {}
                ArgConv::Int => {
                    let n = match slot {
                        Value::Int(n) => Some(*n),
                        Value::Str(s) => crate::program::parse_int_strict(s).map(|n| n as i64),
                        Value::Null => None,
                    };
                    match n {
                        Some(n) => *slot = Value::Int(n),
                        None => {
                            let shown = slot.to_string();
                            ctx.script_error(&format!(
                                "{}: parameter {} is not an integer: '{shown}'",
                                imp.native,
                                i + 1
                            ));
                            return -1;
                        }
                    }
                }
                ArgConv::Str => {
                    if !matches!(slot, Value::Str(_)) {
                        *slot = Value::Str(to_bytes(slot));
                    }
                }
            }
        }
    }
    let args = regs.get(first..first + argc).unwrap_or(&[]);
    match (export.func)(ctx, args) {
        Value::Int(i) => i.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        Value::Str(_) => 1,
        Value::Null => {
            if export.sig.ret == RetType::None {
                1
            } else {
                -1
            }
        }
    }
}

// ---------------------------------------------------------------- value semantics

/// The integer value of a value (Kamailio's `rval_get_int`).
#[inline]
pub fn to_int(v: &Value) -> i32 {
    match v {
        Value::Int(i) => *i as i32,
        Value::Str(s) => str_to_int(s),
        Value::Null => 0,
    }
}

/// The string value of a value: integers in decimal, null as "".
pub fn to_bytes(v: &Value) -> Bytes {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => Bytes::from((*i as i32).to_string()),
        Value::Null => Bytes::new(),
    }
}

/// Runs `f` on the string value of `v` without allocating for integers.
#[inline]
fn with_str<R>(v: &Value, f: impl FnOnce(&[u8]) -> R) -> R {
    match v {
        Value::Str(s) => f(s),
        Value::Null => f(b""),
        Value::Int(i) => {
            let mut buf = [0u8; 12];
            f(int_text(*i as i32, &mut buf))
        }
    }
}

fn int_text(v: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut i = buf.len();
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    if neg && i > 0 {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'-';
        }
    }
    buf.get(i..).unwrap_or(b"")
}

/// A byte string as C sees it: up to the first NUL (regexec works on C strings).
fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == 0) {
        Some(n) => s.get(..n).unwrap_or(s),
        None => s,
    }
}

fn int(i: i32) -> Value {
    Value::Int(i as i64)
}

fn concat(x: &Value, y: &Value) -> Value {
    let mut out = Vec::new();
    with_str(x, |a| out.extend_from_slice(a));
    with_str(y, |b| out.extend_from_slice(b));
    Value::Str(Bytes::from(out))
}

/// Evaluates a binary operator (never fails; division is [`Insn::Div`]).
pub fn binop(op: BinOp, x: &Value, y: &Value) -> Value {
    use BinOp::*;
    match op {
        IAdd => int(to_int(x).wrapping_add(to_int(y))),
        ISub => int(to_int(x).wrapping_sub(to_int(y))),
        IMul => int(to_int(x).wrapping_mul(to_int(y))),
        IBitAnd => int(to_int(x) & to_int(y)),
        IBitOr => int(to_int(x) | to_int(y)),
        IBitXor => int(to_int(x) ^ to_int(y)),
        IShl => int(to_int(x).wrapping_shl(to_int(y) as u32)),
        IShr => int(to_int(x).wrapping_shr(to_int(y) as u32)),
        ILt => int((to_int(x) < to_int(y)) as i32),
        ILe => int((to_int(x) <= to_int(y)) as i32),
        IGt => int((to_int(x) > to_int(y)) as i32),
        IGe => int((to_int(x) >= to_int(y)) as i32),
        IEq => int((to_int(x) == to_int(y)) as i32),
        INe => int((to_int(x) != to_int(y)) as i32),
        Plus => match x {
            Value::Int(a) => int((*a as i32).wrapping_add(to_int(y))),
            _ => concat(x, y),
        },
        Concat => concat(x, y),
        Eq | Ne => {
            let eq = loose_eq(x, y);
            int((eq == (op == Eq)) as i32)
        }
        StrEq | StrNe => {
            let eq = with_str(x, |a| with_str(y, |b| a == b));
            int((eq == (op == StrEq)) as i32)
        }
        CaseEq | CaseNe => {
            let eq = with_str(x, |a| with_str(y, |b| a.eq_ignore_ascii_case(b)));
            int((eq == (op == CaseEq)) as i32)
        }
        IpIn => int(ip_in(x, y) as i32),
    }
}

/// `==` typed by the left operand; an undefined left operand takes the right one's type.
fn loose_eq(x: &Value, y: &Value) -> bool {
    match x {
        Value::Int(a) => *a as i32 == to_int(y),
        Value::Str(a) => with_str(y, |b| a.as_ref() == b),
        Value::Null => match y {
            Value::Int(b) => *b as i32 == 0,
            _ => with_str(y, |b| b.is_empty()),
        },
    }
}

/// Is the address in `x` inside the address or network (`a.b.c.d/n`, `a.b.c.d/m.m.m.m`)
/// written in `y`? Kamailio would resolve a host name here; ksr does not.
fn ip_in(x: &Value, y: &Value) -> bool {
    let parse = |s: &[u8]| -> Option<std::net::IpAddr> {
        std::str::from_utf8(s)
            .ok()?
            .trim_matches(['[', ']'])
            .parse()
            .ok()
    };
    let Some(addr) = with_str(x, parse) else {
        return false;
    };
    with_str(y, |net| {
        let (a, mask) = match net.iter().position(|&c| c == b'/') {
            Some(p) => (net.get(..p).unwrap_or(b""), net.get(p + 1..)),
            None => (net, None),
        };
        let Some(n) = parse(a) else {
            return false;
        };
        let full = if n.is_ipv4() { 32 } else { 128 };
        let prefix = match mask {
            None => full,
            Some(m) => match std::str::from_utf8(m)
                .ok()
                .and_then(|t| t.parse::<u8>().ok())
            {
                Some(p) if p <= full => p,
                Some(_) => return false,
                None => match parse(m) {
                    Some(std::net::IpAddr::V4(mm)) => u32::from(mm).leading_ones() as u8,
                    _ => return false,
                },
            },
        };
        crate::program::IpNet { addr: n, prefix }.contains(addr)
    })
}

/// Evaluates a unary operator.
pub fn unop(op: UnOp, x: &Value) -> Value {
    match op {
        UnOp::Neg => int(to_int(x).wrapping_neg()),
        UnOp::BitNot => int(!to_int(x)),
        UnOp::LNot => int((to_int(x) == 0) as i32),
        UnOp::Bool => int((to_int(x) != 0) as i32),
        UnOp::Truth => int((to_int(x) > 0) as i32),
        UnOp::ToInt => int(to_int(x)),
        UnOp::ToStr => Value::Str(to_bytes(x)),
        UnOp::Strlen => int(with_str(x, |s| s.len()) as i32),
        UnOp::Strempty => int(with_str(x, |s| s.is_empty()) as i32),
        UnOp::Defined => int(!x.is_null() as i32),
        UnOp::NotDefined => int(x.is_null() as i32),
        UnOp::IsInt => int(matches!(x, Value::Int(_)) as i32),
        UnOp::NullEmpty => match x {
            Value::Null => Value::Str(Bytes::new()),
            _ => x.clone(),
        },
    }
}

/// Kamailio's truth of a value in a condition: > 0.
pub fn truth(v: &Value) -> bool {
    to_int(v) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn coercions_match_kamailio() {
        assert_eq!(binop(BinOp::Plus, &s("10"), &Value::Int(5)), s("105"));
        assert_eq!(binop(BinOp::Plus, &Value::Int(5), &s("10")), Value::Int(15));
        assert_eq!(binop(BinOp::Plus, &Value::Null, &Value::Int(5)), s("5"));
        assert_eq!(
            binop(BinOp::IAdd, &Value::Int(2147483647), &Value::Int(1)),
            Value::Int(-2147483648)
        );
        assert_eq!(binop(BinOp::Eq, &s("10"), &Value::Int(10)), Value::Int(1));
        assert_eq!(binop(BinOp::Eq, &Value::Int(0), &s("abc")), Value::Int(1));
        assert_eq!(binop(BinOp::Eq, &s("abc"), &s("ABC")), Value::Int(0));
        assert_eq!(binop(BinOp::CaseEq, &s("abc"), &s("ABC")), Value::Int(1));
        assert_eq!(binop(BinOp::Eq, &Value::Null, &Value::Null), Value::Int(1));
        assert_eq!(binop(BinOp::Eq, &Value::Null, &s("")), Value::Int(1));
        assert_eq!(
            binop(BinOp::Eq, &Value::Null, &Value::Int(0)),
            Value::Int(1)
        );
        assert_eq!(binop(BinOp::ILt, &s("abc"), &s("abd")), Value::Int(0));
        assert_eq!(
            binop(BinOp::IShl, &Value::Int(1), &Value::Int(33)),
            Value::Int(2)
        );
        assert_eq!(
            binop(BinOp::IShr, &Value::Int(-8), &Value::Int(1)),
            Value::Int(-4)
        );
        assert_eq!(unop(UnOp::LNot, &Value::Int(-1)), Value::Int(0));
        assert_eq!(unop(UnOp::Truth, &Value::Int(-1)), Value::Int(0));
        assert_eq!(unop(UnOp::Bool, &Value::Int(-1)), Value::Int(1));
        assert_eq!(unop(UnOp::ToStr, &Value::Null), s(""));
        assert_eq!(unop(UnOp::Strlen, &Value::Int(-12)), Value::Int(3));
        assert!(!truth(&s("abc")));
        assert!(truth(&s("2")));
        let mut b = [0u8; 12];
        assert_eq!(int_text(i32::MIN, &mut b), b"-2147483648");
        assert_eq!(c_str(b"ab\0cd"), b"ab");
    }
}
