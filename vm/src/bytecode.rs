//! The register bytecode: an 8-byte instruction, its operators, and a disassembler.
//!
//! Like Lua's VM, every instruction names its operands directly (frame-relative registers
//! and indices into the program tables), so the interpreter runs one `match` per
//! instruction with no operand stack. Instructions that can fail (division by zero, a bad
//! run-time regex) are always followed by a [`Insn::Jmp`] to the failure path: the
//! interpreter skips that jump when the operation succeeds.

use std::fmt;

/// A register number inside one route's frame.
pub type Reg = u16;

/// Binary operators. The `I*` operators convert both operands to 32-bit integers first
/// (Kamailio's `rval_get_int`: non-numeric strings and null are 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BinOp {
    IAdd,
    ISub,
    IMul,
    IBitAnd,
    IBitOr,
    IBitXor,
    IShl,
    IShr,
    ILt,
    ILe,
    IGt,
    IGe,
    IEq,
    INe,
    /// `+` whose type is only known at run time: integer addition when the left operand is
    /// an integer, string concatenation when it is a string or null.
    Plus,
    /// `+` on a left operand known to be a string: both sides as strings.
    Concat,
    /// `==` decided by the left operand at run time (int, string, or null: then by the right).
    Eq,
    Ne,
    /// `eq` / `ne` and `==` on known strings: byte-wise, null as "".
    StrEq,
    StrNe,
    /// Condition elements (`method == "invite"`, `uri == "..."`): ASCII case-insensitive.
    CaseEq,
    CaseNe,
    /// `src_ip == <expr>`: the left address inside the right address or `addr/prefix`.
    IpIn,
}

impl BinOp {
    pub const ALL: [BinOp; 23] = [
        BinOp::IAdd,
        BinOp::ISub,
        BinOp::IMul,
        BinOp::IBitAnd,
        BinOp::IBitOr,
        BinOp::IBitXor,
        BinOp::IShl,
        BinOp::IShr,
        BinOp::ILt,
        BinOp::ILe,
        BinOp::IGt,
        BinOp::IGe,
        BinOp::IEq,
        BinOp::INe,
        BinOp::Plus,
        BinOp::Concat,
        BinOp::Eq,
        BinOp::Ne,
        BinOp::StrEq,
        BinOp::StrNe,
        BinOp::CaseEq,
        BinOp::CaseNe,
        BinOp::IpIn,
    ];

    pub fn from_u8(b: u8) -> Option<BinOp> {
        BinOp::ALL.get(b as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            BinOp::IAdd => "iadd",
            BinOp::ISub => "isub",
            BinOp::IMul => "imul",
            BinOp::IBitAnd => "iand",
            BinOp::IBitOr => "ior",
            BinOp::IBitXor => "ixor",
            BinOp::IShl => "ishl",
            BinOp::IShr => "ishr",
            BinOp::ILt => "ilt",
            BinOp::ILe => "ile",
            BinOp::IGt => "igt",
            BinOp::IGe => "ige",
            BinOp::IEq => "ieq",
            BinOp::INe => "ine",
            BinOp::Plus => "plus",
            BinOp::Concat => "concat",
            BinOp::Eq => "eq",
            BinOp::Ne => "ne",
            BinOp::StrEq => "streq",
            BinOp::StrNe => "strne",
            BinOp::CaseEq => "caseeq",
            BinOp::CaseNe => "casene",
            BinOp::IpIn => "ipin",
        }
    }
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum UnOp {
    /// `-x` (32-bit, wrapping).
    Neg,
    /// `~x`.
    BitNot,
    /// `!x`: 1 when the integer value is 0, else 0 (C's `!`, so `!-1` is 0).
    LNot,
    /// 1 when the integer value is not 0.
    Bool,
    /// 1 when the integer value is > 0: how `if` and function results decide.
    Truth,
    /// `(int)x`.
    ToInt,
    /// `(str)x`: null becomes "".
    ToStr,
    Strlen,
    Strempty,
    /// `defined x`: not null.
    Defined,
    NotDefined,
    /// Null becomes "", anything else stays (`selval` results).
    NullEmpty,
    /// 1 when the value is an integer (Kamailio decides some operators by the left
    /// operand's run-time type).
    IsInt,
}

impl UnOp {
    pub const ALL: [UnOp; 13] = [
        UnOp::Neg,
        UnOp::BitNot,
        UnOp::LNot,
        UnOp::Bool,
        UnOp::Truth,
        UnOp::ToInt,
        UnOp::ToStr,
        UnOp::Strlen,
        UnOp::Strempty,
        UnOp::Defined,
        UnOp::NotDefined,
        UnOp::NullEmpty,
        UnOp::IsInt,
    ];

    pub fn from_u8(b: u8) -> Option<UnOp> {
        UnOp::ALL.get(b as usize).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            UnOp::Neg => "neg",
            UnOp::BitNot => "bnot",
            UnOp::LNot => "lnot",
            UnOp::Bool => "bool",
            UnOp::Truth => "truth",
            UnOp::ToInt => "toint",
            UnOp::ToStr => "tostr",
            UnOp::Strlen => "strlen",
            UnOp::Strempty => "strempty",
            UnOp::Defined => "defined",
            UnOp::NotDefined => "notdefined",
            UnOp::NullEmpty => "nullempty",
            UnOp::IsInt => "isint",
        }
    }
}

/// One instruction (8 bytes). `d` is a destination register, `a`/`b`/`s`/`c` sources;
/// `to` is an absolute instruction index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// `d = consts[k]`
    LoadK {
        d: Reg,
        k: u32,
    },
    /// `d = i` (small integers without a table entry).
    LoadI {
        d: Reg,
        i: i32,
    },
    /// `d = s` (a copy).
    Move {
        d: Reg,
        s: Reg,
    },
    /// `d = s; s = null` (a move at the source's last use: no reference-count traffic).
    Take {
        d: Reg,
        s: Reg,
    },
    /// Reads pseudo-variable `pvs[pv]`.
    Pv {
        d: Reg,
        pv: u32,
    },
    /// Writes `s` to pseudo-variable `pvs[pv]` (cfg `=`).
    SetPv {
        s: Reg,
        pv: u32,
    },
    /// `:=`: removes every value of the pseudo-variable first.
    SetPvAll {
        s: Reg,
        pv: u32,
    },
    /// `d = 1` when the last assignment succeeded, else -1 (an assignment's return code).
    AssignRc {
        d: Reg,
    },
    /// Evaluates format string `formats[f]`.
    Fmt {
        d: Reg,
        f: u32,
    },
    /// `d = $rc`.
    Rc {
        d: Reg,
    },
    Un {
        op: UnOp,
        d: Reg,
        a: Reg,
    },
    Bin {
        op: BinOp,
        d: Reg,
        a: Reg,
        b: Reg,
    },
    /// `d = a / b`; division by zero logs an error and takes the following `Jmp`.
    Div {
        d: Reg,
        a: Reg,
        b: Reg,
    },
    /// `d = a mod b`; like `Div`.
    Mod {
        d: Reg,
        a: Reg,
        b: Reg,
    },
    /// `d = a =~ regexes[re]`.
    Match {
        d: Reg,
        a: Reg,
        re: u16,
    },
    /// `d = a =~ b` with a run-time pattern; a bad pattern takes the following `Jmp`.
    MatchDyn {
        d: Reg,
        a: Reg,
        b: Reg,
    },
    /// `d = (a is an address inside nets[net])`.
    IpMatch {
        d: Reg,
        a: Reg,
        net: u16,
    },
    Jmp {
        to: u32,
    },
    /// Jumps when `c` is not > 0 (Kamailio's `if`).
    JmpF {
        c: Reg,
        to: u32,
    },
    /// Jumps when `c` is > 0.
    JmpT {
        c: Reg,
        to: u32,
    },
    /// Jumps when the integer value of `c` is 0 (`&&`, `||`).
    JmpZ {
        c: Reg,
        to: u32,
    },
    JmpNZ {
        c: Reg,
        to: u32,
    },
    /// Jumps through integer switch table `int_switches[t]` on the integer value of `s`.
    SwitchInt {
        s: Reg,
        t: u32,
    },
    /// Jumps through string switch table `str_switches[t]` on the string value of `s`.
    SwitchStr {
        s: Reg,
        t: u32,
    },
    /// Counts one `while` iteration in `c`; over `max_while_loops` it logs and jumps.
    LoopGuard {
        c: Reg,
        to: u32,
    },
    /// Entering a nested action list `nest` levels deep: over `max_recursive_level` it
    /// logs and jumps past the list.
    DepthGuard {
        nest: u16,
        to: u32,
    },
    /// Calls KSR export through `calls[site]`; the return code goes to `d`.
    Call {
        d: Reg,
        site: u32,
    },
    /// Runs a sub-route through `route_sites[site]`; its return value goes to `d`.
    Route {
        d: Reg,
        site: u32,
    },
    /// `route(<expr>)`: the sub-route named by the string in `route_sites[site].name`.
    RouteDyn {
        d: Reg,
        site: u32,
    },
    /// `return`: ends the route with the integer value of `s` (0 ends the whole script).
    Ret {
        s: Reg,
    },
    /// The end of a route (or a `break` outside loops): its value, never ending the script.
    Leave {
        s: Reg,
    },
    /// `exit`: ends the script.
    Exit {
        s: Reg,
    },
    /// `drop`: ends the script and marks the message dropped.
    Drop {
        s: Reg,
    },
}

impl Insn {
    /// The jump target of control-flow instructions.
    pub fn target(&self) -> Option<u32> {
        match *self {
            Insn::Jmp { to }
            | Insn::JmpF { to, .. }
            | Insn::JmpT { to, .. }
            | Insn::JmpZ { to, .. }
            | Insn::JmpNZ { to, .. }
            | Insn::LoopGuard { to, .. }
            | Insn::DepthGuard { to, .. } => Some(to),
            _ => None,
        }
    }

    pub fn set_target(&mut self, new: u32) {
        match self {
            Insn::Jmp { to }
            | Insn::JmpF { to, .. }
            | Insn::JmpT { to, .. }
            | Insn::JmpZ { to, .. }
            | Insn::JmpNZ { to, .. }
            | Insn::LoopGuard { to, .. }
            | Insn::DepthGuard { to, .. } => *to = new,
            _ => {}
        }
    }

    /// Every register the instruction reads or writes (for validation).
    pub fn regs(&self) -> ([Reg; 3], usize) {
        match *self {
            Insn::LoadK { d, .. }
            | Insn::LoadI { d, .. }
            | Insn::Pv { d, .. }
            | Insn::AssignRc { d }
            | Insn::Fmt { d, .. }
            | Insn::Rc { d }
            | Insn::Call { d, .. }
            | Insn::Route { d, .. }
            | Insn::RouteDyn { d, .. } => ([d, 0, 0], 1),
            Insn::Move { d, s } | Insn::Take { d, s } => ([d, s, 0], 2),
            Insn::SetPv { s, .. } | Insn::SetPvAll { s, .. } => ([s, 0, 0], 1),
            Insn::Un { d, a, .. } | Insn::Match { d, a, .. } | Insn::IpMatch { d, a, .. } => {
                ([d, a, 0], 2)
            }
            Insn::Bin { d, a, b, .. }
            | Insn::Div { d, a, b }
            | Insn::Mod { d, a, b }
            | Insn::MatchDyn { d, a, b } => ([d, a, b], 3),
            Insn::JmpF { c, .. }
            | Insn::JmpT { c, .. }
            | Insn::JmpZ { c, .. }
            | Insn::JmpNZ { c, .. }
            | Insn::LoopGuard { c, .. } => ([c, 0, 0], 1),
            Insn::SwitchInt { s, .. }
            | Insn::SwitchStr { s, .. }
            | Insn::Ret { s }
            | Insn::Leave { s }
            | Insn::Exit { s }
            | Insn::Drop { s } => ([s, 0, 0], 1),
            Insn::Jmp { .. } | Insn::DepthGuard { .. } => ([0; 3], 0),
        }
    }

    /// True when the next instruction is the failure jump of this one.
    pub fn has_fail_jump(&self) -> bool {
        matches!(
            self,
            Insn::Div { .. } | Insn::Mod { .. } | Insn::MatchDyn { .. }
        )
    }

    // ---------------------------------------------------------------- encoding

    /// The fixed 8-byte encoding used in images: opcode, then operands little-endian.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        let (op, x, y, z): (u8, u16, u16, u32) = match *self {
            Insn::LoadK { d, k } => (0, d, 0, k),
            Insn::LoadI { d, i } => (1, d, 0, i as u32),
            Insn::Move { d, s } => (2, d, s, 0),
            Insn::Take { d, s } => (3, d, s, 0),
            Insn::Pv { d, pv } => (4, d, 0, pv),
            Insn::SetPv { s, pv } => (5, s, 0, pv),
            Insn::SetPvAll { s, pv } => (6, s, 0, pv),
            Insn::AssignRc { d } => (7, d, 0, 0),
            Insn::Fmt { d, f } => (8, d, 0, f),
            Insn::Rc { d } => (9, d, 0, 0),
            Insn::Un { op, d, a } => (10, d, a, op as u32),
            Insn::Bin { op, d, a, b } => (11, d, a, (b as u32) | ((op as u32) << 16)),
            Insn::Div { d, a, b } => (12, d, a, b as u32),
            Insn::Mod { d, a, b } => (13, d, a, b as u32),
            Insn::Match { d, a, re } => (14, d, a, re as u32),
            Insn::MatchDyn { d, a, b } => (15, d, a, b as u32),
            Insn::IpMatch { d, a, net } => (16, d, a, net as u32),
            Insn::Jmp { to } => (17, 0, 0, to),
            Insn::JmpF { c, to } => (18, c, 0, to),
            Insn::JmpT { c, to } => (19, c, 0, to),
            Insn::JmpZ { c, to } => (20, c, 0, to),
            Insn::JmpNZ { c, to } => (21, c, 0, to),
            Insn::SwitchInt { s, t } => (22, s, 0, t),
            Insn::SwitchStr { s, t } => (23, s, 0, t),
            Insn::LoopGuard { c, to } => (24, c, 0, to),
            Insn::DepthGuard { nest, to } => (25, nest, 0, to),
            Insn::Call { d, site } => (26, d, 0, site),
            Insn::Route { d, site } => (27, d, 0, site),
            Insn::RouteDyn { d, site } => (28, d, 0, site),
            Insn::Ret { s } => (29, s, 0, 0),
            Insn::Exit { s } => (30, s, 0, 0),
            Insn::Drop { s } => (31, s, 0, 0),
            Insn::Leave { s } => (32, s, 0, 0),
        };
        b[0] = op;
        b[1..3].copy_from_slice(&x.to_le_bytes());
        b[3..5].copy_from_slice(&y.to_le_bytes());
        b[5..8].copy_from_slice(&z.to_le_bytes()[..3]);
        // The 4th byte of z only matters for opcodes whose z can exceed 24 bits: they
        // carry it in the otherwise unused y field.
        if matches!(op, 0 | 1 | 4..=6 | 8 | 17..=28) {
            let hi = z.to_le_bytes()[3];
            b[3] = hi;
            b[4] = 0;
        }
        b
    }

    /// Decodes [`Insn::encode`]'s form; `None` for an unknown opcode or operator.
    pub fn decode(b: [u8; 8]) -> Option<Insn> {
        let op = b[0];
        let x = u16::from_le_bytes([b[1], b[2]]);
        let y = u16::from_le_bytes([b[3], b[4]]);
        let wide = u32::from_le_bytes([b[5], b[6], b[7], b[3]]);
        let z = u32::from_le_bytes([b[5], b[6], b[7], 0]);
        let small = |v: u32| u16::try_from(v).ok();
        Some(match op {
            0 => Insn::LoadK { d: x, k: wide },
            1 => Insn::LoadI {
                d: x,
                i: wide as i32,
            },
            2 => Insn::Move { d: x, s: y },
            3 => Insn::Take { d: x, s: y },
            4 => Insn::Pv { d: x, pv: wide },
            5 => Insn::SetPv { s: x, pv: wide },
            6 => Insn::SetPvAll { s: x, pv: wide },
            7 => Insn::AssignRc { d: x },
            8 => Insn::Fmt { d: x, f: wide },
            9 => Insn::Rc { d: x },
            10 => Insn::Un {
                op: UnOp::from_u8(u8::try_from(z).ok()?)?,
                d: x,
                a: y,
            },
            11 => Insn::Bin {
                op: BinOp::from_u8((z >> 16) as u8)?,
                d: x,
                a: y,
                b: (z & 0xffff) as u16,
            },
            12 => Insn::Div {
                d: x,
                a: y,
                b: small(z)?,
            },
            13 => Insn::Mod {
                d: x,
                a: y,
                b: small(z)?,
            },
            14 => Insn::Match {
                d: x,
                a: y,
                re: small(z)?,
            },
            15 => Insn::MatchDyn {
                d: x,
                a: y,
                b: small(z)?,
            },
            16 => Insn::IpMatch {
                d: x,
                a: y,
                net: small(z)?,
            },
            17 => Insn::Jmp { to: wide },
            18 => Insn::JmpF { c: x, to: wide },
            19 => Insn::JmpT { c: x, to: wide },
            20 => Insn::JmpZ { c: x, to: wide },
            21 => Insn::JmpNZ { c: x, to: wide },
            22 => Insn::SwitchInt { s: x, t: wide },
            23 => Insn::SwitchStr { s: x, t: wide },
            24 => Insn::LoopGuard { c: x, to: wide },
            25 => Insn::DepthGuard { nest: x, to: wide },
            26 => Insn::Call { d: x, site: wide },
            27 => Insn::Route { d: x, site: wide },
            28 => Insn::RouteDyn { d: x, site: wide },
            29 => Insn::Ret { s: x },
            30 => Insn::Exit { s: x },
            31 => Insn::Drop { s: x },
            32 => Insn::Leave { s: x },
            _ => return None,
        })
    }
}

impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Insn::LoadK { d, k } => write!(f, "loadk    r{d}, k{k}"),
            Insn::LoadI { d, i } => write!(f, "loadi    r{d}, {i}"),
            Insn::Move { d, s } => write!(f, "move     r{d}, r{s}"),
            Insn::Take { d, s } => write!(f, "take     r{d}, r{s}"),
            Insn::Pv { d, pv } => write!(f, "pv       r{d}, pv{pv}"),
            Insn::SetPv { s, pv } => write!(f, "setpv    pv{pv}, r{s}"),
            Insn::SetPvAll { s, pv } => write!(f, "setpvall pv{pv}, r{s}"),
            Insn::AssignRc { d } => write!(f, "assignrc r{d}"),
            Insn::Fmt { d, f: i } => write!(f, "fmt      r{d}, fmt{i}"),
            Insn::Rc { d } => write!(f, "rc       r{d}"),
            Insn::Un { op, d, a } => write!(f, "{:<8} r{d}, r{a}", op.name()),
            Insn::Bin { op, d, a, b } => write!(f, "{:<8} r{d}, r{a}, r{b}", op.name()),
            Insn::Div { d, a, b } => write!(f, "div      r{d}, r{a}, r{b}"),
            Insn::Mod { d, a, b } => write!(f, "mod      r{d}, r{a}, r{b}"),
            Insn::Match { d, a, re } => write!(f, "match    r{d}, r{a}, re{re}"),
            Insn::MatchDyn { d, a, b } => write!(f, "matchdyn r{d}, r{a}, r{b}"),
            Insn::IpMatch { d, a, net } => write!(f, "ipmatch  r{d}, r{a}, net{net}"),
            Insn::Jmp { to } => write!(f, "jmp      @{to}"),
            Insn::JmpF { c, to } => write!(f, "jmpf     r{c}, @{to}"),
            Insn::JmpT { c, to } => write!(f, "jmpt     r{c}, @{to}"),
            Insn::JmpZ { c, to } => write!(f, "jmpz     r{c}, @{to}"),
            Insn::JmpNZ { c, to } => write!(f, "jmpnz    r{c}, @{to}"),
            Insn::SwitchInt { s, t } => write!(f, "swint    r{s}, itab{t}"),
            Insn::SwitchStr { s, t } => write!(f, "swstr    r{s}, stab{t}"),
            Insn::LoopGuard { c, to } => write!(f, "loopgd   r{c}, @{to}"),
            Insn::DepthGuard { nest, to } => write!(f, "depthgd  +{nest}, @{to}"),
            Insn::Call { d, site } => write!(f, "call     r{d}, site{site}"),
            Insn::Route { d, site } => write!(f, "route    r{d}, rsite{site}"),
            Insn::RouteDyn { d, site } => write!(f, "routedyn r{d}, rsite{site}"),
            Insn::Ret { s } => write!(f, "ret      r{s}"),
            Insn::Exit { s } => write!(f, "exit     r{s}"),
            Insn::Drop { s } => write!(f, "drop     r{s}"),
            Insn::Leave { s } => write!(f, "leave    r{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_are_eight_bytes() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }

    #[test]
    fn encoding_round_trips() {
        let all = [
            Insn::LoadK {
                d: 3,
                k: 0x0123_4567,
            },
            Insn::LoadI { d: 1, i: -5 },
            Insn::LoadI { d: 1, i: i32::MIN },
            Insn::Move { d: 1, s: 2 },
            Insn::Take { d: 65535, s: 2 },
            Insn::Pv { d: 0, pv: 70000 },
            Insn::SetPv { s: 4, pv: 9 },
            Insn::SetPvAll { s: 4, pv: 9 },
            Insn::AssignRc { d: 7 },
            Insn::Fmt { d: 2, f: u32::MAX },
            Insn::Rc { d: 1 },
            Insn::Un {
                op: UnOp::NotDefined,
                d: 1,
                a: 2,
            },
            Insn::Bin {
                op: BinOp::CaseNe,
                d: 1,
                a: 2,
                b: 65000,
            },
            Insn::Div { d: 1, a: 2, b: 3 },
            Insn::Mod { d: 1, a: 2, b: 3 },
            Insn::Match { d: 1, a: 2, re: 9 },
            Insn::MatchDyn { d: 1, a: 2, b: 3 },
            Insn::IpMatch { d: 1, a: 2, net: 4 },
            Insn::Jmp { to: 0xfedc_ba98 },
            Insn::JmpF { c: 1, to: 2 },
            Insn::JmpT { c: 1, to: 2 },
            Insn::JmpZ { c: 1, to: 2 },
            Insn::JmpNZ { c: 1, to: 2 },
            Insn::SwitchInt { s: 1, t: 2 },
            Insn::SwitchStr { s: 1, t: 2 },
            Insn::LoopGuard { c: 1, to: 2 },
            Insn::DepthGuard { nest: 3, to: 2 },
            Insn::Call { d: 1, site: 2 },
            Insn::Route { d: 1, site: 2 },
            Insn::RouteDyn { d: 1, site: 2 },
            Insn::Ret { s: 1 },
            Insn::Exit { s: 1 },
            Insn::Drop { s: 1 },
            Insn::Leave { s: 1 },
            Insn::Bin {
                op: BinOp::IpIn,
                d: 1,
                a: 2,
                b: 3,
            },
            Insn::Un {
                op: UnOp::NullEmpty,
                d: 1,
                a: 2,
            },
        ];
        for i in all {
            assert_eq!(Insn::decode(i.encode()), Some(i), "{i}");
        }
        assert_eq!(Insn::decode([200, 0, 0, 0, 0, 0, 0, 0]), None);
        // An operator byte out of range is rejected, not mapped.
        let mut b = Insn::Un {
            op: UnOp::Neg,
            d: 0,
            a: 0,
        }
        .encode();
        b[5] = 99;
        assert_eq!(Insn::decode(b), None);
    }
}
