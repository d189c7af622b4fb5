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
