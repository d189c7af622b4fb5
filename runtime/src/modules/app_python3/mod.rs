//! Kamailio's `app_python3` module: its parameters select the Python script that
//! `cfgengine "python"` runs (the engine itself lives in the `engines` crate), and its RPC
//! commands, under Kamailio's names `app_python.reload` and `app_python.api_list`.

use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::core::Core;
use crate::rpc::RpcError;
use serde_json::Value as Json;

/// Kamailio's default `load` value.
pub const DEFAULT_SCRIPT: &str = "/usr/local/etc/kamailio/handler.py";

pub static MODULE: ModuleDef = ModuleDef {
    name: "app_python3",
    params: &[
        ParamDef::str("load"),
        // The older name of `load`.
        ParamDef::str("script_name"),
        ParamDef::str("mod_init_function"),
        ParamDef::str("child_init_method"),
        // Kamailio's GIL handling per process; ksr always holds the GIL only while script
        // code runs for a message (see README, "Python and the GIL").
        ParamDef::int("threads_mode"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// The script path: `load` or its alias `script_name`, whichever was set last wins in
/// Kamailio (both write the same variable); ksr takes `load` first.
pub fn script(p: &super::ModParams) -> String {
    p.str("load")
        .or_else(|| p.str("script_name"))
        .unwrap_or_else(|| DEFAULT_SCRIPT.to_string())
}

fn register(r: &mut Registrar<'_>) {
    r.rpc.add(
        "app_python.reload",
        "Reload the Python script in every worker before its next message",
        rpc_reload,
    );
    r.rpc.add(
        "app_python.api_list",
        "List the KEMI functions the Python engine exports",
        rpc_api_list,
    );
}

fn init(i: &mut InitCtx<'_>) -> Result<(), String> {
    i.states.app_python3.script = Some(script(i.params));
    Ok(())
}

fn rpc_reload(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    crate::engine::rpc_reload("app_python3", &core.m.app_python3)
}

fn rpc_api_list(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    Ok(crate::engine::rpc_api_list(core))
}
