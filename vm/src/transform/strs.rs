//! `{s.*}`, `{line.*}` and `{re.subst}` transformations.

use crate::value::Value;
use bytes::Bytes;

/// The input as bytes (ints print in decimal; null fails).
fn input(v: &Value) -> Option<Bytes> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(Bytes::from(i.to_string())),
        Value::Null => None,
    }
}

fn int_arg(a: &[Value], i: usize) -> Option<i64> {
    match a.get(i)? {
        Value::Int(n) => Some(*n),
        Value::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
        Value::Null => None,
    }
}

fn str_arg(a: &[Value], i: usize) -> Option<Bytes> {
    a.get(i).and_then(input)
}

pub fn len(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Int(input(v)?.len() as i64))
}

/// `{s.int}`: the leading decimal number (with sign), 0 when there is none.
pub fn int(v: &Value, _: &[Value]) -> Option<Value> {
    if let Value::Int(i) = v {
        return Some(Value::Int(*i));
    }
    let s = input(v)?;
    let mut i = 0;
    let neg = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut n: i64 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        n = n.wrapping_mul(10).wrapping_add((d - b'0') as i64);
        i += 1;
    }
    Some(Value::Int(if neg { -n } else { n }))
}

/// `{s.substr,offset,length}`: negative offset counts from the end; length 0 means to the
/// end; out of range fails.
pub fn substr(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let off = int_arg(a, 0)?;
    let len = int_arg(a, 1)?;
    let n = s.len() as i64;
    let start = if off < 0 { n + off } else { off };
    if start < 0 || start > n || len < 0 {
        return None;
    }
    let end = if len == 0 { n } else { (start + len).min(n) };
    Some(Value::Str(s.slice(start as usize..end as usize)))
}

/// `{s.select,index,sep}`: the field at index (negative from the end).
pub fn select(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let idx = int_arg(a, 0)?;
    let sep = str_arg(a, 1)?;
    let sepc = *sep.first()?;
    let fields: Vec<&[u8]> = s.split(|c| *c == sepc).collect();
    let i = if idx < 0 {
        fields.len() as i64 + idx
    } else {
        idx
    };
    let f = fields.get(usize::try_from(i).ok()?)?;
    Some(Value::Str(Bytes::copy_from_slice(f)))
}

pub fn tolower(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Str(Bytes::from(input(v)?.to_ascii_lowercase())))
}

pub fn toupper(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Str(Bytes::from(input(v)?.to_ascii_uppercase())))
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

pub fn trim(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let st = s.iter().position(|c| !is_ws(*c)).unwrap_or(s.len());
    let en = s.iter().rposition(|c| !is_ws(*c)).map_or(st, |p| p + 1);
    Some(Value::Str(s.slice(st..en.max(st))))
}

pub fn rtrim(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let en = s.iter().rposition(|c| !is_ws(*c)).map_or(0, |p| p + 1);
    Some(Value::Str(s.slice(..en)))
}

pub fn ltrim(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let st = s.iter().position(|c| !is_ws(*c)).unwrap_or(s.len());
    Some(Value::Str(s.slice(st..)))
}

/// `{s.strip,n}`: drop the first n characters (all when n is larger).
pub fn strip(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let n = int_arg(a, 0)?.max(0) as usize;
    Some(Value::Str(s.slice(n.min(s.len())..)))
}

pub fn striptail(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let n = int_arg(a, 0)?.max(0) as usize;
    Some(Value::Str(s.slice(..s.len().saturating_sub(n))))
}

/// `{s.prefixes[,max]}`: `a,ab,abc`.
pub fn prefixes(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let max = int_arg(a, 0).filter(|m| *m > 0).unwrap_or(s.len() as i64) as usize;
    let mut out = Vec::new();
    for i in 1..=s.len().min(max) {
        if i > 1 {
            out.push(b',');
        }
        out.extend_from_slice(&s[..i]);
    }
    Some(Value::Str(Bytes::from(out)))
}

pub fn replace(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let from = str_arg(a, 0)?;
    let to = str_arg(a, 1)?;
    if from.is_empty() {
        return Some(Value::Str(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(&from) {
            out.extend_from_slice(&to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(Value::Str(Bytes::from(out)))
}

pub fn encode_hexa(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.iter() {
        out.push_str(&format!("{c:02x}"));
    }
    Some(Value::from(out))
}

pub fn decode_hexa(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    if s.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 2);
    for ch in s.chunks(2) {
        let t = std::str::from_utf8(ch).ok()?;
        out.push(u8::from_str_radix(t, 16).ok()?);
    }
    Some(Value::Str(Bytes::from(out)))
}

/// `{s.numeric}`: only the digits.
pub fn numeric(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    Some(Value::Str(Bytes::from(
        s.iter()
            .copied()
            .filter(u8::is_ascii_digit)
            .collect::<Vec<u8>>(),
    )))
}

fn strip_pair(s: &Bytes, o: u8, c: u8) -> Bytes {
    if s.len() >= 2 && s.first() == Some(&o) && s.last() == Some(&c) {
        s.slice(1..s.len() - 1)
    } else {
        s.clone()
    }
}

pub fn unquote(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let t = strip_pair(&s, b'"', b'"');
    Some(Value::Str(if t.len() == s.len() {
        strip_pair(&s, b'\'', b'\'')
    } else {
        t
    }))
}

pub fn unbracket(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let mut t = strip_pair(&s, b'<', b'>');
    for (o, c) in [(b'(', b')'), (b'[', b']'), (b'{', b'}')] {
        if t.len() == s.len() {
            t = strip_pair(&s, o, c);
        }
    }
    Some(Value::Str(t))
}

pub fn escape_common(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let mut out = Vec::with_capacity(s.len());
    for c in s.iter() {
        match c {
            b'\'' | b'"' | b'\\' => {
                out.push(b'\\');
                out.push(*c);
            }
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(*c),
        }
    }
    Some(Value::Str(Bytes::from(out)))
}

pub fn unescape_common(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() {
            out.push(match s[i + 1] {
                b'0' => 0,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                c => c,
            });
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(Value::Str(Bytes::from(out)))
}

pub fn md5(v: &Value, _: &[Value]) -> Option<Value> {
    use md5::Digest;
    let s = input(v)?;
    let d = md5::Md5::digest(&s);
    Some(Value::from(
        d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

pub fn b64enc(v: &Value, _: &[Value]) -> Option<Value> {
    use base64::Engine;
    let s = input(v)?;
    Some(Value::from(
        base64::engine::general_purpose::STANDARD.encode(&s),
    ))
}

pub fn b64dec(v: &Value, _: &[Value]) -> Option<Value> {
    use base64::Engine;
    let s = input(v)?;
    base64::engine::general_purpose::STANDARD
        .decode(&s)
        .ok()
        .map(|d| Value::Str(Bytes::from(d)))
}

pub fn dec2hex(v: &Value, _: &[Value]) -> Option<Value> {
    let n = int(v, &[])?.as_int()?;
    Some(Value::from(format!("{:x}", n as u32)))
}

pub fn hex2dec(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let t = std::str::from_utf8(&s).ok()?.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    i64::from_str_radix(t, 16).ok().map(Value::Int)
}

/// `{s.ftime,format}`: strftime of a unix timestamp (local time).
pub fn ftime(v: &Value, a: &[Value]) -> Option<Value> {
    let t = int(v, &[])?.as_int()?;
    let f = str_arg(a, 0)?;
    let fmt = std::ffi::CString::new(f.to_vec()).ok()?;
    // SAFETY: tm is plain data written by localtime_r; strftime writes at most buf.len().
    let mut tm: libc_tm::Tm = unsafe { std::mem::zeroed() };
    let tt = t as libc_tm::TimeT;
    unsafe { libc_tm::localtime_r(&tt, &mut tm) };
    let mut buf = [0u8; 256];
    let n = unsafe { libc_tm::strftime(buf.as_mut_ptr(), buf.len(), fmt.as_ptr(), &tm) };
    Some(Value::Str(Bytes::copy_from_slice(buf.get(..n)?)))
}

mod libc_tm {
    //! The two libc time functions `{s.ftime}` needs, declared directly so the vm crate
    //! does not depend on the libc crate.
    pub type TimeT = i64;
    #[repr(C)]
    pub struct Tm {
        pub tm_sec: i32,
        pub tm_min: i32,
        pub tm_hour: i32,
        pub tm_mday: i32,
        pub tm_mon: i32,
        pub tm_year: i32,
        pub tm_wday: i32,
        pub tm_yday: i32,
        pub tm_isdst: i32,
        pub tm_gmtoff: i64,
        pub tm_zone: *const std::ffi::c_char,
    }
    unsafe extern "C" {
        pub fn localtime_r(t: *const TimeT, tm: *mut Tm) -> *mut Tm;
        pub fn strftime(
            s: *mut u8,
            max: usize,
            format: *const std::ffi::c_char,
            tm: *const Tm,
        ) -> usize;
    }
}

fn lines(s: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = s
        .split(|c| *c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    if out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

pub fn line_count(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Int(lines(&input(v)?).len() as i64))
}

pub fn line_at(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let ls = lines(&s);
    let i = int_arg(a, 0)?;
    let idx = if i < 0 { ls.len() as i64 + i } else { i };
    let l = ls.get(usize::try_from(idx).ok()?)?;
    Some(Value::Str(Bytes::copy_from_slice(l)))
}

pub fn line_sw(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let p = str_arg(a, 0)?;
    let l = lines(&s).into_iter().find(|l| l.starts_with(&p))?;
    Some(Value::Str(Bytes::copy_from_slice(l)))
}

/// `{re.subst,/re/repl/flags}` with `\N` back-references, flags `i` and `g`.
pub fn re_subst(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let expr = str_arg(a, 0)?;
    let (re, repl, global) = parse_subst(&expr)?;
    let text = String::from_utf8_lossy(&s).into_owned();
    let rep = repl.replace('$', "$$");
    let rep = convert_backrefs(&rep);
    let out = if global {
        re.replace_all(&text, rep.as_str()).into_owned()
    } else {
        re.replace(&text, rep.as_str()).into_owned()
    };
    Some(Value::from(out))
}

/// `parse_subst` with the replacement already converted for the regex crate.
pub fn parse_subst_public(expr: &[u8]) -> Option<(regex::Regex, String, bool)> {
    let (re, repl, g) = parse_subst(expr)?;
    Some((re, convert_backrefs(&repl.replace('$', "$$")), g))
}

/// Parses Kamailio's `/re/repl/flags` (any delimiter).
pub fn parse_subst(expr: &[u8]) -> Option<(regex::Regex, String, bool)> {
    let s = std::str::from_utf8(expr).ok()?;
    let delim = s.chars().next()?;
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for ch in s[delim.len_utf8()..].chars() {
        if esc {
            if ch != delim {
                cur.push('\\');
            }
            cur.push(ch);
            esc = false;
        } else if ch == '\\' {
            esc = true;
        } else if ch == delim {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    if parts.len() != 2 {
        return None;
    }
    let flags = cur;
    let mut b = regex::RegexBuilder::new(parts.first()?);
    b.case_insensitive(flags.contains('i'));
    b.multi_line(!flags.contains('s'));
    let re = b.build().ok()?;
    Some((re, parts.get(1)?.clone(), flags.contains('g')))
}

fn convert_backrefs(r: &str) -> String {
    let mut out = String::with_capacity(r.len());
    let mut it = r.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(d) = it.peek().copied().filter(char::is_ascii_digit) {
                it.next();
                out.push_str(&format!("${{{d}}}"));
                continue;
            }
            if let Some(n) = it.next() {
                out.push(n);
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn string_transformations() {
        assert_eq!(len(&s("abc"), &[]), Some(Value::Int(3)));
        assert_eq!(int(&s("12abc"), &[]), Some(Value::Int(12)));
        assert_eq!(int(&s("abc"), &[]), Some(Value::Int(0)));
        assert_eq!(
            substr(&s("abcdef"), &[Value::Int(1), Value::Int(2)]),
            Some(s("bc"))
        );
        assert_eq!(
            substr(&s("abcdef"), &[Value::Int(-2), Value::Int(0)]),
            Some(s("ef"))
        );
        assert_eq!(substr(&s("abc"), &[Value::Int(5), Value::Int(1)]), None);
        assert_eq!(select(&s("a,b,c"), &[Value::Int(-1), s(",")]), Some(s("c")));
        assert_eq!(prefixes(&s("123"), &[]), Some(s("1,12,123")));
        assert_eq!(
            md5(&s("abc"), &[]),
            Some(s("900150983cd24fb0d6963f7d28e17f72"))
        );
        assert_eq!(
            re_subst(&s("sip:alice@a.com"), &[s("/^sip:([a-z]+)@.*$/\\1/")]),
            Some(s("alice"))
        );
        assert_eq!(line_at(&s("a\r\nb\r\n"), &[Value::Int(1)]), Some(s("b")));
    }
}
