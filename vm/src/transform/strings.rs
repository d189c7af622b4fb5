//! The `{s.*}` string transformations (module pv).
//!
//! Inputs: null fails; integers are worked on as their decimal text.

use super::{int_arg, str_arg, str_val, text_of};
use crate::value::Value;
use bytes::Bytes;

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Kamailio's strict signed conversion: optional sign, then digits only, within `i32`
/// (5.6 `str2sint`). The empty string and a lone sign read as 0.
pub(crate) fn str2sint(s: &[u8]) -> Option<i64> {
    str2signed(s, i32::MIN as i64, i32::MAX as i64)
}

fn str2signed(s: &[u8], min: i64, max: i64) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, s.get(1..).unwrap_or(&[])),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        n = if neg {
            n.checked_mul(10)?.checked_sub(d)?
        } else {
            n.checked_mul(10)?.checked_add(d)?
        };
        if n < min || n > max {
            return None;
        }
    }
    Some(n)
}

pub fn len(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Int(text_of(v)?.len() as i64))
}

pub fn int(v: &Value, _: &[Value]) -> Option<Value> {
    match v {
        Value::Int(i) => Some(Value::Int(*i)),
        Value::Str(s) => str2sint(s).map(Value::Int),
        Value::Null => None,
    }
}

/// `{s.intv}` (after 5.6): like `{s.int}` but on 64-bit values.
pub fn intv(v: &Value, _: &[Value]) -> Option<Value> {
    match v {
        Value::Int(i) => Some(Value::Int(*i)),
        Value::Str(s) => str2signed(s, i64::MIN, i64::MAX).map(Value::Int),
        Value::Null => None,
    }
}

pub fn rmws(v: &Value, _: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    str_val(s.iter().copied().filter(|&c| !is_ws(c)).collect())
}

/// Header folding: a line break and the blanks after it become one space (`rmhdws`) or
/// nothing (`rmhlws`).
fn unfold(v: &Value, space: bool) -> Option<Value> {
    let s = text_of(v)?;
    let mut out = Vec::with_capacity(s.len());
    // 0: normal, 1: after a line break, 2: inside the blanks after a line break
    let mut state = 0u8;
    for &c in s.iter() {
        if c == b'\r' || c == b'\n' {
            state = 1;
        } else if state != 0 && (c == b' ' || c == b'\t') {
            if state == 1 && space {
                out.push(b' ');
            }
            state = 2;
        } else {
            out.push(c);
            state = 0;
        }
    }
    str_val(out)
}

pub fn rmhdws(v: &Value, _: &[Value]) -> Option<Value> {
    unfold(v, true)
}

pub fn rmhlws(v: &Value, _: &[Value]) -> Option<Value> {
    unfold(v, false)
}

pub fn tolower(v: &Value, _: &[Value]) -> Option<Value> {
    str_val(text_of(v)?.to_ascii_lowercase())
}

pub fn toupper(v: &Value, _: &[Value]) -> Option<Value> {
    str_val(text_of(v)?.to_ascii_uppercase())
}

pub fn numeric(v: &Value, _: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    str_val(s.iter().copied().filter(u8::is_ascii_digit).collect())
}

/// Kamailio refuses prefix lists whose buffer estimate exceeds its 64 KiB buffer.
const TR_BUFFER_SIZE: usize = 65536;

fn prefixes_list(v: &Value, args: &[Value], quoted: bool) -> Option<Value> {
    let s = text_of(v)?;
    let mut max = s.len();
    if !args.is_empty() {
        let n = int_arg(args, 0)?;
        if n > 0 && (n as u64) < max as u64 {
            max = n as usize;
        }
    }
    let estimate = max.checked_mul(max / 2 + if quoted { 1 } else { 3 })?;
    if estimate > TR_BUFFER_SIZE - 1 {
        return None;
    }
    let mut out = Vec::with_capacity(estimate);
    for i in 1..=max {
        if i > 1 {
            out.push(b',');
        }
        if quoted {
            out.push(b'\'');
        }
        out.extend_from_slice(s.get(..i).unwrap_or(&s));
        if quoted {
            out.push(b'\'');
        }
    }
    str_val(out)
}

pub fn prefixes(v: &Value, args: &[Value]) -> Option<Value> {
    prefixes_list(v, args, false)
}

pub fn prefixes_quoted(v: &Value, args: &[Value]) -> Option<Value> {
    prefixes_list(v, args, true)
}

pub fn substr(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let i = int_arg(args, 0)?;
    let mut j = int_arg(args, 1)?;
    if j < 0 {
        return None;
    }
    let len = s.len() as i64;
    let (start, count) = if i >= 0 {
        if i >= len {
            return None;
        }
        if i + j >= len {
            j = 0;
        }
        (i, if j == 0 { len - i } else { j })
    } else {
        let back = -i;
        if back > len {
            return None;
        }
        if back < j {
            j = 0;
        }
        (len - back, if j == 0 { back } else { j })
    };
    let (a, b) = (start as usize, (start + count) as usize);
    Some(Value::Str(s.slice(a..b.min(s.len()))))
}

/// The `i`-th field of `s` split at bytes matching `sep` (negative `i` counts from the end),
/// or empty when there are fewer fields.
fn field(s: &Bytes, i: i64, sep: impl Fn(u8) -> bool) -> Bytes {
    let b: &[u8] = s;
    if i >= 0 {
        let mut want = i;
        let mut start = 0usize;
        let mut p = 0usize;
        while p < b.len() {
            if b.get(p).is_some_and(|&c| sep(c)) {
                if want == 0 {
                    break;
                }
                start = p + 1;
                want -= 1;
            }
            p += 1;
        }
        if want == 0 {
            return s.slice(start..p);
        }
        Bytes::new()
    } else {
        let mut want = -i - 1;
        // `end` is one past the last byte of the current field.
        let mut end = b.len();
        let mut p = b.len();
        while p > 0 {
            let k = p - 1;
            if b.get(k).is_some_and(|&c| sep(c)) {
                if want == 0 {
                    return s.slice(p..end);
                }
                end = k;
                want -= 1;
            }
            p = k;
        }
        if want == 0 {
            return s.slice(0..end);
        }
        Bytes::new()
    }
}

pub fn select(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let i = int_arg(args, 0)?;
    let c = *args.get(1)?.as_bytes()?.first()?;
    Some(Value::Str(field(&s, i, |x| x == c)))
}

/// `{s.selectsw}` (after 5.6): like `select` with any whitespace as separator.
pub fn selectws(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let i = int_arg(args, 0)?;
    Some(Value::Str(field(&s, i, is_ws)))
}

fn strip_n(v: &Value, args: &[Value], head: bool) -> Option<Value> {
    let s = text_of(v)?;
    let n = int_arg(args, 0)?;
    if n <= 0 {
        return Some(Value::Str(s));
    }
    let n = n as u64;
    if n >= s.len() as u64 {
        return Some(Value::Str(Bytes::new()));
    }
    let n = n as usize;
    Some(Value::Str(if head {
        s.slice(n..)
    } else {
        s.slice(..s.len() - n)
    }))
}

pub fn strip(v: &Value, args: &[Value]) -> Option<Value> {
    strip_n(v, args, true)
}

pub fn striptail(v: &Value, args: &[Value]) -> Option<Value> {
    strip_n(v, args, false)
}

/// Strips up to the first occurrence of the first character of the parameter.
pub fn stripto(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let c = *str_arg(args, 0)?.first()?;
    Some(Value::Str(match memchr::memchr(c, &s) {
        Some(i) => s.slice(i..),
        None => Bytes::new(),
    }))
}

/// Replaces every occurrence of the first parameter by the second.
pub fn replace(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let from = str_arg(args, 0)?;
    let to = str_arg(args, 1)?;
    Some(Value::Str(replace_all(&s, &from, &to)))
}

fn replace_all(s: &Bytes, from: &[u8], to: &[u8]) -> Bytes {
    if from.is_empty() || memchr::memmem::find(s, from).is_none() {
        return s.clone();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    for at in memchr::memmem::find_iter(s, from) {
        if at < i {
            continue;
        }
        out.extend_from_slice(s.get(i..at).unwrap_or(&[]));
        out.extend_from_slice(to);
        i = at + from.len();
    }
    out.extend_from_slice(s.get(i..).unwrap_or(&[]));
    Bytes::from(out)
}

/// Removes every occurrence of the parameter. Escapes in a literal parameter were decoded
/// when the transformation was parsed.
pub fn rm(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let what = str_arg(args, 0)?;
    Some(Value::Str(replace_all(&s, &what, b"")))
}

pub fn trim(v: &Value, _: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let a = s.iter().position(|&c| !is_ws(c)).unwrap_or(s.len());
    let b = s.iter().rposition(|&c| !is_ws(c)).map_or(a, |i| i + 1);
    Some(Value::Str(s.slice(a..b.max(a))))
}

pub fn rtrim(v: &Value, _: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let b = s.iter().rposition(|&c| !is_ws(c)).map_or(0, |i| i + 1);
    Some(Value::Str(s.slice(..b)))
}

pub fn ltrim(v: &Value, _: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let a = s.iter().position(|&c| !is_ws(c)).unwrap_or(s.len());
    Some(Value::Str(s.slice(a..)))
}

fn strip_pair(v: &Value, pairs: &[(u8, u8)]) -> Option<Value> {
    let s = text_of(v)?;
    if s.len() < 2 {
        return Some(Value::Str(s));
    }
    let (first, last) = (s.first().copied(), s.last().copied());
    if pairs
        .iter()
        .any(|&(o, c)| first == Some(o) && last == Some(c))
    {
        return Some(Value::Str(s.slice(1..s.len() - 1)));
    }
    Some(Value::Str(s))
}

pub fn unquote(v: &Value, _: &[Value]) -> Option<Value> {
    strip_pair(v, &[(b'"', b'"'), (b'\'', b'\'')])
}

pub fn unbracket(v: &Value, _: &[Value]) -> Option<Value> {
    strip_pair(v, &[(b'(', b')'), (b'[', b']'), (b'{', b'}'), (b'<', b'>')])
}

/// Counts the occurrences of the first character of the parameter.
pub fn count(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let c = *str_arg(args, 0)?.first()?;
    Some(Value::Int(memchr::memchr_iter(c, &s).count() as i64))
}

/// Text before the first occurrence of the first character of the parameter (all of it
/// when absent).
pub fn before(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let c = *str_arg(args, 0)?.first()?;
    let i = memchr::memchr(c, &s).unwrap_or(s.len());
    Some(Value::Str(s.slice(..i)))
}

/// Text after the first occurrence of the first character of the parameter (empty when
/// absent).
pub fn after(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let c = *str_arg(args, 0)?.first()?;
    Some(Value::Str(match memchr::memchr(c, &s) {
        Some(i) => s.slice(i + 1..),
        None => Bytes::new(),
    }))
}

/// Text before the last occurrence of the separator. Kamailio 5.6 scans forward from the
/// last byte here (reading past the value unless the value ends with the separator); ksr
/// gives the intended result: everything before the last occurrence, all of it when
/// absent.
pub fn rbefore(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let c = *str_arg(args, 0)?.first()?;
    let i = memchr::memrchr(c, &s).unwrap_or(s.len());
    Some(Value::Str(s.slice(..i)))
}

/// Text after the last occurrence of the separator. Kamailio 5.6's loop (see `rbefore`)
/// can only stop at or past the last byte, so its result is always empty; ksr returns
/// the same.
pub fn rafter(v: &Value, args: &[Value]) -> Option<Value> {
    text_of(v)?;
    str_arg(args, 0)?;
    Some(Value::Str(Bytes::new()))
}

/// `{s.fmtlines,n,m}` / `{s.fmtlinet,n,m}`. Kamailio 5.6 tests `i/n == 0` where a line
/// length test was meant, so it breaks the line before each of the bytes 1..n-1 and never
/// after; ksr reproduces that output byte for byte.
fn fmtline(v: &Value, args: &[Value], pad: u8) -> Option<Value> {
    let s = text_of(v)?;
    let n = int_arg(args, 0)?;
    let m = int_arg(args, 1)?;
    if n <= 0 || m < 0 {
        return None;
    }
    let len = s.len() as i64;
    if len + (len / n) * (2 + m) > TR_BUFFER_SIZE as i64 - 2 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len());
    for (i, &c) in s.iter().enumerate() {
        if i != 0 && (i as i64) / n == 0 {
            out.extend_from_slice(b"\r\n");
            out.resize(out.len() + m as usize, pad);
        }
        out.push(c);
    }
    str_val(out)
}

pub fn fmtlines(v: &Value, args: &[Value]) -> Option<Value> {
    fmtline(v, args, b' ')
}

pub fn fmtlinet(v: &Value, args: &[Value]) -> Option<Value> {
    fmtline(v, args, b'\t')
}

/// `{s.charat,i}` (after 5.6): the byte at `i` as a one-character string, empty when out of
/// range.
pub fn charat(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let i = int_arg(args, 0)?;
    if i < 0 || i >= s.len() as i64 {
        return Some(Value::Str(Bytes::new()));
    }
    Some(Value::Str(s.slice(i as usize..i as usize + 1)))
}

/// `{s.byteat,i}` (after 5.6): the byte at `i` as a (signed, like C `char`) number, -1 when
/// out of range.
pub fn byteat(v: &Value, args: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let i = int_arg(args, 0)?;
    if i < 0 {
        return Some(Value::Int(-1));
    }
    Some(Value::Int(
        s.get(i as usize).map_or(-1, |&b| b as i8 as i64),
    ))
}

/// `{s.ftime,format}`: the input is a Unix time (an integer, or unsigned decimal text),
/// formatted in local time with C `strftime`.
pub fn ftime(v: &Value, args: &[Value]) -> Option<Value> {
    let t: i64 = match v {
        Value::Int(i) => *i,
        Value::Str(s) => str2uint(s)? as i64,
        Value::Null => return None,
    };
    let fmt = str_arg(args, 0)?;
    strftime_local(t, &fmt).map(|b| Value::Str(Bytes::from(b)))
}

/// Kamailio's `str2int`: digits only, within `u32` (the empty string reads as 0).
fn str2uint(s: &[u8]) -> Option<u32> {
    let mut n: u32 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((c - b'0') as u32)?;
    }
    Some(n)
}

/// Formats `t` in the process's local time zone with the C library, so every conversion
/// (`%c`, `%Z`, ...) is exactly the one Kamailio produces.
fn strftime_local(t: i64, fmt: &[u8]) -> Option<Vec<u8>> {
    let mut cfmt = Vec::with_capacity(fmt.len() + 1);
    // A NUL inside the format ends it, as it would in C.
    cfmt.extend(fmt.iter().copied().take_while(|&c| c != 0));
    cfmt.push(0);
    let tt: libc::time_t = t as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&tt, &mut tm).is_null() };
    if !ok {
        return None;
    }
    let mut buf = vec![0u8; TR_BUFFER_SIZE - 1];
    // SAFETY: `buf` has `buf.len()` writable bytes, `cfmt` is NUL-terminated, `tm` is valid.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            cfmt.as_ptr() as *const libc::c_char,
            &tm,
        )
    };
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    fn st(v: Option<Value>) -> String {
        match v {
            Some(Value::Str(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn int_is_strict() {
        assert_eq!(int(&s("12"), &[]), Some(Value::Int(12)));
        assert_eq!(int(&s("-12"), &[]), Some(Value::Int(-12)));
        assert_eq!(int(&s("+7"), &[]), Some(Value::Int(7)));
        assert_eq!(int(&s("12abc"), &[]), None);
        assert_eq!(int(&s(" 1"), &[]), None);
        assert_eq!(int(&s(""), &[]), Some(Value::Int(0)));
        assert_eq!(int(&s("2147483647"), &[]), Some(Value::Int(2147483647)));
        assert_eq!(int(&s("2147483648"), &[]), None);
        assert_eq!(int(&s("-2147483648"), &[]), Some(Value::Int(-2147483648)));
        assert_eq!(intv(&s("2147483648"), &[]), Some(Value::Int(2147483648)));
        assert_eq!(int(&Value::Null, &[]), None);
    }

    #[test]
    fn substr_edges() {
        let a = |i: i64, j: i64| [Value::Int(i), Value::Int(j)];
        assert_eq!(st(substr(&s("abcdef"), &a(1, 2))), "bc");
        assert_eq!(st(substr(&s("abcdef"), &a(1, 0))), "bcdef");
        assert_eq!(st(substr(&s("abcdef"), &a(4, 5))), "ef");
        assert_eq!(substr(&s("abcdef"), &a(6, 1)), None);
        assert_eq!(st(substr(&s("abcdef"), &a(-2, 0))), "ef");
        assert_eq!(st(substr(&s("abcdef"), &a(-4, 2))), "cd");
        assert_eq!(st(substr(&s("abcdef"), &a(-2, 5))), "ef");
        assert_eq!(st(substr(&s("abcdef"), &a(-6, 1))), "a");
        assert_eq!(substr(&s("abcdef"), &a(-7, 1)), None);
        assert_eq!(substr(&s(""), &a(0, 0)), None);
        assert_eq!(st(substr(&Value::Int(12345), &a(1, 2))), "23");
    }

    #[test]
    fn select_fields() {
        let a = |i: i64| [Value::Int(i), s(",")];
        assert_eq!(st(select(&s("a,b,c"), &a(0))), "a");
        assert_eq!(st(select(&s("a,b,c"), &a(2))), "c");
        assert_eq!(st(select(&s("a,b,c"), &a(3))), "");
        assert_eq!(st(select(&s("a,b,c"), &a(-1))), "c");
        assert_eq!(st(select(&s("a,b,c"), &a(-3))), "a");
        assert_eq!(st(select(&s("a,b,c"), &a(-4))), "");
        assert_eq!(st(select(&s(",x,"), &a(0))), "");
        assert_eq!(st(select(&s(",x,"), &a(1))), "x");
        assert_eq!(st(select(&s(",x,"), &a(-1))), "");
        assert_eq!(st(selectws(&s("a b\tc"), &[Value::Int(2)])), "c");
    }

    #[test]
    fn misc_strings() {
        assert_eq!(st(rmws(&s(" a b\r\n\tc "), &[])), "abc");
        assert_eq!(st(rmhdws(&s("a\r\n  b"), &[])), "a b");
        assert_eq!(st(rmhlws(&s("a\r\n  b"), &[])), "ab");
        assert_eq!(st(numeric(&s("040/123-456"), &[])), "040123456");
        assert_eq!(st(prefixes(&s("1234"), &[])), "1,12,123,1234");
        assert_eq!(st(prefixes(&s("1234"), &[Value::Int(2)])), "1,12");
        assert_eq!(st(prefixes_quoted(&s("123"), &[])), "'1','12','123'");
        assert_eq!(st(strip(&s("abcd"), &[Value::Int(1)])), "bcd");
        assert_eq!(st(strip(&s("abcd"), &[Value::Int(9)])), "");
        assert_eq!(st(striptail(&s("abcd"), &[Value::Int(1)])), "abc");
        assert_eq!(st(stripto(&s("abc@d"), &[s("@x")])), "@d");
        assert_eq!(st(stripto(&s("abcd"), &[s("@")])), "");
        assert_eq!(st(replace(&s("a.b.c"), &[s("."), s("::")])), "a::b::c");
        assert_eq!(st(rm(&s("a.b.c"), &[s(".")])), "abc");
        assert_eq!(st(trim(&s(" \t a b \r\n"), &[])), "a b");
        assert_eq!(st(trim(&s("   "), &[])), "");
        assert_eq!(st(rtrim(&s(" a "), &[])), " a");
        assert_eq!(st(ltrim(&s(" a "), &[])), "a ");
        assert_eq!(st(unquote(&s("\"ab\""), &[])), "ab");
        assert_eq!(st(unquote(&s("'ab\""), &[])), "'ab\"");
        assert_eq!(st(unbracket(&s("<sip:a>"), &[])), "sip:a");
        assert_eq!(count(&s("a,b,,c"), &[s(",")]), Some(Value::Int(3)));
        assert_eq!(st(before(&s("user@host"), &[s("@")])), "user");
        assert_eq!(st(before(&s("userhost"), &[s("@")])), "userhost");
        assert_eq!(st(after(&s("user@host"), &[s("@")])), "host");
        assert_eq!(st(after(&s("userhost"), &[s("@")])), "");
        assert_eq!(st(rbefore(&s("a.b."), &[s(".")])), "a.b");
        assert_eq!(st(rafter(&s("a.b.c"), &[s(".")])), "");
        assert_eq!(
            st(fmtlines(&s("abcdef"), &[Value::Int(3), Value::Int(1)])),
            "a\r\n b\r\n cdef"
        );
        assert_eq!(st(charat(&s("abc"), &[Value::Int(1)])), "b");
        assert_eq!(byteat(&s("abc"), &[Value::Int(1)]), Some(Value::Int(98)));
        assert_eq!(byteat(&s("abc"), &[Value::Int(3)]), Some(Value::Int(-1)));
        assert_eq!(len(&Value::Int(-12), &[]), Some(Value::Int(3)));
        assert_eq!(len(&Value::Null, &[]), None);
        assert_eq!(st(tolower(&s("AbC"), &[])), "abc");
        assert_eq!(st(toupper(&s("AbC"), &[])), "ABC");
    }

    #[test]
    fn ftime_formats_utc_offsets_consistently() {
        // `%s` is locale and zone independent.
        assert_eq!(st(ftime(&Value::Int(86400), &[s("%s")])), "86400");
        assert_eq!(st(ftime(&s("86400"), &[s("%%")])), "%");
        assert_eq!(ftime(&s("12x"), &[s("%s")]), None);
        assert_eq!(ftime(&s("-5"), &[s("%s")]), None);
    }
}
