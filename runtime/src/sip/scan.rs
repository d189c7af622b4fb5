//! Small byte-scanning helpers shared by the SIP parsers. All of them are total: they never
//! index out of bounds, whatever the input.

/// Trims SIP linear whitespace (SP, HT, CR, LF) on both ends.
pub fn trim_lws(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !is_lws(*b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_lws(*b)).map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or(&[])
}

#[inline]
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters.
#[inline]
pub fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Offset just past a quoted string starting at `s[0] == '"'`, honouring `\` escapes.
pub fn quoted_end(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits `s` at top-level `sep` bytes, ignoring separators inside quotes and `<...>`.
pub fn split_top(s: &[u8], sep: u8) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut angle = false;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' if !angle => match quoted_end(&s[i..]) {
                Some(n) => {
                    i += n;
                    continue;
                }
                None => {
                    i = s.len();
                    continue;
                }
            },
            b'<' => angle = true,
            b'>' => angle = false,
            _ if b == sep && !angle => {
                out.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(start..s.len());
    out
}

/// Parses an unsigned decimal number (no sign, no spaces); `None` on overflow or junk.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

pub fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// ASCII case-insensitive equality.
#[inline]
pub fn eq_ic(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// One `;name[=value]` parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: bytes::Bytes,
    pub value: Option<bytes::Bytes>,
}

/// Parses `;a=b;c` parameters (the leading `;` may be omitted). `base` is the buffer `s`
/// belongs to so that results are zero-copy slices.
pub fn parse_params(base: &bytes::Bytes, s: &[u8]) -> Result<Vec<Param>, &'static str> {
    let mut out = Vec::new();
    let s = trim_lws(s);
    let s = s.strip_prefix(b";").unwrap_or(s);
    if trim_lws(s).is_empty() {
        return Ok(out);
    }
    for r in split_top(s, b';') {
        let p = trim_lws(&s[r]);
        if p.is_empty() {
            return Err("empty parameter");
        }
        let (name, value) = match memchr::memchr(b'=', p) {
            Some(eq) => (trim_lws(&p[..eq]), Some(trim_lws(&p[eq + 1..]))),
            None => (p, None),
        };
        if name.is_empty()
            || !name
                .iter()
                .all(|b| is_token(*b) || *b == b'[' || *b == b']' || *b == b':')
        {
            return Err("bad parameter name");
        }
        out.push(Param {
            name: slice_of(base, name),
            value: value.map(|v| slice_of(base, v)),
        });
    }
    Ok(out)
}

/// A zero-copy `Bytes` for `sub` when it lies inside `base`, otherwise a copy.
pub fn slice_of(base: &bytes::Bytes, sub: &[u8]) -> bytes::Bytes {
    if sub.is_empty() {
        return bytes::Bytes::new();
    }
    let b = base.as_ptr() as usize;
    let p = sub.as_ptr() as usize;
    if p >= b && p + sub.len() <= b + base.len() {
        base.slice(p - b..p - b + sub.len())
    } else {
        bytes::Bytes::copy_from_slice(sub)
    }
}

/// Finds a parameter by case-insensitive name.
pub fn find_param<'a>(params: &'a [Param], name: &[u8]) -> Option<&'a Param> {
    params.iter().find(|p| eq_ic(&p.name, name))
}

/// `s` without the leading `prefix` (compared ignoring ASCII case), only when `s` is longer than
/// the prefix — how Kamailio strips `domain_prefix` / `realm_prefix`.
pub fn strip_prefix_icase<'a>(s: &'a [u8], prefix: &[u8]) -> &'a [u8] {
    match s.get(..prefix.len()) {
        Some(h)
            if !prefix.is_empty() && s.len() > prefix.len() && h.eq_ignore_ascii_case(prefix) =>
        {
            s.get(prefix.len()..).unwrap_or(s)
        }
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn splits_outside_quotes_and_angles() {
        let s = br#""a,b" <sip:x;p=1,2>, <sip:y>"#;
        let parts: Vec<&[u8]> = split_top(s, b',').into_iter().map(|r| &s[r]).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(trim_lws(parts[1]), b"<sip:y>");
    }

    #[test]
    fn params() {
        let b = Bytes::from_static(b";branch=z9hG4bK1;rport;received=1.2.3.4");
        let p = parse_params(&b, &b).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].name, "rport");
        assert!(p[1].value.is_none());
        assert_eq!(
            find_param(&p, b"RECEIVED").unwrap().value.as_deref(),
            Some(&b"1.2.3.4"[..])
        );
        assert!(parse_params(&b, b";;a").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"70"), Some(70));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
        assert_eq!(quoted_end(br#""a\"b" x"#), Some(6));
        assert_eq!(quoted_end(br#""abc"#), None);
    }
}
