//! Kamailio's `textops` module: searching, adding and removing headers, body checks and
//! string comparisons.

use super::core::actions::{arg_bytes, arg_int, b, is_method_list};
use super::core::hdr::{name_matches, remove_named, with_crlf};
use super::{ModuleDef, Registrar};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::sip::HdrKind;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use vm::ksr::{ParamHint, ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

mod more;
pub mod multipart;

pub static MODULE: ModuleDef = ModuleDef {
    name: "textops",
    params: &[],
    register,
    init: None,
    notice: None,
};

const REQ_FAIL_BRANCH: RouteMask = RouteMask(1 | 2 | 8);

thread_local! {
    /// Compiled regexes by pattern; regex arguments are almost always constants, so this
    /// stays small. Bounded so dynamic patterns cannot grow it forever.
    static REGEX_CACHE: RefCell<HashMap<String, regex::bytes::Regex>> = RefCell::new(HashMap::new());
}

/// Compiles a pattern as Kamailio's textops does: extended, case-insensitive, newline
/// sensitive.
pub fn regex(pat: &[u8]) -> Option<regex::bytes::Regex> {
    regex_opts(pat, true)
}

/// Compiles an extended, case-insensitive pattern; `newline` as glibc's `REG_NEWLINE` (`.`
/// stops at line ends, `^`/`$` match at them), otherwise `.` matches anything and `^`/`$`
/// anchor the whole text.
pub fn regex_opts(pat: &[u8], newline: bool) -> Option<regex::bytes::Regex> {
    let p = String::from_utf8_lossy(pat).into_owned();
    let key = format!("{}{p}", if newline { 'n' } else { 's' });
    REGEX_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(r) = c.get(&key) {
            return Some(r.clone());
        }
        let r = regex::bytes::RegexBuilder::new(&p)
            .case_insensitive(true)
            .multi_line(newline)
            .dot_matches_new_line(!newline)
            .build();
        match r {
            Ok(r) => {
                if c.len() >= 256 {
                    c.clear();
                }
                c.insert(key, r.clone());
                Some(r)
            }
            Err(e) => {
                crate::klog!(L_ERR, "textops", "bad regular expression '{p}': {e}");
                None
            }
        }
    })
}

fn register(r: &mut Registrar<'_>) {
    more::register(r);
    multipart::register(r);
    use ParamHint::Regex as Re;
    r.kemi("textops", "search", &[S], RetType::Int, search)
        .native("search", RouteMask::ANY)
        .hints(&[Re]);
    r.kemi("textops", "search_body", &[S], RetType::Int, search_body)
        .native("search_body", RouteMask::ANY)
        .hints(&[Re]);
    r.kemi("textops", "is_present_hf", &[S], RetType::Int, |c, a| {
        let n = arg_bytes(a, 0);
        b(c.msg.headers().iter().any(|h| name_matches(h, &n)))
    })
    .native("is_present_hf", RouteMask::ANY);
    r.kemi("textops", "is_present_hf_re", &[S], RetType::Int, |c, a| {
        let Some(re) = regex(&arg_bytes(a, 0)) else {
            return Value::Int(-1);
        };
        b(c.msg.headers().iter().any(|h| re.is_match(&h.name)))
    })
    .native("is_present_hf_re", RouteMask::ANY)
    .hints(&[Re]);
    r.kemi("textops", "remove_hf", &[S], RetType::Int, |c, a| {
        Value::Int(remove_named(c, &arg_bytes(a, 0)))
    })
    .native("remove_hf", RouteMask::ANY);
    // The `_pv` variants differ from the plain ones only in taking a variable in Kamailio;
    // here every string argument may hold variables.
    r.native("is_present_hf_pv", &[S], RouteMask::ANY, |c, a| {
        let n = arg_bytes(a, 0);
        b(c.msg.headers().iter().any(|h| name_matches(h, &n)))
    });
    r.native("remove_hf_pv", &[S], RouteMask::ANY, |c, a| {
        Value::Int(remove_named(c, &arg_bytes(a, 0)))
    });
    r.kemi("textops", "remove_hf_idx", &[S, I], RetType::Int, |c, a| {
        remove_hf_idx(c, &arg_bytes(a, 0), arg_int(a, 1))
    })
    .native("remove_hf_idx", RouteMask::ANY);
    r.kemi("textops", "str_find", &[S, S], RetType::Int, |_, a| {
        str_find(&arg_bytes(a, 0), &arg_bytes(a, 1), false)
    })
    .native("str_find", RouteMask::ANY);
    r.kemi("textops", "str_ifind", &[S, S], RetType::Int, |_, a| {
        str_find(&arg_bytes(a, 0), &arg_bytes(a, 1), true)
    })
    .native("str_ifind", RouteMask::ANY);
    r.kemi("textops", "str_any_in", &[S, S], RetType::Int, |_, a| {
        let (t, l) = (arg_bytes(a, 0), arg_bytes(a, 1));
        b(!t.is_empty() && !l.is_empty() && t.iter().any(|x| l.contains(x)))
    })
    .native("str_any_in", RouteMask::ANY);
    r.kemi("textops", "str_all_in", &[S, S], RetType::Int, |_, a| {
        let (t, l) = (arg_bytes(a, 0), arg_bytes(a, 1));
        b(!t.is_empty() && !l.is_empty() && l.iter().all(|x| t.contains(x)))
    })
    .native("str_all_in", RouteMask::ANY);
    r.kemi(
        "textops",
        "in_list_prefix",
        &[S, S, S],
        RetType::Int,
        |_, a| in_list_prefix(&arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2)),
    )
    .native("in_list_prefix", RouteMask::ANY);
    r.kemi("textops", "remove_hf_re", &[S], RetType::Int, remove_hf_re)
        .native("remove_hf_re", RouteMask::ANY)
        .hints(&[Re]);
    r.native("append_hf", &[S], RouteMask::ANY, |c, a| {
        c.msg.append_header(with_crlf(&arg_bytes(a, 0)));
        Value::Int(1)
    });
    r.native("append_hf", &[S, S], RouteMask::ANY, |c, a| {
        let name = arg_bytes(a, 1);
        match c.msg.headers().iter().rposition(|h| name_matches(h, &name)) {
            Some(i) => b(c.msg.insert_header_after(i, with_crlf(&arg_bytes(a, 0)))),
            None => Value::Int(-1),
        }
    });
    r.native("insert_hf", &[S], RouteMask::ANY, |c, a| {
        c.msg.insert_header_first(with_crlf(&arg_bytes(a, 0)));
        Value::Int(1)
    });
    r.native("insert_hf", &[S, S], RouteMask::ANY, |c, a| {
        let name = arg_bytes(a, 1);
        match c.msg.headers().iter().position(|h| name_matches(h, &name)) {
            Some(i) => b(c.msg.insert_header_before(i, with_crlf(&arg_bytes(a, 0)))),
            None => Value::Int(-1),
        }
    });
    r.native("append_to_reply", &[S], REQ_FAIL_BRANCH, |c, a| {
        c.reply_hdrs.push(with_crlf(&arg_bytes(a, 0)));
        Value::Int(1)
    });
    r.native("is_method", &[S], RouteMask::ANY, |c, a| {
        b(is_method_list(c, &arg_bytes(a, 0)))
    });
    r.kemi("textops", "has_body", &[], RetType::Int, |c, _| {
        b(!c.msg.current_body().is_empty())
    })
    .native("has_body", RouteMask::ANY);
    r.kemi(
        "textops",
        "has_body_type",
        &[S],
        RetType::Int,
        has_body_type,
    )
    .native("has_body", RouteMask::ANY);
    r.kemi("textops", "subst_uri", &[S], RetType::Int, subst_uri)
        .hints(&[ParamHint::Subst])
        .native("subst_uri", RouteMask(1 | 2 | 4 | 8 | 128));
    r.kemi("textops", "subst_user", &[S], RetType::Int, subst_user)
        .hints(&[ParamHint::Subst])
        .native("subst_user", RouteMask(1 | 2 | 4 | 8 | 128));
    r.kemi("textops", "subst_body", &[S], RetType::Int, subst_body)
        .hints(&[ParamHint::Subst])
        .native("subst_body", RouteMask::ANY);
    r.kemi("textops", "replace_body", &[S, S], RetType::Int, |c, a| {
        replace_body(c, a, false)
    })
    .native("replace_body", RouteMask::ANY)
    .hints(&[Re, ParamHint::Plain]);
    r.kemi(
        "textops",
        "replace_body_all",
        &[S, S],
        RetType::Int,
        |c, a| replace_body(c, a, true),
    )
    .native("replace_body_all", RouteMask::ANY)
    .hints(&[Re, ParamHint::Plain]);
    r.kemi("textops", "replace", &[S, S], RetType::Int, |c, a| {
        let Some(re) = regex(&arg_bytes(a, 0)) else {
            return Value::Int(-1);
        };
        let with = arg_bytes(a, 1);
        b(rewrite_message(c, &re, false, |_| with.to_vec()))
    })
    .native("replace", RouteMask::ANY)
    .hints(&[Re, ParamHint::Plain]);
    r.kemi("textops", "replace_all", &[S, S], RetType::Int, |c, a| {
        let Some(re) = regex(&arg_bytes(a, 0)) else {
            return Value::Int(-1);
        };
        let with = arg_bytes(a, 1);
        b(rewrite_message(c, &re, true, |_| with.to_vec()))
    })
    .native("replace_all", RouteMask::ANY)
    .hints(&[Re, ParamHint::Plain]);
    r.kemi("textops", "subst", &[S], RetType::Int, |c, a| {
        let Some(e) = subst_expr(&arg_bytes(a, 0)) else {
            return Value::Int(-1);
        };
        b(subst_message(c, &e))
    })
    .native("subst", RouteMask::ANY)
    .hints(&[ParamHint::Subst]);
    r.kemi("textops", "set_body", &[S, S], RetType::Int, set_body)
        .native("set_body", RouteMask::ANY);
    // Newer than Kamailio 5.6 (as in its later versions).
    r.kemi(
        "textops",
        "set_body_hex",
        &[S, S],
        RetType::Int,
        |c, a| match multipart::unhex(&arg_bytes(a, 0)) {
            Some(raw) => set_body_to(c, Bytes::from(raw), &arg_bytes(a, 1)),
            None => {
                crate::klog!(L_ERR, "textops", "invalid input hex data");
                Value::Int(-1)
            }
        },
    )
    .native("set_body_hex", RouteMask::ANY);
    r.kemi("textops", "in_list", &[S, S, S], RetType::Int, |_, a| {
        let subject = arg_bytes(a, 0);
        let list = arg_bytes(a, 1);
        let sep = arg_bytes(a, 2);
        let Some(&sc) = sep.first() else {
            return Value::Int(-1);
        };
        b(list
            .split(|c| *c == sc)
            .any(|x| crate::sip::scan::trim_lws(x) == &subject[..]))
    })
    .native("in_list", RouteMask::ANY);
    r.kemi("textops", "cmp_str", &[S, S], RetType::Int, |_, a| {
        b(arg_bytes(a, 0) == arg_bytes(a, 1))
    })
    .native("cmp_str", RouteMask::ANY);
    r.kemi("textops", "cmp_istr", &[S, S], RetType::Int, |_, a| {
        b(arg_bytes(a, 0).eq_ignore_ascii_case(&arg_bytes(a, 1)))
    })
    .native("cmp_istr", RouteMask::ANY);
    r.kemi("textops", "starts_with", &[S, S], RetType::Int, |_, a| {
        b(arg_bytes(a, 0).starts_with(&arg_bytes(a, 1)))
    })
    .native("starts_with", RouteMask::ANY);
    r.kemi("textops", "ends_with", &[S, S], RetType::Int, |_, a| {
        b(arg_bytes(a, 0).ends_with(&arg_bytes(a, 1)))
    })
    .native("ends_with", RouteMask::ANY);
    r.kemi(
        "textops",
        "search_str",
        &[S, S],
        RetType::Int,
        |_, a| match regex(&arg_bytes(a, 1)) {
            Some(re) => b(re.is_match(&arg_bytes(a, 0))),
            None => Value::Int(-1),
        },
    )
    .native("search_str", RouteMask::ANY)
    .hints(&[ParamHint::Plain, Re]);
}

/// Removes the header at `idx` among those with this name (negative counts from the end):
/// 1 removed, 2 no such index.
fn remove_hf_idx(c: &mut Ctx, name: &[u8], idx: i64) -> Value {
    let found: Vec<usize> = c
        .msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| name_matches(h, name))
        .map(|(i, _)| i)
        .collect();
    let pos = if idx >= 0 {
        idx
    } else {
        found.len() as i64 + idx
    };
    if pos < 0 {
        // Kamailio: a negative index before the first header removes nothing.
        return Value::Int(1);
    }
    match found.get(pos as usize) {
        Some(&i) => {
            c.msg.remove_header(i);
            Value::Int(1)
        }
        None => Value::Int(2),
    }
}

/// Position (from 1) of `needle` in `txt`, -1 when absent.
fn str_find(txt: &[u8], needle: &[u8], icase: bool) -> Value {
    if needle.len() > txt.len() {
        return Value::Int(-1);
    }
    let hit = (0..=txt.len() - needle.len()).find(|&i| {
        let w = &txt[i..i + needle.len()];
        if icase {
            w.eq_ignore_ascii_case(needle)
        } else {
            w == needle
        }
    });
    match hit {
        Some(i) => Value::Int(i as i64 + 1),
        None => Value::Int(-1),
    }
}

/// True when one element of the `sep`-separated list (blanks trimmed) is a prefix of
/// `subject`.
fn in_list_prefix(subject: &[u8], list: &[u8], sep: &[u8]) -> Value {
    let Some(&sep) = sep.first() else {
        return Value::Int(-1);
    };
    if subject.is_empty() || list.is_empty() {
        return Value::Int(-1);
    }
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    for item in list.split(|&x| x == sep) {
        let start = item.iter().position(|c| !ws(c)).unwrap_or(item.len());
        let end = item.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
        let item = &item[start..end.max(start)];
        if !item.is_empty() && subject.starts_with(item) {
            return Value::Int(1);
        }
    }
    Value::Int(-1)
}

fn search(c: &mut Ctx, a: &[Value]) -> Value {
    match regex(&arg_bytes(a, 0)) {
        Some(re) => b(re.is_match(c.msg.buf())),
        None => Value::Int(-1),
    }
}

fn search_body(c: &mut Ctx, a: &[Value]) -> Value {
    match regex(&arg_bytes(a, 0)) {
        Some(re) => b(re.is_match(c.msg.current_body())),
        None => Value::Int(-1),
    }
}

pub(super) fn remove_hf_re(c: &mut Ctx, a: &[Value]) -> Value {
    let Some(re) = regex(&arg_bytes(a, 0)) else {
        return Value::Int(-1);
    };
    let idx: Vec<usize> = c
        .msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| re.is_match(&h.name))
        .map(|(i, _)| i)
        .collect();
    for i in &idx {
        c.msg.remove_header(*i);
    }
    b(!idx.is_empty())
}

fn has_body_type(c: &mut Ctx, a: &[Value]) -> Value {
    if c.msg.current_body().is_empty() {
        return Value::Int(-1);
    }
    let want = arg_bytes(a, 0);
    let ct = c
        .msg
        .header(HdrKind::ContentType)
        .map(|h| h.value.clone())
        .unwrap_or_else(|| Bytes::from_static(b"application/sdp"));
    let main = ct.split(|c| *c == b';').next().unwrap_or(&[]);
    b(crate::sip::scan::trim_lws(main).eq_ignore_ascii_case(&want))
}

/// A Kamailio `/re/repl/flags` substitution (the vm's implementation, shared with
/// `{re.subst}`).
fn subst_expr(expr: &[u8]) -> Option<vm::transform::SubstExpr> {
    match vm::transform::parse_subst_expr(&String::from_utf8_lossy(expr), None) {
        Ok(e) => Some(e),
        Err(err) => {
            crate::klog!(L_ERR, "textops", "bad substitution expression: {err}");
            None
        }
    }
}

/// Applies a `/re/repl/flags` substitution to `text`; `None` when nothing matched.
fn subst_bytes(expr: &[u8], text: &[u8]) -> Option<Vec<u8>> {
    subst_expr(expr)?.apply(text, &[]).ok().flatten()
}

/// The edit that turns `old` (at offset `at` of the message) into `new`, covering only the
/// bytes between their common prefix and common suffix.
pub(super) fn changed_span_edit(at: usize, old: &[u8], new: &[u8]) -> crate::sip::Edit {
    let pre = old
        .iter()
        .zip(new.iter())
        .take_while(|(x, y)| x == y)
        .count();
    let max_suf = old.len().min(new.len()) - pre;
    let suf = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_suf)
        .take_while(|(x, y)| x == y)
        .count();
    crate::sip::Edit::replace(
        at + pre,
        at + old.len() - suf,
        Bytes::copy_from_slice(new.get(pre..new.len() - suf).unwrap_or(&[])),
    )
}

/// `subst()` over the message: the header section (recorded as one edit covering only the
/// bytes that changed), then, unless a single substitution already happened, the body.
fn subst_message(c: &mut Ctx, e: &vm::transform::SubstExpr) -> bool {
    let start = c.msg.headers_start();
    let end = c.msg.headers_end();
    let buf = c.msg.buf().clone();
    let Some(hdrs) = buf.get(start..end) else {
        return false;
    };
    let mut found = false;
    if let Ok(Some(new)) = e.apply(hdrs, &[]) {
        c.msg.add_edit(changed_span_edit(start, hdrs, &new));
        found = true;
        if !e.is_global() {
            return true;
        }
    }
    let body = c.msg.current_body().clone();
    if let Ok(Some(new)) = e.apply(&body, &[]) {
        c.msg.set_body(Bytes::from(new));
        found = true;
    }
    found
}

fn subst_uri(c: &mut Ctx, a: &[Value]) -> Value {
    let Some(u) = c.msg.ruri().cloned() else {
        return Value::Int(-1);
    };
    match subst_bytes(&arg_bytes(a, 0), &u) {
        Some(n) => {
            c.msg.set_ruri(Bytes::from(n));
            Value::Int(1)
        }
        None => Value::Int(-1),
    }
}

fn subst_user(c: &mut Ctx, a: &[Value]) -> Value {
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return Value::Int(-1);
    };
    match subst_bytes(&arg_bytes(a, 0), &u.user) {
        Some(n) => {
            let mut p = u.parts();
            p.user = &n;
            c.msg.set_ruri(crate::sip::Uri::build(&p));
            Value::Int(1)
        }
        None => Value::Int(-1),
    }
}

fn subst_body(c: &mut Ctx, a: &[Value]) -> Value {
    let body = c.msg.current_body().clone();
    match subst_bytes(&arg_bytes(a, 0), &body) {
        Some(n) => {
            c.msg.set_body(Bytes::from(n));
            Value::Int(1)
        }
        None => Value::Int(-1),
    }
}

fn replace_body(c: &mut Ctx, a: &[Value], all: bool) -> Value {
    let Some(re) = regex(&arg_bytes(a, 0)) else {
        return Value::Int(-1);
    };
    let body = c.msg.current_body().clone();
    if !re.is_match(&body) {
        return Value::Int(-1);
    }
    let with = arg_bytes(a, 1);
    let out = if all {
        re.replace_all(&body, regex::bytes::NoExpand(&with))
    } else {
        re.replace(&body, regex::bytes::NoExpand(&with))
    };
    c.msg.set_body(Bytes::from(out.into_owned()));
    Value::Int(1)
}

/// Applies `re` to the header section (as recorded edits) and then the body (as a new
/// body), the parts Kamailio's textops search after the first line: the first match only,
/// or every match with `all`. True when something matched.
fn rewrite_message(
    c: &mut Ctx,
    re: &regex::bytes::Regex,
    all: bool,
    with: impl Fn(&regex::bytes::Captures<'_>) -> Vec<u8>,
) -> bool {
    let start = c.msg.headers_start();
    let end = c.msg.headers_end();
    let buf = c.msg.buf().clone();
    let Some(hdrs) = buf.get(start..end) else {
        return false;
    };
    let mut edits = Vec::new();
    for caps in re.captures_iter(hdrs) {
        let Some(m) = caps.get(0) else { continue };
        edits.push(crate::sip::Edit::replace(
            start + m.start(),
            start + m.end(),
            Bytes::from(with(&caps)),
        ));
        if !all {
            break;
        }
    }
    let found = !edits.is_empty();
    for e in edits {
        c.msg.add_edit(e);
    }
    if found && !all {
        return true;
    }
    let body = c.msg.current_body().clone();
    let mut out = Vec::with_capacity(body.len());
    let mut last = 0;
    let mut body_hit = false;
    for caps in re.captures_iter(&body) {
        let Some(m) = caps.get(0) else { continue };
        out.extend_from_slice(&body[last..m.start()]);
        out.extend_from_slice(&with(&caps));
        last = m.end();
        body_hit = true;
        if !all {
            break;
        }
    }
    if body_hit {
        out.extend_from_slice(&body[last..]);
        c.msg.set_body(Bytes::from(out));
    }
    found || body_hit
}

/// Kamailio's `set_body`: both arguments required; the (first) Content-Type is replaced,
/// at the end of the headers, only when its value differs.
fn set_body(c: &mut Ctx, a: &[Value]) -> Value {
    set_body_to(c, arg_bytes(a, 0), &arg_bytes(a, 1))
}

fn set_body_to(c: &mut Ctx, body: Bytes, ctype: &[u8]) -> Value {
    if body.is_empty() || ctype.is_empty() {
        crate::klog!(L_ERR, "textops", "invalid body or content-type parameter");
        return Value::Int(-1);
    }
    let first = c
        .msg
        .headers()
        .iter()
        .position(|h| h.kind == HdrKind::ContentType);
    let same = first
        .and_then(|i| c.msg.headers().get(i))
        .is_some_and(|h| h.value[..] == *ctype);
    if !same {
        if let Some(i) = first {
            c.msg.remove_header(i);
        }
        let mut line = b"Content-Type: ".to_vec();
        line.extend_from_slice(ctype);
        line.extend_from_slice(b"\r\n");
        c.msg.append_header(Bytes::from(line));
    }
    c.msg.set_body(body);
    Value::Int(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_prefix() {
        assert_eq!(str_find(b"abcabc", b"ca", false), Value::Int(3));
        assert_eq!(str_find(b"abc", b"B", true), Value::Int(2));
        assert_eq!(str_find(b"abc", b"abcd", false), Value::Int(-1));
        assert_eq!(
            in_list_prefix(b"+4930", b" 49, +49 ,x", b","),
            Value::Int(1)
        );
        assert_eq!(in_list_prefix(b"4930", b"+49,x", b","), Value::Int(-1));
    }
}
