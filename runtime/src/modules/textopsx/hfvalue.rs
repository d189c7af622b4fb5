//! textopsx header-value functions on comma-separated header values: `append_hf_value`,
//! `insert_hf_value`, `include_hf_value`, `exclude_hf_value`, `hf_value_exists`. Header
//! names take Kamailio's `NAME[IDX]` form (1 = first value, negative from the end).

use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::sip::msg::ORDER_SCRIPT;
use crate::sip::{Edit, HdrKind, Header, kind_of};
use bytes::Bytes;

/// A parsed `NAME [ [IDX|*] ] [ .PARAM ]` expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hname {
    pub name: Bytes,
    pub kind: HdrKind,
    pub all: bool,
    pub has_idx: bool,
    pub idx: i64,
    pub param: Bytes,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

pub fn parse_hname(s: &[u8]) -> Option<Hname> {
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < s.len() && is_space(s[*i]) {
            *i += 1;
        }
    };
    skip(&mut i);
    let ns = i;
    while i < s.len() && is_alnum(s[i]) {
        i += 1;
    }
    if i == ns {
        return None;
    }
    let name = Bytes::copy_from_slice(&s[ns..i]);
    let mut h = Hname {
        kind: kind_of(&name),
        name,
        all: false,
        has_idx: false,
        idx: 0,
        param: Bytes::new(),
    };
    skip(&mut i);
    if s.get(i) == Some(&b'[') {
        i += 1;
        skip(&mut i);
        h.has_idx = true;
        if s.get(i) == Some(&b'*') {
            h.all = true;
            i += 1;
        } else if s.get(i) != Some(&b']') {
            // strtol: optional sign and digits.
            let st = i;
            if matches!(s.get(i), Some(b'-') | Some(b'+')) {
                i += 1;
            }
            let ds = i;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            if i == ds {
                return None;
            }
            h.idx = std::str::from_utf8(&s[st..i]).ok()?.parse().ok()?;
        }
        skip(&mut i);
        if s.get(i) != Some(&b']') {
            return None;
        }
        i += 1;
    }
    skip(&mut i);
    if s.get(i) == Some(&b'.') {
        i += 1;
        skip(&mut i);
        let ps = i;
        while i < s.len() && is_alnum(s[i]) {
            i += 1;
        }
        if i == ps {
            return None;
        }
        h.param = Bytes::copy_from_slice(&s[ps..i]);
    }
    (i == s.len()).then_some(h)
}

fn matches(h: &Header, n: &Hname) -> bool {
    if n.kind == HdrKind::Other {
        h.kind == HdrKind::Other && h.name.eq_ignore_ascii_case(&n.name)
    } else {
        h.kind == n.kind
    }
}

/// One comma-separated value: the trimmed value and the span to remove with it (leading
/// spaces, the value and its trailing comma), relative to the header value.
#[derive(Clone, Copy, Debug)]
struct Val {
    val: (usize, usize),
    lump: (usize, usize),
}

/// Splits a header value like Kamailio's find_next_value (quotes protect commas); every
/// header yields at least one (possibly empty) value.
fn values(body: &[u8]) -> Vec<Val> {
    let end = body.len();
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        let ls = p;
        while p < end && is_space(body[p]) {
            p += 1;
        }
        let vs = p;
        let mut quoted = false;
        while p < end && (body[p] != b',' || quoted) {
            if body[p] == b'"' && (!quoted || body[p - 1] != b'\\') {
                quoted = !quoted;
            }
            p += 1;
        }
        let mut ve = p;
        while ve > vs && is_space(body[ve - 1]) {
            ve -= 1;
        }
        while p < end && body[p] != b',' {
            p += 1;
        }
        if p < end {
            p += 1;
        }
        out.push(Val {
            val: (vs, ve),
            lump: (ls, p),
        });
        if p >= end {
            break;
        }
    }
    out
}

/// The headers named by `n` with the absolute offset of their value.
fn named(c: &Ctx, n: &Hname) -> Vec<(usize, Header, usize)> {
    c.msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| matches(h, n))
        .map(|(i, h)| {
            (
                i,
                h.clone(),
                c.msg.offset_of(&h.value).unwrap_or(h.value_start),
            )
        })
        .collect()
}

/// The header and value `n.idx` designates (Kamailio's find_hf_value_idx).
fn find_idx(c: &Ctx, n: &Hname) -> Option<(usize, Header, usize, Val)> {
    let hs = named(c, n);
    if n.idx > 0 {
        let mut idx = n.idx;
        for (i, h, off) in hs {
            for v in values(&h.value) {
                idx -= 1;
                if idx == 0 {
                    return Some((i, h, off, v));
                }
            }
        }
        None
    } else if n.idx < 0 {
        let all: Vec<(usize, Header, usize, Val)> = hs
            .into_iter()
            .flat_map(|(i, h, off)| {
                values(&h.value)
                    .into_iter()
                    .map(move |v| (i, h.clone(), off, v))
            })
            .collect();
        let back = usize::try_from(-n.idx).ok()?;
        if back > 10 || back > all.len() {
            return None;
        }
        all.into_iter().nth_back(back - 1)
    } else {
        None
    }
}

fn header_line(n: &Hname, val: &[u8]) -> Bytes {
    let mut l = Vec::with_capacity(n.name.len() + val.len() + 4);
    l.extend_from_slice(&n.name);
    l.extend_from_slice(b": ");
    l.extend_from_slice(val);
    l.extend_from_slice(b"\r\n");
    Bytes::from(l)
}

/// Inserts `val` into a header value at `pos` (absolute): `,val` at the value's end,
/// `val,` elsewhere.
fn insert_value(c: &mut Ctx, body_end: usize, pos: usize, val: &[u8]) {
    let mut d = Vec::with_capacity(val.len() + 1);
    if pos == body_end {
        d.push(b',');
        d.extend_from_slice(val);
    } else {
        d.extend_from_slice(val);
        d.push(b',');
    }
    c.msg
        .add_edit(Edit::insert(pos, Bytes::from(d), ORDER_SCRIPT));
}

fn parse_or_log(c: &Ctx, expr: &[u8]) -> Option<Hname> {
    let _ = c;
    let h = parse_hname(expr);
    if h.is_none() {
        crate::klog!(
            L_ERR,
            "textopsx",
            "cannot parse header near '{}'",
            String::from_utf8_lossy(expr)
        );
    }
    h
}

pub fn append_hf_value(c: &mut Ctx, expr: &[u8], val: &[u8]) -> i64 {
    let Some(mut n) = parse_or_log(c, expr) else {
        return -1;
    };
    if n.all || !n.param.is_empty() || n.idx < -10 {
        crate::klog!(
            L_ERR,
            "textopsx",
            "asterisk, param and indexes below -10 are not supported"
        );
        return -1;
    }
    if !n.has_idx || n.idx == 0 {
        n.idx = -1;
    }
    if !n.has_idx {
        c.msg.append_header(header_line(&n, val));
        return 1;
    }
    match find_idx(c, &n) {
        Some((_, h, off, v)) => {
            insert_value(c, off + h.value.len(), off + v.lump.1, val);
            1
        }
        None => {
            c.msg.append_header(header_line(&n, val));
            1
        }
    }
}

pub fn insert_hf_value(c: &mut Ctx, expr: &[u8], val: &[u8]) -> i64 {
    let Some(mut n) = parse_or_log(c, expr) else {
        return -1;
    };
    if n.all || !n.param.is_empty() || n.idx < -10 {
        crate::klog!(
            L_ERR,
            "textopsx",
            "asterisk, param and indexes below -10 are not supported"
        );
        return -1;
    }
    if !n.has_idx || n.idx == 0 {
        n.idx = 1;
    }
    match find_idx(c, &n) {
        Some((i, _, _, _)) if !n.has_idx => {
            c.msg.insert_header_before(i, header_line(&n, val));
            1
        }
        Some((_, h, off, v)) => {
            insert_value(c, off + h.value.len(), off + v.lump.0, val);
            1
        }
        None if n.idx == 1 => {
            c.msg.append_header(header_line(&n, val));
            1
        }
        None => -1,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IncExc {
    Include,
    Exclude,
    Exists,
}

pub fn incexc_hf_value(c: &mut Ctx, expr: &[u8], val: &[u8], op: IncExc) -> i64 {
    let Some(n) = parse_or_log(c, expr) else {
        return -1;
    };
    if n.has_idx || !n.param.is_empty() {
        crate::klog!(
            L_ERR,
            "textopsx",
            "neither index nor param may be specified in '{}'",
            String::from_utf8_lossy(expr)
        );
        return -1;
    }
    if val.is_empty() {
        return -1;
    }
    let mut first: Option<(Header, usize)> = None;
    for (_, h, off) in named(c, &n) {
        for v in values(&h.value) {
            let txt = &h.value[v.val.0..v.val.1];
            if !txt.is_empty() && txt.eq_ignore_ascii_case(val) {
                match op {
                    IncExc::Include | IncExc::Exists => return 1,
                    IncExc::Exclude => {
                        let (mut ls, le) = v.lump;
                        if le == h.value.len() && ls > 0 {
                            ls -= 1;
                        }
                        if ls == 0 && le == h.value.len() {
                            c.msg.add_edit(Edit::replace(h.start, h.end, Bytes::new()));
                        } else {
                            c.msg
                                .add_edit(Edit::replace(off + ls, off + le, Bytes::new()));
                        }
                    }
                }
            }
        }
        if first.is_none() {
            first = Some((h, off));
        }
    }
    match op {
        IncExc::Exists => -1,
        IncExc::Include => {
            match first {
                Some((h, off)) => insert_value(c, off + h.value.len(), off + h.value.len(), val),
                None => c.msg.append_header(header_line(&n, val)),
            }
            1
        }
        IncExc::Exclude => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hname_forms() {
        let h = parse_hname(b"Supported").unwrap();
        assert!(!h.has_idx);
        let h = parse_hname(b" foo [ -2 ] ").unwrap();
        assert_eq!((h.has_idx, h.idx), (true, -2));
        let h = parse_hname(b"foo[*].bar").unwrap();
        assert!(h.all);
        assert_eq!(h.param, "bar");
        for bad in [&b""[..], b"foo[", b"foo[x]", b"foo.", b"foo bar", b"[1]"] {
            assert!(
                parse_hname(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn value_split() {
        let v = values(b"a, \"b,c\" ,d");
        assert_eq!(v.len(), 3);
        assert_eq!((v[1].val.0, v[1].val.1), (3, 8));
        assert_eq!((v[1].lump.0, v[1].lump.1), (2, 10));
        assert_eq!(values(b"").len(), 1);
    }
}

// ---------------------------------------------------------------- remove / assign

/// Where a parameter was found (or where a new one goes), relative to the header value.
#[derive(Clone, Copy, Debug, Default)]
struct ParamSpan {
    found: bool,
    /// From the `=` (or the name's end) to the value's end: replaced on assignment.
    upd: (usize, usize),
    /// The whole `;name=value` (with its delimiters): removed on removal; its start is the
    /// insertion point when not found.
    del: (usize, usize),
}

/// Skips a name-addr's display name and URI in `s[from..to]`; returns where parameters
/// start (Kamailio's get_uri_and_skip_until_params).
fn skip_until_params(s: &[u8], from: usize, to: usize) -> usize {
    let mut i = from;
    while i < to && s[i] != b';' {
        let start = i;
        let mut quoted = false;
        while i < to {
            if !quoted {
                if s[i] == b'"' {
                    quoted = true;
                } else if s[i] == b'<' || s[i] == b';' || is_space(s[i]) {
                    break;
                }
            } else if s[i] == b'"' && i > 0 && s[i - 1] != b'\\' {
                quoted = false;
            }
            i += 1;
        }
        while i < to && is_space(s[i]) {
            i += 1;
        }
        if i < to && s[i] == b'<' {
            quoted = false;
            while i < to {
                if !quoted {
                    if s[i] == b'"' {
                        quoted = true;
                    } else if s[i] == b'>' {
                        break;
                    }
                } else if s[i] == b'"' && s[i - 1] != b'\\' {
                    quoted = false;
                }
                i += 1;
            }
        }
        if i == start {
            // No progress (a lone '>' or an unterminated '<'): step over it.
            i += 1;
        }
    }
    i.min(to)
}

/// `;param[=value]` lookup in `s[from..to]` (Kamailio's find_hf_value_param).
fn find_param(s: &[u8], from: usize, to: usize, name: &[u8]) -> ParamSpan {
    let mut i = from;
    loop {
        let del_s = i;
        while i < to && is_space(s[i]) {
            i += 1;
        }
        if !(i < to && s[i] == b';') {
            return ParamSpan {
                found: false,
                upd: (i, i),
                del: (del_s, del_s),
            };
        }
        i += 1;
        while i < to && is_space(s[i]) {
            i += 1;
        }
        let j = i;
        while i < to && !is_space(s[i]) && s[i] != b'=' && s[i] != b';' {
            i += 1;
        }
        let found = s[j..i].eq_ignore_ascii_case(name);
        let upd_s = i;
        while i < to && is_space(s[i]) {
            i += 1;
        }
        if i < to && s[i] == b'=' {
            i += 1;
            while i < to && is_space(s[i]) {
                i += 1;
            }
            if i < to {
                if s[i] == b'"' {
                    i += 1;
                    while i < to {
                        if s[i] == b'"' {
                            i += 1;
                            break;
                        }
                        i += 1;
                    }
                } else {
                    while i < to && !is_space(s[i]) && s[i] != b';' {
                        i += 1;
                    }
                }
            }
        }
        if found {
            return ParamSpan {
                found: true,
                upd: (upd_s, i),
                del: (del_s, i),
            };
        }
    }
}

/// `name=value` lookup in Authorization-style values (Kamailio's find_hf_value2_param);
/// also returns the delimiter a new parameter needs (0, ' ' or ',').
fn find_param2(s: &[u8], from: usize, to: usize, name: &[u8]) -> (ParamSpan, u8) {
    let mut i = from;
    let mut delim = 0u8;
    while i < to {
        let before = i;
        let del_s = i;
        while i < to && is_space(s[i]) {
            i += 1;
        }
        let comma = i < to && s[i] == b',';
        if comma {
            i += 1;
        }
        while i < to && is_space(s[i]) {
            i += 1;
        }
        if i < to && is_alnum(s[i]) {
            let j = i;
            if delim == 0 {
                delim = b' ';
            }
            while i < to && is_alnum(s[i]) {
                i += 1;
            }
            let k = i;
            while i < to && is_space(s[i]) {
                i += 1;
            }
            let upd_s = i;
            if i < to && s[i] == b'=' {
                delim = b',';
                i += 1;
                let found = s[j..k].eq_ignore_ascii_case(name);
                while i < to && is_space(s[i]) {
                    i += 1;
                }
                if i < to {
                    if s[i] == b'"' {
                        i += 1;
                        while i < to {
                            if s[i] == b'"' {
                                i += 1;
                                break;
                            }
                            i += 1;
                        }
                    } else {
                        while i < to && !is_space(s[i]) && s[i] != b',' {
                            i += 1;
                        }
                    }
                }
                if found {
                    let upd = (upd_s, i);
                    let mut del = (del_s, i);
                    while i < to && is_space(s[i]) {
                        i += 1;
                    }
                    if !comma && i < to && s[i] == b',' {
                        i += 1;
                        del.1 = i;
                    }
                    return (
                        ParamSpan {
                            found: true,
                            upd,
                            del,
                        },
                        delim,
                    );
                }
            }
            while i < to && is_space(s[i]) {
                i += 1;
            }
        } else {
            while i < to && !is_space(s[i]) && s[i] == b',' {
                i += 1;
            }
        }
        if i == before {
            // Kamailio loops forever on such bytes (a quote at the top level); stop.
            break;
        }
    }
    (
        ParamSpan {
            found: false,
            upd: (i, i),
            del: (i, i),
        },
        delim,
    )
}

/// Records the edits for one parameter lookup (Kamailio's assign_hf_do_lumping); offsets
/// are relative to the header value at `off`.
fn param_edits(
    c: &mut Ctx,
    off: usize,
    n: &Hname,
    value: Option<&[u8]>,
    p: &ParamSpan,
    delim: u8,
) -> i64 {
    if p.found {
        let span = if value.is_some() { p.upd } else { p.del };
        if span.1 > span.0 {
            c.msg
                .add_edit(Edit::replace(off + span.0, off + span.1, Bytes::new()));
        }
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            let mut d = Vec::with_capacity(v.len() + 1);
            d.push(b'=');
            d.extend_from_slice(v);
            c.msg
                .add_edit(Edit::insert(off + p.upd.0, Bytes::from(d), ORDER_SCRIPT));
        }
        1
    } else {
        let Some(v) = value else { return -1 };
        let mut d = Vec::with_capacity(n.param.len() + v.len() + 2);
        if delim != 0 {
            d.push(delim);
        }
        d.extend_from_slice(&n.param);
        if !v.is_empty() {
            d.push(b'=');
            d.extend_from_slice(v);
        }
        c.msg
            .add_edit(Edit::insert(off + p.del.0, Bytes::from(d), ORDER_SCRIPT));
        1
    }
}

/// Parameters of one comma-separated value (`;param` after the name-addr).
fn process_params(
    c: &mut Ctx,
    h: &Header,
    off: usize,
    n: &Hname,
    value: Option<&[u8]>,
    area: (usize, usize),
) -> i64 {
    let s: &[u8] = &h.value;
    let mut from = skip_until_params(s, area.0, area.1);
    let mut res = 0;
    loop {
        let p = find_param(s, from, area.1, &n.param);
        let r2 = param_edits(c, off, n, value, &p, b';');
        if res == 0 {
            res = r2;
        }
        if p.found && value.is_none() {
            from = p.del.1;
            continue;
        }
        return res;
    }
}

/// Parameters of an Authorization-style header value.
fn process_params2(c: &mut Ctx, h: &Header, off: usize, n: &Hname, value: Option<&[u8]>) -> i64 {
    let s: &[u8] = &h.value;
    let mut from = 0;
    let mut res = 0;
    loop {
        let (p, delim) = find_param2(s, from, s.len(), &n.param);
        let r2 = param_edits(c, off, n, value, &p, delim);
        if res == 0 {
            res = r2;
        }
        if p.found && value.is_none() && p.del.1 > from {
            from = p.del.1;
            continue;
        }
        return res;
    }
}

/// `remove_hf_value`, `assign_hf_value` and their `2` forms (Authorization-style values:
/// commas do not separate values). `remove` selects the operation for whole values;
/// parameters are removed when `value` is `None` and assigned otherwise (as Kamailio's KEMI
/// `remove_hf_value2` with a value assigns).
pub fn remove_assign(
    c: &mut Ctx,
    expr: &[u8],
    value: Option<&[u8]>,
    whole: bool,
    remove: bool,
) -> i64 {
    let Some(mut n) = parse_or_log(c, expr) else {
        return -1;
    };
    if !remove && n.all && n.param.is_empty() {
        crate::klog!(L_ERR, "textopsx", "asterisk not supported without param");
        return -1;
    }
    if !n.has_idx || n.idx == 0 {
        n.idx = 1;
        n.has_idx = true;
    }
    if n.idx < -10 {
        crate::klog!(L_ERR, "textopsx", "index cannot be lower than -10");
        return -1;
    }
    if n.all {
        let mut fl = -1;
        for (_, h, off) in named(c, &n) {
            if n.param.is_empty() {
                fl = 1;
                c.msg.add_edit(Edit::replace(h.start, h.end, Bytes::new()));
            } else if whole {
                if process_params2(c, &h, off, &n, value) > 0 {
                    fl = 1;
                }
            } else {
                for v in values(&h.value) {
                    if process_params(c, &h, off, &n, value, v.val) > 0 {
                        fl = 1;
                    }
                }
            }
        }
        return fl;
    }
    if whole {
        let hs = named(c, &n);
        let pick = if n.idx > 0 {
            usize::try_from(n.idx - 1).ok().and_then(|i| hs.get(i))
        } else {
            usize::try_from(-n.idx)
                .ok()
                .filter(|b| *b <= 10)
                .and_then(|b| hs.len().checked_sub(b))
                .and_then(|i| hs.get(i))
        };
        let Some((_, h, off)) = pick.cloned() else {
            return -1;
        };
        if !n.param.is_empty() {
            return process_params2(c, &h, off, &n, value);
        }
        match value.filter(|_| !remove) {
            None => c.msg.add_edit(Edit::replace(h.start, h.end, Bytes::new())),
            Some(v) => {
                c.msg
                    .add_edit(Edit::replace(off, off + h.value.len(), Bytes::new()));
                if !v.is_empty() {
                    c.msg
                        .add_edit(Edit::insert(off, Bytes::copy_from_slice(v), ORDER_SCRIPT));
                }
            }
        }
        return 1;
    }
    let Some((_, h, off, v)) = find_idx(c, &n) else {
        return -1;
    };
    if !n.param.is_empty() {
        return process_params(c, &h, off, &n, value, v.val);
    }
    match value.filter(|_| !remove) {
        None => {
            let (mut ls, le) = v.lump;
            if le == h.value.len() && ls > 0 {
                ls -= 1;
            }
            if ls == 0 && le == h.value.len() {
                c.msg.add_edit(Edit::replace(h.start, h.end, Bytes::new()));
            } else {
                c.msg
                    .add_edit(Edit::replace(off + ls, off + le, Bytes::new()));
            }
        }
        Some(val) => {
            c.msg
                .add_edit(Edit::replace(off + v.val.0, off + v.val.1, Bytes::new()));
            if !val.is_empty() {
                c.msg.add_edit(Edit::insert(
                    off + v.val.0,
                    Bytes::copy_from_slice(val),
                    ORDER_SCRIPT,
                ));
            }
        }
    }
    1
}
