//! Code generation: IR to register bytecode ([`vm::program::Program`]).
//!
//! Virtual registers get frame registers by linear scan over live intervals computed from
//! block liveness (no spilling: a frame has 65536 registers). Call arguments are staged
//! into consecutive registers past the allocated ones, so the interpreter passes them to
//! the KSR function as one slice; an argument at its last use is moved (`take`), not
//! copied. Integer switches become jump tables, string switches hash tables; blocks are
//! laid out so the common successor falls through.

use crate::diag::Diagnostic;
use crate::ir::{BlockId, Function, Inst, Module, Term, Truth, VReg};
use std::collections::{BTreeSet, HashMap};
use vm::Value;
use vm::bytecode::{Insn, Reg};
use vm::program::{ArgConv, CallSite, IntSwitch, Program, RouteInfo, RouteSite, StrSwitch};

/// Code generation choices (the defaults are what `compile` uses).
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Let virtual registers with disjoint live ranges share a frame register. Off, every
    /// virtual register gets its own (a reference point for testing the allocator).
    pub share_registers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            share_registers: true,
        }
    }
}

/// Generates the program for `m`.
pub fn generate(m: &Module) -> Result<Program, Vec<Diagnostic>> {
    generate_with(m, &Options::default())
}

/// [`generate`] with explicit options.
pub fn generate_with(m: &Module, opts: &Options) -> Result<Program, Vec<Diagnostic>> {
    let mut g = Gen {
        prog: Program::default(),
        consts: HashMap::new(),
        errors: Vec::new(),
        opts: *opts,
    };
    g.prog.pvs = m.pvs.clone();
    g.prog.formats = m.formats.clone();
    g.prog.regexes = m.regexes.clone();
    g.prog.nets = m.nets.clone();
    g.prog.imports = m.imports.clone();
    for f in &m.funcs {
        g.function(f);
    }
    if !g.errors.is_empty() {
        return Err(g.errors);
    }
    g.prog.index_routes();
    Ok(g.prog)
}

struct Gen {
    prog: Program,
    consts: HashMap<ConstKey, u32>,
    errors: Vec<Diagnostic>,
    opts: Options,
}

#[derive(Hash, PartialEq, Eq)]
enum ConstKey {
    Int(i64),
    Str(Vec<u8>),
    Null,
}

/// A jump whose target block is known only after layout.
enum Fixup {
    Insn(usize, BlockId),
    IntSwitch(usize, Vec<(i32, BlockId)>, BlockId),
    StrSwitch(usize, Vec<(bytes::Bytes, BlockId)>, BlockId),
}

fn bit(set: &[u64], r: usize) -> bool {
    set.get(r / 64).is_some_and(|w| w & (1 << (r % 64)) != 0)
}

fn set_bit(set: &mut [u64], r: usize) {
    if let Some(w) = set.get_mut(r / 64) {
        *w |= 1 << (r % 64);
    }
}

/// Blocks in emission order: each block followed by its preferred successor when that
/// one is not placed yet.
fn layout(f: &Function) -> Vec<usize> {
    let n = f.blocks.len();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut next_unplaced = 0usize;
    let mut cur = if n > 0 { Some(0usize) } else { None };
    while let Some(b) = cur {
        placed[b] = true;
        order.push(b);
        let pref = f.blocks.get(b).and_then(|blk| match &blk.term {
            Term::Jump(t) => Some(t.0 as usize),
            Term::Branch { then, .. } => Some(then.0 as usize),
            Term::Div { ok, .. } | Term::MatchDyn { ok, .. } => Some(ok.0 as usize),
            Term::LoopGuard { ok, .. } | Term::DepthGuard { ok, .. } => Some(ok.0 as usize),
            _ => None,
        });
        cur = match pref {
            Some(p) if p < n && !placed[p] => Some(p),
            _ => {
                while next_unplaced < n && placed[next_unplaced] {
                    next_unplaced += 1;
                }
                (next_unplaced < n).then_some(next_unplaced)
            }
        };
    }
    order
}

struct Alloc {
    phys: Vec<Option<Reg>>,
    /// Last position each virtual register is live at.
    end: Vec<usize>,
    regs: usize,
}

/// Live intervals and linear-scan allocation. Positions: one per instruction and one per
/// terminator, in layout order.
fn allocate(f: &Function, order: &[usize]) -> Alloc {
    let nv = f.vtypes.len();
    let words = nv.div_ceil(64).max(1);
    let nb = f.blocks.len();
    let mut uses = vec![vec![0u64; words]; nb];
    let mut defs = vec![vec![0u64; words]; nb];
    for (bi, b) in f.blocks.iter().enumerate() {
        let (u, d) = (&mut uses[bi], &mut defs[bi]);
        for i in &b.insts {
            for r in i.uses() {
                if !bit(d, r.0 as usize) {
                    set_bit(u, r.0 as usize);
                }
            }
            if let Some(r) = i.def() {
                set_bit(d, r.0 as usize);
            }
        }
        for r in b.term.uses() {
            if !bit(d, r.0 as usize) {
                set_bit(u, r.0 as usize);
            }
        }
        if let Some(r) = b.term.def() {
            set_bit(d, r.0 as usize);
        }
    }
    let mut live_in = vec![vec![0u64; words]; nb];
    let mut live_out = vec![vec![0u64; words]; nb];
    // Iterate to a fixed point (bounded by the lattice height; a cap keeps it safe).
    for _ in 0..(nb * 4 + 16) {
        let mut changed = false;
        for &bi in order.iter().rev() {
            let mut out = vec![0u64; words];
            if let Some(b) = f.blocks.get(bi) {
                for s in b.term.successors() {
                    if let Some(li) = live_in.get(s.0 as usize) {
                        for (o, x) in out.iter_mut().zip(li) {
                            *o |= x;
                        }
                    }
                }
            }
            let mut inn = out.clone();
            for (w, x) in inn.iter_mut().enumerate() {
                *x = uses[bi][w] | (*x & !defs[bi][w]);
            }
            if out != live_out[bi] || inn != live_in[bi] {
                live_out[bi] = out;
                live_in[bi] = inn;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Positions: instruction k reads at 2k and writes at 2k+1, so a register read for the
    // last time by an instruction can hold that instruction's result.
    let mut start = vec![usize::MAX; nv];
    let mut end = vec![0usize; nv];
    let touch = |r: usize, p: usize, start: &mut Vec<usize>, end: &mut Vec<usize>| {
        if let (Some(s), Some(e)) = (start.get_mut(r), end.get_mut(r)) {
            *s = (*s).min(p);
            *e = (*e).max(p);
        }
    };
    let mut pos = 0usize;
    for &bi in order {
        let Some(b) = f.blocks.get(bi) else {
            continue;
        };
        let first = 2 * pos;
        for r in 0..nv {
            if bit(&live_in[bi], r) {
                touch(r, first, &mut start, &mut end);
            }
        }
        for i in &b.insts {
            for r in i.uses() {
                touch(r.0 as usize, 2 * pos, &mut start, &mut end);
            }
            if let Some(r) = i.def() {
                touch(r.0 as usize, 2 * pos + 1, &mut start, &mut end);
            }
            pos += 1;
        }
        for r in b.term.uses() {
            touch(r.0 as usize, 2 * pos, &mut start, &mut end);
        }
        if let Some(r) = b.term.def() {
            touch(r.0 as usize, 2 * pos + 1, &mut start, &mut end);
        }
        for r in 0..nv {
            if bit(&live_out[bi], r) {
                touch(r, 2 * pos + 1, &mut start, &mut end);
            }
        }
        pos += 1;
    }
    let mut by_start: Vec<usize> = (0..nv).filter(|&r| start[r] != usize::MAX).collect();
    by_start.sort_by_key(|&r| (start[r], end[r]));
    let mut phys: Vec<Option<Reg>> = vec![None; nv];
    let mut free: BTreeSet<u32> = BTreeSet::new();
    let mut active: Vec<usize> = Vec::new();
    let mut high: u32 = 0;
    for r in by_start {
        let s = start[r];
        active.retain(|&a| {
            if end[a] < s {
                if let Some(p) = phys[a] {
                    free.insert(p as u32);
                }
                return false;
            }
            true
        });
        let p = match free.pop_first() {
            Some(p) => p,
            None => {
                high += 1;
                high - 1
            }
        };
        phys[r] = Some(p.min(u16::MAX as u32) as Reg);
        active.push(r);
    }
    Alloc {
        phys,
        end,
        regs: high as usize,
    }
}

/// Registers defined once, by a constant, and read once, as a call argument.
fn remat_constants(f: &Function) -> HashMap<VReg, Value> {
    let mut defs: HashMap<VReg, usize> = HashMap::new();
    let mut uses: HashMap<VReg, usize> = HashMap::new();
    let mut arg_uses: HashMap<VReg, usize> = HashMap::new();
    let mut konst: HashMap<VReg, Value> = HashMap::new();
    for b in &f.blocks {
        for i in &b.insts {
            if let Some(d) = i.def() {
                *defs.entry(d).or_default() += 1;
            }
            if let Inst::Const { dst, value } = i {
                konst.insert(*dst, value.clone());
            }
            for u in i.uses() {
                *uses.entry(u).or_default() += 1;
            }
            if let Inst::Call { args, .. } = i {
                for a in args {
                    *arg_uses.entry(*a).or_default() += 1;
                }
            }
        }
        for u in b.term.uses() {
            *uses.entry(u).or_default() += 1;
        }
        if let Some(d) = b.term.def() {
            *defs.entry(d).or_default() += 1;
        }
    }
    konst.retain(|v, _| {
        defs.get(v) == Some(&1) && uses.get(v) == Some(&1) && arg_uses.get(v) == Some(&1)
    });
    konst
}

impl Gen {
    fn konst(&mut self, v: &Value) -> u32 {
        let key = match v {
            Value::Int(i) => ConstKey::Int(*i),
            Value::Str(s) => ConstKey::Str(s.to_vec()),
            Value::Null => ConstKey::Null,
        };
        if let Some(&k) = self.consts.get(&key) {
            return k;
        }
        let k = self.prog.consts.len() as u32;
        self.prog.consts.push(v.clone());
        self.consts.insert(key, k);
        k
    }

    fn emit(&mut self, i: Insn, line: u32) -> usize {
        self.prog.code.push(i);
        self.prog.lines.push(line);
        self.prog.code.len() - 1
    }

    fn function(&mut self, f: &Function) {
        let order = layout(f);
        let mut alloc = allocate(f, &order);
        if !self.opts.share_registers {
            let n = f.vtypes.len().min(u16::MAX as usize);
            alloc.phys = (0..f.vtypes.len())
                .map(|i| Some(i.min(u16::MAX as usize) as Reg))
                .collect();
            alloc.regs = n;
        }
        let max_args = f
            .blocks
            .iter()
            .flat_map(|b| b.insts.iter())
            .map(|i| match i {
                Inst::Call { args, .. } => args.len(),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let staging = alloc.regs;
        // Constants read only as one call argument are loaded straight into the argument
        // register at the call instead of where they are defined.
        let remat = remat_constants(f);
        let frame = staging + max_args;
        let title = f.title();
        if frame > u16::MAX as usize {
            self.errors.push(Diagnostic::error(
                Default::default(),
                format!("{title} needs {frame} registers, more than a frame holds"),
            ));
            return;
        }
        let entry = self.prog.code.len() as u32;
        let r = |v: VReg| -> Reg { alloc.phys.get(v.0 as usize).copied().flatten().unwrap_or(0) };
        let mut starts: HashMap<usize, u32> = HashMap::new();
        let mut fixups: Vec<Fixup> = Vec::new();
        let mut pos = 0usize;
        for (k, &bi) in order.iter().enumerate() {
            let Some(b) = f.blocks.get(bi) else {
                continue;
            };
            starts.insert(bi, self.prog.code.len() as u32);
            let next = order.get(k + 1).map(|&n| BlockId(n as u32));
            for (ii, inst) in b.insts.iter().enumerate() {
                let line = b.lines.get(ii).copied().unwrap_or(0);
                let dies = |v: VReg| alloc.end.get(v.0 as usize).is_some_and(|&e| e <= 2 * pos);
                match inst {
                    Inst::Const { dst, .. } if remat.contains_key(dst) => {}
                    Inst::Const { dst, value } => {
                        let d = r(*dst);
                        match value {
                            Value::Int(i) if i32::try_from(*i).is_ok() => {
                                self.emit(Insn::LoadI { d, i: *i as i32 }, line);
                            }
                            _ => {
                                let k = self.konst(value);
                                self.emit(Insn::LoadK { d, k }, line);
                            }
                        }
                    }
                    Inst::Copy { dst, src } => {
                        let (d, s) = (r(*dst), r(*src));
                        if d != s {
                            if dies(*src) {
                                self.emit(Insn::Take { d, s }, line);
                            } else {
                                self.emit(Insn::Move { d, s }, line);
                            }
                        }
                    }
                    Inst::Pv { dst, pv } => {
                        self.emit(
                            Insn::Pv {
                                d: r(*dst),
                                pv: *pv,
                            },
                            line,
                        );
                    }
                    Inst::SetPv { pv, src, all } => {
                        let s = r(*src);
                        let i = if *all {
                            Insn::SetPvAll { s, pv: *pv }
                        } else {
                            Insn::SetPv { s, pv: *pv }
                        };
                        self.emit(i, line);
                    }
                    Inst::AssignRc { dst } => {
                        self.emit(Insn::AssignRc { d: r(*dst) }, line);
                    }
                    Inst::Fmt { dst, fmt } => {
                        self.emit(
                            Insn::Fmt {
                                d: r(*dst),
                                f: *fmt,
                            },
                            line,
                        );
                    }
                    Inst::Rc { dst } => {
                        self.emit(Insn::Rc { d: r(*dst) }, line);
                    }
                    Inst::Un { dst, op, a } => {
                        self.emit(
                            Insn::Un {
                                op: *op,
                                d: r(*dst),
                                a: r(*a),
                            },
                            line,
                        );
                    }
                    Inst::Bin { dst, op, a, b } => {
                        self.emit(
                            Insn::Bin {
                                op: *op,
                                d: r(*dst),
                                a: r(*a),
                                b: r(*b),
                            },
                            line,
                        );
                    }
                    Inst::Match { dst, a, re } => {
                        let re = u16::try_from(*re).unwrap_or(u16::MAX);
                        self.emit(
                            Insn::Match {
                                d: r(*dst),
                                a: r(*a),
                                re,
                            },
                            line,
                        );
                    }
                    Inst::IpMatch { dst, a, net } => {
                        let net = u16::try_from(*net).unwrap_or(u16::MAX);
                        self.emit(
                            Insn::IpMatch {
                                d: r(*dst),
                                a: r(*a),
                                net,
                            },
                            line,
                        );
                    }
                    Inst::Call {
                        dst,
                        import,
                        args,
                        conv,
                        kind,
                    } => {
                        for (j, a) in args.iter().enumerate() {
                            let d = (staging + j) as Reg;
                            if let Some(value) = remat.get(a) {
                                match value {
                                    Value::Int(i) if i32::try_from(*i).is_ok() => {
                                        self.emit(Insn::LoadI { d, i: *i as i32 }, line);
                                    }
                                    _ => {
                                        let k = self.konst(value);
                                        self.emit(Insn::LoadK { d, k }, line);
                                    }
                                }
                                continue;
                            }
                            let s = r(*a);
                            // The same register passed twice must not be taken twice.
                            let again = args.get(j + 1..).is_some_and(|rest| rest.contains(a));
                            if dies(*a) && !again {
                                self.emit(Insn::Take { d, s }, line);
                            } else {
                                self.emit(Insn::Move { d, s }, line);
                            }
                        }
                        let mut bits = 0u16;
                        for (j, c) in conv.iter().enumerate().take(8) {
                            bits |= match c {
                                ArgConv::None => 0,
                                ArgConv::Int => 1,
                                ArgConv::Str => 2,
                            } << (2 * j);
                        }
                        let site = self.prog.calls.len() as u32;
                        self.prog.calls.push(CallSite {
                            import: *import,
                            args: staging as Reg,
                            argc: args.len() as u8,
                            kind: *kind,
                            conv: bits,
                        });
                        self.emit(Insn::Call { d: r(*dst), site }, line);
                    }
                    Inst::Route {
                        dst,
                        func,
                        nest,
                        in_expr,
                    } => {
                        let site = self.prog.route_sites.len() as u32;
                        self.prog.route_sites.push(RouteSite {
                            target: *func,
                            nest: *nest,
                            in_expr: *in_expr,
                        });
                        self.emit(Insn::Route { d: r(*dst), site }, line);
                    }
                    Inst::RouteDyn {
                        dst,
                        name,
                        nest,
                        in_expr,
                    } => {
                        let site = self.prog.route_sites.len() as u32;
                        self.prog.route_sites.push(RouteSite {
                            target: r(*name) as u32,
                            nest: *nest,
                            in_expr: *in_expr,
                        });
                        self.emit(Insn::RouteDyn { d: r(*dst), site }, line);
                    }
                }
                pos += 1;
            }
            let line = b.term_line;
            let jump_unless_next = |g: &mut Gen, to: BlockId, fixups: &mut Vec<Fixup>| {
                if Some(to) != next {
                    let at = g.emit(Insn::Jmp { to: 0 }, line);
                    fixups.push(Fixup::Insn(at, to));
                }
            };
            match &b.term {
                Term::Jump(t) => jump_unless_next(self, *t, &mut fixups),
                Term::Branch {
                    cond,
                    truth,
                    then,
                    otherwise,
                } => {
                    let c = r(*cond);
                    let (if_false, if_true) = match truth {
                        Truth::Positive => (Insn::JmpF { c, to: 0 }, Insn::JmpT { c, to: 0 }),
                        Truth::NonZero => (Insn::JmpZ { c, to: 0 }, Insn::JmpNZ { c, to: 0 }),
                    };
                    if Some(*then) == next {
                        let at = self.emit(if_false, line);
                        fixups.push(Fixup::Insn(at, *otherwise));
                    } else {
                        let at = self.emit(if_true, line);
                        fixups.push(Fixup::Insn(at, *then));
                        jump_unless_next(self, *otherwise, &mut fixups);
                    }
                }
                Term::SwitchInt {
                    val,
                    cases,
                    default,
                } => {
                    let t = self.prog.int_switches.len() as u32;
                    self.prog.int_switches.push(IntSwitch::build(Vec::new(), 0));
                    let at = self.emit(Insn::SwitchInt { s: r(*val), t }, line);
                    fixups.push(Fixup::IntSwitch(at, cases.clone(), *default));
                }
                Term::SwitchStr {
                    val,
                    cases,
                    default,
                } => {
                    let t = self.prog.str_switches.len() as u32;
                    self.prog.str_switches.push(StrSwitch::new(Vec::new(), 0));
                    let at = self.emit(Insn::SwitchStr { s: r(*val), t }, line);
                    fixups.push(Fixup::StrSwitch(at, cases.clone(), *default));
                }
                Term::Div {
                    dst,
                    a,
                    b,
                    rem,
                    ok,
                    err,
                } => {
                    let (d, a, b) = (r(*dst), r(*a), r(*b));
                    self.emit(
                        if *rem {
                            Insn::Mod { d, a, b }
                        } else {
                            Insn::Div { d, a, b }
                        },
                        line,
                    );
                    let at = self.emit(Insn::Jmp { to: 0 }, line);
                    fixups.push(Fixup::Insn(at, *err));
                    jump_unless_next(self, *ok, &mut fixups);
                }
                Term::MatchDyn {
                    dst,
                    a,
                    pat,
                    ok,
                    err,
                } => {
                    self.emit(
                        Insn::MatchDyn {
                            d: r(*dst),
                            a: r(*a),
                            b: r(*pat),
                        },
                        line,
                    );
                    let at = self.emit(Insn::Jmp { to: 0 }, line);
                    fixups.push(Fixup::Insn(at, *err));
                    jump_unless_next(self, *ok, &mut fixups);
                }
                Term::LoopGuard {
                    counter,
                    ok,
                    exceeded,
                } => {
                    let at = self.emit(
                        Insn::LoopGuard {
                            c: r(*counter),
                            to: 0,
                        },
                        line,
                    );
                    fixups.push(Fixup::Insn(at, *exceeded));
                    jump_unless_next(self, *ok, &mut fixups);
                }
                Term::DepthGuard { nest, ok, fail } => {
                    let at = self.emit(Insn::DepthGuard { nest: *nest, to: 0 }, line);
                    fixups.push(Fixup::Insn(at, *fail));
                    jump_unless_next(self, *ok, &mut fixups);
                }
                Term::Return(v) => {
                    self.emit(Insn::Ret { s: r(*v) }, line);
                }
                Term::Leave(v) => {
                    self.emit(Insn::Leave { s: r(*v) }, line);
                }
                Term::Exit(v) => {
                    self.emit(Insn::Exit { s: r(*v) }, line);
                }
                Term::Drop(v) => {
                    self.emit(Insn::Drop { s: r(*v) }, line);
                }
                Term::Open => {
                    // An unfinished block is a lowering bug; end the route safely.
                    self.emit(Insn::Leave { s: 0 }, line);
                }
            }
            pos += 1;
        }
        let end = self.prog.code.len() as u32;
        let at = |b: &BlockId| starts.get(&(b.0 as usize)).copied().unwrap_or(end);
        for fx in fixups {
            match fx {
                Fixup::Insn(i, b) => {
                    let to = at(&b);
                    if let Some(insn) = self.prog.code.get_mut(i) {
                        insn.set_target(to);
                    }
                }
                Fixup::IntSwitch(i, cases, default) => {
                    let table = IntSwitch::build(
                        cases.iter().map(|(v, b)| (*v, at(b))).collect(),
                        at(&default),
                    );
                    if let Some(Insn::SwitchInt { t, .. }) = self.prog.code.get(i)
                        && let Some(slot) = self.prog.int_switches.get_mut(*t as usize)
                    {
                        *slot = table;
                    }
                }
                Fixup::StrSwitch(i, cases, default) => {
                    let table = StrSwitch::new(
                        cases.iter().map(|(v, b)| (v.clone(), at(b))).collect(),
                        at(&default),
                    );
                    if let Some(Insn::SwitchStr { t, .. }) = self.prog.code.get(i)
                        && let Some(slot) = self.prog.str_switches.get_mut(*t as usize)
                    {
                        *slot = table;
                    }
                }
            }
        }
        self.prog.routes.push(RouteInfo {
            kind: f.kind,
            name: f.name.clone(),
            entry,
            end,
            regs: frame.max(1) as u16,
        });
    }
}
