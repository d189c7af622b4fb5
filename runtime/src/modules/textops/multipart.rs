//! Multipart bodies: converting a body to `multipart/mixed`, adding, reading and removing
//! parts, keeping only one part. Parts are located the way Kamailio's textops does it: a
//! part's `Content-Type` line (at a line start, CRLF line endings), its value compared
//! case-insensitively and exactly, and the next boundary line after it.
//!
//! Kamailio marks a message whose parts changed and, when it forwards it, rewrites the
//! boundary lines (`--b` between parts, `--b--` last, nothing before the first one) if the
//! received Content-Type has a boundary; ksr applies that rewrite at once.

use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::modules::Registrar;
use crate::modules::core::actions::arg_bytes;
use crate::sip::HdrKind;
use bytes::Bytes;
use vm::ksr::{ParamHint, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

const REQ_FAIL_BRANCH: RouteMask = RouteMask(1 | 2 | 8);
const REQ_FAIL_BRANCH_REPLY: RouteMask = RouteMask(1 | 2 | 4 | 8 | 128);

pub fn register(r: &mut Registrar<'_>) {
    use ParamHint::{Plain, PvName};
    // set_body_multipart([txt, content_type][, boundary])
    r.kemi(
        "textops",
        "set_body_multipart",
        &[S, S, S],
        RetType::Int,
        |c, a| {
            Value::Int(set_multibody(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                &arg_bytes(a, 2),
            ))
        },
    )
    .native("set_body_multipart", REQ_FAIL_BRANCH);
    r.kemi(
        "textops",
        "set_body_multipart_mode",
        &[],
        RetType::Int,
        |c, _| Value::Int(set_multibody(c, b"", b"", b"")),
    )
    .native("set_body_multipart", REQ_FAIL_BRANCH);
    r.kemi(
        "textops",
        "set_body_multipart_boundary",
        &[S],
        RetType::Int,
        |c, a| Value::Int(set_multibody(c, b"", b"", &arg_bytes(a, 0))),
    )
    .native("set_body_multipart", REQ_FAIL_BRANCH);
    r.kemi(
        "textops",
        "set_body_multipart_content",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(set_multibody(c, &arg_bytes(a, 0), &arg_bytes(a, 1), b"")),
    )
    .native("set_body_multipart", REQ_FAIL_BRANCH);
    r.kemi(
        "textops",
        "append_body_part",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(append_part(c, &arg_bytes(a, 0), &arg_bytes(a, 1), b"")),
    )
    .native("append_body_part", REQ_FAIL_BRANCH);
    r.kemi(
        "textops",
        "append_body_part_cd",
        &[S, S, S],
        RetType::Int,
        |c, a| {
            Value::Int(append_part(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                &arg_bytes(a, 2),
            ))
        },
    )
    .native("append_body_part", REQ_FAIL_BRANCH);
    r.kemi(
        "textops",
        "append_body_part_hex",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(append_part_hex(c, &arg_bytes(a, 0), &arg_bytes(a, 1), b"")),
    )
    .native("append_body_part_hex", REQ_FAIL_BRANCH);
    r.kemi(
        "textops",
        "append_body_part_hex_cd",
        &[S, S, S],
        RetType::Int,
        |c, a| {
            Value::Int(append_part_hex(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                &arg_bytes(a, 2),
            ))
        },
    )
    .native("append_body_part_hex", REQ_FAIL_BRANCH);
    r.kemi("textops", "remove_body_part", &[S], RetType::Int, |c, a| {
        Value::Int(remove_part(c, &arg_bytes(a, 0)))
    })
    .native("remove_body_part", REQ_FAIL_BRANCH);
    r.kemi("textops", "get_body_part", &[S, S], RetType::Int, |c, a| {
        Value::Int(get_part(c, &arg_bytes(a, 0), &arg_bytes(a, 1), true))
    })
    .native("get_body_part", REQ_FAIL_BRANCH_REPLY)
    .hints(&[Plain, PvName]);
    r.kemi(
        "textops",
        "get_body_part_raw",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(get_part(c, &arg_bytes(a, 0), &arg_bytes(a, 1), false)),
    )
    .native("get_body_part_raw", REQ_FAIL_BRANCH_REPLY)
    .hints(&[Plain, PvName]);
    r.kemi("textops", "filter_body", &[S], RetType::Int, |c, a| {
        Value::Int(filter_body(c, &arg_bytes(a, 0)))
    })
    .native("filter_body", RouteMask::ANY);
}

/// The received Content-Type value.
fn ctype_value(c: &Ctx) -> Option<Bytes> {
    c.msg.header(HdrKind::ContentType).map(|h| h.value.clone())
}

/// True when the Content-Type is `multipart/mixed` (parameters aside).
fn is_multipart_mixed(ct: &[u8]) -> bool {
    let main = ct.split(|x| *x == b';').next().unwrap_or(&[]);
    crate::sip::scan::trim_lws(main).eq_ignore_ascii_case(b"multipart/mixed")
}

/// The boundary line text (`--` and the `boundary` parameter): `Err(-2)` when the
/// Content-Type has no parameters; empty when none is named `boundary`.
fn boundary_of(ct: &[u8]) -> Result<Vec<u8>, i32> {
    let Some(semi) = memchr::memchr(b';', ct) else {
        return Err(-2);
    };
    for p in ct[semi + 1..].split(|x| *x == b';') {
        let (name, value) = match memchr::memchr(b'=', p) {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &[][..]),
        };
        if crate::sip::scan::trim_lws(name).eq_ignore_ascii_case(b"boundary") {
            let v = crate::sip::scan::trim_lws(value);
            let v = match v {
                [b'"', inner @ .., b'"'] => inner,
                _ => v,
            };
            let mut out = b"--".to_vec();
            out.extend_from_slice(v);
            return Ok(out);
        }
    }
    Ok(Vec::new())
}

/// The delimiter as Kamailio's SDP helper reads it: what follows `boundary=` right after the
/// first `;` up to the end of the value, without enclosing quotes.
fn mixed_part_delimiter(ct: &[u8]) -> Option<Vec<u8>> {
    let semi = memchr::memchr(b';', ct)?;
    let mut p = semi + 1;
    while matches!(ct.get(p), Some(b' ' | b'\t')) {
        p += 1;
    }
    if !ct.get(p..p + 8)?.eq_ignore_ascii_case(b"boundary") {
        return None;
    }
    p += 8;
    while matches!(ct.get(p), Some(b' ' | b'\t')) {
        p += 1;
    }
    if ct.get(p) != Some(&b'=') {
        return None;
    }
    p += 1;
    while matches!(ct.get(p), Some(b' ' | b'\t')) && p + 1 < ct.len() {
        p += 1;
    }
    let v = ct.get(p..)?;
    match v.first() {
        Some(&q @ (b'"' | b'\'')) => {
            if v.len() >= 2 && v.last() == Some(&q) {
                let inner = &v[1..v.len() - 1];
                (!inner.is_empty()).then(|| inner.to_vec())
            } else {
                None
            }
        }
        _ => Some(v.to_vec()),
    }
}

/// Position of the first line (from `start`, which counts as a line start) beginning with
/// `text`; lines must end with CRLF.
fn find_line_start(text: &[u8], body: &[u8], mut start: usize) -> Option<usize> {
    loop {
        let len = body.len().checked_sub(start)?;
        if text.len() > len {
            return None;
        }
        if body.get(start..)?.starts_with(text) {
            return Some(start);
        }
        let lim = start + len.saturating_sub(1);
        let cr = memchr::memchr(b'\r', body.get(start..lim)?)?;
        if body.get(start + cr + 1) != Some(&b'\n') {
            return None;
        }
        start += cr + 2;
    }
}

/// A part's `Content-Type` line at or after `start`: (line start, value start).
fn find_ctype_line(body: &[u8], mut start: usize) -> Option<(usize, usize)> {
    const NAME_SPAN: usize = 14;
    loop {
        let len = body.len().checked_sub(start)?;
        if NAME_SPAN > len {
            return None;
        }
        let window = body.get(start..start + NAME_SPAN)?;
        if let Some(colon) = memchr::memchr(b':', window) {
            let name = crate::sip::scan::trim_lws(&window[..colon]);
            let is_ct = !name.is_empty()
                && name
                    .iter()
                    .all(|x| !matches!(x, b' ' | b'\t' | b'\r' | b'\n'))
                && (name.eq_ignore_ascii_case(b"content-type") || name.eq_ignore_ascii_case(b"c"));
            if is_ct {
                let mut v = start + colon + 1;
                while matches!(body.get(v), Some(b' ' | b'\t')) {
                    v += 1;
                }
                if v >= body.len() {
                    return None;
                }
                return Some((start, v));
            }
        }
        let lim = start + len.saturating_sub(1);
        let cr = memchr::memchr(b'\r', body.get(start..lim)?)?;
        if body.get(start + cr + 1) != Some(&b'\n') {
            return None;
        }
        start += cr + 2;
    }
}

/// Length of the line at `s` with its CRLF; 0 for a CR without LF; the rest without any CR.
fn line_len(s: &[u8]) -> usize {
    match memchr::memchr(b'\r', s) {
        Some(i) if s.get(i + 1) == Some(&b'\n') => i + 2,
        Some(_) => 0,
        None => s.len(),
    }
}

/// Finds the part of type `ct`: (line start of its Content-Type, end of that line,
/// start of the boundary line after it, end of that boundary line). `None` on any failure.
fn locate(body: &[u8], boundary: &[u8], ct: &[u8]) -> Option<(usize, usize, usize, usize)> {
    let mut start = 0;
    while let Some((ls, vs)) = find_ctype_line(body, start) {
        let remaining = body.len() - vs;
        if remaining <= ct.len() + 2 {
            return None;
        }
        let v = body.get(vs..vs + ct.len())?;
        if v.eq_ignore_ascii_case(ct) {
            let e = vs + ct.len();
            if body.get(e..e + 2) != Some(b"\r\n") {
                crate::klog!(L_ERR, "textops", "no CRLF found after content type");
                return None;
            }
            let hend = e + 2;
            let Some(bpos) = find_line_start(boundary, body, hend) else {
                crate::klog!(L_ERR, "textops", "boundary not found after content");
                return None;
            };
            let after = bpos + boundary.len();
            let t = line_len(body.get(after..)?);
            if t == 0 {
                return None;
            }
            return Some((ls, hend, bpos, after + t));
        }
        start = vs;
    }
    None
}

/// Kamailio's rewrite of the boundary lines of a changed multipart body (see the module
/// comment); `None` when it leaves the body alone.
fn normalize(body: &[u8], ob: &[u8]) -> Option<Vec<u8>> {
    if ob.is_empty() {
        return None;
    }
    let mut b = ob.to_vec();
    b.extend_from_slice(b"\r\n");
    let mut fb = ob.to_vec();
    fb.extend_from_slice(b"--\r\n");
    let mut found = Vec::new();
    let mut pos = 0;
    let mut t = body.len() as i64;
    while t > 0 {
        match find_line_start(ob, body, pos) {
            Some(p) => {
                found.push(p);
                pos = p + ob.len();
                t -= ob.len() as i64;
            }
            None => break,
        }
    }
    if found.len() < 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    for w in found.windows(2) {
        let (p, next) = (w[0], w[1]);
        let l = line_len(body.get(p..)?);
        if body.get(p..p + l) != Some(&b[..]) {
            out.extend_from_slice(&b);
            out.extend_from_slice(body.get((p + l).min(next)..next)?);
        } else {
            out.extend_from_slice(body.get(p..next)?);
        }
    }
    let p0 = found[0];
    let l0 = line_len(body.get(p0..)?);
    if body.get(p0..p0 + l0) != Some(&fb[..]) {
        out.extend_from_slice(&fb);
    } else {
        out.extend_from_slice(body.get(p0..)?);
    }
    Some(out)
}

/// Sets a changed multipart body, with the boundary rewrite Kamailio does when it forwards.
fn set_parts_body(c: &mut Ctx, body: Vec<u8>) {
    let ob = ctype_value(c).and_then(|ct| boundary_of(&ct).ok());
    let body = match ob.and_then(|ob| normalize(&body, &ob)) {
        Some(n) => n,
        None => body,
    };
    c.msg.set_body(Bytes::from(body));
}

/// One part as written by textops: optional opening delimiter, Content-Type (and
/// Content-Disposition), empty line, text (with a CRLF when it does not end in two), and
/// a delimiter line.
fn part_text(txt: &[u8], ct: &[u8], cd: &[u8], delimiter: &[u8], initial: bool) -> Option<Vec<u8>> {
    if txt.is_empty() || ct.is_empty() || delimiter.is_empty() {
        crate::klog!(L_ERR, "textops", "invalid parameters");
        return None;
    }
    if delimiter.first() == Some(&b'-') {
        crate::klog!(
            L_ERR,
            "textops",
            "delimiter with initial '-'. Invalid parameter."
        );
        return None;
    }
    let mut n = Vec::with_capacity(txt.len() + ct.len() + cd.len() + 2 * delimiter.len() + 64);
    if initial {
        n.extend_from_slice(b"--");
        n.extend_from_slice(delimiter);
        n.extend_from_slice(b"\r\n");
    }
    n.extend_from_slice(b"Content-Type: ");
    n.extend_from_slice(ct);
    n.extend_from_slice(b"\r\n");
    if !cd.is_empty() {
        n.extend_from_slice(b"Content-Disposition: ");
        n.extend_from_slice(cd);
        n.extend_from_slice(b"\r\n");
    }
    n.extend_from_slice(b"\r\n");
    n.extend_from_slice(txt);
    if !txt.ends_with(b"\r\n\r\n") {
        n.extend_from_slice(b"\r\n");
    }
    n.extend_from_slice(b"--");
    n.extend_from_slice(delimiter);
    n.extend_from_slice(b"\r\n");
    Some(n)
}

fn set_multibody(c: &mut Ctx, nbody: &[u8], ctype: &[u8], boundary: &[u8]) -> i64 {
    let orig_ct = ctype_value(c);
    let convert = !orig_ct.as_deref().is_some_and(is_multipart_mixed);
    if !convert && nbody.is_empty() {
        return 1;
    }
    let newctype: &[u8] = if ctype.is_empty() {
        b"text/plain"
    } else {
        ctype
    };
    let delimiter: &[u8] = if boundary.is_empty() {
        b"unique-boundary-1"
    } else {
        boundary
    };
    let body = c.msg.current_body().clone();
    let (txt, ct): (&[u8], &[u8]) = if !nbody.is_empty() {
        (nbody, newctype)
    } else if convert && !body.is_empty() {
        match orig_ct.as_deref() {
            Some(o) if !o.is_empty() => (&body, o),
            _ => (&body, newctype),
        }
    } else {
        crate::klog!(L_ERR, "textops", "no body to be set in the message");
        return -1;
    };
    let Some(nbb) = part_text(txt, ct, b"", delimiter, true) else {
        return -1;
    };
    if convert {
        if let Some(i) = c
            .msg
            .headers()
            .iter()
            .position(|h| h.kind == HdrKind::ContentType)
        {
            c.msg.remove_header(i);
        }
        let mut line = b"Content-Type: multipart/mixed;boundary=\"".to_vec();
        line.extend_from_slice(delimiter);
        line.extend_from_slice(b"\"\r\n");
        c.msg.append_header(Bytes::from(line));
        c.msg
            .append_header(Bytes::from_static(b"Mime-Version: 1.0\r\n"));
    }
    set_parts_body(c, nbb);
    1
}

fn append_part(c: &mut Ctx, txt: &[u8], ct: &[u8], cd: &[u8]) -> i64 {
    if txt.is_empty() || ct.is_empty() {
        crate::klog!(L_ERR, "textops", "invalid body or content-type parameter");
        return -1;
    }
    let body = c.msg.current_body().clone();
    if body.is_empty() {
        return -1;
    }
    let Some(delimiter) = ctype_value(c).and_then(|ct| mixed_part_delimiter(&ct)) else {
        crate::klog!(L_ERR, "textops", "Cannot get boundary. Is body multipart?");
        return -1;
    };
    let Some(nbb) = part_text(txt, ct, cd, &delimiter, false) else {
        return -1;
    };
    let mut out = body.to_vec();
    out.extend_from_slice(&nbb);
    set_parts_body(c, out);
    1
}

/// Hex text (blanks allowed between digit pairs) to bytes.
pub(super) fn unhex(h: &[u8]) -> Option<Vec<u8>> {
    let digit = |x: u8| -> Option<u8> {
        match x {
            b'0'..=b'9' => Some(x - b'0'),
            b'a'..=b'f' => Some(x - b'a' + 10),
            b'A'..=b'F' => Some(x - b'A' + 10),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(h.len() / 2);
    let mut i = 0;
    while i < h.len() {
        if matches!(h[i], b' ' | b'\t') {
            i += 1;
            continue;
        }
        let hi = digit(h[i])?;
        let lo = digit(*h.get(i + 1)?)?;
        out.push((hi << 4) | lo);
        i += 2;
    }
    (!out.is_empty()).then_some(out)
}

fn append_part_hex(c: &mut Ctx, htxt: &[u8], ct: &[u8], cd: &[u8]) -> i64 {
    if htxt.is_empty() {
        return -1;
    }
    match unhex(htxt) {
        Some(raw) => append_part(c, &raw, ct, cd),
        None => {
            crate::klog!(L_ERR, "textops", "invalid input hex data");
            -1
        }
    }
}

fn remove_part(c: &mut Ctx, ct: &[u8]) -> i64 {
    let body = c.msg.current_body().clone();
    if body.is_empty() {
        return -1;
    }
    let Some(Ok(boundary)) = ctype_value(c).map(|v| boundary_of(&v)) else {
        crate::klog!(
            L_ERR,
            "textops",
            "Cannot get boundary from Content type header. Is body multipart?"
        );
        return -1;
    };
    let Some((ls, _, _, end)) = locate(&body, &boundary, ct) else {
        return -1;
    };
    let mut out = body.get(..ls).unwrap_or(&[]).to_vec();
    out.extend_from_slice(body.get(end..).unwrap_or(&[]));
    set_parts_body(c, out);
    1
}

fn get_part(c: &mut Ctx, ct: &[u8], pv: &[u8], content_only: bool) -> i64 {
    let Some(spec) = super::super::core::pvapi::spec(c, &Bytes::copy_from_slice(pv)) else {
        return -1;
    };
    let body = c.msg.current_body().clone();
    if body.is_empty() {
        return -1;
    }
    let value = match ctype_value(c).map(|v| boundary_of(&v)) {
        Some(Ok(boundary)) => {
            let Some((ls, hend, bpos, end)) = locate(&body, &boundary, ct) else {
                return -1;
            };
            if content_only {
                body.slice(hend..bpos)
            } else {
                body.slice(ls..end)
            }
        }
        Some(Err(_)) => body,
        None => return -1,
    };
    match vm::pv::set(c, &spec, &Value::Str(value)) {
        Ok(()) => 1,
        Err(_) => -1,
    }
}

fn filter_body(c: &mut Ctx, ct: &[u8]) -> i64 {
    let body = c.msg.current_body().clone();
    if body.is_empty() {
        return -1;
    }
    let Some(orig) = ctype_value(c) else {
        return -1;
    };
    if !is_multipart_mixed(&orig) {
        return -1;
    }
    let Ok(boundary) = boundary_of(&orig) else {
        return -1;
    };
    let mut start = 0;
    while let Some((_, vs)) = find_ctype_line(&body, start) {
        if body.len() - vs <= ct.len() + 2 {
            return -1;
        }
        start = vs;
        if body
            .get(vs..vs + ct.len())
            .is_some_and(|v| v.eq_ignore_ascii_case(ct))
        {
            let mut p = vs + ct.len();
            if body.get(p..p + 2) != Some(b"\r\n") {
                return -1;
            }
            p += 2;
            while matches!(body.get(p), Some(b'\r' | b'\n')) {
                p += 1;
            }
            let Some(bpos) = find_line_start(&boundary, &body, p) else {
                return -1;
            };
            let end = bpos.saturating_sub(2).max(p);
            c.msg.set_body(body.slice(p..end));
            return 1;
        }
    }
    -1
}

/// A part of a multipart body (for readers such as `is_audio_on_hold`).
pub struct Part {
    pub ctype: Vec<u8>,
    pub content: Vec<u8>,
}

/// Splits a multipart body on its boundary lines; each part's headers end at an empty line.
pub fn parts(ct: &[u8], body: &[u8]) -> Option<Vec<Part>> {
    let ob = boundary_of(ct).ok()?;
    if ob.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut pos = find_line_start(&ob, body, 0)?;
    loop {
        let after = pos + ob.len();
        if body.get(after..after + 2) == Some(b"--") {
            break;
        }
        let start = after + line_len(body.get(after..)?);
        let next = find_line_start(&ob, body, start);
        let end = next.unwrap_or(body.len());
        let chunk = body.get(start..end)?;
        let (head, content) = match memchr::memmem::find(chunk, b"\r\n\r\n") {
            Some(i) => (&chunk[..i + 2], &chunk[i + 4..]),
            None => (&chunk[..0], chunk),
        };
        let content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let ctype = head
            .split(|x| *x == b'\n')
            .find_map(|l| {
                let (n, v) = l.split_at(memchr::memchr(b':', l)?);
                let n = crate::sip::scan::trim_lws(n);
                (n.eq_ignore_ascii_case(b"content-type") || n.eq_ignore_ascii_case(b"c"))
                    .then(|| crate::sip::scan::trim_lws(&v[1..]).to_vec())
            })
            .unwrap_or_default();
        out.push(Part {
            ctype,
            content: content.to_vec(),
        });
        match next {
            Some(n) if n > pos => pos = n,
            _ => break,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &[u8] = b"--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n";

    #[test]
    fn locate_and_normalize() {
        let (ls, hend, bpos, end) = locate(B, b"--b1", b"text/plain").unwrap();
        assert_eq!(&B[ls..hend], b"Content-Type: text/plain\r\n");
        assert_eq!(&B[hend..bpos], b"\r\nhi\r\n");
        assert_eq!(end, B.len());
        let mut cut = B[..ls].to_vec();
        cut.extend_from_slice(&B[end..]);
        assert_eq!(
            normalize(&cut, b"--b1").unwrap(),
            b"--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b1--\r\n".to_vec()
        );
    }

    #[test]
    fn delimiters() {
        assert_eq!(
            mixed_part_delimiter(b"multipart/mixed; boundary=\"abc\""),
            Some(b"abc".to_vec())
        );
        assert_eq!(boundary_of(b"multipart/mixed;boundary=x").unwrap(), b"--x");
        assert_eq!(boundary_of(b"application/sdp"), Err(-2));
        assert_eq!(unhex(b"41 42").unwrap(), b"AB");
        assert_eq!(unhex(b"414"), None);
    }
}
