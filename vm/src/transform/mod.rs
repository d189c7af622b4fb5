//! Transformations: `{class.name,params}` applied to a pseudo-variable value in the full
//! form `$(name{s.len}{s.int})`.
//!
//! Every transformation is a plain function from the input value and its evaluated
//! parameters to a new value; `None` is a failure, which makes the pseudo-variable read as
//! null (and print as nothing in a format string), like Kamailio.
//!
//! Parsing mirrors Kamailio 5.6 (`tr_lookup` and the `tr_parse_*` functions of the pv,
//! textops, corex and xhttp modules): class names are case-sensitive, transformation names
//! are not, blanks around names are ignored, string parameters run to the next `,` or `}`
//! (keeping inner spaces), and a parameter starting with `$` is a pseudo-variable evaluated
//! per use.
//!
//! Classes: `s`, `uri`, `param`, `nameaddr`, `tobody`, `line`, `urialias`, `val`, `num`
//! (module pv), `re` (textops), `sock` (corex), `url` (xhttp). Not implemented: `json`,
//! `kz`, `msrpuri`, `sql` (modules ksr does not ship).
//!
//! Transformations that Kamailio 5.6 does not have yet (they come from later versions) are
//! marked with `in_kamailio_5_6: false` in [`TransDef`]; ksr accepts them. The upstream
//! `{s.sha1}` is unusable there (its name check compares one character, so only `{s.s}`
//! reaches it); ksr implements `{s.sha1}` as SHA-1 and does not accept `{s.s}`.
//!
//! Behaviour was checked against Kamailio 5.6.3 (`vm/tests/oracle/`, 767 evaluations and
//! 138 format syntax cases). Known differences, all deliberate:
//!
//! * Values are an integer or a string, not both: where Kamailio keeps the original text of
//!   a number (`{s.int}` of `+7` prints `+7`, `{uri.port}` of `:05060` prints `05060`) ksr
//!   prints the number.
//! * `{uri.saor}`, `{uri.suri}`, `{uri.duri}`: 5.6 inserts a stray byte after the scheme;
//!   ksr gives the corrected result of later versions.
//! * `{s.rbefore}` when the value does not end with the separator reads past the value in
//!   5.6; ksr returns the text before the last separator.
//! * `{nameaddr.*}` of a name-addr without `>`: 5.6 fails once, then its one-entry cache
//!   serves a half-parsed value for the same text; ksr always fails.
//! * `{re.subst}`: POSIX leftmost-longest alternation is leftmost-first here (`a|an`), and
//!   an expression coming from a pseudo-variable may not contain pseudo-variables in its
//!   replacement.
//! * `{sock.*}` accepts `tls:` even when TLS is disabled.
//! * Integer parameters are parsed as 32-bit values; larger literals are refused.

mod codec;
mod hash;
mod line;
mod misc;
mod nameaddr;
mod params;
mod strings;
mod subst;
mod uri;

pub use subst::{SubstExpr, parse_subst_expr};

use crate::pv::{PvParseError, PvParser, TransFn, TransParam, Transform};
use crate::value::Value;
use bytes::Bytes;

/// What a parameter of a transformation accepts when written as a literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A signed integer (`+`/`-` and blanks allowed before the digits).
    Int,
    /// An integer literal that must not be negative.
    UInt,
    /// Text up to the next `,` or `}`.
    Str,
    /// Like `Str`, with `\n`, `\r`, `\t`, `\\` (and `\x` for any other x) decoded in a
    /// literal.
    StrEsc,
    /// Like `Str`, but a `,` that ends the text is part of it (so `{s.count,,}` counts
    /// commas).
    StrSep,
    /// One character, or one of the escapes `\\`, `\n`, `\r`, `\t`; no pseudo-variable.
    Char,
    /// A separator of exactly one character right after the comma; no pseudo-variable.
    Sep,
    /// A one-character separator (a `,` that ends it is part of it), or a pseudo-variable.
    SepOrPv,
    /// A substitution `/re/repl/flags` (up to the closing `}`), or a pseudo-variable.
    Subst,
}

/// One parameter slot of a transformation.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    pub kind: ParamKind,
    pub optional: bool,
}

/// A transformation ksr implements.
#[derive(Debug)]
pub struct TransDef {
    /// Class, e.g. `s` in `{s.len}`.
    pub class: &'static str,
    /// Name, e.g. `len`; matched case-insensitively.
    pub name: &'static str,
    /// The Kamailio module that provides the class (`pv`, `textops`, `corex`, `xhttp`).
    pub module: &'static str,
    pub params: &'static [ParamSpec],
    pub func: TransFn,
    /// False for transformations added after Kamailio 5.6.
    pub in_kamailio_5_6: bool,
}

const fn p(kind: ParamKind) -> ParamSpec {
    ParamSpec {
        kind,
        optional: false,
    }
}

const fn opt(kind: ParamKind) -> ParamSpec {
    ParamSpec {
        kind,
        optional: true,
    }
}

use ParamKind::*;

const NONE: &[ParamSpec] = &[];
const INT: &[ParamSpec] = &[p(Int)];
const STR: &[ParamSpec] = &[p(Str)];
const STR_SEP: &[ParamSpec] = &[p(StrSep)];
const OPT_INT: &[ParamSpec] = &[opt(Int)];
const OPT_STR: &[ParamSpec] = &[opt(Str)];

macro_rules! defs {
    ($( $class:literal $module:literal $name:literal $params:expr, $func:path, $k56:literal; )*) => {
        &[ $( TransDef {
            class: $class,
            name: $name,
            module: $module,
            params: $params,
            func: $func,
            in_kamailio_5_6: $k56,
        }, )* ]
    };
}

static TABLE: &[TransDef] = defs! {
    "s" "pv" "len" NONE, strings::len, true;
    "s" "pv" "int" NONE, strings::int, true;
    "s" "pv" "intv" NONE, strings::intv, false;
    "s" "pv" "md5" NONE, hash::md5, true;
    "s" "pv" "sha1" NONE, hash::sha1, false;
    "s" "pv" "sha256" NONE, hash::sha256, true;
    "s" "pv" "sha384" NONE, hash::sha384, true;
    "s" "pv" "sha512" NONE, hash::sha512, true;
    "s" "pv" "sha3" OPT_STR, hash::sha3, false;
    "s" "pv" "keccak" OPT_STR, hash::keccak, false;
    "s" "pv" "crc32" NONE, hash::crc32, false;
    "s" "pv" "corehash" OPT_INT, hash::corehash, true;
    "s" "pv" "rmws" NONE, strings::rmws, true;
    "s" "pv" "rmhdws" NONE, strings::rmhdws, false;
    "s" "pv" "rmhlws" NONE, strings::rmhlws, false;
    "s" "pv" "tolower" NONE, strings::tolower, true;
    "s" "pv" "toupper" NONE, strings::toupper, true;
    "s" "pv" "numeric" NONE, strings::numeric, true;
    "s" "pv" "encode.hexa" NONE, codec::encode_hexa, true;
    "s" "pv" "decode.hexa" NONE, codec::decode_hexa, true;
    "s" "pv" "encode.7bit" NONE, codec::encode_7bit, true;
    "s" "pv" "decode.7bit" NONE, codec::decode_7bit, true;
    "s" "pv" "encode.base58" NONE, codec::encode_base58, true;
    "s" "pv" "decode.base58" NONE, codec::decode_base58, true;
    "s" "pv" "encode.base64" NONE, codec::encode_base64, true;
    "s" "pv" "decode.base64" NONE, codec::decode_base64, true;
    "s" "pv" "encode.base64t" NONE, codec::encode_base64t, true;
    "s" "pv" "decode.base64t" NONE, codec::decode_base64t, true;
    "s" "pv" "encode.base64url" NONE, codec::encode_base64url, true;
    "s" "pv" "decode.base64url" NONE, codec::decode_base64url, true;
    "s" "pv" "encode.base64urlt" NONE, codec::encode_base64urlt, true;
    "s" "pv" "decode.base64urlt" NONE, codec::decode_base64urlt, true;
    "s" "pv" "escape.common" NONE, codec::escape_common, true;
    "s" "pv" "unescape.common" NONE, codec::unescape_common, true;
    "s" "pv" "escape.crlf" NONE, codec::escape_crlf, false;
    "s" "pv" "unescape.crlf" NONE, codec::unescape_crlf, false;
    "s" "pv" "escape.user" NONE, codec::escape_user, true;
    "s" "pv" "unescape.user" NONE, codec::unescape_user, true;
    "s" "pv" "escape.param" NONE, codec::escape_param, true;
    "s" "pv" "unescape.param" NONE, codec::unescape_param, true;
    "s" "pv" "escape.csv" NONE, codec::escape_csv, true;
    "s" "pv" "urlencode.param" NONE, codec::urlencode_param, true;
    "s" "pv" "urldecode.param" NONE, codec::urldecode_param, true;
    "s" "pv" "prefixes" OPT_INT, strings::prefixes, true;
    "s" "pv" "prefixes.quoted" OPT_INT, strings::prefixes_quoted, true;
    "s" "pv" "substr" &[p(Int), p(UInt)], strings::substr, true;
    "s" "pv" "select" &[p(Int), p(Char)], strings::select, true;
    "s" "pv" "selectsw" INT, strings::selectws, false;
    "s" "pv" "strip" INT, strings::strip, true;
    "s" "pv" "striptail" INT, strings::striptail, true;
    "s" "pv" "stripto" STR, strings::stripto, true;
    "s" "pv" "ftime" STR, strings::ftime, true;
    "s" "pv" "replace" &[p(Str), p(Str)], strings::replace, true;
    "s" "pv" "trim" NONE, strings::trim, true;
    "s" "pv" "rtrim" NONE, strings::rtrim, true;
    "s" "pv" "ltrim" NONE, strings::ltrim, true;
    "s" "pv" "rm" &[p(StrEsc)], strings::rm, true;
    "s" "pv" "unquote" NONE, strings::unquote, true;
    "s" "pv" "unbracket" NONE, strings::unbracket, true;
    "s" "pv" "count" STR_SEP, strings::count, true;
    "s" "pv" "before" STR_SEP, strings::before, true;
    "s" "pv" "after" STR_SEP, strings::after, true;
    "s" "pv" "rbefore" STR_SEP, strings::rbefore, true;
    "s" "pv" "rafter" STR_SEP, strings::rafter, true;
    "s" "pv" "fmtlines" &[p(UInt), p(UInt)], strings::fmtlines, true;
    "s" "pv" "fmtlinet" &[p(UInt), p(UInt)], strings::fmtlinet, true;
    "s" "pv" "charat" INT, strings::charat, false;
    "s" "pv" "byteat" INT, strings::byteat, false;

    "uri" "pv" "user" NONE, uri::user, true;
    "uri" "pv" "host" NONE, uri::host, true;
    "uri" "pv" "domain" NONE, uri::host, true;
    "uri" "pv" "passwd" NONE, uri::passwd, true;
    "uri" "pv" "port" NONE, uri::port, true;
    "uri" "pv" "saor" NONE, uri::saor, true;
    "uri" "pv" "suri" NONE, uri::suri, true;
    "uri" "pv" "duri" NONE, uri::duri, true;
    "uri" "pv" "params" NONE, uri::params, true;
    "uri" "pv" "headers" NONE, uri::headers, true;
    "uri" "pv" "param" STR, uri::param, true;
    "uri" "pv" "rmparam" STR, uri::rmparam, false;
    "uri" "pv" "transport" NONE, uri::transport, true;
    "uri" "pv" "ttl" NONE, uri::ttl, true;
    "uri" "pv" "uparam" NONE, uri::uparam, true;
    "uri" "pv" "maddr" NONE, uri::maddr, true;
    "uri" "pv" "method" NONE, uri::method, true;
    "uri" "pv" "lr" NONE, uri::lr, true;
    "uri" "pv" "r2" NONE, uri::r2, true;
    "uri" "pv" "scheme" NONE, uri::scheme, true;
    "uri" "pv" "tosocket" NONE, uri::tosocket, true;

    "param" "pv" "value" &[p(Str), opt(Sep)], params::value, true;
    "param" "pv" "in" &[p(Str), opt(Sep)], params::is_in, true;
    "param" "pv" "valueat" &[p(Int), opt(Sep)], params::valueat, true;
    "param" "pv" "name" &[p(Int), opt(Sep)], params::name, true;
    "param" "pv" "count" &[opt(SepOrPv)], params::count, true;

    "nameaddr" "pv" "uri" NONE, nameaddr::na_uri, true;
    "nameaddr" "pv" "len" NONE, nameaddr::na_len, true;
    "nameaddr" "pv" "name" NONE, nameaddr::na_name, true;

    "tobody" "pv" "uri" NONE, nameaddr::tb_uri, true;
    "tobody" "pv" "tag" NONE, nameaddr::tb_tag, true;
    "tobody" "pv" "user" NONE, nameaddr::tb_user, true;
    "tobody" "pv" "host" NONE, nameaddr::tb_host, true;
    "tobody" "pv" "params" NONE, nameaddr::tb_params, true;
    "tobody" "pv" "display" NONE, nameaddr::tb_display, true;

    "line" "pv" "at" INT, line::at, true;
    "line" "pv" "sw" STR, line::sw, true;
    "line" "pv" "count" NONE, line::count, true;

    "urialias" "pv" "encode" NONE, misc::urialias_encode, true;
    "urialias" "pv" "decode" NONE, misc::urialias_decode, true;

    "val" "pv" "n0" NONE, misc::val_n0, false;
    "val" "pv" "ne" NONE, misc::val_ne, false;
    "val" "pv" "json" NONE, misc::val_json, false;
    "val" "pv" "jsonqe" NONE, misc::val_jsonqe, false;

    "num" "pv" "fdigit" NONE, misc::num_fdigit, false;
    "num" "pv" "ldigit" NONE, misc::num_ldigit, false;

    "re" "textops" "subst" &[p(Subst)], subst::re_subst, true;

    "sock" "corex" "host" NONE, misc::sock_host, true;
    "sock" "corex" "port" NONE, misc::sock_port, true;
    "sock" "corex" "proto" NONE, misc::sock_proto, true;
    "sock" "corex" "touri" NONE, misc::sock_touri, true;

    "url" "xhttp" "path" NONE, misc::url_path, true;
    "url" "xhttp" "querystring" NONE, misc::url_querystring, true;
};

/// Classes of Kamailio transformations ksr does not implement (their modules are not
/// shipped); a config using them gets a clear error.
pub const NOT_IMPLEMENTED_CLASSES: &[&str] = &["json", "kz", "msrpuri", "sql"];

/// Finds a transformation; `class` is case-sensitive, `name` is not.
pub fn lookup(class: &str, name: &str) -> Option<&'static TransDef> {
    TABLE
        .iter()
        .find(|d| d.class == class && d.name.eq_ignore_ascii_case(name))
}

/// True when some transformation of `class` exists.
pub fn class_exists(class: &str) -> bool {
    TABLE.iter().any(|d| d.class == class)
}

/// Every transformation ksr implements (for `ksr api` and documentation).
pub fn all() -> impl Iterator<Item = &'static TransDef> {
    TABLE.iter()
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n')
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_blank(c)) {
        i += 1;
    }
    i
}

/// Parses a chain of transformations `{a.b,..}{c.d}` at the start of `text`; blanks
/// (spaces, tabs, newlines) may separate them. Returns them and the bytes used.
pub fn parse_chain(
    text: &str,
    parser: &dyn PvParser,
) -> Result<(Vec<Transform>, usize), PvParseError> {
    let b = text.as_bytes();
    let mut chain = Vec::new();
    let mut pos = 0;
    loop {
        let at = skip_blanks(b, pos);
        if b.get(at) != Some(&b'{') {
            break;
        }
        let (t, used) = parse_one(text, at, parser)?;
        chain.push(t);
        pos = at + used;
    }
    if chain.is_empty() {
        return Err(PvParseError::new(
            text,
            0,
            "expected a transformation '{...}'",
        ));
    }
    Ok((chain, pos))
}

/// Parses the single transformation whose `{` is at `start`; returns it and the bytes used
/// (through its `}`).
fn parse_one(
    text: &str,
    start: usize,
    parser: &dyn PvParser,
) -> Result<(Transform, usize), PvParseError> {
    let b = text.as_bytes();
    let err = |at: usize, m: String| PvParseError::new(text, at, m);
    let class_start = start + 1;
    let mut i = class_start;
    while b.get(i).is_some_and(|&c| c != b'.') {
        i += 1;
    }
    if b.get(i) != Some(&b'.') || i == class_start {
        return Err(err(
            class_start,
            "invalid transformation: expected {class.name}".into(),
        ));
    }
    let class = text.get(class_start..i).unwrap_or("");
    if !class_exists(class) {
        let m = if NOT_IMPLEMENTED_CLASSES.contains(&class) {
            format!("transformation class '{class}' is not implemented")
        } else {
            format!("unknown transformation class '{class}'")
        };
        return Err(err(class_start, m));
    }
    let name_start = i + 1;
    let mut p = name_start;
    while b.get(p).is_some_and(|&c| c != b',' && c != b'}') {
        p += 1;
    }
    if p >= b.len() {
        return Err(err(start, "missing '}' closing the transformation".into()));
    }
    let name = text
        .get(name_start..p)
        .unwrap_or("")
        .trim_matches([' ', '\t', '\r', '\n']);
    let def = lookup(class, name).ok_or_else(|| {
        err(
            name_start,
            format!("unknown transformation {{{class}.{name}}}"),
        )
    })?;

    let mut params = Vec::with_capacity(def.params.len());
    for spec in def.params {
        if b.get(p) != Some(&b',') {
            if spec.optional {
                break;
            }
            return Err(err(p, format!("{{{class}.{name}}} needs more parameters")));
        }
        p += 1;
        let (param, extra, next) = parse_param(text, p, spec.kind, parser)?;
        params.push(param);
        params.extend(extra);
        p = skip_blanks(b, next);
    }
    match b.get(p) {
        Some(b'}') => {}
        Some(b',') if def.params.is_empty() => {
            return Err(err(p, format!("{{{class}.{name}}} takes no parameters")));
        }
        _ => {
            return Err(err(
                p,
                format!("invalid {{{class}.{name}}} transformation: expected '}}'"),
            ));
        }
    }
    let end = p + 1;
    let t = Transform {
        func: def.func,
        params: params.into_boxed_slice(),
        text: text.get(start..end).unwrap_or("").into(),
    };
    Ok((t, end - start))
}

/// Parses one parameter starting at `p` (just after its comma); returns it and where it
/// ends.
fn parse_param(
    text: &str,
    p: usize,
    kind: ParamKind,
    parser: &dyn PvParser,
) -> Result<(TransParam, Vec<TransParam>, usize), PvParseError> {
    let b = text.as_bytes();
    let err = |at: usize, m: &str| PvParseError::new(text, at, m);
    let one = |r: (TransParam, usize)| (r.0, Vec::new(), r.1);
    match kind {
        Char => {
            let c = *b
                .get(p)
                .ok_or_else(|| err(p, "missing character parameter"))?;
            if p + 1 >= b.len() {
                return Err(err(p, "missing character parameter"));
            }
            if c == b'\\' {
                let e = match b.get(p + 1) {
                    Some(b'\\') => b'\\',
                    Some(b'n') => b'\n',
                    Some(b'r') => b'\r',
                    Some(b't') => b'\t',
                    _ => return Err(err(p + 1, "unexpected escape in character parameter")),
                };
                return Ok(one((str_param(&[e]), p + 2)));
            }
            Ok(one((str_param(&[c]), p + 1)))
        }
        Subst => {
            if b.get(p) == Some(&b'$') {
                return pv_param(text, p, parser).map(one);
            }
            // The expression runs to the `}` that closes the transformation, counting
            // nested braces (regex repetitions such as `a{2}`).
            let mut depth = 0usize;
            let mut i = p;
            loop {
                match b.get(i) {
                    None => return Err(err(p, "missing '}' after the substitution")),
                    Some(b'}') if depth == 0 => break,
                    Some(b'}') => depth -= 1,
                    Some(b'{') => depth += 1,
                    _ => {}
                }
                i += 1;
            }
            if i == p {
                return Err(err(p, "empty substitution expression"));
            }
            let expr = text.get(p..i).unwrap_or("");
            let compiled = parse_subst_expr(expr, Some(parser)).map_err(|m| err(p, &m))?;
            // Pseudo-variables of the replacement become extra parameters, evaluated per use.
            let extra = compiled
                .replacement_pvs()
                .map(|s| TransParam::Pv(s.clone()))
                .collect();
            subst::remember(expr, compiled);
            Ok((str_param(expr.as_bytes()), extra, i))
        }
        Int | UInt => {
            let q = skip_blanks(b, p);
            if b.get(q) == Some(&b'$') {
                return pv_param(text, q, parser).map(one);
            }
            let mut i = q;
            let neg = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                Some(c) if c.is_ascii_digit() => false,
                _ => return Err(err(q, "invalid number parameter")),
            };
            i = skip_blanks(b, i);
            let mut n: i64 = 0;
            while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add((c - b'0') as i64))
                    .filter(|n| *n <= i32::MAX as i64)
                    .ok_or_else(|| err(q, "number parameter out of range"))?;
                i += 1;
            }
            let n = if neg { -n } else { n };
            if kind == UInt && n < 0 {
                return Err(err(q, "negative value not allowed"));
            }
            Ok(one((TransParam::Value(Value::Int(n)), i)))
        }
        Str | StrEsc | StrSep | Sep | SepOrPv => {
            let q = skip_blanks(b, p);
            if b.get(q) == Some(&b'$') {
                if kind == Sep {
                    return Err(err(q, "invalid separator: one character expected"));
                }
                return pv_param(text, q, parser).map(one);
            }
            let mut i = q;
            while b
                .get(i)
                .is_some_and(|&c| !matches!(c, b'\t' | b'\n' | b',' | b'}'))
            {
                i += 1;
            }
            if i >= b.len() {
                return Err(err(q, "missing '}' after the parameter"));
            }
            if matches!(kind, StrSep | SepOrPv) && b.get(i) == Some(&b',') {
                i += 1;
                if i >= b.len() {
                    return Err(err(q, "missing '}' after the parameter"));
                }
            }
            if matches!(kind, Sep | SepOrPv) && i - p != 1 {
                return Err(err(p, "invalid separator: one character expected"));
            }
            let lit = b.get(q..i).unwrap_or(&[]);
            if kind == StrEsc && lit.contains(&b'\\') {
                return Ok(one((str_param(&unescape_literal(lit)), i)));
            }
            Ok(one((str_param(lit), i)))
        }
    }
}

/// Decodes the escapes of a `{s.rm}` literal: `\n`, `\r`, `\t`, and `\x` for x itself.
fn unescape_literal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'\\'
            && let Some(&n) = s.get(i + 1)
        {
            out.push(match n {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                other => other,
            });
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn str_param(s: &[u8]) -> TransParam {
    TransParam::Value(Value::Str(Bytes::copy_from_slice(s)))
}

fn pv_param(
    text: &str,
    at: usize,
    parser: &dyn PvParser,
) -> Result<(TransParam, usize), PvParseError> {
    let rest = text.get(at..).unwrap_or("");
    let (spec, used) = parser
        .parse_spec_prefix(rest)
        .map_err(|e| e.within(text, at))?;
    Ok((TransParam::Pv(spec), at + used))
}

// ------------------------------------------------------------------ shared helpers

/// The bytes a transformation works on: strings as they are, integers as decimal text.
/// Null has none.
pub(crate) fn text_of(v: &Value) -> Option<Bytes> {
    match v {
        Value::Null => None,
        Value::Str(b) => Some(b.clone()),
        Value::Int(i) => {
            let mut out = Vec::new();
            crate::pv::eval::push_int(&mut out, *i);
            Some(Bytes::from(out))
        }
    }
}

/// A non-empty string input (the uri, param, nameaddr, tobody, line classes refuse empty
/// and null values).
pub(crate) fn nonempty_text(v: &Value) -> Option<Bytes> {
    text_of(v).filter(|b| !b.is_empty())
}

/// An integer parameter: Kamailio accepts only values that carry an integer.
pub(crate) fn int_arg(args: &[Value], i: usize) -> Option<i64> {
    match args.get(i)? {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

/// A string parameter: must be non-empty (integers count as their text).
pub(crate) fn str_arg(args: &[Value], i: usize) -> Option<Bytes> {
    args.get(i).and_then(text_of).filter(|b| !b.is_empty())
}

pub(crate) fn str_val(v: Vec<u8>) -> Option<Value> {
    Some(Value::Str(Bytes::from(v)))
}
