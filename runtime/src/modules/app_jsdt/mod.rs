//! Kamailio's `app_jsdt` module: its parameters select the JavaScript file that
//! `cfgengine "jsdt"` runs (the engine itself, QuickJS here where Kamailio embeds Duktape,
//! lives in the `engines` crate), and its RPC commands (`app_jsdt.reload`,
//! `app_jsdt.api_list`).

use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::core::Core;
use crate::rpc::RpcError;
use serde_json::Value as Json;

pub static MODULE: ModuleDef = ModuleDef {
    name: "app_jsdt",
    params: &[
        ParamDef::str("load"),
        // Kamailio: whether the nodejs-style `require()` loader is initialised. ksr's engine
        // has no module loader either way; the value is accepted.
        ParamDef::int("mode"),
    ],
    register,
    init: Some(init),
    notice: None,
};

fn register(r: &mut Registrar<'_>) {
    r.rpc.add(
        "app_jsdt.reload",
        "Reload the JavaScript file in every worker before its next message",
        rpc_reload,
    );
    r.rpc.add(
        "app_jsdt.api_list",
        "List the KEMI functions the JavaScript engine exports",
        rpc_api_list,
    );
}

fn init(i: &mut InitCtx<'_>) -> Result<(), String> {
    i.states.app_jsdt.script = i.params.str("load");
    Ok(())
}

fn rpc_reload(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    crate::engine::rpc_reload("app_jsdt", &core.m.app_jsdt)
}

fn rpc_api_list(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    Ok(crate::engine::rpc_api_list(core))
}
