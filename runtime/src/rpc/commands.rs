//! The core's RPC commands: `core.*`, `system.*` and `stats.*`.

use super::{RpcError, RpcRegistry};
use crate::core::Core;
use serde_json::{Value as Json, json};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn register(r: &mut RpcRegistry) {
    r.add(
        "core.version",
        "Returns the version string of the server.",
        version,
    );
    r.add("core.uptime", "Returns uptime of SIP server.", uptime);
    r.add("core.echo", "Returns back its parameters.", echo);
    r.add("core.modules", "List loaded modules.", modules);
    r.add(
        "system.listMethods",
        "Lists all RPC methods supported by the server.",
        list_methods,
    );
    r.add(
        "system.methodHelp",
        "Print the help string for given method.",
        method_help,
    );
    r.add(
        "stats.get_statistics",
        "Print statistics (one or more) values.",
        get_statistics,
    );
    r.add(
        "stats.fetch",
        "Print statistics (one or more) values as a structure.",
        fetch,
    );
    r.add(
        "stats.reset_statistics",
        "Reset statistics (one or more) values.",
        reset_statistics,
    );
    r.add(
        "stats.clear_statistics",
        "Return statistics (one or more) values and reset them.",
        clear_statistics,
    );
}

/// `core.version` text: name, version, architecture and OS, like Kamailio's.
pub fn version_text() -> String {
    format!(
        "ksr {} ({}/{}) ",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

fn version(_: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    Ok(Json::from(version_text()))
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn uptime(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let now = unix(SystemTime::now());
    let since = unix(core.started_at);
    let ctime = crate::modules::pv::vars::ctime;
    Ok(json!({
        "now": ctime(now).unwrap_or_default(),
        "up_since": ctime(since).unwrap_or_default(),
        "uptime": now - since,
    }))
}

/// Kamailio echoes every parameter back as a string.
fn echo(_: &'static Core, params: &[Json]) -> Result<Json, RpcError> {
    Ok(Json::Array(
        params.iter().map(|p| Json::from(text(p))).collect(),
    ))
}

fn modules(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    Ok(Json::Array(
        core.loaded.iter().map(|m| Json::from(*m)).collect(),
    ))
}

fn list_methods(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    Ok(Json::Array(core.rpc.names().map(Json::from).collect()))
}

fn method_help(core: &'static Core, params: &[Json]) -> Result<Json, RpcError> {
    let name = params
        .first()
        .map(text)
        .ok_or_else(|| RpcError::bad_params("Invalid Parameters"))?;
    match core.rpc.get(&name) {
        Some(c) => Ok(Json::from(c.help)),
        None => Err(RpcError::new(400, "command not found")),
    }
}

/// A parameter as text (numbers printed).
pub fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn selected(
    core: &'static Core,
    params: &[Json],
) -> Result<Vec<(crate::stats::StatId, String)>, RpcError> {
    if params.is_empty() {
        return Err(RpcError::new(400, "Please provide which stats to retrieve"));
    }
    let mut out = Vec::new();
    for p in params {
        for (id, g, n) in core.stats.select(&text(p)) {
            out.push((id, format!("{g}:{n}")));
        }
    }
    Ok(out)
}

fn get_statistics(core: &'static Core, params: &[Json]) -> Result<Json, RpcError> {
    Ok(Json::Array(
        selected(core, params)?
            .into_iter()
            .map(|(id, name)| Json::from(format!("{name} = {}", core.stats.get(id))))
            .collect(),
    ))
}

/// `stats.fetch`: `{"group.name": "value"}` (values as strings, like Kamailio).
fn fetch(core: &'static Core, params: &[Json]) -> Result<Json, RpcError> {
    let mut m = serde_json::Map::new();
    for (id, name) in selected(core, params)? {
        m.insert(
            name.replacen(':', ".", 1),
            Json::from(core.stats.get(id).to_string()),
        );
    }
    Ok(Json::Object(m))
}

fn reset_statistics(core: &'static Core, params: &[Json]) -> Result<Json, RpcError> {
    for (id, _) in selected(core, params)? {
        core.stats.reset(id);
    }
    Ok(Json::Object(Default::default()))
}

fn clear_statistics(core: &'static Core, params: &[Json]) -> Result<Json, RpcError> {
    let sel = selected(core, params)?;
    let out = sel
        .iter()
        .map(|(id, name)| Json::from(format!("{name} = {}", core.stats.get(*id))))
        .collect();
    for (id, _) in sel {
        core.stats.reset(id);
    }
    Ok(Json::Array(out))
}
