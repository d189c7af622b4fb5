//! `{line.*}`: lines of a multi-line value (a body, a header block). Results are strings
//! without the line's `\n` and without one trailing `\r`; even `{line.count}` is a string,
//! as in Kamailio.

use super::{int_arg, nonempty_text, str_arg};
use crate::value::Value;
use bytes::Bytes;

fn done(s: &Bytes, a: usize, b: usize) -> Option<Value> {
    let mut b = b.min(s.len());
    if b > a && s.get(b - 1) == Some(&b'\r') {
        b -= 1;
    }
    Some(Value::Str(s.slice(a..b.max(a))))
}

/// The line starting with the parameter (empty when none does).
pub fn sw(v: &Value, args: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    let pre = str_arg(args, 0)?;
    if s.len() < pre.len() {
        return Some(Value::Str(Bytes::new()));
    }
    let last_start = s.len() - pre.len();
    let mut p = 0usize;
    loop {
        if s.get(p..p + pre.len()) == Some(&pre[..]) {
            let end = memchr::memchr(b'\n', s.get(p + pre.len()..)?)
                .map_or(s.len(), |k| p + pre.len() + k);
            return done(&s, p, end);
        }
        match memchr::memchr(b'\n', s.get(p..)?) {
            Some(k) if p + k < last_start => p += k + 1,
            _ => return Some(Value::Str(Bytes::new())),
        }
    }
}

/// Last index < `n` holding `\n`.
fn rfind_nl(s: &[u8], n: isize) -> Option<isize> {
    if n <= 0 {
        return None;
    }
    memchr::memrchr(b'\n', s.get(..n as usize)?).map(|i| i as isize)
}

/// The line at an index: 0 is the first, -1 the last (a final `\n` does not start a new
/// line when counting from the end).
pub fn at(v: &Value, args: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    let n = int_arg(args, 0)?;
    let empty = Some(Value::Str(Bytes::new()));
    if n < 0 {
        let len = s.len() as isize;
        let mut p = len - 1;
        if s.get(p as usize) == Some(&b'\n') {
            p -= 1;
        }
        if p < 0 {
            return empty;
        }
        let want = n.unsigned_abs();
        // `last` is the index of the last byte of the current line; `q` is the byte before
        // the '\n' that precedes it.
        let mut last = p;
        let mut q = rfind_nl(&s, p).map(|k| k - 1);
        let mut i: u64 = 1;
        while i < want {
            let Some(qq) = q else { break };
            last = qq;
            q = rfind_nl(&s, qq).map(|k| k - 1);
            i += 1;
        }
        if i != want {
            return empty;
        }
        let start = match q {
            None => 0,
            Some(qq) => (qq + 2) as usize,
        };
        return done(&s, start, (last + 1).max(0) as usize);
    }
    let mut p = Some(0usize);
    let mut i = 0;
    while i < n {
        let Some(pp) = p else { break };
        p = memchr::memchr(b'\n', s.get(pp..)?).map(|k| pp + k + 1);
        i += 1;
    }
    match p {
        Some(start) if i == n => {
            let end = memchr::memchr(b'\n', s.get(start..)?).map_or(s.len(), |k| start + k);
            done(&s, start, end)
        }
        _ => empty,
    }
}

/// Number of lines, as a string.
pub fn count(v: &Value, _: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    let mut n = memchr::memchr_iter(b'\n', &s).count();
    if s.last() != Some(&b'\n') {
        n += 1;
    }
    Some(Value::Str(Bytes::from(n.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(v: Option<Value>) -> String {
        match v {
            Some(Value::Str(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn lines() {
        let v = Value::from("v=0\r\no=x\r\ns=-\r\n");
        let at_ = |n: i64| st(at(&v, &[Value::Int(n)]));
        assert_eq!(at_(0), "v=0");
        assert_eq!(at_(1), "o=x");
        assert_eq!(at_(2), "s=-");
        assert_eq!(at_(3), "");
        assert_eq!(at_(4), "");
        assert_eq!(at_(-1), "s=-");
        assert_eq!(at_(-3), "v=0");
        assert_eq!(at_(-4), "");
        assert_eq!(st(count(&v, &[])), "3");
        assert_eq!(st(count(&Value::from("a\nb"), &[])), "2");
        assert_eq!(st(sw(&v, &[Value::from("o=")])), "o=x");
        assert_eq!(st(sw(&v, &[Value::from("m=")])), "");
        assert_eq!(st(sw(&Value::from("ab"), &[Value::from("abc")])), "");
        assert_eq!(count(&Value::from(""), &[]), None);
        let w = Value::from("a\n\nb");
        assert_eq!(st(at(&w, &[Value::Int(1)])), "");
        assert_eq!(st(at(&w, &[Value::Int(-1)])), "b");
        // Kamailio's backward walk lands on the empty line's '\n' and returns "a\n".
        assert_eq!(st(at(&w, &[Value::Int(-2)])), "a\n");
        assert_eq!(st(at(&w, &[Value::Int(-3)])), "");
    }
}
