//! Kamailio's `corex` module: branch helpers, socket selection and tests, file access,
//! sending raw data, message tests.

use super::core::actions::{append_branch, arg_bytes, b};
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::transport::Destination;
use vm::ksr::{ParamType::Str as S, RetType};
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
    )
    .native("set_send_socket", RouteMask::ANY);
    r.kemi(
        "corex",
        "set_send_socket_name",
        &[S],
        RetType::Int,
        |c, a| {
            let n = arg_bytes(a, 0);
            match c
                .core
                .listeners
                .iter()
                .position(|l| l.name.as_deref().map(str::as_bytes) == Some(&n[..]))
            {
                Some(i) => {
                    c.force_socket = Some(i);
                    Value::Int(1)
                }
                None => Value::Int(-1),
            }
        },
    )
    .native("set_send_socket_name", RouteMask::ANY);
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
}

fn set_send_socket(c: &mut Ctx, a: &[Value]) -> Value {
    let spec = arg_bytes(a, 0);
    match crate::modules::core::find_socket(c.core, &String::from_utf8_lossy(&spec)) {
        Some(i) => {
            c.force_socket = Some(i);
            Value::Int(1)
        }
        None => Value::Int(-1),
    }
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
    let uri = arg_bytes(a, 0);
    let Ok(u) = crate::sip::Uri::parse(&uri) else {
        return Value::Int(-1);
    };
    let Ok(hop) = crate::forward::next_hop_of(&u) else {
        return Value::Int(-1);
    };
    let Ok(addr) = crate::forward::resolve(&hop, c.core.cfg.dns_try_ipv6) else {
        return Value::Int(-1);
    };
    let mut dst = Destination::new(hop.proto, addr);
    dst.listener = c.force_socket;
    b(c.core.sender.send(&dst, &arg_bytes(a, 1)).is_ok())
}
