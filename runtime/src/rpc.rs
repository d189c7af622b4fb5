//! RPC commands (`core.version`, `ul.dump`, `app_lua.reload` ...), served by the jsonrpcs
//! module's transports and by `ksr rpc`.

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

    pub fn bad_params(message: impl Into<String>) -> RpcError {
        RpcError::new(-32602, message)
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
            None => Err(RpcError::new(-32601, "Method Not Found")),
        }
    }
}
