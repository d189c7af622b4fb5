//! Parameter lists (`a=1;b;c="x y"`) parsed like Kamailio's `parse_params2`, and the
//! `{param.*}` transformations.
//!
//! Kamailio builds its list in reverse order, which shows through: with a repeated name
//! `{param.value}` finds the last occurrence, while `{param.valueat}` and `{param.name}`
//! count from the start for positive and from the end for negative indexes.

use super::{int_arg, nonempty_text, str_arg};
use crate::value::Value;
use bytes::Bytes;
use std::ops::Range;

/// One parameter: ranges into the parsed text.
#[derive(Clone, Debug)]
pub(crate) struct Param {
    pub name: Range<usize>,
    /// The value without quotes; empty when there is none.
    pub body: Range<usize>,
}

impl Param {
    pub fn name<'a>(&self, s: &'a [u8]) -> &'a [u8] {
        s.get(self.name.clone()).unwrap_or(&[])
    }
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses a parameter list, in text order. `None` on a syntax error.
pub(crate) fn parse_param_list(s: &[u8], sep: u8) -> Option<Vec<Param>> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Some(out);
    }
    let skip_ws = |mut i: usize| {
        while s.get(i).is_some_and(|&c| is_ws(c)) {
            i += 1;
        }
        i
    };
    let mut i = 0;
    // Bounded: every round consumes at least the separator.
    loop {
        let ns = i;
        while s
            .get(i)
            .is_some_and(|&c| !(is_ws(c) || c == b',' || c == b'=' || c == sep))
        {
            i += 1;
        }
        let mut p = Param {
            name: ns..i,
            body: i..i,
        };
        i = skip_ws(i);
        if i >= s.len() {
            out.push(p);
            return Some(out);
        }
        if s.get(i) == Some(&b'=') {
            i = skip_ws(i + 1);
            if i >= s.len() {
                p.body = i..i;
                out.push(p);
                return Some(out);
            }
            match s.get(i) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let close = (i + 1..s.len()).find(|&k| s.get(k) == Some(&q))?;
                    p.body = i + 1..close;
                    i = close + 1;
                }
                _ => {
                    let bs = i;
                    while s
                        .get(i)
                        .is_some_and(|&c| !(is_ws(c) || c == b',' || c == sep))
                    {
                        i += 1;
                    }
                    if i == bs {
                        return None;
                    }
                    p.body = bs..i;
                }
            }
            i = skip_ws(i);
            if i >= s.len() {
                out.push(p);
                return Some(out);
            }
        }
        out.push(p);
        match s.get(i) {
            // A ',' or '>' ends the list (header and URI parameter contexts).
            Some(b',') | Some(b'>') => return Some(out),
            Some(&c) if c == sep => {}
            _ => return None,
        }
        i = skip_ws(i + 1);
        if i >= s.len() {
            return None;
        }
    }
}

/// The input text and its parsed list; the separator is the optional parameter at
/// `sep_at` (one character), `;` by default. A trailing separator is ignored.
fn list(v: &Value, args: &[Value], sep_at: usize) -> Option<(Bytes, Vec<Param>)> {
    let s = nonempty_text(v)?;
    let sep = match args.get(sep_at) {
        None => b';',
        Some(Value::Str(b)) => *b.first()?,
        Some(_) => return None,
    };
    let n = if s.len() > 1 && s.last() == Some(&sep) {
        s.len() - 1
    } else {
        s.len()
    };
    let l = parse_param_list(s.get(..n)?, sep)?;
    if l.is_empty() {
        return None;
    }
    Some((s, l))
}

fn find_named<'a>(s: &[u8], l: &'a [Param], name: &[u8]) -> Option<&'a Param> {
    l.iter()
        .rev()
        .find(|p| p.name(s).eq_ignore_ascii_case(name))
}

/// `{param.value,name[,sep]}`.
pub fn value(v: &Value, args: &[Value]) -> Option<Value> {
    let (s, l) = list(v, args, 1)?;
    let name = str_arg(args, 0)?;
    Some(Value::Str(match find_named(&s, &l, &name) {
        Some(p) => s.slice(p.body.clone()),
        None => Bytes::new(),
    }))
}

/// `{param.in,name[,sep]}`: 1 when the parameter is present, else 0.
pub fn is_in(v: &Value, args: &[Value]) -> Option<Value> {
    let (s, l) = list(v, args, 1)?;
    let name = str_arg(args, 0)?;
    Some(Value::Int(find_named(&s, &l, &name).is_some() as i64))
}

fn at(l: &[Param], n: i64) -> Option<&Param> {
    if n < 0 {
        let back = usize::try_from(n.unsigned_abs()).ok()?;
        l.len().checked_sub(back).and_then(|i| l.get(i))
    } else {
        l.get(usize::try_from(n).ok()?)
    }
}

/// `{param.valueat,index[,sep]}`.
pub fn valueat(v: &Value, args: &[Value]) -> Option<Value> {
    let (s, l) = list(v, args, 1)?;
    let n = int_arg(args, 0)?;
    Some(Value::Str(match at(&l, n) {
        Some(p) => s.slice(p.body.clone()),
        None => Bytes::new(),
    }))
}

/// `{param.name,index[,sep]}`.
pub fn name(v: &Value, args: &[Value]) -> Option<Value> {
    let (s, l) = list(v, args, 1)?;
    let n = int_arg(args, 0)?;
    Some(Value::Str(match at(&l, n) {
        Some(p) => s.slice(p.name.clone()),
        None => Bytes::new(),
    }))
}

/// `{param.count[,sep]}`; the separator may come from a pseudo-variable (its first byte).
pub fn count(v: &Value, args: &[Value]) -> Option<Value> {
    let sep_arg = match args.first() {
        None => None,
        Some(a) => Some(super::text_of(a).filter(|b| !b.is_empty())?),
    };
    let sep_args: Vec<Value> = sep_arg.into_iter().map(Value::Str).collect();
    let (_, l) = list(v, &sep_args, 0)?;
    Some(Value::Int(l.len() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(v: Option<Value>) -> String {
        match v {
            Some(Value::Str(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(Value::Int(i)) => format!("#{i}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn list_parsing() {
        let l = parse_param_list(b"a=1;b;c=\"x y\"", b';').unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[2].body, 9..12);
        assert!(parse_param_list(b"a=;b", b';').is_none());
        assert!(parse_param_list(b"a=\"x", b';').is_none());
        assert!(parse_param_list(b"a;", b';').is_none());
        assert_eq!(parse_param_list(b"a=1,b=2", b',').unwrap().len(), 1);
    }

    #[test]
    fn transformations() {
        let v = Value::from("a=1;b=2;A=3;c");
        let s = |x: &str| Value::from(x);
        assert_eq!(st(value(&v, &[s("a")])), "3");
        assert_eq!(st(value(&v, &[s("b")])), "2");
        assert_eq!(st(value(&v, &[s("c")])), "");
        assert_eq!(st(value(&v, &[s("x")])), "");
        assert_eq!(st(is_in(&v, &[s("c")])), "#1");
        assert_eq!(st(is_in(&v, &[s("x")])), "#0");
        assert_eq!(st(valueat(&v, &[Value::Int(1)])), "2");
        assert_eq!(st(valueat(&v, &[Value::Int(-1)])), "");
        assert_eq!(st(valueat(&v, &[Value::Int(-2)])), "3");
        assert_eq!(st(valueat(&v, &[Value::Int(9)])), "");
        assert_eq!(st(name(&v, &[Value::Int(0)])), "a");
        assert_eq!(st(name(&v, &[Value::Int(-1)])), "c");
        assert_eq!(st(count(&v, &[])), "#4");
        assert_eq!(st(count(&s("a=1;b;"), &[])), "#2");
        assert_eq!(st(value(&s("a=1|b=2"), &[s("b"), s("|")])), "2");
        assert_eq!(st(count(&s("a=1|b=2"), &[s("|")])), "#2");
        assert_eq!(value(&s(""), &[s("a")]), None);
        assert_eq!(value(&s("a=;b"), &[s("a")]), None);
    }
}
