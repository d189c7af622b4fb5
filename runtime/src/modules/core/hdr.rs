//! `KSR.hdr.*`: header manipulation for KEMI scripts (the same operations textops offers to
//! native configs).

use super::actions::{arg_bytes, arg_int};
use crate::ctx::Ctx;
use crate::modules::Registrar;
use crate::sip::{HdrKind, kind_of};
use bytes::Bytes;
use vm::Value;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};

pub fn register(r: &mut Registrar<'_>) {
    r.kemi("hdr", "append", &[S], RetType::Int, |c, a| {
        append_raw(c, &arg_bytes(a, 0));
        Value::Int(1)
    });
    r.kemi("hdr", "insert", &[S], RetType::Int, |c, a| {
        let line = with_crlf(&arg_bytes(a, 0));
        c.msg.insert_header_first(line);
        Value::Int(1)
    });
    r.kemi("hdr", "append_after", &[S, S], RetType::Int, |c, a| {
        let line = with_crlf(&arg_bytes(a, 0));
        match first_index(c, &arg_bytes(a, 1)) {
            Some(i) => Value::Int(if c.msg.insert_header_after(i, line) {
                1
            } else {
                -1
            }),
            None => Value::Int(-1),
        }
    });
    r.kemi("hdr", "insert_before", &[S, S], RetType::Int, |c, a| {
        let line = with_crlf(&arg_bytes(a, 0));
        match first_index(c, &arg_bytes(a, 1)) {
            Some(i) => Value::Int(if c.msg.insert_header_before(i, line) {
                1
            } else {
                -1
            }),
            None => Value::Int(-1),
        }
    });
    r.kemi("hdr", "remove", &[S], RetType::Int, |c, a| {
        Value::Int(remove_named(c, &arg_bytes(a, 0)))
    });
    r.kemi("hdr", "rmappend", &[S, S], RetType::Int, |c, a| {
        remove_named(c, &arg_bytes(a, 0));
        append_raw(c, &arg_bytes(a, 1));
        Value::Int(1)
    });
    r.kemi("hdr", "rminsert", &[S, S], RetType::Int, |c, a| {
        remove_named(c, &arg_bytes(a, 0));
        c.msg.insert_header_first(with_crlf(&arg_bytes(a, 1)));
        Value::Int(1)
    });
    r.kemi("hdr", "is_present", &[S], RetType::Int, |c, a| {
        Value::Int(if first_index(c, &arg_bytes(a, 0)).is_some() {
            1
        } else {
            -1
        })
    });
    r.kemi("hdr", "append_to_reply", &[S], RetType::Int, |c, a| {
        c.reply_hdrs.push(with_crlf(&arg_bytes(a, 0)));
        Value::Int(1)
    });
    r.kemi("hdr", "get", &[S], RetType::Xval, |c, a| {
        get(c, &arg_bytes(a, 0), 0, 0)
    });
    r.kemi("hdr", "gete", &[S], RetType::Xval, |c, a| {
        get(c, &arg_bytes(a, 0), 0, 1)
    });
    r.kemi("hdr", "getw", &[S], RetType::Xval, |c, a| {
        get(c, &arg_bytes(a, 0), 0, 2)
    });
    r.kemi("hdr", "get_idx", &[S, I], RetType::Xval, |c, a| {
        get(c, &arg_bytes(a, 0), arg_int(a, 1), 0)
    });
    r.kemi("hdr", "gete_idx", &[S, I], RetType::Xval, |c, a| {
        get(c, &arg_bytes(a, 0), arg_int(a, 1), 1)
    });
    r.kemi("hdr", "getw_idx", &[S, I], RetType::Xval, |c, a| {
        get(c, &arg_bytes(a, 0), arg_int(a, 1), 2)
    });
}

/// A header line ending in CRLF (scripts may or may not include it).
pub fn with_crlf(s: &[u8]) -> Bytes {
    if s.ends_with(b"\r\n") {
        Bytes::copy_from_slice(s)
    } else if s.ends_with(b"\n") {
        let mut v = s[..s.len() - 1].to_vec();
        v.extend_from_slice(b"\r\n");
        Bytes::from(v)
    } else {
        let mut v = s.to_vec();
        v.extend_from_slice(b"\r\n");
        Bytes::from(v)
    }
}

fn append_raw(c: &mut Ctx, s: &[u8]) {
    c.msg.append_header(with_crlf(s));
}

/// Matches a header by name, as Kamailio does: compact and full forms of known headers are
/// the same header.
pub fn name_matches(h: &crate::sip::Header, name: &[u8]) -> bool {
    let k = kind_of(name);
    if k != HdrKind::Other {
        h.kind == k
    } else {
        crate::sip::hdr::same_name(&h.name, name)
    }
}

fn first_index(c: &Ctx, name: &[u8]) -> Option<usize> {
    c.msg.headers().iter().position(|h| name_matches(h, name))
}

/// Removes every header named `name`; returns how many (or -1 when none, as Kamailio).
pub fn remove_named(c: &mut Ctx, name: &[u8]) -> i64 {
    let idx: Vec<usize> = c
        .msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| name_matches(h, name))
        .map(|(i, _)| i)
        .collect();
    for i in &idx {
        c.msg.remove_header(*i);
    }
    if idx.is_empty() { -1 } else { idx.len() as i64 }
}

/// mode 0: null when missing, 1: empty string, 2: `<null>`.
fn get(c: &Ctx, name: &[u8], idx: i64, mode: u8) -> Value {
    let hs: Vec<&crate::sip::Header> = c
        .msg
        .headers()
        .iter()
        .filter(|h| name_matches(h, name))
        .collect();
    let pos = if idx < 0 {
        (hs.len() as i64 + idx).max(-1)
    } else {
        idx
    };
    match usize::try_from(pos).ok().and_then(|p| hs.get(p)) {
        Some(h) => Value::Str(h.value.clone()),
        None => match mode {
            0 => Value::Null,
            1 => Value::from(""),
            _ => Value::from("<null>"),
        },
    }
}
