//! Kamailio's expression model (`rval_expr`): the tree the compiler evaluates, type-checks
//! and optimizes exactly like Kamailio's fixup does, before lowering it to IR.
//!
//! Kamailio's optimizer changes results in observable ways (`$x && 1` becomes `(int)$x`,
//! so it is -1 for -1, not 1; `$x == ""` becomes `strempty($x)`; `f() + 0` becomes the
//! raw return code of `f`), so the same rewrites are applied here, in the same order.
//! Constant sub-expressions are folded with the same evaluation rules the interpreter
//! uses, and a constant that fails to evaluate (`1/0`) is a configuration error, as in
//! Kamailio.

use crate::ast::{self, BinaryOp, CastType, ExprKind, MsgField, Span, UnaryOp};
use crate::diag::Diagnostic;
use bytes::Bytes;
use vm::Value;
use vm::bytecode::{BinOp, UnOp};
use vm::interp::{binop, to_bytes, to_int, unop};

/// Kamailio's expression operators (`RVE_*_OP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KOp {
    UMinus,
    LNot,
    BNot,
    Defined,
    NotDefined,
    Strlen,
    Strempty,
    IntCast,
    StrCast,
    Plus,
    IPlus,
    Concat,
    Minus,
    Mul,
    Div,
    Mod,
    BOr,
    BAnd,
    BXor,
    Shl,
    Shr,
    LAnd,
    LOr,
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Diff,
    IEq,
    IDiff,
    StrEq,
    StrDiff,
    Match,
}

impl KOp {
    fn is_assoc(self) -> bool {
        matches!(
            self,
            KOp::IPlus
                | KOp::Concat
                | KOp::Mul
                | KOp::BAnd
                | KOp::BOr
                | KOp::BXor
                | KOp::LAnd
                | KOp::LOr
        )
    }

    fn is_commutative(self) -> bool {
        matches!(
            self,
            KOp::IPlus
                | KOp::Mul
                | KOp::BAnd
                | KOp::BOr
                | KOp::BXor
                | KOp::LAnd
                | KOp::LOr
                | KOp::IEq
                | KOp::IDiff
                | KOp::StrEq
                | KOp::StrDiff
        )
    }

    /// The integer operator of the interpreter for the int-only operators.
    pub fn int_binop(self) -> Option<BinOp> {
        Some(match self {
            KOp::Plus | KOp::IPlus => BinOp::IAdd,
            KOp::Minus => BinOp::ISub,
            KOp::Mul => BinOp::IMul,
            KOp::BOr => BinOp::IBitOr,
            KOp::BAnd => BinOp::IBitAnd,
            KOp::BXor => BinOp::IBitXor,
            KOp::Shl => BinOp::IShl,
            KOp::Shr => BinOp::IShr,
            KOp::Gt => BinOp::IGt,
            KOp::Gte => BinOp::IGe,
            KOp::Lt => BinOp::ILt,
            KOp::Lte => BinOp::ILe,
            KOp::IEq => BinOp::IEq,
            KOp::IDiff => BinOp::INe,
            _ => return None,
        })
    }
}

/// Kamailio's static expression type (`RV_INT`, `RV_STR`, `RV_NONE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RTy {
    Int,
    Str,
    /// Known only at run time.
    None,
}

impl RTy {
    pub fn name(self) -> &'static str {
        match self {
            RTy::Int => "int",
            RTy::Str => "str",
            RTy::None => "none",
        }
    }
}

/// An expression that runs actions and yields their return code (`RV_ACTION_ST`).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Call(ast::Call),
    Block(ast::Block),
    Assign(ast::LValue, ast::Expr),
}

/// Comparison operator of a condition element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemOp {
    Eq,
    Ne,
    Match,
    Gt,
    Lt,
    Ge,
    Le,
}

/// Right side of a condition element.
#[derive(Clone, Debug, PartialEq)]
pub enum ElemRhs {
    Expr(KExpr),
    Myself,
    Net(ast::IpNet),
    /// A protocol keyword as Kamailio's protocol number.
    Proto(i32),
    /// A host name to resolve (not supported).
    Host(String),
}

/// A condition element (`method == "INVITE"`, `src_ip == 10.0.0.0/8`).
#[derive(Clone, Debug, PartialEq)]
pub struct Elem {
    pub field: MsgField,
    pub op: ElemOp,
    pub rhs: ElemRhs,
}

#[derive(Clone, Debug, PartialEq)]
pub enum K {
    Int(i32),
    Str(Bytes),
    /// `$null`.
    Null,
    Pv(String),
    /// `$rc`, `$?`, `$retcode`.
    Rc,
    Avp(String),
    Select(String),
    Action(Box<Action>),
    Elem(Box<Elem>),
    Un(KOp, Box<KExpr>),
    Bin(KOp, Box<KExpr>, Box<KExpr>),
    Sel(Box<KExpr>, Box<KExpr>, Box<KExpr>),
    /// Something already reported as an error.
    Bad,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KExpr {
    pub kind: K,
    pub span: Span,
}

impl KExpr {
    pub fn new(kind: K, span: Span) -> KExpr {
        KExpr { kind, span }
    }

    fn un(op: KOp, a: KExpr, span: Span) -> KExpr {
        KExpr::new(K::Un(op, Box::new(a)), span)
    }

    /// True for a single value that can be undefined (what `defined` looks at).
    pub fn is_rval_leaf(&self) -> bool {
        matches!(
            self.kind,
            K::Pv(_) | K::Avp(_) | K::Null | K::Rc | K::Select(_)
        )
    }

    /// `rve_is_constant`.
    pub fn is_constant(&self) -> bool {
        match &self.kind {
            K::Int(_) | K::Str(_) => true,
            K::Un(_, a) => a.is_constant(),
            K::Bin(_, a, b) => a.is_constant() && b.is_constant(),
            K::Sel(c, a, b) => c.is_constant() && a.is_constant() && b.is_constant(),
            _ => false,
        }
    }

    /// `rve_guess_type`.
    pub fn guess_type(&self) -> RTy {
        match &self.kind {
            K::Int(_) | K::Action(_) | K::Elem(_) => RTy::Int,
            K::Str(_) | K::Select(_) => RTy::Str,
            K::Null | K::Pv(_) | K::Rc | K::Avp(_) | K::Bad => RTy::None,
            K::Un(op, _) => match op {
                KOp::StrCast => RTy::Str,
                _ => RTy::Int,
            },
            K::Bin(op, a, b) => match op {
                KOp::Plus => a.guess_type(),
                KOp::Concat => RTy::Str,
                _ => {
                    let _ = b;
                    RTy::Int
                }
            },
            K::Sel(..) => RTy::None,
        }
    }

    /// `rve_check_type`: the type, or the sub-expression with the wrong type (its span,
    /// its type, the expected type).
    pub fn check_type(&self) -> Result<RTy, (Span, RTy, RTy)> {
        let err = |e: &KExpr, bad: RTy, exp: RTy| Err((e.span, bad, exp));
        match &self.kind {
            K::Un(op, a) => {
                let t = a.check_type()?;
                match op {
                    KOp::UMinus | KOp::LNot | KOp::BNot => {
                        if t == RTy::Str {
                            return err(a, t, RTy::Int);
                        }
                        Ok(RTy::Int)
                    }
                    KOp::Strlen | KOp::Strempty | KOp::Defined | KOp::NotDefined => {
                        if t == RTy::Int {
                            return err(a, t, RTy::Str);
                        }
                        Ok(RTy::Int)
                    }
                    KOp::IntCast => Ok(RTy::Int),
                    KOp::StrCast => Ok(RTy::Str),
                    _ => Ok(RTy::Int),
                }
            }
            K::Bin(op, a, b) => {
                let t1 = a.check_type()?;
                match op {
                    KOp::Eq
                    | KOp::Diff
                    | KOp::Plus
                    | KOp::Concat
                    | KOp::StrEq
                    | KOp::StrDiff
                    | KOp::Match => {
                        let t2 = b.check_type()?;
                        if t1 != t2
                            && t1 != RTy::None
                            && t2 != RTy::None
                            && !(t1 == RTy::Str && t2 == RTy::Int)
                        {
                            return err(b, t2, t1);
                        }
                        match op {
                            KOp::Plus => Ok(t1),
                            KOp::Concat | KOp::StrEq | KOp::StrDiff | KOp::Match
                                if t1 == RTy::Int =>
                            {
                                err(a, t1, RTy::Str)
                            }
                            KOp::Concat => Ok(RTy::Str),
                            _ => Ok(RTy::Int),
                        }
                    }
                    _ => {
                        if t1 == RTy::Str {
                            return err(a, t1, RTy::Int);
                        }
                        let t2 = b.check_type()?;
                        if t2 == RTy::Str {
                            return err(b, t2, RTy::Int);
                        }
                        Ok(RTy::Int)
                    }
                }
            }
            _ => Ok(self.guess_type()),
        }
    }
}

// ---------------------------------------------------------------- from the syntax tree

/// Kamailio's protocol numbers.
pub fn proto_number(name: &str) -> Option<i32> {
    Some(match name.to_ascii_lowercase().as_str() {
        "udp" => 1,
        "tcp" => 2,
        "tls" => 3,
        "sctp" => 4,
        "ws" => 5,
        "wss" => 6,
        "*" => 0,
        _ => return None,
    })
}

/// Identifiers Kamailio's lexer turns into numbers.
pub fn ident_number(name: &str) -> Option<i32> {
    Some(match name {
        "yes" | "true" | "on" | "enable" => 1,
        "no" | "false" | "off" | "disable" => 0,
        "inet" | "INET" | "ipv4" | "IPv4" | "IPV4" => 2,
        "inet6" | "INET6" | "ipv6" | "IPv6" | "IPV6" => 10,
        _ => return None,
    })
}

fn field_group(f: MsgField) -> u8 {
    use MsgField::*;
    match f {
        Method | Uri | Status | FromUri | ToUri => 0,
        SrcPort | DstPort | Af | MsgLen | SndPort | ToPort | SndAf => 1,
        Proto | SndProto => 2,
        SrcIp | DstIp | SndIp | ToIp => 3,
        UriHost | UriPort => 4,
    }
}

/// Builds the expression tree of `e`, reporting forms Kamailio rejects.
pub fn from_ast(e: &ast::Expr, diags: &mut Vec<Diagnostic>) -> KExpr {
    let span = e.span;
    let k = match &e.kind {
        ExprKind::Int(i) => K::Int(*i as i32),
        ExprKind::Str(s) => K::Str(s.clone()),
        ExprKind::Pv(p) => match p.text.trim() {
            "$rc" | "$?" | "$retcode" => K::Rc,
            "$null" => K::Null,
            t => K::Pv(t.to_string()),
        },
        ExprKind::Avp(a) => K::Avp(a.text.clone()),
        ExprKind::Select(s) => K::Select(s.text.clone()),
        ExprKind::Call(c) => K::Action(Box::new(Action::Call(c.clone()))),
        ExprKind::Block(b) => K::Action(Box::new(Action::Block(b.clone()))),
        ExprKind::Assign { lhs, rhs } => {
            K::Action(Box::new(Action::Assign(lhs.clone(), (**rhs).clone())))
        }
        ExprKind::Unary { op, expr } => {
            let a = from_ast(expr, diags);
            let op = match op {
                UnaryOp::Not => KOp::LNot,
                UnaryOp::BitNot => KOp::BNot,
                UnaryOp::Neg => KOp::UMinus,
            };
            K::Un(op, Box::new(a))
        }
        ExprKind::Cast { to, expr } => {
            let a = from_ast(expr, diags);
            K::Un(
                match to {
                    CastType::Int => KOp::IntCast,
                    CastType::Str => KOp::StrCast,
                },
                Box::new(a),
            )
        }
        ExprKind::Defined(x) => K::Un(KOp::Defined, Box::new(from_ast(x, diags))),
        ExprKind::Strlen(x) => K::Un(KOp::Strlen, Box::new(from_ast(x, diags))),
        ExprKind::Strempty(x) => K::Un(KOp::Strempty, Box::new(from_ast(x, diags))),
        ExprKind::Selval {
            cond,
            then,
            otherwise,
        } => K::Sel(
            Box::new(from_ast(cond, diags)),
            Box::new(from_ast(then, diags)),
            Box::new(from_ast(otherwise, diags)),
        ),
        ExprKind::Binary { op, lhs, rhs } => return binary(*op, lhs, rhs, span, diags),
        ExprKind::Ident(n) => match ident_number(n) {
            Some(v) => K::Int(v),
            None => {
                diags.push(Diagnostic::error(
                    span,
                    format!("unexpected identifier '{n}' in expression (an undefined #!define?)"),
                ));
                K::Bad
            }
        },
        ExprKind::Host(h) => {
            diags.push(Diagnostic::error(
                span,
                format!("a host name ('{h}') is not a value here"),
            ));
            K::Bad
        }
        ExprKind::Ip(n) => {
            diags.push(Diagnostic::error(
                span,
                format!(
                    "an IP address ({}) is only valid in src_ip/dst_ip comparisons",
                    n.addr
                ),
            ));
            K::Bad
        }
        ExprKind::Proto(p) => {
            diags.push(Diagnostic::error(
                span,
                format!("a protocol ('{p}') is only valid in proto comparisons"),
            ));
            K::Bad
        }
        ExprKind::Myself => {
            diags.push(Diagnostic::error(
                span,
                "myself is only valid compared with uri, from_uri, to_uri, src_ip or dst_ip",
            ));
            K::Bad
        }
        ExprKind::Field(f) => {
            diags.push(Diagnostic::error(
                span,
                format!("{} is only valid in a comparison", field_name(*f)),
            ));
            K::Bad
        }
    };
    KExpr::new(k, span)
}

/// The cfg keyword of a message field.
pub fn field_name(f: MsgField) -> &'static str {
    use MsgField::*;
    match f {
        Method => "method",
        Uri => "uri",
        Status => "status",
        FromUri => "from_uri",
        ToUri => "to_uri",
        SrcIp => "src_ip",
        DstIp => "dst_ip",
        SndIp => "snd_ip",
        ToIp => "to_ip",
        SrcPort => "src_port",
        DstPort => "dst_port",
        SndPort => "snd_port",
        ToPort => "to_port",
        Proto => "proto",
        SndProto => "snd_proto",
        Af => "af",
        SndAf => "snd_af",
        MsgLen => "msg:len",
        UriHost => "uri:host",
        UriPort => "uri:port",
    }
}

fn binary(
    op: BinaryOp,
    lhs: &ast::Expr,
    rhs: &ast::Expr,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> KExpr {
    if let ExprKind::Field(f) = lhs.kind {
        return KExpr::new(elem(f, op, rhs, span, diags), span);
    }
    if let (ExprKind::Myself, ExprKind::Field(f)) = (&lhs.kind, &rhs.kind) {
        let k = match (op, field_group(*f)) {
            (BinaryOp::Eq | BinaryOp::StrEq | BinaryOp::Ne | BinaryOp::StrNe, 0 | 3)
                if *f != MsgField::Method =>
            {
                let op = if matches!(op, BinaryOp::Eq | BinaryOp::StrEq) {
                    ElemOp::Eq
                } else {
                    ElemOp::Ne
                };
                K::Elem(Box::new(Elem {
                    field: *f,
                    op,
                    rhs: ElemRhs::Myself,
                }))
            }
            _ => {
                diags.push(Diagnostic::error(
                    span,
                    "myself can only be compared (== or !=) with uri, from_uri, to_uri, src_ip or dst_ip",
                ));
                K::Bad
            }
        };
        return KExpr::new(k, span);
    }
    // `x == $null` is `!defined x` (and `!=` is `defined x`), decided by the parser.
    if let ExprKind::Pv(p) = &rhs.kind
        && p.text.trim() == "$null"
        && matches!(
            op,
            BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::IntEq
                | BinaryOp::IntNe
                | BinaryOp::StrEq
                | BinaryOp::StrNe
                | BinaryOp::Match
        )
    {
        let a = from_ast(lhs, diags);
        let k = if matches!(op, BinaryOp::Ne | BinaryOp::IntNe | BinaryOp::StrNe) {
            KOp::Defined
        } else {
            KOp::NotDefined
        };
        return KExpr::un(k, a, span);
    }
    let a = from_ast(lhs, diags);
    let b = from_ast(rhs, diags);
    let op = match op {
        BinaryOp::Or => KOp::LOr,
        BinaryOp::And => KOp::LAnd,
        BinaryOp::BitOr => KOp::BOr,
        BinaryOp::BitAnd => KOp::BAnd,
        BinaryOp::BitXor => KOp::BXor,
        BinaryOp::Shl => KOp::Shl,
        BinaryOp::Shr => KOp::Shr,
        BinaryOp::Eq => KOp::Eq,
        BinaryOp::Ne => KOp::Diff,
        BinaryOp::Match => KOp::Match,
        BinaryOp::IntEq => KOp::IEq,
        BinaryOp::IntNe => KOp::IDiff,
        BinaryOp::StrEq => KOp::StrEq,
        BinaryOp::StrNe => KOp::StrDiff,
        BinaryOp::Gt => KOp::Gt,
        BinaryOp::Lt => KOp::Lt,
        BinaryOp::Ge => KOp::Gte,
        BinaryOp::Le => KOp::Lte,
        BinaryOp::Add => KOp::Plus,
        BinaryOp::Sub => KOp::Minus,
        BinaryOp::Mul => KOp::Mul,
        BinaryOp::Div => KOp::Div,
        BinaryOp::Mod => KOp::Mod,
    };
    KExpr::new(K::Bin(op, Box::new(a), Box::new(b)), span)
}

fn elem(f: MsgField, op: BinaryOp, rhs: &ast::Expr, span: Span, diags: &mut Vec<Diagnostic>) -> K {
    let group = field_group(f);
    let eop = match op {
        BinaryOp::Eq | BinaryOp::StrEq => Some(ElemOp::Eq),
        BinaryOp::Ne | BinaryOp::StrNe => Some(ElemOp::Ne),
        BinaryOp::Match if group == 0 || group == 3 => Some(ElemOp::Match),
        BinaryOp::Gt if group == 1 => Some(ElemOp::Gt),
        BinaryOp::Lt if group == 1 => Some(ElemOp::Lt),
        BinaryOp::Ge if group == 1 => Some(ElemOp::Ge),
        BinaryOp::Le if group == 1 => Some(ElemOp::Le),
        _ => None,
    };
    let Some(eop) = eop else {
        diags.push(Diagnostic::error(
            span,
            format!("invalid operator for {}", field_name(f)),
        ));
        return K::Bad;
    };
    if group == 4 {
        diags.push(Diagnostic::error(
            span,
            format!("{} is only valid as a forward() parameter", field_name(f)),
        ));
        return K::Bad;
    }
    let r = match (&rhs.kind, group) {
        (ExprKind::Myself, 0) if f != MsgField::Method => ElemRhs::Myself,
        (ExprKind::Myself, 3) => ElemRhs::Myself,
        (ExprKind::Ident(n) | ExprKind::Host(n), 0) if f == MsgField::Method => {
            ElemRhs::Expr(KExpr::new(K::Str(Bytes::from(n.clone())), rhs.span))
        }
        (ExprKind::Proto(p) | ExprKind::Ident(p), 2) if proto_number(p).is_some() => {
            ElemRhs::Proto(proto_number(p).unwrap_or(0))
        }
        (ExprKind::Ip(n), 3) => ElemRhs::Net(n.clone()),
        (ExprKind::Host(h) | ExprKind::Ident(h), 3) => match h.parse::<std::net::IpAddr>() {
            Ok(addr) => ElemRhs::Net(ast::IpNet { addr, prefix: None }),
            Err(_) => ElemRhs::Host(h.clone()),
        },
        (ExprKind::Str(s), 3) => {
            // A constant string holding an address is turned into one by the parser.
            match std::str::from_utf8(s)
                .ok()
                .and_then(|t| t.parse::<std::net::IpAddr>().ok())
            {
                Some(addr) => ElemRhs::Net(ast::IpNet { addr, prefix: None }),
                None => ElemRhs::Expr(from_ast(rhs, diags)),
            }
        }
        (ExprKind::Myself | ExprKind::Proto(_) | ExprKind::Ip(_) | ExprKind::Host(_), _) => {
            diags.push(Diagnostic::error(
                rhs.span,
                format!("this value cannot be compared with {}", field_name(f)),
            ));
            return K::Bad;
        }
        _ => ElemRhs::Expr(from_ast(rhs, diags)),
    };
    K::Elem(Box::new(Elem {
        field: f,
        op: eop,
        rhs: r,
    }))
}

// ---------------------------------------------------------------- constant evaluation

/// A constant expression that cannot be evaluated (division by zero, bad regex, selval in
/// an integer context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstError(pub String);

fn cval_int(e: &KExpr) -> Result<i32, ConstError> {
    match &e.kind {
        K::Int(i) => Ok(*i),
        K::Str(s) => Ok(vm::program::str_to_int(s)),
        K::Un(op, a) => Ok(match op {
            KOp::UMinus => to_int(&unop(UnOp::Neg, &Value::Int(cval_int(a)? as i64))),
            KOp::BNot => !cval_int(a)?,
            KOp::LNot => (cval_int(a)? == 0) as i32,
            KOp::IntCast => cval_int(a)?,
            KOp::StrCast => to_int(&cval(a)?),
            KOp::Defined => 1,
            KOp::NotDefined => 0,
            KOp::Strlen => to_bytes(&cval(a)?).len() as i32,
            KOp::Strempty => to_bytes(&cval(a)?).is_empty() as i32,
            _ => return Err(ConstError("unexpected operator".into())),
        }),
        K::Bin(op, a, b) => match op {
            KOp::LAnd => {
                let x = cval_int(a)?;
                if x == 0 {
                    return Ok(0);
                }
                Ok((cval_int(b)? != 0) as i32)
            }
            KOp::LOr => {
                let x = cval_int(a)?;
                if x != 0 {
                    return Ok(1);
                }
                Ok((cval_int(b)? != 0) as i32)
            }
            KOp::Div | KOp::Mod => {
                let x = cval_int(a)?;
                let y = cval_int(b)?;
                if y == 0 {
                    return Err(ConstError(if *op == KOp::Div {
                        "division by zero".into()
                    } else {
                        "modulo by zero".into()
                    }));
                }
                Ok(if *op == KOp::Div {
                    x.wrapping_div(y)
                } else {
                    x.wrapping_rem(y)
                })
            }
            KOp::Eq | KOp::Diff => {
                let l = cval(a)?;
                let eq = match l {
                    Value::Int(x) => x as i32 == cval_int(b)?,
                    _ => to_bytes(&l) == to_bytes(&cval(b)?),
                };
                Ok((eq == (*op == KOp::Eq)) as i32)
            }
            KOp::StrEq | KOp::StrDiff => {
                let eq = to_bytes(&cval(a)?) == to_bytes(&cval(b)?);
                Ok((eq == (*op == KOp::StrEq)) as i32)
            }
            KOp::Match => {
                let s = to_bytes(&cval(a)?);
                let p = to_bytes(&cval(b)?);
                let re = vm::program::posix_regex(&p, true)
                    .map_err(|e| ConstError(format!("bad regular expression: {e}")))?;
                Ok(re.is_match(&s) as i32)
            }
            KOp::Concat => Ok(to_int(&cval(e)?)),
            _ => {
                let bop = op
                    .int_binop()
                    .ok_or_else(|| ConstError("unexpected operator".into()))?;
                let x = Value::Int(cval_int(a)? as i64);
                let y = Value::Int(cval_int(b)? as i64);
                Ok(to_int(&binop(bop, &x, &y)))
            }
        },
        K::Sel(..) => Err(ConstError("selval in an integer expression".into())),
        _ => Err(ConstError("not a constant".into())),
    }
}

fn cval(e: &KExpr) -> Result<Value, ConstError> {
    match &e.kind {
        K::Int(i) => Ok(Value::Int(*i as i64)),
        K::Str(s) => Ok(Value::Str(s.clone())),
        K::Un(KOp::StrCast, a) => Ok(Value::Str(to_bytes(&cval(a)?))),
        K::Bin(KOp::Plus, a, b) => {
            let l = cval(a)?;
            match l {
                Value::Int(x) => Ok(Value::Int((x as i32).wrapping_add(cval_int(b)?) as i64)),
                _ => Ok(binop(BinOp::Concat, &l, &cval(b)?)),
            }
        }
        K::Bin(KOp::Concat, a, b) => Ok(binop(BinOp::Concat, &cval(a)?, &cval(b)?)),
        K::Sel(c, a, b) => {
            let v = if cval_int(c)? > 0 { cval(a)? } else { cval(b)? };
            Ok(match v {
                Value::Int(_) => v,
                other => Value::Str(to_bytes(&other)),
            })
        }
        K::Un(..) | K::Bin(..) => Ok(Value::Int(cval_int(e)? as i64)),
        _ => Err(ConstError("not a constant".into())),
    }
}

/// Evaluates a constant expression as Kamailio's fixup does.
pub fn const_value(e: &KExpr) -> Result<Value, ConstError> {
    cval(e)
}

/// Evaluates a constant expression in an integer context.
pub fn const_int(e: &KExpr) -> Result<i32, ConstError> {
    cval_int(e)
}

fn constant_leaf(v: Value, span: Span) -> KExpr {
    match v {
        Value::Int(i) => KExpr::new(K::Int(i as i32), span),
        Value::Str(s) => KExpr::new(K::Str(s), span),
        Value::Null => KExpr::new(K::Str(Bytes::new()), span),
    }
}

// ---------------------------------------------------------------- the optimizer

/// Kamailio's `rve_optimize`, applied to the whole tree (children first). Errors are
/// constant expressions that cannot be evaluated.
pub fn optimize(e: &mut KExpr) -> Result<(), (Span, ConstError)> {
    if !matches!(e.kind, K::Un(..) | K::Bin(..) | K::Sel(..)) {
        // Optimize inside condition elements too (their right side is an expression).
        if let K::Elem(el) = &mut e.kind
            && let ElemRhs::Expr(r) = &mut el.rhs
        {
            optimize(r)?;
        }
        return Ok(());
    }
    if e.is_constant() {
        let v = cval(e).map_err(|err| (e.span, err))?;
        *e = constant_leaf(v, e.span);
        return Ok(());
    }
    match &mut e.kind {
        K::Un(_, a) => return optimize(a),
        K::Sel(c, a, b) => {
            optimize(c)?;
            optimize(a)?;
            optimize(b)?;
            return Ok(());
        }
        K::Bin(_, a, b) => {
            optimize(a)?;
            optimize(b)?;
        }
        _ => return Ok(()),
    }
    let ty = match e.check_type() {
        Ok(t) => t,
        // Already reported by the checker; leave it alone.
        Err(_) => return Ok(()),
    };
    let span = e.span;
    let K::Bin(op, a, b) = &mut e.kind else {
        return Ok(());
    };
    // `$v - n` => `$v + (-n)`
    if *op == KOp::Minus
        && let K::Int(n) = b.kind
    {
        b.kind = K::Int(n.wrapping_neg());
        *op = KOp::IPlus;
    }
    if *op == KOp::Plus {
        match a.guess_type() {
            RTy::Int => *op = KOp::IPlus,
            RTy::Str => *op = KOp::Concat,
            RTy::None => {}
        }
    }
    if matches!(op, KOp::Eq | KOp::Diff) {
        let eq = *op == KOp::Eq;
        match a.guess_type() {
            RTy::Int => *op = if eq { KOp::IEq } else { KOp::IDiff },
            RTy::Str => *op = if eq { KOp::StrEq } else { KOp::StrDiff },
            RTy::None => {}
        }
    }
    if opt_01(e, ty) {
        return Ok(());
    }
    assoc_fold(e).map_err(|err| (span, err))
}

/// `replace_int_rve` / `replace_str_rve`: `v` itself when already of the type, else a cast.
fn typed(v: KExpr, want: RTy, span: Span) -> KExpr {
    if v.guess_type() == want {
        KExpr { span, ..v }
    } else {
        let op = if want == RTy::Int {
            KOp::IntCast
        } else {
            KOp::StrCast
        };
        KExpr::un(op, v, span)
    }
}

/// `rve_opt_01`: `$v * 0`, `$v * 1`, `$v && 1`, `$v == ""` and friends.
fn opt_01(e: &mut KExpr, ty: RTy) -> bool {
    let span = e.span;
    let K::Bin(op, a, b) = &e.kind else {
        return false;
    };
    let op = *op;
    let (ct, v, ct_right) = if b.is_constant() {
        (b.as_ref(), a.as_ref(), true)
    } else if a.is_constant() {
        (a.as_ref(), b.as_ref(), false)
    } else {
        return false;
    };
    let Ok(cv) = cval(ct) else {
        return false;
    };
    let replacement = match cv {
        Value::Int(i) => {
            let i = i as i32;
            let int_v = || typed(v.clone(), RTy::Int, span);
            let konst = || KExpr::new(K::Int(i), span);
            match op {
                KOp::Mul if i == 0 => Some(konst()),
                KOp::Mul if i == 1 => Some(int_v()),
                KOp::Div if i == 0 && !ct_right => Some(konst()),
                KOp::Div if i == 1 && ct_right => Some(int_v()),
                KOp::Mod if i == 0 && !ct_right => Some(konst()),
                KOp::Minus if i == 0 && ct_right => Some(int_v()),
                KOp::BAnd if i == 0 => Some(konst()),
                KOp::BOr if i == 0 => Some(int_v()),
                KOp::LAnd if i == 0 => Some(konst()),
                KOp::LAnd if i == 1 => Some(int_v()),
                KOp::LOr if i == 1 => Some(konst()),
                KOp::LOr if i == 0 => Some(int_v()),
                KOp::Plus | KOp::IPlus if i == 0 && (op == KOp::IPlus || ty == RTy::Int) => {
                    Some(int_v())
                }
                _ => None,
            }
        }
        Value::Str(s) => match op {
            KOp::Concat if s.is_empty() => Some(typed(v.clone(), RTy::Str, span)),
            KOp::Eq | KOp::StrEq if s.is_empty() => Some(KExpr::un(KOp::Strempty, v.clone(), span)),
            _ => None,
        },
        Value::Null => None,
    };
    match replacement {
        Some(r) => {
            *e = r;
            true
        }
        None => false,
    }
}

/// Re-associates constants of associative operators: `op(op($v, a), b)` =>
/// `op($v, op(a, b))` and the commutative variants.
fn assoc_fold(e: &mut KExpr) -> Result<(), ConstError> {
    let span = e.span;
    let K::Bin(op, a, b) = &mut e.kind else {
        return Ok(());
    };
    let op = *op;
    if !op.is_assoc() {
        return Ok(());
    }
    if b.is_constant() {
        let K::Bin(iop, ia, ib) = &mut a.kind else {
            return Ok(());
        };
        if *iop != op {
            return Ok(());
        }
        if ib.is_constant() {
            // op(op($v, x), y) => op($v, op(x, y))
            let folded = KExpr::new(K::Bin(op, ib.clone(), b.clone()), span);
            let v = cval(&folded)?;
            let inner_v = std::mem::replace(ia.as_mut(), KExpr::new(K::Bad, span));
            **b = constant_leaf(v, b.span);
            **a = inner_v;
        } else if ia.is_constant() && op.is_commutative() {
            // op(op(x, $v), y) => op(op(x, y), $v)
            let folded = KExpr::new(K::Bin(op, ia.clone(), b.clone()), span);
            let v = cval(&folded)?;
            let inner_v = std::mem::replace(ib.as_mut(), KExpr::new(K::Bad, span));
            **a = constant_leaf(v, a.span);
            **b = inner_v;
        }
    } else if a.is_constant() {
        let K::Bin(iop, ia, ib) = &mut b.kind else {
            return Ok(());
        };
        if *iop != op {
            return Ok(());
        }
        if ib.is_constant() && op.is_commutative() {
            // op(x, op($v, y)) => op(op(x, y), $v)
            let folded = KExpr::new(K::Bin(op, a.clone(), ib.clone()), span);
            let v = cval(&folded)?;
            let inner_v = std::mem::replace(ia.as_mut(), KExpr::new(K::Bad, span));
            **a = constant_leaf(v, a.span);
            **b = inner_v;
        } else if ia.is_constant() {
            // op(x, op(y, $v)) => op(op(x, y), $v)
            let folded = KExpr::new(K::Bin(op, a.clone(), ia.clone()), span);
            let v = cval(&folded)?;
            let inner_v = std::mem::replace(ib.as_mut(), KExpr::new(K::Bad, span));
            **a = constant_leaf(v, a.span);
            **b = inner_v;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp() -> Span {
        Span::default()
    }
    fn int(i: i32) -> KExpr {
        KExpr::new(K::Int(i), sp())
    }
    fn st(s: &str) -> KExpr {
        KExpr::new(K::Str(Bytes::from(s.to_string())), sp())
    }
    fn pv(s: &str) -> KExpr {
        KExpr::new(K::Pv(s.into()), sp())
    }
    fn bin(op: KOp, a: KExpr, b: KExpr) -> KExpr {
        KExpr::new(K::Bin(op, Box::new(a), Box::new(b)), sp())
    }

    #[test]
    fn constants_fold_with_kamailio_rules() {
        let mut e = bin(KOp::Plus, st("10"), int(5));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(e.kind, K::Str(Bytes::from_static(b"105")));
        // `+` inside an integer operator adds as integers.
        let mut e = bin(KOp::Mul, bin(KOp::Plus, st("10"), int(5)), int(2));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(e.kind, K::Int(30));
        let mut e = bin(KOp::IPlus, int(2147483647), int(1));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(e.kind, K::Int(i32::MIN));
        let mut e = bin(KOp::Div, int(1), int(0));
        assert!(optimize(&mut e).is_err());
    }

    #[test]
    fn optimizer_rewrites_like_kamailio() {
        // `$x && 1` is `(int)$x`.
        let mut e = bin(KOp::LAnd, pv("$var(x)"), int(1));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(e.kind, K::Un(KOp::IntCast, _)));
        // `$x == ""` is `strempty($x)`, `$x != ""` stays.
        let mut e = bin(KOp::Eq, pv("$var(x)"), st(""));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(e.kind, K::Un(KOp::Strempty, _)));
        let mut e = bin(KOp::Diff, pv("$var(x)"), st(""));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(e.kind, K::Bin(KOp::Diff, _, _)));
        // `$x - 3` is `$x + -3`; `"a" + $x` is a concatenation.
        let mut e = bin(KOp::Minus, pv("$var(x)"), int(3));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(&e.kind, K::Bin(KOp::IPlus, _, b) if b.kind == K::Int(-3)));
        let mut e = bin(KOp::Plus, st("a"), pv("$var(x)"));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(e.kind, K::Bin(KOp::Concat, _, _)));
        // ($x * 2) * 3 => $x * 6
        let mut e = bin(KOp::Mul, bin(KOp::Mul, pv("$var(x)"), int(2)), int(3));
        optimize(&mut e).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            matches!(&e.kind, K::Bin(KOp::Mul, a, b) if b.kind == K::Int(6) && matches!(a.kind, K::Pv(_)))
        );
    }

    #[test]
    fn type_errors_like_kamailio() {
        let e = bin(KOp::Plus, int(5), st("10"));
        assert_eq!(
            e.check_type().map_err(|x| (x.1, x.2)),
            Err((RTy::Str, RTy::Int))
        );
        assert_eq!(bin(KOp::Plus, st("10"), int(5)).check_type(), Ok(RTy::Str));
        assert!(bin(KOp::StrEq, int(5), st("a")).check_type().is_err());
        assert!(KExpr::un(KOp::Strlen, int(5), sp()).check_type().is_err());
        assert_eq!(bin(KOp::Eq, pv("$x"), int(1)).check_type(), Ok(RTy::Int));
    }
}
