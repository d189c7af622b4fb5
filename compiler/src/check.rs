//! Semantic checks over the syntax tree, each reported as a [`Diagnostic`] with its span.
//!
//! [`check`] runs everything `ksr check` reports: the rules here (route types, route-name
//! parameters, flags, Kamailio's expression type errors, `modparam` against the module
//! catalog, duplicate routes) plus every name the lowering resolves (unknown functions,
//! wrong parameter counts, unknown pseudo-variables and transformations, bad regexes,
//! undefined sub-routes).

use crate::ast::{self, CaseLabel, ExprKind, ItemKind, ModParamValue, Span, Stmt, StmtKind};
use crate::diag::Diagnostic;
use crate::lower::rve::{self, K, KExpr, RTy};
use crate::lower::{RouteGraph, static_route_name, visit_calls, visit_expr};
use crate::source::SourceMap;
use std::collections::{HashMap, HashSet};
use vm::ksr::{KsrTable, NativeAlias, ParamHint, ParamType};
use vm::pv::PvRegistry;
use vm::{RouteKind, RouteMask};

/// Kamailio's highest message / branch flag number (`flag_t` is 32 bits).
pub const MAX_FLAG: i64 = 31;

/// Type of a module parameter, for `modparam` checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Int,
    Str,
    /// Takes either.
    Any,
}

/// What the runtime knows about modules: which are loaded by the cfg, which exist in this
/// binary, their parameters, and who exports a native function.
pub trait ModuleCatalog {
    /// Loaded by the configuration (`loadmodule`), by module name (`tm`, `sl`).
    fn is_loaded(&self, module: &str) -> bool;
    /// Known to this binary at all.
    fn is_known(&self, module: &str) -> bool;
    /// The type of `module`'s parameter `param`; `None` when there is no such parameter.
    fn param(&self, module: &str, param: &str) -> Option<ParamKind>;
    /// The module that exports native function `name` (loaded or not), for hints.
    fn exporter_of(&self, name: &str) -> Option<String>;
    /// The module that exports pseudo-variable class `name` (`rm` for `$rm`), for hints.
    fn pv_exporter_of(&self, _name: &str) -> Option<String> {
        None
    }
}

/// `message` about a pseudo-variable (from the PV parser), with a hint naming the module
/// that provides it when the parser did not know the class.
pub(crate) fn pv_error_hint(message: &str, modules: Option<&dyn ModuleCatalog>) -> String {
    let Some(mc) = modules else {
        return message.to_string();
    };
    let Some(class) = message
        .strip_prefix("unknown pseudo-variable $")
        .map(|n| n.split(['(', '{', '[', ' ']).next().unwrap_or(n))
    else {
        return message.to_string();
    };
    match mc.pv_exporter_of(class) {
        Some(m) if !mc.is_known(&m) => {
            format!("{message} (exported by Kamailio module '{m}', which ksr does not provide yet)")
        }
        Some(m) if !mc.is_loaded(&m) => format!(
            "{message} (exported by module '{m}', which is not loaded: add loadmodule \"{m}.so\")"
        ),
        _ => message.to_string(),
    }
}

/// Everything the compiler resolves names against.
pub struct Catalog<'a, C> {
    pub table: &'a KsrTable<C>,
    pub pvs: &'a PvRegistry<C>,
    /// Module information for `modparam` checks and "module not loaded" hints.
    pub modules: Option<&'a dyn ModuleCatalog>,
    /// Source files, for line numbers in the bytecode.
    pub sources: Option<&'a SourceMap>,
}

impl<'a, C> Catalog<'a, C> {
    pub fn new(table: &'a KsrTable<C>, pvs: &'a PvRegistry<C>) -> Catalog<'a, C> {
        Catalog {
            table,
            pvs,
            modules: None,
            sources: None,
        }
    }

    pub fn with_modules(mut self, m: &'a dyn ModuleCatalog) -> Self {
        self.modules = Some(m);
        self
    }

    pub fn with_sources(mut self, s: &'a SourceMap) -> Self {
        self.sources = Some(s);
        self
    }
}

/// The message for a call to a function no loaded module exports, naming the module that
/// does when the catalog knows it.
pub(crate) fn unknown_function(name: &str, modules: Option<&dyn ModuleCatalog>) -> String {
    let Some(mc) = modules else {
        return format!("unknown function '{name}' (not exported by any loaded module)");
    };
    match mc.exporter_of(name) {
        Some(m) if !mc.is_known(&m) => format!(
            "unknown function '{name}' (exported by Kamailio module '{m}', which ksr does not provide yet)"
        ),
        Some(m) if !mc.is_loaded(&m) => format!(
            "unknown function '{name}' (exported by module '{m}', which is not loaded: add loadmodule \"{m}.so\")"
        ),
        _ => format!("unknown function '{name}' (not exported by any loaded module)"),
    }
}

/// Every diagnostic for `config`, in source order.
pub fn check<C>(config: &ast::Config, cat: &Catalog<'_, C>) -> Vec<Diagnostic> {
    let mut d = rules(config, cat);
    let (_, lowered) = crate::lower::lower(config, cat);
    d.extend(lowered);
    normalize(d)
}

/// Sorts by position and drops repeats (the rules and the lowering see some problems
/// both).
pub(crate) fn normalize(mut d: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen = HashSet::new();
    d.retain(|x| seen.insert((x.span, x.message.clone())));
    d.sort_by_key(|x| (x.span.file, x.span.lo, x.span.hi));
    d
}

/// The `event_route` names ksr runs (besides `tm:branch-failure:*`).
const EVENTS_RUN: [&str; 3] = ["xhttp:request", "htable:mod-init", "core:worker-one-init"];

const KINDS: [RouteKind; 8] = [
    RouteKind::Request,
    RouteKind::Failure,
    RouteKind::TmOnReply,
    RouteKind::Branch,
    RouteKind::OnSend,
    RouteKind::CoreOnReply,
    RouteKind::BranchFailure,
    RouteKind::Event,
];

fn kind_title(k: RouteKind) -> &'static str {
    match k {
        RouteKind::Request => "request_route",
        RouteKind::Failure => "failure_route",
        RouteKind::TmOnReply => "onreply_route",
        RouteKind::Branch => "branch_route",
        RouteKind::OnSend => "onsend_route",
        RouteKind::CoreOnReply => "reply_route",
        RouteKind::BranchFailure => "event_route[tm:branch-failure]",
        RouteKind::Event => "event_route",
    }
}

/// The checks the lowering does not do.
pub(crate) fn rules<C>(config: &ast::Config, cat: &Catalog<'_, C>) -> Vec<Diagnostic> {
    let graph = RouteGraph::build(config);
    let mut ck = Checker {
        table: cat.table,
        diags: Vec::new(),
        flags: HashMap::new(),
        routes: HashSet::new(),
    };
    for (span, title, first) in &graph.duplicates {
        ck.diags.push(
            Diagnostic::error(*span, format!("duplicate route {title}"))
                .with_label(*first, "first defined here"),
        );
    }
    for d in &graph.decls {
        ck.routes.insert((d.kind, d.name.clone()));
    }
    for item in &config.items {
        match &item.kind {
            ItemKind::Flags { flags } => {
                let mut next = 0i64;
                for (id, v) in flags {
                    let n = v.unwrap_or(next);
                    if !(0..=MAX_FLAG).contains(&n) {
                        ck.diags.push(Diagnostic::error(
                            id.span,
                            format!(
                                "bad flag value {n} for '{}' (valid: 0..{MAX_FLAG})",
                                id.name
                            ),
                        ));
                    }
                    if ck.flags.insert(id.name.clone(), n).is_some() {
                        ck.diags.push(Diagnostic::error(
                            id.span,
                            format!("flag '{}' declared twice", id.name),
                        ));
                    }
                    next = n + 1;
                }
            }
            ItemKind::ModParam {
                modules,
                param,
                value,
                ..
            } => {
                if let Some(mc) = cat.modules {
                    ck.modparam(mc, item.span, modules, param, value);
                }
            }
            _ => {}
        }
    }
    for (i, d) in graph.decls.iter().enumerate() {
        let mut kinds = graph.kinds.get(i).copied().unwrap_or(RouteMask(0));
        if d.kind == RouteKind::Event
            && d.name
                .as_deref()
                .is_some_and(|n| n.starts_with("tm:branch-failure"))
        {
            kinds = RouteMask::BRANCH_FAILURE;
        }
        let title = match &d.name {
            Some(n) => format!("{}[{n}]", d.kind.keyword()),
            None => kind_title(d.kind).to_string(),
        };
        if d.kind == RouteKind::Event
            && let Some(n) = d.name.as_deref()
            && !EVENTS_RUN.contains(&n)
            && !n.starts_with("tm:branch-failure")
            && !n.starts_with("htable:expired:")
        {
            ck.diags.push(Diagnostic::warning(
                d.block.span,
                format!("event_route[{n}] is never run by ksr (the event is not implemented)"),
            ));
        }
        // Function calls: route types, parameter hints.
        visit_calls(&d.block.body.stmts, &mut |c| {
            ck.call(cat, c, kinds, d.sub.then_some(title.as_str()), &graph);
        });
        // Expressions: Kamailio's parse-time type errors and constant evaluation.
        ck.stmts(&d.block.body.stmts);
    }
    ck.diags
}

struct Checker<'a, C> {
    table: &'a KsrTable<C>,
    diags: Vec<Diagnostic>,
    flags: HashMap<String, i64>,
    routes: HashSet<(RouteKind, Option<String>)>,
}

impl<C> Checker<'_, C> {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, msg));
    }

    fn modparam(
        &mut self,
        mc: &dyn ModuleCatalog,
        span: Span,
        modules: &bytes::Bytes,
        param: &bytes::Bytes,
        value: &ModParamValue,
    ) {
        let modules = String::from_utf8_lossy(modules).into_owned();
        let param = String::from_utf8_lossy(param).into_owned();
        for m in modules.split('|').map(str::trim).filter(|m| !m.is_empty()) {
            if !mc.is_known(m) {
                self.err(
                    span,
                    format!("modparam: module '{m}' is not available in ksr"),
                );
                continue;
            }
            if !mc.is_loaded(m) {
                self.err(
                    span,
                    format!(
                        "modparam: module '{m}' is not loaded (missing loadmodule \"{m}.so\"?)"
                    ),
                );
                continue;
            }
            match mc.param(m, &param) {
                None => self.err(
                    span,
                    format!("modparam: module '{m}' has no parameter '{param}'"),
                ),
                Some(ParamKind::Int) => {
                    if let ModParamValue::Str(s) = value
                        && vm::program::parse_int_strict(s.trim_ascii()).is_none()
                    {
                        self.err(
                            span,
                            format!(
                                "modparam: parameter '{param}' of module '{m}' takes an integer, not \"{}\"",
                                String::from_utf8_lossy(s)
                            ),
                        );
                    }
                }
                Some(ParamKind::Str) => {
                    if let ModParamValue::Int(_) = value {
                        self.err(
                            span,
                            format!("modparam: parameter '{param}' of module '{m}' takes a string"),
                        );
                    }
                }
                Some(ParamKind::Any) => {}
            }
        }
    }

    fn call(
        &mut self,
        cat: &Catalog<'_, C>,
        c: &ast::Call,
        kinds: RouteMask,
        sub: Option<&str>,
        graph: &RouteGraph<'_>,
    ) {
        let name = c.name.name.as_str();
        if name == "route" {
            if c.args.len() != 1 {
                self.err(c.span, "route(...) takes one route name");
            } else if let Some(n) = c.args.first().and_then(static_route_name)
                && !graph.subs.contains_key(&n)
            {
                self.err(c.span, format!("route[{n}] is not defined"));
            }
            return;
        }
        let argc = c.args.len();
        let alias: Option<NativeAlias> = u8::try_from(argc)
            .ok()
            .and_then(|n| self.table.native(name, n))
            .cloned();
        let Some(alias) = alias else {
            if self.table.native_arities(name).is_empty() {
                let msg = unknown_function(name, cat.modules);
                self.err(c.span, msg);
            }
            // A wrong parameter count is reported by the lowering.
            return;
        };
        match sub {
            // Kamailio checks a `route[X]` body as request_route, whoever calls it; a
            // function refused in request_route is an error there, as in Kamailio.
            Some(_) if !alias.routes.allows(RouteKind::Request) => {
                let msg = format!(
                    "function '{name}' cannot be used in {} (route blocks are checked as request_route)",
                    kind_title(RouteKind::Request)
                );
                self.err(c.span, msg);
            }
            // Calls from other route types are accepted by Kamailio (configs often guard
            // them with `is_request()` or `t_is_branch_route()`): a warning only.
            Some(t) => {
                if let Some(k) = KINDS
                    .into_iter()
                    .find(|&k| kinds.allows(k) && !alias.routes.allows(k))
                {
                    let msg = format!(
                        "function '{name}' is not meant for {} ({t} is called from there)",
                        kind_title(k)
                    );
                    self.diags.push(Diagnostic::warning(c.span, msg));
                }
            }
            None => {
                if let Some(k) = KINDS
                    .into_iter()
                    .find(|&k| kinds.allows(k) && !alias.routes.allows(k))
                {
                    let msg = format!("function '{name}' cannot be used in {}", kind_title(k));
                    self.err(c.span, msg);
                }
            }
        }
        let Some(export) = self.table.get(alias.export) else {
            return;
        };
        let sig = export.sig.clone();
        for (i, a) in c.args.iter().enumerate() {
            let hint = sig.hints.get(i).copied().unwrap_or(ParamHint::Plain);
            let pt = sig.params.get(i).copied().unwrap_or(ParamType::Str);
            let constant: Option<String> = match &a.kind {
                ExprKind::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
                ExprKind::Ident(s) | ExprKind::Host(s) => Some(s.clone()),
                ExprKind::Int(n) => Some(n.to_string()),
                _ => None,
            };
            let Some(text) = constant else {
                continue;
            };
            let dynamic = vm::program::has_pv(&text);
            match hint {
                ParamHint::Route(kind) if !dynamic => {
                    let key = (kind, Some(text.clone()));
                    let exists = self.routes.contains(&key)
                        || (kind == RouteKind::TmOnReply
                            && self
                                .routes
                                .contains(&(RouteKind::CoreOnReply, Some(text.clone()))));
                    if !exists && !text.is_empty() {
                        // Kamailio only warns (an empty route); nothing runs there.
                        self.diags.push(Diagnostic::warning(
                            a.span,
                            format!(
                                "{}[{text}] is not defined: nothing will run there",
                                kind.keyword()
                            ),
                        ));
                    }
                }
                ParamHint::Flag | ParamHint::BranchFlag if !dynamic => {
                    let n = match &a.kind {
                        ExprKind::Ident(id) => match self.flags.get(id) {
                            Some(n) => Some(*n),
                            None => {
                                if vm::program::parse_int_strict(id.as_bytes()).is_none() {
                                    self.err(a.span, format!("unknown flag '{id}'"));
                                }
                                vm::program::parse_int_strict(id.as_bytes()).map(i64::from)
                            }
                        },
                        _ => vm::program::parse_int_strict(text.trim().as_bytes())
                            .map(i64::from)
                            .or_else(|| self.flags.get(text.trim()).copied()),
                    };
                    if let Some(n) = n
                        && !(0..=MAX_FLAG).contains(&n)
                    {
                        self.err(a.span, format!("bad flag value {n} (valid: 0..{MAX_FLAG})"));
                    }
                }
                ParamHint::PvName => {
                    if let Err(m) = vm::program::parse_pv(&text, cat.pvs) {
                        let m = pv_error_hint(&m.to_string(), cat.modules);
                        self.err(a.span, format!("invalid pseudo-variable {text}: {m}"));
                    }
                }
                ParamHint::PvList => {
                    let mut rest = text.as_str();
                    loop {
                        rest = rest.trim_start_matches([' ', '\t', ',', ';', '\n']);
                        if rest.is_empty() {
                            break;
                        }
                        match vm::pv::parse_spec_prefix(rest, cat.pvs) {
                            Ok((_, used)) if used > 0 => rest = rest.get(used..).unwrap_or(""),
                            Ok(_) => {
                                self.err(a.span, format!("invalid pseudo-variable list {text}"));
                                break;
                            }
                            Err(m) => {
                                let m = pv_error_hint(&m.to_string(), cat.modules);
                                self.err(a.span, format!("invalid pseudo-variable in {text}: {m}"));
                                break;
                            }
                        }
                    }
                }
                _ => {}
            }
            let _ = pt;
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Call(c) => self.call_args(c),
            StmtKind::Expr(e) => {
                self.err(
                    s.span,
                    "an expression is not a statement (Kamailio: syntax error)",
                );
                self.expr(e, false);
            }
            StmtKind::Block(b) => self.stmts(&b.stmts),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                self.expr(cond, true);
                self.stmt(then);
                if let Some(o) = otherwise {
                    self.stmt(o);
                }
            }
            StmtKind::While { cond, body } => {
                self.expr(cond, true);
                self.stmt(body);
            }
            StmtKind::Switch {
                scrutinee, cases, ..
            } => {
                self.expr(scrutinee, false);
                self.switch(cases);
                for c in cases {
                    if let Some(b) = &c.body {
                        self.stmts(b);
                    }
                }
            }
            StmtKind::Assign { rhs, .. } => self.expr(rhs, false),
            StmtKind::Return(e) | StmtKind::Exit(e) | StmtKind::Drop(e) => {
                if let Some(e) = e {
                    self.expr(e, false);
                }
            }
            StmtKind::Break | StmtKind::Empty => {}
        }
    }

    fn call_args(&mut self, c: &ast::Call) {
        for a in &c.args {
            if matches!(
                a.kind,
                ExprKind::Str(_)
                    | ExprKind::Int(_)
                    | ExprKind::Ident(_)
                    | ExprKind::Host(_)
                    | ExprKind::Ip(_)
                    | ExprKind::Proto(_)
                    | ExprKind::Field(_)
            ) {
                continue;
            }
            self.expr(a, false);
        }
    }

    /// Kamailio's parse-time checks of one expression (and the statements inside
    /// expression blocks).
    fn expr(&mut self, e: &ast::Expr, condition: bool) {
        // Nested statements and calls inside the expression.
        let mut inner: Vec<&ast::Call> = Vec::new();
        visit_expr(e, &mut |c| inner.push(c));
        for c in inner {
            self.call_args_shallow(c);
        }
        if let ExprKind::Block(b) = &e.kind {
            self.stmts(&b.stmts);
        }
        let mut scratch = Vec::new();
        let k = rve::from_ast(e, &mut scratch);
        self.type_check(&k);
        if condition {
            if k.is_constant() {
                self.diags
                    .push(Diagnostic::warning(e.span, "constant value in if(...)"));
            } else if k.check_type() == Ok(RTy::Str) {
                self.diags.push(Diagnostic::warning(
                    e.span,
                    "non-int expression (you might want to use casts)",
                ));
            }
        }
    }

    fn call_args_shallow(&mut self, _c: &ast::Call) {}

    /// Type errors at every level, as Kamailio checks each sub-expression as it parses it.
    fn type_check(&mut self, k: &KExpr) {
        if let Err((span, bad, exp)) = k.check_type() {
            self.err(
                span,
                format!(
                    "bad expression: type mismatch: {} instead of {}",
                    bad.name(),
                    exp.name()
                ),
            );
            return;
        }
        // Kamailio folds constant sub-expressions at start-up; one that cannot be evaluated
        // is an error there.
        let mut opt = k.clone();
        if let Err((span, e)) = rve::optimize(&mut opt) {
            self.err(span, format!("bad expression: {}", e.0));
        }
        if let K::Elem(el) = &k.kind
            && let rve::ElemRhs::Expr(r) = &el.rhs
        {
            self.type_check(r);
        }
    }

    fn switch(&mut self, cases: &[ast::Case]) {
        let mut defaults = 0;
        let mut class: Option<bool> = None; // Some(true): string/regex cases
        for c in cases {
            match &c.label {
                None => {
                    defaults += 1;
                    if defaults > 1 {
                        self.err(c.span, "more then one \"default\" label in switch");
                    }
                }
                Some(CaseLabel::Value(e)) | Some(CaseLabel::Regex(e)) => {
                    let mut scratch = Vec::new();
                    let k = rve::from_ast(e, &mut scratch);
                    if !k.is_constant() {
                        self.err(e.span, "non constant expression in case");
                        continue;
                    }
                    let is_str = matches!(c.label, Some(CaseLabel::Regex(_)))
                        || k.check_type() == Ok(RTy::Str);
                    match class {
                        None => class = Some(is_str),
                        Some(x) if x != is_str => self.err(e.span, "type mismatch in case"),
                        _ => {}
                    }
                }
            }
        }
    }
}
