//! Lowering the syntax tree to the typed IR ([`crate::ir`]), with Kamailio's execution
//! semantics made explicit.
//!
//! * Every statement has a return code; the one of the last statement executed is the
//!   value of a route that ends without `return` (a sub-route whose last statement is
//!   `is_method("X")` returns -1). Statements in tail position write it to the function's
//!   return register.
//! * Expressions follow Kamailio's two evaluation modes (`rval_expr_eval` and
//!   `rval_expr_eval_int`: `"10" + 5` is "105" as a value but 15 inside an integer
//!   operator) after Kamailio's own optimizer ([`rve`]).
//! * Operations that can fail (division by zero, a bad run-time regex) branch to what
//!   Kamailio does then: the assignment is skipped, the `if` takes its `else` ...
//! * Calls are resolved by native name and arity in the KSR table; arguments are converted
//!   to the export's parameter types at compile time when constant, and string arguments
//!   with pseudo-variables become format strings parsed once.

pub mod rve;

use crate::ast::{
    self, BlockKind, CaseLabel, ExprKind, ItemKind, LValue, MsgField, Span, Stmt, StmtKind,
};
use crate::check::Catalog;
use crate::diag::Diagnostic;
use crate::ir::{self, BlockId, Function, Inst, Term, Truth, Ty, VReg};
use bytes::Bytes;
use rve::{Action, Elem, ElemOp, ElemRhs, K, KExpr, KOp};
use std::collections::{HashMap, HashSet};
use vm::bytecode::{BinOp, UnOp};
use vm::ksr::{KsrTable, ParamHint, ParamType};
use vm::program::{ArgConv, CallKind, FormatEntry, Import, IpNet, RegexEntry};
use vm::pv::PvRegistry;
use vm::{RouteKind, RouteMask, Value};

/// The route kind a block declares.
pub fn route_kind(block: &ast::RouteBlock) -> RouteKind {
    match block.kind {
        BlockKind::Request => RouteKind::Request,
        BlockKind::Failure => RouteKind::Failure,
        BlockKind::OnReply if block_name(block).is_some() => RouteKind::TmOnReply,
        BlockKind::OnReply => RouteKind::CoreOnReply,
        BlockKind::Branch => RouteKind::Branch,
        BlockKind::OnSend => RouteKind::OnSend,
        BlockKind::Event => RouteKind::Event,
    }
}

/// The name a block is found by (`None` for the main unnamed blocks).
pub fn block_name(block: &ast::RouteBlock) -> Option<String> {
    let n = block.name.as_ref()?.name.trim_matches('"').to_string();
    let main = match block.kind {
        BlockKind::Request => ["0", "main", "DEFAULT_ROUTE"].contains(&n.as_str()),
        BlockKind::OnReply => ["0", "DEFAULT_ONREPLY"].contains(&n.as_str()),
        BlockKind::Failure => n == "DEFAULT_FAILURE",
        BlockKind::Branch => n == "DEFAULT_BRANCH",
        BlockKind::OnSend => ["0", "DEFAULT_SEND"].contains(&n.as_str()),
        BlockKind::Event => false,
    };
    if main { None } else { Some(n) }
}

/// Compiles every routing block of `config` (compatibility entry point: checks, lowers,
/// optimizes and generates code; see [`crate::compile`]).
pub fn compile<C>(
    config: &ast::Config,
    table: &KsrTable<C>,
    pvs: &PvRegistry<C>,
) -> Result<vm::program::Program, Vec<Diagnostic>> {
    let cat = Catalog::new(table, pvs);
    crate::compile(config, &cat)
}

// ---------------------------------------------------------------- the route graph

/// One routing block and what is known about it before lowering.
pub(crate) struct RouteDecl<'a> {
    pub block: &'a ast::RouteBlock,
    pub kind: RouteKind,
    pub name: Option<String>,
    /// A `route[NAME]` sub-route (runs in the kind of its callers).
    pub sub: bool,
}

/// The routing blocks, the static call graph and the route kinds each block runs in.
pub(crate) struct RouteGraph<'a> {
    pub decls: Vec<RouteDecl<'a>>,
    pub subs: HashMap<String, usize>,
    /// Route kinds each block may run as (sub-routes: the union over their callers).
    pub kinds: Vec<RouteMask>,
    /// Blocks that can run at an unbounded depth (recursion, or called from recursion).
    pub deep: Vec<bool>,
    pub duplicates: Vec<(Span, String, Span)>,
}

/// Calls every `route(...)`-or-function call in a statement list, expressions included.
pub(crate) fn visit_calls<'a>(stmts: &'a [Stmt], f: &mut dyn FnMut(&'a ast::Call)) {
    for s in stmts {
        visit_stmt(s, f);
    }
}

fn visit_stmt<'a>(s: &'a Stmt, f: &mut dyn FnMut(&'a ast::Call)) {
    match &s.kind {
        StmtKind::Call(c) => visit_call(c, f),
        StmtKind::Expr(e) => visit_expr(e, f),
        StmtKind::Block(b) => visit_calls(&b.stmts, f),
        StmtKind::If {
            cond,
            then,
            otherwise,
        } => {
            visit_expr(cond, f);
            visit_stmt(then, f);
            if let Some(o) = otherwise {
                visit_stmt(o, f);
            }
        }
        StmtKind::Switch {
            scrutinee, cases, ..
        } => {
            visit_expr(scrutinee, f);
            for c in cases {
                if let Some(b) = &c.body {
                    visit_calls(b, f);
                }
            }
        }
        StmtKind::While { cond, body } => {
            visit_expr(cond, f);
            visit_stmt(body, f);
        }
        StmtKind::Assign { rhs, .. } => visit_expr(rhs, f),
        StmtKind::Return(e) | StmtKind::Exit(e) | StmtKind::Drop(e) => {
            if let Some(e) = e {
                visit_expr(e, f);
            }
        }
        StmtKind::Break | StmtKind::Empty => {}
    }
}

fn visit_call<'a>(c: &'a ast::Call, f: &mut dyn FnMut(&'a ast::Call)) {
    f(c);
    for a in &c.args {
        visit_expr(a, f);
    }
}

pub(crate) fn visit_expr<'a>(e: &'a ast::Expr, f: &mut dyn FnMut(&'a ast::Call)) {
    match &e.kind {
        ExprKind::Call(c) => visit_call(c, f),
        ExprKind::Unary { expr, .. }
        | ExprKind::Cast { expr, .. }
        | ExprKind::Defined(expr)
        | ExprKind::Strlen(expr)
        | ExprKind::Strempty(expr) => visit_expr(expr, f),
        ExprKind::Binary { lhs, rhs, .. } => {
            visit_expr(lhs, f);
            visit_expr(rhs, f);
        }
        ExprKind::Selval {
            cond,
            then,
            otherwise,
        } => {
            visit_expr(cond, f);
            visit_expr(then, f);
            visit_expr(otherwise, f);
        }
        ExprKind::Block(b) => visit_calls(&b.stmts, f),
        ExprKind::Assign { rhs, .. } => visit_expr(rhs, f),
        _ => {}
    }
}

/// The static name of a `route(...)` argument, or `None` when computed at run time.
pub(crate) fn static_route_name(a: &ast::Expr) -> Option<String> {
    match &a.kind {
        ExprKind::Ident(s) | ExprKind::Host(s) => Some(s.clone()),
        ExprKind::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
        ExprKind::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

impl<'a> RouteGraph<'a> {
    pub fn build(config: &'a ast::Config) -> RouteGraph<'a> {
        let mut decls: Vec<RouteDecl<'a>> = Vec::new();
        let mut seen: HashMap<(RouteKind, Option<String>), Span> = HashMap::new();
        let mut duplicates = Vec::new();
        for item in &config.items {
            let ItemKind::Route(b) = &item.kind else {
                continue;
            };
            let kind = route_kind(b);
            let name = block_name(b);
            let title = match &name {
                Some(n) => format!("{}[{n}]", kind.keyword()),
                None => kind.keyword().to_string(),
            };
            if let Some(first) = seen.get(&(kind, name.clone())) {
                duplicates.push((b.span, title, *first));
                continue;
            }
            seen.insert((kind, name.clone()), b.span);
            let sub = kind == RouteKind::Request && name.is_some();
            decls.push(RouteDecl {
                block: b,
                kind,
                name,
                sub,
            });
        }
        let mut subs = HashMap::new();
        for (i, d) in decls.iter().enumerate() {
            if d.sub
                && let Some(n) = &d.name
            {
                subs.insert(n.clone(), i);
            }
        }
        // Call edges: static route(NAME) calls, and route(<expr>) to every sub-route.
        let all_subs: Vec<usize> = decls
            .iter()
            .enumerate()
            .filter(|(_, d)| d.sub)
            .map(|(i, _)| i)
            .collect();
        let mut edges: Vec<Vec<usize>> = Vec::with_capacity(decls.len());
        for d in &decls {
            let mut out = Vec::new();
            visit_calls(&d.block.body.stmts, &mut |c| {
                if c.name.name != "route" {
                    return;
                }
                match c.args.first().and_then(static_route_name) {
                    Some(n) => {
                        if let Some(&t) = subs.get(&n) {
                            out.push(t);
                        }
                    }
                    None => out.extend(all_subs.iter().copied()),
                }
            });
            out.sort_unstable();
            out.dedup();
            edges.push(out);
        }
        // Kinds: every top-level block runs in its own kind; sub-routes in their callers'.
        let mut kinds = vec![RouteMask(0); decls.len()];
        let mut work: Vec<usize> = Vec::new();
        for (i, d) in decls.iter().enumerate() {
            if !d.sub {
                kinds[i] = RouteMask::of(d.kind);
                work.push(i);
            }
        }
        let mut steps = 0usize;
        while let Some(i) = work.pop() {
            steps += 1;
            if steps > decls.len() * decls.len() * 8 + 64 {
                break;
            }
            let k = kinds[i];
            for &t in &edges[i] {
                let merged = kinds[t].union(k);
                if merged != kinds[t] {
                    kinds[t] = merged;
                    work.push(t);
                }
            }
        }
        // Recursion: blocks on a cycle, and everything they reach, can run at any depth.
        let n = decls.len();
        let mut deep = vec![false; n];
        for start in 0..n {
            // Does `start` reach itself?
            let mut seen = vec![false; n];
            let mut stack: Vec<usize> = edges[start].clone();
            while let Some(x) = stack.pop() {
                if x == start {
                    deep[start] = true;
                    break;
                }
                if std::mem::replace(&mut seen[x], true) {
                    continue;
                }
                stack.extend(edges[x].iter().copied());
            }
        }
        let mut work: Vec<usize> = (0..n).filter(|&i| deep[i]).collect();
        while let Some(i) = work.pop() {
            for &t in &edges[i] {
                if !deep[t] {
                    deep[t] = true;
                    work.push(t);
                }
            }
        }
        RouteGraph {
            decls,
            subs,
            kinds,
            deep,
            duplicates,
        }
    }
}

// ---------------------------------------------------------------- lowering

/// Lowers `config` to IR. Diagnostics are errors the checker should already have
/// reported; lowering reports them again rather than guess.
pub fn lower<C>(config: &ast::Config, cat: &Catalog<'_, C>) -> (ir::Module, Vec<Diagnostic>) {
    let graph = RouteGraph::build(config);
    let mut flags = HashMap::new();
    for item in &config.items {
        if let ItemKind::Flags { flags: list } = &item.kind {
            let mut next = 0i64;
            for (id, v) in list {
                let n = v.unwrap_or(next);
                flags.insert(id.name.clone(), n);
                next = n + 1;
            }
        }
    }
    let mut lw = Lowerer {
        table: cat.table,
        pvs: cat.pvs,
        module: ir::Module::default(),
        diags: Vec::new(),
        graph: &graph,
        flags,
        pv_ids: HashMap::new(),
        fmt_ids: HashMap::new(),
        import_ids: HashMap::new(),
        re_ids: HashMap::new(),
        sources: cat.sources,
        modules: cat.modules,
    };
    for (span, title, first) in &graph.duplicates {
        lw.diags.push(
            Diagnostic::error(*span, format!("duplicate route {title}"))
                .with_label(*first, "first defined here"),
        );
    }
    for (i, d) in graph.decls.iter().enumerate() {
        let f = lw.function(i, d);
        lw.module.funcs.push(f);
    }
    let diags = std::mem::take(&mut lw.diags);
    (lw.module, diags)
}

struct Lowerer<'a, 'g, C> {
    table: &'a KsrTable<C>,
    pvs: &'a PvRegistry<C>,
    module: ir::Module,
    diags: Vec<Diagnostic>,
    graph: &'g RouteGraph<'g>,
    flags: HashMap<String, i64>,
    pv_ids: HashMap<String, u32>,
    fmt_ids: HashMap<String, u32>,
    import_ids: HashMap<(u32, String, u8), u32>,
    re_ids: HashMap<(Vec<u8>, bool), u32>,
    sources: Option<&'a crate::source::SourceMap>,
    modules: Option<&'a dyn crate::check::ModuleCatalog>,
}

/// Per-function lowering state.
struct Fb {
    f: Function,
    cur: BlockId,
    /// The function's return value register (the value of its last statement).
    ret: VReg,
    nest: u16,
    /// Innermost first: where `break` goes, and whether the construct is in tail position.
    breaks: Vec<(BlockId, bool)>,
    /// `return` inside an expression block: the block's value register and end.
    values: Vec<(VReg, BlockId)>,
    deep: bool,
    kinds: RouteMask,
    line: u32,
}

impl Fb {
    fn reg(&mut self, ty: Ty) -> VReg {
        self.f.new_reg(ty)
    }

    fn block(&mut self) -> BlockId {
        self.f.new_block()
    }

    fn emit(&mut self, i: Inst) {
        let line = self.line;
        if let Some(b) = self.f.block_mut(self.cur)
            && matches!(b.term, Term::Open)
        {
            b.insts.push(i);
            b.lines.push(line);
        }
    }

    /// Ends the current block (if still open).
    fn term(&mut self, t: Term) {
        let line = self.line;
        if let Some(b) = self.f.block_mut(self.cur)
            && matches!(b.term, Term::Open)
        {
            b.term = t;
            b.term_line = line;
        }
    }

    fn switch_to(&mut self, b: BlockId) {
        self.cur = b;
    }

    /// After an unconditional transfer: keep lowering into an unreachable block.
    fn dead(&mut self) {
        let b = self.block();
        self.cur = b;
    }

    fn jump(&mut self, to: BlockId) {
        self.term(Term::Jump(to));
    }

    fn konst(&mut self, v: Value) -> VReg {
        let ty = match v {
            Value::Int(_) => Ty::Int,
            Value::Str(_) => Ty::Str,
            Value::Null => Ty::Any,
        };
        let r = self.reg(ty);
        self.emit(Inst::Const { dst: r, value: v });
        r
    }

    fn int(&mut self, i: i32) -> VReg {
        self.konst(Value::Int(i as i64))
    }

    fn set_int(&mut self, dst: VReg, i: i32) {
        self.emit(Inst::Const {
            dst,
            value: Value::Int(i as i64),
        });
    }

    fn copy(&mut self, dst: VReg, src: VReg) {
        if dst != src {
            self.emit(Inst::Copy { dst, src });
        }
    }

    fn un(&mut self, op: UnOp, a: VReg) -> VReg {
        let ty = match op {
            UnOp::ToStr | UnOp::NullEmpty => Ty::Str,
            _ => Ty::Int,
        };
        let ty = if op == UnOp::NullEmpty && self.f.ty(a) == Ty::Int {
            Ty::Int
        } else if op == UnOp::NullEmpty && self.f.ty(a) == Ty::Any {
            Ty::Any
        } else {
            ty
        };
        let d = self.reg(ty);
        self.emit(Inst::Un { dst: d, op, a });
        d
    }

    fn bin(&mut self, op: BinOp, a: VReg, b: VReg, ty: Ty) -> VReg {
        let d = self.reg(ty);
        self.emit(Inst::Bin { dst: d, op, a, b });
        d
    }

    /// An integer view of `v` (a conversion unless already an integer).
    fn as_int(&mut self, v: VReg) -> VReg {
        if self.f.ty(v) == Ty::Int {
            v
        } else {
            self.un(UnOp::ToInt, v)
        }
    }

    fn set_ret(&mut self, src: VReg) {
        let r = self.ret;
        self.copy(r, src);
    }
}

/// An operand whose integer value is the integer conversion of its value (so evaluating
/// it once as a value serves both of Kamailio's evaluation modes).
fn simple_operand(e: &KExpr) -> bool {
    matches!(
        e.kind,
        K::Int(_)
            | K::Str(_)
            | K::Null
            | K::Pv(_)
            | K::Rc
            | K::Avp(_)
            | K::Select(_)
            | K::Action(_)
            | K::Elem(_)
            | K::Bad
    )
}

fn filtered(stmts: &[Stmt]) -> Vec<&Stmt> {
    stmts
        .iter()
        .filter(|s| !matches!(s.kind, StmtKind::Empty))
        .collect()
}

/// The statements of an `if`/`while` body (a block or a single statement).
fn body_stmts(s: &Stmt) -> Vec<&Stmt> {
    match &s.kind {
        StmtKind::Block(b) => filtered(&b.stmts),
        StmtKind::Empty => Vec::new(),
        _ => vec![s],
    }
}

/// `%name`, `$name` (AVP attribute syntax) as `$avp(name)`.
pub(crate) fn avp_text(t: &str) -> String {
    if t.starts_with("$avp(") || t.starts_with("$(avp") {
        return t.to_string();
    }
    let name = t.trim_start_matches(['$', '%']);
    let name = name
        .split_once('.')
        .filter(|(class, _)| {
            matches!(
                *class,
                "f" | "t" | "g" | "fr" | "tr" | "fu" | "tu" | "fd" | "td"
            )
        })
        .map(|(_, n)| n)
        .unwrap_or(name);
    format!("$avp({name})")
}

impl<'a, 'g, C> Lowerer<'a, 'g, C> {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, msg));
    }

    fn line_of(&self, span: Span) -> u32 {
        match self.sources {
            Some(sm) => sm.line_col(span).0 as u32,
            None => 0,
        }
    }

    fn function(&mut self, idx: usize, d: &RouteDecl<'_>) -> Function {
        let mut fb = Fb {
            f: Function::new(d.kind, d.name.clone()),
            cur: BlockId(0),
            ret: VReg(0),
            nest: 0,
            breaks: Vec::new(),
            values: Vec::new(),
            deep: self.graph.deep.get(idx).copied().unwrap_or(false),
            kinds: self.graph.kinds.get(idx).copied().unwrap_or(RouteMask(0)),
            line: self.line_of(d.block.span),
        };
        let entry = fb.block();
        fb.switch_to(entry);
        fb.ret = fb.reg(Ty::Int);
        let ret = fb.ret;
        fb.set_int(ret, 1);
        let end = fb.block();
        // `break` outside loops ends the route with 0.
        fb.breaks.push((end, true));
        let stmts = filtered(&d.block.body.stmts);
        self.stmts(&mut fb, &stmts, true);
        fb.jump(end);
        fb.switch_to(end);
        fb.term(Term::Leave(ret));
        fb.f
    }

    fn stmts(&mut self, fb: &mut Fb, list: &[&Stmt], tail: bool) {
        let n = list.len();
        for (i, s) in list.iter().enumerate() {
            self.stmt(fb, s, tail && i + 1 == n);
        }
    }

    /// A nested action list (if/while body, switch cases): one level deeper for
    /// `max_recursive_level`. Falls through to whatever the caller emits next; a failed
    /// depth check continues at `after`.
    fn nested(&mut self, fb: &mut Fb, list: &[&Stmt], tail: bool, after: BlockId) {
        if list.is_empty() {
            if tail {
                let r = fb.ret;
                fb.set_int(r, 1);
            }
            return;
        }
        fb.nest = fb.nest.saturating_add(1);
        if fb.deep {
            let ok = fb.block();
            let fail = fb.block();
            let nest = fb.nest;
            fb.term(Term::DepthGuard { nest, ok, fail });
            fb.switch_to(fail);
            if tail {
                let r = fb.ret;
                fb.set_int(r, -1);
            }
            fb.jump(after);
            fb.switch_to(ok);
        }
        self.stmts(fb, list, tail);
        fb.nest = fb.nest.saturating_sub(1);
    }

    fn stmt(&mut self, fb: &mut Fb, s: &Stmt, tail: bool) {
        fb.line = self.line_of(s.span);
        match &s.kind {
            StmtKind::Empty => {}
            StmtKind::Call(c) => {
                let after = fb.block();
                let d = self.call(fb, c, false, after);
                fb.jump(after);
                fb.switch_to(after);
                if tail {
                    fb.set_ret(d);
                }
            }
            StmtKind::Expr(e) => {
                let after = fb.block();
                let k = self.kexpr(e);
                let _ = self.eval(fb, &k, after);
                fb.jump(after);
                fb.switch_to(after);
                if tail {
                    let r = fb.ret;
                    fb.set_int(r, 1);
                }
            }
            StmtKind::Block(b) => {
                let list = filtered(&b.stmts);
                self.stmts(fb, &list, tail);
            }
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                let k = self.kexpr(cond);
                let then_bb = fb.block();
                let else_bb = fb.block();
                let join = fb.block();
                let c = self.eval_int(fb, &k, else_bb);
                fb.term(Term::Branch {
                    cond: c,
                    truth: Truth::Positive,
                    then: then_bb,
                    otherwise: else_bb,
                });
                fb.switch_to(then_bb);
                let list = body_stmts(then);
                self.nested(fb, &list, tail, join);
                fb.jump(join);
                fb.switch_to(else_bb);
                match otherwise {
                    Some(o) => {
                        let list = body_stmts(o);
                        self.nested(fb, &list, tail, join);
                    }
                    None => {
                        if tail {
                            let r = fb.ret;
                            fb.set_int(r, 1);
                        }
                    }
                }
                fb.jump(join);
                fb.switch_to(join);
            }
            StmtKind::While { cond, body } => self.while_stmt(fb, cond, body, tail),
            StmtKind::Switch {
                scrutinee, cases, ..
            } => self.switch_stmt(fb, scrutinee, cases, tail, s.span),
            StmtKind::Assign { lhs, op, rhs } => {
                let ret = if tail { Some(fb.ret) } else { None };
                self.assign(fb, lhs, *op == ast::AssignOp::SetAll, rhs, ret);
            }
            StmtKind::Return(e) => {
                let v = match e {
                    None => fb.int(1),
                    Some(e) => {
                        let k = self.kexpr(e);
                        let bug = fb.block();
                        let join = fb.block();
                        let v = fb.reg(Ty::Int);
                        let x = self.eval_int(fb, &k, bug);
                        fb.copy(v, x);
                        fb.jump(join);
                        // A failed expression leaves Kamailio's E_BUG in the return code.
                        fb.switch_to(bug);
                        fb.set_int(v, -5);
                        fb.jump(join);
                        fb.switch_to(join);
                        v
                    }
                };
                match fb.values.last().copied() {
                    Some((target, end)) => {
                        fb.copy(target, v);
                        fb.jump(end);
                    }
                    None => fb.term(Term::Return(v)),
                }
                fb.dead();
            }
            StmtKind::Exit(e) | StmtKind::Drop(e) => {
                let is_drop = matches!(s.kind, StmtKind::Drop(_));
                let v = match e {
                    None => fb.int(if is_drop { 0 } else { 1 }),
                    Some(e) => {
                        let k = self.kexpr(e);
                        let bug = fb.block();
                        let join = fb.block();
                        let v = fb.reg(Ty::Int);
                        let x = self.eval_int(fb, &k, bug);
                        fb.copy(v, x);
                        fb.jump(join);
                        fb.switch_to(bug);
                        fb.set_int(v, -5);
                        fb.jump(join);
                        fb.switch_to(join);
                        v
                    }
                };
                fb.term(if is_drop {
                    Term::Drop(v)
                } else {
                    Term::Exit(v)
                });
                fb.dead();
            }
            StmtKind::Break => {
                if let Some(&(target, construct_tail)) = fb.breaks.last() {
                    if construct_tail {
                        let r = fb.ret;
                        fb.set_int(r, 0);
                    }
                    fb.jump(target);
                }
                fb.dead();
            }
        }
    }

    fn while_stmt(&mut self, fb: &mut Fb, cond: &ast::Expr, body: &Stmt, tail: bool) {
        let k = self.kexpr(cond);
        if tail {
            let r = fb.ret;
            fb.set_int(r, 1);
        }
        let counter = fb.reg(Ty::Int);
        fb.set_int(counter, 0);
        let head = fb.block();
        let guard = fb.block();
        let body_bb = fb.block();
        let runaway = fb.block();
        let exit = fb.block();
        fb.jump(head);
        fb.switch_to(head);
        let c = self.eval_int(fb, &k, exit);
        fb.term(Term::Branch {
            cond: c,
            truth: Truth::Positive,
            then: guard,
            otherwise: exit,
        });
        fb.switch_to(guard);
        fb.term(Term::LoopGuard {
            counter,
            ok: body_bb,
            exceeded: runaway,
        });
        fb.switch_to(runaway);
        if tail {
            let r = fb.ret;
            fb.set_int(r, -1);
        }
        fb.jump(exit);
        fb.switch_to(body_bb);
        fb.breaks.push((exit, tail));
        let list = body_stmts(body);
        self.nested(fb, &list, tail, head);
        fb.breaks.pop();
        fb.jump(head);
        fb.switch_to(exit);
    }

    // ------------------------------------------------------------ switch

    fn switch_stmt(
        &mut self,
        fb: &mut Fb,
        scrutinee: &ast::Expr,
        cases: &[ast::Case],
        tail: bool,
        span: Span,
    ) {
        let k = self.kexpr(scrutinee);
        // Labels: constant, and all ints or all strings/regexes.
        #[derive(Clone)]
        enum Label {
            Int(i32),
            Str(Bytes),
            Re(u32),
            Default,
        }
        let mut labels = Vec::with_capacity(cases.len());
        let string_switch = cases.iter().find_map(|c| match &c.label {
            Some(CaseLabel::Regex(_)) => Some(true),
            Some(CaseLabel::Value(e)) => {
                let mut ke = rve::from_ast(e, &mut Vec::new());
                let _ = rve::optimize(&mut ke);
                Some(matches!(ke.kind, K::Str(_)))
            }
            None => None,
        });
        let string_switch = string_switch.unwrap_or(false);
        let mut defaults = 0;
        for c in cases {
            let l = match &c.label {
                None => {
                    defaults += 1;
                    if defaults > 1 {
                        self.err(c.span, "more then one \"default\" label in switch");
                    }
                    Label::Default
                }
                Some(CaseLabel::Value(e)) | Some(CaseLabel::Regex(e)) => {
                    let is_re = matches!(c.label, Some(CaseLabel::Regex(_)));
                    let mut ke = self.kexpr(e);
                    if !ke.is_constant() {
                        self.err(e.span, "non constant expression in case");
                        labels.push(Label::Default);
                        continue;
                    }
                    match rve::const_value(&ke) {
                        Ok(v) => {
                            ke = KExpr::new(
                                match v {
                                    Value::Int(i) => K::Int(i as i32),
                                    Value::Str(s) => K::Str(s),
                                    Value::Null => K::Str(Bytes::new()),
                                },
                                ke.span,
                            )
                        }
                        Err(er) => {
                            self.err(e.span, format!("bad case label: {}", er.0));
                            labels.push(Label::Default);
                            continue;
                        }
                    }
                    match (&ke.kind, string_switch, is_re) {
                        (K::Str(s), true, true) => match self.regex(s, false, e.span) {
                            Some(r) => Label::Re(r),
                            None => Label::Default,
                        },
                        (K::Int(i), true, true) => {
                            match self.regex(&Bytes::from(i.to_string()), false, e.span) {
                                Some(r) => Label::Re(r),
                                None => Label::Default,
                            }
                        }
                        (K::Str(s), true, false) => Label::Str(s.clone()),
                        (K::Int(i), false, false) => Label::Int(*i),
                        _ => {
                            self.err(e.span, "type mismatch in case");
                            Label::Default
                        }
                    }
                }
            };
            labels.push(l);
        }
        // Duplicate labels.
        {
            let mut ints = HashSet::new();
            let mut strs = HashSet::new();
            for (c, l) in cases.iter().zip(&labels) {
                let dup = match l {
                    Label::Int(i) => !ints.insert(*i),
                    Label::Str(s) => !strs.insert(s.clone()),
                    _ => false,
                };
                if dup {
                    self.err(c.span, "duplicate case");
                }
            }
        }
        let end = fb.block();
        let fail = fb.block();
        let nomatch = fb.block();
        // The scrutinee: an integer for int cases, its string form for string cases.
        let val = if string_switch {
            let v = self.eval(fb, &k, fail);
            if fb.f.ty(v) == Ty::Str {
                v
            } else {
                fb.un(UnOp::ToStr, v)
            }
        } else {
            self.eval_int(fb, &k, fail)
        };
        let dispatch = fb.cur;
        // The chain is lowered from a fresh (unreachable) block; dispatch is added last.
        let chain = fb.block();
        fb.switch_to(chain);
        // One entry block per case, into the flattened chain of all case bodies.
        let mut entries: Vec<BlockId> = Vec::with_capacity(cases.len());
        for _ in cases {
            entries.push(fb.block());
        }
        let mut default_entry = None;
        for (i, l) in labels.iter().enumerate() {
            if matches!(l, Label::Default) && cases.get(i).is_some_and(|c| c.label.is_none()) {
                default_entry = entries.get(i).copied();
            }
        }
        // Chain: statements of every case in order; case i starts at entries[i].
        let bodies: Vec<Vec<&Stmt>> = cases
            .iter()
            .map(|c| c.body.as_deref().map(filtered).unwrap_or_default())
            .collect();
        let total: usize = bodies.iter().map(|b| b.len()).sum();
        fb.breaks.push((end, tail));
        fb.nest = fb.nest.saturating_add(1);
        let mut done = 0usize;
        for (i, body) in bodies.iter().enumerate() {
            let entry = entries[i];
            fb.jump(entry);
            fb.switch_to(entry);
            if done == total && tail {
                // Entering after the last statement: Kamailio's switch value is 1.
                let r = fb.ret;
                fb.set_int(r, 1);
            }
            if fb.deep && done < total {
                // Each entry is a run of the action list from there.
                let ok = fb.block();
                let gfail = fb.block();
                let nest = fb.nest;
                fb.term(Term::DepthGuard {
                    nest,
                    ok,
                    fail: gfail,
                });
                fb.switch_to(gfail);
                if tail {
                    let r = fb.ret;
                    fb.set_int(r, -1);
                }
                fb.jump(end);
                fb.switch_to(ok);
            }
            let n = body.len();
            for (j, s) in body.iter().enumerate() {
                done += 1;
                let last = done == total && j + 1 == n;
                self.stmt(fb, s, tail && last);
            }
        }
        fb.nest = fb.nest.saturating_sub(1);
        fb.breaks.pop();
        fb.jump(end);
        // No case matched and no default.
        fb.switch_to(nomatch);
        if tail {
            let r = fb.ret;
            fb.set_int(r, 1);
        }
        fb.jump(end);
        // The scrutinee failed to evaluate: the default case, else -1.
        fb.switch_to(fail);
        match default_entry {
            Some(d) => {
                if tail {
                    let r = fb.ret;
                    fb.set_int(r, -1);
                }
                fb.jump(d)
            }
            None => {
                if tail {
                    let r = fb.ret;
                    fb.set_int(r, -1);
                }
                fb.jump(end)
            }
        }
        // Dispatch.
        fb.switch_to(dispatch);
        let default = default_entry.unwrap_or(nomatch);
        if cases.is_empty() {
            fb.jump(nomatch);
        } else if !string_switch {
            let mut table = Vec::new();
            for (l, e) in labels.iter().zip(&entries) {
                if let Label::Int(i) = l {
                    table.push((*i, *e));
                }
            }
            fb.term(Term::SwitchInt {
                val,
                cases: table,
                default,
            });
        } else {
            // Sequential first match: runs of exact strings dispatch by hash, regexes test
            // one by one.
            let mut i = 0;
            while i < labels.len() {
                match &labels[i] {
                    Label::Str(_) => {
                        let mut run = Vec::new();
                        while let Some(Label::Str(s)) = labels.get(i) {
                            run.push((s.clone(), entries[i]));
                            i += 1;
                        }
                        let next = if i < labels.len() {
                            fb.block()
                        } else {
                            default
                        };
                        fb.term(Term::SwitchStr {
                            val,
                            cases: run,
                            default: next,
                        });
                        fb.switch_to(next);
                    }
                    Label::Re(re) => {
                        let m = fb.reg(Ty::Int);
                        fb.emit(Inst::Match {
                            dst: m,
                            a: val,
                            re: *re,
                        });
                        let next = fb.block();
                        fb.term(Term::Branch {
                            cond: m,
                            truth: Truth::NonZero,
                            then: entries[i],
                            otherwise: next,
                        });
                        fb.switch_to(next);
                        i += 1;
                    }
                    _ => i += 1,
                }
            }
            fb.jump(default);
        }
        let _ = span;
        fb.switch_to(end);
    }

    // ------------------------------------------------------------ assignments

    fn lvalue_pv(&mut self, lhs: &LValue) -> Option<u32> {
        let (text, span) = match lhs {
            LValue::Pv(p) => (p.text.clone(), p.span),
            LValue::Avp(a) => (avp_text(&a.text), a.span),
        };
        if vm::program::is_rc_pv(&text) || text.trim() == "$null" {
            self.err(span, format!("pseudo-variable {text} is read-only"));
            return None;
        }
        let id = self.pv(&text, span)?;
        let writable = self
            .module
            .pvs
            .get(id as usize)
            .and_then(|sp| self.pvs.class(sp.class))
            .is_some_and(|c| c.set.is_some());
        if !writable {
            self.err(span, format!("pseudo-variable {text} is read-only"));
        }
        Some(id)
    }

    /// `lhs = rhs`; `ret` receives the statement's return code (1, or -1 on failure).
    fn assign(&mut self, fb: &mut Fb, lhs: &LValue, all: bool, rhs: &ast::Expr, ret: Option<VReg>) {
        let k = self.kexpr(rhs);
        let fail = fb.block();
        let join = fb.block();
        let v = self.assign_value(fb, &k, fail);
        if let Some(pv) = self.lvalue_pv(lhs) {
            fb.emit(Inst::SetPv { pv, src: v, all });
            if let Some(r) = ret {
                fb.emit(Inst::AssignRc { dst: r });
            }
        }
        fb.jump(join);
        fb.switch_to(fail);
        if let Some(r) = ret {
            fb.set_int(r, -1);
        }
        fb.jump(join);
        fb.switch_to(join);
    }

    /// The value an assignment stores: raw return codes for actions, the value otherwise.
    fn assign_value(&mut self, fb: &mut Fb, k: &KExpr, fail: BlockId) -> VReg {
        match &k.kind {
            K::Action(a) => self.action(fb, a, k.span, fail),
            _ => self.eval(fb, k, fail),
        }
    }

    // ------------------------------------------------------------ expressions

    fn kexpr(&mut self, e: &ast::Expr) -> KExpr {
        let mut k = rve::from_ast(e, &mut self.diags);
        if let Err((span, err)) = rve::optimize(&mut k) {
            self.err(span, format!("bad expression: {}", err.0));
        }
        k
    }

    fn pv(&mut self, text: &str, span: Span) -> Option<u32> {
        if let Some(&id) = self.pv_ids.get(text) {
            return Some(id);
        }
        match vm::program::parse_pv(text, self.pvs) {
            Ok(spec) => {
                let id = self.module.pvs.len() as u32;
                self.module.pvs.push(spec);
                self.pv_ids.insert(text.to_string(), id);
                Some(id)
            }
            Err(m) => {
                let m = crate::check::pv_error_hint(&m.to_string(), self.modules);
                self.err(span, format!("invalid pseudo-variable {text}: {m}"));
                None
            }
        }
    }

    fn read_pv(&mut self, fb: &mut Fb, text: &str, span: Span) -> VReg {
        let d = fb.reg(Ty::Any);
        if let Some(value) = self.cfg_pv(fb, text, span) {
            fb.emit(Inst::Const { dst: d, value });
            return d;
        }
        match self.pv(text, span) {
            Some(pv) => fb.emit(Inst::Pv { dst: d, pv }),
            None => fb.emit(Inst::Const {
                dst: d,
                value: Value::Null,
            }),
        }
        d
    }

    /// corex's `$cfg(line|file|name|route)`: where the expression is written, known here
    /// (Kamailio reports the executing action's line, file and routing block name).
    fn cfg_pv(&self, fb: &Fb, text: &str, span: Span) -> Option<Value> {
        let name = text.trim().strip_prefix("$cfg(")?.strip_suffix(')')?.trim();
        // Only with corex loaded (it exports the variable).
        self.pvs.lookup("cfg")?;
        Some(match name {
            "line" => Value::Int(i64::from(self.line_of(span))),
            "file" | "name" => match self.sources {
                Some(sm) => Value::Str(Bytes::from(sm.path(span.file))),
                None => Value::Null,
            },
            "route" => Value::Str(Bytes::from(match (&fb.f.name, fb.f.kind) {
                (Some(n), _) => n.clone(),
                (None, RouteKind::Request) => "DEFAULT_ROUTE".into(),
                (None, RouteKind::CoreOnReply | RouteKind::TmOnReply) => "DEFAULT_ONREPLY".into(),
                (None, RouteKind::Failure) => "DEFAULT_FAILURE".into(),
                (None, RouteKind::Branch) => "DEFAULT_BRANCH".into(),
                (None, RouteKind::OnSend) => "DEFAULT_SEND".into(),
                (None, _) => "DEFAULT_EVENT".into(),
            })),
            _ => return None,
        })
    }

    fn regex(&mut self, pat: &Bytes, icase: bool, span: Span) -> Option<u32> {
        let key = (pat.to_vec(), icase);
        if let Some(&id) = self.re_ids.get(&key) {
            return Some(id);
        }
        match vm::program::posix_regex(pat, icase) {
            Ok(re) => {
                let id = self.module.regexes.len() as u32;
                self.module.regexes.push(RegexEntry {
                    pattern: pat.clone(),
                    icase,
                    re,
                });
                self.re_ids.insert(key, id);
                Some(id)
            }
            Err(e) => {
                self.err(
                    span,
                    format!(
                        "bad regular expression \"{}\": {e}",
                        String::from_utf8_lossy(pat)
                    ),
                );
                None
            }
        }
    }

    fn format(&mut self, text: &str, span: Span) -> Option<u32> {
        if let Some(&id) = self.fmt_ids.get(text) {
            return Some(id);
        }
        match vm::program::parse_format(text, self.pvs) {
            Ok(f) => {
                let id = self.module.formats.len() as u32;
                self.module.formats.push(f);
                self.fmt_ids.insert(text.to_string(), id);
                Some(id)
            }
            Err(m) => {
                let m = crate::check::pv_error_hint(&m.to_string(), self.modules);
                self.err(
                    span,
                    format!("invalid format string \"{}\": {m}", text.escape_debug()),
                );
                None
            }
        }
    }

    /// `rval_expr_eval`: the value (null kept for undefined pseudo-variables).
    fn eval(&mut self, fb: &mut Fb, e: &KExpr, fail: BlockId) -> VReg {
        match &e.kind {
            K::Int(i) => fb.int(*i),
            K::Str(s) => fb.konst(Value::Str(s.clone())),
            K::Null | K::Bad => fb.konst(Value::Null),
            K::Pv(t) => self.read_pv(fb, t, e.span),
            K::Rc => {
                let d = fb.reg(Ty::Int);
                fb.emit(Inst::Rc { dst: d });
                d
            }
            K::Avp(t) => {
                let t = avp_text(t);
                self.read_pv(fb, &t, e.span)
            }
            K::Select(t) => {
                self.err(
                    e.span,
                    format!("select expressions ({t}) are not supported"),
                );
                fb.konst(Value::Null)
            }
            K::Action(a) => {
                let raw = self.action(fb, a, e.span, fail);
                fb.un(UnOp::Truth, raw)
            }
            K::Elem(el) => self.elem(fb, el, e.span),
            K::Un(KOp::StrCast, a) => {
                let v = self.eval(fb, a, fail);
                if fb.f.ty(v) == Ty::Str {
                    v
                } else {
                    fb.un(UnOp::ToStr, v)
                }
            }
            K::Bin(KOp::Plus, a, b) => {
                let l = self.eval(fb, a, fail);
                match fb.f.ty(l) {
                    Ty::Int => {
                        let r = self.eval_int(fb, b, fail);
                        fb.bin(BinOp::IAdd, l, r, Ty::Int)
                    }
                    Ty::Str => {
                        let r = self.eval(fb, b, fail);
                        fb.bin(BinOp::Concat, l, r, Ty::Str)
                    }
                    Ty::Any if simple_operand(b) => {
                        let r = self.eval(fb, b, fail);
                        fb.bin(BinOp::Plus, l, r, Ty::Any)
                    }
                    Ty::Any => {
                        // Kamailio evaluates the right side as an integer when the left one
                        // is an integer at run time, else as a string: two paths.
                        self.by_left_type(fb, l, b, fail, BinOp::IAdd, BinOp::Concat, Ty::Any)
                    }
                }
            }
            K::Bin(KOp::Concat, a, b) => {
                let l = self.eval(fb, a, fail);
                let r = self.eval(fb, b, fail);
                fb.bin(BinOp::Concat, l, r, Ty::Str)
            }
            K::Sel(c, a, b) => {
                let cv = self.eval_int(fb, c, fail);
                let ta = self.static_ty(a);
                let tb = self.static_ty(b);
                let ty = if ta == tb { ta } else { Ty::Any };
                let d = fb.reg(ty);
                let then_bb = fb.block();
                let else_bb = fb.block();
                let join = fb.block();
                fb.term(Term::Branch {
                    cond: cv,
                    truth: Truth::Positive,
                    then: then_bb,
                    otherwise: else_bb,
                });
                for (bb, x) in [(then_bb, a), (else_bb, b)] {
                    fb.switch_to(bb);
                    let v = self.eval(fb, x, fail);
                    let v = match fb.f.ty(v) {
                        Ty::Int | Ty::Str => v,
                        Ty::Any => fb.un(UnOp::NullEmpty, v),
                    };
                    fb.copy(d, v);
                    fb.jump(join);
                }
                fb.switch_to(join);
                d
            }
            _ => self.eval_int(fb, e, fail),
        }
    }

    /// `l op b` where `l`'s type is known only at run time: `int_op` with `b` evaluated as an
    /// integer when `l` is an integer, else `other_op` with `b`'s value.
    #[allow(clippy::too_many_arguments)]
    fn by_left_type(
        &mut self,
        fb: &mut Fb,
        l: VReg,
        b: &KExpr,
        fail: BlockId,
        int_op: BinOp,
        other_op: BinOp,
        ty: Ty,
    ) -> VReg {
        let d = fb.reg(ty);
        let is_int = fb.un(UnOp::IsInt, l);
        let int_bb = fb.block();
        let other_bb = fb.block();
        let join = fb.block();
        fb.term(Term::Branch {
            cond: is_int,
            truth: Truth::NonZero,
            then: int_bb,
            otherwise: other_bb,
        });
        fb.switch_to(int_bb);
        let r = self.eval_int(fb, b, fail);
        let v = fb.bin(int_op, l, r, Ty::Int);
        fb.copy(d, v);
        fb.jump(join);
        fb.switch_to(other_bb);
        let r = self.eval(fb, b, fail);
        let v = fb.bin(other_op, l, r, ty);
        fb.copy(d, v);
        fb.jump(join);
        fb.switch_to(join);
        d
    }

    /// The static type an expression evaluates to (for `selval`).
    fn static_ty(&self, e: &KExpr) -> Ty {
        match e.guess_type() {
            rve::RTy::Int => Ty::Int,
            rve::RTy::Str => Ty::Str,
            rve::RTy::None => Ty::Any,
        }
    }

    /// `rval_expr_eval_int`: an integer.
    fn eval_int(&mut self, fb: &mut Fb, e: &KExpr, fail: BlockId) -> VReg {
        match &e.kind {
            K::Int(i) => fb.int(*i),
            K::Str(s) => fb.int(vm::program::str_to_int(s)),
            K::Null | K::Bad => fb.int(0),
            K::Pv(_) | K::Avp(_) | K::Select(_) | K::Rc | K::Action(_) | K::Elem(_) => {
                let v = self.eval(fb, e, fail);
                fb.as_int(v)
            }
            K::Un(op, a) => match op {
                KOp::UMinus | KOp::LNot | KOp::BNot => {
                    let x = self.eval_int(fb, a, fail);
                    let op = match op {
                        KOp::UMinus => UnOp::Neg,
                        KOp::LNot => UnOp::LNot,
                        _ => UnOp::BitNot,
                    };
                    fb.un(op, x)
                }
                KOp::IntCast => self.eval_int(fb, a, fail),
                KOp::StrCast => {
                    let v = self.eval(fb, a, fail);
                    fb.as_int(v)
                }
                KOp::Strlen | KOp::Strempty => {
                    let v = self.eval(fb, a, fail);
                    fb.un(
                        if *op == KOp::Strlen {
                            UnOp::Strlen
                        } else {
                            UnOp::Strempty
                        },
                        v,
                    )
                }
                KOp::Defined | KOp::NotDefined => {
                    let yes = *op == KOp::Defined;
                    if a.is_rval_leaf() {
                        let v = self.eval(fb, a, fail);
                        fb.un(if yes { UnOp::Defined } else { UnOp::NotDefined }, v)
                    } else {
                        // Anything but a single value is defined (and not evaluated).
                        fb.int(yes as i32)
                    }
                }
                _ => {
                    let v = self.eval(fb, a, fail);
                    fb.as_int(v)
                }
            },
            K::Bin(op, a, b) => match op {
                KOp::LAnd | KOp::LOr => {
                    let d = fb.reg(Ty::Int);
                    let x = self.eval_int(fb, a, fail);
                    let rhs_bb = fb.block();
                    let short_bb = fb.block();
                    let join = fb.block();
                    let and = *op == KOp::LAnd;
                    fb.term(Term::Branch {
                        cond: x,
                        truth: Truth::NonZero,
                        then: if and { rhs_bb } else { short_bb },
                        otherwise: if and { short_bb } else { rhs_bb },
                    });
                    fb.switch_to(short_bb);
                    fb.set_int(d, if and { 0 } else { 1 });
                    fb.jump(join);
                    fb.switch_to(rhs_bb);
                    let y = self.eval_int(fb, b, fail);
                    let yb = fb.un(UnOp::Bool, y);
                    fb.copy(d, yb);
                    fb.jump(join);
                    fb.switch_to(join);
                    d
                }
                KOp::Div | KOp::Mod => {
                    let x = self.eval_int(fb, a, fail);
                    let y = self.eval_int(fb, b, fail);
                    let d = fb.reg(Ty::Int);
                    let ok = fb.block();
                    fb.term(Term::Div {
                        dst: d,
                        a: x,
                        b: y,
                        rem: *op == KOp::Mod,
                        ok,
                        err: fail,
                    });
                    fb.switch_to(ok);
                    d
                }
                KOp::Eq | KOp::Diff => {
                    let l = self.eval(fb, a, fail);
                    let eq = *op == KOp::Eq;
                    match fb.f.ty(l) {
                        Ty::Int => {
                            let r = self.eval_int(fb, b, fail);
                            fb.bin(if eq { BinOp::IEq } else { BinOp::INe }, l, r, Ty::Int)
                        }
                        Ty::Str => {
                            let r = self.eval(fb, b, fail);
                            fb.bin(if eq { BinOp::StrEq } else { BinOp::StrNe }, l, r, Ty::Int)
                        }
                        Ty::Any if simple_operand(b) => {
                            let r = self.eval(fb, b, fail);
                            fb.bin(if eq { BinOp::Eq } else { BinOp::Ne }, l, r, Ty::Int)
                        }
                        Ty::Any => self.by_left_type(
                            fb,
                            l,
                            b,
                            fail,
                            if eq { BinOp::IEq } else { BinOp::INe },
                            if eq { BinOp::Eq } else { BinOp::Ne },
                            Ty::Int,
                        ),
                    }
                }
                KOp::StrEq | KOp::StrDiff => {
                    let l = self.eval(fb, a, fail);
                    let r = self.eval(fb, b, fail);
                    fb.bin(
                        if *op == KOp::StrEq {
                            BinOp::StrEq
                        } else {
                            BinOp::StrNe
                        },
                        l,
                        r,
                        Ty::Int,
                    )
                }
                KOp::Match => {
                    let l = self.eval(fb, a, fail);
                    self.match_op(fb, l, b, true, fail, e.span)
                }
                KOp::Concat => {
                    let v = self.eval(fb, e, fail);
                    fb.as_int(v)
                }
                _ => {
                    let Some(bop) = op.int_binop() else {
                        return fb.int(0);
                    };
                    let x = self.eval_int(fb, a, fail);
                    let y = self.eval_int(fb, b, fail);
                    fb.bin(bop, x, y, Ty::Int)
                }
            },
            K::Sel(..) => {
                // Kamailio cannot evaluate selval in an integer context: the expression fails.
                fb.jump(fail);
                fb.dead();
                fb.int(0)
            }
        }
    }

    /// `l =~ pattern`: precompiled when the pattern is constant.
    fn match_op(
        &mut self,
        fb: &mut Fb,
        l: VReg,
        pat: &KExpr,
        icase: bool,
        fail: BlockId,
        span: Span,
    ) -> VReg {
        let constant = match &pat.kind {
            K::Str(s) => Some(s.clone()),
            K::Int(i) => Some(Bytes::from(i.to_string())),
            _ => None,
        };
        let d = fb.reg(Ty::Int);
        match constant {
            Some(p) => match self.regex(&p, icase, span) {
                Some(re) => fb.emit(Inst::Match { dst: d, a: l, re }),
                None => fb.set_int(d, 0),
            },
            None => {
                let p = self.eval(fb, pat, fail);
                let ok = fb.block();
                fb.term(Term::MatchDyn {
                    dst: d,
                    a: l,
                    pat: p,
                    ok,
                    err: fail,
                });
                fb.switch_to(ok);
            }
        }
        d
    }

    // ------------------------------------------------------------ condition elements

    /// The message field a condition element reads.
    fn field_value(&mut self, fb: &mut Fb, f: MsgField, span: Span) -> VReg {
        let text = match f {
            MsgField::Method => "$rm",
            MsgField::FromUri => "$fu",
            MsgField::ToUri => "$tu",
            MsgField::SrcIp => "$si",
            MsgField::DstIp => "$Ri",
            MsgField::SrcPort => "$sp",
            MsgField::DstPort => "$Rp",
            MsgField::MsgLen => "$ml",
            MsgField::Proto => "$prid",
            MsgField::SndIp => "$sndfrom(ip)",
            MsgField::SndPort => "$sndfrom(port)",
            MsgField::SndProto => "$sndfrom(proto)",
            MsgField::SndAf => "$sndfrom(af)",
            MsgField::ToIp => "$sndto(ip)",
            MsgField::ToPort => "$sndto(port)",
            MsgField::Uri | MsgField::Status => {
                // `uri` and `status` are one token in Kamailio: the first-line URI of a
                // request (the new one when rewritten), the status code of a reply.
                let reply = RouteMask::ONREPLY;
                let request = RouteMask(!RouteMask::ONREPLY.0);
                if fb.kinds.0 != 0 && fb.kinds.0 & reply.0 == 0 {
                    "$ru"
                } else if fb.kinds.0 != 0 && fb.kinds.0 & request.0 == 0 {
                    "$rs"
                } else {
                    let mt = self.read_pv(fb, "$mt", span);
                    let two = fb.int(2);
                    let is_reply = fb.bin(BinOp::IEq, mt, two, Ty::Int);
                    let d = fb.reg(Ty::Any);
                    let rq = fb.block();
                    let rp = fb.block();
                    let join = fb.block();
                    fb.term(Term::Branch {
                        cond: is_reply,
                        truth: Truth::NonZero,
                        then: rp,
                        otherwise: rq,
                    });
                    fb.switch_to(rq);
                    let v = self.read_pv(fb, "$ru", span);
                    fb.copy(d, v);
                    fb.jump(join);
                    fb.switch_to(rp);
                    let v = self.read_pv(fb, "$rs", span);
                    fb.copy(d, v);
                    fb.jump(join);
                    fb.switch_to(join);
                    return d;
                }
            }
            MsgField::Af => {
                // AF_INET (2) or AF_INET6 (10) of the source address.
                let si = self.read_pv(fb, "$si", span);
                let d = fb.reg(Ty::Int);
                match self.regex(&Bytes::from_static(b":"), false, span) {
                    Some(re) => {
                        let is6 = fb.reg(Ty::Int);
                        fb.emit(Inst::Match {
                            dst: is6,
                            a: si,
                            re,
                        });
                        let eight = fb.int(8);
                        let add = fb.bin(BinOp::IMul, is6, eight, Ty::Int);
                        let two = fb.int(2);
                        let v = fb.bin(BinOp::IAdd, add, two, Ty::Int);
                        fb.copy(d, v);
                    }
                    None => fb.set_int(d, 2),
                }
                return d;
            }
            MsgField::UriHost | MsgField::UriPort => {
                self.err(span, "uri:host and uri:port are only valid in forward()");
                return fb.konst(Value::Null);
            }
        };
        self.read_pv(fb, text, span)
    }

    fn myself_call(&mut self, fb: &mut Fb, f: MsgField, span: Span) -> VReg {
        let (module, name) = match f {
            MsgField::Uri | MsgField::Status => ("native", "is_myself_ruri_port"),
            MsgField::FromUri => ("native", "is_myself_furi_port"),
            MsgField::ToUri => ("native", "is_myself_turi_port"),
            MsgField::SrcIp => ("", "is_myself_srcip"),
            MsgField::DstIp => ("native", "is_myself_dstip"),
            _ => {
                self.err(span, "this field cannot be compared with myself");
                return fb.int(0);
            }
        };
        let export = if module == "native" {
            self.table.native(name, 0).map(|a| a.export)
        } else {
            self.table.kemi(module, name)
        };
        let Some(export) = export else {
            self.err(
                span,
                format!("myself checks need the core export {name}, which is not registered"),
            );
            return fb.int(0);
        };
        let native = if module == "native" { name } else { "" };
        let Some(import) = self.import(export, native, 0) else {
            return fb.int(0);
        };
        let d = fb.reg(Ty::Int);
        fb.emit(Inst::Call {
            dst: d,
            import,
            args: Vec::new(),
            conv: Vec::new(),
            kind: CallKind::Builtin,
        });
        d
    }

    fn elem(&mut self, fb: &mut Fb, el: &Elem, span: Span) -> VReg {
        let d = fb.reg(Ty::Int);
        let join = fb.block();
        // A right side that fails to evaluate makes the element false (`!=`: true).
        let rfail = fb.block();
        let ne = el.op == ElemOp::Ne;
        let group = match el.field {
            MsgField::Method
            | MsgField::Uri
            | MsgField::Status
            | MsgField::FromUri
            | MsgField::ToUri => 0,
            MsgField::SrcIp | MsgField::DstIp | MsgField::SndIp | MsgField::ToIp => 3,
            MsgField::Proto | MsgField::SndProto => 2,
            _ => 1,
        };
        let v = match (&el.rhs, group) {
            (ElemRhs::Myself, _) => {
                let r = self.myself_call(fb, el.field, span);
                let t = fb.un(UnOp::Truth, r);
                if ne { fb.un(UnOp::LNot, t) } else { t }
            }
            (ElemRhs::Expr(k), 0) => {
                let l = self.field_value(fb, el.field, span);
                if el.op == ElemOp::Match {
                    let m = self.match_op(fb, l, k, true, rfail, span);
                    fb.un(UnOp::Bool, m)
                } else {
                    let r = self.eval(fb, k, rfail);
                    fb.bin(
                        if ne { BinOp::CaseNe } else { BinOp::CaseEq },
                        l,
                        r,
                        Ty::Int,
                    )
                }
            }
            (ElemRhs::Expr(k), 1) | (ElemRhs::Expr(k), 2) => {
                let l = self.field_value(fb, el.field, span);
                let l = fb.as_int(l);
                let r = self.eval_int(fb, k, rfail);
                let op = match el.op {
                    ElemOp::Eq => BinOp::IEq,
                    ElemOp::Ne => BinOp::INe,
                    ElemOp::Gt => BinOp::IGt,
                    ElemOp::Lt => BinOp::ILt,
                    ElemOp::Ge => BinOp::IGe,
                    ElemOp::Le => BinOp::ILe,
                    ElemOp::Match => BinOp::IEq,
                };
                fb.bin(op, l, r, Ty::Int)
            }
            (ElemRhs::Proto(n), _) => {
                let l = self.field_value(fb, el.field, span);
                let l = fb.as_int(l);
                let r = fb.int(*n);
                fb.bin(if ne { BinOp::INe } else { BinOp::IEq }, l, r, Ty::Int)
            }
            (ElemRhs::Net(n), _) => {
                let l = self.field_value(fb, el.field, span);
                let idx = self.module.nets.len() as u32;
                self.module.nets.push(IpNet {
                    addr: n.addr,
                    prefix: n.prefix.unwrap_or(if n.addr.is_ipv4() { 32 } else { 128 }),
                });
                let m = fb.reg(Ty::Int);
                fb.emit(Inst::IpMatch {
                    dst: m,
                    a: l,
                    net: idx,
                });
                if ne { fb.un(UnOp::LNot, m) } else { m }
            }
            (ElemRhs::Expr(k), _) => {
                let l = self.field_value(fb, el.field, span);
                let r = self.eval(fb, k, rfail);
                let m = fb.bin(BinOp::IpIn, l, r, Ty::Int);
                if ne { fb.un(UnOp::LNot, m) } else { m }
            }
            (ElemRhs::Host(h), _) => {
                self.err(
                    span,
                    format!(
                        "comparing an address with host name '{h}' needs DNS at run time, which ksr does not do; use an address"
                    ),
                );
                fb.int(0)
            }
        };
        fb.copy(d, v);
        fb.jump(join);
        fb.switch_to(rfail);
        fb.set_int(d, ne as i32);
        fb.jump(join);
        fb.switch_to(join);
        d
    }

    // ------------------------------------------------------------ actions and calls

    /// An action used as a value: its raw return code.
    fn action(&mut self, fb: &mut Fb, a: &Action, span: Span, fail: BlockId) -> VReg {
        let _ = fail;
        match a {
            Action::Call(c) => {
                let after = fb.block();
                let d = self.call(fb, c, true, after);
                fb.jump(after);
                fb.switch_to(after);
                d
            }
            Action::Block(b) => {
                let v = fb.reg(Ty::Int);
                let saved = fb.ret;
                fb.ret = v;
                fb.set_int(v, 1);
                let end = fb.block();
                fb.values.push((v, end));
                fb.breaks.push((end, true));
                let list = filtered(&b.stmts);
                let saved_nest = fb.nest;
                fb.nest = fb.nest.saturating_add(1);
                self.stmts(fb, &list, true);
                fb.nest = saved_nest;
                fb.breaks.pop();
                fb.values.pop();
                fb.jump(end);
                fb.switch_to(end);
                fb.ret = saved;
                v
            }
            Action::Assign(lhs, rhs) => {
                let v = fb.reg(Ty::Int);
                fb.set_int(v, 1);
                self.assign(fb, lhs, false, rhs, Some(v));
                let _ = span;
                v
            }
        }
    }

    fn import(&mut self, export: u32, native: &str, arity: u8) -> Option<u32> {
        let key = (export, native.to_string(), arity);
        if let Some(&i) = self.import_ids.get(&key) {
            return Some(i);
        }
        let e = self.table.get(export)?;
        let id = self.module.imports.len() as u32;
        self.module.imports.push(Import {
            native: native.to_string(),
            arity,
            sig: e.sig.clone(),
            export,
        });
        self.import_ids.insert(key, id);
        Some(id)
    }

    /// A function call (or `route(...)`): its raw return code. `after` is where a call
    /// whose arguments fail to evaluate continues (with -1).
    fn call(&mut self, fb: &mut Fb, c: &ast::Call, in_expr: bool, after: BlockId) -> VReg {
        let name = c.name.name.as_str();
        if name == "route" {
            return self.route_call(fb, c, in_expr, after);
        }
        let argc = c.args.len();
        let Some(alias) = u8::try_from(argc)
            .ok()
            .and_then(|n| self.table.native(name, n))
            .cloned()
        else {
            let arities = self.table.native_arities(name);
            let msg = if arities.is_empty() {
                crate::check::unknown_function(name, self.modules)
            } else {
                format!(
                    "function '{name}' takes {} parameter(s), not {argc}",
                    arities
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            };
            self.err(c.span, msg);
            return fb.int(-1);
        };
        let Some(export) = self.table.get(alias.export) else {
            return fb.int(-1);
        };
        let sig = export.sig.clone();
        let kind = if sig.owner == "core" {
            CallKind::Core
        } else {
            CallKind::Module
        };
        let Some(import) = self.import(alias.export, name, argc as u8) else {
            return fb.int(-1);
        };
        let d = fb.reg(Ty::Int);
        // Arguments that fail to evaluate: the function is not called, result -1.
        let argfail = fb.block();
        let mut args = Vec::with_capacity(argc);
        let mut conv = Vec::with_capacity(argc);
        for (i, a) in c.args.iter().enumerate() {
            let pt = sig.params.get(i).copied().unwrap_or(ParamType::Str);
            let hint = sig.hints.get(i).copied().unwrap_or(ParamHint::Plain);
            let (r, cv) = self.arg(fb, a, pt, hint, i, name, argfail);
            args.push(r);
            conv.push(cv);
        }
        fb.emit(Inst::Call {
            dst: d,
            import,
            args,
            conv,
            kind,
        });
        fb.jump(after);
        fb.switch_to(argfail);
        fb.set_int(d, -1);
        fb.jump(after);
        fb.dead();
        d
    }

    /// One function argument converted to the parameter's type: constants at compile
    /// time, format strings parsed once, anything else converted right before the call.
    #[allow(clippy::too_many_arguments)]
    fn arg(
        &mut self,
        fb: &mut Fb,
        a: &ast::Expr,
        pt: ParamType,
        hint: ParamHint,
        i: usize,
        fname: &str,
        fail: BlockId,
    ) -> (VReg, ArgConv) {
        let int_of = |lw: &mut Self, text: &str, span: Span| -> Option<i64> {
            match vm::program::parse_int_strict(text.trim().as_bytes()) {
                Some(n) if !text.trim().is_empty() => Some(n as i64),
                _ => {
                    lw.err(
                        span,
                        format!(
                            "parameter {} of '{fname}' must be an integer, not \"{text}\"",
                            i + 1
                        ),
                    );
                    None
                }
            }
        };
        let konst_for = |fb: &mut Fb, v: Value| -> (VReg, ArgConv) { (fb.konst(v), ArgConv::None) };
        match &a.kind {
            ExprKind::Str(s) => {
                let text = String::from_utf8_lossy(s).into_owned();
                // Pseudo-variable names, regexes and substitutions are passed as written.
                if matches!(
                    hint,
                    ParamHint::PvName | ParamHint::PvList | ParamHint::Subst
                ) {
                    return konst_for(fb, Value::Str(s.clone()));
                }
                if matches!(hint, ParamHint::Regex) && pt == ParamType::Str {
                    // Checked here; the module compiles it with its own flags.
                    if let Err(e) = vm::program::posix_regex(s, true) {
                        self.err(a.span, format!("bad regular expression \"{text}\": {e}"));
                    }
                    return konst_for(fb, Value::Str(s.clone()));
                }
                // Kamailio's older fixups: a leading pseudo-variable is the whole value.
                let text = match hint {
                    ParamHint::LeadingPv | ParamHint::PvOrLiteral => {
                        let lead = text.trim_start();
                        match lead
                            .starts_with('$')
                            .then(|| vm::pv::parse_spec_prefix(lead, self.pvs).ok())
                            .flatten()
                        {
                            Some((_, n)) => lead.get(..n).unwrap_or(lead).to_string(),
                            None if hint == ParamHint::PvOrLiteral => {
                                return konst_for(fb, Value::Str(s.clone()));
                            }
                            None => text,
                        }
                    }
                    _ => text,
                };
                if vm::program::has_pv(&text) {
                    let Some(f) = self.format(&text, a.span) else {
                        return konst_for(fb, Value::Null);
                    };
                    let lit = self
                        .module
                        .formats
                        .get(f as usize)
                        .and_then(FormatEntry::as_literal);
                    if let Some(lit) = lit {
                        let lt = String::from_utf8_lossy(&lit).into_owned();
                        return match pt {
                            ParamType::Int => match int_of(self, &lt, a.span) {
                                Some(n) => konst_for(fb, Value::Int(n)),
                                None => konst_for(fb, Value::Int(0)),
                            },
                            ParamType::Str => konst_for(fb, Value::Str(lit)),
                        };
                    }
                    let d = fb.reg(Ty::Str);
                    fb.emit(Inst::Fmt { dst: d, fmt: f });
                    return (
                        d,
                        if pt == ParamType::Int {
                            ArgConv::Int
                        } else {
                            ArgConv::None
                        },
                    );
                }
                match pt {
                    ParamType::Int => {
                        if matches!(hint, ParamHint::Flag | ParamHint::BranchFlag)
                            && let Some(&f) = self.flags.get(text.trim())
                        {
                            return konst_for(fb, Value::Int(f));
                        }
                        match int_of(self, &text, a.span) {
                            Some(n) => konst_for(fb, Value::Int(n)),
                            None => konst_for(fb, Value::Int(0)),
                        }
                    }
                    ParamType::Str => konst_for(fb, Value::Str(s.clone())),
                }
            }
            ExprKind::Int(n) => match pt {
                ParamType::Int => konst_for(fb, Value::Int(*n as i32 as i64)),
                ParamType::Str => konst_for(fb, Value::from((*n as i32).to_string())),
            },
            ExprKind::Ident(n) => {
                if let Some(&f) = self.flags.get(n)
                    && matches!(hint, ParamHint::Flag | ParamHint::BranchFlag)
                {
                    return match pt {
                        ParamType::Int => konst_for(fb, Value::Int(f)),
                        ParamType::Str => konst_for(fb, Value::from(f.to_string())),
                    };
                }
                match pt {
                    ParamType::Int => match rve::ident_number(n) {
                        Some(v) => konst_for(fb, Value::Int(v as i64)),
                        None => match int_of(self, n, a.span) {
                            Some(v) => konst_for(fb, Value::Int(v)),
                            None => konst_for(fb, Value::Int(0)),
                        },
                    },
                    ParamType::Str => konst_for(fb, Value::from(n.as_str())),
                }
            }
            ExprKind::Host(n) | ExprKind::Proto(n) => match pt {
                ParamType::Int => match int_of(self, n, a.span) {
                    Some(v) => konst_for(fb, Value::Int(v)),
                    None => konst_for(fb, Value::Int(0)),
                },
                ParamType::Str => konst_for(fb, Value::from(n.as_str())),
            },
            ExprKind::Ip(net) => {
                let text = match net.prefix {
                    Some(p) => format!("{}/{p}", net.addr),
                    None => match net.addr {
                        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                        v4 => v4.to_string(),
                    },
                };
                konst_for(fb, Value::from(text))
            }
            ExprKind::Field(f @ (MsgField::UriHost | MsgField::UriPort)) => {
                // forward(uri:host, uri:port): the R-URI's host and port.
                let text = if *f == MsgField::UriHost {
                    "$rd"
                } else {
                    "$rp"
                };
                let v = self.read_pv(fb, text, a.span);
                (
                    v,
                    if pt == ParamType::Int {
                        ArgConv::Int
                    } else {
                        ArgConv::Str
                    },
                )
            }
            _ => {
                let k = self.kexpr(a);
                let v = self.eval(fb, &k, fail);
                let ty = fb.f.ty(v);
                let cv = match (pt, ty) {
                    (ParamType::Int, Ty::Int) | (ParamType::Str, Ty::Str) => ArgConv::None,
                    (ParamType::Int, _) => ArgConv::Int,
                    (ParamType::Str, _) => ArgConv::Str,
                };
                (v, cv)
            }
        }
    }

    fn route_call(&mut self, fb: &mut Fb, c: &ast::Call, in_expr: bool, after: BlockId) -> VReg {
        let d = fb.reg(Ty::Int);
        let Some(arg) = c.args.first().filter(|_| c.args.len() == 1) else {
            self.err(c.span, "route(...) takes one route name");
            fb.set_int(d, -1);
            return d;
        };
        let nest = fb.nest;
        match static_route_name(arg) {
            Some(name) => match self.graph.subs.get(&name) {
                Some(&func) => fb.emit(Inst::Route {
                    dst: d,
                    func: func as u32,
                    nest,
                    in_expr,
                }),
                None => {
                    self.err(c.span, format!("route[{name}] is not defined"));
                    fb.set_int(d, -1);
                }
            },
            None => {
                let k = self.kexpr(arg);
                let fail = fb.block();
                let name = self.eval(fb, &k, fail);
                fb.emit(Inst::RouteDyn {
                    dst: d,
                    name,
                    nest,
                    in_expr,
                });
                fb.jump(after);
                fb.switch_to(fail);
                fb.set_int(d, -1);
                fb.jump(after);
                fb.dead();
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avp_attribute_syntax() {
        assert_eq!(avp_text("$foo"), "$avp(foo)");
        assert_eq!(avp_text("%foo"), "$avp(foo)");
        assert_eq!(avp_text("$f.foo"), "$avp(foo)");
        assert_eq!(avp_text("$avp(s:x)"), "$avp(s:x)");
    }
}
