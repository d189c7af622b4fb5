//! Lowering the checked syntax tree to register bytecode ([`vm::program::Program`]).
//!
//! Function calls are resolved against the KSR table by native name and arity; string
//! arguments holding pseudo-variables are compiled to format strings once; pseudo-variable
//! reads and writes become pre-parsed descriptors; regexes with constant patterns are
//! compiled here. Every problem found is reported as a diagnostic with its span.

use crate::ast::{
    self, BinaryOp, Block, BlockKind, Call, CaseLabel, Expr, ExprKind, ItemKind, LValue, MsgField,
    Stmt, StmtKind, UnaryOp,
};
use crate::diag::Diagnostic;
use std::collections::HashMap;
use vm::ksr::KsrTable;
use vm::program::{BinOp, CallSite, IpNet, Op, Program, Reg, RouteInfo, UnOp};
use vm::pv::PvRegistry;
use vm::{RouteKind, Value};

/// The route kind a block declares.
pub fn route_kind(block: &ast::RouteBlock) -> RouteKind {
    match block.kind {
        BlockKind::Request => RouteKind::Request,
        BlockKind::Failure => RouteKind::Failure,
        BlockKind::OnReply if block.name.is_some() => RouteKind::TmOnReply,
        BlockKind::OnReply => RouteKind::CoreOnReply,
        BlockKind::Branch => RouteKind::Branch,
        BlockKind::OnSend => RouteKind::OnSend,
        BlockKind::Event => RouteKind::Event,
    }
}

/// The name a block is found by (`None` for the main unnamed blocks).
fn block_name(block: &ast::RouteBlock) -> Option<String> {
    let n = block.name.as_ref()?.name.trim_matches('"').to_string();
    if block.kind == BlockKind::Request && (n == "0" || n == "main" || n == "DEFAULT") {
        return None;
    }
    Some(n)
}

/// Compiles every routing block of `config`.
pub fn compile<C>(
    config: &ast::Config,
    table: &KsrTable<C>,
    pvs: &PvRegistry<C>,
) -> Result<Program, Vec<Diagnostic>> {
    let mut lw = Lowerer {
        table,
        pvs,
        prog: Program::default(),
        diags: Vec::new(),
        route_ids: HashMap::new(),
        flags: HashMap::new(),
        next: 0,
        base: 0,
        max: 0,
        breaks: Vec::new(),
        consts: HashMap::new(),
        block_kind: None,
    };
    // Named flags (`flags FLAG_A : 1, FLAG_B;`) and the route table first, so calls can be
    // resolved in any order.
    for item in &config.items {
        if let ItemKind::Flags { flags } = &item.kind {
            let mut next = 0i64;
            for (id, v) in flags {
                let n = v.unwrap_or(next);
                lw.flags.insert(id.name.clone(), n);
                next = n + 1;
            }
        }
    }
    let blocks: Vec<&ast::RouteBlock> = config
        .items
        .iter()
        .filter_map(|i| match &i.kind {
            ItemKind::Route(b) => Some(b),
            _ => None,
        })
        .collect();
    for b in &blocks {
        let kind = route_kind(b);
        let name = block_name(b);
        let key = (kind_key(kind), name.clone());
        if lw.route_ids.contains_key(&key) {
            lw.diags.push(Diagnostic::error(
                b.span,
                format!(
                    "duplicate {}{}",
                    kind.keyword(),
                    name.as_deref()
                        .map(|n| format!("[{n}]"))
                        .unwrap_or_default()
                ),
            ));
            continue;
        }
        let id = lw.prog.routes.len() as u32;
        lw.route_ids.insert(key, id);
        lw.prog.routes.push(RouteInfo {
            kind,
            name,
            entry: 0,
            regs: 0,
        });
    }
    for b in &blocks {
        let key = (kind_key(route_kind(b)), block_name(b));
        let Some(&id) = lw.route_ids.get(&key) else {
            continue;
        };
        if lw
            .prog
            .routes
            .get(id as usize)
            .is_some_and(|r| r.entry != 0)
        {
            continue;
        }
        lw.block_kind = match (route_kind(b), block_name(b)) {
            (RouteKind::Request, Some(_)) => None,
            (k, _) => Some(k),
        };
        lw.route_body(id, &b.body);
    }
    if lw.diags.iter().any(|d| d.is_error()) {
        Err(lw.diags)
    } else {
        Ok(lw.prog)
    }
}

/// Sub-routes (`route[X]`) are all of kind Request in the table; other kinds keep theirs.
fn kind_key(k: RouteKind) -> u8 {
    match k {
        RouteKind::Request => 0,
        RouteKind::Failure => 1,
        RouteKind::TmOnReply => 2,
        RouteKind::Branch => 3,
        RouteKind::OnSend => 4,
        RouteKind::CoreOnReply => 5,
        RouteKind::BranchFailure => 6,
        RouteKind::Event => 7,
    }
}

struct Lowerer<'a, C> {
    table: &'a KsrTable<C>,
    pvs: &'a PvRegistry<C>,
    prog: Program,
    diags: Vec<Diagnostic>,
    route_ids: HashMap<(u8, Option<String>), u32>,
    flags: HashMap<String, i64>,
    next: Reg,
    base: Reg,
    max: Reg,
    /// Jump instructions to patch with the end of the enclosing switch/while.
    breaks: Vec<Vec<usize>>,
    consts: HashMap<ConstKey, u32>,
    /// Kind of the block being lowered; `None` inside sub-routes (`route[X]`), which run in
    /// the kind of whoever calls them.
    block_kind: Option<RouteKind>,
}

#[derive(Hash, PartialEq, Eq)]
enum ConstKey {
    Int(i64),
    Str(Vec<u8>),
    Null,
}

impl<C> Lowerer<'_, C> {
    fn emit(&mut self, op: Op) -> usize {
        self.prog.code.push(op);
        self.prog.lines.push(0);
        self.prog.code.len() - 1
    }

    fn here(&self) -> u32 {
        self.prog.code.len() as u32
    }

    fn patch(&mut self, at: usize, to: u32) {
        match self.prog.code.get_mut(at) {
            Some(Op::Jmp { to: t })
            | Some(Op::JmpFalse { to: t, .. })
            | Some(Op::JmpTrue { to: t, .. })
            | Some(Op::LoopGuard { to: t, .. }) => *t = to,
            _ => {}
        }
    }

    fn reg(&mut self) -> Reg {
        let r = self.next;
        self.next = self.next.saturating_add(1);
        self.max = self.max.max(self.next);
        r
    }

    fn err(&mut self, span: ast::Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, msg));
    }

    fn konst(&mut self, v: Value) -> u32 {
        let key = match &v {
            Value::Int(i) => ConstKey::Int(*i),
            Value::Str(s) => ConstKey::Str(s.to_vec()),
            Value::Null => ConstKey::Null,
        };
        if let Some(&k) = self.consts.get(&key) {
            return k;
        }
        let k = self.prog.consts.len() as u32;
        self.prog.consts.push(v);
        self.consts.insert(key, k);
        k
    }

    fn load_const(&mut self, v: Value) -> Reg {
        let d = self.reg();
        let k = self.konst(v);
        self.emit(Op::Const { d, k });
        d
    }

    fn route_body(&mut self, id: u32, body: &Block) {
        self.next = 0;
        self.base = 0;
        self.max = 0;
        let entry = self.here();
        self.block(body);
        let d = self.reg();
        let k = self.konst(Value::Int(1));
        self.emit(Op::Const { d, k });
        self.emit(Op::Return { s: d });
        if let Some(r) = self.prog.routes.get_mut(id as usize) {
            r.entry = entry;
            r.regs = self.max.max(1);
        }
    }

    fn block(&mut self, b: &Block) {
        for s in &b.stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        self.next = self.base;
        self.emit(Op::Begin);
        match &s.kind {
            StmtKind::Call(c) => {
                self.call(c);
            }
            StmtKind::Expr(e) => {
                self.expr(e);
            }
            StmtKind::Block(b) => self.block(b),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } if const_eval(cond).is_some() => {
                // Constant condition: only the branch that can run is compiled.
                if const_eval(cond).is_some_and(|v| vm::interp::truth(&v)) {
                    self.stmt(then);
                } else if let Some(o) = otherwise {
                    self.stmt(o);
                }
            }
            StmtKind::While { cond, .. }
                if const_eval(cond).is_some_and(|v| !vm::interp::truth(&v)) => {}
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.cond(cond);
                let jf = self.emit(Op::JmpFalse { c, to: 0 });
                self.stmt(then);
                match otherwise {
                    Some(o) => {
                        let je = self.emit(Op::Jmp { to: 0 });
                        let h = self.here();
                        self.patch(jf, h);
                        self.stmt(o);
                        let h = self.here();
                        self.patch(je, h);
                    }
                    None => {
                        let h = self.here();
                        self.patch(jf, h);
                    }
                }
            }
            StmtKind::While { cond, body } => {
                // The iteration counter lives for the whole loop.
                let counter = self.base;
                self.base += 1;
                self.max = self.max.max(self.base);
                let zero = self.konst(Value::Int(0));
                self.emit(Op::Const {
                    d: counter,
                    k: zero,
                });
                let top = self.here();
                self.next = self.base;
                self.emit(Op::Begin);
                let c = self.cond(cond);
                let jf = self.emit(Op::JmpFalse { c, to: 0 });
                let guard = self.emit(Op::LoopGuard { counter, to: 0 });
                self.breaks.push(Vec::new());
                self.stmt(body);
                self.emit(Op::Jmp { to: top });
                let end = self.here();
                self.patch(jf, end);
                self.patch(guard, end);
                for b in self.breaks.pop().unwrap_or_default() {
                    self.patch(b, end);
                }
                self.base -= 1;
            }
            StmtKind::Switch {
                scrutinee, cases, ..
            } => self.switch(scrutinee, cases),
            StmtKind::Assign { lhs, op, rhs } => {
                let v = self.expr(rhs);
                let span = match lhs {
                    LValue::Pv(p) => p.span,
                    LValue::Avp(a) => a.span,
                };
                self.assign(lhs, *op, v, span);
            }
            StmtKind::Return(e) => {
                let s = match e {
                    Some(e) => self.expr(e),
                    None => self.load_const(Value::Int(1)),
                };
                self.emit(Op::Return { s });
            }
            StmtKind::Exit(_) => {
                self.emit(Op::Exit);
            }
            StmtKind::Drop(_) => {
                self.emit(Op::Drop);
            }
            StmtKind::Break => match self.breaks.last_mut() {
                Some(_) => {
                    let j = self.emit(Op::Jmp { to: 0 });
                    if let Some(v) = self.breaks.last_mut() {
                        v.push(j);
                    }
                }
                None => {
                    // Outside switch/while Kamailio's `break` ends the current block like
                    // `return 1`.
                    let s = self.load_const(Value::Int(1));
                    self.emit(Op::Return { s });
                }
            },
            StmtKind::Empty => {}
        }
    }

    fn switch(&mut self, scrutinee: &Expr, cases: &[ast::Case]) {
        // The scrutinee stays alive across the case bodies.
        let v = self.expr(scrutinee);
        let keep = self.base;
        self.base = self.base.max(v + 1);
        let mut jumps = Vec::new();
        for case in cases {
            match &case.label {
                Some(CaseLabel::Value(e)) => {
                    self.next = self.base;
                    let r = self.expr(e);
                    let d = self.reg();
                    self.emit(Op::Bin {
                        op: BinOp::Eq,
                        d,
                        a: v,
                        b: r,
                    });
                    jumps.push(Some(self.emit(Op::JmpTrue { c: d, to: 0 })));
                }
                Some(CaseLabel::Regex(e)) => {
                    self.next = self.base;
                    let d = self.reg();
                    self.regex_match(d, v, e);
                    jumps.push(Some(self.emit(Op::JmpTrue { c: d, to: 0 })));
                }
                None => jumps.push(None),
            }
        }
        let to_default = self.emit(Op::Jmp { to: 0 });
        self.breaks.push(Vec::new());
        let mut default_at = None;
        for (case, j) in cases.iter().zip(jumps) {
            let h = self.here();
            match j {
                Some(j) => self.patch(j, h),
                None => default_at = Some(h),
            }
            if let Some(body) = &case.body {
                for s in body {
                    self.stmt(s);
                }
            }
        }
        let end = self.here();
        self.patch(to_default, default_at.unwrap_or(end));
        for b in self.breaks.pop().unwrap_or_default() {
            self.patch(b, end);
        }
        self.base = keep;
    }

    fn assign(&mut self, lhs: &LValue, op: ast::AssignOp, s: Reg, span: ast::Span) {
        let text = match lhs {
            LValue::Pv(p) => p.text.clone(),
            LValue::Avp(a) => avp_text(&a.text),
        };
        let Some(pv) = self.pv(&text, span) else {
            return;
        };
        let is_avp = self
            .prog
            .pvs
            .get(pv as usize)
            .and_then(|sp| self.pvs.class(sp.class))
            .is_some_and(|c| c.name == "avp");
        if self
            .prog
            .pvs
            .get(pv as usize)
            .and_then(|sp| self.pvs.class(sp.class))
            .is_some_and(|c| c.set.is_none())
        {
            self.err(span, format!("pseudo-variable {text} is read-only"));
        }
        let mode = match (is_avp, op) {
            (false, _) => 0,
            // Oracle: `$avp(a) = 1; $avp(a) = 2;` keeps both values (2, then 1).
            (true, ast::AssignOp::Set) => 0,
            (true, ast::AssignOp::SetAll) => 2,
        };
        self.emit(Op::SetPv { pv, s, mode });
    }

    fn pv(&mut self, text: &str, span: ast::Span) -> Option<u32> {
        match vm::pv::parse_spec(text, self.pvs) {
            Ok(spec) => {
                let i = self.prog.pvs.len() as u32;
                self.prog.pvs.push(spec);
                Some(i)
            }
            Err(e) => {
                self.err(
                    span,
                    format!("invalid pseudo-variable {text}: {}", e.message),
                );
                None
            }
        }
    }

    /// A condition: the value whose truth decides.
    fn cond(&mut self, e: &Expr) -> Reg {
        self.expr(e)
    }

    fn call(&mut self, c: &Call) -> Reg {
        let name = c.name.name.as_str();
        if name == "route" {
            let d = self.reg();
            let target = c.args.first().and_then(|a| match &a.kind {
                ExprKind::Ident(s) | ExprKind::Host(s) => Some(s.clone()),
                ExprKind::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
                _ => None,
            });
            let id = target
                .as_ref()
                .and_then(|t| self.route_ids.get(&(0, Some(t.clone()))).copied());
            match (id, target) {
                (Some(id), _) => {
                    self.emit(Op::Route { d, route: id });
                }
                (None, Some(t)) => self.err(c.span, format!("route[{t}] is not defined")),
                (None, None) => match c.args.first() {
                    Some(a) if c.args.len() == 1 => {
                        let name = self.expr(a);
                        self.emit(Op::RouteDyn { d, name });
                    }
                    _ => self.err(c.span, "route(...) needs a route name"),
                },
            }
            return d;
        }
        let argc = c.args.len();
        let Some(alias) = u8::try_from(argc)
            .ok()
            .and_then(|n| self.table.native(name, n))
        else {
            let arities = self.table.native_arities(name);
            let msg = if arities.is_empty() {
                format!("unknown function '{name}' (not exported by any loaded module)")
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
            return self.reg();
        };
        let export = alias.export;
        if let Some(kind) = self.block_kind
            && !alias.routes.allows(kind)
        {
            self.err(
                c.span,
                format!("function '{name}' cannot be used in {}", kind.keyword()),
            );
        }
        let (hints, ptypes) = self
            .table
            .get(export)
            .map(|e| (e.sig.hints.clone(), e.sig.params.clone()))
            .unwrap_or_default();
        // Arguments go to consecutive registers.
        let first = self.next;
        let mut regs = Vec::with_capacity(argc);
        for _ in 0..argc {
            regs.push(self.reg());
        }
        for (i, a) in c.args.iter().enumerate() {
            let Some(&slot) = regs.get(i) else { continue };
            // Constant arguments are converted to the parameter type once, here, and
            // loaded straight into their slot.
            // Regexes and substitutions are passed as written (their `$` is an anchor).
            let literal = matches!(
                hints.get(i),
                Some(vm::ParamHint::Regex | vm::ParamHint::Subst)
            );
            if let ExprKind::Str(text) = &a.kind
                && (literal || !vm::pv::has_pv(&String::from_utf8_lossy(text)))
                && !matches!(hints.get(i), Some(vm::ParamHint::PvName))
            {
                if matches!(hints.get(i), Some(vm::ParamHint::Subst))
                    && let Err(e) =
                        vm::transform::parse_subst_expr(&String::from_utf8_lossy(text), None)
                {
                    self.err(a.span, format!("invalid substitution: {e}"));
                }
                let v = match ptypes.get(i) {
                    Some(vm::ParamType::Int) => {
                        match std::str::from_utf8(text)
                            .ok()
                            .and_then(|t| t.trim().parse::<i64>().ok())
                        {
                            Some(n) => Value::Int(n),
                            None => {
                                self.err(
                                    a.span,
                                    format!("parameter {} of '{name}' must be an integer", i + 1),
                                );
                                continue;
                            }
                        }
                    }
                    _ => Value::Str(text.clone()),
                };
                if matches!(hints.get(i), Some(vm::ParamHint::Regex))
                    && regex::Regex::new(&String::from_utf8_lossy(text)).is_err()
                {
                    self.err(
                        a.span,
                        format!(
                            "invalid regular expression '{}'",
                            String::from_utf8_lossy(text)
                        ),
                    );
                }
                let k = self.konst(v);
                self.emit(Op::Const { d: slot, k });
                continue;
            }
            if let ExprKind::Int(n) = &a.kind {
                let v = match ptypes.get(i) {
                    Some(vm::ParamType::Str) => Value::Str(bytes::Bytes::from(n.to_string())),
                    _ => Value::Int(*n),
                };
                let k = self.konst(v);
                self.emit(Op::Const { d: slot, k });
                continue;
            }
            let r = self.arg(a, hints.get(i).copied());
            self.emit(Op::Move { d: slot, s: r });
        }
        let site = self.prog.calls.len() as u32;
        self.prog.calls.push(CallSite {
            export,
            args: first,
            argc: argc as u8,
        });
        let d = self.reg();
        self.emit(Op::Call { d, site });
        d
    }

    /// A function argument: strings are format strings, names are their text.
    fn arg(&mut self, a: &Expr, hint: Option<vm::ParamHint>) -> Reg {
        match &a.kind {
            ExprKind::Str(s) if matches!(hint, Some(vm::ParamHint::PvName)) => {
                let text = String::from_utf8_lossy(s).into_owned();
                if let Err(e) = vm::pv::parse_spec(&text, self.pvs) {
                    self.err(
                        a.span,
                        format!("invalid pseudo-variable {text}: {}", e.message),
                    );
                }
                self.load_const(Value::Str(s.clone()))
            }
            ExprKind::Str(s) => {
                let text = String::from_utf8_lossy(s).into_owned();
                if vm::pv::has_pv(&text) {
                    match vm::pv::parse_format(&text, self.pvs) {
                        Ok(f) => {
                            if let Some(lit) = f.as_literal() {
                                return self.load_const(Value::Str(lit));
                            }
                            let d = self.reg();
                            let fi = self.prog.formats.len() as u32;
                            self.prog.formats.push(f);
                            self.emit(Op::Fmt { d, f: fi });
                            d
                        }
                        Err(e) => {
                            self.err(a.span, format!("invalid format string: {}", e.message));
                            self.reg()
                        }
                    }
                } else {
                    if matches!(hint, Some(vm::ParamHint::Regex))
                        && regex::Regex::new(&text).is_err()
                    {
                        self.err(a.span, format!("invalid regular expression '{text}'"));
                    }
                    self.load_const(Value::Str(s.clone()))
                }
            }
            ExprKind::Ident(n) => match self.flags.get(n) {
                Some(f)
                    if matches!(hint, Some(vm::ParamHint::Flag | vm::ParamHint::BranchFlag)) =>
                {
                    self.load_const(Value::Int(*f))
                }
                _ => self.load_const(Value::from(n.as_str())),
            },
            ExprKind::Host(n) | ExprKind::Proto(n) => self.load_const(Value::from(n.as_str())),
            _ => self.expr(a),
        }
    }

    fn field_pv(&mut self, f: MsgField, span: ast::Span) -> Reg {
        let text = match f {
            MsgField::Method => "$rm",
            MsgField::Uri => "$ru",
            MsgField::FromUri => "$fu",
            MsgField::ToUri => "$tu",
            MsgField::Status => "$rs",
            MsgField::SrcIp => "$si",
            MsgField::DstIp => "$Ri",
            MsgField::SrcPort => "$sp",
            MsgField::DstPort => "$Rp",
            MsgField::Proto => "$pr",
            MsgField::MsgLen => "$ml",
            MsgField::UriHost => "$rd",
            MsgField::UriPort => "$rp",
            MsgField::SndIp | MsgField::ToIp => "$snd(ip)",
            MsgField::SndPort | MsgField::ToPort => "$snd(port)",
            MsgField::SndProto => "$snd(proto)",
            MsgField::Af => {
                let d = self.reg();
                let si = self.field_pv(MsgField::SrcIp, span);
                // af is 4 or 6 by the source address family.
                let re = self.regex_index(":", span);
                let is6 = self.reg();
                self.emit(Op::Match { d: is6, a: si, re });
                let six = self.load_const(Value::Int(6));
                let four = self.load_const(Value::Int(4));
                let j = self.emit(Op::JmpTrue { c: is6, to: 0 });
                self.emit(Op::Move { d, s: four });
                let je = self.emit(Op::Jmp { to: 0 });
                let h = self.here();
                self.patch(j, h);
                self.emit(Op::Move { d, s: six });
                let h = self.here();
                self.patch(je, h);
                return d;
            }
            other => {
                self.err(
                    span,
                    format!("{other:?} is only valid in onsend_route (not supported yet)"),
                );
                return self.reg();
            }
        };
        let d = self.reg();
        if let Some(pv) = self.pv(text, span) {
            self.emit(Op::Pv { d, pv });
        }
        d
    }

    fn regex_index(&mut self, pat: &str, span: ast::Span) -> u32 {
        match regex::RegexBuilder::new(pat).case_insensitive(true).build() {
            Ok(re) => {
                let i = self.prog.regexes.len() as u32;
                self.prog.regexes.push(re);
                i
            }
            Err(e) => {
                self.err(span, format!("invalid regular expression '{pat}': {e}"));
                0
            }
        }
    }

    fn regex_match(&mut self, d: Reg, a: Reg, pat: &Expr) {
        match &pat.kind {
            ExprKind::Str(s) => {
                let p = String::from_utf8_lossy(s).into_owned();
                let re = self.regex_index(&p, pat.span);
                self.emit(Op::Match { d, a, re });
            }
            _ => {
                let b = self.expr(pat);
                self.emit(Op::MatchDyn { d, a, b });
            }
        }
    }

    fn myself_call(&mut self, field: MsgField, span: ast::Span) -> Reg {
        let (module, name) = match field {
            MsgField::Uri => ("", "is_myself_ruri"),
            MsgField::FromUri => ("", "is_myself_furi"),
            MsgField::ToUri => ("", "is_myself_turi"),
            MsgField::SrcIp => ("", "is_myself_srcip"),
            MsgField::DstIp => ("native", "is_myself_dstip"),
            _ => {
                self.err(span, "this field cannot be compared with myself");
                return self.reg();
            }
        };
        let export = if module == "native" {
            self.table.native(name, 0).map(|a| a.export)
        } else {
            self.table.kemi(module, name)
        };
        let d = self.reg();
        match export {
            Some(export) => {
                let site = self.prog.calls.len() as u32;
                self.prog.calls.push(CallSite {
                    export,
                    args: 0,
                    argc: 0,
                });
                self.emit(Op::Call { d, site });
            }
            None => self.err(span, "myself checks are not available"),
        }
        d
    }

    fn expr(&mut self, e: &Expr) -> Reg {
        if matches!(
            e.kind,
            ExprKind::Unary { .. } | ExprKind::Binary { .. } | ExprKind::Cast { .. }
        ) && let Some(v) = const_eval(e)
        {
            return self.load_const(v);
        }
        match &e.kind {
            ExprKind::Int(i) => self.load_const(Value::Int(*i as i32 as i64)),
            ExprKind::Str(s) => self.load_const(Value::Str(s.clone())),
            ExprKind::Ident(s) | ExprKind::Host(s) | ExprKind::Proto(s) => {
                self.load_const(Value::from(s.as_str()))
            }
            ExprKind::Ip(net) => self.load_const(Value::from(net.addr.to_string())),
            ExprKind::Pv(p) => {
                let t = p.text.as_str();
                if matches!(t, "$rc" | "$?" | "$retcode") {
                    let d = self.reg();
                    self.emit(Op::Rc { d });
                    return d;
                }
                if t == "$null" {
                    return self.load_const(Value::Null);
                }
                let d = self.reg();
                if let Some(pv) = self.pv(t, p.span) {
                    self.emit(Op::Pv { d, pv });
                }
                d
            }
            ExprKind::Avp(a) => {
                let d = self.reg();
                let t = avp_text(&a.text);
                if let Some(pv) = self.pv(&t, a.span) {
                    self.emit(Op::Pv { d, pv });
                }
                d
            }
            ExprKind::Select(s) => {
                self.err(
                    s.span,
                    format!("select expressions ({}) are not supported", s.text),
                );
                self.reg()
            }
            ExprKind::Call(c) => self.call(c),
            ExprKind::Myself => {
                self.err(e.span, "myself is only valid in a comparison");
                self.reg()
            }
            ExprKind::Field(f) => self.field_pv(*f, e.span),
            ExprKind::Unary { op, expr } => {
                let a = self.expr(expr);
                let d = self.reg();
                let op = match op {
                    UnaryOp::Not => UnOp::Not,
                    UnaryOp::Neg => UnOp::Neg,
                    UnaryOp::BitNot => UnOp::BitNot,
                };
                self.emit(Op::Un { op, d, a });
                d
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, e.span),
            ExprKind::Cast { to, expr } => {
                let a = self.expr(expr);
                let d = self.reg();
                let op = match to {
                    ast::CastType::Int => UnOp::CastInt,
                    ast::CastType::Str => UnOp::CastStr,
                };
                self.emit(Op::Un { op, d, a });
                d
            }
            ExprKind::Defined(x) => self.unary(UnOp::Defined, x),
            ExprKind::Strlen(x) => self.unary(UnOp::Strlen, x),
            ExprKind::Strempty(x) => self.unary(UnOp::Strempty, x),
            ExprKind::Selval {
                cond,
                then,
                otherwise,
            } => {
                let d = self.reg();
                let c = self.expr(cond);
                let jf = self.emit(Op::JmpFalse { c, to: 0 });
                let t = self.expr(then);
                self.emit(Op::Move { d, s: t });
                let je = self.emit(Op::Jmp { to: 0 });
                let h = self.here();
                self.patch(jf, h);
                let o = self.expr(otherwise);
                self.emit(Op::Move { d, s: o });
                let h = self.here();
                self.patch(je, h);
                d
            }
            ExprKind::Block(_) | ExprKind::Assign { .. } => {
                self.err(e.span, "this expression form is not supported yet");
                self.reg()
            }
        }
    }

    fn unary(&mut self, op: UnOp, x: &Expr) -> Reg {
        let a = self.expr(x);
        let d = self.reg();
        self.emit(Op::Un { op, d, a });
        d
    }

    fn binary(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr, span: ast::Span) -> Reg {
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let d = self.reg();
                let a = self.expr(lhs);
                self.emit(Op::Un {
                    op: UnOp::Truth,
                    d,
                    a,
                });
                let j = if op == BinaryOp::And {
                    self.emit(Op::JmpFalse { c: d, to: 0 })
                } else {
                    self.emit(Op::JmpTrue { c: d, to: 0 })
                };
                let b = self.expr(rhs);
                self.emit(Op::Un {
                    op: UnOp::Truth,
                    d,
                    a: b,
                });
                let h = self.here();
                self.patch(j, h);
                return d;
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                let negate = op == BinaryOp::Ne;
                if let (ExprKind::Field(f), ExprKind::Myself) = (&lhs.kind, &rhs.kind) {
                    let r = self.myself_call(*f, span);
                    return self.truth_maybe_not(r, negate);
                }
                if let ExprKind::Ip(net) = &rhs.kind {
                    let a = self.expr(lhs);
                    let n = self.prog.nets.len() as u32;
                    let prefix = net
                        .prefix
                        .unwrap_or(if net.addr.is_ipv4() { 32 } else { 128 });
                    self.prog.nets.push(IpNet {
                        addr: net.addr,
                        prefix,
                    });
                    let d = self.reg();
                    self.emit(Op::IpMatch { d, a, net: n });
                    return self.truth_maybe_not(d, negate);
                }
                if let ExprKind::Field(MsgField::Method | MsgField::Proto) = &lhs.kind {
                    let a = self.expr(lhs);
                    let b = self.expr(rhs);
                    let d = self.reg();
                    let op = if negate {
                        BinOp::NeNoCase
                    } else {
                        BinOp::EqNoCase
                    };
                    self.emit(Op::Bin { op, d, a, b });
                    return d;
                }
            }
            BinaryOp::Match => {
                let a = self.expr(lhs);
                let d = self.reg();
                self.regex_match(d, a, rhs);
                return d;
            }
            _ => {}
        }
        let a = self.expr(lhs);
        let b = self.expr(rhs);
        let d = self.reg();
        let op = bin_op(op).unwrap_or(BinOp::Eq);
        self.emit(Op::Bin { op, d, a, b });
        d
    }

    fn truth_maybe_not(&mut self, r: Reg, negate: bool) -> Reg {
        let d = self.reg();
        let op = if negate { UnOp::Not } else { UnOp::Truth };
        self.emit(Op::Un { op, d, a: r });
        d
    }
}

/// The VM operator of a binary operator (`None` for the short-circuit and regex ones,
/// which lower to jumps and match instructions).
fn bin_op(op: BinaryOp) -> Option<BinOp> {
    Some(match op {
        BinaryOp::BitOr => BinOp::BitOr,
        BinaryOp::BitAnd => BinOp::BitAnd,
        BinaryOp::BitXor => BinOp::BitXor,
        BinaryOp::Shl => BinOp::Shl,
        BinaryOp::Shr => BinOp::Shr,
        BinaryOp::Eq => BinOp::Eq,
        BinaryOp::Ne => BinOp::Ne,
        BinaryOp::IntEq => BinOp::IntEq,
        BinaryOp::IntNe => BinOp::IntNe,
        BinaryOp::StrEq => BinOp::StrEq,
        BinaryOp::StrNe => BinOp::StrNe,
        BinaryOp::Gt => BinOp::Gt,
        BinaryOp::Lt => BinOp::Lt,
        BinaryOp::Ge => BinOp::Ge,
        BinaryOp::Le => BinOp::Le,
        BinaryOp::Add => BinOp::Add,
        BinaryOp::Sub => BinOp::Sub,
        BinaryOp::Mul => BinOp::Mul,
        BinaryOp::Div => BinOp::Div,
        BinaryOp::Mod => BinOp::Mod,
        BinaryOp::And | BinaryOp::Or | BinaryOp::Match => return None,
    })
}

/// The value of an expression made only of literals (defines often make conditions
/// constant), computed with the interpreter's own operators so folding cannot change
/// semantics. `None` when anything depends on the message or fails to evaluate.
pub fn const_eval(e: &Expr) -> Option<Value> {
    match &e.kind {
        ExprKind::Int(i) => Some(Value::Int(*i as i32 as i64)),
        ExprKind::Str(s) => Some(Value::Str(s.clone())),
        ExprKind::Unary { op, expr } => {
            let v = const_eval(expr)?;
            let op = match op {
                UnaryOp::Not => UnOp::Not,
                UnaryOp::Neg => UnOp::Neg,
                UnaryOp::BitNot => UnOp::BitNot,
            };
            Some(vm::interp::unop(op, &v))
        }
        ExprKind::Cast { to, expr } => {
            let v = const_eval(expr)?;
            Some(vm::interp::unop(
                match to {
                    ast::CastType::Int => UnOp::CastInt,
                    ast::CastType::Str => UnOp::CastStr,
                },
                &v,
            ))
        }
        ExprKind::Strlen(x) => Some(vm::interp::unop(UnOp::Strlen, &const_eval(x)?)),
        ExprKind::Strempty(x) => Some(vm::interp::unop(UnOp::Strempty, &const_eval(x)?)),
        ExprKind::Binary { op, lhs, rhs } => {
            let a = const_eval(lhs)?;
            let b = const_eval(rhs)?;
            let t = |v: &Value| vm::interp::truth(v);
            let bop = match op {
                BinaryOp::And => return Some(Value::Int((t(&a) && t(&b)) as i64)),
                BinaryOp::Or => return Some(Value::Int((t(&a) || t(&b)) as i64)),
                other => bin_op(*other)?,
            };
            vm::interp::binop(bop, &a, &b).ok()
        }
        _ => None,
    }
}

/// `%name`, `$name` (old AVP syntax) as `$avp(name)`.
fn avp_text(t: &str) -> String {
    if t.starts_with("$avp(") || t.starts_with("$(avp") {
        return t.to_string();
    }
    let name = t.trim_start_matches(['$', '%']);
    format!("$avp({name})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::parse_str;
    use crate::preprocess::Options;

    fn program(text: &str, defines: &[&str]) -> Program {
        let opts = Options {
            defines: defines.iter().map(|d| (d.to_string(), None)).collect(),
        };
        let r = parse_str("t.cfg", text, &opts);
        let cfg = r.config.expect("parses");
        let table: KsrTable<()> = KsrTable::new();
        let pvs: PvRegistry<()> = PvRegistry::new();
        compile(&cfg, &table, &pvs)
            .unwrap_or_else(|d| panic!("{:?}", d.first().map(|x| &x.message)))
    }

    #[test]
    fn constant_conditions_leave_only_the_live_branch() {
        let text = "#!ifdef FAST\n#!define MODE 1\n#!else\n#!define MODE 0\n#!endif\nrequest_route {\n  if (MODE == 1 && 2 + 3 == 5) { return 7; } else { return 9; }\n  while (0) { exit; }\n}\n";
        let fast = program(text, &["FAST"]);
        let slow = program(text, &[]);
        let consts = |p: &Program| p.consts.clone();
        assert!(consts(&fast).contains(&Value::Int(7)) && !consts(&fast).contains(&Value::Int(9)));
        assert!(consts(&slow).contains(&Value::Int(9)) && !consts(&slow).contains(&Value::Int(7)));
        for p in [&fast, &slow] {
            assert!(
                !p.code
                    .iter()
                    .any(|op| matches!(op, Op::JmpFalse { .. } | Op::Exit))
            );
        }
        assert_eq!(
            const_eval(&Expr {
                kind: ExprKind::Int(2147483648),
                span: Default::default()
            }),
            Some(Value::Int(-2147483648))
        );
    }
}
