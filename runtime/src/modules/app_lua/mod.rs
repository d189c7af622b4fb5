//! Kamailio's `app_lua` module: its parameters select the Lua script that `cfgengine "lua"`
//! runs (the engine itself lives in the `engines` crate), and its RPC commands
//! (`app_lua.reload`, `app_lua.api_list`).

use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::core::Core;
use crate::rpc::RpcError;
use serde_json::Value as Json;

pub static MODULE: ModuleDef = ModuleDef {
    name: "app_lua",
    params: &[
        ParamDef::str("load").multi(),
        ParamDef::any("reload"),
        ParamDef::int("log_mode"),
        ParamDef::str("register"),
    ],
    register,
    init: Some(init),
    notice: None,
};

fn register(r: &mut Registrar<'_>) {
    r.rpc.add(
        "app_lua.reload",
        "Reload the Lua script in every worker before its next message",
        rpc_reload,
    );
    r.rpc.add(
        "app_lua.api_list",
        "List the KEMI functions the Lua engine exports",
        rpc_api_list,
    );
}

fn init(i: &mut InitCtx<'_>) -> Result<(), String> {
    i.states.app_lua.script = i.params.str("load");
    i.states.app_lua.reload_disabled = i.params.int("reload", 1) == 0;
    Ok(())
}

fn rpc_reload(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    crate::engine::rpc_reload("app_lua", &core.m.app_lua)
}

fn rpc_api_list(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    Ok(crate::engine::rpc_api_list(core))
}

#[cfg(test)]
mod tests {
    use crate::engine::{KemiApp, rpc_reload};

    #[test]
    fn reload_rpc_bumps_the_generation_unless_disabled() {
        let mut app = KemiApp::default();
        assert_eq!(rpc_reload("app_lua", &app).err().map(|e| e.code), Some(500));
        app.script = Some("x.lua".into());
        let r = rpc_reload("app_lua", &app).expect("reload");
        assert_eq!((r["old"].as_u64(), r["new"].as_u64()), (Some(0), Some(1)));
        assert_eq!(app.reload.get(), 1);
        app.reload_disabled = true;
        assert!(rpc_reload("app_lua", &app).is_err());
        assert_eq!(app.reload.get(), 1);
    }
}
