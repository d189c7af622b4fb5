//! Kamailio's `corex` module: branch helpers, socket selection and tests, file access,
//! sending raw data, message tests, extended and internal message flags.

mod rpc;
use super::core::actions::{append_branch, arg_bytes, arg_int, b};
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::transport::{Destination, Proto};
use bytes::Bytes;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "corex",
    params: &[
        ParamDef::str("alias_subdomains").multi(),
        ParamDef::str("network_io_intercept"),
        ParamDef::int("min_msg_len"),
        ParamDef::str("evcb_reply"),
    ],
    register,
    init: None,
    notice: None,
};

fn register(r: &mut Registrar<'_>) {
    rpc::register(r.rpc);
    // `$cfg(...)` is resolved where the cfg uses it (the compiler knows the line, file and
    // routing block); read at run time (KEMI) it gives the line of the current function call.
    r.pvs.add(vm::pv::PvClass {
        name: "cfg",
        get: |_: &mut Ctx, s: &vm::pv::PvSpec| match &s.param {
            vm::pv::PvParam::Str(n) if &n[..] == b"line" => {
                Value::Int(i64::from(vm::interp::current_cfg_line()))
            }
            _ => Value::Null,
        },
        set: None,
        parse_name: Some(|s: &str| match s.trim() {
            n @ ("line" | "file" | "name" | "route") => {
                Ok(vm::pv::PvParam::Str(Bytes::copy_from_slice(n.as_bytes())))
            }
            o => Err(format!("unknown PV af key: {o}")),
        }),
        name_required: true,
        takes_index: false,
    });
    r.pvs.add(vm::pv::PvClass {
        name: "lsock",
        get: rpc::pv_lsock,
        set: None,
        parse_name: Some(crate::modules::pv::vars::parse_plain_name),
        name_required: true,
        takes_index: false,
    });
    r.kemi("corex", "append_branch", &[], RetType::Int, |c, _| {
        append_branch(c, None, None)
    });
    r.kemi("corex", "append_branch_uri", &[S], RetType::Int, |c, a| {
        append_branch(c, Some(arg_bytes(a, 0)), None)
    });
    r.kemi(
        "corex",
        "append_branch_uri_q",
        &[S, S],
        RetType::Int,
        |c, a| {
            let q = crate::modules::core::parse_q(&arg_bytes(a, 1));
            append_branch(c, Some(arg_bytes(a, 0)), q)
        },
    );
    r.kemi("corex", "has_ruri_user", &[], RetType::Int, |c, _| {
        b(c.msg.parsed_ruri().is_ok_and(|u| !u.user.is_empty()))
    });
    r.kemi("corex", "has_user_agent", &[], RetType::Int, |c, _| {
        b(c.msg.user_agent().is_some())
    });
    r.kemi(
        "corex",
        "set_send_socket",
        &[S],
        RetType::Int,
        set_send_socket,
    );
    r.native("set_send_socket", &[S], RouteMask::ANY, |c, a| {
        non_empty(a, |c, s| set_socket(c, s, false, false), c)
    });
    r.kemi(
        "corex",
        "set_send_socket_name",
        &[S],
        RetType::Int,
        |c, a| set_socket(c, &arg_bytes(a, 0), false, true),
    );
    r.native("set_send_socket_name", &[S], RouteMask::ANY, |c, a| {
        non_empty(a, |c, s| set_socket(c, s, false, true), c)
    });
    r.kemi("corex", "is_socket_name", &[S], RetType::Int, |c, a| {
        let n = arg_bytes(a, 0);
        b(c.core
            .listeners
            .iter()
            .any(|l| l.name.as_deref().map(str::as_bytes) == Some(&n[..])))
    })
    .native("is_socket_name", RouteMask::ANY);
    r.kemi(
        "corex",
        "file_read",
        &[S],
        RetType::Xval,
        |_, a| match std::fs::read(String::from_utf8_lossy(&arg_bytes(a, 0)).as_ref()) {
            Ok(d) => Value::Str(d.into()),
            Err(_) => Value::Null,
        },
    );
    r.native("file_read", &[S, S], RouteMask::ANY, file_read_native)
        .hints(&[vm::ParamHint::Plain, vm::ParamHint::PvName]);
    r.kemi("corex", "file_write", &[S, S], RetType::Int, |_, a| {
        let path = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
        b(std::fs::write(path, arg_bytes(a, 1)).is_ok())
    })
    .native("file_write", RouteMask::ANY);
    r.kemi("corex", "send_data", &[S, S], RetType::Int, send_data)
        .native("send_data", RouteMask::ANY);
    register_more(r);
}

/// corex's per-message state.
#[derive(Clone, Copy, Debug, Default)]
pub struct CorexCtx {
    /// Extended flags 0..=63 (`setxflag`).
    pub xflags: u64,
    /// Kamailio's internal message flags set by name (`msg_iflag_set`), as its bits.
    pub iflags: u32,
}

/// Internal flag: add `;srvid=<server_id>` to the Via this proxy adds.
const FL_ADD_SRVID: u32 = 1 << 20;
/// Internal flag: add the fields of the `xavp_via_params` xavp to that Via.
const FL_ADD_XAVP_VIA_PARAMS: u32 = 1 << 21;
/// Internal flag: take that Via's address and port from the `xavp_via_fields` xavp. Kamailio
/// 5.6 never sets that xavp's name (its grammar stores `xavp_via_fields` as
/// `xavp_via_params`), so the flag is only kept.
const FL_USE_XAVP_VIA_FIELDS: u32 = 1 << 22;

/// The `;srvid=N` and xavp parameters `via_add_srvid(1)` / `via_add_xavp_params(1)` add to
/// the Via this proxy adds (after `;rport`).
pub fn via_extra_params(c: &Ctx, v: &mut String) {
    let f = c.corex.iflags;
    if f & FL_ADD_SRVID != 0 && c.core.cfg.server_id != 0 {
        v.push_str(&format!(";srvid={}", c.core.cfg.server_id as u32));
    }
    let name = match c.core.cfg.xavp_via_params.as_ref() {
        Some(n) if f & FL_ADD_XAVP_VIA_PARAMS != 0 && !n.is_empty() => n,
        _ => return,
    };
    let fields = crate::modules::pv::funcs::params_serialize(&c.xavps, name);
    if let Some(body) = fields.strip_suffix(b";") {
        v.push(';');
        v.push_str(&String::from_utf8_lossy(body));
    }
}

fn via_flag(c: &mut Ctx, a: &[Value], bit: u32) -> Value {
    if arg_int(a, 0) != 0 {
        c.corex.iflags |= bit;
    } else {
        c.corex.iflags &= !bit;
    }
    Value::Int(1)
}

/// Bits of Kamailio's internal message flags that `msg_iflag_*` accept by name.
const IFLAGS: &[(&str, u32)] = &[
    ("USE_UAC_FROM", 1 << 13),
    ("USE_UAC_TO", 1 << 14),
    ("UAC_AUTH", 1 << 19),
];

fn iflag_of(name: &[u8]) -> Option<u32> {
    IFLAGS
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// The extended flag bit for `f`, or `None` past 63 (negative numbers included, as
/// Kamailio compares them unsigned).
fn xflag_bit(f: i64) -> Option<u64> {
    (0..64).contains(&f).then(|| 1u64 << f)
}

fn register_more(r: &mut Registrar<'_>) {
    r.kemi(
        "corex",
        "setxflag",
        &[I],
        RetType::Int,
        |c, a| match xflag_bit(arg_int(a, 0)) {
            Some(bit) => {
                c.corex.xflags |= bit;
                Value::Int(1)
            }
            None => Value::Int(-1),
        },
    )
    .native("setxflag", RouteMask::ANY);
    r.kemi(
        "corex",
        "resetxflag",
        &[I],
        RetType::Int,
        |c, a| match xflag_bit(arg_int(a, 0)) {
            Some(bit) => {
                c.corex.xflags &= !bit;
                Value::Int(1)
            }
            None => Value::Int(-1),
        },
    )
    .native("resetxflag", RouteMask::ANY);
    r.kemi(
        "corex",
        "isxflagset",
        &[I],
        RetType::Int,
        |c, a| match xflag_bit(arg_int(a, 0)) {
            Some(bit) => b(c.corex.xflags & bit != 0),
            None => Value::Int(-1),
        },
    )
    .native("isxflagset", RouteMask::ANY);
    // Kamailio 5.6's msg_iflag_set() checks the looked-up value against 1 instead of
    // against -1, so an unknown name sets every internal flag and returns 1; kept as is.
    r.native("msg_iflag_set", &[S], RouteMask::ANY, |c, a| {
        let bits = iflag_of(&arg_bytes(a, 0)).unwrap_or(u32::MAX);
        c.corex.iflags |= bits;
        Value::Int(1)
    });
    r.native(
        "msg_iflag_reset",
        &[S],
        RouteMask::ANY,
        |c, a| match iflag_of(&arg_bytes(a, 0)) {
            Some(bit) => {
                c.corex.iflags &= !bit;
                Value::Int(1)
            }
            None => Value::Int(-1),
        },
    );
    r.native(
        "msg_iflag_is_set",
        &[S],
        RouteMask::ANY,
        |c, a| match iflag_of(&arg_bytes(a, 0)) {
            Some(bit) if c.corex.iflags & bit != 0 => Value::Int(1),
            Some(_) => Value::Int(-2),
            None => Value::Int(-1),
        },
    );
    r.kemi("corex", "is_faked_msg", &[], RetType::Int, |c, _| {
        b(c.msg.is_faked())
    })
    .native("is_faked_msg", RouteMask::ANY);
    // True only while the network-I/O intercept runs its event route, which ksr does not
    // have: every route it runs sees -1, as Kamailio's do outside that event.
    r.native("is_incoming", &[], RouteMask::ANY, |_, _| Value::Int(-1));
    r.kemi("corex", "set_recv_socket", &[S], RetType::Int, |c, a| {
        set_socket(c, &arg_bytes(a, 0), true, false)
    });
    r.native("set_recv_socket", &[S], RouteMask::ANY, |c, a| {
        non_empty(a, |c, s| set_socket(c, s, true, false), c)
    });
    r.kemi(
        "corex",
        "set_recv_socket_name",
        &[S],
        RetType::Int,
        |c, a| set_socket(c, &arg_bytes(a, 0), true, true),
    );
    r.native("set_recv_socket_name", &[S], RouteMask::ANY, |c, a| {
        non_empty(a, |c, s| set_socket(c, s, true, true), c)
    });
    r.kemi(
        "corex",
        "set_source_address",
        &[S],
        RetType::Int,
        set_source_address,
    )
    .native("set_source_address", RouteMask::ANY);
    let rf = RouteMask::REQUEST.union(RouteMask::FAILURE);
    r.native("send_udp", &[], rf, |c, _| corex_send(c, None, Proto::Udp));
    r.native("send_udp", &[S], rf, |c, a| {
        corex_send(c, Some(arg_bytes(a, 0)), Proto::Udp)
    });
    r.native("send_tcp", &[], rf, |c, _| corex_send(c, None, Proto::Tcp));
    r.native("send_tcp", &[S], rf, |c, a| {
        corex_send(c, Some(arg_bytes(a, 0)), Proto::Tcp)
    });
    r.kemi("corex", "sendx", &[S, S, S], RetType::Int, sendx)
        .native("sendx", RouteMask::ANY);
    r.kemi("corex", "via_add_srvid", &[I], RetType::Int, |c, a| {
        via_flag(c, a, FL_ADD_SRVID)
    })
    .native("via_add_srvid", RouteMask::ANY);
    r.kemi(
        "corex",
        "via_add_xavp_params",
        &[I],
        RetType::Int,
        |c, a| via_flag(c, a, FL_ADD_XAVP_VIA_PARAMS),
    )
    .native("via_add_xavp_params", RouteMask::ANY);
    r.kemi(
        "corex",
        "via_use_xavp_fields",
        &[I],
        RetType::Int,
        |c, a| via_flag(c, a, FL_USE_XAVP_VIA_FIELDS),
    )
    .native("via_use_xavp_fields", RouteMask::ANY);
    r.native("forward_reply", &[], RouteMask::CORE_ONREPLY, |c, _| {
        crate::forward::reply_stateless(c);
        Value::Int(1)
    });
}

/// The cfg wrappers refuse an empty parameter (-1) before calling the KEMI function.
fn non_empty(a: &[Value], f: fn(&mut Ctx, &[u8]) -> Value, c: &mut Ctx) -> Value {
    let s = arg_bytes(a, 0);
    if s.is_empty() {
        return Value::Int(-1);
    }
    f(c, &s)
}

/// Kamailio's socket helper for `set_send_socket*` / `set_recv_socket*`: an empty spec
/// resets the forced send socket; a spec that matches no socket only warns (1); a
/// malformed address spec is an error (-1).
fn set_socket(c: &mut Ctx, spec: &[u8], recv: bool, by_name: bool) -> Value {
    if spec.is_empty() {
        c.force_socket = None;
        return Value::Int(1);
    }
    let text = String::from_utf8_lossy(spec);
    let found = if by_name {
        c.core
            .listeners
            .iter()
            .position(|l| l.name.as_deref() == Some(text.as_ref()))
    } else {
        if !socket_spec_ok(&text) {
            crate::klog!(
                crate::log::L_ERR,
                "corex",
                "invalid socket specification [{text}]"
            );
            return Value::Int(-1);
        }
        crate::modules::core::find_socket(c.core, &text)
    };
    let Some(i) = found else {
        crate::klog!(
            crate::log::L_WARN,
            "corex",
            "no socket found to match [{text}]"
        );
        return Value::Int(1);
    };
    if recv {
        if let Some(l) = c.core.listeners.get(i) {
            c.rcv.listener = i;
            c.rcv.local = l.addr;
            c.rcv.proto = l.proto;
            c.rcv.conn = None;
        }
    } else {
        c.force_socket = Some(i);
    }
    Value::Int(1)
}

/// `[proto:]host[:port]` as Kamailio's `parse_phostport` accepts it: at most two colons
/// outside brackets, a known protocol before the first of two, a numeric port.
fn socket_spec_ok(s: &str) -> bool {
    let mut depth = 0i32;
    let mut colons = Vec::new();
    for (i, ch) in s.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return false;
        }
    }
    if s.is_empty() || s.ends_with(':') || colons.len() > 2 {
        return false;
    }
    let port_ok = |p: &str| p.parse::<u16>().is_ok();
    match colons.as_slice() {
        [] => true,
        [a] => {
            let (x, y) = (&s[..*a], &s[a + 1..]);
            Proto::parse(&x.to_ascii_lowercase()).is_some() || port_ok(y)
        }
        [a, b2, ..] => {
            Proto::parse(&s[..*a].to_ascii_lowercase()).is_some() && port_ok(&s[b2 + 1..])
        }
    }
}

/// `set_source_address("[proto:]host[:port]")`: pretends the message came from there.
fn set_source_address(c: &mut Ctx, a: &[Value]) -> Value {
    let spec = arg_bytes(a, 0);
    let text = String::from_utf8_lossy(&spec).into_owned();
    if text.is_empty() || !socket_spec_ok(&text) {
        crate::klog!(
            crate::log::L_ERR,
            "corex",
            "failed to parse the address [{text}]"
        );
        return Value::Int(-1);
    }
    let (proto, rest) = match text.split_once(':') {
        Some((p, r)) if Proto::parse(&p.to_ascii_lowercase()).is_some() && r.contains(':') => {
            (Proto::parse(&p.to_ascii_lowercase()), r)
        }
        Some((p, r)) if Proto::parse(&p.to_ascii_lowercase()).is_some() && !port_like(r) => {
            (Proto::parse(&p.to_ascii_lowercase()), r)
        }
        _ => (None, text.as_str()),
    };
    let (host, port) = split_host_port(rest);
    let hop = crate::forward::NextHop {
        proto: proto.unwrap_or(Proto::Udp),
        host: host.to_string(),
        port: Some(port.unwrap_or(0)),
        secure: false,
    };
    match crate::forward::resolve(&hop, c.core.cfg.dns_try_ipv6) {
        Ok(addr) => {
            c.rcv.src = std::net::SocketAddr::new(addr.ip(), port.unwrap_or(0));
            Value::Int(1)
        }
        Err(_) => {
            crate::klog!(
                crate::log::L_ERR,
                "corex",
                "failed to resolve address [{text}]"
            );
            Value::Int(-1)
        }
    }
}

fn port_like(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `host:port`, `[v6]:port`, `host`: the host (brackets removed) and the port.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

/// `send_udp([host[:port]])` / `send_tcp(...)`: sends the request as it was received to
/// the given address, or to `$du` / the R-URI.
fn corex_send(c: &mut Ctx, dest: Option<Bytes>, proto: Proto) -> Value {
    let (host, port) = match dest.filter(|d| !d.is_empty()) {
        Some(d) => {
            let text = String::from_utf8_lossy(&d).into_owned();
            // The port follows the first ':' after an IPv6 reference's ']'.
            let cut = match text.find(']') {
                Some(p) => text[p..].find(':').map(|q| p + q),
                None => text.find(':'),
            };
            match cut {
                Some(i) => {
                    let port = text[i + 1..].parse::<u16>().unwrap_or(0);
                    (text[..i].to_string(), Some(port))
                }
                None => (text, Some(5060)),
            }
        }
        None => {
            let uri = match &c.dst_uri {
                Some(d) => crate::sip::Uri::parse(d).ok(),
                None => c.msg.parsed_ruri().ok().cloned(),
            };
            let Some(u) = uri else {
                crate::klog!(crate::log::L_ERR, "corex", "send: bad uri, dropping packet");
                return Value::Int(-1);
            };
            (
                String::from_utf8_lossy(u.host_unbracketed()).into_owned(),
                u.port,
            )
        }
    };
    let hop = crate::forward::NextHop {
        proto,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        secure: false,
    };
    let Ok(addr) = crate::forward::resolve(&hop, c.core.cfg.dns_try_ipv6) else {
        crate::klog!(
            crate::log::L_ERR,
            "corex",
            "send: failed to resolve [{host}]"
        );
        return Value::Int(-1);
    };
    let mut dst = Destination::new(proto, addr);
    if proto == Proto::Udp {
        dst.listener = c.force_socket;
    }
    let data = c.msg.buf().clone();
    b(c.core.sender.send(&dst, &data).is_ok())
}

/// `sendx(uri, socket, data)`: `send_data` from a given local socket.
fn sendx(c: &mut Ctx, a: &[Value]) -> Value {
    let sock = arg_bytes(a, 1);
    let mut listener = None;
    if !sock.is_empty() {
        let text = String::from_utf8_lossy(&sock).into_owned();
        if !socket_spec_ok(&text) {
            crate::klog!(crate::log::L_ERR, "corex", "invalid socket specification");
            return Value::Int(-1);
        }
        listener = crate::modules::core::find_socket(c.core, &text);
        if listener.is_none() {
            crate::klog!(
                crate::log::L_WARN,
                "corex",
                "local socket not found: {text}"
            );
        }
    }
    send_to_uri(c, &arg_bytes(a, 0), listener, &arg_bytes(a, 2))
}

fn set_send_socket(c: &mut Ctx, a: &[Value]) -> Value {
    set_socket(c, &arg_bytes(a, 0), false, false)
}

/// `file_read("/path", "$var(x)")`: the second argument names the variable to set.
fn file_read_native(c: &mut Ctx, a: &[Value]) -> Value {
    let path = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
    let Ok(data) = std::fs::read(&path) else {
        return Value::Int(-1);
    };
    let name = String::from_utf8_lossy(&arg_bytes(a, 1)).into_owned();
    let Ok(spec) = vm::pv::parse_spec(&name, vm::Host::pv_registry(c)) else {
        return Value::Int(-1);
    };
    b(vm::pv::set(c, &spec, &Value::Str(data.into())).is_ok())
}

/// `send_data("sip:host:port;transport=tcp", "raw bytes")`.
fn send_data(c: &mut Ctx, a: &[Value]) -> Value {
    let listener = c.force_socket;
    send_to_uri(c, &arg_bytes(a, 0), listener, &arg_bytes(a, 1))
}

fn send_to_uri(c: &mut Ctx, uri: &Bytes, listener: Option<usize>, data: &[u8]) -> Value {
    let Ok(u) = crate::sip::Uri::parse(uri) else {
        return Value::Int(-1);
    };
    let Ok(hop) = crate::forward::next_hop_of(&u) else {
        return Value::Int(-1);
    };
    let Ok(addr) = crate::forward::resolve(&hop, c.core.cfg.dns_try_ipv6) else {
        return Value::Int(-1);
    };
    let mut dst = Destination::new(hop.proto, addr);
    dst.listener = listener;
    b(c.core.sender.send(&dst, data).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_specs() {
        for ok in [
            "udp:127.0.0.1:5060",
            "127.0.0.1:5060",
            "udp:127.0.0.1",
            "host.example",
            "tcp:[::1]:5060",
            "[::1]:5060",
        ] {
            assert!(socket_spec_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "a:b:c:d",
            "udp:1.2.3.4:x",
            "bogus:1.2.3.4:5",
            "host:",
            "[[::1]]",
        ] {
            assert!(!socket_spec_ok(bad), "{bad}");
        }
    }

    #[test]
    fn flags_and_names() {
        assert_eq!(xflag_bit(0), Some(1));
        assert_eq!(xflag_bit(63), Some(1 << 63));
        assert_eq!(xflag_bit(64), None);
        assert_eq!(xflag_bit(-1), None);
        assert_eq!(iflag_of(b"use_uac_to"), Some(1 << 14));
        assert_eq!(iflag_of(b"nope"), None);
        assert_eq!(split_host_port("[::1]:7"), ("::1", Some(7)));
        assert_eq!(split_host_port("h:8"), ("h", Some(8)));
        assert_eq!(split_host_port("h"), ("h", None));
    }
}
