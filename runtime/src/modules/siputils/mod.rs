//! Kamailio's `siputils` module: message and URI tests (`has_totag`, `is_first_hop`,
//! `uri_param`, E.164 checks, URI comparison ...).

use super::core::actions::{arg_bytes, b};
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::sip::Uri;
use bytes::Bytes;
use vm::ksr::{ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

mod extra;
mod more;
mod pcv;
pub use more::SiputilsState;

pub static MODULE: ModuleDef = ModuleDef {
    name: "siputils",
    params: &[
        ParamDef::str("options_accept"),
        ParamDef::str("options_accept_encoding"),
        ParamDef::str("options_accept_language"),
        ParamDef::str("options_support"),
        ParamDef::str("rpid_prefix"),
        ParamDef::str("rpid_suffix"),
        ParamDef::str("rpid_avp"),
        ParamDef::int("e164_max_len"),
        ParamDef::str("contact_flds_separator"),
    ],
    register,
    init: Some(more::init),
    notice: None,
};

const REQ_FAIL_BRANCH: RouteMask = RouteMask(1 | 2 | 8);

fn register(r: &mut Registrar<'_>) {
    r.kemi("siputils", "has_totag", &[], RetType::Int, |c, _| {
        b(c.msg
            .to()
            .is_ok_and(|t| t.tag().is_some_and(|x| !x.is_empty())))
    })
    .native("has_totag", RouteMask::ANY);
    r.kemi("siputils", "is_request", &[], RetType::Int, |c, _| {
        b(c.msg.is_request())
    })
    .native("is_request", RouteMask::ANY);
    r.kemi("siputils", "is_reply", &[], RetType::Int, |c, _| {
        b(c.msg.is_reply())
    })
    .native("is_reply", RouteMask::ANY);
    r.kemi("siputils", "is_first_hop", &[], RetType::Int, |c, _| {
        let n = c.msg.vias().map(|v| v.len()).unwrap_or(0);
        b(if c.msg.is_request() { n == 1 } else { n == 2 })
    })
    .native("is_first_hop", RouteMask::ANY);
    r.kemi("siputils", "uri_param", &[S], RetType::Int, |c, a| {
        uri_param(c, &arg_bytes(a, 0), None)
    })
    .native("uri_param", REQ_FAIL_BRANCH);
    r.kemi(
        "siputils",
        "uri_param_value",
        &[S, S],
        RetType::Int,
        |c, a| uri_param(c, &arg_bytes(a, 0), Some(arg_bytes(a, 1))),
    )
    .native("uri_param", REQ_FAIL_BRANCH);
    r.kemi(
        "siputils",
        "add_uri_param",
        &[S],
        RetType::Int,
        add_uri_param,
    )
    .native("add_uri_param", RouteMask::REQUEST);
    // cfg-only in Kamailio (no KEMI exports).
    r.native("is_e164", &[S], RouteMask::ANY, |_, a| {
        b(is_e164(&arg_bytes(a, 0)))
    });
    r.native("is_uri_user_e164", &[S], RouteMask::ANY, |_, a| {
        let u = arg_bytes(a, 0);
        b(Uri::parse(&u).is_ok_and(|u| is_e164(&u.user)))
    });
    r.kemi("siputils", "is_tel_number", &[S], RetType::Int, |_, a| {
        Value::Int(is_tel_number(&arg_bytes(a, 0)))
    })
    .native("is_tel_number", RouteMask::ANY);
    r.kemi("siputils", "is_numeric", &[S], RetType::Int, |_, a| {
        let s = arg_bytes(a, 0);
        b(!s.is_empty() && s.iter().all(u8::is_ascii_digit))
    })
    .native("is_numeric", RouteMask::ANY);
    r.kemi("siputils", "is_alphanum", &[S], RetType::Int, |_, a| {
        let s = arg_bytes(a, 0);
        b(!s.is_empty() && s.iter().all(u8::is_ascii_alphanumeric))
    })
    .native("is_alphanum", RouteMask::ANY);
    r.kemi("siputils", "cmp_uri", &[S, S], RetType::Int, |_, a| {
        cmp_uri(&arg_bytes(a, 0), &arg_bytes(a, 1), false)
    })
    .native("cmp_uri", RouteMask::ANY);
    r.kemi("siputils", "cmp_aor", &[S, S], RetType::Int, |_, a| {
        cmp_uri(&arg_bytes(a, 0), &arg_bytes(a, 1), true)
    })
    .native("cmp_aor", RouteMask::ANY);
    more::register(r);
    extra::register(r);
    pcv::register(r);
}

/// An optional `+` with a first digit 1-9, then digits only; -2 otherwise (Kamailio's code).
fn is_tel_number(s: &[u8]) -> i64 {
    let digits = match s.strip_prefix(b"+") {
        Some(d) => {
            if !matches!(d.first(), Some(b'1'..=b'9')) {
                return -2;
            }
            d
        }
        None => s,
    };
    if s.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return -2;
    }
    1
}

/// `+` followed by 2 to 15 digits.
pub fn is_e164(s: &[u8]) -> bool {
    match s.strip_prefix(b"+") {
        Some(d) => (2..=15).contains(&d.len()) && d.iter().all(u8::is_ascii_digit),
        None => false,
    }
}

fn uri_param(c: &mut Ctx, name: &[u8], value: Option<Bytes>) -> Value {
    let Ok(u) = c.msg.parsed_ruri() else {
        return Value::Int(-1);
    };
    // Parameters Kamailio's URI parser keeps in dedicated fields are not searched (oracle:
    // `uri_param("transport")` is false even when present).
    const DEDICATED: &[&[u8]] = &[
        b"transport",
        b"ttl",
        b"user",
        b"method",
        b"maddr",
        b"lr",
        b"r2",
        b"gr",
    ];
    if DEDICATED.iter().any(|d| d.eq_ignore_ascii_case(name)) {
        return Value::Int(-1);
    }
    match u.param(name) {
        None => Value::Int(-1),
        Some(p) => match value {
            None => Value::Int(1),
            Some(v) => b(p.value.as_deref() == Some(&v[..])),
        },
    }
}

fn add_uri_param(c: &mut Ctx, a: &[Value]) -> Value {
    let p = arg_bytes(a, 0);
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return Value::Int(-1);
    };
    let mut params = u.params_raw.to_vec();
    if !params.is_empty() {
        params.push(b';');
    }
    params.extend_from_slice(&p);
    let mut parts = u.parts();
    parts.params = &params;
    c.msg.set_ruri(Uri::build(&parts));
    Value::Int(1)
}

/// RFC 3261 §19.1.4 in the parts Kamailio compares: scheme, user (case-sensitive), host
/// (case-insensitive) and port; with `aor_only`, user and host.
fn cmp_uri(a: &[u8], b_: &[u8], aor_only: bool) -> Value {
    let (Ok(x), Ok(y)) = (Uri::parse_bytes(a), Uri::parse_bytes(b_)) else {
        return Value::Int(-1);
    };
    let same = x.user == y.user
        && x.host.eq_ignore_ascii_case(&y.host)
        && (aor_only
            || (x.scheme == y.scheme
                // An explicit 5060 does not match an omitted port (RFC 3261 §19.1.4; oracle).
                && x.port == y.port
                && x.password == y.password));
    b(same)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        assert!(is_e164(b"+4912345"));
        assert!(!is_e164(b"4912345"));
        assert!(!is_e164(b"+1"));
        assert!(!is_e164(b"+1234567890123456"));
        // Oracle: an explicit :5060 does not match an omitted port.
        assert_eq!(
            cmp_uri(b"sip:a@X.com", b"sip:a@x.com:5060", false),
            Value::Int(-1)
        );
        assert_eq!(
            cmp_uri(b"sip:a@X.com", b"sip:a@x.com", false),
            Value::Int(1)
        );
        assert_eq!(
            cmp_uri(b"sip:A@x.com", b"sip:a@x.com", false),
            Value::Int(-1)
        );
    }
}
