//! Control-plane modules Kamailio's example configs load that ksr accepts without
//! implementing yet: they take their parameters (so the configs start unchanged), export
//! nothing (so a script calling one of their functions is reported by `ksr check`), and
//! print a notice at start-up. None of them changes how messages are routed.

use super::{ModuleDef, ParamDef, Registrar};

fn register(_r: &mut Registrar<'_>) {}

/// `ctl`: Kamailio's binrpc control socket (kamcmd). ksr serves RPC through jsonrpcs.
pub static CTL: ModuleDef = ModuleDef {
    name: "ctl",
    params: &[
        ParamDef::str("binrpc").multi(),
        ParamDef::any("binrpc_buffer_size"),
        ParamDef::int("mode"),
        ParamDef::any("user"),
        ParamDef::any("group"),
        ParamDef::any("fifo"),
        ParamDef::int("autoconversion"),
        ParamDef::int("binrpc_max_body_size"),
        ParamDef::int("binrpc_struct_max_body_size"),
    ],
    register,
    init: None,
    notice: Some(
        "accepted without effect: no binrpc control socket (kamcmd); use jsonrpcs and `ksr rpc`",
    ),
};

/// `cfg_rpc`: run-time changes of core/module settings over RPC.
pub static CFG_RPC: ModuleDef = ModuleDef {
    name: "cfg_rpc",
    params: &[],
    register,
    init: None,
    notice: Some("accepted without effect: the cfg.* RPC commands are not provided yet"),
};

/// `debugger`: cfg tracing, breakpoints and per-module log levels.
pub static DEBUGGER: ModuleDef = ModuleDef {
    name: "debugger",
    params: &[
        ParamDef::int("cfgtrace"),
        ParamDef::int("cfgtrace_format"),
        ParamDef::int("breakpoint"),
        ParamDef::int("log_level"),
        ParamDef::str("log_level_name"),
        ParamDef::str("log_facility"),
        ParamDef::str("log_prefix"),
        ParamDef::int("step_usleep"),
        ParamDef::int("step_loops"),
        ParamDef::int("mod_hash_size"),
        ParamDef::int("mod_level_mode"),
        ParamDef::str("mod_level").multi(),
        ParamDef::int("mod_facility_mode"),
        ParamDef::str("mod_facility").multi(),
        ParamDef::int("log_assign"),
        ParamDef::int("cfgpkgcheck"),
        ParamDef::int("reset_msgid"),
        ParamDef::int("cfgtest"),
    ],
    register,
    init: None,
    notice: Some(
        "accepted without effect: cfg tracing, breakpoints and per-module log levels are not provided yet",
    ),
};

/// `counters`: script-defined counters (`cnt_inc` ...). Its functions are not provided
/// yet, so a script using them fails `ksr check`; loading it alone is harmless.
pub static COUNTERS: ModuleDef = ModuleDef {
    name: "counters",
    params: &[
        ParamDef::str("script_counter").multi(),
        ParamDef::str("script_cnt_grp_name"),
    ],
    register,
    init: None,
    notice: Some("accepted: its functions (cnt_inc, cnt_add, cnt_reset) are not provided yet"),
};
