//! The typed intermediate representation between the syntax tree and bytecode.
//!
//! One [`Function`] per routing block; a function is a list of basic blocks over virtual
//! registers. Registers are not SSA (a register may be assigned on several paths, e.g. the
//! route's return value), which keeps lowering simple and is what Cranelift's
//! `FunctionBuilder` variables accept directly. Each register has a static type: `Int`
//! (a 32-bit integer), `Str` (a byte string) or `Any` (whatever a pseudo-variable holds:
//! null, int or string), so a JIT can keep `Int` registers unboxed.
//!
//! Control effects are explicit terminators, including the operations that can fail at run
//! time (division, a computed regex) — they branch to the failure path Kamailio takes
//! (skip the assignment, take the `else` branch ...). Calls stay instructions: a module
//! function returning 0 ends the script, which the interpreter (or JIT) checks after the
//! call.

pub mod opt;

use bytes::Bytes;
use std::fmt;
use vm::RouteKind;
use vm::Value;
use vm::bytecode::{BinOp, UnOp};
use vm::program::{ArgConv, CallKind, FormatEntry, Import, IpNet, RegexEntry};
use vm::pv::PvSpec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VReg(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId(pub u32);

impl fmt::Display for VReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bb{}", self.0)
    }
}

/// Static type of a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Int,
    Str,
    /// Decided at run time (pseudo-variable values, generic `+`).
    Any,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Int => "int",
            Ty::Str => "str",
            Ty::Any => "any",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Inst {
    Const {
        dst: VReg,
        value: Value,
    },
    Copy {
        dst: VReg,
        src: VReg,
    },
    /// Reads `Module::pvs[pv]`.
    Pv {
        dst: VReg,
        pv: u32,
    },
    /// Writes `src` to `Module::pvs[pv]`; `all` for `:=`.
    SetPv {
        pv: u32,
        src: VReg,
        all: bool,
    },
    /// 1 when the last `SetPv` succeeded, else -1.
    AssignRc {
        dst: VReg,
    },
    /// Evaluates `Module::formats[fmt]`.
    Fmt {
        dst: VReg,
        fmt: u32,
    },
    /// `$rc`.
    Rc {
        dst: VReg,
    },
    Un {
        dst: VReg,
        op: UnOp,
        a: VReg,
    },
    Bin {
        dst: VReg,
        op: BinOp,
        a: VReg,
        b: VReg,
    },
    /// `a =~ Module::regexes[re]`.
    Match {
        dst: VReg,
        a: VReg,
        re: u32,
    },
    /// `a` (an address as text) inside `Module::nets[net]`.
    IpMatch {
        dst: VReg,
        a: VReg,
        net: u32,
    },
    /// Calls `Module::imports[import]`; `dst` gets the return code.
    Call {
        dst: VReg,
        import: u32,
        args: Vec<VReg>,
        conv: Vec<ArgConv>,
        kind: CallKind,
    },
    /// Runs function `func` (a sub-route); `dst` gets its return value.
    Route {
        dst: VReg,
        func: u32,
        nest: u16,
        in_expr: bool,
    },
    /// Runs the sub-route named by the string value of `name`.
    RouteDyn {
        dst: VReg,
        name: VReg,
        nest: u16,
        in_expr: bool,
    },
}

impl Inst {
    /// The register written, if any.
    pub fn def(&self) -> Option<VReg> {
        match self {
            Inst::Const { dst, .. }
            | Inst::Copy { dst, .. }
            | Inst::Pv { dst, .. }
            | Inst::AssignRc { dst }
            | Inst::Fmt { dst, .. }
            | Inst::Rc { dst }
            | Inst::Un { dst, .. }
            | Inst::Bin { dst, .. }
            | Inst::Match { dst, .. }
            | Inst::IpMatch { dst, .. }
            | Inst::Call { dst, .. }
            | Inst::Route { dst, .. }
            | Inst::RouteDyn { dst, .. } => Some(*dst),
            Inst::SetPv { .. } => None,
        }
    }

    /// The registers read.
    pub fn uses(&self) -> Vec<VReg> {
        match self {
            Inst::Const { .. }
            | Inst::Pv { .. }
            | Inst::AssignRc { .. }
            | Inst::Fmt { .. }
            | Inst::Rc { .. }
            | Inst::Route { .. } => Vec::new(),
            Inst::Copy { src, .. } | Inst::SetPv { src, .. } => vec![*src],
            Inst::Un { a, .. } | Inst::Match { a, .. } | Inst::IpMatch { a, .. } => vec![*a],
            Inst::Bin { a, b, .. } => vec![*a, *b],
            Inst::Call { args, .. } => args.clone(),
            Inst::RouteDyn { name, .. } => vec![*name],
        }
    }

    /// True when removing the instruction (its result unused) changes nothing observable.
    pub fn is_pure(&self) -> bool {
        matches!(
            self,
            Inst::Const { .. }
                | Inst::Copy { .. }
                | Inst::Rc { .. }
                | Inst::Un { .. }
                | Inst::Bin { .. }
                | Inst::Match { .. }
                | Inst::IpMatch { .. }
        )
    }
}

/// How a `Branch` decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// Integer value > 0 (Kamailio's `if`).
    Positive,
    /// Integer value != 0 (C truth: `&&`, `||`).
    NonZero,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    Jump(BlockId),
    Branch {
        cond: VReg,
        truth: Truth,
        then: BlockId,
        otherwise: BlockId,
    },
    /// Integer `switch`: a jump table.
    SwitchInt {
        val: VReg,
        cases: Vec<(i32, BlockId)>,
        default: BlockId,
    },
    /// String `switch` cases: hash dispatch on exact bytes.
    SwitchStr {
        val: VReg,
        cases: Vec<(Bytes, BlockId)>,
        default: BlockId,
    },
    /// `dst = a / b` (or `mod` when `rem`); division by zero goes to `err`.
    Div {
        dst: VReg,
        a: VReg,
        b: VReg,
        rem: bool,
        ok: BlockId,
        err: BlockId,
    },
    /// `dst = a =~ pat` with a computed pattern; a bad pattern goes to `err`.
    MatchDyn {
        dst: VReg,
        a: VReg,
        pat: VReg,
        ok: BlockId,
        err: BlockId,
    },
    /// Counts a `while` iteration in `counter`; over `max_while_loops` goes to `exceeded`.
    LoopGuard {
        counter: VReg,
        ok: BlockId,
        exceeded: BlockId,
    },
    /// Entering an action list `nest` levels deep: over `max_recursive_level` goes to
    /// `fail`.
    DepthGuard {
        nest: u16,
        ok: BlockId,
        fail: BlockId,
    },
    /// `return`: ends the route with the value (0 ends the script).
    Return(VReg),
    /// The route's end (or a `break` outside any loop): the value, never ending the script.
    Leave(VReg),
    Exit(VReg),
    Drop(VReg),
    /// Placeholder while a block is being built.
    Open,
}

impl Term {
    pub fn successors(&self) -> Vec<BlockId> {
        match self {
            Term::Jump(b) => vec![*b],
            Term::Branch {
                then, otherwise, ..
            } => vec![*then, *otherwise],
            Term::SwitchInt { cases, default, .. } => {
                let mut v: Vec<BlockId> = cases.iter().map(|c| c.1).collect();
                v.push(*default);
                v
            }
            Term::SwitchStr { cases, default, .. } => {
                let mut v: Vec<BlockId> = cases.iter().map(|c| c.1).collect();
                v.push(*default);
                v
            }
            Term::Div { ok, err, .. } | Term::MatchDyn { ok, err, .. } => vec![*ok, *err],
            Term::LoopGuard { ok, exceeded, .. } => vec![*ok, *exceeded],
            Term::DepthGuard { ok, fail, .. } => vec![*ok, *fail],
            Term::Return(_) | Term::Leave(_) | Term::Exit(_) | Term::Drop(_) | Term::Open => {
                Vec::new()
            }
        }
    }

    pub fn successors_mut(&mut self) -> Vec<&mut BlockId> {
        match self {
            Term::Jump(b) => vec![b],
            Term::Branch {
                then, otherwise, ..
            } => vec![then, otherwise],
            Term::SwitchInt { cases, default, .. } => {
                let mut v: Vec<&mut BlockId> = cases.iter_mut().map(|c| &mut c.1).collect();
                v.push(default);
                v
            }
            Term::SwitchStr { cases, default, .. } => {
                let mut v: Vec<&mut BlockId> = cases.iter_mut().map(|c| &mut c.1).collect();
                v.push(default);
                v
            }
            Term::Div { ok, err, .. } | Term::MatchDyn { ok, err, .. } => vec![ok, err],
            Term::LoopGuard { ok, exceeded, .. } => vec![ok, exceeded],
            Term::DepthGuard { ok, fail, .. } => vec![ok, fail],
            Term::Return(_) | Term::Leave(_) | Term::Exit(_) | Term::Drop(_) | Term::Open => {
                Vec::new()
            }
        }
    }

    pub fn uses(&self) -> Vec<VReg> {
        match self {
            Term::Branch { cond, .. } => vec![*cond],
            Term::SwitchInt { val, .. } | Term::SwitchStr { val, .. } => vec![*val],
            Term::Div { a, b, .. } => vec![*a, *b],
            Term::MatchDyn { a, pat, .. } => vec![*a, *pat],
            Term::LoopGuard { counter, .. } => vec![*counter],
            Term::Return(v) | Term::Leave(v) | Term::Exit(v) | Term::Drop(v) => vec![*v],
            Term::Jump(_) | Term::DepthGuard { .. } | Term::Open => Vec::new(),
        }
    }

    pub fn def(&self) -> Option<VReg> {
        match self {
            Term::Div { dst, .. } | Term::MatchDyn { dst, .. } => Some(*dst),
            Term::LoopGuard { counter, .. } => Some(*counter),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub insts: Vec<Inst>,
    /// Source line of each instruction (0 when unknown).
    pub lines: Vec<u32>,
    pub term: Term,
    pub term_line: u32,
}

/// One routing block.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub kind: RouteKind,
    pub name: Option<String>,
    /// Entry is block 0.
    pub blocks: Vec<Block>,
    /// Type of each virtual register.
    pub vtypes: Vec<Ty>,
}

impl Function {
    pub fn new(kind: RouteKind, name: Option<String>) -> Function {
        Function {
            kind,
            name,
            blocks: Vec::new(),
            vtypes: Vec::new(),
        }
    }

    pub fn title(&self) -> String {
        match (&self.name, self.kind) {
            (None, RouteKind::Request) => "request_route".into(),
            (None, k) => k.keyword().into(),
            (Some(n), k) => format!("{}[{n}]", k.keyword()),
        }
    }

    pub fn new_reg(&mut self, ty: Ty) -> VReg {
        self.vtypes.push(ty);
        VReg(self.vtypes.len() as u32 - 1)
    }

    pub fn new_block(&mut self) -> BlockId {
        self.blocks.push(Block {
            insts: Vec::new(),
            lines: Vec::new(),
            term: Term::Open,
            term_line: 0,
        });
        BlockId(self.blocks.len() as u32 - 1)
    }

    pub fn ty(&self, r: VReg) -> Ty {
        self.vtypes.get(r.0 as usize).copied().unwrap_or(Ty::Any)
    }

    pub fn block(&self, b: BlockId) -> Option<&Block> {
        self.blocks.get(b.0 as usize)
    }

    pub fn block_mut(&mut self, b: BlockId) -> Option<&mut Block> {
        self.blocks.get_mut(b.0 as usize)
    }
}

/// A whole program in IR, with the tables its instructions point into.
#[derive(Clone, Debug, Default)]
pub struct Module {
    pub funcs: Vec<Function>,
    pub pvs: Vec<PvSpec>,
    pub formats: Vec<FormatEntry>,
    pub regexes: Vec<RegexEntry>,
    pub nets: Vec<IpNet>,
    pub imports: Vec<Import>,
}

// ---------------------------------------------------------------- printing (`--emit ir`)

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => format!("{:?}", String::from_utf8_lossy(s)),
    }
}

impl Module {
    fn fmt_inst(&self, f: &mut fmt::Formatter<'_>, func: &Function, i: &Inst) -> fmt::Result {
        let ty = |r: &VReg| func.ty(*r);
        match i {
            Inst::Const { dst, value } => {
                write!(f, "{dst}: {} = const {}", ty(dst), value_text(value))
            }
            Inst::Copy { dst, src } => write!(f, "{dst}: {} = copy {src}", ty(dst)),
            Inst::Pv { dst, pv } => write!(
                f,
                "{dst}: {} = pv {}",
                ty(dst),
                self.pvs.get(*pv as usize).map(|p| &*p.text).unwrap_or("?")
            ),
            Inst::SetPv { pv, src, all } => write!(
                f,
                "setpv{} {} = {src}",
                if *all { "all" } else { "" },
                self.pvs.get(*pv as usize).map(|p| &*p.text).unwrap_or("?")
            ),
            Inst::AssignRc { dst } => write!(f, "{dst}: int = assignrc"),
            Inst::Fmt { dst, fmt } => write!(
                f,
                "{dst}: str = fmt {:?}",
                self.formats
                    .get(*fmt as usize)
                    .map(|x| x.text.as_str())
                    .unwrap_or("?")
            ),
            Inst::Rc { dst } => write!(f, "{dst}: int = rc"),
            Inst::Un { dst, op, a } => write!(f, "{dst}: {} = {} {a}", ty(dst), op.name()),
            Inst::Bin { dst, op, a, b } => {
                write!(f, "{dst}: {} = {} {a}, {b}", ty(dst), op.name())
            }
            Inst::Match { dst, a, re } => {
                let r = self.regexes.get(*re as usize);
                write!(
                    f,
                    "{dst}: int = match {a}, /{}/{}",
                    r.map(|r| String::from_utf8_lossy(&r.pattern).into_owned())
                        .unwrap_or_default(),
                    if r.is_some_and(|r| r.icase) { "i" } else { "" }
                )
            }
            Inst::IpMatch { dst, a, net } => {
                let n = self.nets.get(*net as usize);
                write!(
                    f,
                    "{dst}: int = ipmatch {a}, {}",
                    n.map(|n| format!("{}/{}", n.addr, n.prefix))
                        .unwrap_or_default()
                )
            }
            Inst::Call {
                dst,
                import,
                args,
                conv,
                kind,
            } => {
                let imp = self.imports.get(*import as usize);
                let name = imp
                    .map(|i| {
                        if i.native.is_empty() {
                            i.sig.kemi_path()
                        } else {
                            i.native.clone()
                        }
                    })
                    .unwrap_or_default();
                let args: Vec<String> = args
                    .iter()
                    .zip(conv.iter().chain(std::iter::repeat(&ArgConv::None)))
                    .map(|(a, c)| match c {
                        ArgConv::None => a.to_string(),
                        ArgConv::Int => format!("(int){a}"),
                        ArgConv::Str => format!("(str){a}"),
                    })
                    .collect();
                let k = match kind {
                    CallKind::Module => "call",
                    CallKind::Core => "core",
                    CallKind::Builtin => "builtin",
                };
                write!(f, "{dst}: int = {k} {name}({})", args.join(", "))
            }
            Inst::Route {
                dst,
                func: callee,
                nest,
                in_expr,
            } => write!(
                f,
                "{dst}: int = route {} nest {nest}{}",
                self.funcs
                    .get(*callee as usize)
                    .map(|c| c.title())
                    .unwrap_or_default(),
                if *in_expr { " in-expr" } else { "" }
            ),
            Inst::RouteDyn {
                dst,
                name,
                nest,
                in_expr,
            } => write!(
                f,
                "{dst}: int = route ({name}) nest {nest}{}",
                if *in_expr { " in-expr" } else { "" }
            ),
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Jump(b) => write!(f, "jump {b}"),
            Term::Branch {
                cond,
                truth,
                then,
                otherwise,
            } => write!(
                f,
                "branch {cond} {} ? {then} : {otherwise}",
                match truth {
                    Truth::Positive => ">0",
                    Truth::NonZero => "!=0",
                }
            ),
            Term::SwitchInt {
                val,
                cases,
                default,
            } => {
                let c: Vec<String> = cases.iter().map(|(v, b)| format!("{v} => {b}")).collect();
                write!(f, "switch.int {val} [{}] default {default}", c.join(", "))
            }
            Term::SwitchStr {
                val,
                cases,
                default,
            } => {
                let c: Vec<String> = cases
                    .iter()
                    .map(|(v, b)| format!("{:?} => {b}", String::from_utf8_lossy(v)))
                    .collect();
                write!(f, "switch.str {val} [{}] default {default}", c.join(", "))
            }
            Term::Div {
                dst,
                a,
                b,
                rem,
                ok,
                err,
            } => write!(
                f,
                "{dst}: int = {} {a}, {b} ? {ok} : err {err}",
                if *rem { "mod" } else { "div" }
            ),
            Term::MatchDyn {
                dst,
                a,
                pat,
                ok,
                err,
            } => write!(f, "{dst}: int = matchdyn {a}, {pat} ? {ok} : err {err}"),
            Term::LoopGuard {
                counter,
                ok,
                exceeded,
            } => write!(f, "loopguard {counter} ? {ok} : runaway {exceeded}"),
            Term::DepthGuard { nest, ok, fail } => {
                write!(f, "depthguard +{nest} ? {ok} : too-deep {fail}")
            }
            Term::Return(v) => write!(f, "return {v}"),
            Term::Leave(v) => write!(f, "leave {v}"),
            Term::Exit(v) => write!(f, "exit {v}"),
            Term::Drop(v) => write!(f, "drop {v}"),
            Term::Open => f.write_str("<open>"),
        }
    }
}

/// `ksr compile --emit ir`.
impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (fi, func) in self.funcs.iter().enumerate() {
            writeln!(
                f,
                "fn {fi} {} ({} registers) {{",
                func.title(),
                func.vtypes.len()
            )?;
            for (bi, b) in func.blocks.iter().enumerate() {
                writeln!(f, "  bb{bi}:")?;
                for i in &b.insts {
                    write!(f, "    ")?;
                    self.fmt_inst(f, func, i)?;
                    writeln!(f)?;
                }
                writeln!(f, "    {}", b.term)?;
            }
            writeln!(f, "}}")?;
        }
        Ok(())
    }
}
