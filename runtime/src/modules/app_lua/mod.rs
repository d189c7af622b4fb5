//! Kamailio's `app_lua` module: its parameters select the Lua script that `cfgengine "lua"`
//! runs (the engine itself lives in the `engines` crate).

use super::{ModuleDef, ParamDef, Registrar};

pub static MODULE: ModuleDef = ModuleDef {
    name: "app_lua",
    params: &[
        ParamDef::str("load").multi(),
        ParamDef::any("reload"),
        ParamDef::int("log_mode"),
        ParamDef::str("register"),
    ],
    register,
    init: None,
    notice: None,
};

fn register(_r: &mut Registrar<'_>) {}
