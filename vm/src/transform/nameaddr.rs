//! `{nameaddr.*}` (Kamailio's `parse_nameaddr`) and `{tobody.*}` (its To/From body parser
//! followed by `parse_uri`).

use super::nonempty_text;
use super::uri::parse_uri;
use crate::value::Value;
use bytes::Bytes;
use std::ops::Range;

/// Position of `c` outside double quotes (a quote preceded by `\` does not close).
fn find_not_quoted(s: &[u8], from: usize, c: u8) -> Option<usize> {
    let mut quoted = false;
    for i in from..s.len() {
        let ch = *s.get(i)?;
        if !quoted {
            if ch == b'"' {
                quoted = true;
            } else if ch == c {
                return Some(i);
            }
        } else if ch == b'"' && i > 0 && s.get(i - 1) != Some(&b'\\') {
            quoted = false;
        }
    }
    None
}

struct NameAddr {
    name: Range<usize>,
    uri: Range<usize>,
    len: usize,
}

/// `name <uri>`: the name is the raw text before `<`; without `<` the whole text is the
/// URI; a `<` without `>` fails.
fn nameaddr(s: &[u8]) -> Option<NameAddr> {
    match find_not_quoted(s, 0, b'<') {
        None => Some(NameAddr {
            name: 0..0,
            uri: 0..s.len(),
            len: s.len(),
        }),
        Some(lt) => {
            let gt = find_not_quoted(s, lt + 1, b'>')?;
            Some(NameAddr {
                name: 0..lt,
                uri: lt + 1..gt,
                len: gt + 1,
            })
        }
    }
}

pub fn na_uri(v: &Value, _: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    let n = nameaddr(&s)?;
    Some(Value::Str(s.slice(n.uri)))
}

pub fn na_name(v: &Value, _: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    let n = nameaddr(&s)?;
    Some(Value::Str(s.slice(n.name)))
}

pub fn na_len(v: &Value, _: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    Some(Value::Int(nameaddr(&s)?.len as i64))
}

/// A parsed To/From body.
struct ToBody {
    display: Option<Range<usize>>,
    uri: Range<usize>,
    /// Start of the first parameter's name.
    params_start: Option<usize>,
    tag: Option<Range<usize>>,
}

fn is_sp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn skip_sp(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|&c| is_sp(c)) {
        i += 1;
    }
    i
}

/// Parses a To/From header body: `["display"|display words] <uri>;params` or
/// `uri;params`.
fn parse_to_body(s: &[u8]) -> Option<ToBody> {
    let mut i = skip_sp(s, 0);
    let mut display = None;
    let uri;
    match s.get(i)? {
        b'"' => {
            let start = i;
            i += 1;
            loop {
                match s.get(i)? {
                    b'\\' => i += 2,
                    b'"' => break,
                    _ => i += 1,
                }
            }
            display = Some(start..i + 1);
            i = skip_sp(s, i + 1);
            if s.get(i) != Some(&b'<') {
                return None;
            }
            let (r, next) = enclosed(s, i)?;
            uri = r;
            i = next;
        }
        b'<' => {
            let (r, next) = enclosed(s, i)?;
            uri = r;
            i = next;
        }
        _ => {
            let start = i;
            let word_end = |mut k: usize| {
                while s
                    .get(k)
                    .is_some_and(|&c| !(is_sp(c) || matches!(c, b';' | b'<')))
                {
                    k += 1;
                }
                k
            };
            let mut end = word_end(i);
            if s.get(start..end)?
                .iter()
                .any(|&c| matches!(c, b'"' | b'>' | b'\\'))
            {
                return None;
            }
            let mut k = skip_sp(s, end);
            match s.get(k) {
                None | Some(b';') => {
                    uri = start..end;
                    i = k;
                }
                Some(b'<') if end == k => {
                    display = Some(start..end);
                    let (r, next) = enclosed(s, k)?;
                    uri = r;
                    i = next;
                }
                _ => {
                    // Display name words up to '<'.
                    loop {
                        match s.get(k) {
                            Some(b'<') => break,
                            None | Some(b';' | b'"' | b'>' | b'\\') => return None,
                            _ => {
                                end = word_end(k);
                                k = skip_sp(s, end);
                            }
                        }
                    }
                    display = Some(start..end);
                    let (r, next) = enclosed(s, k)?;
                    uri = r;
                    i = next;
                }
            }
        }
    }
    i = skip_sp(s, i);
    let mut body = ToBody {
        display: display.filter(|d| !d.is_empty()),
        uri,
        params_start: None,
        tag: None,
    };
    match s.get(i) {
        None => return Some(body),
        Some(b';') => {}
        Some(_) => return None,
    }
    // Parameters: name [= value | "value"] separated by ';'.
    loop {
        i = skip_sp(s, i + 1);
        let ns = i;
        while s
            .get(i)
            .is_some_and(|&c| !(is_sp(c) || matches!(c, b'=' | b';' | b'"' | b'\\' | b',')))
        {
            i += 1;
        }
        if i == ns {
            return None;
        }
        body.params_start.get_or_insert(ns);
        let is_tag = s.get(ns..i)?.eq_ignore_ascii_case(b"tag");
        let mut value = None;
        i = skip_sp(s, i);
        if s.get(i) == Some(&b'=') {
            i = skip_sp(s, i + 1);
            if s.get(i) == Some(&b'"') {
                let vs = i + 1;
                let close = (vs..s.len()).find(|&k| matches!(s.get(k), Some(b'"' | b'\\')))?;
                if s.get(close) != Some(&b'"') {
                    return None;
                }
                value = Some(vs..close);
                i = close + 1;
            } else {
                let vs = i;
                while let Some(&c) = s.get(i) {
                    if is_sp(c) || c == b';' {
                        break;
                    }
                    if c == b'"' || c == b'\\' || (c == b',' && !is_tag) {
                        return None;
                    }
                    i += 1;
                }
                value = Some(vs..i);
            }
        }
        if is_tag {
            body.tag = Some(value.unwrap_or(i..i));
        }
        i = skip_sp(s, i);
        match s.get(i) {
            None => return Some(body),
            Some(b';') => {}
            Some(_) => return None,
        }
    }
}

/// `<uri>` starting at the `<` at `lt`; returns the URI range and the index after `>`.
fn enclosed(s: &[u8], lt: usize) -> Option<(Range<usize>, usize)> {
    let us = skip_sp(s, lt + 1);
    let mut i = us;
    while let Some(&c) = s.get(i) {
        match c {
            b'>' | b' ' | b'\t' => break,
            b'<' | b'"' | b'\\' => return None,
            _ => i += 1,
        }
    }
    if i == us {
        return None;
    }
    let ue = i;
    i = skip_sp(s, i);
    if s.get(i) != Some(&b'>') {
        return None;
    }
    Some((us..ue, i + 1))
}

/// The body, its parse and the parse of its URI; any failure fails the transformation.
fn tobody(v: &Value) -> Option<(Bytes, ToBody, super::uri::Uri)> {
    let s = nonempty_text(v)?;
    let tb = parse_to_body(&s)?;
    let u = parse_uri(s.get(tb.uri.clone())?)?;
    Some((s, tb, u))
}

fn slice(s: &Bytes, r: Option<Range<usize>>) -> Value {
    Value::Str(match r {
        Some(r) if r.end <= s.len() => s.slice(r),
        _ => Bytes::new(),
    })
}

pub fn tb_uri(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, tb, _) = tobody(v)?;
    Some(slice(&s, Some(tb.uri)))
}

pub fn tb_tag(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, tb, _) = tobody(v)?;
    Some(slice(&s, tb.tag))
}

pub fn tb_display(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, tb, _) = tobody(v)?;
    Some(slice(&s, tb.display))
}

pub fn tb_params(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, tb, _) = tobody(v)?;
    Some(slice(&s, tb.params_start.map(|p| p..s.len())))
}

/// The user and host are relative to the URI inside the body.
pub fn tb_user(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, tb, u) = tobody(v)?;
    let base = tb.uri.start;
    Some(slice(&s, u.user.map(|r| r.start + base..r.end + base)))
}

pub fn tb_host(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, tb, u) = tobody(v)?;
    let base = tb.uri.start;
    Some(slice(&s, u.host.map(|r| r.start + base..r.end + base)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(f: fn(&Value, &[Value]) -> Option<Value>, x: &str) -> String {
        match f(&Value::from(x), &[]) {
            Some(Value::Str(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(Value::Int(i)) => format!("#{i}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn name_addr() {
        let x = "\"Alice\" <sip:alice@h>;tag=1";
        assert_eq!(t(na_name, x), "\"Alice\" ");
        assert_eq!(t(na_uri, x), "sip:alice@h");
        assert_eq!(t(na_len, x), "#21");
        assert_eq!(t(na_uri, "sip:a@h"), "sip:a@h");
        assert_eq!(t(na_name, "sip:a@h"), "");
        assert_eq!(t(na_uri, "<sip:a@h"), "None");
        assert_eq!(t(na_uri, "\"a<b\" <sip:x@y>"), "sip:x@y");
    }

    #[test]
    fn to_body() {
        let x = "\"Alice A\" <sip:alice@example.com;transport=udp>;tag=abc;x=1";
        assert_eq!(t(tb_display, x), "\"Alice A\"");
        assert_eq!(t(tb_uri, x), "sip:alice@example.com;transport=udp");
        assert_eq!(t(tb_user, x), "alice");
        assert_eq!(t(tb_host, x), "example.com");
        assert_eq!(t(tb_tag, x), "abc");
        assert_eq!(t(tb_params, x), "tag=abc;x=1");
        assert_eq!(t(tb_uri, "sip:bob@h;tag=9"), "sip:bob@h");
        assert_eq!(t(tb_tag, "sip:bob@h;tag=9"), "9");
        assert_eq!(t(tb_display, "Bob Smith <sip:bob@h>"), "Bob Smith");
        assert_eq!(t(tb_display, "<sip:bob@h>"), "");
        assert_eq!(t(tb_tag, "<sip:bob@h>"), "");
        assert_eq!(t(tb_uri, "Bob Smith"), "None");
        assert_eq!(t(tb_uri, "<sip:bob@h"), "None");
        assert_eq!(t(tb_uri, "<http://x>"), "None");
    }
}
