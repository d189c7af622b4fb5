//! Kamailio's `nathelper` module: NAT detection (`nat_uac_test`), Contact and SDP fixing,
//! the `;alias=` Contact parameter and its use for in-dialog requests, the received AVP the
//! registrar stores.
//!
//! Keepalive pinging of registered contacts (`natping_interval`, `sipping_*`) needs the
//! location table; the parameters are accepted and a notice says pinging is not done.

pub mod sdp;

use super::core::actions::{arg_bytes, arg_int, b};
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::log::{L_DBG, L_ERR, L_WARN};
use crate::sip::{Contacts, NameAddr, Uri};
use crate::transport::Proto;
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr};
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "nathelper",
    params: &[
        ParamDef::int("natping_interval"),
        ParamDef::int("ping_nated_only"),
        ParamDef::str("nortpproxy_str"),
        ParamDef::str("received_avp"),
        ParamDef::str("force_socket"),
        ParamDef::str("sipping_from"),
        ParamDef::str("sipping_method"),
        ParamDef::int("sipping_bflag"),
        ParamDef::int("natping_disable_bflag"),
        ParamDef::int("natping_processes"),
        ParamDef::str("natping_socket"),
        ParamDef::int("keepalive_timeout"),
        ParamDef::int("udpping_from_path"),
        ParamDef::int("ignore_path"),
        ParamDef::int("append_sdp_oldmediaip"),
        ParamDef::int("filter_server_id"),
        ParamDef::int("nat_addr_mode"),
        ParamDef::str("alias_name"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// Shared settings from the module parameters.
pub struct NathelperState {
    /// AVP name (as `Ctx::avps` stores it) set by `fix_nated_register`.
    pub received_avp: Option<Bytes>,
    pub nortpproxy: Bytes,
    pub oldmediaip: bool,
    /// 1: also treat 192.0.0.0/24 as private.
    pub nat_addr_mode: i64,
    /// `alias` by default: the Contact/R-URI parameter name.
    pub alias: Bytes,
}

impl Default for NathelperState {
    fn default() -> Self {
        NathelperState {
            received_avp: None,
            nortpproxy: Bytes::from_static(b"a=nortpproxy:yes"),
            oldmediaip: true,
            nat_addr_mode: 1,
            alias: Bytes::from_static(b"alias"),
        }
    }
}

/// The AVP name of a `$avp(name)` spec (`s:`/`i:` prefixes as the pv module stores them).
pub fn avp_name_of(spec: &str) -> Result<Bytes, String> {
    let inner = spec
        .trim()
        .strip_prefix("$avp(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("'{spec}' is not an $avp(...) spec"))?;
    let name = if let Some(n) = inner.strip_prefix("s:") {
        n.to_string()
    } else if let Some(n) = inner.strip_prefix("i:") {
        let v: i64 = n
            .trim()
            .parse()
            .map_err(|_| format!("bad AVP id in '{spec}'"))?;
        format!("#{v}")
    } else {
        inner.to_string()
    };
    if name.is_empty() {
        return Err(format!("empty AVP name in '{spec}'"));
    }
    Ok(Bytes::from(name))
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.nathelper;
    if let Some(a) = p.str("received_avp").filter(|s| !s.is_empty()) {
        st.received_avp = Some(avp_name_of(&a)?);
    }
    if let Some(s) = p.str("nortpproxy_str") {
        st.nortpproxy = Bytes::from(s);
    }
    st.oldmediaip = p.int("append_sdp_oldmediaip", 1) != 0;
    st.nat_addr_mode = p.int("nat_addr_mode", 1);
    if let Some(a) = p.str("alias_name").filter(|s| !s.is_empty()) {
        st.alias = Bytes::from(a);
    }
    if p.int("natping_interval", 0) > 0 {
        crate::klog!(
            L_WARN,
            "nathelper",
            "natping_interval is set: keepalive pinging of registered contacts needs the location table and is not done by ksr"
        );
    }
    Ok(())
}

const REQ_REPLY_BRANCH_LOCAL: RouteMask = RouteMask(1 | 4 | 8 | 64 | 128);
const REQ_FAIL_REPLY_BRANCH_LOCAL: RouteMask = RouteMask(1 | 2 | 4 | 8 | 64 | 128);
const REQ_FAIL_REPLY_BRANCH: RouteMask = RouteMask(1 | 2 | 4 | 8 | 128);
const REQ_BRANCH_LOCAL: RouteMask = RouteMask(1 | 8 | 64);

fn register(r: &mut Registrar<'_>) {
    use vm::pv::{PvClass, PvSpec};
    r.pvs.add(PvClass {
        name: "rr_count",
        get: |c: &mut Ctx, _: &PvSpec| match c.msg.record_routes() {
            Ok(l) => Value::Int(l.len() as i64),
            Err(_) => Value::Null,
        },
        set: None,
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
    r.pvs.add(PvClass {
        name: "rr_top_count",
        get: |c: &mut Ctx, _: &PvSpec| match c.msg.record_routes() {
            Ok([]) => Value::Int(0),
            Ok([first, ..]) => {
                let r2 = first
                    .uri
                    .param(b"r2")
                    .and_then(|p| p.value.as_ref())
                    .is_some_and(|v| !v.is_empty());
                Value::Int(if r2 { 2 } else { 1 })
            }
            Err(_) => Value::Null,
        },
        set: None,
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
    r.kemi(
        "nathelper",
        "set_alias_to_pv",
        &[S],
        RetType::Int,
        |c, a| Value::Int(set_alias_to_pv(c, &arg_bytes(a, 0))),
    )
    .native("set_alias_to_pv", RouteMask::ANY)
    .hints(&[vm::ksr::ParamHint::PvName]);
    r.kemi("nathelper", "nat_uac_test", &[I], RetType::Int, |c, a| {
        Value::Int(nat_uac_test(c, arg_int(a, 0)))
    })
    .native("nat_uac_test", REQ_FAIL_REPLY_BRANCH_LOCAL);
    r.kemi(
        "nathelper",
        "fix_nated_contact",
        &[],
        RetType::Int,
        |c, _| Value::Int(fix_nated_contact(c)),
    )
    .native("fix_nated_contact", REQ_REPLY_BRANCH_LOCAL);
    r.kemi(
        "nathelper",
        "fix_nated_register",
        &[],
        RetType::Int,
        |c, _| Value::Int(fix_nated_register(c)),
    )
    .native("fix_nated_register", RouteMask::REQUEST);
    r.kemi(
        "nathelper",
        "set_contact_alias",
        &[],
        RetType::Int,
        |c, _| Value::Int(set_contact_alias(c, false)),
    )
    .native("set_contact_alias", REQ_REPLY_BRANCH_LOCAL);
    r.kemi(
        "nathelper",
        "set_contact_alias_trim",
        &[],
        RetType::Int,
        |c, _| Value::Int(set_contact_alias(c, true)),
    );
    r.native("set_contact_alias", &[I], REQ_REPLY_BRANCH_LOCAL, |c, a| {
        Value::Int(set_contact_alias(c, arg_int(a, 0) > 0))
    });
    r.kemi(
        "nathelper",
        "handle_ruri_alias",
        &[],
        RetType::Int,
        |c, _| Value::Int(handle_ruri_alias(c, 0)),
    )
    .native("handle_ruri_alias", REQ_BRANCH_LOCAL);
    r.kemi(
        "nathelper",
        "handle_ruri_alias_mode",
        &[I],
        RetType::Int,
        |c, a| Value::Int(handle_ruri_alias(c, arg_int(a, 0))),
    );
    r.native("handle_ruri_alias", &[I], REQ_BRANCH_LOCAL, |c, a| {
        Value::Int(handle_ruri_alias(c, arg_int(a, 0)))
    });
    r.kemi("nathelper", "is_rfc1918", &[S], RetType::Int, |c, a| {
        let ip = arg_bytes(a, 0);
        if ip.is_empty() {
            crate::klog!(L_ERR, "nathelper", "invalid address parameter");
            return Value::Int(-2);
        }
        b(is_private_text(c, &ip) == Some(true))
    })
    .native("is_rfc1918", RouteMask::ANY);
    r.kemi(
        "nathelper",
        "add_contact_alias",
        &[],
        RetType::Int,
        |c, _| Value::Int(add_contact_alias(c, None)),
    )
    .native("add_contact_alias", REQ_REPLY_BRANCH_LOCAL);
    r.kemi(
        "nathelper",
        "add_contact_alias_addr",
        &[S, S, S],
        RetType::Int,
        add_contact_alias_3,
    );
    r.native(
        "add_contact_alias",
        &[S, S, S],
        REQ_FAIL_REPLY_BRANCH,
        add_contact_alias_3,
    );
    r.kemi("nathelper", "add_rcv_param", &[I], RetType::Int, |c, a| {
        Value::Int(add_rcv_param(c, arg_int(a, 0) != 0))
    })
    .native("add_rcv_param", RouteMask::REQUEST);
    r.native("add_rcv_param", &[], RouteMask::REQUEST, |c, _| {
        Value::Int(add_rcv_param(c, false))
    });
    r.kemi("nathelper", "fix_nated_sdp", &[I], RetType::Int, |c, a| {
        Value::Int(fix_nated_sdp(c, arg_int(a, 0), None))
    })
    .native("fix_nated_sdp", REQ_FAIL_REPLY_BRANCH_LOCAL);
    r.kemi(
        "nathelper",
        "fix_nated_sdp_ip",
        &[I, S],
        RetType::Int,
        |c, a| {
            let ip = arg_bytes(a, 1);
            Value::Int(fix_nated_sdp(c, arg_int(a, 0), Some(ip)))
        },
    )
    .native("fix_nated_sdp", REQ_FAIL_REPLY_BRANCH_LOCAL);
}

// ---------------------------------------------------------------- address helpers

/// Private ranges nat_uac_test and is_rfc1918 check: RFC 1918, RFC 6598 (CGN), the
/// 192.0.0.0/29 of RFC 7335 and, with `nat_addr_mode=1`, all of 192.0.0.0/24.
pub fn is_private_v4(ip: Ipv4Addr, addr_mode: i64) -> bool {
    let h = u32::from(ip);
    let nets: [(u32, u32); 5] = [
        (0x0a00_0000, 8),
        (0xac10_0000, 12),
        (0xc0a8_0000, 16),
        (0x6440_0000, 10),
        (0xc000_0000, 29),
    ];
    let hit = |(net, bits): (u32, u32)| (h & (u32::MAX << (32 - bits))) == net;
    nets.into_iter().any(hit) || (addr_mode == 1 && hit((0xc000_0000, 24)))
}

/// `Some(private?)` for an IPv4 address text (inet_aton forms), `None` when it is not one.
fn is_private_text(c: &Ctx, txt: &[u8]) -> Option<bool> {
    let ip = inet_aton(txt)?;
    Some(is_private_v4(ip, c.core.m.nathelper.nat_addr_mode))
}

/// IPv4 text as inet_aton accepts it (dotted quads; fewer parts and hex/octal forms too).
fn inet_aton(txt: &[u8]) -> Option<Ipv4Addr> {
    let s = std::str::from_utf8(txt).ok()?;
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let num = |p: &str| -> Option<u32> {
        if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u32::from_str_radix(h, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u32::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let vals: Vec<u32> = parts.iter().map(|p| num(p)).collect::<Option<_>>()?;
    let n = vals.len();
    let mut out: u32 = 0;
    for (i, v) in vals.iter().enumerate() {
        if i + 1 < n {
            if *v > 255 {
                return None;
            }
            out |= v << (8 * (3 - i));
        } else {
            let bits = 8 * (4 - i as u32);
            if bits < 32 && *v >= (1u32 << bits) {
                return None;
            }
            out |= v;
        }
    }
    Some(Ipv4Addr::from(out))
}

/// The source IP as Kamailio prints it (IPv6 without brackets).
fn src_ip_text(c: &Ctx) -> String {
    c.rcv.src.ip().to_string()
}

/// `sip:IP:PORT[;transport=x]` for the source address (Kamailio's get_src_uri).
pub fn src_uri(c: &Ctx) -> Bytes {
    let ip = c.rcv.src.ip();
    let mut s = match ip {
        IpAddr::V6(v6) => format!("sip:[{v6}]:{}", c.rcv.src.port()),
        IpAddr::V4(v4) => format!("sip:{v4}:{}", c.rcv.src.port()),
    };
    if c.rcv.proto != Proto::Udp {
        s.push_str(";transport=");
        s.push_str(c.rcv.proto.as_str());
    }
    Bytes::from(s)
}

/// The first Contact of the message (Kamailio's get_contact_uri): `None` without one, for
/// `*`, or when it does not parse or has no host.
fn first_contact(c: &Ctx) -> Option<NameAddr> {
    match c.msg.contacts() {
        Ok(Some(Contacts::List(l))) => l.first().filter(|n| !n.uri.host.is_empty()).cloned(),
        _ => None,
    }
}

/// True when an edit already covers the Contact URI (Kamailio refuses to change it twice).
fn contact_changed(c: &Ctx, start: usize) -> bool {
    c.msg
        .edits()
        .iter()
        .any(|e| e.start <= start && start < e.end.max(e.start + 1))
}

fn contact_uri_span(c: &Ctx, n: &NameAddr) -> Option<(usize, usize)> {
    let s = c.msg.offset_of(&n.uri_raw)?;
    Some((s, s + n.uri_raw.len()))
}

// ---------------------------------------------------------------- nat_uac_test

const T_C_1918: i64 = 0x01;
const T_RCVD: i64 = 0x02;
const T_V_1918: i64 = 0x04;
const T_S_1918: i64 = 0x08;
const T_RPORT: i64 = 0x10;
const T_O_1918: i64 = 0x20;
const T_WS: i64 = 0x40;
const T_C_PORT: i64 = 0x80;
const T_SDP_CLINE: i64 = 0x100;
const T_DEST: i64 = 0x200;

/// 1 when any selected test says the sender is behind NAT, -1 otherwise.
pub fn nat_uac_test(c: &Ctx, tests: i64) -> i64 {
    let via = c.msg.via1().ok();
    if tests & T_RPORT != 0
        && let Some(v) = via
        && c.rcv.src.port() != v.port.unwrap_or(5060)
    {
        return 1;
    }
    if tests & T_RCVD != 0
        && let Some(v) = via
        && !via_host_is_src(c, &v.host)
    {
        return 1;
    }
    if tests & T_C_1918 != 0
        && let Some(n) = first_contact(c)
        && is_private_text(c, &n.uri.host) == Some(true)
    {
        return 1;
    }
    if tests & T_S_1918 != 0 && sdp_private(c) {
        return 1;
    }
    if tests & T_V_1918 != 0
        && let Some(v) = via
        && is_private_text(c, &v.host) == Some(true)
    {
        return 1;
    }
    if tests & T_O_1918 != 0
        && let IpAddr::V4(v4) = c.rcv.src.ip()
        && is_private_v4(v4, c.core.m.nathelper.nat_addr_mode)
    {
        return 1;
    }
    if tests & T_WS != 0 && matches!(c.rcv.proto, Proto::Ws | Proto::Wss) {
        return 1;
    }
    if tests & T_C_PORT != 0
        && let Some(n) = first_contact(c)
        && c.rcv.src.port() != n.uri.port.filter(|p| *p != 0).unwrap_or(5060)
    {
        return 1;
    }
    if tests & T_SDP_CLINE != 0 && sdp_cline_differs(c) {
        return 1;
    }
    if tests & T_DEST != 0 && destination_differs(c) {
        return 1;
    }
    -1
}

/// Kamailio's check_via_address without DNS: the Via host text equals the source IP text
/// (IPv6 also with brackets, case-insensitively).
fn via_host_is_src(c: &Ctx, host: &[u8]) -> bool {
    let ip = src_ip_text(c);
    if c.rcv.src.is_ipv6() {
        let h = host
            .strip_prefix(b"[")
            .and_then(|x| x.strip_suffix(b"]"))
            .unwrap_or(host);
        return h.eq_ignore_ascii_case(ip.as_bytes());
    }
    host == ip.as_bytes()
}

/// The SDP body when the message has one of type application/sdp (or no Content-Type).
fn sdp_body(c: &Ctx) -> Option<Bytes> {
    let body = c.msg.current_body();
    if sdp::trimmed_end(body) == 0 {
        return None;
    }
    if let Some(ct) = c.msg.content_type() {
        let main = ct.split(|x| *x == b';').next().unwrap_or(&[]);
        if !crate::sip::scan::trim_lws(main).eq_ignore_ascii_case(b"application/sdp") {
            return None;
        }
    }
    Some(body.clone())
}

fn sdp_private(c: &Ctx) -> bool {
    let Some(body) = sdp_body(c) else {
        return false;
    };
    for s in sdp::parse(&body) {
        for m in &s.media {
            let Some(a) = m.c.as_ref().or(s.c.as_ref()) else {
                break;
            };
            let txt = &body[a.start..a.end];
            if a.pf != sdp::Pf::V4 || sdp::is_null_addr(txt, a.pf) {
                break;
            }
            if is_private_text(c, txt) == Some(true) {
                return true;
            }
        }
    }
    false
}

fn sdp_cline_differs(c: &Ctx) -> bool {
    let Some(body) = sdp_body(c) else {
        return false;
    };
    let src = c.rcv.src.ip();
    let mut sessions = 0;
    let mut same = 0;
    for s in sdp::parse(&body) {
        let Some(a) = s.c.as_ref() else { break };
        match sdp::ip_of(&body[a.start..a.end]) {
            Some(ip) if ip == src => same += 1,
            Some(_) => {}
            None => return false,
        }
        sessions += 1;
    }
    sessions - same > 0
}

fn default_port(u: &Uri) -> u16 {
    match u.port {
        Some(p) if p != 0 => p,
        _ => {
            if u.transport().as_deref() == Some("tls") || u.scheme_raw.eq_ignore_ascii_case(b"sips")
            {
                5061
            } else {
                5060
            }
        }
    }
}

fn is_ws(u: &Uri) -> bool {
    matches!(u.transport().as_deref(), Some("ws") | Some("wss"))
}

/// Test 512: the destination differs from the R-URI (requests) or the second Via
/// (replies); a WebSocket target always counts.
fn destination_differs(c: &Ctx) -> bool {
    let (dhost, rhost): (Bytes, Bytes) = if c.msg.is_reply() {
        let Some(v2) = c.msg.via2() else { return false };
        let t = v2.transport.to_ascii_uppercase();
        if t == b"WS" || t == b"WSS" {
            return true;
        }
        if let Some(Some(rp)) = v2.rport() {
            let dport = std::str::from_utf8(rp)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0);
            let vport = v2
                .port
                .map(i64::from)
                .unwrap_or(if t == b"TLS" { 5061 } else { 5060 });
            if dport != 0 && dport != vport {
                return true;
            }
        }
        let Some(rcv) = v2.received() else {
            return false;
        };
        (rcv.clone(), v2.host.clone())
    } else {
        let Ok(ruri) = c.msg.parsed_ruri() else {
            return false;
        };
        let Some(du) = c.dst_uri.as_ref().filter(|d| !d.is_empty()) else {
            return is_ws(ruri);
        };
        let Ok(d) = Uri::parse(du) else { return false };
        if is_ws(&d) {
            return true;
        }
        if default_port(&d) != default_port(ruri) {
            return true;
        }
        (d.host.clone(), ruri.host.clone())
    };
    if dhost.is_empty() {
        return false;
    }
    match (sdp::ip_of(&dhost), sdp::ip_of(&rhost)) {
        (None, None) => !rhost.is_empty() && rhost != dhost,
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

// ---------------------------------------------------------------- Contact changes

fn fix_nated_contact(c: &mut Ctx) -> i64 {
    let Some(n) = first_contact(c) else { return -1 };
    let Some((s, e)) = contact_uri_span(c, &n) else {
        return -1;
    };
    if contact_changed(c, s) {
        crate::klog!(
            L_ERR,
            "nathelper",
            "you can't call fix_nated_contact twice, check your config!"
        );
        return -1;
    }
    let u = &n.uri;
    let raw: &[u8] = &n.uri_raw;
    let Some(hs) = c.msg.offset_of(&u.host).map(|o| o - s) else {
        return -1;
    };
    let he = match c.msg.offset_of(&u.port_raw) {
        Some(o) if !u.port_raw.is_empty() => o - s + u.port_raw.len(),
        _ => hs + u.host.len(),
    };
    let mut out = Vec::with_capacity(raw.len() + 24);
    out.extend_from_slice(&raw[..hs]);
    match c.rcv.src.ip() {
        IpAddr::V6(v6) => out.extend_from_slice(format!("[{v6}]").as_bytes()),
        IpAddr::V4(v4) => out.extend_from_slice(v4.to_string().as_bytes()),
    }
    out.push(b':');
    out.extend_from_slice(c.rcv.src.port().to_string().as_bytes());
    let rest = &raw[he.min(raw.len())..];
    // A maddr parameter makes no sense once the address is the source's: drop it.
    match find_uri_param(rest, b"maddr") {
        Some((ps, pe)) => {
            let mut keep = &rest[..ps];
            while let Some((&last, init)) = keep.split_last() {
                if last == b' ' || last == b'\t' || last == b';' {
                    keep = init;
                } else {
                    break;
                }
            }
            out.extend_from_slice(keep);
            out.extend_from_slice(&rest[pe..]);
        }
        None => out.extend_from_slice(rest),
    }
    c.msg
        .add_edit(crate::sip::Edit::replace(s, e, Bytes::from(out)));
    1
}

/// Span of `;name=value` (from the name to the value's end) inside URI text after the
/// host:port.
fn find_uri_param(rest: &[u8], name: &[u8]) -> Option<(usize, usize)> {
    let end = rest.iter().position(|c| *c == b'?').unwrap_or(rest.len());
    let mut i = 0;
    while i < end {
        if rest[i] == b';' {
            let ps = i + 1;
            let pe = rest[ps..end]
                .iter()
                .position(|c| *c == b';')
                .map(|x| ps + x)
                .unwrap_or(end);
            let p = &rest[ps..pe];
            let pname = p.split(|c| *c == b'=').next().unwrap_or(p);
            if crate::sip::scan::trim_lws(pname).eq_ignore_ascii_case(name) {
                return Some((ps, pe));
            }
            i = pe;
        } else {
            i += 1;
        }
    }
    None
}

/// `;alias=IP~PORT~PROTO` for the source address.
fn alias_param(c: &Ctx) -> Vec<u8> {
    let mut p = Vec::with_capacity(48);
    p.push(b';');
    p.extend_from_slice(&c.core.m.nathelper.alias);
    p.push(b'=');
    match c.rcv.src.ip() {
        IpAddr::V6(v6) => p.extend_from_slice(format!("[{v6}]").as_bytes()),
        IpAddr::V4(v4) => p.extend_from_slice(v4.to_string().as_bytes()),
    }
    p.extend_from_slice(format!("~{}~{}", c.rcv.src.port(), c.rcv.proto.id()).as_bytes());
    p
}

/// Position of the last `;alias=a~b~c` parameter that ends the URI (Kamailio's
/// uri_trim_rcv_alias): the URI without it.
fn trim_alias(uri: &[u8], alias: &[u8]) -> Option<Vec<u8>> {
    let mut pat = Vec::with_capacity(alias.len() + 2);
    pat.push(b';');
    pat.extend_from_slice(alias);
    pat.push(b'=');
    if uri.len() < pat.len() + 16 {
        return None;
    }
    let mut p = uri.len() - pat.len() - 11;
    let start = loop {
        if p <= 5 {
            return None;
        }
        if uri[p..].starts_with(&pat) {
            break p;
        }
        p -= 1;
    };
    let rest = &uri[start + pat.len()..];
    let t1 = rest.iter().position(|c| *c == b'~')?;
    let r2 = rest.get(t1 + 1..)?;
    if r2.is_empty() {
        return None;
    }
    let t2 = r2.iter().position(|c| *c == b'~')?;
    let after = r2.get(t2 + 2..)?;
    if r2.len() < t2 + 2 {
        return None;
    }
    if !after.is_empty() && after[0] != b';' {
        return None;
    }
    let skip_end = uri.len() - after.len();
    let mut out = uri[..start].to_vec();
    out.extend_from_slice(&uri[skip_end..]);
    Some(out)
}

fn set_contact_alias(c: &mut Ctx, trim: bool) -> i64 {
    let Some(n) = first_contact(c) else { return -1 };
    let Some((s, e)) = contact_uri_span(c, &n) else {
        return -1;
    };
    if contact_changed(c, s) {
        crate::klog!(
            L_ERR,
            "nathelper",
            "you can't update contact twice, check your config!"
        );
        return -1;
    }
    let alias = c.core.m.nathelper.alias.clone();
    let base = if trim {
        trim_alias(&n.uri_raw, &alias).unwrap_or_else(|| n.uri_raw.to_vec())
    } else {
        n.uri_raw.to_vec()
    };
    let mut out = Vec::with_capacity(base.len() + 48);
    let br = !n.angle;
    if br {
        out.push(b'<');
    }
    out.extend_from_slice(&base);
    out.extend_from_slice(&alias_param(c));
    if br {
        out.push(b'>');
    }
    c.msg
        .add_edit(crate::sip::Edit::replace(s, e, Bytes::from(out)));
    1
}

/// Inserts `;alias=...` after the Contact's host:port, adding `<...>` when needed.
fn insert_alias(c: &mut Ctx, n: &NameAddr, param: Vec<u8>) -> i64 {
    let Some((s, _)) = contact_uri_span(c, n) else {
        return -1;
    };
    if contact_changed(c, s) {
        crate::klog!(
            L_ERR,
            "nathelper",
            "you can't call add_contact_alias twice, check your config!"
        );
        return -1;
    }
    let u = &n.uri;
    let at = match c.msg.offset_of(&u.port_raw) {
        Some(o) if !u.port_raw.is_empty() => o + u.port_raw.len(),
        _ => match c.msg.offset_of(&u.host) {
            Some(o) => o + u.host.len(),
            None => return -1,
        },
    };
    // Kamailio looks for '<' in the whole first Contact header body.
    let Some(h) = c
        .msg
        .headers()
        .iter()
        .find(|h| h.kind == crate::sip::HdrKind::Contact)
        .cloned()
    else {
        return -1;
    };
    let has_lt = h.value.contains(&b'<');
    let mut param = param;
    if !has_lt {
        let Some(vs) = c.msg.offset_of(&h.value) else {
            return -1;
        };
        c.msg.add_edit(crate::sip::Edit::insert(
            vs,
            Bytes::from_static(b"<"),
            crate::sip::msg::ORDER_SCRIPT,
        ));
        param.push(b'>');
    }
    c.msg.add_edit(crate::sip::Edit::insert(
        at,
        Bytes::from(param),
        crate::sip::msg::ORDER_SCRIPT,
    ));
    1
}

fn add_contact_alias(c: &mut Ctx, _unused: Option<()>) -> i64 {
    match c.msg.contacts() {
        Ok(None) => return 2,
        Ok(Some(_)) => {}
        Err(_) => return -1,
    }
    let Some(n) = first_contact(c) else {
        crate::klog!(L_ERR, "nathelper", "failed to get contact uri");
        return -1;
    };
    if let Some(ip) = sdp::ip_of(&n.uri.host) {
        let port_same = match n.uri.port {
            Some(p) => p == c.rcv.src.port(),
            None => n.uri.port_raw.is_empty() && c.rcv.src.port() == 5060,
        };
        let proto = n.uri.transport().and_then(|t| Proto::parse(&t));
        if ip == c.rcv.src.ip() && port_same && proto == Some(c.rcv.proto) {
            crate::klog!(L_DBG, "nathelper", "no need to add alias param");
            return 2;
        }
    }
    let p = alias_param(c);
    insert_alias(c, &n, p)
}

fn add_contact_alias_3(c: &mut Ctx, a: &[Value]) -> Value {
    let ip = arg_bytes(a, 0);
    let port = arg_bytes(a, 1);
    let proto = arg_bytes(a, 2);
    match c.msg.contacts() {
        Ok(None) => return Value::Int(2),
        Ok(Some(_)) => {}
        Err(_) => return Value::Int(-1),
    }
    let Some(n) = first_contact(c) else {
        crate::klog!(L_ERR, "nathelper", "failed to get contact uri");
        return Value::Int(-1);
    };
    if sdp::ip_of(&ip).is_none() {
        crate::klog!(
            L_ERR,
            "nathelper",
            "ip param value {} is not valid IP address",
            String::from_utf8_lossy(&ip)
        );
        return Value::Int(-1);
    }
    let pn = std::str::from_utf8(&port)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0);
    if pn == 0 || pn > 65535 {
        crate::klog!(L_ERR, "nathelper", "port param value is not valid port");
        return Value::Int(-1);
    }
    let Some(pr) = std::str::from_utf8(&proto).ok().and_then(Proto::parse) else {
        crate::klog!(
            L_ERR,
            "nathelper",
            "proto param value {} is not a known protocol",
            String::from_utf8_lossy(&proto)
        );
        return Value::Int(-1);
    };
    let v6 = ip.contains(&b':') && ip.first() != Some(&b'[');
    // Kamailio 5.6 puts the '[' before ";alias=" (a bug); the bracket goes around the IP.
    let mut p = Vec::with_capacity(48);
    p.push(b';');
    p.extend_from_slice(&c.core.m.nathelper.alias);
    p.push(b'=');
    if v6 {
        p.push(b'[');
    }
    p.extend_from_slice(&ip);
    if v6 {
        p.push(b']');
    }
    p.push(b'~');
    p.extend_from_slice(&port);
    p.push(b'~');
    p.extend_from_slice(pr.id().to_string().as_bytes());
    Value::Int(insert_alias(c, &n, p))
}

/// Takes the first (mode 0) or last `;alias=` parameter out of the R-URI and sets `$du`
/// from it, as Kamailio 5.6 does (the address is copied as written: no brackets are added
/// around an IPv6 address). When the value is malformed Kamailio 5.6 has already turned its
/// first `~` into `:` inside the received R-URI; that corruption is not copied.
fn handle_ruri_alias(c: &mut Ctx, mode: i64) -> i64 {
    let Some(cur) = c.msg.ruri().cloned() else {
        return -1;
    };
    let Ok(u) = c.msg.parsed_ruri() else {
        crate::klog!(L_ERR, "nathelper", "while parsing Request-URI");
        return -1;
    };
    let params = u.params_raw.clone();
    if params.is_empty() {
        return 2;
    }
    let Some(params_off) = offset_in(&cur, &params) else {
        return -1;
    };
    let alias = c.core.m.nathelper.alias.clone();
    let mut name = alias.to_vec();
    name.push(b'=');
    // The scan runs over the parameters only (not the URI headers).
    let tail = &params[..];
    let mut rest = 0usize;
    let mut start = None;
    while tail.len() - rest > name.len() + 4 {
        if tail[rest..].starts_with(&name) {
            start = Some(rest);
            if mode == 0 {
                break;
            }
            rest += name.len();
        }
        match tail[rest..].iter().position(|c| *c == b';') {
            Some(i) => rest += i + 1,
            None => break,
        }
    }
    let Some(start) = start else {
        return 2;
    };
    let val = &tail[start + name.len()..];
    let Some(t1) = val.iter().position(|c| *c == b'~') else {
        crate::klog!(L_ERR, "nathelper", "no '~' in alias param value");
        return -1;
    };
    let Some(t2) = val[t1 + 1..]
        .iter()
        .position(|c| *c == b'~')
        .map(|x| t1 + 1 + x)
    else {
        crate::klog!(L_ERR, "nathelper", "no second '~' in alias param value");
        return -1;
    };
    let ip_port_len = t2;
    let mut du = b"sip:".to_vec();
    du.extend_from_slice(&val[..t1]);
    du.push(b':');
    du.extend_from_slice(&val[t1 + 1..t2]);
    let pc = val.get(t2 + 1).copied();
    if ip_port_len + 2 > val.len() || matches!(pc, Some(b';') | Some(b'?')) {
        crate::klog!(L_ERR, "nathelper", "no proto in alias param");
        return -1;
    }
    let proto = pc.unwrap_or(0).wrapping_sub(b'0');
    if proto != 1 {
        let name = match proto {
            2 => "tcp",
            3 => "tls",
            4 => "sctp",
            // Kamailio's proto_type_to_str names WSS "ws" too.
            5 | 6 => "ws",
            _ => {
                crate::klog!(L_ERR, "nathelper", "unknown proto in alias param");
                return -1;
            }
        };
        du.extend_from_slice(b";transport=");
        du.extend_from_slice(name.as_bytes());
    }
    if ip_port_len + 2 < val.len()
        && let Some(&nx) = val.get(t2 + 2)
        && nx != b';'
        && nx != b'?'
    {
        crate::klog!(L_ERR, "nathelper", "invalid alias param value");
        return -1;
    }
    c.dst_uri = Some(Bytes::from(du));
    // Drop ";alias=ip~port~p" from the R-URI.
    let abs = params_off + start;
    let cut_start = abs.saturating_sub(1);
    let cut_end = (abs + name.len() + ip_port_len + 2).min(cur.len());
    let mut nu = cur[..cut_start].to_vec();
    nu.extend_from_slice(&cur[cut_end..]);
    c.msg.set_ruri(Bytes::from(nu));
    1
}

/// Writes `sip:HOST:PORT;transport=PROTO` from the only Contact's `;alias=` into the
/// pseudo-variable named `pv`.
fn set_alias_to_pv(c: &mut Ctx, pv: &Bytes) -> i64 {
    let n = match c.msg.contacts() {
        Ok(Some(Contacts::List(l))) if l.len() == 1 => l[0].clone(),
        Ok(None) => return -1,
        _ => {
            crate::klog!(L_ERR, "nathelper", "Couldn't parse Contact Header");
            return -1;
        }
    };
    let text: &[u8] = &n.raw;
    let mut pat = b";".to_vec();
    pat.extend_from_slice(&c.core.m.nathelper.alias);
    pat.push(b'=');
    let limit = text.len().saturating_sub(pat.len() + 5);
    let Some(at) = (0..limit).find(|i| text[*i..].starts_with(&pat)) else {
        crate::klog!(L_ERR, "nathelper", "Alias sign couldn't be found");
        return -1;
    };
    let rest = &text[at + pat.len()..];
    let Some(t1) = rest.iter().position(|x| *x == b'~') else {
        crate::klog!(L_ERR, "nathelper", "No alias parameter found for host");
        return -1;
    };
    let host = &rest[..t1];
    let after = &rest[t1 + 1..];
    let Some(t2) = after.iter().position(|x| *x == b'~') else {
        crate::klog!(L_ERR, "nathelper", "Alias sign couldn't be found for proto");
        return -1;
    };
    let port = &after[..t2];
    let digits: Vec<u8> = after[t2 + 1..]
        .iter()
        .take_while(|x| x.is_ascii_digit())
        .copied()
        .collect();
    let proto = match std::str::from_utf8(&digits)
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
    {
        Some(1) => "udp",
        Some(2) => "tcp",
        Some(3) => "tls",
        Some(4) => "sctp",
        Some(5) | Some(6) => "ws",
        _ => "",
    };
    let mut uri = b"sip:".to_vec();
    uri.extend_from_slice(host);
    uri.push(b':');
    uri.extend_from_slice(port);
    uri.extend_from_slice(b";transport=");
    uri.extend_from_slice(proto.as_bytes());
    let Some(spec) = super::core::pvapi::spec(c, pv) else {
        return -1;
    };
    match vm::pv::set(c, &spec, &Value::Str(Bytes::from(uri))) {
        Ok(()) => 1,
        Err(e) => {
            crate::klog!(
                L_ERR,
                "nathelper",
                "Destination pseudo-variable is not writable: {e}"
            );
            -1
        }
    }
}

fn offset_in(whole: &Bytes, part: &[u8]) -> Option<usize> {
    let b = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    (p >= b && p + part.len() <= b + whole.len()).then(|| p - b)
}

fn fix_nated_register(c: &mut Ctx) -> i64 {
    let Some(name) = c.core.m.nathelper.received_avp.clone() else {
        return 1;
    };
    let uri = src_uri(c);
    c.avps.insert(0, (name, Value::Str(uri)));
    1
}

fn add_rcv_param(c: &mut Ctx, uri_param: bool) -> i64 {
    if uri_param && c.rcv.proto != Proto::Udp {
        crate::klog!(
            L_ERR,
            "nathelper",
            "adding received parameter to Contact URI works only for UDP"
        );
        return -1;
    }
    let uri = src_uri(c);
    let list = match c.msg.contacts() {
        Ok(Some(Contacts::List(l))) => l.clone(),
        Ok(_) => return 1,
        Err(_) => return -1,
    };
    for n in &list {
        let mut p = b";received=".to_vec();
        let at = if uri_param {
            p.extend_from_slice(&uri);
            match contact_uri_span(c, n) {
                Some((_, e)) => e,
                None => return -1,
            }
        } else {
            p.push(b'"');
            p.extend_from_slice(&uri);
            p.push(b'"');
            match c.msg.offset_of(&n.raw) {
                Some(o) => o + n.raw.len(),
                None => return -1,
            }
        };
        c.msg.add_edit(crate::sip::Edit::insert(
            at,
            Bytes::from(p),
            crate::sip::msg::ORDER_SCRIPT,
        ));
    }
    1
}

// ---------------------------------------------------------------- fix_nated_sdp

const ADD_ADIRECTION: i64 = 0x01;
const FIX_MEDIP: i64 = 0x02;
const ADD_ANORTPPROXY: i64 = 0x04;
const FIX_ORGIP: i64 = 0x08;

/// Finds lines starting with `prefix` and returns the address after their IP4/IP6 token;
/// `Err(())` when a line has no address and `can_omit` is false.
fn prefixed_addrs(body: &[u8], prefix: &[u8], can_omit: bool) -> Result<Vec<sdp::Addr>, ()> {
    let mut out = Vec::new();
    for (s, e) in sdp::lines(body) {
        if !body[s..e].starts_with(prefix) {
            continue;
        }
        match sdp::line_addr(body, s + prefix.len(), e) {
            Some(a) if a.start < a.end => out.push(a),
            _ if can_omit => {}
            _ => {
                crate::klog!(
                    L_ERR,
                    "nathelper",
                    "no `IP[4|6]' in `{}' field",
                    String::from_utf8_lossy(prefix)
                );
                return Err(());
            }
        }
    }
    Ok(out)
}

fn fix_nated_sdp(c: &mut Ctx, level: i64, ip: Option<Bytes>) -> i64 {
    let Some(body) = sdp_body(c) else {
        crate::klog!(L_ERR, "nathelper", "cannot extract body from msg!");
        return -1;
    };
    let end = sdp::trimmed_end(&body);
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    if level & ADD_ADIRECTION != 0 {
        let mut from = 0;
        while let Some(i) = memchr::memmem::find(&body[from..end], b"\r\nm=") {
            let m = from + i + 4;
            let next = memchr::memmem::find(&body[m..end], b"\r\nm=").map(|x| m + x);
            edits.push((
                next.unwrap_or(end),
                next.unwrap_or(end),
                b"\r\na=direction:active".to_vec(),
            ));
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
    }
    let nortp = c.core.m.nathelper.nortpproxy.clone();
    if level & ADD_ANORTPPROXY != 0 && !nortp.is_empty() {
        let mut d = b"\r\n".to_vec();
        d.extend_from_slice(&nortp);
        edits.push((end, end, d));
    }
    let mut count = 0;
    if level & (FIX_MEDIP | FIX_ORGIP) != 0 {
        let newip = match ip.filter(|i| !i.is_empty()) {
            Some(i) => i.to_vec(),
            None => src_ip_text(c).into_bytes(),
        };
        let preserve = c.core.m.nathelper.oldmediaip;
        let trimmed = &body[..end];
        let mut kinds: Vec<(&[u8], bool)> = vec![(b"a=rtcp", true)];
        if level & FIX_MEDIP != 0 {
            kinds.push((b"c=", false));
        }
        if level & FIX_ORGIP != 0 {
            kinds.push((b"o=", false));
        }
        for (prefix, omit) in kinds {
            let Ok(addrs) = prefixed_addrs(trimmed, prefix, omit) else {
                return -1;
            };
            let pf0 = addrs.first().map(|a| a.pf);
            if addrs.iter().any(|a| Some(a.pf) != pf0) {
                crate::klog!(
                    L_ERR,
                    "nathelper",
                    "mismatching address families in '{}' SDP",
                    String::from_utf8_lossy(prefix)
                );
                return -1;
            }
            for a in addrs {
                let old = &body[a.start..a.end];
                if sdp::is_null_addr(old, a.pf) || old == &newip[..] {
                    continue;
                }
                if preserve {
                    let mut d = match a.pf {
                        sdp::Pf::V6 => b"\r\na=oldmediaip6:".to_vec(),
                        sdp::Pf::V4 => b"\r\na=oldmediaip:".to_vec(),
                    };
                    d.extend_from_slice(old);
                    edits.push((end, end, d));
                }
                edits.push((a.start, a.end, newip.clone()));
                count += 1;
            }
        }
    }
    if !edits.is_empty() {
        let nb = sdp::apply(&body, &mut edits);
        c.msg.set_body(Bytes::from(nb));
    }
    if count > 0 { 1 } else { 2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for (ip, want) in [
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("100.64.0.1", true),
            ("100.128.0.1", false),
            ("192.0.0.5", true),
            ("192.0.0.200", true),
            ("8.8.8.8", false),
            ("127.0.0.1", false),
        ] {
            assert_eq!(is_private_v4(ip.parse().unwrap(), 1), want, "{ip}");
        }
        assert!(!is_private_v4("192.0.0.200".parse().unwrap(), 0));
        assert_eq!(inet_aton(b"10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton(b"host.example"), None);
        assert_eq!(inet_aton(b"1.2.3.4.5"), None);
    }

    #[test]
    fn alias_trim() {
        assert_eq!(
            trim_alias(b"sip:a@1.2.3.4:5060;alias=10.0.0.1~5062~1", b"alias").as_deref(),
            Some(&b"sip:a@1.2.3.4:5060"[..])
        );
        assert_eq!(
            trim_alias(b"sip:a@1.2.3.4;alias=10.0.0.1~5062~1;x=y", b"alias").as_deref(),
            Some(&b"sip:a@1.2.3.4;x=y"[..])
        );
        assert_eq!(trim_alias(b"sip:a@1.2.3.4", b"alias"), None);
        assert_eq!(trim_alias(b"sip:a@b;alias=~", b"alias"), None);
    }

    #[test]
    fn avp_names() {
        assert_eq!(avp_name_of("$avp(RECEIVED)").unwrap(), "RECEIVED");
        assert_eq!(avp_name_of("$avp(s:rcv)").unwrap(), "rcv");
        assert_eq!(avp_name_of("$avp(i:42)").unwrap(), "#42");
        assert!(avp_name_of("$var(x)").is_err());
    }

    #[test]
    fn uri_params() {
        assert_eq!(
            find_uri_param(b";a=1;maddr=1.2.3.4;b", b"maddr"),
            Some((5, 18))
        );
        assert_eq!(find_uri_param(b";a=1?maddr=x", b"maddr"), None);
    }
}
