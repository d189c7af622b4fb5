//! IR passes: constant folding, dead-branch and dead-block removal, jump threading and
//! removal of unused pure instructions. All passes keep Kamailio's semantics (constants
//! are evaluated with the interpreter's own operators).

use super::{BlockId, Function, Inst, Module, Term, Truth, VReg};
use std::collections::HashMap;
use vm::Value;
use vm::interp::{binop, to_bytes, to_int, unop};

/// Runs every pass over every function.
pub fn optimize(m: &mut Module) {
    for f in &mut m.funcs {
        optimize_function(f);
    }
}

pub fn optimize_function(f: &mut Function) {
    // Each pass is cheap and bounded; a few rounds reach a fixed point in practice.
    for _ in 0..4 {
        let mut changed = fold_constants(f);
        changed |= simplify_branches(f);
        changed |= thread_jumps(f);
        changed |= merge_blocks(f);
        changed |= remove_dead_blocks(f);
        changed |= remove_unused(f);
        if !changed {
            break;
        }
    }
}

/// Registers written exactly once in the whole function, by a constant.
fn constant_regs(f: &Function) -> HashMap<VReg, Value> {
    let mut defs: HashMap<VReg, usize> = HashMap::new();
    let mut konst: HashMap<VReg, Value> = HashMap::new();
    for b in &f.blocks {
        for i in &b.insts {
            if let Some(d) = i.def() {
                *defs.entry(d).or_default() += 1;
                if let Inst::Const { value, .. } = i {
                    konst.insert(d, value.clone());
                }
            }
        }
        if let Some(d) = b.term.def() {
            *defs.entry(d).or_default() += 1;
        }
    }
    konst.retain(|r, _| defs.get(r) == Some(&1));
    konst
}

/// Folds operators on constants and branches on constants.
pub fn fold_constants(f: &mut Function) -> bool {
    let mut changed = false;
    // Folding can make more registers constant; bounded rounds.
    for _ in 0..8 {
        let konst = constant_regs(f);
        let mut round = false;
        for b in &mut f.blocks {
            for i in &mut b.insts {
                let folded = match i {
                    Inst::Un { dst, op, a } => konst.get(a).map(|v| (*dst, unop(*op, v))),
                    Inst::Bin { dst, op, a, b } => match (konst.get(a), konst.get(b)) {
                        (Some(x), Some(y)) => Some((*dst, binop(*op, x, y))),
                        _ => None,
                    },
                    Inst::Copy { dst, src } => konst.get(src).map(|v| (*dst, v.clone())),
                    _ => None,
                };
                if let Some((dst, value)) = folded {
                    *i = Inst::Const { dst, value };
                    round = true;
                }
            }
            let new_term = match &b.term {
                Term::Branch {
                    cond,
                    truth,
                    then,
                    otherwise,
                } => konst.get(cond).map(|v| {
                    let n = to_int(v);
                    let yes = match truth {
                        Truth::Positive => n > 0,
                        Truth::NonZero => n != 0,
                    };
                    Term::Jump(if yes { *then } else { *otherwise })
                }),
                Term::SwitchInt {
                    val,
                    cases,
                    default,
                } => konst.get(val).map(|v| {
                    let n = to_int(v);
                    Term::Jump(
                        cases
                            .iter()
                            .find(|c| c.0 == n)
                            .map(|c| c.1)
                            .unwrap_or(*default),
                    )
                }),
                Term::SwitchStr {
                    val,
                    cases,
                    default,
                } => konst.get(val).map(|v| {
                    let s = to_bytes(v);
                    Term::Jump(
                        cases
                            .iter()
                            .find(|c| c.0 == s)
                            .map(|c| c.1)
                            .unwrap_or(*default),
                    )
                }),
                _ => None,
            };
            if let Some(t) = new_term {
                b.term = t;
                round = true;
            }
        }
        changed |= round;
        if !round {
            break;
        }
    }
    changed
}

/// Branches on `truth(x)`, `!x` and `bool(x)` test `x` directly (when nothing else reads
/// the intermediate value): `if (f())` is one conditional jump on `f`'s return code.
pub fn simplify_branches(f: &mut Function) -> bool {
    use vm::bytecode::UnOp;
    let mut uses: HashMap<VReg, usize> = HashMap::new();
    let mut defs: HashMap<VReg, usize> = HashMap::new();
    // `None`: a copy.
    let mut un: HashMap<VReg, (Option<UnOp>, VReg)> = HashMap::new();
    for b in &f.blocks {
        for i in &b.insts {
            for u in i.uses() {
                *uses.entry(u).or_default() += 1;
            }
            if let Some(d) = i.def() {
                *defs.entry(d).or_default() += 1;
            }
            match i {
                Inst::Un { dst, op, a } => {
                    un.insert(*dst, (Some(*op), *a));
                }
                Inst::Copy { dst, src } => {
                    un.insert(*dst, (None, *src));
                }
                _ => {}
            }
        }
        for u in b.term.uses() {
            *uses.entry(u).or_default() += 1;
        }
        if let Some(d) = b.term.def() {
            *defs.entry(d).or_default() += 1;
        }
    }
    // Only single-definition registers read once (by the branch), whose operand is not
    // redefined in between: its definition and the branch are in the same block.
    let mut changed = false;
    for b in &mut f.blocks {
        for _ in 0..4 {
            let Term::Branch {
                cond,
                truth,
                then,
                otherwise,
            } = b.term.clone()
            else {
                break;
            };
            if uses.get(&cond) != Some(&1) || defs.get(&cond) != Some(&1) {
                break;
            }
            let Some(&(op, x)) = un.get(&cond) else {
                break;
            };
            // The operand must still hold its value at the branch.
            let pos = b.insts.iter().rposition(|i| i.def() == Some(cond));
            let Some(pos) = pos else {
                break;
            };
            if b.insts[pos + 1..].iter().any(|i| i.def() == Some(x)) {
                break;
            }
            let new = match (op, truth) {
                (None, _) => Some((x, truth, then, otherwise)),
                (Some(UnOp::Truth), Truth::Positive) | (Some(UnOp::Bool), Truth::NonZero) => {
                    Some((x, truth, then, otherwise))
                }
                (Some(UnOp::Truth), Truth::NonZero) => Some((x, Truth::Positive, then, otherwise)),
                (Some(UnOp::LNot), _) => Some((x, Truth::NonZero, otherwise, then)),
                _ => None,
            };
            let Some((x, t, th, ot)) = new else {
                break;
            };
            b.term = Term::Branch {
                cond: x,
                truth: t,
                then: th,
                otherwise: ot,
            };
            *uses.entry(x).or_default() += 1;
            uses.insert(cond, 0);
            changed = true;
        }
    }
    changed
}

/// Redirects jumps to empty blocks that only jump on.
pub fn thread_jumps(f: &mut Function) -> bool {
    let n = f.blocks.len();
    let forward: Vec<Option<BlockId>> = f
        .blocks
        .iter()
        .map(|b| match (&b.term, b.insts.is_empty()) {
            (Term::Jump(t), true) => Some(*t),
            _ => None,
        })
        .collect();
    let resolve = |mut b: BlockId| -> BlockId {
        // Bounded: a cycle of empty jumps (an empty infinite loop) stays as it is.
        for _ in 0..n {
            match forward.get(b.0 as usize).copied().flatten() {
                Some(t) if t != b => b = t,
                _ => break,
            }
        }
        b
    };
    let mut changed = false;
    for (bi, b) in f.blocks.iter_mut().enumerate() {
        for s in b.term.successors_mut() {
            let r = resolve(*s);
            // Never make the entry block's own jump target itself.
            if r != *s && !(r.0 as usize == bi && forward.get(bi).copied().flatten().is_some()) {
                *s = r;
                changed = true;
            }
        }
    }
    changed
}

/// Appends a block to its only predecessor when that one just jumps to it.
pub fn merge_blocks(f: &mut Function) -> bool {
    let n = f.blocks.len();
    let mut changed = false;
    // Bounded: each merge empties one block.
    for _ in 0..n {
        let mut preds = vec![0usize; n];
        for b in &f.blocks {
            for s in b.term.successors() {
                if let Some(p) = preds.get_mut(s.0 as usize) {
                    *p += 1;
                }
            }
        }
        let found = (0..n).find_map(|a| match f.blocks.get(a).map(|b| &b.term) {
            Some(Term::Jump(t))
                if t.0 as usize != a && t.0 != 0 && preds.get(t.0 as usize) == Some(&1) =>
            {
                Some((a, t.0 as usize))
            }
            _ => None,
        });
        let Some((a, b)) = found else {
            break;
        };
        let Some(tail) = f.blocks.get_mut(b) else {
            break;
        };
        let insts = std::mem::take(&mut tail.insts);
        let lines = std::mem::take(&mut tail.lines);
        let term = std::mem::replace(&mut tail.term, Term::Open);
        let term_line = tail.term_line;
        // The emptied block is unreachable now; give it a harmless terminator.
        tail.term = Term::Jump(BlockId(b as u32));
        if let Some(head) = f.blocks.get_mut(a) {
            head.insts.extend(insts);
            head.lines.extend(lines);
            head.term = term;
            head.term_line = term_line;
        }
        changed = true;
    }
    changed
}

/// Drops blocks unreachable from the entry and renumbers the rest.
pub fn remove_dead_blocks(f: &mut Function) -> bool {
    let n = f.blocks.len();
    if n == 0 {
        return false;
    }
    let mut reach = vec![false; n];
    let mut stack = vec![0usize];
    while let Some(b) = stack.pop() {
        if std::mem::replace(&mut reach[b], true) {
            continue;
        }
        if let Some(blk) = f.blocks.get(b) {
            for s in blk.term.successors() {
                if (s.0 as usize) < n && !reach[s.0 as usize] {
                    stack.push(s.0 as usize);
                }
            }
        }
    }
    if reach.iter().all(|r| *r) {
        return false;
    }
    let mut remap = vec![u32::MAX; n];
    let mut next = 0u32;
    for (i, r) in reach.iter().enumerate() {
        if *r {
            remap[i] = next;
            next += 1;
        }
    }
    let old = std::mem::take(&mut f.blocks);
    for (i, mut b) in old.into_iter().enumerate() {
        if !reach[i] {
            continue;
        }
        for s in b.term.successors_mut() {
            s.0 = remap.get(s.0 as usize).copied().unwrap_or(0);
        }
        f.blocks.push(b);
    }
    true
}

/// Removes pure instructions whose result nobody reads.
pub fn remove_unused(f: &mut Function) -> bool {
    let mut changed = false;
    for _ in 0..8 {
        let mut used = vec![false; f.vtypes.len()];
        for b in &f.blocks {
            for i in &b.insts {
                for u in i.uses() {
                    if let Some(x) = used.get_mut(u.0 as usize) {
                        *x = true;
                    }
                }
            }
            for u in b.term.uses() {
                if let Some(x) = used.get_mut(u.0 as usize) {
                    *x = true;
                }
            }
        }
        let mut round = false;
        for b in &mut f.blocks {
            let mut keep_lines = Vec::with_capacity(b.lines.len());
            let mut keep = Vec::with_capacity(b.insts.len());
            let lines = std::mem::take(&mut b.lines);
            for (k, i) in std::mem::take(&mut b.insts).into_iter().enumerate() {
                let dead = i.is_pure()
                    && i.def()
                        .is_some_and(|d| !used.get(d.0 as usize).copied().unwrap_or(true));
                if dead {
                    round = true;
                } else {
                    keep.push(i);
                    keep_lines.push(lines.get(k).copied().unwrap_or(0));
                }
            }
            b.insts = keep;
            b.lines = keep_lines;
        }
        changed |= round;
        if !round {
            break;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Inst, Ty};
    use vm::RouteKind;
    use vm::bytecode::BinOp;

    #[test]
    fn constant_branches_fold_away() {
        let mut f = Function::new(RouteKind::Request, None);
        let b0 = f.new_block();
        let b1 = f.new_block();
        let b2 = f.new_block();
        let a = f.new_reg(Ty::Int);
        let b = f.new_reg(Ty::Int);
        let c = f.new_reg(Ty::Int);
        let blk = &mut f.blocks[b0.0 as usize];
        blk.insts.push(Inst::Const {
            dst: a,
            value: Value::Int(2),
        });
        blk.insts.push(Inst::Const {
            dst: b,
            value: Value::Int(1),
        });
        blk.insts.push(Inst::Bin {
            dst: c,
            op: BinOp::IGt,
            a,
            b,
        });
        blk.lines = vec![0; 3];
        blk.term = Term::Branch {
            cond: c,
            truth: Truth::Positive,
            then: b1,
            otherwise: b2,
        };
        f.blocks[b1.0 as usize].term = Term::Leave(a);
        f.blocks[b2.0 as usize].term = Term::Leave(b);
        optimize_function(&mut f);
        // The branch is gone and its taken side merged into the entry block.
        assert_eq!(f.blocks.len(), 1, "{f:?}");
        assert_eq!(f.blocks[0].term, Term::Leave(a));
        // Only the constant still read survives.
        assert_eq!(
            f.blocks[0].insts,
            vec![Inst::Const {
                dst: a,
                value: Value::Int(2)
            }]
        );
    }
}
