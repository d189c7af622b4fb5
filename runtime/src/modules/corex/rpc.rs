//! corex's RPC commands: `corex.debug`, `corex.list_sockets`, `corex.list_aliases`, with the
//! fields Kamailio's return.

use crate::core::Core;
use crate::rpc::{RpcError, RpcRegistry};
use serde_json::{Value as Json, json};

pub fn register(r: &mut RpcRegistry) {
    r.add(
        "corex.debug",
        "Get the global log level, or set it: [level].",
        debug,
    );
    r.add(
        "corex.list_sockets",
        "List the sockets the server listens on.",
        list_sockets,
    );
    r.add(
        "corex.list_aliases",
        "List the host aliases matched as myself.",
        list_aliases,
    );
}

fn debug(_: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let old = crate::log::level();
    let new = match p.first() {
        Some(Json::Number(n)) => n.as_i64(),
        Some(Json::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(match new {
        Some(n) => {
            crate::log::set_level(n as i32);
            json!({"old": old, "new": n})
        }
        None => json!({"debug": old}),
    })
}

fn list_sockets(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    // Kamailio walks the sockets protocol by protocol (udp, tcp, tls, sctp).
    let mut ls: Vec<&crate::transport::Listener> = core.listeners.iter().collect();
    ls.sort_by_key(|l| l.proto as u8);
    Ok(Json::Array(
        ls.into_iter()
            .map(|l| {
                let addr = l.addr.ip().to_string();
                let advertise = match &l.advertise {
                    Some((h, p)) if *p != 0 => format!("{h}:{p}"),
                    Some((h, _)) => h.clone(),
                    None => "-".into(),
                };
                json!({
                    "PROTO": l.proto.as_str(),
                    "NAME": addr,
                    "ADDRLIST": {"ADDR": addr},
                    "PORT": l.addr.port().to_string(),
                    "MCAST": "no",
                    "MHOMED": "no",
                    "VIRTUAL": "no",
                    "SOCKNAME": l.name.clone().unwrap_or_else(|| "-".into()),
                    "ADVERTISE": advertise,
                })
            })
            .collect(),
    ))
}

fn list_aliases(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let list = match core.myself.read() {
        Ok(m) => m.alias_list(),
        Err(p) => p.into_inner().alias_list(),
    };
    Ok(Json::Array(
        list.into_iter()
            .map(|(host, port, proto)| json!({"PROTO": proto, "ADDR": host, "PORT": port}))
            .collect(),
    ))
}

// ---------------------------------------------------------------- $lsock

/// `$lsock(M/VALUE/FIELD)`: the listening socket matched by name (`n`), listen string (`l`,
/// `udp:1.2.3.4:5060`), advertised string (`a`) or index (`i`, which Kamailio 5.6 always
/// takes as 0), and the field named by FIELD's first letter: name, listen string, advertised string or
/// index. Null
/// when no socket matches; an empty string for an unset name or advertised address.
pub fn pv_lsock(ctx: &mut crate::ctx::Ctx, spec: &vm::pv::PvSpec) -> vm::Value {
    use vm::Value;
    let Some(expr) = crate::modules::pv::util::name_of(ctx, &spec.param) else {
        return Value::Null;
    };
    let expr = String::from_utf8_lossy(&expr);
    let mut parts = expr.splitn(3, '/');
    let (Some(m), Some(val), Some(field)) = (parts.next(), parts.next(), parts.next()) else {
        crate::klog!(
            crate::log::L_ERR,
            "corex",
            "invalid expression format: {expr}"
        );
        return Value::Null;
    };
    let kinds = ['n', 'l', 'a', 'i'];
    let (Some(mk), Some(fk)) = (m.chars().next(), field.chars().next()) else {
        return Value::Null;
    };
    // Kamailio's parser wants at least two characters after the second `/`.
    if m.len() != 1 || field.len() < 2 || !kinds.contains(&mk) || !kinds.contains(&fk) {
        crate::klog!(
            crate::log::L_ERR,
            "corex",
            "invalid expression format: {expr}"
        );
        return Value::Null;
    }
    let adv = |l: &crate::transport::Listener| match &l.advertise {
        Some((h, p)) => {
            let port = if *p == 0 { l.addr.port() } else { *p };
            format!("{}:{h}:{port}", l.proto)
        }
        None => String::new(),
    };
    let ls = &ctx.core.listeners;
    let found = match mk {
        'n' => ls.iter().find(|l| l.name.as_deref() == Some(val)),
        'l' => ls.iter().find(|l| l.sock_str().eq_ignore_ascii_case(val)),
        'a' => ls.iter().find(|l| !val.is_empty() && adv(l) == val),
        _ => ls.first(),
    };
    let Some(l) = found else {
        return Value::Null;
    };
    match fk {
        'n' => Value::from(l.name.clone().unwrap_or_default().as_str()),
        'l' => Value::from(l.sock_str().as_str()),
        'a' => Value::from(adv(l).as_str()),
        _ => Value::Int(l.id as i64),
    }
}
