//! The routing-engine interface: what the core calls to run routing logic, whatever language
//! it is written in (native cfg through the VM, or a KEMI script).

use crate::core::Core;
use crate::ctx::Ctx;
use std::rc::Rc;

/// Which routing logic to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTarget<'a> {
    /// `request_route` / `ksr_request_route`.
    Request,
    /// `reply_route` / `ksr_reply_route`.
    Reply,
    /// `onsend_route` / `ksr_onsend_route`.
    OnSend,
    /// `failure_route[name]` / the KEMI callback `name`.
    Failure(&'a str),
    /// `branch_route[name]`.
    Branch(&'a str),
    /// `onreply_route[name]`.
    OnReply(&'a str),
    /// `event_route[tm:branch-failure:name]` / `t_on_branch_failure` callback.
    BranchFailure(&'a str),
    /// `event_route[module:event]` / a module `event_callback`.
    Event(&'a str),
}

/// How a routing run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The return code (`return N`, last function's code, or 1 when the block just ended).
    pub code: i32,
    /// `exit`/`drop` (or `KSR.x.exit()`) stopped the script.
    pub exit: bool,
    /// `drop` was requested.
    pub drop: bool,
    /// The target does not exist in this engine (nothing ran).
    pub missing: bool,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            code: 1,
            exit: false,
            drop: false,
            missing: true,
        }
    }
}

/// A worker's instance of a routing engine. Engines are re-entrant: a KSR function called
/// by a route (e.g. `t_relay`) may run another route (`branch_route`) through the same
/// engine while the first is still running.
pub trait RouteEngine {
    /// Runs `target` for the message in `ctx`. Script errors are logged by the engine and end
    /// the run (the outcome says how).
    fn run(&self, ctx: &mut Ctx, target: RouteTarget<'_>) -> Outcome;
    /// True when `target` exists (a `failure_route[X]` block, a KEMI function `X`).
    fn exists(&self, target: RouteTarget<'_>) -> bool;
    /// `native`, `lua`, `python`, `jsdt`.
    fn name(&self) -> &'static str;
    /// Runs the cfg's `route[name]` block in the current route type (cfgutils'
    /// `route_if_exists`); `None` when there is no such block. KEMI engines have no native
    /// route table (as in Kamailio, where the lookup goes to the empty cfg table).
    fn run_sub(&self, _ctx: &mut Ctx, _name: &str) -> Option<Outcome> {
        None
    }
    /// True when the cfg has a `route[name]` block.
    fn has_sub(&self, _name: &str) -> bool {
        false
    }
}

/// Creates the engine instance of each worker.
pub trait EngineFactory: Send + Sync {
    fn create(&self, core: &'static Core, rank: i32) -> Result<Rc<dyn RouteEngine>, String>;
}

/// A KEMI app module's reload generation (`app_lua.reload`, `app_python.reload`,
/// `app_jsdt.reload`): the RPC command bumps it; each worker compares it with the generation
/// its script was loaded at before running the next message, and reloads when they differ.
#[derive(Default, Debug)]
pub struct ReloadGen(std::sync::atomic::AtomicU64);

impl ReloadGen {
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the script for reload; returns (old, new) generations.
    pub fn bump(&self) -> (u64, u64) {
        let old = self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        (old, old + 1)
    }
}

/// The shared state of a KEMI app module (`app_lua`, `app_python3`, `app_jsdt`): its script
/// and reload generation.
#[derive(Default, Debug)]
pub struct KemiApp {
    /// The script its `load` parameter names (set by the module's init).
    pub script: Option<String>,
    pub reload: ReloadGen,
    /// `app_lua`'s `reload` parameter set to 0 turns the RPC command off.
    pub reload_disabled: bool,
}

/// The `reload` RPC answer Kamailio's app modules give: `{old, new}`.
pub fn rpc_reload(
    module: &'static str,
    app: &KemiApp,
) -> Result<serde_json::Value, crate::rpc::RpcError> {
    let Some(script) = &app.script else {
        return Err(crate::rpc::RpcError::new(500, "No script file"));
    };
    if app.reload_disabled {
        return Err(crate::rpc::RpcError::new(500, "Reload not enabled"));
    }
    let (old, new) = app.reload.bump();
    crate::klog!(
        crate::log::L_INFO,
        module,
        "marking for reload script file: {script} ({old} => {new})"
    );
    Ok(serde_json::json!({"old": old, "new": new}))
}

/// The `api_list` RPC answer: every KEMI export with its return and parameter types.
pub fn rpc_api_list(core: &Core) -> serde_json::Value {
    let mut methods = Vec::new();
    for (_, e) in core.ksr.exports() {
        if !e.sig.kemi {
            continue;
        }
        let params: Vec<&str> = e
            .sig
            .params
            .iter()
            .map(|p| match p {
                vm::ParamType::Int => "int",
                vm::ParamType::Str => "str",
            })
            .collect();
        methods.push(serde_json::json!({"func": {
            "ret": ret_name(e.sig.ret),
            "module": e.sig.module,
            "name": e.sig.name,
            "params": if params.is_empty() { "none".to_string() } else { params.join(", ") },
        }}));
    }
    serde_json::json!({"msize": methods.len(), "methods": methods})
}

/// Kamailio's name of a KEMI return type.
pub fn ret_name(r: vm::RetType) -> &'static str {
    match r {
        vm::RetType::None => "none",
        vm::RetType::Int => "int",
        vm::RetType::Bool => "bool",
        vm::RetType::Str => "str",
        vm::RetType::Xval => "xval",
    }
}
