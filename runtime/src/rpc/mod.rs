//! RPC commands (`core.version`, `ul.dump`, `app_lua.reload` ...), served by the jsonrpcs
//! module's transports and called by `ksr rpc`.
//!
//! A command takes its positional parameters as JSON values and returns one JSON value (a
//! command that adds several values in Kamailio returns an array). [`handle`] runs one
//! JSON-RPC 2.0 request document; [`format`] prints replies the way Kamailio's jsonrpcs
//! does, so scripts that read them keep working.

pub mod commands;
pub mod json;

use crate::core::Core;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// A JSON-RPC error: code and message, as JSON-RPC 2.0 carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// Kamailio's reply to missing or wrong parameters.
    pub fn bad_params(message: impl Into<String>) -> RpcError {
        RpcError::new(400, message)
    }
}

pub type RpcFn = fn(&'static Core, &[Json]) -> Result<Json, RpcError>;

pub struct RpcCmd {
    pub help: &'static str,
    pub func: RpcFn,
}

#[derive(Default)]
pub struct RpcRegistry {
    cmds: BTreeMap<&'static str, RpcCmd>,
}

impl RpcRegistry {
    pub fn add(&mut self, name: &'static str, help: &'static str, func: RpcFn) {
        self.cmds.insert(name, RpcCmd { help, func });
    }

    pub fn get(&self, name: &str) -> Option<&RpcCmd> {
        self.cmds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.cmds.keys().copied()
    }

    /// Runs a command by name.
    pub fn call(
        &self,
        core: &'static Core,
        method: &str,
        params: &[Json],
    ) -> Result<Json, RpcError> {
        match self.cmds.get(method) {
            Some(c) => (c.func)(core, params),
            None => Err(RpcError::new(500, "Method Not Found")),
        }
    }
}

/// Runs one JSON-RPC request document and returns the reply document, or `None` when the
/// input is not JSON at all (Kamailio does not answer those).
pub fn handle(core: &'static Core, request: &[u8]) -> Option<Json> {
    let req: Json = serde_json::from_slice(request).ok()?;
    Some(handle_value(core, &req))
}

/// [`handle`] for an already parsed request.
pub fn handle_value(core: &'static Core, req: &Json) -> Json {
    let id = req.get("id").cloned();
    let method = req.get("method").and_then(Json::as_str);
    // Kamailio takes parameters by position; named ones are used in their given order.
    let params: Vec<Json> = match req.get("params") {
        Some(Json::Array(a)) => a.clone(),
        Some(Json::Object(o)) => o.values().cloned().collect(),
        Some(Json::Null) | None => Vec::new(),
        Some(v) => vec![v.clone()],
    };
    let mut reply = serde_json::Map::new();
    reply.insert("jsonrpc".into(), Json::from("2.0"));
    match method {
        None => {
            reply.insert(
                "error".into(),
                error_json(&RpcError::new(-32600, "Invalid Request")),
            );
        }
        Some(m) => match core.rpc.call(core, m, &params) {
            Ok(v) => {
                reply.insert("result".into(), v);
            }
            Err(e) => {
                reply.insert("error".into(), error_json(&e));
            }
        },
    }
    if let Some(id) = id {
        reply.insert("id".into(), id);
    }
    Json::Object(reply)
}

fn error_json(e: &RpcError) -> Json {
    serde_json::json!({"code": e.code, "message": e.message})
}
