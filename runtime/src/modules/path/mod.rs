//! Kamailio's `path` module (RFC 3327): `add_path*()` insert a `Path` header naming this
//! proxy, for a registrar to route later requests back through it. The address in it is the
//! socket the REGISTER leaves from, known only when it is sent: the call records where the
//! header goes, and the header is written for each copy sent (`Hooks::outbound_edits`).

use super::core::actions::arg_bytes;
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::sip::msg::ORDER_SCRIPT;
use crate::sip::{Edit, HdrKind};
use crate::transport::{Listener, Proto};
use bytes::Bytes;
use std::cell::RefCell;
use vm::ksr::{ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "path",
    params: &[
        ParamDef::int("use_received"),
        ParamDef::int("received_format"),
        ParamDef::str("received_name"),
        ParamDef::int("enable_r2"),
        ParamDef::int("sockname_mode"),
    ],
    register,
    init: Some(init),
    notice: None,
};

pub struct PathState {
    received_format: i64,
    received_name: String,
}

impl Default for PathState {
    fn default() -> Self {
        PathState {
            received_format: 0,
            received_name: "received".into(),
        }
    }
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    for (name, what) in [
        (
            "use_received",
            "routing by the received parameter in loose_route",
        ),
        ("enable_r2", "double Path headers"),
        ("sockname_mode", "socket names in Path"),
    ] {
        if p.int(name, 0) != 0 {
            return Err(format!("path: {name} ({what}) is not provided by ksr yet"));
        }
    }
    let st = &mut ictx.states.path;
    st.received_format = p.int("received_format", 0);
    if let Some(n) = p.str("received_name").filter(|n| !n.is_empty()) {
        st.received_name = n;
    }
    Ok(())
}

/// One `add_path*()` call of the current message.
struct Pending {
    /// Where the header goes and the edit sequence it was asked at.
    at: usize,
    seq: u32,
    user: Bytes,
    params: Bytes,
    received: bool,
    /// `add_path_advertised_address`: this host instead of the sending socket's.
    advertised: Option<Bytes>,
}

thread_local! {
    /// The Path headers asked for by the message this worker is routing.
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
}

fn register(r: &mut Registrar<'_>) {
    r.hooks
        .request_pre
        .push(|_| PENDING.with(|p| p.borrow_mut().clear()));
    r.hooks.outbound_edits.push(outbound_edits);
    let req = RouteMask::REQUEST;
    type Call = fn(&mut Ctx, &[Value]) -> Value;
    let kemi: [(&str, &[vm::ksr::ParamType], Call); 12] = [
        ("add_path", &[], |c, _| add(c, false, None, b"", b"")),
        ("add_path_user", &[S], |c, a| {
            add(c, false, None, &arg_bytes(a, 0), b"")
        }),
        ("add_path_user_params", &[S, S], |c, a| {
            add(c, false, None, &arg_bytes(a, 0), &arg_bytes(a, 1))
        }),
        ("add_path_received", &[], |c, _| {
            add(c, true, None, b"", b"")
        }),
        ("add_path_received_user", &[S], |c, a| {
            add(c, true, None, &arg_bytes(a, 0), b"")
        }),
        ("add_path_received_user_params", &[S, S], |c, a| {
            add(c, true, None, &arg_bytes(a, 0), &arg_bytes(a, 1))
        }),
        ("add_path_advertised_address", &[S], |c, a| {
            add(c, false, Some(arg_bytes(a, 0)), b"", b"")
        }),
        ("add_path_advertised_address_user", &[S, S], |c, a| {
            add(c, false, Some(arg_bytes(a, 0)), &arg_bytes(a, 1), b"")
        }),
        (
            "add_path_advertised_address_user_params",
            &[S, S, S],
            |c, a| {
                add(
                    c,
                    false,
                    Some(arg_bytes(a, 0)),
                    &arg_bytes(a, 1),
                    &arg_bytes(a, 2),
                )
            },
        ),
        ("add_path_received_advertised_address", &[S], |c, a| {
            add(c, true, Some(arg_bytes(a, 0)), b"", b"")
        }),
        (
            "add_path_received_advertised_address_user",
            &[S, S],
            |c, a| add(c, true, Some(arg_bytes(a, 0)), &arg_bytes(a, 1), b""),
        ),
        (
            "add_path_received_advertised_address_user_params",
            &[S, S, S],
            |c, a| {
                add(
                    c,
                    true,
                    Some(arg_bytes(a, 0)),
                    &arg_bytes(a, 1),
                    &arg_bytes(a, 2),
                )
            },
        ),
    ];
    for (name, params, f) in kemi {
        // The native names take 0-2 (advertised: 1-3) parameters of the KEMI functions.
        let native = if name.contains("advertised_address") {
            if name.starts_with("add_path_received") {
                "add_path_received_advertised_address"
            } else {
                "add_path_advertised_address"
            }
        } else if name.starts_with("add_path_received") {
            "add_path_received"
        } else {
            "add_path"
        };
        r.kemi("path", name, params, RetType::Int, f)
            .native(native, req);
    }
}

/// Records a Path header for the request being routed; 1, or -1 for a reply.
fn add(c: &mut Ctx, received: bool, adv: Option<Bytes>, user: &[u8], params: &[u8]) -> Value {
    if !c.msg.is_request() {
        crate::klog!(L_ERR, "path", "add_path: not a request");
        return Value::Int(-1);
    }
    // Before the first Path header, else after the last header.
    let at = c
        .msg
        .headers()
        .iter()
        .find(|h| h.kind == HdrKind::Path)
        .map_or_else(|| c.msg.headers_end(), |h| h.start);
    let seq = c.msg.next_edit_seq();
    // Takes the sequence slot, so headers appended later by the script come after this one.
    c.msg.add_edit(Edit::insert(at, Bytes::new(), ORDER_SCRIPT));
    PENDING.with(|p| {
        p.borrow_mut().push(Pending {
            at,
            seq,
            user: Bytes::copy_from_slice(user),
            params: Bytes::copy_from_slice(params),
            received,
            advertised: adv.filter(|a| !a.is_empty()),
        })
    });
    Value::Int(1)
}

/// The Path headers of this message as sent from `out`.
fn outbound_edits(c: &Ctx, out: &Listener) -> Vec<Edit> {
    PENDING.with(|p| {
        p.borrow()
            .iter()
            .map(|p| Edit::insert_at_seq(p.at, header(c, out, p), ORDER_SCRIPT, p.seq))
            .collect()
    })
}

fn header(c: &Ctx, out: &Listener, p: &Pending) -> Bytes {
    let mut h = b"Path: <sip:".to_vec();
    if !p.user.is_empty() {
        h.extend_from_slice(&p.user);
        h.push(b'@');
    }
    match &p.advertised {
        Some(a) => {
            h.extend_from_slice(a);
            h.extend_from_slice(b";transport=");
            h.extend_from_slice(out.proto.as_str().as_bytes());
        }
        None => {
            let host = out.host_for_headers();
            if host.contains(':') && !host.starts_with('[') {
                h.extend_from_slice(format!("[{host}]").as_bytes());
            } else {
                h.extend_from_slice(host.as_bytes());
            }
            h.extend_from_slice(format!(":{}", out.port_for_headers()).as_bytes());
            if out.proto != Proto::Udp {
                h.extend_from_slice(b";transport=");
                h.extend_from_slice(out.proto.as_str().as_bytes());
            }
        }
    }
    h.extend_from_slice(b";lr");
    if p.received {
        let st = &c.core.m.path;
        let src = c.rcv.src;
        let ip = crate::transport::uri_host(src.ip());
        let value = if st.received_format == 0 {
            // The source as an escaped SIP URI (transport for anything but UDP).
            let proto = match c.rcv.proto {
                Proto::Udp => String::new(),
                Proto::Wss => "%3Btransport%3Dws".into(),
                other => format!("%3Btransport%3D{}", other.as_str()),
            };
            format!("sip:{ip}:{}{proto}", src.port())
        } else {
            // nathelper's alias form: ip~port~protocol id.
            format!("{ip}~{}~{}", src.port(), c.rcv.proto.id())
        };
        h.extend_from_slice(format!(";{}={value}", st.received_name).as_bytes());
    }
    if !p.params.is_empty() {
        h.push(b';');
        h.extend_from_slice(&p.params);
    }
    h.extend_from_slice(b">\r\n");
    Bytes::from(h)
}
