//! Prints an AST back as cfg text: the preprocessed configuration (`ksr check --cfg-print`,
//! like `kamailio --cfg-print`). The output parses back to the same tree; binary expressions
//! are parenthesised so precedence never changes meaning.

use crate::ast::*;
use std::fmt::Write as _;

pub fn print(cfg: &Config) -> String {
    let mut p = Printer {
        out: String::new(),
        indent: 0,
    };
    for item in &cfg.items {
        p.item(item);
    }
    p.out
}

struct Printer {
    out: String,
    indent: usize,
}

/// A string literal with the escapes the lexer understands.
pub fn quote(s: &[u8]) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for &b in s {
        match b {
            b'"' => o.push_str("\\\""),
            b'\\' => o.push_str("\\\\"),
            b'\n' => o.push_str("\\n"),
            b'\r' => o.push_str("\\r"),
            b'\t' => o.push_str("\\t"),
            0x20..=0x7e => o.push(b as char),
            _ => {
                let _ = write!(o, "\\x{b:02x}");
            }
        }
    }
    o.push('"');
    o
}

fn field_name(f: MsgField) -> &'static str {
    use MsgField::*;
    match f {
        Method => "method",
        Uri => "uri",
        FromUri => "from_uri",
        ToUri => "to_uri",
        Status => "status",
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

pub fn binary_op(op: BinaryOp) -> &'static str {
    use BinaryOp::*;
    match op {
        Or => "||",
        And => "&&",
        BitOr => "|",
        BitAnd => "&",
        BitXor => "^",
        Shl => "<<",
        Shr => ">>",
        Eq => "==",
        Ne => "!=",
        Match => "=~",
        IntEq => "ieq",
        IntNe => "ine",
        StrEq => "eq",
        StrNe => "ne",
        Gt => ">",
        Lt => "<",
        Ge => ">=",
        Le => "<=",
        Add => "+",
        Sub => "-",
        Mul => "*",
        Div => "/",
        Mod => "mod",
    }
}

fn socket(s: &SocketSpec) -> String {
    let mut o = String::new();
    if let Some(p) = &s.proto {
        let _ = write!(o, "{p}:");
    }
    if s.host.contains(':') {
        let _ = write!(o, "[{}]", s.host);
    } else {
        o.push_str(&s.host);
    }
    if let Some(p) = s.port {
        let _ = write!(o, ":{p}");
        if let Some(e) = s.port_end {
            let _ = write!(o, "-{e}");
        }
    }
    if let Some(a) = &s.advertise {
        let _ = write!(o, " advertise {}", socket(a));
    }
    if let Some(n) = &s.name {
        let _ = write!(o, " name {}", quote(n));
    }
    if s.is_virtual {
        o.push_str(" virtual");
    }
    o
}

fn literal(l: &Literal) -> String {
    match l {
        Literal::Int(i) => i.to_string(),
        Literal::Str(s) => quote(s),
        Literal::Ident(s) => s.clone(),
    }
}

impl Printer {
    fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.out.push('\t');
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn item(&mut self, item: &Item) {
        match &item.kind {
            ItemKind::GlobalParam { name, value } => {
                let v = match value {
                    ParamValue::Literal(l) => literal(l),
                    ParamValue::Sockets(s) => s.iter().map(socket).collect::<Vec<_>>().join(" "),
                    ParamValue::SocketBlock(attrs) => {
                        let parts: Vec<String> = attrs
                            .iter()
                            .map(|(k, a)| {
                                let v = match a {
                                    SocketAttr::Socket(s) => socket(s),
                                    SocketAttr::Literal(l) => literal(l),
                                };
                                format!("{} = {v};", k.name)
                            })
                            .collect();
                        format!("{{ {} }}", parts.join(" "))
                    }
                    ParamValue::Host(h) => h.clone(),
                    ParamValue::Keyed { key, value } => format!("[{key}] {}", literal(value)),
                };
                self.line(&format!("{}={v}", name.name));
            }
            ItemKind::CfgVar {
                group,
                var,
                value,
                description,
            } => {
                let mut s = format!("{}.{} = {}", group.name, var.name, literal(value));
                if let Some(d) = description {
                    let _ = write!(s, " description {}", quote(d));
                }
                self.line(&s);
            }
            ItemKind::LoadModule { path, opts, expand } => {
                let kw = if *expand { "loadmodulex" } else { "loadmodule" };
                match opts {
                    Some(o) => self.line(&format!("{kw}({}, {})", quote(path), quote(o))),
                    None => self.line(&format!("{kw} {}", quote(path))),
                }
            }
            ItemKind::LoadPath { path } => self.line(&format!("loadpath {}", quote(path))),
            ItemKind::ModParam {
                modules,
                param,
                value,
                expand,
            } => {
                let v = match value {
                    ModParamValue::Int(i) => i.to_string(),
                    ModParamValue::Str(s) => quote(s),
                    ModParamValue::Pv(p) => p.text.clone(),
                };
                let kw = if *expand { "modparamx" } else { "modparam" };
                self.line(&format!("{kw}({}, {}, {v})", quote(modules), quote(param)));
            }
            ItemKind::CfgEngine { name } => self.line(&format!("cfgengine {}", quote(name))),
            ItemKind::Flags { flags } => {
                let parts: Vec<String> = flags
                    .iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!("{}:{v}", n.name),
                        None => n.name.clone(),
                    })
                    .collect();
                self.line(&format!("flags {}", parts.join(", ")));
            }
            ItemKind::AvpFlags { flags } => {
                let parts: Vec<&str> = flags.iter().map(|f| f.name.as_str()).collect();
                self.line(&format!("avpflags {}", parts.join(", ")));
            }
            ItemKind::Route(r) => {
                self.out.push('\n');
                let head = match &r.name {
                    Some(n) => format!("{}[{}] {{", r.keyword.name, route_name(&n.name)),
                    None => format!("{} {{", r.keyword.name),
                };
                self.line(&head);
                self.indent += 1;
                for s in &r.body.stmts {
                    self.stmt(s);
                }
                self.indent -= 1;
                self.line("}");
            }
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Call(c) => {
                let t = call(c);
                self.line(&format!("{t};"));
            }
            StmtKind::Expr(e) => {
                let t = expr(e);
                self.line(&format!("{t};"));
            }
            StmtKind::Block(b) => {
                self.line("{");
                self.indent += 1;
                for s in &b.stmts {
                    self.stmt(s);
                }
                self.indent -= 1;
                self.line("}");
            }
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                self.line(&format!("if ({}) {{", expr(cond)));
                self.body(then);
                match otherwise {
                    Some(o) => {
                        self.line("} else {");
                        self.body(o);
                        self.line("}");
                    }
                    None => self.line("}"),
                }
            }
            StmtKind::Switch {
                scrutinee, cases, ..
            } => {
                self.line(&format!("switch ({}) {{", expr(scrutinee)));
                self.indent += 1;
                for c in cases {
                    match &c.label {
                        Some(CaseLabel::Value(v)) => self.line(&format!("case {}:", expr(v))),
                        Some(CaseLabel::Regex(v)) => self.line(&format!("case /{}:", expr(v))),
                        None => self.line("default:"),
                    }
                    if let Some(body) = &c.body {
                        self.indent += 1;
                        for s in body {
                            self.stmt(s);
                        }
                        self.indent -= 1;
                    }
                }
                self.indent -= 1;
                self.line("}");
            }
            StmtKind::While { cond, body } => {
                self.line(&format!("while ({}) {{", expr(cond)));
                self.body(body);
                self.line("}");
            }
            StmtKind::Assign { lhs, op, rhs } => {
                let op = match op {
                    AssignOp::Set => "=",
                    AssignOp::SetAll => ":=",
                };
                self.line(&format!("{} {op} {};", lvalue(lhs), expr(rhs)));
            }
            StmtKind::Return(e) => self.ret("return", e),
            StmtKind::Exit(e) => self.ret("exit", e),
            StmtKind::Drop(e) => self.ret("drop", e),
            StmtKind::Break => self.line("break;"),
            StmtKind::Empty => {}
        }
    }

    /// The body of an if/while, unwrapping a block so braces are not doubled.
    fn body(&mut self, s: &Stmt) {
        self.indent += 1;
        match &s.kind {
            StmtKind::Block(b) => {
                for s in &b.stmts {
                    self.stmt(s);
                }
            }
            _ => self.stmt(s),
        }
        self.indent -= 1;
    }

    fn ret(&mut self, kw: &str, e: &Option<Expr>) {
        match e {
            Some(e) => self.line(&format!("{kw} {};", expr(e))),
            None => self.line(&format!("{kw};")),
        }
    }
}

fn route_name(n: &str) -> String {
    if !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-')
    {
        n.to_string()
    } else {
        quote(n.as_bytes())
    }
}

fn lvalue(l: &LValue) -> &str {
    match l {
        LValue::Pv(p) => &p.text,
        LValue::Avp(a) => &a.text,
    }
}

fn call(c: &Call) -> String {
    if !c.parens {
        return c.name.name.clone();
    }
    let args: Vec<String> = c.args.iter().map(expr).collect();
    format!("{}({})", c.name.name, args.join(", "))
}

pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(i) => i.to_string(),
        ExprKind::Str(s) => quote(s),
        ExprKind::Ident(s) | ExprKind::Host(s) | ExprKind::Proto(s) => s.clone(),
        ExprKind::Ip(ip) => {
            let a = match ip.addr {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            match ip.prefix {
                Some(p) => format!("{a}/{p}"),
                None => a,
            }
        }
        ExprKind::Pv(p) => p.text.clone(),
        ExprKind::Avp(a) => a.text.clone(),
        ExprKind::Select(s) => s.text.clone(),
        ExprKind::Call(c) => call(c),
        ExprKind::Myself => "myself".into(),
        ExprKind::Field(f) => field_name(*f).into(),
        ExprKind::Unary { op, expr: x } => {
            let o = match op {
                UnaryOp::Not => "!",
                UnaryOp::BitNot => "~",
                UnaryOp::Neg => "-",
            };
            format!("{o}({})", expr(x))
        }
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", expr(lhs), binary_op(*op), expr(rhs))
        }
        ExprKind::Cast { to, expr: x } => {
            let t = match to {
                CastType::Int => "(int)",
                CastType::Str => "(str)",
            };
            format!("{t}({})", expr(x))
        }
        ExprKind::Defined(x) => format!("defined ({})", expr(x)),
        ExprKind::Strlen(x) => format!("strlen({})", expr(x)),
        ExprKind::Strempty(x) => format!("strempty({})", expr(x)),
        ExprKind::Selval {
            cond,
            then,
            otherwise,
        } => format!(
            "selval({}, {}, {})",
            expr(cond),
            expr(then),
            expr(otherwise)
        ),
        ExprKind::Block(b) => {
            let mut p = Printer {
                out: String::new(),
                indent: 0,
            };
            for s in &b.stmts {
                p.stmt(s);
            }
            format!("{{ {} }}", p.out.replace('\n', " ").trim())
        }
        ExprKind::Assign { lhs, rhs } => format!("({} = {})", lvalue(lhs), expr(rhs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::parse_str;
    use crate::preprocess::Options;

    #[test]
    fn round_trip_is_stable() {
        let src = r#"
#!define X 3
debug=X
listen=udp:127.0.0.1:5060 advertise 1.2.3.4:5070 name "s1"
modparam("tm|rr", "p", "a" "b")
loadmodule "sl.so"
flags FL_A:1, FL_B
request_route {
    if (!uri==myself && $rU != $null) { sl_send_reply("404", "x\ty"); exit; }
    else if (src_ip == 10.0.0.0/8) drop;
    switch ($rm) { case "INVITE": case "ACK": route(R1); break; case /"^B": return -1; default: $var(x) = (int)$var(y) + 2 * 3; }
    while ($var(i) < 10) { $var(i) = $var(i) + 1; }
    force_rport;
    setflag(FL_A);
}
route[R1] { return; }
event_route[htable:mod-init] { $sht(a=>b) = 1; }
"#;
        let r = parse_str("t.cfg", src, &Options::default());
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        let once = print(r.config.as_ref().unwrap());
        let r2 = parse_str("t2.cfg", &once, &Options::default());
        assert!(r2.diagnostics.is_empty(), "{once}\n{:?}", r2.diagnostics);
        let twice = print(r2.config.as_ref().unwrap());
        assert_eq!(once, twice);
        assert!(once.contains("debug=3"));
        assert!(once.contains("modparam(\"tm|rr\", \"p\", \"ab\")"));
        assert!(
            once.contains("!((uri == myself))") || once.contains("!(uri == myself)"),
            "{once}"
        );
    }
}
