//! Parsing pseudo-variable text (`$ru`, `$hdr(From)`, `$(avp(x)[2]{s.len})`) and format
//! strings (`"$rU@$rd"`) into compiled descriptors, and evaluating them.
//!
//! The rules follow Kamailio's `pv_parse_spec`: a name is made of letters, digits, `_`, `.`
//! and `?`; an inner name is everything inside balanced parentheses; an index and
//! transformations are only allowed in the full `$( ... )` form.

use super::{Format, FormatPart, PvIndex, PvParam, PvRegistry, PvSpec, TransParam, Transform};
use crate::host::Host;
use crate::value::Value;
use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset} in '{text}')")]
pub struct PvParseError {
    pub message: String,
    pub offset: usize,
    pub text: String,
}

fn err(text: &str, offset: usize, message: impl Into<String>) -> PvParseError {
    PvParseError {
        message: message.into(),
        offset,
        text: text.to_string(),
    }
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'?'
}

/// Offset just past the `)` that closes the `(` at `open`.
fn matching_paren(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&c) = b.get(i) {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn matching(b: &[u8], open: usize, o: u8, c: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&ch) = b.get(i) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

/// Parses one pseudo-variable at the start of `text`; returns it and the bytes consumed.
pub fn parse_spec_prefix<C>(
    text: &str,
    reg: &PvRegistry<C>,
) -> Result<(PvSpec, usize), PvParseError> {
    let b = text.as_bytes();
    if b.first() != Some(&b'$') {
        return Err(err(text, 0, "pseudo-variable must start with '$'"));
    }
    if b.get(1) == Some(&b'(') {
        let end = matching_paren(b, 1).ok_or_else(|| err(text, 1, "missing ')'"))?;
        let inner = &text[2..end - 1];
        let spec = parse_full(text, inner, 2, reg)?;
        return Ok((
            PvSpec {
                text: text[..end].into(),
                ..spec
            },
            end,
        ));
    }
    let mut i = 1;
    while b.get(i).is_some_and(|c| is_name_char(*c)) {
        i += 1;
    }
    if i == 1 {
        return Err(err(text, 1, "missing pseudo-variable name"));
    }
    let name = &text[1..i];
    let mut end = i;
    let inner = if b.get(i) == Some(&b'(') {
        let e = matching_paren(b, i).ok_or_else(|| err(text, i, "missing ')'"))?;
        end = e;
        Some((&text[i + 1..e - 1], i + 1))
    } else {
        None
    };
    let spec = build(text, name, 1, inner, PvIndex::None, Vec::new(), reg)?;
    Ok((
        PvSpec {
            text: text[..end].into(),
            ..spec
        },
        end,
    ))
}

/// Parses a whole string as exactly one pseudo-variable.
pub fn parse_spec<C>(text: &str, reg: &PvRegistry<C>) -> Result<PvSpec, PvParseError> {
    let t = text.trim();
    let (spec, used) = parse_spec_prefix(t, reg)?;
    if used != t.len() {
        return Err(err(t, used, "unexpected text after pseudo-variable"));
    }
    Ok(spec)
}

/// The inside of `$( ... )`: `name(inner)[index]{tr}{tr}`.
fn parse_full<C>(
    text: &str,
    inner: &str,
    base: usize,
    reg: &PvRegistry<C>,
) -> Result<PvSpec, PvParseError> {
    let b = inner.as_bytes();
    let mut i = 0;
    while b.get(i).is_some_and(|c| is_name_char(*c)) {
        i += 1;
    }
    if i == 0 {
        return Err(err(text, base, "missing pseudo-variable name"));
    }
    let name = &inner[..i];
    let mut iname = None;
    if b.get(i) == Some(&b'(') {
        let e = matching_paren(b, i).ok_or_else(|| err(text, base + i, "missing ')'"))?;
        iname = Some((&inner[i + 1..e - 1], base + i + 1));
        i = e;
    }
    let mut index = PvIndex::None;
    if b.get(i) == Some(&b'[') {
        let e = matching(b, i, b'[', b']').ok_or_else(|| err(text, base + i, "missing ']'"))?;
        let idx = inner[i + 1..e - 1].trim();
        index = if idx == "*" {
            PvIndex::All
        } else if idx.starts_with('$') {
            PvIndex::Dyn(Box::new(parse_spec(idx, reg)?))
        } else {
            PvIndex::Int(
                idx.parse()
                    .map_err(|_| err(text, base + i + 1, format!("invalid index '{idx}'")))?,
            )
        };
        i = e;
    }
    let mut trans = Vec::new();
    while b.get(i) == Some(&b'{') {
        let e = matching(b, i, b'{', b'}').ok_or_else(|| err(text, base + i, "missing '}'"))?;
        trans.push(parse_transform(
            text,
            &inner[i + 1..e - 1],
            base + i + 1,
            reg,
        )?);
        i = e;
    }
    if i != b.len() {
        return Err(err(
            text,
            base + i,
            "unexpected character in pseudo-variable",
        ));
    }
    build(text, name, base, iname, index, trans, reg)
}

fn build<C>(
    text: &str,
    name: &str,
    at: usize,
    inner: Option<(&str, usize)>,
    index: PvIndex,
    trans: Vec<Transform>,
    reg: &PvRegistry<C>,
) -> Result<PvSpec, PvParseError> {
    let class_id = reg
        .lookup(name)
        .ok_or_else(|| err(text, at, format!("unknown pseudo-variable ${name}")))?;
    let class = reg
        .class(class_id)
        .ok_or_else(|| err(text, at, "bad class"))?;
    let param = match (inner, class.parse_name) {
        (None, _) if class.name_required => {
            return Err(err(text, at, format!("${name} needs a name: ${name}(...)")));
        }
        (None, _) => PvParam::None,
        (Some((_, off)), None) => {
            return Err(err(text, off, format!("${name} does not take a name")));
        }
        (Some((s, off)), Some(parse)) => {
            let t = s.trim();
            if t.starts_with('$') {
                match parse_spec(t, reg) {
                    Ok(sp) => PvParam::Spec(Box::new(sp)),
                    Err(_) => parse(s).map_err(|m| err(text, off, m))?,
                }
            } else {
                parse(s).map_err(|m| err(text, off, m))?
            }
        }
    };
    if !matches!(index, PvIndex::None) && !class.takes_index {
        return Err(err(text, at, format!("${name} does not take an index")));
    }
    Ok(PvSpec {
        class: class_id,
        param,
        index,
        trans: trans.into_boxed_slice(),
        text: text.into(),
    })
}

/// `class.name,p1,p2` of one `{...}` transformation.
fn parse_transform<C>(
    text: &str,
    t: &str,
    at: usize,
    reg: &PvRegistry<C>,
) -> Result<Transform, PvParseError> {
    let (head, rest) = match t.find(',') {
        Some(p) => (&t[..p], Some(&t[p + 1..])),
        None => (t, None),
    };
    let head = head.trim();
    let def = crate::transform::lookup(head)
        .ok_or_else(|| err(text, at, format!("unknown transformation {{{head}}}")))?;
    let mut params = Vec::new();
    if let Some(r) = rest {
        if def.raw_param {
            params.push(TransParam::Value(Value::from(r)));
        } else {
            for p in split_params(r) {
                let p = p.trim();
                if p.starts_with('$') {
                    params.push(TransParam::Pv(parse_spec(p, reg)?));
                } else {
                    params.push(TransParam::Value(match p.parse::<i64>() {
                        Ok(n) if def.int_params => Value::Int(n),
                        _ => Value::from(unescape_param(p)),
                    }));
                }
            }
        }
    }
    if params.len() < def.min_params || params.len() > def.max_params {
        return Err(err(
            text,
            at,
            format!("wrong number of parameters for {{{head}}}"),
        ));
    }
    Ok(Transform {
        func: def.func,
        params: params.into_boxed_slice(),
        text: format!("{{{t}}}").into(),
    })
}

/// Splits transformation parameters at commas outside `$(...)`.
fn split_params(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in b.iter().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth <= 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unescape_param(p: &str) -> String {
    p.replace("\\,", ",").replace("\\}", "}")
}

/// Parses a format string: literal text with embedded pseudo-variables.
pub fn parse_format<C>(text: &str, reg: &PvRegistry<C>) -> Result<Format, PvParseError> {
    let b = text.as_bytes();
    let mut parts = Vec::new();
    let mut lit: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'$' && next.is_some_and(|n| is_name_char(n) || n == b'(') {
            let (spec, used) = parse_spec_prefix(&text[i..], reg).map_err(|e| PvParseError {
                offset: e.offset + i,
                text: text.to_string(),
                ..e
            })?;
            if !lit.is_empty() {
                parts.push(FormatPart::Lit(Bytes::from(std::mem::take(&mut lit))));
            }
            parts.push(FormatPart::Pv(spec));
            i += used;
        } else {
            lit.push(c);
            i += 1;
        }
    }
    if !lit.is_empty() {
        parts.push(FormatPart::Lit(Bytes::from(lit)));
    }
    Ok(Format { parts })
}

/// True when `text` contains something that parses as a pseudo-variable.
pub fn has_pv(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(2)
        .any(|w| w[0] == b'$' && (is_name_char(w[1]) || w[1] == b'('))
}

impl Format {
    /// The text when the format has no pseudo-variables.
    pub fn as_literal(&self) -> Option<Bytes> {
        match self.parts.as_slice() {
            [] => Some(Bytes::new()),
            [FormatPart::Lit(b)] => Some(b.clone()),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- evaluation

/// Reads a pseudo-variable: the class getter, then every transformation. A failed
/// transformation makes the whole value null, as in Kamailio.
pub fn get<C: Host>(ctx: &mut C, spec: &PvSpec) -> Value {
    let reg = ctx.pv_registry();
    let Some(class) = reg.class(spec.class) else {
        return Value::Null;
    };
    let mut v = (class.get)(ctx, spec);
    if spec.trans.is_empty() {
        return v;
    }
    for t in spec.trans.iter() {
        let mut args: smallvec_args::Args = smallvec_args::Args::new();
        for p in t.params.iter() {
            args.push(match p {
                TransParam::Value(v) => v.clone(),
                TransParam::Pv(s) => get(ctx, s),
            });
        }
        match (t.func)(&v, args.as_slice()) {
            Some(n) => v = n,
            None => return Value::Null,
        }
    }
    v
}

mod smallvec_args {
    use crate::value::Value;
    /// Transformation arguments; a plain Vec is fine (transformations are not the hot path
    /// of a typical route and most take none).
    pub struct Args(Vec<Value>);
    impl Args {
        pub fn new() -> Args {
            Args(Vec::new())
        }
        pub fn push(&mut self, v: Value) {
            self.0.push(v);
        }
        pub fn as_slice(&self) -> &[Value] {
            &self.0
        }
    }
}

/// Writes a pseudo-variable.
pub fn set<C: Host>(ctx: &mut C, spec: &PvSpec, v: &Value) -> Result<(), super::PvError> {
    let reg = ctx.pv_registry();
    let class = reg
        .class(spec.class)
        .ok_or(super::PvError::Failed("bad class".into()))?;
    if !spec.trans.is_empty() {
        return Err(super::PvError::ReadOnly);
    }
    match class.set {
        Some(f) => f(ctx, spec, v),
        None => Err(super::PvError::ReadOnly),
    }
}

/// Appends the text of a value as Kamailio's `pv_printf` does (null as `<null>`).
pub fn push_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"<null>"),
        Value::Int(i) => {
            let mut buf = itoa_buf::Buffer::new();
            out.extend_from_slice(buf.format(*i).as_bytes());
        }
        Value::Str(s) => out.extend_from_slice(s),
    }
}

mod itoa_buf {
    /// A tiny integer formatter that avoids an allocation per number.
    pub struct Buffer([u8; 24]);
    impl Buffer {
        pub fn new() -> Buffer {
            Buffer([0; 24])
        }
        pub fn format(&mut self, v: i64) -> &str {
            let mut i = self.0.len();
            let neg = v < 0;
            let mut n = v.unsigned_abs();
            loop {
                i -= 1;
                self.0[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            if neg {
                i -= 1;
                self.0[i] = b'-';
            }
            std::str::from_utf8(&self.0[i..]).unwrap_or("")
        }
    }
}

pub fn format_into<C: Host>(ctx: &mut C, f: &Format, out: &mut Vec<u8>) {
    for p in &f.parts {
        match p {
            FormatPart::Lit(b) => out.extend_from_slice(b),
            FormatPart::Pv(s) => {
                let v = get(ctx, s);
                push_value(out, &v);
            }
        }
    }
}

pub fn format<C: Host>(ctx: &mut C, f: &Format) -> Bytes {
    if let Some(l) = f.as_literal() {
        return l;
    }
    let mut out = Vec::with_capacity(64);
    format_into(ctx, f, &mut out);
    Bytes::from(out)
}
