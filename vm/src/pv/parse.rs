//! Parsing pseudo-variable text into [`PvSpec`]s and format strings into [`Format`]s.
//!
//! The grammar and its quirks follow Kamailio 5.6 (`pv_locate_name`, `pv_parse_spec2`,
//! `pv_parse_index`, `pv_parse_format` in its pvapi):
//!
//! * a name is made of `[A-Za-z0-9_.?]`; in `"$fu;tag"` the name is `fu`, in `"$ru.x"` it is
//!   `ru.x` (unknown), and `$$` is a literal `$`;
//! * the short form `$name` / `$name(inner)` takes neither an index nor transformations: in a
//!   format string `"$hdr(Via)[1]"` the `[1]` is literal text;
//! * the full form `$(name(inner)[index]{tr}{tr})` takes both;
//! * inner names and indexes end at the matching bracket (nested brackets are counted);
//! * transformations may be separated by blanks (`{s.len} {s.int}`);
//! * in a format string every `$` must start a valid pseudo-variable (a lone `$` is an
//!   error, as in Kamailio).
//!
//! Not supported: the iterator index `[+]`. Nesting is limited to 32 levels.

use super::{
    Format, FormatPart, PV_MARKER_CLASS, PvClassId, PvIndex, PvParam, PvRegistry, PvSpec, Transform,
};
use bytes::Bytes;

/// A pseudo-variable or format string that does not parse, with the byte offset of the
/// problem in `text`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset} in '{text}')")]
pub struct PvParseError {
    pub message: String,
    pub offset: usize,
    pub text: String,
}

impl PvParseError {
    pub fn new(text: &str, offset: usize, message: impl Into<String>) -> PvParseError {
        PvParseError {
            message: message.into(),
            offset,
            text: text.to_string(),
        }
    }

    /// Re-anchors an error found in a piece of `outer` that starts at byte `base`.
    pub fn within(mut self, outer: &str, base: usize) -> PvParseError {
        self.offset = self.offset.saturating_add(base);
        self.text = outer.to_string();
        self
    }
}

/// The parsing services a pseudo-variable class or a transformation needs for nested
/// pseudo-variables (`$hdr($var(h))`, `$sht(t=>$si)`, `{s.substr,$var(i),1}`). It hides the
/// host type of the registry so class name parsers stay plain functions.
pub trait PvParser {
    /// Parses one pseudo-variable at the start of `text`; returns it and the bytes used.
    fn parse_spec_prefix(&self, text: &str) -> Result<(PvSpec, usize), PvParseError>;
    /// Parses a format string.
    fn parse_format(&self, text: &str) -> Result<Format, PvParseError>;
}

impl<C> PvParser for PvRegistry<C> {
    fn parse_spec_prefix(&self, text: &str) -> Result<(PvSpec, usize), PvParseError> {
        parse_spec_prefix(text, self)
    }

    fn parse_format(&self, text: &str) -> Result<Format, PvParseError> {
        parse_format(text, self)
    }
}

/// Characters that may appear in a pseudo-variable class name.
pub fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'?'
}

/// Length of the pseudo-variable at the start of `text`, found the way Kamailio finds it
/// before parsing (`pv_locate_name`): `$$` is 2, `$(...)` and `$name(...)` end at the
/// parenthesis that balances the first one, `$name` ends at the first character that
/// cannot be in a name.
pub fn locate_name(text: &str) -> Result<usize, PvParseError> {
    let b = text.as_bytes();
    if b.len() < 2 {
        return Err(PvParseError::new(text, 0, "pseudo-variable too short"));
    }
    if b.first() != Some(&b'$') {
        return Err(PvParseError::new(text, 0, "missing '$' marker"));
    }
    if b.get(1) == Some(&b'$') {
        return Ok(2);
    }
    if b.get(1) == Some(&b'(') {
        return balanced_end(b, 1, b'(', b')')
            .map(|i| i + 1)
            .ok_or_else(|| PvParseError::new(text, 1, "missing ')' closing the pseudo-variable"));
    }
    let mut i = 1;
    while b.get(i).is_some_and(|&c| is_name_char(c)) {
        i += 1;
    }
    if b.get(i) != Some(&b'(') {
        return Ok(i);
    }
    balanced_end(b, i, b'(', b')')
        .map(|e| e + 1)
        .ok_or_else(|| PvParseError::new(text, i, "missing ')' closing the inner name"))
}

/// Index of the bracket that closes the one at `open` (which must be `o`).
fn balanced_end(b: &[u8], open: usize, o: u8, c: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&ch) = b.get(i) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

/// Index of the closing bracket `c` that ends content starting at `start` (depth 0), counting
/// nested `o`.
fn content_end(b: &[u8], start: usize, o: u8, c: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while let Some(&ch) = b.get(i) {
        if ch == c {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        } else if ch == o {
            depth += 1;
        }
        i += 1;
    }
    None
}

/// Pseudo-variables nest (`$var($var(x))`, parameters of transformations); deeper nesting
/// than this is refused so hostile run-time text cannot exhaust the stack.
const MAX_NESTING: u32 = 32;

thread_local! {
    static NESTING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Parses one pseudo-variable at the start of `text` (Kamailio's `pv_parse_spec`); returns
/// it and the number of bytes it spans. Text after it is not looked at.
pub fn parse_spec_prefix<C>(
    text: &str,
    reg: &PvRegistry<C>,
) -> Result<(PvSpec, usize), PvParseError> {
    let depth = NESTING.with(|n| n.get());
    if depth >= MAX_NESTING {
        return Err(PvParseError::new(
            text,
            0,
            "pseudo-variables nested too deeply",
        ));
    }
    NESTING.with(|n| n.set(depth + 1));
    let r = parse_spec_inner(text, reg);
    NESTING.with(|n| n.set(depth));
    r
}

fn parse_spec_inner<C>(text: &str, reg: &PvRegistry<C>) -> Result<(PvSpec, usize), PvParseError> {
    let b = text.as_bytes();
    let err = |at: usize, m: String| PvParseError::new(text, at, m);
    if b.first() != Some(&b'$') {
        return Err(err(0, "pseudo-variable must start with '$'".into()));
    }
    let mut p = 1;
    let full = b.get(1) == Some(&b'(');
    if full {
        p = 2;
    }
    let name_start = p;
    if b.get(p) == Some(&b'$') {
        p += 1;
        if full {
            if b.get(p) != Some(&b')') {
                return Err(err(p, "expected ')' after '$$'".into()));
            }
            p += 1;
        }
        let spec = PvSpec {
            class: PV_MARKER_CLASS,
            param: PvParam::None,
            index: PvIndex::None,
            trans: Box::new([]),
            text: text.get(..p).unwrap_or(text).into(),
        };
        return Ok((spec, p));
    }
    while b.get(p).is_some_and(|&c| is_name_char(c)) {
        p += 1;
    }
    let name = text.get(name_start..p).unwrap_or("");

    enum Next {
        End,
        Inner,
        Index,
        Trans,
    }
    let next = if full {
        match b.get(p) {
            Some(b')') => Next::End,
            Some(b'(') => Next::Inner,
            Some(b'[') => Next::Index,
            Some(b'{') => Next::Trans,
            Some(&c) => {
                return Err(err(
                    p,
                    format!("invalid character '{}' in pseudo-variable", c as char),
                ));
            }
            None => return Err(err(p, "missing ')' closing the pseudo-variable".into())),
        }
    } else if b.get(p) == Some(&b'(') {
        Next::Inner
    } else {
        Next::End
    };

    let (class_id, class) = match reg.lookup(name).and_then(|id| Some((id, reg.class(id)?))) {
        Some(found) => found,
        None if name.is_empty() => {
            return Err(err(name_start, "missing pseudo-variable name".into()));
        }
        None => return Err(err(name_start, format!("unknown pseudo-variable ${name}"))),
    };
    let takes_name = class.parse_name.is_some() || reg.dyn_name_parser(class_id).is_some();

    let mut param = PvParam::None;
    let mut index = PvIndex::None;
    let mut trans: Vec<Transform> = Vec::new();
    let mut next = next;

    if matches!(next, Next::Inner) {
        if !takes_name {
            return Err(err(p, format!("${name} does not take an inner name")));
        }
        let start = p + 1;
        let end = content_end(b, start, b'(', b')')
            .ok_or_else(|| err(p, format!("missing ')' closing the name of ${name}")))?;
        if end == start {
            return Err(err(start, format!("${name} does not take an empty name")));
        }
        let inner = text.get(start..end).unwrap_or("");
        param = parse_inner_name(reg, class_id, inner)
            .map_err(|m| err(start, format!("${name} has an invalid name '{inner}': {m}")))?;
        p = end + 1;
        if full {
            next = match b.get(p) {
                Some(b')') => Next::End,
                Some(b'[') => Next::Index,
                Some(b'{') => Next::Trans,
                Some(&c) => {
                    return Err(err(
                        p,
                        format!(
                            "invalid character '{}' after the name of ${name}",
                            c as char
                        ),
                    ));
                }
                None => return Err(err(p, "missing ')' closing the pseudo-variable".into())),
            };
        } else {
            next = Next::End;
        }
    } else if class.name_required {
        return Err(err(
            p,
            format!("${name} expects an inner name: ${name}(...)"),
        ));
    }

    if matches!(next, Next::Index) {
        if !class.takes_index {
            return Err(err(p, format!("${name} does not take an index")));
        }
        let start = p + 1;
        let end = content_end(b, start, b'[', b']')
            .ok_or_else(|| err(p, format!("missing ']' closing the index of ${name}")))?;
        if end == start {
            return Err(err(start, format!("${name} does not take an empty index")));
        }
        let inner = text.get(start..end).unwrap_or("");
        index = parse_index(inner, reg).map_err(|e| e.within(text, start))?;
        p = end + 1;
        next = match b.get(p) {
            Some(b')') => Next::End,
            Some(b'{') => Next::Trans,
            Some(&c) => {
                return Err(err(
                    p,
                    format!(
                        "invalid character '{}' after the index of ${name}",
                        c as char
                    ),
                ));
            }
            None => return Err(err(p, "missing ')' closing the pseudo-variable".into())),
        };
    }

    if matches!(next, Next::Trans) {
        let seg_end = transformations_end(b, p)
            .ok_or_else(|| err(p, "missing '}' closing a transformation".into()))?;
        let seg = text.get(p..=seg_end).unwrap_or("");
        let (chain, used) =
            crate::transform::parse_chain(seg, reg).map_err(|e| e.within(text, p))?;
        trans = chain;
        p += used;
        if b.get(p) != Some(&b')') {
            return Err(err(p, "expected ')' after the transformations".into()));
        }
    }

    if full {
        // `p` is on the closing ')'.
        p += 1;
    }
    let spec = PvSpec {
        class: class_id,
        param,
        index,
        trans: trans.into_boxed_slice(),
        text: text.get(..p).unwrap_or(text).into(),
    };
    Ok((spec, p))
}

/// Finds the last `}` of a chain of transformations starting with the `{` at `start`:
/// braces nest, and after a top-level `}` the chain goes on only if the next non-blank
/// character is another `{`.
fn transformations_end(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start + 1;
    while let Some(&c) = b.get(i) {
        if c == b'}' {
            if depth == 0 {
                let mut j = i + 1;
                while matches!(b.get(j), Some(b' ' | b'\t')) {
                    j += 1;
                }
                if b.get(j) != Some(&b'{') {
                    return Some(i);
                }
                i = j + 1;
                continue;
            }
            depth -= 1;
        } else if c == b'{' {
            depth += 1;
        }
        i += 1;
    }
    None
}

fn parse_inner_name<C>(
    reg: &PvRegistry<C>,
    class: PvClassId,
    inner: &str,
) -> Result<PvParam, String> {
    if let Some(f) = reg.dyn_name_parser(class) {
        return f(inner, reg);
    }
    match reg.class(class).and_then(|c| c.parse_name) {
        Some(f) => f(inner),
        None => Err("no name expected".into()),
    }
}

/// Parses the text of an `[index]`: a number (optionally negative), `*`, or a
/// pseudo-variable evaluated per use.
pub fn parse_index(text: &str, reg: &dyn PvParser) -> Result<PvIndex, PvParseError> {
    let b = text.as_bytes();
    if b.first() == Some(&b'$') {
        // Like Kamailio, text after the index pseudo-variable is ignored.
        let (spec, _) = reg.parse_spec_prefix(text)?;
        return Ok(PvIndex::Dyn(Box::new(spec)));
    }
    if text == "*" {
        return Ok(PvIndex::All);
    }
    if text == "+" {
        return Err(PvParseError::new(
            text,
            0,
            "the iterator index [+] is not supported",
        ));
    }
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, b.get(1..).unwrap_or(&[])),
        _ => (false, b),
    };
    let mut n: i32 = 0;
    for (k, &c) in digits.iter().enumerate() {
        if !c.is_ascii_digit() {
            return Err(PvParseError::new(
                text,
                k + neg as usize,
                format!("invalid index '{text}'"),
            ));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add((c - b'0') as i32))
            .ok_or_else(|| PvParseError::new(text, 0, format!("index '{text}' out of range")))?;
    }
    Ok(PvIndex::Int(if neg { -n } else { n }))
}

/// Parses text that must be exactly one pseudo-variable (surrounding blanks are ignored).
pub fn parse_spec<C>(text: &str, reg: &PvRegistry<C>) -> Result<PvSpec, PvParseError> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    let (spec, used) = parse_spec_prefix(t, reg).map_err(|e| e.within(text, lead))?;
    if used != t.len() {
        return Err(PvParseError::new(
            text,
            lead + used,
            "unexpected text after the pseudo-variable",
        ));
    }
    Ok(spec)
}

/// A name for a class that accepts either a fixed name or a pseudo-variable computing it
/// (`$avp($var(n))`, `$hdr($var(h))`), the way Kamailio's avp and hdr name parsers do:
/// text starting with `$` is a pseudo-variable, anything else is the literal name.
pub fn parse_dynamic_name(text: &str, reg: &dyn PvParser) -> Result<PvParam, PvParseError> {
    if text.starts_with('$') {
        let (spec, _) = reg.parse_spec_prefix(text)?;
        return Ok(PvParam::Spec(Box::new(spec)));
    }
    Ok(PvParam::Str(Bytes::copy_from_slice(text.as_bytes())))
}

/// Parses a format string (Kamailio's `pv_parse_format`): text with embedded
/// pseudo-variables. There are no escapes besides `$$`.
pub fn parse_format<C>(text: &str, reg: &PvRegistry<C>) -> Result<Format, PvParseError> {
    let b = text.as_bytes();
    let mut parts = Vec::new();
    let mut lit_start = 0;
    let mut p = 0;
    while p < b.len() {
        let Some(off) = memchr::memchr(b'$', b.get(p..).unwrap_or(&[])) else {
            break;
        };
        let at = p + off;
        let rest = text.get(at..).unwrap_or("");
        let len = locate_name(rest).map_err(|e| e.within(text, at))?;
        let piece = rest.get(..len).unwrap_or(rest);
        let (spec, _) = parse_spec_prefix(piece, reg).map_err(|e| e.within(text, at))?;
        if spec.class == PV_MARKER_CLASS {
            // `$$` stays literal text, merged with its neighbours.
            push_lit(&mut parts, b.get(lit_start..at).unwrap_or(&[]));
            push_lit(&mut parts, b"$");
        } else {
            push_lit(&mut parts, b.get(lit_start..at).unwrap_or(&[]));
            parts.push(FormatPart::Pv(spec));
        }
        p = at + len;
        lit_start = p;
    }
    push_lit(&mut parts, b.get(lit_start..).unwrap_or(&[]));
    Ok(Format { parts })
}

fn push_lit(parts: &mut Vec<FormatPart>, s: &[u8]) {
    if s.is_empty() {
        return;
    }
    if let Some(FormatPart::Lit(prev)) = parts.last_mut() {
        let mut joined = Vec::with_capacity(prev.len() + s.len());
        joined.extend_from_slice(prev);
        joined.extend_from_slice(s);
        *prev = Bytes::from(joined);
        return;
    }
    parts.push(FormatPart::Lit(Bytes::copy_from_slice(s)));
}

/// True when `text` contains a `$` that a format string would treat as a pseudo-variable
/// (every `$` does, `$$` included), i.e. when the text is not a plain literal.
pub fn has_pv(text: &str) -> bool {
    text.as_bytes().contains(&b'$')
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

    /// A format made of literal text only.
    pub fn literal(text: impl Into<Bytes>) -> Format {
        let b: Bytes = text.into();
        if b.is_empty() {
            return Format::default();
        }
        Format {
            parts: vec![FormatPart::Lit(b)],
        }
    }
}
