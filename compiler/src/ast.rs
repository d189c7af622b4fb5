//! The syntax tree of a kamailio.cfg, after preprocessing.
//!
//! Every node carries a [`Span`] pointing at the original file (through includes and define
//! substitutions), so later phases can report `file:line:col`. Nothing here is resolved yet:
//! function names, pseudo-variables and route names are plain text until the checker resolves
//! them against the KSR table and the pseudo-variable registry.

use bytes::Bytes;

/// Identifies a source file in the [`crate::source::SourceMap`].
pub type FileId = u32;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub lo: u32,
    pub hi: u32,
}

impl Span {
    pub fn new(file: FileId, lo: u32, hi: u32) -> Span {
        Span { file, lo, hi }
    }

    /// The smallest span covering both (same file assumed; otherwise `self`).
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span {
            file: self.file,
            lo: self.lo.min(other.lo),
            hi: self.hi.max(other.hi),
        }
    }
}

/// A name with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A whole configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    /// A core global parameter: `debug=2`, `listen=udp:1.2.3.4:5060 advertise ...`.
    GlobalParam { name: Ident, value: ParamValue },
    /// `group.var = value [description "..."]` custom cfg variable.
    CfgVar {
        group: Ident,
        var: Ident,
        value: Literal,
        description: Option<Bytes>,
    },
    /// `loadmodule "tm.so"` / `loadmodulex` (second arg: optional option string).
    LoadModule {
        path: Bytes,
        opts: Option<Bytes>,
        expand: bool,
    },
    /// `loadpath "..."` / `mpath="..."`.
    LoadPath { path: Bytes },
    /// `modparam("tm|rr", "param", value)`; `modparamx` when `expand` is set.
    ModParam {
        modules: Bytes,
        param: Bytes,
        value: ModParamValue,
        expand: bool,
    },
    /// `cfgengine "lua"`.
    CfgEngine { name: Bytes },
    /// `flags NAME[:num], ...`.
    Flags { flags: Vec<(Ident, Option<i64>)> },
    /// `avpflags NAME, ...`.
    AvpFlags { flags: Vec<Ident> },
    /// A routing block.
    Route(RouteBlock),
}

/// Value of a core global parameter. Most are one literal; `listen`, `alias`, `socket` and a
/// few others have their own structure.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Literal(Literal),
    /// `listen=...` / `alias=...` / `domain=...`: one or more socket/host specs.
    Sockets(Vec<SocketSpec>),
    /// `socket = { bind = ...; name = ...; }`.
    SocketBlock(Vec<(Ident, SocketAttr)>),
    /// `advertised_address=...`, `tcp_source_ipv4=...`: a host or address.
    Host(String),
    /// `kemi.request_route_callback = "..."` and `coreparam[...]`: key and value.
    Keyed {
        key: String,
        value: Literal,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum SocketAttr {
    Socket(SocketSpec),
    Literal(Literal),
}

/// `[proto:]host[:port[-port]] [advertise [proto:]host[:port]] [name "n"] [virtual]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SocketSpec {
    pub proto: Option<String>,
    /// Host name, IPv4, IPv6 (without brackets), or `*`.
    pub host: String,
    pub port: Option<u16>,
    pub port_end: Option<u16>,
    pub advertise: Option<Box<SocketSpec>>,
    pub name: Option<Bytes>,
    pub is_virtual: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Int(i64),
    Str(Bytes),
    /// A bare identifier (`log_facility=LOG_LOCAL0`, `tcp_poll_method=epoll`).
    Ident(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ModParamValue {
    Int(i64),
    Str(Bytes),
    /// `modparamx` only: a pseudo-variable evaluated at start-up.
    Pv(PvRef),
}

/// The block types of the language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// `request_route`, `route`, `route[NAME]` (named = sub-route).
    Request,
    Failure,
    /// `onreply_route` / `reply_route`. Unnamed = core reply route; named = tm onreply route.
    OnReply,
    Branch,
    OnSend,
    /// `event_route[mod:name]`.
    Event,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouteBlock {
    pub kind: BlockKind,
    /// The keyword as written (`request_route`, `route`, `reply_route`, ...).
    pub keyword: Ident,
    /// `None` for the unnamed main block of the kind. Numeric names are kept as text.
    pub name: Option<Ident>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// A function call or core action used as a statement: `t_relay();`, `forward();`.
    Call(Call),
    /// Any other expression used as a statement (e.g. `$var(x) == 1;` is legal but useless).
    Expr(Expr),
    /// `{ ... }` nested block.
    Block(Block),
    If {
        cond: Expr,
        then: Box<Stmt>,
        otherwise: Option<Box<Stmt>>,
    },
    Switch {
        scrutinee: Expr,
        cases: Vec<Case>,
        span_body: Span,
    },
    While {
        cond: Expr,
        body: Box<Stmt>,
    },
    /// `lhs = rhs` (also `:=`, which Kamailio treats as `=` with a special meaning for AVPs:
    /// remove all values first).
    Assign {
        lhs: LValue,
        op: AssignOp,
        rhs: Expr,
    },
    Return(Option<Expr>),
    Exit(Option<Expr>),
    Drop(Option<Expr>),
    Break,
    /// A lone `;`.
    Empty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignOp {
    /// `=`
    Set,
    /// `:=`
    SetAll,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// `None` for `default:`.
    pub label: Option<CaseLabel>,
    /// The statements up to the next label. `None` when the label has no statements at all
    /// (`case 1: case 2: ...` falls through).
    pub body: Option<Vec<Stmt>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CaseLabel {
    /// `case 1:` / `case "abc":` / `case FOO:` (after define substitution).
    Value(Expr),
    /// `case /"regex":`.
    Regex(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub enum LValue {
    Pv(PvRef),
    /// `$avp(...)` written in AVP syntax (`$foo`, `%foo`, `$f.foo`, `$avp(s:foo)[1]` stays Pv).
    Avp(AvpRef),
}

/// A function call: module export or core action, `name(args)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub name: Ident,
    pub args: Vec<Expr>,
    /// True when written with parentheses (`revert_uri` and `force_rport` may omit them).
    pub parens: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    /// A string literal after escape processing and adjacent-literal concatenation. Function
    /// arguments keep their pseudo-variables as text here (`"$rU@$rd"`): the checker decides
    /// whether a parameter is a format string.
    Str(Bytes),
    /// A bare identifier left after define substitution (`route(RELAY)`, `setflag(FLT_ACC)`,
    /// `proto == udp`, host names).
    Ident(String),
    /// A dotted host name or other dotted identifier: `forward(sip.example.com)`.
    Host(String),
    /// An IPv4/IPv6 address or network: `1.2.3.4`, `10.0.0.0/8`, `[::1]`, `fe80::/10`.
    Ip(IpNet),
    Pv(PvRef),
    Avp(AvpRef),
    /// `@ruri.user`, `@via[1].branch`.
    Select(SelectRef),
    Call(Call),
    /// `myself`.
    Myself,
    /// Built-in message fields used in conditions: `method`, `uri`, `from_uri`, `to_uri`,
    /// `status`, `src_ip`, `dst_ip`, `snd_ip`, `to_ip`, `src_port`, `dst_port`, `snd_port`,
    /// `to_port`, `proto`, `snd_proto`, `af`, `snd_af`, `msg:len`, `uri:host`, `uri:port`.
    Field(MsgField),
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Cast {
        to: CastType,
        expr: Box<Expr>,
    },
    Defined(Box<Expr>),
    Strlen(Box<Expr>),
    Strempty(Box<Expr>),
    Selval {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// `{ actions }` used as a value: runs the actions, value = last return code.
    Block(Block),
    /// `($x = expr)` used as a value.
    Assign {
        lhs: LValue,
        rhs: Box<Expr>,
    },
    /// A protocol keyword in a position that takes one (`proto == tcp`): udp/tcp/tls/sctp/ws/wss/*.
    Proto(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsgField {
    Method,
    Uri,
    FromUri,
    ToUri,
    Status,
    SrcIp,
    DstIp,
    SndIp,
    ToIp,
    SrcPort,
    DstPort,
    SndPort,
    ToPort,
    Proto,
    SndProto,
    Af,
    SndAf,
    MsgLen,
    UriHost,
    UriPort,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `!` / `not`
    Not,
    /// `~`
    BitNot,
    /// `-`
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Or,
    And,
    BitOr,
    BitAnd,
    BitXor,
    Shl,
    Shr,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Match,
    /// `ieq`
    IntEq,
    /// `ine`
    IntNe,
    /// `eq`
    StrEq,
    /// `ne`
    StrNe,
    Gt,
    Lt,
    Ge,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    /// `mod`
    Mod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CastType {
    Int,
    Str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    /// Prefix length when written as a network (`/24` or `/255.255.255.0` converted).
    pub prefix: Option<u8>,
}

/// A pseudo-variable as written, e.g. `$ru`, `$hdr(From)[-1]`, `$(ru{uri.user})`. The text is
/// parsed and resolved by `vm::pv` during checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvRef {
    pub text: String,
    pub span: Span,
}

/// An AVP in attribute syntax: `$foo`, `%foo`, `$f.foo`, `$avp(...)` in SER-compat mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvpRef {
    pub text: String,
    pub span: Span,
}

/// A select expression as written: `@ruri.user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectRef {
    pub text: String,
    pub span: Span,
}
