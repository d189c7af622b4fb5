//! Glue between the preprocessed token stream and the lalrpop parser (grammar in
//! `grammar/kamailio.lalrpop`): spans, error conversion, and small AST-building helpers the
//! grammar actions call.

use crate::ast::*;
use crate::diag::Diagnostic;
use crate::token::Tok;
use bytes::Bytes;
use lalrpop_util::{ErrorRecovery, ParseError};

#[allow(clippy::all, unused)]
mod grammar {
    include!(concat!(env!("OUT_DIR"), "/kamailio.rs"));
}

/// Errors produced by actions (none today; lalrpop needs a type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseErr;

/// Source span covering tokens `l..r` (token indices).
pub fn sp(spans: &[Span], l: usize, r: usize) -> Span {
    let first = spans
        .get(l)
        .or_else(|| spans.last())
        .copied()
        .unwrap_or_default();
    if r <= l {
        return Span::new(first.file, first.lo, first.lo);
    }
    match spans.get(r - 1) {
        Some(last) if last.file == first.file && last.hi >= first.lo => first.to(*last),
        _ => first,
    }
}

/// Core actions Kamailio accepts without parentheses.
const BARE_ACTIONS: &[&str] = &[
    "force_rport",
    "add_rport",
    "add_local_rport",
    "revert_uri",
    "force_tcp_alias",
    "add_tcp_alias",
    "set_forward_no_connect",
    "set_reply_no_connect",
    "set_forward_close",
    "set_reply_close",
];

pub fn bare_call(name: Ident, span: Span, bad: &mut Vec<Diagnostic>) -> Stmt {
    if !BARE_ACTIONS.contains(&name.name.as_str()) {
        bad.push(
            Diagnostic::error(
                name.span,
                format!("bad command: missing '(' after '{}'?", name.name),
            )
            .with_note(
                "only a few core actions (force_rport, revert_uri, ...) may omit the parentheses",
            ),
        );
    }
    Stmt {
        kind: StmtKind::Call(Call {
            name,
            args: Vec::new(),
            parens: false,
            span,
        }),
        span,
    }
}

pub fn route_block(
    keyword: &'static str,
    kw_span: Span,
    name: Option<Ident>,
    body: Block,
    span: Span,
    bad: &mut Vec<Diagnostic>,
) -> RouteBlock {
    let kind = match keyword {
        "route" | "request_route" => BlockKind::Request,
        "failure_route" => BlockKind::Failure,
        "onreply_route" | "reply_route" => BlockKind::OnReply,
        "branch_route" => BlockKind::Branch,
        "onsend_route" => BlockKind::OnSend,
        _ => BlockKind::Event,
    };
    match (keyword, &name) {
        ("request_route" | "reply_route", Some(n)) => bad.push(Diagnostic::error(
            n.span,
            format!(
                "{keyword} does not take a name (use route[{}] for a sub-route)",
                n.name
            ),
        )),
        ("event_route", None) => bad.push(Diagnostic::error(
            kw_span,
            "event_route needs a name: event_route[module:event]",
        )),
        _ => {}
    }
    RouteBlock {
        kind,
        keyword: Ident {
            name: keyword.to_string(),
            span: kw_span,
        },
        name,
        body,
        span,
    }
}

/// An IP literal expression; a bad address is reported.
pub fn ip(text: &str, span: Span, bad: &mut Vec<Diagnostic>) -> Expr {
    match text.parse::<std::net::IpAddr>() {
        Ok(addr) => Expr {
            kind: ExprKind::Ip(IpNet { addr, prefix: None }),
            span,
        },
        Err(_) => {
            bad.push(Diagnostic::error(
                span,
                format!("invalid IP address '{text}'"),
            ));
            Expr {
                kind: ExprKind::Str(Bytes::from(text.to_string())),
                span,
            }
        }
    }
}

/// A condition element `field op value`, checking the value forms Kamailio accepts for the
/// field (host names only for addresses, a bare method name for `method`).
pub fn cond_elem(
    field: Expr,
    op: BinaryOp,
    rhs: Expr,
    span: Span,
    bad: &mut Vec<Diagnostic>,
) -> Expr {
    use MsgField::*;
    let f = match field.kind {
        ExprKind::Field(f) => Some(f),
        _ => None,
    };
    let addr = matches!(f, Some(SrcIp | DstIp | SndIp | ToIp));
    let uri_like = matches!(f, Some(Uri | FromUri | ToUri | Status));
    let protoish = matches!(f, Some(Proto | SndProto));
    let ok = match &rhs.kind {
        ExprKind::Host(h) => addr || (f == Some(Method) && !h.contains('.')),
        ExprKind::Myself => addr || uri_like,
        ExprKind::Proto(_) => protoish,
        ExprKind::Ip(_) => addr,
        _ => true,
    };
    if !ok {
        bad.push(Diagnostic::error(
            rhs.span,
            "syntax error: this value cannot be compared with that message field",
        ));
    }
    Expr {
        kind: ExprKind::Binary {
            op,
            lhs: Box::new(field),
            rhs: Box::new(rhs),
        },
        span,
    }
}

/// `10.0.0.0/8` and `10.0.0.0/255.0.0.0` are networks, not divisions.
pub fn fold_netmask(op: BinaryOp, a: Expr, b: Expr, span: Span, bad: &mut Vec<Diagnostic>) -> Expr {
    if op == BinaryOp::Div
        && let ExprKind::Ip(IpNet { addr, prefix: None }) = &a.kind
    {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match &b.kind {
            ExprKind::Int(n) if (0..=max as i64).contains(n) => Some(*n as u8),
            ExprKind::Ip(IpNet {
                addr: std::net::IpAddr::V4(m),
                prefix: None,
            }) if addr.is_ipv4() => {
                let bits = u32::from(*m);
                (bits.leading_ones() + bits.trailing_zeros() == 32)
                    .then(|| bits.leading_ones() as u8)
            }
            _ => None,
        };
        match prefix {
            Some(p) => {
                return Expr {
                    kind: ExprKind::Ip(IpNet {
                        addr: *addr,
                        prefix: Some(p),
                    }),
                    span,
                };
            }
            None => bad.push(Diagnostic::error(b.span, "invalid network mask")),
        }
    }
    Expr {
        kind: ExprKind::Binary {
            op,
            lhs: Box::new(a),
            rhs: Box::new(b),
        },
        span,
    }
}

/// Modifiers after a `listen=` socket.
pub enum SockMod {
    Advertise(SocketSpec),
    Name(Bytes),
    Virtual,
}

impl SockMod {
    pub fn apply(self, s: &mut SocketSpec) {
        match self {
            SockMod::Advertise(a) => s.advertise = Some(Box::new(a)),
            SockMod::Name(n) => s.name = Some(n),
            SockMod::Virtual => s.is_virtual = true,
        }
    }
}

fn describe_expected(expected: &[String]) -> String {
    let mut v: Vec<String> = expected
        .iter()
        .map(|e| match e.as_str() {
            "\"id\"" => "identifier".to_string(),
            "\"int\"" => "number".to_string(),
            "\"str\"" => "string".to_string(),
            "\"pv\"" => "pseudo-variable".to_string(),
            "\"rname\"" => "route name".to_string(),
            other => other.trim_matches('"').to_string(),
        })
        .collect();
    v.sort();
    v.dedup();
    if v.len() > 12 {
        v.truncate(12);
        v.push("...".into());
    }
    v.join(", ")
}

fn convert(e: ParseError<usize, Tok, ParseErr>, spans: &[Span]) -> Diagnostic {
    match e {
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => {
            let span = sp(spans, l, r);
            let missing_semi = expected.iter().any(|e| e == "\";\"");
            let msg = if missing_semi && !matches!(tok, Tok::Semi) {
                format!("syntax error: unexpected {tok}, missing ';'?")
            } else {
                format!("syntax error: unexpected {tok}")
            };
            let d = Diagnostic::error(span, msg);
            if expected.is_empty() {
                d
            } else {
                d.with_note(format!("expected one of: {}", describe_expected(&expected)))
            }
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let span = spans
                .get(location.saturating_sub(1))
                .map(|s| Span::new(s.file, s.hi, s.hi))
                .unwrap_or_default();
            let d = Diagnostic::error(span, "syntax error: unexpected end of file (missing '}'?)");
            if expected.is_empty() {
                d
            } else {
                d.with_note(format!("expected one of: {}", describe_expected(&expected)))
            }
        }
        ParseError::ExtraToken { token: (l, tok, r) } => {
            Diagnostic::error(sp(spans, l, r), format!("syntax error: unexpected {tok}"))
        }
        ParseError::InvalidToken { location } => Diagnostic::error(
            sp(spans, location, location + 1),
            "syntax error: invalid token",
        ),
        ParseError::User { .. } => Diagnostic::error(Span::default(), "syntax error"),
    }
}

/// Core actions whose arguments may be bare names, hosts or sockets (Kamailio has grammar
/// rules for them); everywhere else a bare identifier is a syntax error.
const NAME_ARG_CALLS: &[&str] = &[
    "route",
    "setflag",
    "resetflag",
    "isflagset",
    "setavpflag",
    "resetavpflag",
    "isavpflagset",
    "forward",
    "forward_udp",
    "forward_tcp",
    "forward_tls",
    "forward_sctp",
    "send",
    "send_tcp",
    "force_send_socket",
    "set_advertised_address",
    "udp_mtu_try_proto",
];

/// Reports bare identifiers where Kamailio's grammar does not accept them.
fn check_names(cfg: &Config, bad: &mut Vec<Diagnostic>) {
    fn expr(e: &Expr, bad: &mut Vec<Diagnostic>) {
        match &e.kind {
            ExprKind::Call(c) => call(c, bad),
            ExprKind::Unary { expr: x, .. }
            | ExprKind::Cast { expr: x, .. }
            | ExprKind::Defined(x)
            | ExprKind::Strlen(x)
            | ExprKind::Strempty(x) => expr(x, bad),
            ExprKind::Binary { lhs, rhs, .. } => {
                expr(lhs, bad);
                expr(rhs, bad);
            }
            ExprKind::Selval {
                cond,
                then,
                otherwise,
            } => {
                expr(cond, bad);
                expr(then, bad);
                expr(otherwise, bad);
            }
            ExprKind::Block(b) => block(&b.stmts, bad),
            ExprKind::Assign { rhs, .. } => expr(rhs, bad),
            _ => {}
        }
    }
    fn call(c: &Call, bad: &mut Vec<Diagnostic>) {
        let names_ok = NAME_ARG_CALLS.contains(&c.name.name.as_str());
        for a in &c.args {
            match &a.kind {
                ExprKind::Ident(_)
                | ExprKind::Host(_)
                | ExprKind::Proto(_)
                | ExprKind::Field(_)
                    if !names_ok =>
                {
                    bad.push(
                        Diagnostic::error(
                            a.span,
                            format!(
                                "syntax error: {}() takes expressions, not a bare name ('(' ')' expected for a function call)",
                                c.name.name
                            ),
                        )
                        .with_note("undefined #!define names end up here; quote strings"),
                    );
                }
                _ => expr(a, bad),
            }
        }
    }
    fn block(stmts: &[Stmt], bad: &mut Vec<Diagnostic>) {
        for s in stmts {
            stmt(s, bad);
        }
    }
    fn stmt(s: &Stmt, bad: &mut Vec<Diagnostic>) {
        match &s.kind {
            StmtKind::Call(c) => call(c, bad),
            StmtKind::Expr(e) => expr(e, bad),
            StmtKind::Block(b) => block(&b.stmts, bad),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                expr(cond, bad);
                stmt(then, bad);
                if let Some(o) = otherwise {
                    stmt(o, bad);
                }
            }
            StmtKind::Switch {
                scrutinee, cases, ..
            } => {
                expr(scrutinee, bad);
                for c in cases {
                    match &c.label {
                        Some(CaseLabel::Value(v)) | Some(CaseLabel::Regex(v)) => expr(v, bad),
                        None => {}
                    }
                    if let Some(b) = &c.body {
                        block(b, bad);
                    }
                }
            }
            StmtKind::While { cond, body } => {
                expr(cond, bad);
                stmt(body, bad);
            }
            StmtKind::Assign { rhs, .. } => expr(rhs, bad),
            StmtKind::Return(Some(e)) | StmtKind::Exit(Some(e)) | StmtKind::Drop(Some(e)) => {
                expr(e, bad)
            }
            _ => {}
        }
    }
    for item in &cfg.items {
        if let ItemKind::Route(r) = &item.kind {
            block(&r.body.stmts, bad);
        }
    }
}

/// Parses a preprocessed token stream. Returns the configuration (with erroneous items left
/// out) and every syntax error.
pub fn parse_tokens(tokens: Vec<(Tok, Span)>) -> (Config, Vec<Diagnostic>) {
    let spans: Vec<Span> = tokens.iter().map(|(_, s)| *s).collect();
    let mut recovered: Vec<ErrorRecovery<usize, Tok, ParseErr>> = Vec::new();
    let mut bad: Vec<Diagnostic> = Vec::new();
    let input = tokens
        .into_iter()
        .enumerate()
        .map(|(i, (t, _))| Ok::<_, ParseErr>((i, t, i + 1)));
    let result = grammar::ConfigParser::new().parse(&spans, &mut recovered, &mut bad, input);
    let mut diags: Vec<Diagnostic> = recovered
        .into_iter()
        .map(|r| convert(r.error, &spans))
        .collect();
    diags.extend(bad);
    let config = match result {
        Ok(c) => c,
        Err(e) => {
            diags.push(convert(e, &spans));
            Config::default()
        }
    };
    check_names(&config, &mut diags);
    diags.sort_by_key(|d| (d.span.file, d.span.lo));
    diags.dedup_by(|a, b| a.span == b.span && a.message == b.message);
    (config, diags)
}
