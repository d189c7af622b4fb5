//! The register interpreter: one dispatch loop over [`Op`]s with Kamailio's semantics.
//!
//! * Truth: a value is true when its integer value is > 0 (strings that are not numbers are
//!   false); a function returning 0 stops the script, like Kamailio's action interpreter.
//! * Integers are 32-bit and wrap, as in Kamailio 5.x's cfg engine.
//! * `+` concatenates when the left operand is a string, adds otherwise; `==` and the
//!   ordering operators compare as the left operand's type; `=~` is a case-insensitive
//!   extended regex match.
//! * An expression that fails (division by zero) skips the assignment it feeds and makes a
//!   condition false.

use crate::host::Host;
use crate::ksr::ParamType;
use crate::program::{BinOp, Op, Program, UnOp};
use crate::value::Value;
use bytes::Bytes;

/// How a route run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// The return value (`return N`, or 1 when the block just ended).
    pub code: i32,
    /// `exit`, `drop`, `return 0` or a function returning 0 stopped the script.
    pub exit: bool,
    /// `drop` was executed.
    pub drop: bool,
}

/// Limits from the core configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_while_loops: u32,
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

/// Per-run interpreter state.
pub struct Vm<'p> {
    prog: &'p Program,
    limits: Limits,
    last_rc: i32,
    depth: u32,
    exit: bool,
    drop: bool,
}

enum Flow {
    Return(i32),
    Exit(i32),
}

impl<'p> Vm<'p> {
    pub fn new(prog: &'p Program, limits: Limits) -> Vm<'p> {
        Vm {
            prog,
            limits,
            last_rc: 1,
            depth: 0,
            exit: false,
            drop: false,
        }
    }

    /// Runs route `route` of the program for the host context `ctx`.
    pub fn run<C: Host>(&mut self, ctx: &mut C, route: u32) -> RunResult {
        self.exit = false;
        self.drop = false;
        let code = match self.exec(ctx, route) {
            Flow::Return(c) => c,
            Flow::Exit(c) => {
                self.exit = true;
                c
            }
        };
        RunResult {
            code,
            exit: self.exit,
            drop: self.drop,
        }
    }

    pub fn last_rc(&self) -> i32 {
        self.last_rc
    }

    fn exec<C: Host>(&mut self, ctx: &mut C, route: u32) -> Flow {
        let Some(info) = self.prog.routes.get(route as usize) else {
            return Flow::Return(-1);
        };
        self.depth += 1;
        if self.depth > self.limits.max_recursive_level {
            ctx.script_error(&format!(
                "too many recursive routing table lookups ({}) giving up!",
                self.depth
            ));
            self.depth -= 1;
            return Flow::Return(-1);
        }
        let mut regs: Vec<Value> = vec![Value::Null; info.regs as usize];
        let flow = self.exec_frame(ctx, info.entry as usize, &mut regs);
        self.depth -= 1;
        flow
    }

    fn exec_frame<C: Host>(&mut self, ctx: &mut C, entry: usize, regs: &mut [Value]) -> Flow {
        let prog = self.prog;
        let code = &prog.code;
        let mut ip = entry;
        let mut failed = false;
        macro_rules! r {
            ($i:expr) => {
                regs.get($i as usize).cloned().unwrap_or(Value::Null)
            };
        }
        macro_rules! set {
            ($i:expr, $v:expr) => {{
                let v = $v;
                if let Some(slot) = regs.get_mut($i as usize) {
                    *slot = v;
                }
            }};
        }
        loop {
            let Some(op) = code.get(ip) else {
                return Flow::Return(1);
            };
            ip += 1;
            match *op {
                Op::Const { d, k } => set!(
                    d,
                    prog.consts.get(k as usize).cloned().unwrap_or(Value::Null)
                ),
                Op::Move { d, s } => set!(d, r!(s)),
                Op::Pv { d, pv } => {
                    let v = match prog.pvs.get(pv as usize) {
                        Some(spec) => crate::pv::get(ctx, spec),
                        None => Value::Null,
                    };
                    set!(d, v)
                }
                Op::Fmt { d, f } => {
                    let v = match prog.formats.get(f as usize) {
                        Some(fmt) => Value::Str(crate::pv::format(ctx, fmt)),
                        None => Value::Null,
                    };
                    set!(d, v)
                }
                Op::SetPv { pv, s, mode } => {
                    if failed {
                        continue;
                    }
                    let Some(spec) = prog.pvs.get(pv as usize) else {
                        continue;
                    };
                    let v = r!(s);
                    if mode != 0 {
                        // Native AVP assignment replaces instead of stacking.
                        let mut del = spec.clone();
                        if mode == 2 {
                            del.index = crate::pv::PvIndex::All;
                        }
                        let _ = crate::pv::set(ctx, &del, &Value::Null);
                    }
                    if let Err(e) = crate::pv::set(ctx, spec, &v) {
                        ctx.script_error(&format!("cannot assign to {}: {e}", spec.text));
                    }
                }
                Op::Call { d, site } => {
                    let rc = self.call(ctx, site, regs);
                    self.last_rc = rc;
                    set!(d, Value::Int(rc as i64));
                    if rc == 0 {
                        return Flow::Exit(0);
                    }
                }
                Op::Route { d, route } => match self.exec(ctx, route) {
                    Flow::Return(c) => {
                        self.last_rc = c;
                        set!(d, Value::Int(c as i64));
                    }
                    Flow::Exit(c) => return Flow::Exit(c),
                },
                Op::RouteDyn { d, name } => {
                    let n = as_bytes(&r!(name));
                    let found = prog.routes.iter().position(|ri| {
                        ri.kind == crate::route::RouteKind::Request
                            && ri.name.as_deref().map(str::as_bytes) == Some(&n[..])
                    });
                    let Some(route) = found else {
                        ctx.script_error(&format!(
                            "route \"{}\" not found",
                            String::from_utf8_lossy(&n)
                        ));
                        set!(d, Value::Int(-1));
                        continue;
                    };
                    match self.exec(ctx, route as u32) {
                        Flow::Return(c) => {
                            self.last_rc = c;
                            set!(d, Value::Int(c as i64));
                        }
                        Flow::Exit(c) => return Flow::Exit(c),
                    }
                }
                Op::Bin { op, d, a, b } => {
                    let (x, y) = (r!(a), r!(b));
                    match binop(op, &x, &y) {
                        Ok(v) => set!(d, v),
                        Err(msg) => {
                            ctx.script_error(msg);
                            failed = true;
                            set!(d, Value::Null)
                        }
                    }
                }
                Op::Un { op, d, a } => {
                    let x = r!(a);
                    set!(d, unop(op, &x))
                }
                Op::Match { d, a, re } => {
                    let x = r!(a);
                    let hit = match (prog.regexes.get(re as usize), x.is_null()) {
                        (Some(re), false) => re.is_match(&String::from_utf8_lossy(&as_bytes(&x))),
                        _ => false,
                    };
                    set!(d, Value::Int(hit as i64))
                }
                Op::MatchDyn { d, a, b } => {
                    let (x, y) = (r!(a), r!(b));
                    let pat = String::from_utf8_lossy(&as_bytes(&y)).into_owned();
                    let hit = match regex::RegexBuilder::new(&pat)
                        .case_insensitive(true)
                        .build()
                    {
                        Ok(re) => {
                            !x.is_null() && re.is_match(&String::from_utf8_lossy(&as_bytes(&x)))
                        }
                        Err(_) => {
                            ctx.script_error(&format!("bad regular expression '{pat}'"));
                            false
                        }
                    };
                    set!(d, Value::Int(hit as i64))
                }
                Op::IpMatch { d, a, net } => {
                    let x = r!(a);
                    let hit = std::str::from_utf8(&as_bytes(&x))
                        .ok()
                        .and_then(|s| s.trim_matches(['[', ']']).parse().ok())
                        .zip(prog.nets.get(net as usize))
                        .is_some_and(|(ip, n)| n.contains(ip));
                    set!(d, Value::Int(hit as i64))
                }
                Op::Rc { d } => set!(d, Value::Int(self.last_rc as i64)),
                Op::Jmp { to } => ip = to as usize,
                Op::JmpFalse { c, to } => {
                    if failed || !truth(&r!(c)) {
                        ip = to as usize;
                    }
                }
                Op::JmpTrue { c, to } => {
                    if !failed && truth(&r!(c)) {
                        ip = to as usize;
                    }
                }
                Op::Begin => failed = false,
                Op::LoopGuard { counter, to } => {
                    let n = r!(counter).as_int().unwrap_or(0) + 1;
                    set!(counter, Value::Int(n));
                    if n > self.limits.max_while_loops as i64 {
                        ctx.script_error(&format!(
                            "runaway while ({} iterations), stopping the loop",
                            self.limits.max_while_loops
                        ));
                        ip = to as usize;
                    }
                }
                Op::Return { s } => {
                    let c = to_i32(&r!(s));
                    if c == 0 {
                        return Flow::Exit(0);
                    }
                    return Flow::Return(c);
                }
                Op::Exit => return Flow::Exit(0),
                Op::Drop => {
                    self.drop = true;
                    return Flow::Exit(0);
                }
            }
        }
    }

    /// Converts the arguments to the export's parameter types and calls it.
    fn call<C: Host>(&mut self, ctx: &mut C, site: u32, regs: &[Value]) -> i32 {
        let Some(cs) = self.prog.calls.get(site as usize) else {
            return -1;
        };
        let table = ctx.ksr_table();
        let Some(export) = table.get(cs.export) else {
            return -1;
        };
        let mut args: [Value; 6] = Default::default();
        let n = (cs.argc as usize).min(6);
        for (i, slot) in args.iter_mut().enumerate().take(n) {
            let v = regs
                .get(cs.args as usize + i)
                .cloned()
                .unwrap_or(Value::Null);
            *slot = match export.sig.params.get(i) {
                Some(ParamType::Int) => match &v {
                    Value::Int(_) => v,
                    Value::Str(s) => match parse_int(s) {
                        Some(n) => Value::Int(n),
                        None => {
                            ctx.script_error(&format!(
                                "{}: parameter {} is not an integer: '{}'",
                                export.sig.name,
                                i + 1,
                                String::from_utf8_lossy(s)
                            ));
                            return -1;
                        }
                    },
                    Value::Null => Value::Int(0),
                },
                _ => match &v {
                    Value::Int(n) => Value::Str(Bytes::from(n.to_string())),
                    _ => v,
                },
            };
        }
        let ret = (export.func)(ctx, &args[..n]);
        match ret {
            Value::Int(i) => i.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            Value::Null => -1,
            Value::Str(_) => 1,
        }
    }
}

fn to_i32(v: &Value) -> i32 {
    match v {
        Value::Int(i) => *i as i32,
        Value::Str(s) => parse_int(s).map(|i| i as i32).unwrap_or(0),
        Value::Null => 0,
    }
}

fn parse_int(s: &[u8]) -> Option<i64> {
    let t = std::str::from_utf8(s).ok()?.trim();
    if let Some(h) = t.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok();
    }
    t.parse().ok()
}

/// Kamailio's truth of a value in a condition: > 0.
pub fn truth(v: &Value) -> bool {
    match v {
        Value::Int(i) => *i > 0,
        Value::Str(s) => parse_int(s).is_some_and(|i| i > 0),
        Value::Null => false,
    }
}

fn as_bytes(v: &Value) -> Bytes {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => Bytes::from(i.to_string()),
        Value::Null => Bytes::new(),
    }
}

/// Integer value of an operand. A string that is not a number counts as 0, as in Kamailio
/// (which only logs a warning: oracle `5 + "|"` is 5).
fn as_int(v: &Value) -> Result<i32, &'static str> {
    match v {
        Value::Int(i) => Ok(*i as i32),
        Value::Str(s) => Ok(parse_int(s).map(|i| i as i32).unwrap_or(0)),
        Value::Null => Ok(0),
    }
}

fn int(i: i32) -> Value {
    Value::Int(i as i64)
}

fn bool_v(b: bool) -> Value {
    Value::Int(b as i64)
}

pub fn binop(op: BinOp, x: &Value, y: &Value) -> Result<Value, &'static str> {
    use BinOp::*;
    Ok(match op {
        Add => match x {
            Value::Str(a) => {
                let mut v = a.to_vec();
                v.extend_from_slice(&as_bytes(y));
                Value::Str(Bytes::from(v))
            }
            _ => int(as_int(x)?.wrapping_add(as_int(y)?)),
        },
        Sub => int(as_int(x)?.wrapping_sub(as_int(y)?)),
        Mul => int(as_int(x)?.wrapping_mul(as_int(y)?)),
        Div => {
            let b = as_int(y)?;
            if b == 0 {
                return Err("division by zero");
            }
            int(as_int(x)?.wrapping_div(b))
        }
        Mod => {
            let b = as_int(y)?;
            if b == 0 {
                return Err("modulo by zero");
            }
            int(as_int(x)?.wrapping_rem(b))
        }
        BitAnd => int(as_int(x)? & as_int(y)?),
        BitOr => int(as_int(x)? | as_int(y)?),
        BitXor => int(as_int(x)? ^ as_int(y)?),
        Shl => int(as_int(x)?.wrapping_shl(as_int(y)? as u32)),
        Shr => int(as_int(x)?.wrapping_shr(as_int(y)? as u32)),
        Eq | Ne => {
            let eq = values_equal(x, y);
            bool_v(if op == Eq { eq } else { !eq })
        }
        StrEq => bool_v(!x.is_null() && !y.is_null() && as_bytes(x) == as_bytes(y)),
        StrNe => bool_v(x.is_null() || y.is_null() || as_bytes(x) != as_bytes(y)),
        IntEq => bool_v(as_int(x).ok() == as_int(y).ok()),
        IntNe => bool_v(as_int(x).ok() != as_int(y).ok()),
        EqNoCase => bool_v(!x.is_null() && as_bytes(x).eq_ignore_ascii_case(&as_bytes(y))),
        NeNoCase => bool_v(x.is_null() || !as_bytes(x).eq_ignore_ascii_case(&as_bytes(y))),
        Lt | Le | Gt | Ge => {
            let ord = match x {
                Value::Str(a) => a.as_ref().cmp(as_bytes(y).as_ref()),
                _ => as_int(x)?.cmp(&as_int(y)?),
            };
            bool_v(match op {
                Lt => ord.is_lt(),
                Le => ord.is_le(),
                Gt => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
    })
}

/// `==` as Kamailio evaluates it: null equals only null; otherwise compared as the left
/// operand's type (a string that is not a number never equals an int).
fn values_equal(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Int(a), Value::Str(s)) => parse_int(s).is_some_and(|b| *a as i32 == b as i32),
        (Value::Int(a), _) => as_int(y).is_ok_and(|b| (*a as i32) == b),
        (Value::Str(a), _) => *a == as_bytes(y),
    }
}

pub fn unop(op: UnOp, x: &Value) -> Value {
    match op {
        UnOp::Not => bool_v(!truth(x)),
        UnOp::Truth => bool_v(truth(x)),
        UnOp::Neg => int(as_int(x).unwrap_or(0).wrapping_neg()),
        UnOp::BitNot => int(!as_int(x).unwrap_or(0)),
        UnOp::Defined => bool_v(!x.is_null()),
        UnOp::Strlen => Value::Int(as_bytes(x).len() as i64),
        UnOp::Strempty => bool_v(as_bytes(x).is_empty()),
        UnOp::CastInt => int(as_int(x).unwrap_or(0)),
        UnOp::CastStr => Value::Str(as_bytes(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercions_match_kamailio() {
        let s = |x: &str| Value::from(x);
        assert_eq!(binop(BinOp::Add, &s("10"), &Value::Int(5)), Ok(s("105")));
        assert_eq!(
            binop(BinOp::Add, &Value::Int(5), &s("10")),
            Ok(Value::Int(15))
        );
        assert_eq!(
            binop(BinOp::Add, &Value::Int(2147483647), &Value::Int(1)),
            Ok(Value::Int(-2147483648))
        );
        assert!(binop(BinOp::Div, &Value::Int(1), &Value::Int(0)).is_err());
        assert_eq!(
            binop(BinOp::Eq, &s("10"), &Value::Int(10)),
            Ok(Value::Int(1))
        );
        assert_eq!(
            binop(BinOp::Eq, &Value::Int(10), &s("10")),
            Ok(Value::Int(1))
        );
        assert_eq!(binop(BinOp::Eq, &s("abc"), &s("ABC")), Ok(Value::Int(0)));
        assert_eq!(
            binop(BinOp::Eq, &Value::Null, &Value::Null),
            Ok(Value::Int(1))
        );
        assert!(!truth(&Value::Int(-1)));
        assert!(!truth(&s("abc")));
        assert!(truth(&s("2")));
    }
}
