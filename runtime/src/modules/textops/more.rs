//! The rest of textops: per-header search and substitution, plain-string replacements,
//! anchored insertions, header removal by expression or value, Date headers, privacy and
//! hold checks, `regex_substring` and the reply body.

use super::regex;
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::modules::Registrar;
use crate::modules::core::actions::{arg_bytes, arg_int, b};
use crate::modules::core::hdr::name_matches;
use crate::sip::Edit;
use bytes::Bytes;
use vm::ksr::{ParamHint, ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

const REQ_FAIL_BRANCH: RouteMask = RouteMask(1 | 2 | 8);
const REQ_FAIL_BRANCH_REPLY: RouteMask = RouteMask(1 | 2 | 4 | 8 | 128);

pub fn register(r: &mut Registrar<'_>) {
    use ParamHint::{Plain, PvName, Regex as Re, Subst};
    r.kemi("textops", "search_hf", &[S, S, S], RetType::Int, |c, a| {
        search_hf(c, &arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2))
    })
    .native("search_hf", RouteMask::ANY)
    .hints(&[Plain, Re, Plain]);
    r.kemi("textops", "subst_hf", &[S, S, S], RetType::Int, |c, a| {
        subst_hf(c, &arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2))
    })
    .native("subst_hf", RouteMask::ANY)
    .hints(&[Plain, Subst, Plain]);
    r.kemi("textops", "search_append", &[S, S], RetType::Int, |c, a| {
        search_append(c, &arg_bytes(a, 0), arg_bytes(a, 1), false)
    })
    .native("search_append", RouteMask::ANY)
    .hints(&[Re, Plain]);
    r.kemi(
        "textops",
        "search_append_body",
        &[S, S],
        RetType::Int,
        |c, a| search_append(c, &arg_bytes(a, 0), arg_bytes(a, 1), true),
    )
    .native("search_append_body", RouteMask::ANY)
    .hints(&[Re, Plain]);
    r.kemi(
        "textops",
        "replace_str",
        &[S, S, S],
        RetType::Int,
        |c, a| replace_str(c, a, Area::All),
    )
    .native("replace_str", RouteMask::ANY);
    r.kemi(
        "textops",
        "replace_body_str",
        &[S, S, S],
        RetType::Int,
        |c, a| replace_str(c, a, Area::Body),
    )
    .native("replace_body_str", RouteMask::ANY);
    r.kemi(
        "textops",
        "replace_hdrs_str",
        &[S, S, S],
        RetType::Int,
        |c, a| replace_str(c, a, Area::Headers),
    )
    .native("replace_hdrs_str", RouteMask::ANY);
    r.kemi("textops", "replace_hdrs", &[S, S], RetType::Int, |c, a| {
        replace_hdrs(c, &arg_bytes(a, 0), arg_bytes(a, 1))
    })
    .native("replace_hdrs", RouteMask::ANY)
    .hints(&[Re, Plain]);
    // The native function compiles its pattern without REG_NEWLINE, the KEMI one with it.
    r.kemi(
        "textops",
        "replace_body_atonce",
        &[S, S],
        RetType::Int,
        |c, a| replace_body_atonce(c, &arg_bytes(a, 0), arg_bytes(a, 1), true),
    );
    r.native("replace_body_atonce", &[S, S], RouteMask::ANY, |c, a| {
        replace_body_atonce(c, &arg_bytes(a, 0), arg_bytes(a, 1), false)
    })
    .hints(&[Re, Plain]);
    r.kemi("textops", "remove_hf_exp", &[S, S], RetType::Int, |c, a| {
        remove_hf_exp(c, &arg_bytes(a, 0), &arg_bytes(a, 1))
    })
    .native("remove_hf_exp", RouteMask::ANY)
    .hints(&[Re, Re]);
    r.native("remove_hf_exp_pv", &[S, S], RouteMask::ANY, |c, a| {
        remove_hf_exp(c, &arg_bytes(a, 0), &arg_bytes(a, 1))
    });
    r.kemi(
        "textops",
        "remove_hf_match",
        &[S, S, S],
        RetType::Int,
        |c, a| remove_hf_match(c, &arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2)),
    )
    .native("remove_hf_match", RouteMask::ANY);
    r.native("remove_hf_re_pv", &[S], RouteMask::ANY, super::remove_hf_re);
    r.native("is_present_hf_re_pv", &[S], RouteMask::ANY, |c, a| {
        let Some(re) = regex(&arg_bytes(a, 0)) else {
            return Value::Int(-1);
        };
        b(c.msg.headers().iter().any(|h| re.is_match(&h.name)))
    });
    r.native("append_time", &[], REQ_FAIL_BRANCH, |c, _| {
        let mut line = date_header(now_secs());
        line.extend_from_slice(b"\r\n");
        c.reply_hdrs.push(Bytes::from(line));
        Value::Int(1)
    });
    r.native("append_time_to_request", &[], RouteMask::ANY, |c, _| {
        let Some(at) = c.msg.headers().first().map(|h| h.end) else {
            return Value::Int(-1);
        };
        let mut line = date_header(now_secs());
        line.extend_from_slice(b"\r\n");
        c.msg.add_edit(Edit::insert(
            at,
            Bytes::from(line),
            crate::sip::msg::ORDER_SCRIPT,
        ));
        Value::Int(1)
    });
    r.native("append_urihf", &[S, S], REQ_FAIL_BRANCH, |c, a| {
        let mut line = arg_bytes(a, 0).to_vec();
        if let Some(u) = c.msg.ruri_orig() {
            line.extend_from_slice(u);
        }
        line.extend_from_slice(&arg_bytes(a, 1));
        if line.is_empty() {
            return Value::Int(-1);
        }
        c.msg.append_header(Bytes::from(line));
        Value::Int(1)
    });
    r.kemi("textops", "is_privacy", &[S], RetType::Int, |c, a| {
        is_privacy(c, &arg_bytes(a, 0))
    })
    .native("is_privacy", RouteMask::ANY);
    r.kemi("textops", "is_audio_on_hold", &[], RetType::Int, |c, _| {
        Value::Int(audio_on_hold(c))
    })
    .native("is_audio_on_hold", RouteMask::ANY);
    r.kemi(
        "textops",
        "regex_substring",
        &[S, S, I, I, S],
        RetType::Int,
        |c, a| {
            regex_substring(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                arg_int(a, 2),
                arg_int(a, 3),
                &arg_bytes(a, 4),
            )
        },
    )
    .native("regex_substring", REQ_FAIL_BRANCH_REPLY)
    .hints(&[Plain, Plain, Plain, Plain, PvName]);
    r.kemi(
        "textops",
        "set_reply_body",
        &[S, S],
        RetType::Int,
        |c, a| set_reply_body(c, arg_bytes(a, 0), &arg_bytes(a, 1)),
    )
    .native("set_reply_body", REQ_FAIL_BRANCH);
    // Newer than Kamailio 5.6 (as in its later versions).
    r.kemi(
        "textops",
        "set_reply_body_hex",
        &[S, S],
        RetType::Int,
        |c, a| match super::multipart::unhex(&arg_bytes(a, 0)) {
            Some(raw) => set_reply_body(c, Bytes::from(raw), &arg_bytes(a, 1)),
            None => {
                crate::klog!(L_ERR, "textops", "invalid input hex data");
                Value::Int(-1)
            }
        },
    )
    .native("set_reply_body_hex", REQ_FAIL_BRANCH);
    r.native("via_param_rm", &[S, I], RouteMask::ANY, |c, a| {
        via_param_rm(c, &arg_bytes(a, 0), arg_int(a, 1))
    });
    r.kemi("textops", "subst_v", &[S, S, S], RetType::Int, |c, a| {
        subst_v(c, &arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2))
    })
    .native("subst_v", RouteMask::ANY)
    .hints(&[Plain, Plain, PvName]);
}

/// The message after its first line as textops searches it: the header section as received
/// (up to the body) followed by the current body. Offsets below `split` are header-section
/// offsets from `base` in the received buffer; the others are body offsets.
pub(super) struct View {
    pub text: Vec<u8>,
    pub split: usize,
    base: usize,
}

/// Offset where the received body starts (after the empty line).
pub(super) fn body_start(c: &Ctx) -> usize {
    let buf = c.msg.buf();
    let end = c.msg.headers_end();
    let rest = buf.get(end..).unwrap_or(&[]);
    if rest.starts_with(b"\r\n") {
        end + 2
    } else if rest.starts_with(b"\n") {
        end + 1
    } else {
        end.min(buf.len())
    }
}

pub(super) fn view(c: &Ctx) -> View {
    let base = c.msg.headers_start();
    let bs = body_start(c);
    let mut text = c.msg.buf().get(base..bs).unwrap_or(&[]).to_vec();
    let split = text.len();
    text.extend_from_slice(c.msg.current_body());
    View { text, split, base }
}

/// Applies replacements `(start, end, text)` given in view offsets, in increasing order:
/// header-section ones as recorded edits, body ones as a new body.
pub(super) fn apply(c: &mut Ctx, v: &View, reps: Vec<(usize, usize, Bytes)>) {
    let mut body_reps = Vec::new();
    for (s, e, t) in reps {
        if s < v.split {
            c.msg
                .add_edit(Edit::replace(v.base + s, v.base + e.min(v.split), t));
            if e > v.split {
                body_reps.push((0, e - v.split, Bytes::new()));
            }
        } else {
            body_reps.push((s - v.split, e - v.split, t));
        }
    }
    if body_reps.is_empty() {
        return;
    }
    let body = c.msg.current_body().clone();
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut last = 0;
    for (s, e, t) in body_reps {
        if s < last || e > body.len() {
            continue;
        }
        out.extend_from_slice(body.get(last..s).unwrap_or(&[]));
        out.extend_from_slice(&t);
        last = e;
    }
    out.extend_from_slice(body.get(last..).unwrap_or(&[]));
    c.msg.set_body(Bytes::from(out));
}

/// First match of `re` in `text` from `pos`, with `^` matching at `pos` only when `bol`
/// (glibc's `REG_NOTBOL` otherwise); offsets in `text`.
pub(super) fn find_from(
    re: &regex::bytes::Regex,
    text: &[u8],
    pos: usize,
    bol: bool,
) -> Option<(usize, usize)> {
    let rest = text.get(pos..)?;
    if bol {
        return re.find(rest).map(|m| (m.start() + pos, m.end() + pos));
    }
    let mut hay = Vec::with_capacity(rest.len() + 1);
    hay.push(1);
    hay.extend_from_slice(rest);
    re.find_at(&hay, 1)
        .map(|m| (m.start() - 1 + pos, m.end() - 1 + pos))
}

/// Match ranges in a text.
type Spans = Vec<(usize, usize)>;

/// Finds every non-overlapping match of `re` in `text[from..to]` as Kamailio's
/// replace-all loops do; `nobol_reset` lets `^` match again after a match ending in a line
/// break. `Err` carries the matches found before an empty match (Kamailio stops there).
fn find_all(
    re: &regex::bytes::Regex,
    text: &[u8],
    from: usize,
    to: usize,
    nobol_reset: bool,
) -> Result<Spans, Spans> {
    let Some(scope) = text.get(..to) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut pos = from;
    let mut bol = true;
    while pos < scope.len() {
        let Some((s, e)) = find_from(re, scope, pos, bol) else {
            break;
        };
        if s == e {
            crate::klog!(
                L_ERR,
                "textops",
                "matched string is empty... invalid regexp?"
            );
            return Err(out);
        }
        out.push((s, e));
        pos = e;
        bol = nobol_reset && matches!(scope.get(e - 1), Some(b'\n' | b'\r'));
    }
    Ok(out)
}

/// Headers matching `name` (by type for known names, else by name).
fn matching_headers(c: &Ctx, name: &[u8]) -> Vec<usize> {
    c.msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| name_matches(h, name))
        .map(|(i, _)| i)
        .collect()
}

fn search_hf(c: &mut Ctx, name: &[u8], re: &[u8], flags: &[u8]) -> Value {
    if name.is_empty() || re.is_empty() {
        return Value::Int(-1);
    }
    let Some(re) = regex(re) else {
        return Value::Int(-1);
    };
    let flag = flags.first().copied().unwrap_or(0);
    let idx = matching_headers(c, name);
    let hdrs = c.msg.headers();
    if flag == b'l' {
        return b(idx
            .last()
            .and_then(|i| hdrs.get(*i))
            .is_some_and(|h| re.is_match(&h.value)));
    }
    for i in idx {
        let Some(h) = hdrs.get(i) else { continue };
        if re.is_match(&h.value) {
            return Value::Int(1);
        }
        if flag == b'f' {
            return Value::Int(-1);
        }
    }
    Value::Int(-1)
}

/// Applies a substitution to one header value, as edits; true when it matched.
fn subst_one(c: &mut Ctx, e: &vm::transform::SubstExpr, idx: usize) -> bool {
    let Some(h) = c.msg.headers().get(idx) else {
        return false;
    };
    let value = h.value.clone();
    let vs = c.msg.offset_of(&value).unwrap_or(h.value_start);
    let Ok(Some(new)) = e.apply(&value, &[]) else {
        return false;
    };
    let old: &[u8] = match memchr::memchr(0, &value) {
        Some(n) => value.get(..n).unwrap_or(&value),
        None => &value,
    };
    c.msg.add_edit(super::changed_span_edit(vs, old, &new));
    true
}

fn subst_hf(c: &mut Ctx, name: &[u8], subst: &[u8], flags: &[u8]) -> Value {
    if name.is_empty() || subst.is_empty() {
        return Value::Int(-1);
    }
    let e = match vm::transform::parse_subst_expr(&String::from_utf8_lossy(subst), None) {
        Ok(e) => e,
        Err(err) => {
            crate::klog!(L_ERR, "textops", "bad substitution expression: {err}");
            return Value::Int(-1);
        }
    };
    let flag = flags.first().copied().unwrap_or(0);
    let idx = matching_headers(c, name);
    if flag == b'l' {
        return match idx.last() {
            Some(&i) => b(subst_one(c, &e, i)),
            None => Value::Int(-1),
        };
    }
    let mut ret = -1;
    for i in idx {
        let hit = subst_one(c, &e, i);
        if hit {
            ret = 1;
        }
        if flag == b'f' {
            return Value::Int(ret);
        }
    }
    Value::Int(ret)
}

fn search_append(c: &mut Ctx, re: &[u8], txt: Bytes, body_only: bool) -> Value {
    let Some(re) = regex(re) else {
        return Value::Int(-1);
    };
    let v = view(c);
    let from = if body_only {
        if v.text.len() == v.split {
            return Value::Int(-1);
        }
        v.split
    } else {
        0
    };
    match find_from(&re, &v.text, from, true) {
        Some((_, e)) => {
            apply(c, &v, vec![(e, e, txt)]);
            Value::Int(1)
        }
        None => Value::Int(-1),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Area {
    All,
    Body,
    Headers,
}

/// `replace_str`, `replace_body_str`, `replace_hdrs_str`: plain-text replacement of the
/// first (`f`) or every occurrence. As in Kamailio, once one occurrence is replaced the
/// search for more runs to the end of the message, whatever the area.
fn replace_str(c: &mut Ctx, a: &[Value], area: Area) -> Value {
    let key = arg_bytes(a, 0);
    let with = arg_bytes(a, 1);
    let mode = arg_bytes(a, 2);
    let v = view(c);
    let (from, to) = match area {
        Area::All => (0, v.text.len()),
        Area::Body => {
            if v.text.len() == v.split {
                return Value::Int(-1);
            }
            (v.split, v.text.len())
        }
        Area::Headers => {
            if v.split == 0 {
                return Value::Int(-1);
            }
            (0, v.split)
        }
    };
    if key.is_empty() || from >= to {
        return Value::Int(1);
    }
    let first_only = matches!(mode.first(), Some(b'f' | b'F'));
    let mut reps = Vec::new();
    let mut pos = from;
    let mut end = to;
    while let Some(at) = v
        .text
        .get(pos..end)
        .and_then(|s| memchr::memmem::find(s, &key))
    {
        let s = pos + at;
        reps.push((s, s + key.len(), with.clone()));
        if first_only {
            break;
        }
        pos = s + key.len();
        end = v.text.len();
    }
    apply(c, &v, reps);
    Value::Int(1)
}

fn replace_hdrs(c: &mut Ctx, re: &[u8], with: Bytes) -> Value {
    let Some(re) = regex(re) else {
        return Value::Int(-1);
    };
    let v = view(c);
    if v.split == 0 {
        return Value::Int(-1);
    }
    let Some(hdrs) = v.text.get(..v.split) else {
        return Value::Int(-1);
    };
    match re.find(hdrs) {
        Some(m) => {
            let (s, e) = (m.start(), m.end());
            apply(c, &v, vec![(s, e, with)]);
            Value::Int(1)
        }
        None => Value::Int(-1),
    }
}

fn replace_body_atonce(c: &mut Ctx, re: &[u8], with: Bytes, newline: bool) -> Value {
    let Some(re) = super::regex_opts(re, newline) else {
        return Value::Int(-1);
    };
    let v = view(c);
    if v.text.len() == v.split {
        return Value::Int(-1);
    }
    let (found, ok) = match find_all(&re, &v.text, v.split, v.text.len(), false) {
        Ok(f) => (f, true),
        Err(f) => (f, false),
    };
    let hit = !found.is_empty();
    let reps = found
        .into_iter()
        .map(|(s, e)| (s, e, with.clone()))
        .collect();
    apply(c, &v, reps);
    Value::Int(if ok && hit { 1 } else { -1 })
}

fn remove_hf_exp(c: &mut Ctx, m: &[u8], skip: &[u8]) -> Value {
    let (Some(mre), Some(sre)) = (regex(m), regex(skip)) else {
        return Value::Int(-1);
    };
    let idx: Vec<usize> = c
        .msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| !sre.is_match(&h.name) && mre.is_match(&h.name))
        .map(|(i, _)| i)
        .collect();
    for i in &idx {
        c.msg.remove_header(*i);
    }
    b(!idx.is_empty())
}

fn remove_hf_match(c: &mut Ctx, name: &[u8], op: &[u8], expr: &[u8]) -> Value {
    let op = op.to_ascii_lowercase();
    let re = if op == b"re" {
        match regex(expr) {
            Some(r) => Some(r),
            None => return Value::Int(-1),
        }
    } else if matches!(&op[..], b"eq" | b"ne" | b"in") {
        None
    } else {
        crate::klog!(
            L_ERR,
            "textops",
            "unknown operator [{}]",
            String::from_utf8_lossy(&op)
        );
        return Value::Int(-1);
    };
    let idx: Vec<usize> = c
        .msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| name_matches(h, name))
        .filter(|(_, h)| match &op[..] {
            b"eq" => h.value[..] == *expr,
            b"ne" => h.value[..] != *expr,
            b"in" => memchr::memmem::find(&h.value, expr).is_some(),
            _ => re.as_ref().is_some_and(|r| r.is_match(&h.value)),
        })
        .map(|(i, _)| i)
        .collect();
    for i in &idx {
        c.msg.remove_header(*i);
    }
    Value::Int(if idx.is_empty() { -2 } else { 1 })
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `Date: Sun, 06 Dec 2026 21:55:43 GMT` for `secs` since the epoch (no line ending).
pub fn date_header(secs: i64) -> Vec<u8> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86400);
    let tod = secs.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = DAYS
        .get(days.rem_euclid(7) as usize)
        .copied()
        .unwrap_or("Thu");
    let mon = MONTHS.get((m - 1) as usize).copied().unwrap_or("Jan");
    format!(
        "Date: {wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
    .into_bytes()
}

/// Privacy value bits (RFC 3323/3325 names).
fn priv_value(s: &[u8]) -> Option<(u32, usize)> {
    const NAMES: [(&[u8], u32); 7] = [
        (b"user", 1),
        (b"header", 2),
        (b"session", 4),
        (b"none", 8),
        (b"critical", 16),
        (b"id", 32),
        (b"history", 64),
    ];
    for (n, bit) in NAMES {
        if s.len() >= n.len() && s[..n.len()].eq_ignore_ascii_case(n) {
            return match s.get(n.len()) {
                None | Some(b';' | b' ' | b'\t' | b'\r' | b'\n' | 0) => Some((bit, n.len())),
                Some(_) => None,
            };
        }
    }
    None
}

/// The values of the first Privacy header, `None` when absent or malformed.
fn privacy_values(c: &Ctx) -> Option<u32> {
    let h = c
        .msg
        .headers()
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(b"Privacy"))?;
    let v: &[u8] = &h.value;
    let ws = |x: &u8| matches!(x, b' ' | b'\t' | b'\r' | b'\n');
    let mut p = v.iter().position(|x| !ws(x))?;
    let mut values = 0;
    while p < v.len() {
        let (bit, n) = priv_value(v.get(p..)?)?;
        values |= bit;
        p += n;
        while v.get(p).is_some_and(ws) {
            p += 1;
        }
        if p >= v.len() {
            break;
        }
        if v.get(p) != Some(&b';') {
            return None;
        }
        p += 1;
        while v.get(p).is_some_and(ws) {
            p += 1;
        }
        if p >= v.len() {
            return None;
        }
    }
    if values & 8 != 0 && values != 8 {
        return None;
    }
    Some(values)
}

fn is_privacy(c: &mut Ctx, want: &[u8]) -> Value {
    let Some(values) = privacy_values(c) else {
        return Value::Int(-1);
    };
    match priv_value(want) {
        Some((bit, n)) if n == want.len() => b(values & bit != 0),
        _ => {
            crate::klog!(L_ERR, "textops", "invalid privacy value");
            Value::Int(-1)
        }
    }
}

/// The SDP of the message: the body when it is `application/sdp`, or the first
/// `application/sdp` part of a `multipart/mixed` body.
fn sdp_of(c: &Ctx) -> Option<Vec<u8>> {
    let body = c.msg.current_body();
    if body.is_empty() {
        return None;
    }
    let ct = c.msg.content_type()?;
    let main = ct.split(|x| *x == b';').next().unwrap_or(&[]);
    let main = crate::sip::scan::trim_lws(main);
    if main.eq_ignore_ascii_case(b"application/sdp") {
        return Some(body.to_vec());
    }
    if main.eq_ignore_ascii_case(b"multipart/mixed") {
        let parts = super::multipart::parts(ct, body)?;
        return parts
            .into_iter()
            .find(|p| {
                p.ctype
                    .split(|x| *x == b';')
                    .next()
                    .map(crate::sip::scan::trim_lws)
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"application/sdp"))
            })
            .map(|p| p.content);
    }
    None
}

/// Kamailio's `is_audio_on_hold`: 2 for an audio stream held with `a=sendonly` or
/// `a=inactive` (media or session level), 1 for a `0.0.0.0` connection address, -1
/// otherwise.
fn audio_on_hold(c: &Ctx) -> i64 {
    let Some(sdp) = sdp_of(c) else {
        return -1;
    };
    let lines: Vec<&[u8]> = sdp
        .split(|x| *x == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    // Sessions start at v= lines.
    let mut sessions: Vec<&[&[u8]]> = Vec::new();
    let mut start = None;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with(b"v=") {
            if let Some(s) = start {
                sessions.push(&lines[s..i]);
            }
            start = Some(i);
        }
    }
    if let Some(s) = start {
        sessions.push(&lines[s..]);
    }
    let hold_mode = |l: &[u8]| -> Option<bool> {
        let l = l.get(..10)?;
        if l.eq_ignore_ascii_case(b"a=sendrecv") || l.eq_ignore_ascii_case(b"a=recvonly") {
            Some(false)
        } else if l.eq_ignore_ascii_case(b"a=inactive") || l.eq_ignore_ascii_case(b"a=sendonly") {
            Some(true)
        } else {
            None
        }
    };
    let conn_ip = |l: &[u8]| -> Option<Vec<u8>> {
        let rest = l.strip_prefix(b"c=")?;
        let mut it = rest
            .split(|x| *x == b' ' || *x == b'\t')
            .filter(|x| !x.is_empty());
        let _net = it.next()?;
        let af = it.next()?;
        let addr = it.next()?;
        let addr = addr.split(|x| *x == b'/').next().unwrap_or(addr);
        (af == b"IP4").then(|| addr.to_vec())
    };
    for sess in sessions {
        let first_m = sess
            .iter()
            .position(|l| l.starts_with(b"m="))
            .unwrap_or(sess.len());
        let head = &sess[..first_m];
        let sess_hold = head
            .iter()
            .filter(|l| l.starts_with(b"a="))
            .find_map(|l| hold_mode(l))
            .unwrap_or(false);
        let sess_ip = head.iter().find_map(|l| conn_ip(l));
        let sess_has_c = head.iter().any(|l| l.starts_with(b"c="));
        let mut i = first_m;
        while i < sess.len() {
            let end = sess[i + 1..]
                .iter()
                .position(|l| l.starts_with(b"m="))
                .map_or(sess.len(), |p| i + 1 + p);
            let media = &sess[i..end];
            let mline = media.first().copied().unwrap_or(&[]);
            let mut fields = mline[2..].split(|x| *x == b' ');
            let mtype = fields.next().unwrap_or(&[]);
            let port = fields.next().unwrap_or(&[]);
            let mut hold = 0;
            for l in &media[1..] {
                if hold_mode(l) == Some(true) {
                    hold = 2;
                }
            }
            if hold == 0 {
                let trickle = media[1..].iter().any(|l| {
                    l.strip_prefix(b"a=ice-options:")
                        .is_some_and(|o| o.split(|x| *x == b' ').any(|t| t == b"trickle"))
                });
                let c_lines: Vec<&&[u8]> =
                    media[1..].iter().filter(|l| l.starts_with(b"c=")).collect();
                let ip = if !c_lines.is_empty() {
                    c_lines.first().and_then(|l| conn_ip(l))
                } else if sess_has_c {
                    sess_ip.clone()
                } else {
                    None
                };
                if ip.as_deref() == Some(b"0.0.0.0") && !(trickle && port == b"9") {
                    hold = 1;
                }
            }
            if mtype == b"audio" {
                if hold != 0 {
                    return hold;
                }
                if sess_hold {
                    return 2;
                }
            }
            i = end;
        }
    }
    -1
}

fn regex_substring(
    c: &mut Ctx,
    input: &[u8],
    re: &[u8],
    mindex: i64,
    nmatch: i64,
    dst: &[u8],
) -> Value {
    if dst.is_empty() || mindex > nmatch.saturating_sub(1) || mindex < 0 {
        return Value::Int(-1);
    }
    let Some(spec) = super::super::core::pvapi::spec(c, &Bytes::copy_from_slice(dst)) else {
        return Value::Int(-1);
    };
    let re = match vm::program::posix_regex(re, false) {
        Ok(r) => r,
        Err(e) => {
            crate::klog!(
                L_ERR,
                "textops",
                "regular expression could not be compiled: {e}"
            );
            return Value::Int(-1);
        }
    };
    let input = match memchr::memchr(0, input) {
        Some(n) => input.get(..n).unwrap_or(input),
        None => input,
    };
    let Some(caps) = re.captures(input) else {
        return Value::Int(-2);
    };
    let Some(m) = caps.get(mindex as usize) else {
        return Value::Int(-1);
    };
    if m.start() == m.end() {
        return Value::Int(-1);
    }
    let v = Value::Str(Bytes::copy_from_slice(m.as_bytes()));
    if vm::pv::set(c, &spec, &v).is_err() {
        return Value::Int(-1);
    }
    Value::Int(1)
}

/// `via_param_rm`: removes parameter `name` (with its `;`) from the Via body at `idx`
/// (negative from the end, counted as Kamailio does: -2 is the last one); how many were
/// removed, -1 when none.
fn via_param_rm(c: &mut Ctx, name: &[u8], idx: i64) -> Value {
    let Ok(vias) = c.msg.vias() else {
        return Value::Int(-1);
    };
    let idx = if idx < 0 {
        let n = vias.len() as i64 + 1;
        if idx.saturating_neg() > n {
            return Value::Int(-1);
        }
        n + idx
    } else {
        idx
    };
    let Some(v) = usize::try_from(idx).ok().and_then(|i| vias.get(i)) else {
        return Value::Int(-1);
    };
    let buf = c.msg.buf().clone();
    let mut cuts = Vec::new();
    for p in v
        .params
        .iter()
        .filter(|p| p.name.eq_ignore_ascii_case(name))
    {
        let Some(ns) = c.msg.offset_of(&p.name) else {
            continue;
        };
        let Some(semi) = buf
            .get(v.start..ns)
            .and_then(|s| s.iter().rposition(|x| *x == b';'))
        else {
            crate::klog!(L_ERR, "textops", "missing start of via parameters");
            return Value::Int(-1);
        };
        let end = match p.value.as_ref().filter(|x| !x.is_empty()) {
            Some(val) => c
                .msg
                .offset_of(val)
                .map_or(ns + p.name.len(), |o| o + val.len()),
            None => ns + p.name.len(),
        };
        cuts.push((v.start + semi, end));
    }
    if cuts.is_empty() {
        return Value::Int(-1);
    }
    let n = cuts.len() as i64;
    for (s, e) in cuts {
        c.msg.add_edit(Edit::replace(s, e, Bytes::new()));
    }
    Value::Int(n)
}

/// `subst_v`: the substitution applied to `input`, stored in `dst`; -1 when it does not
/// match.
fn subst_v(c: &mut Ctx, input: &[u8], subst: &[u8], dst: &[u8]) -> Value {
    let Some(spec) = super::super::core::pvapi::spec(c, &Bytes::copy_from_slice(dst)) else {
        return Value::Int(-1);
    };
    let e = match vm::transform::parse_subst_expr(&String::from_utf8_lossy(subst), None) {
        Ok(e) => e,
        Err(err) => {
            crate::klog!(L_ERR, "textops", "bad subst re: {err}");
            return Value::Int(-1);
        }
    };
    match e.apply(input, &[]) {
        Ok(Some(out)) => match vm::pv::set(c, &spec, &Value::Str(Bytes::from(out))) {
            Ok(()) => Value::Int(1),
            Err(_) => Value::Int(-1),
        },
        Ok(None) => Value::Int(-1),
        Err(_) => {
            crate::klog!(L_ERR, "textops", "substitution failed");
            Value::Int(-1)
        }
    }
}

fn set_reply_body(c: &mut Ctx, body: Bytes, ctype: &[u8]) -> Value {
    if body.is_empty() || ctype.is_empty() {
        crate::klog!(L_ERR, "textops", "invalid body or content-type parameter");
        return Value::Int(-1);
    }
    let mut line = b"Content-Type: ".to_vec();
    line.extend_from_slice(ctype);
    line.extend_from_slice(b"\r\n");
    c.reply_hdrs.push(Bytes::from(line));
    if c.reply_body.is_some() {
        crate::klog!(L_ERR, "textops", "LUMP_RPL_BODY already added!");
        return Value::Int(-1);
    }
    c.reply_body = Some(body);
    Value::Int(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_format() {
        assert_eq!(
            String::from_utf8(date_header(0)).unwrap(),
            "Date: Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            String::from_utf8(date_header(1_796_594_143)).unwrap(),
            "Date: Sun, 06 Dec 2026 21:55:43 GMT"
        );
    }

    #[test]
    fn privacy_values_parse() {
        assert_eq!(priv_value(b"id;x"), Some((32, 2)));
        assert_eq!(priv_value(b"idx"), None);
        assert_eq!(priv_value(b"History"), Some((64, 7)));
    }
}
