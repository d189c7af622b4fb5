//! Pseudo-variables that read (and some that write) the SIP message and its context:
//! `$ru`, `$fu`, `$si`, `$hdr(...)`, `$du`, flags, time, ...

use super::util::{Idx, index_of, name_of, parse_int, str_or_null, value_bytes};
use crate::ctx::Ctx;
use crate::sip::{Edit, HdrKind, NameAddr, Scheme, Uri, kind_of, msg::FirstLine};
use crate::transport::Proto;
use bytes::Bytes;
use vm::Value;
use vm::pv::{PvError, PvParam, PvSpec};

// ---------------------------------------------------------------- request line / R-URI

pub fn ruri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.msg.ruri() {
        // An HTTP request's URL is not a SIP URI ($hu has it).
        Some(_) if ctx.msg.version().starts_with(b"HTTP/") => Value::Null,
        Some(u) if ctx.msg.is_request() => Value::Str(u.clone()),
        _ => Value::Null,
    }
}

pub fn set_ruri(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    let b = req_str(ctx, v)?;
    if Uri::parse(&b).is_err() {
        return Err(PvError::BadValue("invalid R-URI".into()));
    }
    ctx.msg.set_ruri(b);
    ctx.ruri_q = -1;
    Ok(())
}

fn req_str(ctx: &Ctx, v: &Value) -> Result<Bytes, PvError> {
    if !ctx.msg.is_request() {
        return Err(PvError::Failed("not a request".into()));
    }
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(i) => Ok(Bytes::from(i.to_string())),
        Value::Null => Err(PvError::BadValue("null".into())),
    }
}

/// Which part of a URI a pseudo-variable reads.
#[derive(Clone, Copy)]
enum UriPart {
    User,
    Host,
    Port,
    Transport,
    Scheme,
    UserLen,
}

fn uri_part(u: &Uri, part: UriPart) -> Value {
    match part {
        UriPart::User => str_or_null(&u.user),
        UriPart::Host => str_or_null(&u.host),
        UriPart::Port => match u.port {
            Some(p) => Value::Int(p as i64),
            None if u.scheme == Scheme::Sips || is_tls(u) => Value::Int(5061),
            None => Value::Int(5060),
        },
        UriPart::Transport => match u.param(b"transport").and_then(|p| p.value.clone()) {
            Some(t) => Value::Str(t),
            None => Value::from("udp"),
        },
        UriPart::Scheme => Value::from(match u.scheme {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Tels => "tels",
            Scheme::Other => return Value::Str(u.scheme_raw.clone()),
        }),
        UriPart::UserLen => Value::Int(u.user.len() as i64),
    }
}

fn is_tls(u: &Uri) -> bool {
    u.param(b"transport")
        .and_then(|p| p.value.as_ref())
        .is_some_and(|t| t.eq_ignore_ascii_case(b"tls"))
}

fn ruri_part(ctx: &Ctx, part: UriPart) -> Value {
    if !ctx.msg.is_request() {
        return Value::Null;
    }
    match ctx.msg.parsed_ruri() {
        Ok(u) => uri_part(u, part),
        Err(_) => Value::Null,
    }
}

fn ouri_part(ctx: &Ctx, part: UriPart) -> Value {
    if !ctx.msg.is_request() {
        return Value::Null;
    }
    match ctx.msg.parsed_ruri_orig() {
        Ok(u) => uri_part(u, part),
        Err(_) => Value::Null,
    }
}

pub fn ruri_user(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ruri_part(ctx, UriPart::User)
}
pub fn ruri_host(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ruri_part(ctx, UriPart::Host)
}
pub fn ruri_port(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ruri_part(ctx, UriPart::Port)
}
pub fn ruri_transport(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ruri_part(ctx, UriPart::Transport)
}
pub fn ruri_scheme(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ruri_part(ctx, UriPart::Scheme)
}
pub fn ruri_user_len(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ruri_part(ctx, UriPart::UserLen)
}
pub fn ouri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.msg.ruri_orig() {
        Some(u) => Value::Str(u.clone()),
        None => Value::Null,
    }
}
pub fn ouri_user(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ouri_part(ctx, UriPart::User)
}
pub fn ouri_host(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ouri_part(ctx, UriPart::Host)
}
pub fn ouri_port(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ouri_part(ctx, UriPart::Port)
}
pub fn ouri_transport(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ouri_part(ctx, UriPart::Transport)
}
pub fn ouri_user_len(ctx: &mut Ctx, _: &PvSpec) -> Value {
    ouri_part(ctx, UriPart::UserLen)
}

/// Rebuilds the R-URI with one part replaced (`$rU = "x"`, `$rd = "h"`, `$rp = 5070`).
fn rewrite_ruri(ctx: &mut Ctx, part: UriPart, value: &[u8]) -> Result<(), PvError> {
    let u = ctx
        .msg
        .parsed_ruri()
        .map_err(|_| PvError::Failed("cannot parse R-URI".into()))?
        .clone();
    let mut parts = u.parts();
    match part {
        UriPart::User => parts.user = value,
        UriPart::Host => parts.host = value,
        _ => parts.port = value,
    }
    let nu = Uri::build(&parts);
    ctx.msg.set_ruri(nu);
    Ok(())
}

pub fn set_ruri_user(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    let b = match v {
        Value::Null => Bytes::new(),
        _ => req_str(ctx, v)?,
    };
    rewrite_ruri(ctx, UriPart::User, &b)
}

pub fn set_ruri_host(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    let b = req_str(ctx, v)?;
    if b.is_empty() {
        return Err(PvError::BadValue("empty host".into()));
    }
    rewrite_ruri(ctx, UriPart::Host, &b)
}

pub fn set_ruri_port(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    let b = match v {
        Value::Null => Bytes::new(),
        _ => req_str(ctx, v)?,
    };
    if !b.is_empty() && parse_int(&b).is_none_or(|p| !(0..=65535).contains(&p)) {
        return Err(PvError::BadValue("invalid port".into()));
    }
    rewrite_ruri(ctx, UriPart::Port, &b)
}

pub fn method(ctx: &mut Ctx, _: &PvSpec) -> Value {
    if ctx.msg.is_request() {
        Value::Str(ctx.msg.method_raw())
    } else {
        match ctx.msg.cseq() {
            Ok(c) => Value::Str(c.method.clone()),
            Err(_) => Value::Null,
        }
    }
}

pub fn method_id(ctx: &mut Ctx, _: &PvSpec) -> Value {
    let m = if ctx.msg.is_request() {
        ctx.msg.method()
    } else {
        match ctx.msg.cseq() {
            Ok(c) => crate::sip::Method::parse(&c.method),
            Err(_) => return Value::Null,
        }
    };
    Value::Int(m.bit() as i64)
}

pub fn version(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Str(ctx.msg.version().clone())
}

pub fn status(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.msg.status() {
        Some(c) => Value::Int(c as i64),
        None => Value::Null,
    }
}

pub fn reason(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.msg.reason() {
        Some(r) => Value::Str(r.clone()),
        None => Value::Null,
    }
}

pub fn msg_type(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(if ctx.msg.is_request() { 1 } else { 2 })
}

// ---------------------------------------------------------------- whole message, body

pub fn msg_buf(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Str(ctx.msg.buf().clone())
}

pub fn msg_len(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(ctx.msg.buf().len() as i64)
}

pub fn body(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Str(ctx.msg.body().clone())
}

pub fn body_len(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(ctx.msg.body().len() as i64)
}

pub fn content_length(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.msg.content_length() {
        Some(n) => Value::Int(n as i64),
        None => Value::Null,
    }
}

// ---------------------------------------------------------------- headers

fn hdr_value(ctx: &Ctx, kind: HdrKind) -> Value {
    match ctx.msg.header(kind) {
        Some(h) => Value::Str(h.value.clone()),
        None => Value::Null,
    }
}

pub fn callid(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_value(ctx, HdrKind::CallId)
}
pub fn content_type(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_value(ctx, HdrKind::ContentType)
}
pub fn user_agent(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_value(ctx, HdrKind::UserAgent)
}
pub fn rpid(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_value(ctx, HdrKind::RemotePartyId)
}

pub fn cseq_num(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.msg.cseq() {
        Ok(c) => Value::Str(Bytes::from(c.number.to_string())),
        Err(_) => Value::Null,
    }
}

pub fn cseq_body(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_value(ctx, HdrKind::CSeq)
}

/// `$ct`: the Contact header body (indexable over Contact header lines).
pub fn contact(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let idx = index_of(ctx, spec);
    header_by(ctx, HdrKind::Contact, b"Contact", idx)
}

/// Header lookup shared by `$hdr` and friends: by kind for known headers, by name for others
/// (`*` matches every header).
fn header_by(ctx: &Ctx, kind: HdrKind, name: &[u8], idx: Idx) -> Value {
    let star = name == b"*";
    let matches = |h: &&crate::sip::Header| {
        star || if kind != HdrKind::Other {
            h.kind == kind
        } else {
            crate::sip::hdr::same_name(&h.name, name)
        }
    };
    let hs: Vec<&crate::sip::Header> = ctx.msg.headers().iter().filter(matches).collect();
    if idx == Idx::All {
        if hs.is_empty() {
            return Value::Null;
        }
        let mut out = Vec::new();
        for (i, h) in hs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&h.value);
        }
        return Value::Str(Bytes::from(out));
    }
    match idx.position(hs.len()).and_then(|p| hs.get(p)) {
        Some(h) => Value::Str(h.value.clone()),
        None => Value::Null,
    }
}

pub fn parse_hdr_name(s: &str) -> Result<PvParam, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty header name".into());
    }
    if t != "*" && !t.bytes().all(crate::sip::scan::is_token) {
        return Err(format!("invalid header name '{t}'"));
    }
    Ok(PvParam::Str(Bytes::copy_from_slice(t.as_bytes())))
}

pub fn hdr(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(name) = name_of(ctx, &spec.param) else {
        return Value::Null;
    };
    let idx = index_of(ctx, spec);
    header_by(ctx, kind_of(&name), &name, idx)
}

pub fn hdr_count(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(name) = name_of(ctx, &spec.param) else {
        return Value::Int(0);
    };
    let kind = kind_of(&name);
    let star = &name[..] == b"*";
    let n = ctx
        .msg
        .headers()
        .iter()
        .filter(|h| {
            star || if kind != HdrKind::Other {
                h.kind == kind
            } else {
                crate::sip::hdr::same_name(&h.name, &name)
            }
        })
        .count();
    Value::Int(n as i64)
}

// ---------------------------------------------------------------- From / To

#[derive(Clone, Copy)]
enum AddrPart {
    Uri,
    User,
    Host,
    Display,
    Tag,
    UserLen,
}

fn addr_part(na: &NameAddr, part: AddrPart) -> Value {
    match part {
        AddrPart::Uri => Value::Str(na.uri_raw.clone()),
        AddrPart::User => str_or_null(&na.uri.user),
        AddrPart::Host => str_or_null(&na.uri.host),
        AddrPart::Display => str_or_null(&na.display),
        AddrPart::Tag => match na.tag() {
            Some(t) => Value::Str(t.clone()),
            None => Value::Null,
        },
        AddrPart::UserLen => Value::Int(na.uri.user.len() as i64),
    }
}

fn from_part(ctx: &Ctx, part: AddrPart) -> Value {
    match ctx.msg.from() {
        Ok(na) => addr_part(na, part),
        Err(_) => Value::Null,
    }
}

fn to_part(ctx: &Ctx, part: AddrPart) -> Value {
    match ctx.msg.to() {
        Ok(na) => addr_part(na, part),
        Err(_) => Value::Null,
    }
}

pub fn from_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    from_part(ctx, AddrPart::Uri)
}
pub fn from_user(ctx: &mut Ctx, _: &PvSpec) -> Value {
    from_part(ctx, AddrPart::User)
}
pub fn from_host(ctx: &mut Ctx, _: &PvSpec) -> Value {
    from_part(ctx, AddrPart::Host)
}
pub fn from_display(ctx: &mut Ctx, _: &PvSpec) -> Value {
    from_part(ctx, AddrPart::Display)
}
pub fn from_tag(ctx: &mut Ctx, _: &PvSpec) -> Value {
    from_part(ctx, AddrPart::Tag)
}
pub fn from_user_len(ctx: &mut Ctx, _: &PvSpec) -> Value {
    from_part(ctx, AddrPart::UserLen)
}
pub fn to_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    to_part(ctx, AddrPart::Uri)
}
pub fn to_user(ctx: &mut Ctx, _: &PvSpec) -> Value {
    to_part(ctx, AddrPart::User)
}
pub fn to_host(ctx: &mut Ctx, _: &PvSpec) -> Value {
    to_part(ctx, AddrPart::Host)
}
pub fn to_display(ctx: &mut Ctx, _: &PvSpec) -> Value {
    to_part(ctx, AddrPart::Display)
}
pub fn to_tag(ctx: &mut Ctx, _: &PvSpec) -> Value {
    to_part(ctx, AddrPart::Tag)
}
pub fn to_user_len(ctx: &mut Ctx, _: &PvSpec) -> Value {
    to_part(ctx, AddrPart::UserLen)
}

/// Replaces part of the From or To header through an edit, like Kamailio's pv setters.
fn set_addr(ctx: &mut Ctx, kind: HdrKind, part: AddrPart, v: &Value) -> Result<(), PvError> {
    let na = match kind {
        HdrKind::From => ctx.msg.from(),
        _ => ctx.msg.to(),
    }
    .map_err(|e| PvError::Failed(e.to_string()))?
    .clone();
    let new = value_bytes(v);
    let (start, end, data): (usize, usize, Bytes) = match part {
        AddrPart::Uri => {
            if Uri::parse(&new).is_err() {
                return Err(PvError::BadValue("invalid URI".into()));
            }
            let s = ctx
                .msg
                .offset_of(&na.uri_raw)
                .ok_or(PvError::Failed("no uri".into()))?;
            (s, s + na.uri_raw.len(), new)
        }
        AddrPart::User | AddrPart::Host => {
            let mut p = na.uri.parts();
            if let AddrPart::User = part {
                p.user = &new;
            } else {
                if new.is_empty() {
                    return Err(PvError::BadValue("empty host".into()));
                }
                p.host = &new;
            }
            let nu = Uri::build(&p);
            let s = ctx
                .msg
                .offset_of(&na.uri_raw)
                .ok_or(PvError::Failed("no uri".into()))?;
            (s, s + na.uri_raw.len(), nu)
        }
        AddrPart::Display => {
            let s = ctx
                .msg
                .offset_of(&na.raw)
                .ok_or(PvError::Failed("no header".into()))?;
            let body_start = s;
            // The display name is everything before the URI's '<' (or the URI itself when
            // there were no angle brackets, in which case they are added).
            let uri_off = ctx
                .msg
                .offset_of(&na.uri_raw)
                .ok_or(PvError::Failed("no uri".into()))?;
            let mut disp = Vec::new();
            if !new.is_empty() {
                if new.first() == Some(&b'"') {
                    disp.extend_from_slice(&new);
                } else {
                    disp.push(b'"');
                    disp.extend_from_slice(&new);
                    disp.push(b'"');
                }
                disp.push(b' ');
            }
            if na.angle {
                let lt = uri_off.saturating_sub(1);
                (body_start, lt, Bytes::from(disp))
            } else {
                disp.push(b'<');
                disp.extend_from_slice(&na.uri_raw);
                disp.push(b'>');
                (body_start, uri_off + na.uri_raw.len(), Bytes::from(disp))
            }
        }
        _ => return Err(PvError::ReadOnly),
    };
    ctx.msg.add_edit(Edit::replace(start, end, data));
    Ok(())
}

pub fn set_from_uri(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_addr(ctx, HdrKind::From, AddrPart::Uri, v)
}
pub fn set_from_user(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_addr(ctx, HdrKind::From, AddrPart::User, v)
}
pub fn set_from_host(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_addr(ctx, HdrKind::From, AddrPart::Host, v)
}
pub fn set_from_display(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_addr(ctx, HdrKind::From, AddrPart::Display, v)
}
pub fn set_to_uri(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_addr(ctx, HdrKind::To, AddrPart::Uri, v)
}
pub fn set_to_user(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_addr(ctx, HdrKind::To, AddrPart::User, v)
}
pub fn set_to_host(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_addr(ctx, HdrKind::To, AddrPart::Host, v)
}
pub fn set_to_display(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_addr(ctx, HdrKind::To, AddrPart::Display, v)
}

/// URI of the first name-addr in a header (`$ai`, `$di`, `$pu`, `$rt`).
fn hdr_addr(ctx: &Ctx, kind: HdrKind) -> Option<NameAddr> {
    let h = ctx.msg.header(kind)?;
    crate::sip::nameaddr::parse_list(ctx.msg.buf(), &h.value)
        .ok()?
        .into_iter()
        .next()
}

pub fn pai_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_addr(ctx, HdrKind::PAssertedIdentity).map_or(Value::Null, |n| Value::Str(n.uri_raw))
}
pub fn diversion_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_addr(ctx, HdrKind::Diversion).map_or(Value::Null, |n| Value::Str(n.uri_raw))
}
pub fn refer_to_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_addr(ctx, HdrKind::ReferTo).map_or(Value::Null, |n| Value::Str(n.uri_raw))
}
pub fn ppi_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_addr(ctx, HdrKind::PPreferredIdentity).map_or(Value::Null, |n| Value::Str(n.uri_raw))
}
pub fn ppi_user(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_addr(ctx, HdrKind::PPreferredIdentity).map_or(Value::Null, |n| str_or_null(&n.uri.user))
}
pub fn ppi_host(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_addr(ctx, HdrKind::PPreferredIdentity).map_or(Value::Null, |n| str_or_null(&n.uri.host))
}
pub fn ppi_display(ctx: &mut Ctx, _: &PvSpec) -> Value {
    hdr_addr(ctx, HdrKind::PPreferredIdentity).map_or(Value::Null, |n| str_or_null(&n.display))
}

// ---------------------------------------------------------------- transport

/// An IP address as Kamailio prints it (IPv6 without brackets).
pub fn ip_text(ip: std::net::IpAddr) -> Bytes {
    Bytes::from(ip.to_string())
}

pub fn src_ip(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Str(ip_text(ctx.rcv.src.ip()))
}
pub fn src_port(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(ctx.rcv.src.port() as i64)
}
pub fn rcv_ip(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Str(ip_text(ctx.rcv.local.ip()))
}
pub fn rcv_port(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(ctx.rcv.local.port() as i64)
}

fn addr_uri(addr: std::net::SocketAddr, proto: Proto, with_transport: bool) -> Value {
    let host = match addr.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    let mut s = format!("sip:{host}:{}", addr.port());
    if with_transport || proto != Proto::Udp {
        s.push_str(";transport=");
        s.push_str(proto.as_str());
    }
    Value::from(s)
}

pub fn src_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    addr_uri(ctx.rcv.src, ctx.rcv.proto, false)
}
pub fn src_uri_full(ctx: &mut Ctx, _: &PvSpec) -> Value {
    addr_uri(ctx.rcv.src, ctx.rcv.proto, true)
}
pub fn rcv_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    addr_uri(ctx.rcv.local, ctx.rcv.proto, false)
}
pub fn rcv_uri_full(ctx: &mut Ctx, _: &PvSpec) -> Value {
    addr_uri(ctx.rcv.local, ctx.rcv.proto, true)
}

/// `$RAi`: the receiving socket's advertised address, else its own (as `$Ri`).
pub fn rcv_adv_ip(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match ctx
        .core
        .listeners
        .get(ctx.rcv.listener)
        .and_then(|l| l.advertise.as_ref())
    {
        Some((h, _)) => Value::from(h.as_str()),
        None => rcv_ip(ctx, spec),
    }
}

/// `$RAp`: the receiving socket's advertised port, else its own (as `$Rp`).
pub fn rcv_adv_port(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match ctx
        .core
        .listeners
        .get(ctx.rcv.listener)
        .and_then(|l| l.advertise.as_ref())
    {
        Some((_, p)) => Value::Int(*p as i64),
        None => rcv_port(ctx, spec),
    }
}

pub fn proto(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::from(ctx.rcv.proto.as_str())
}
pub fn proto_id(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(ctx.rcv.proto.id())
}

pub fn force_sock(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.force_socket.and_then(|i| ctx.core.listeners.get(i)) {
        Some(l) => Value::from(l.sock_str()),
        None => Value::Null,
    }
}

pub fn force_sock_name(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.force_socket.and_then(|i| ctx.core.listeners.get(i)) {
        Some(l) => match &l.name {
            Some(n) => Value::from(n.as_str()),
            None => Value::Null,
        },
        None => Value::Null,
    }
}

pub fn force_sock_port(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.force_socket.and_then(|i| ctx.core.listeners.get(i)) {
        Some(l) => Value::Int(l.addr.port() as i64),
        None => Value::Int(0),
    }
}

/// `$fs = "udp:1.2.3.4:5060"`: the socket to send from, which must be one of ours.
pub fn set_force_sock(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    if v.is_null() {
        ctx.force_socket = None;
        return Ok(());
    }
    let s = value_bytes(v);
    let text = String::from_utf8_lossy(&s);
    match crate::modules::core::find_socket(ctx.core, &text) {
        Some(i) => {
            ctx.force_socket = Some(i);
            Ok(())
        }
        None => Err(PvError::BadValue(format!("no socket '{text}'"))),
    }
}

pub fn set_force_sock_name(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    if v.is_null() {
        ctx.force_socket = None;
        return Ok(());
    }
    let name = value_bytes(v);
    match ctx
        .core
        .listeners
        .iter()
        .position(|l| l.name.as_deref().map(str::as_bytes) == Some(&name[..]))
    {
        Some(i) => {
            ctx.force_socket = Some(i);
            Ok(())
        }
        None => Err(PvError::BadValue("no socket with that name".into())),
    }
}

// ---------------------------------------------------------------- destination URI

pub fn dst_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match &ctx.dst_uri {
        Some(u) => Value::Str(u.clone()),
        None => Value::Null,
    }
}

pub fn set_dst_uri(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    match v {
        Value::Null => {
            ctx.dst_uri = None;
            Ok(())
        }
        _ => {
            let b = value_bytes(v);
            if b.is_empty() {
                ctx.dst_uri = None;
                return Ok(());
            }
            if Uri::parse(&b).is_err() {
                return Err(PvError::BadValue("invalid destination URI".into()));
            }
            ctx.dst_uri = Some(b);
            Ok(())
        }
    }
}

fn dst_part(ctx: &Ctx, part: UriPart) -> Value {
    let Some(d) = &ctx.dst_uri else {
        return Value::Null;
    };
    match Uri::parse(d) {
        Ok(u) => uri_part(&u, part),
        Err(_) => Value::Null,
    }
}

pub fn dst_host(ctx: &mut Ctx, _: &PvSpec) -> Value {
    dst_part(ctx, UriPart::Host)
}
pub fn dst_port(ctx: &mut Ctx, _: &PvSpec) -> Value {
    dst_part(ctx, UriPart::Port)
}
pub fn dst_transport(ctx: &mut Ctx, _: &PvSpec) -> Value {
    dst_part(ctx, UriPart::Transport)
}

/// `$nh(u|U|d|p|P)`: the next hop, `$du` when set, else the R-URI.
pub fn parse_nh_name(s: &str) -> Result<PvParam, String> {
    match s.trim() {
        "u" => Ok(PvParam::Int(0)),
        "U" => Ok(PvParam::Int(1)),
        "d" => Ok(PvParam::Int(2)),
        "p" => Ok(PvParam::Int(3)),
        "P" => Ok(PvParam::Int(4)),
        o => Err(format!("unknown $nh name '{o}'")),
    }
}

pub fn next_hop(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let which = match spec.param {
        PvParam::Int(i) => i,
        _ => 0,
    };
    let raw = match &ctx.dst_uri {
        Some(d) => d.clone(),
        None => match ctx.msg.ruri() {
            Some(r) => r.clone(),
            None => return Value::Null,
        },
    };
    if which == 0 {
        return Value::Str(raw);
    }
    let Ok(u) = Uri::parse(&raw) else {
        return Value::Null;
    };
    uri_part(
        &u,
        match which {
            1 => UriPart::User,
            2 => UriPart::Host,
            3 => UriPart::Port,
            _ => UriPart::Transport,
        },
    )
}

// ---------------------------------------------------------------- flags

pub fn mflags(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int((ctx.flags & 0xffff_ffff) as i64)
}
pub fn mflags_hex(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::from(format!("{:08X}", ctx.flags & 0xffff_ffff))
}
pub fn set_mflags(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    ctx.flags = flags_value(v)?;
    Ok(())
}
pub fn bflags(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int((ctx.bflags & 0xffff_ffff) as i64)
}
pub fn bflags_hex(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::from(format!("{:08X}", ctx.bflags & 0xffff_ffff))
}
pub fn set_bflags(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    ctx.bflags = flags_value(v)?;
    Ok(())
}
pub fn sflags(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int((ctx.sflags & 0xffff_ffff) as i64)
}
pub fn sflags_hex(ctx: &mut Ctx, _: &PvSpec) -> Value {
    Value::from(format!("{:08X}", ctx.sflags & 0xffff_ffff))
}
pub fn set_sflags(ctx: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    ctx.sflags = flags_value(v)?;
    Ok(())
}

fn flags_value(v: &Value) -> Result<u64, PvError> {
    match v {
        Value::Int(i) => Ok(*i as u32 as u64),
        _ => Err(PvError::BadValue("flags need an integer".into())),
    }
}

/// `$Mf(n)`, `$Bf(n)`, `$Sf(n)`: one flag by number.
pub fn parse_flag_name(s: &str) -> Result<PvParam, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n < 32 => Ok(PvParam::Int(n as i64)),
        _ => Err(format!("invalid flag number '{s}'")),
    }
}

fn flag_no(spec: &PvSpec) -> u32 {
    match spec.param {
        PvParam::Int(i) => i as u32,
        _ => 0,
    }
}

pub fn mflag(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    Value::Int(((ctx.flags >> flag_no(spec)) & 1) as i64)
}
pub fn bflag(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    Value::Int(((ctx.bflags >> flag_no(spec)) & 1) as i64)
}
pub fn sflag(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    Value::Int(((ctx.sflags >> flag_no(spec)) & 1) as i64)
}

fn set_bit(word: &mut u64, bit: u32, v: &Value) -> Result<(), PvError> {
    match v.as_int() {
        Some(0) => *word &= !(1u64 << bit),
        Some(_) => *word |= 1u64 << bit,
        None => return Err(PvError::BadValue("flag value needs an integer".into())),
    }
    Ok(())
}

pub fn set_mflag(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_bit(&mut ctx.flags, flag_no(spec), v)
}
pub fn set_bflag(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_bit(&mut ctx.bflags, flag_no(spec), v)
}
pub fn set_sflag(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    set_bit(&mut ctx.sflags, flag_no(spec), v)
}

// ---------------------------------------------------------------- branches

/// `$br`: the URI of the first additional branch.
pub fn first_branch(ctx: &mut Ctx, _: &PvSpec) -> Value {
    match ctx.branches.first() {
        Some(b) => Value::Str(b.uri.clone()),
        None => Value::Null,
    }
}

/// `$bR`: every additional branch URI, comma separated (Kamailio's `print_dset` form).
pub fn all_branches(ctx: &mut Ctx, _: &PvSpec) -> Value {
    if ctx.branches.is_empty() {
        return Value::Null;
    }
    let mut out = Vec::new();
    for (i, b) in ctx.branches.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'<');
        out.extend_from_slice(&b.uri);
        out.push(b'>');
        if b.q >= 0 {
            out.extend_from_slice(format!(";q={}", crate::modules::core::q_text(b.q)).as_bytes());
        }
    }
    Value::Str(Bytes::from(out))
}

pub fn parse_branch_name(s: &str) -> Result<PvParam, String> {
    let n = match s.trim() {
        "uri" => 0,
        "dst_uri" => 1,
        "path" => 2,
        "q" => 3,
        "send_socket" => 4,
        "count" => 5,
        "flags" => 6,
        "ruid" => 7,
        "location_ua" => 8,
        o => return Err(format!("unknown $branch attribute '{o}'")),
    };
    Ok(PvParam::Int(n))
}

pub fn branch_attr(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let attr = match spec.param {
        PvParam::Int(i) => i,
        _ => 0,
    };
    let idx = index_of(ctx, spec);
    let Some(b) = idx
        .position(ctx.branches.len())
        .and_then(|p| ctx.branches.get(p))
    else {
        // Kamailio: even `count` is null when the indexed branch does not exist.
        return Value::Null;
    };
    if attr == 5 {
        return Value::Int(ctx.branches.len() as i64);
    }
    let opt = |o: &Option<Bytes>| o.clone().map_or(Value::Null, Value::Str);
    match attr {
        0 => Value::Str(b.uri.clone()),
        1 => opt(&b.dst_uri),
        2 => opt(&b.path),
        // The q value as Kamailio stores it (times 1000), an integer.
        3 => {
            if b.q < 0 {
                Value::Null
            } else {
                Value::Int(i64::from(b.q))
            }
        }
        4 => match b.force_socket.and_then(|i| ctx.core.listeners.get(i)) {
            Some(l) => Value::from(l.sock_str()),
            None => Value::Null,
        },
        6 => Value::Int((b.flags & 0xffff_ffff) as i64),
        7 => opt(&b.ruid),
        8 => opt(&b.location_ua),
        _ => Value::Null,
    }
}

pub fn set_branch_attr(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let attr = match spec.param {
        PvParam::Int(i) => i,
        _ => 0,
    };
    let idx = index_of(ctx, spec);
    let n = ctx.branches.len();
    let Some(p) = idx.position(n) else {
        return Err(PvError::Failed("no such branch".into()));
    };
    let core = ctx.core;
    let Some(b) = ctx.branches.get_mut(p) else {
        return Err(PvError::Failed("no such branch".into()));
    };
    let bytes = || match v {
        Value::Null => None,
        v => Some(value_bytes(v)),
    };
    match attr {
        0 => match bytes() {
            Some(u) if Uri::parse(&u).is_ok() => b.uri = u,
            _ => return Err(PvError::BadValue("invalid URI".into())),
        },
        1 => b.dst_uri = bytes(),
        2 => b.path = bytes(),
        3 => {
            b.q = match v {
                Value::Null => -1,
                Value::Int(i) => (*i as i32).clamp(0, 1000),
                Value::Str(s) => crate::modules::core::parse_q(s).unwrap_or(-1),
            }
        }
        4 => {
            b.force_socket = match bytes() {
                None => None,
                Some(s) => Some(
                    crate::modules::core::find_socket(core, &String::from_utf8_lossy(&s))
                        .ok_or(PvError::BadValue("unknown socket".into()))?,
                ),
            }
        }
        6 => b.flags = flags_value(v)?,
        7 => b.ruid = bytes(),
        8 => b.location_ua = bytes(),
        _ => return Err(PvError::ReadOnly),
    }
    Ok(())
}

// ---------------------------------------------------------------- authentication

pub fn parse_auth_name(s: &str) -> Result<PvParam, String> {
    Ok(PvParam::Str(Bytes::copy_from_slice(s.trim().as_bytes())))
}

/// Reads one attribute of the first digest credentials (Authorization first, then
/// Proxy-Authorization), selected by the class name the spec was registered with.
fn auth_attr(ctx: &Ctx, attr: u8) -> Value {
    let mut creds = ctx.msg.credentials(HdrKind::Authorization);
    if creds.is_empty() {
        creds = ctx.msg.credentials(HdrKind::ProxyAuthorization);
    }
    let Some((_, c)) = creds.into_iter().next() else {
        return Value::Null;
    };
    let opt = |o: Option<Bytes>| o.map_or(Value::Null, Value::Str);
    match attr {
        b'u' => opt(c.username.clone()),
        b'r' => opt(c.realm.clone()),
        b'U' => {
            let (user, _) = c.user_and_domain();
            Value::Str(user)
        }
        b'd' => {
            let (_, dom) = c.user_and_domain();
            match dom {
                Some(d) => Value::Str(d),
                None => opt(c.realm.clone()),
            }
        }
        b'i' => opt(c.uri.clone()),
        b'a' => opt(c.algorithm.clone()),
        b'n' => opt(c.nonce.clone()),
        b'c' => opt(c.cnonce.clone()),
        b'R' => opt(c.response.clone()),
        b'o' => opt(c.opaque.clone()),
        _ => Value::Null,
    }
}

pub fn auth_user(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'u')
}
pub fn auth_realm(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'r')
}
pub fn auth_user_part(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'U')
}
pub fn auth_domain(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'd')
}
pub fn auth_uri(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'i')
}
pub fn auth_algorithm(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'a')
}
pub fn auth_nonce(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'n')
}
pub fn auth_cnonce(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'c')
}
pub fn auth_response(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'R')
}
pub fn auth_opaque(ctx: &mut Ctx, _: &PvSpec) -> Value {
    auth_attr(ctx, b'o')
}

// ---------------------------------------------------------------- Via

pub fn parse_via_name(s: &str) -> Result<PvParam, String> {
    let n = match s.trim() {
        "host" => 0,
        "port" => 1,
        "proto" => 2,
        "protocol" => 3,
        "branch" => 4,
        "received" => 5,
        "rport" => 6,
        "i" => 7,
        "alias" => 8,
        o => return Err(format!("unknown via attribute '{o}'")),
    };
    Ok(PvParam::Int(n))
}

fn via_attr(via: Option<&crate::sip::Via>, spec: &PvSpec) -> Value {
    let Some(v) = via else {
        return Value::Null;
    };
    let param = |name: &[u8]| match v.param(name) {
        Some(p) => p.value.clone().map_or(Value::from(""), Value::Str),
        None => Value::Null,
    };
    match spec.param {
        PvParam::Int(0) => Value::Str(v.host.clone()),
        PvParam::Int(1) => Value::Int(v.port.unwrap_or(5060) as i64),
        PvParam::Int(2) => Value::Str(v.transport.clone()),
        PvParam::Int(3) => Value::from(format!(
            "{}/{}",
            String::from_utf8_lossy(&v.protocol),
            String::from_utf8_lossy(&v.version)
        )),
        PvParam::Int(4) => param(b"branch"),
        PvParam::Int(5) => param(b"received"),
        PvParam::Int(6) => param(b"rport"),
        PvParam::Int(7) => param(b"i"),
        PvParam::Int(8) => param(b"alias"),
        _ => Value::Null,
    }
}

pub fn via0(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    via_attr(ctx.msg.vias().ok().and_then(|v| v.first()), spec)
}
pub fn via1(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    via_attr(ctx.msg.vias().ok().and_then(|v| v.get(1)), spec)
}
pub fn via_last(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    via_attr(ctx.msg.vias().ok().and_then(|v| v.last()), spec)
}

// ---------------------------------------------------------------- misc

/// `$K(name)`: Kamailio's constants.
pub fn parse_const_name(s: &str) -> Result<PvParam, String> {
    let v = match s.trim() {
        "IPv4" => 2,
        "IPv6" => 10,
        "UDP" => 1,
        "TCP" => 2,
        "TLS" => 3,
        "SCTP" => 4,
        "WS" => 5,
        "WSS" => 6,
        o => return Err(format!("unknown $K name '{o}'")),
    };
    Ok(PvParam::Int(v))
}

pub fn constant(_: &mut Ctx, spec: &PvSpec) -> Value {
    match spec.param {
        PvParam::Int(i) => Value::Int(i),
        _ => Value::Null,
    }
}

/// `$expires(min)` / `$expires(max)`: over the Expires header and Contact expires params.
pub fn parse_expires_name(s: &str) -> Result<PvParam, String> {
    match s.trim() {
        "min" => Ok(PvParam::Int(0)),
        "max" => Ok(PvParam::Int(1)),
        o => Err(format!("unknown $expires name '{o}'")),
    }
}

pub fn expires(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let want_max = matches!(spec.param, PvParam::Int(1));
    let mut vals: Vec<u32> = Vec::new();
    if let Ok(Some(e)) = ctx.msg.expires() {
        vals.push(e);
    }
    if let Ok(Some(crate::sip::Contacts::List(cs))) = ctx.msg.contacts() {
        for c in cs {
            if let Some(e) = c
                .param(b"expires")
                .and_then(|p| p.value.as_ref())
                .and_then(|v| parse_int(v))
            {
                vals.push(e.clamp(0, u32::MAX as i64) as u32);
            }
        }
    }
    let r = if want_max {
        vals.iter().max()
    } else {
        vals.iter().min()
    };
    match r {
        Some(v) => Value::Int(*v as i64),
        None => Value::Null,
    }
}

pub fn first_line_is_request(ctx: &Ctx) -> bool {
    matches!(ctx.msg.first_line(), FirstLine::Request { .. })
}

// ---------------------------------------------------------------- onsend_route

pub fn parse_snd_name(s: &str) -> Result<PvParam, String> {
    let n = match s.trim() {
        "ip" => 0,
        "port" => 1,
        "proto" => 2,
        "af" => 3,
        "len" => 4,
        "buf" => 5,
        "sip" => 6,
        "sport" => 7,
        o => return Err(format!("unknown $snd name '{o}'")),
    };
    Ok(PvParam::Int(n))
}

/// `$snd(ip|port|proto|af|len|buf|sip|sport)`: the destination and data in `onsend_route`.
pub fn snd(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(s) = &ctx.snd else {
        return Value::Null;
    };
    match spec.param {
        PvParam::Int(0) => Value::Str(ip_text(s.dst.addr.ip())),
        PvParam::Int(1) => Value::Int(s.dst.addr.port() as i64),
        // Oracle: Kamailio gives the protocol id (udp = 1) and the address family number.
        PvParam::Int(2) => Value::Int(s.dst.proto.id()),
        PvParam::Int(3) => Value::Int(if s.dst.addr.is_ipv4() { 2 } else { 10 }),
        PvParam::Int(4) => Value::Int(s.buf.len() as i64),
        PvParam::Int(5) => Value::Str(s.buf.clone()),
        PvParam::Int(6) => s.local.map_or(Value::Null, |a| Value::Str(ip_text(a.ip()))),
        PvParam::Int(7) => s.local.map_or(Value::Null, |a| Value::Int(a.port() as i64)),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------- environment, constants

/// `$env(NAME)`: an environment variable of the server process.
pub fn env(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match super::util::name_of(ctx, &spec.param) {
        Some(n) => {
            std::env::var(String::from_utf8_lossy(&n).as_ref()).map_or(Value::Null, Value::from)
        }
        None => Value::Null,
    }
}

/// `$stat(name)`: a statistic's value by its name (as Kamailio, the name alone, in any
/// group; `group:name` also works); null when no loaded module declares it.
pub fn stat(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(n) = super::util::name_of(ctx, &spec.param) else {
        return Value::Null;
    };
    let n = String::from_utf8_lossy(&n);
    let stats = &ctx.core.stats;
    match stats.select(&n).first() {
        Some((id, _, _)) if n != "all" && !n.ends_with(':') => Value::Int(stats.get(*id) as i64),
        _ => Value::Null,
    }
}

pub fn null(_: &mut Ctx, _: &PvSpec) -> Value {
    Value::Null
}

pub fn parse_version_name(s: &str) -> Result<PvParam, String> {
    match s.trim() {
        "full" => Ok(PvParam::Int(0)),
        "hash" => Ok(PvParam::Int(1)),
        "num" => Ok(PvParam::Int(2)),
        o => Err(format!("unknown $version name '{o}'")),
    }
}

/// `$version(full|hash|num)`: this server's version.
pub fn version_info(_: &mut Ctx, spec: &PvSpec) -> Value {
    let v = env!("CARGO_PKG_VERSION");
    match spec.param {
        PvParam::Int(0) => Value::from(format!("ksr {v}")),
        PvParam::Int(1) => Value::from("-"),
        _ => Value::from(v),
    }
}
