//! The rest of siputils: option tags, URI tests and rewriting into variables, R-URI
//! parameter removal, `tel2sip`, `options_reply`.

use super::super::core::actions::{arg_bytes, b};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::sip::{HdrKind, Method, Uri};
use bytes::Bytes;
use vm::ksr::{ParamHint, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

/// The `options_reply` headers, built once from the module parameters.
#[derive(Default)]
pub struct SiputilsState {
    options_hdrs: std::sync::OnceLock<Bytes>,
    pub rpid: super::extra::Rpid,
}

pub fn init(ictx: &mut super::super::InitCtx<'_>) -> Result<(), String> {
    let p = &ictx.params;
    let accept = p.str_or("options_accept", "*/*");
    let enc = p.str_or("options_accept_encoding", "");
    let lang = p.str_or("options_accept_language", "en");
    let sup = p.str_or("options_support", "");
    let h = format!(
        "Accept: {accept}\r\nAccept-Encoding: {enc}\r\nAccept-Language: {lang}\r\nSupported: {sup}\r\n"
    );
    let _ = ictx.states.siputils.options_hdrs.set(Bytes::from(h));
    ictx.states.siputils.rpid = super::extra::init(p)?;
    Ok(())
}

/// The option tags Kamailio's Supported parser knows; others cannot be tested.
const OPTION_TAGS: &[&[u8]] = &[
    b"path",
    b"100rel",
    b"timer",
    b"eventlist",
    b"gruu",
    b"outbound",
];

pub fn register(r: &mut super::super::Registrar<'_>) {
    use ParamHint::{Plain, PvName};
    r.native("is_supported", &[S], RouteMask::ANY, is_supported);
    r.kemi("siputils", "is_uri", &[S], RetType::Int, |_, a| {
        b(Uri::parse(&arg_bytes(a, 0)).is_ok())
    })
    .native("is_uri", RouteMask::ANY);
    r.kemi(
        "siputils",
        "is_alphanumex",
        &[S, S],
        RetType::Int,
        |_, a| {
            let (s, extra) = (arg_bytes(a, 0), arg_bytes(a, 1));
            b(!s.is_empty()
                && s.iter()
                    .all(|c| c.is_ascii_alphanumeric() || extra.contains(c)))
        },
    )
    .native("is_alphanumex", RouteMask::ANY);
    r.kemi("siputils", "uri_param_any", &[S], RetType::Int, |c, a| {
        let n = arg_bytes(a, 0);
        match c.msg.parsed_ruri() {
            Ok(u) => b(u.params.iter().any(|p| p.name.eq_ignore_ascii_case(&n))),
            Err(_) => Value::Int(-1),
        }
    })
    .native("uri_param_any", RouteMask::ANY);
    r.kemi("siputils", "uri_param_rm", &[S], RetType::Int, uri_param_rm)
        .native("uri_param_rm", RouteMask::ANY);
    r.native("get_uri_param", &[S, S], RouteMask::ANY, get_uri_param)
        .hints(&[Plain, PvName]);
    r.native("tel2sip", &[S, S, S], RouteMask::ANY, tel2sip)
        .hints(&[Plain, Plain, PvName]);
    r.native("set_uri_user", &[S, S], RouteMask::ANY, |c, a| {
        set_uri_part(c, a, false)
    })
    .hints(&[PvName, Plain]);
    r.native("set_uri_host", &[S, S], RouteMask::ANY, |c, a| {
        set_uri_part(c, a, true)
    })
    .hints(&[PvName, Plain]);
    r.kemi(
        "siputils",
        "options_reply",
        &[],
        RetType::Int,
        options_reply,
    )
    .native("options_reply", RouteMask::REQUEST);
}

fn set_pv(c: &mut Ctx, name: &[u8], v: Bytes) -> bool {
    let name = String::from_utf8_lossy(name);
    let spec = match vm::pv::parse_spec(&name, vm::Host::pv_registry(c)) {
        Ok(s) => s,
        Err(e) => {
            crate::klog!(L_ERR, "siputils", "bad variable {name}: {e}");
            return false;
        }
    };
    match vm::pv::set(c, &spec, &Value::Str(v)) {
        Ok(()) => true,
        Err(e) => {
            crate::klog!(L_ERR, "siputils", "cannot set {name}: {e}");
            false
        }
    }
}

pub(super) fn get_pv(c: &mut Ctx, name: &[u8]) -> Option<Value> {
    let name = String::from_utf8_lossy(name);
    let spec = vm::pv::parse_spec(&name, vm::Host::pv_registry(c)).ok()?;
    Some(vm::pv::get(c, &spec))
}

fn is_supported(c: &mut Ctx, a: &[Value]) -> Value {
    let tag = arg_bytes(a, 0);
    if !OPTION_TAGS.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
        crate::klog!(
            L_ERR,
            "siputils",
            "unsupported option tag {}",
            String::from_utf8_lossy(&tag)
        );
        return Value::Int(-1);
    }
    let found = c.msg.headers_of(HdrKind::Supported).any(|h| {
        h.value
            .split(|&x| x == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(&tag))
    });
    b(found)
}

/// Removes the first R-URI parameter with this name (any case); 1 also when absent.
fn uri_param_rm(c: &mut Ctx, a: &[Value]) -> Value {
    let name = arg_bytes(a, 0);
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return Value::Int(-1);
    };
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut removed = false;
    for p in u.params_raw.split(|&x| x == b';').filter(|p| !p.is_empty()) {
        let pname = p.split(|&x| x == b'=').next().unwrap_or(p).trim_ascii();
        if !removed && pname.eq_ignore_ascii_case(&name) {
            removed = true;
        } else {
            kept.push(p);
        }
    }
    if !removed {
        return Value::Int(1);
    }
    let params = kept.join(&b';');
    let mut parts = u.parts();
    parts.params = &params;
    c.msg.set_ruri(Uri::build(&parts));
    Value::Int(1)
}

/// `get_uri_param(name, $pv)`: the R-URI parameter's value (names compared exactly).
fn get_uri_param(c: &mut Ctx, a: &[Value]) -> Value {
    let name = arg_bytes(a, 0);
    let val = match c.msg.parsed_ruri() {
        Ok(u) => match u.params.iter().find(|p| p.name[..] == name[..]) {
            Some(p) => p.value.clone().unwrap_or_default(),
            None => return Value::Int(-1),
        },
        Err(_) => return Value::Int(-1),
    };
    b(set_pv(c, &arg_bytes(a, 1), val))
}

/// `tel2sip(uri, host, $pv)`: 2 when the URI is not `tel:`; visual separators are dropped
/// from the number (not from the parameters) and everything is lowercased.
fn tel2sip(c: &mut Ctx, a: &[Value]) -> Value {
    let (uri, host) = (arg_bytes(a, 0), arg_bytes(a, 1));
    if uri.len() < 4 || !uri[..4].eq_ignore_ascii_case(b"tel:") {
        return Value::Int(2);
    }
    let mut out = Vec::with_capacity(uri.len() + host.len() + 16);
    out.extend_from_slice(b"sip:");
    let mut in_params = false;
    for &ch in &uri[4..] {
        in_params |= ch == b';';
        if in_params || !matches!(ch, b'-' | b'.' | b'(' | b')') {
            out.push(ch.to_ascii_lowercase());
        }
    }
    out.push(b'@');
    out.extend_from_slice(&host);
    out.extend_from_slice(b";user=phone");
    if Uri::parse_bytes(&out).is_err() {
        return Value::Int(-1);
    }
    b(set_pv(c, &arg_bytes(a, 2), Bytes::from(out)))
}

/// `set_uri_user($pv, user)` / `set_uri_host($pv, host)`: rewrites that part of the URI
/// held in the variable, textually as Kamailio does.
fn set_uri_part(c: &mut Ctx, a: &[Value], host: bool) -> Value {
    let pv = arg_bytes(a, 0);
    let value = arg_bytes(a, 1);
    let uri = match get_pv(c, &pv) {
        Some(Value::Str(s)) if !s.is_empty() => s,
        _ => {
            crate::klog!(L_ERR, "siputils", "missing uri value");
            return Value::Int(-1);
        }
    };
    let Some(colon) = uri.iter().position(|&x| x == b':') else {
        crate::klog!(L_ERR, "siputils", "uri does not contain ':' character");
        return Value::Int(-1);
    };
    let at = uri[colon + 1..]
        .iter()
        .position(|&x| x == b'@')
        .map(|p| p + colon + 1);
    let mut out = Vec::with_capacity(uri.len() + value.len() + 1);
    if host {
        if value.is_empty() {
            crate::klog!(L_ERR, "siputils", "hostpart of uri cannot be empty");
            return Value::Int(-1);
        }
        let next = at.map_or(colon + 1, |p| p + 1);
        let hlen = uri[next..]
            .iter()
            .position(|&x| matches!(x, b':' | b';' | b'?'))
            .unwrap_or(uri.len() - next);
        if hlen == 0 {
            crate::klog!(L_ERR, "siputils", "uri does not contain host");
            return Value::Int(-1);
        }
        out.extend_from_slice(&uri[..next]);
        out.extend_from_slice(&value);
        out.extend_from_slice(&uri[next + hlen..]);
    } else {
        out.extend_from_slice(&uri[..=colon]);
        match at {
            None if value.is_empty() => return Value::Int(1),
            None => {
                out.extend_from_slice(&value);
                out.push(b'@');
                out.extend_from_slice(&uri[colon + 1..]);
            }
            Some(at) => {
                if !value.is_empty() {
                    out.extend_from_slice(&value);
                    out.extend_from_slice(&uri[at..]);
                } else {
                    out.extend_from_slice(&uri[at + 1..]);
                }
            }
        }
    }
    set_pv(c, &pv, Bytes::from(out));
    Value::Int(1)
}

/// Answers an OPTIONS request sent to the server itself (no R-URI user) with 200 and the
/// `options_*` headers.
fn options_reply(c: &mut Ctx, _: &[Value]) -> Value {
    if c.msg.method() != Method::Options {
        crate::klog!(L_ERR, "siputils", "called for non-OPTIONS request");
        return Value::Int(-1);
    }
    match c.msg.parsed_ruri() {
        Ok(u) if u.user.is_empty() => {}
        Ok(_) => {
            crate::klog!(L_ERR, "siputils", "ruri contains username");
            return Value::Int(-1);
        }
        Err(_) => {
            crate::klog!(L_ERR, "siputils", "ERROR while parsing the R-URI");
            return Value::Int(-1);
        }
    }
    let hdrs = c
        .core
        .m
        .siputils
        .options_hdrs
        .get()
        .cloned()
        .unwrap_or_else(|| {
            Bytes::from_static(
                b"Accept: */*\r\nAccept-Encoding: \r\nAccept-Language: en\r\nSupported: \r\n",
            )
        });
    c.reply_hdrs.push(hdrs);
    if crate::modules::sl::freply(c, 200, b"OK") == -1 {
        return Value::Int(-1);
    }
    Value::Int(1)
}

#[cfg(test)]
mod tests {
    use super::OPTION_TAGS;

    #[test]
    fn option_tags_are_lowercase() {
        assert!(OPTION_TAGS.iter().all(|t| t.to_ascii_lowercase() == *t));
    }
}
