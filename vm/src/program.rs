//! A compiled native routing program: register bytecode, constants, pseudo-variable
//! descriptors, format strings, regexes, call sites into the KSR table and the route table.

use crate::pv::{Format, PvSpec};
use crate::route::RouteKind;
use crate::value::Value;

/// A register number inside one route's frame.
pub type Reg = u16;

/// Binary operators on values, with Kamailio's coercion rules (see `interp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    /// `==` / `!=`: compared as the left operand's type.
    Eq,
    Ne,
    /// `eq` / `ne`: as strings.
    StrEq,
    StrNe,
    /// `ieq` / `ine`: as integers.
    IntEq,
    IntNe,
    Lt,
    Le,
    Gt,
    Ge,
    /// `method == "invite"`: case-insensitive string equality.
    EqNoCase,
    NeNoCase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UnOp {
    /// Logical not of the truth value (> 0).
    Not,
    Neg,
    BitNot,
    /// Truth value: 1 when > 0 (after int conversion), else 0.
    Truth,
    Defined,
    Strlen,
    Strempty,
    CastInt,
    CastStr,
}

/// One instruction. Registers are frame-relative; indices point into the program tables.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    Const {
        d: Reg,
        k: u32,
    },
    Move {
        d: Reg,
        s: Reg,
    },
    /// Reads a pseudo-variable.
    Pv {
        d: Reg,
        pv: u32,
    },
    /// Evaluates a format string into a string.
    Fmt {
        d: Reg,
        f: u32,
    },
    /// Writes a pseudo-variable. `mode`: 0 plain set, 1 native `=` on AVPs (replace the
    /// newest value), 2 `:=` (replace all values). Skipped when the expression failed.
    SetPv {
        pv: u32,
        s: Reg,
        mode: u8,
    },
    /// Calls KSR export through call site `site`; the return code goes to `d` and `$rc`.
    /// A return code of 0 stops the script (Kamailio's rule for module functions).
    Call {
        d: Reg,
        site: u32,
    },
    /// `route($var(x))`: the sub-route named by the value of `name`, found at run time.
    RouteDyn {
        d: Reg,
        name: Reg,
    },
    /// Runs sub-route `route`; its return value goes to `d` and `$rc`.
    Route {
        d: Reg,
        route: u32,
    },
    Bin {
        op: BinOp,
        d: Reg,
        a: Reg,
        b: Reg,
    },
    Un {
        op: UnOp,
        d: Reg,
        a: Reg,
    },
    /// `a =~ regex` with a precompiled regex.
    Match {
        d: Reg,
        a: Reg,
        re: u32,
    },
    /// `a =~ b` where b is computed.
    MatchDyn {
        d: Reg,
        a: Reg,
        b: Reg,
    },
    /// `a == ip/net`.
    IpMatch {
        d: Reg,
        a: Reg,
        net: u32,
    },
    /// `$rc` / `$?` / `$retcode`.
    Rc {
        d: Reg,
    },
    Jmp {
        to: u32,
    },
    /// Jump when the truth value of `c` is false (or the expression failed).
    JmpFalse {
        c: Reg,
        to: u32,
    },
    JmpTrue {
        c: Reg,
        to: u32,
    },
    /// Clears the expression-failure flag (start of a statement).
    Begin,
    /// Counts one `while` iteration in `counter`; jumps to `to` when over the limit.
    LoopGuard {
        counter: Reg,
        to: u32,
    },
    /// `return` with the value of `s`.
    Return {
        s: Reg,
    },
    /// `exit`.
    Exit,
    /// `drop`.
    Drop,
}

/// How an argument reaches a KSR function.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallSite {
    pub export: u32,
    /// First argument register; arguments are consecutive.
    pub args: Reg,
    pub argc: u8,
}

/// An IP network for `src_ip == 10.0.0.0/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match (self.addr, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                let p = self.prefix.min(32) as u32;
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                let p = self.prefix.min(128) as u32;
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RouteInfo {
    pub kind: RouteKind,
    /// `None` for the main `request_route`, `reply_route`, `onsend_route`.
    pub name: Option<String>,
    pub entry: u32,
    pub regs: u16,
}

/// A compiled program, ready to run.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub code: Vec<Op>,
    pub consts: Vec<Value>,
    pub pvs: Vec<PvSpec>,
    pub formats: Vec<Format>,
    pub regexes: Vec<regex::Regex>,
    pub nets: Vec<IpNet>,
    pub calls: Vec<CallSite>,
    pub routes: Vec<RouteInfo>,
    /// Source line of each instruction (for error messages), parallel to `code`.
    pub lines: Vec<u32>,
}

impl Program {
    /// Finds a route by kind and name (`None` for the unnamed main blocks).
    pub fn route(&self, kind: RouteKind, name: Option<&str>) -> Option<u32> {
        self.routes
            .iter()
            .position(|r| r.kind == kind && r.name.as_deref() == name)
            .map(|i| i as u32)
    }
}

impl Program {
    /// A readable listing of the bytecode (`ksr compile --emit asm`): each route with its
    /// instructions, constants, pseudo-variables and called functions shown by name.
    pub fn disassemble<C>(&self, table: &crate::ksr::KsrTable<C>) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut starts: Vec<(u32, String, u16)> = self
            .routes
            .iter()
            .map(|r| {
                let name = match &r.name {
                    Some(n) => format!("{}[{n}]", r.kind.keyword()),
                    None => match r.kind {
                        crate::route::RouteKind::Request => "request_route".to_string(),
                        k => k.keyword().to_string(),
                    },
                };
                (r.entry, name, r.regs)
            })
            .collect();
        starts.sort();
        for (i, op) in self.code.iter().enumerate() {
            for (e, name, regs) in &starts {
                if *e as usize == i {
                    let _ = writeln!(out, "\n{name}:  ; {regs} registers");
                }
            }
            let text = match *op {
                Op::Const { d, k } => format!(
                    "const   r{d}, {}",
                    match self.consts.get(k as usize) {
                        Some(Value::Str(s)) => format!("{:?}", String::from_utf8_lossy(s)),
                        Some(v) => v.to_string(),
                        None => "?".into(),
                    }
                ),
                Op::Pv { d, pv } => format!(
                    "pv      r{d}, {}",
                    self.pvs.get(pv as usize).map_or("?", |p| &p.text)
                ),
                Op::SetPv { pv, s, mode } => format!(
                    "setpv   {}, r{s}{}",
                    self.pvs.get(pv as usize).map_or("?", |p| &p.text),
                    if mode == 2 { " (all)" } else { "" }
                ),
                Op::Fmt { d, f } => format!("fmt     r{d}, #{f}"),
                Op::Call { d, site } => match self.calls.get(site as usize) {
                    Some(c) => format!(
                        "call    r{d}, {}(r{}..+{})",
                        table
                            .get(c.export)
                            .map_or("?".to_string(), |e| e.sig.kemi_path()),
                        c.args,
                        c.argc
                    ),
                    None => "call    ?".into(),
                },
                Op::Route { d, route } => format!(
                    "route   r{d}, {}",
                    self.routes
                        .get(route as usize)
                        .and_then(|r| r.name.clone())
                        .unwrap_or_default()
                ),
                other => format!("{other:?}").to_lowercase(),
            };
            let _ = writeln!(out, "  {i:4}  {text}");
        }
        out
    }
}
