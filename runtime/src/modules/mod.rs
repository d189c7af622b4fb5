//! The module framework, and one folder per Kamailio module.
//!
//! A module is a [`ModuleDef`]: its name, its parameters (for `modparam`), a `register`
//! function that adds its exports to the KSR table, its pseudo-variables, RPC commands, hooks
//! and timers, and an `init` function that builds its shared state from the parameters. Only
//! modules the cfg loads are registered, so calling a function of a module that is not loaded
//! (or that ksr does not ship) is reported by `ksr check`.

use crate::config::CoreConfig;
use crate::ctx::Ctx;
use crate::rpc::RpcRegistry;
use std::time::Duration;
use vm::ksr::{KsrFn, KsrTable, ParamHint, ParamType, RetType};
use vm::pv::PvRegistry;
use vm::{ExportSig, RouteMask, Value};

/// Type of a module parameter value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Int,
    Str,
    /// Either; the module converts.
    Any,
}

#[derive(Clone, Copy, Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: ParamKind,
    /// May be given several times (e.g. htable's `htable`), every value is kept.
    pub multi: bool,
}

impl ParamDef {
    pub const fn int(name: &'static str) -> ParamDef {
        ParamDef {
            name,
            kind: ParamKind::Int,
            multi: false,
        }
    }
    pub const fn str(name: &'static str) -> ParamDef {
        ParamDef {
            name,
            kind: ParamKind::Str,
            multi: false,
        }
    }
    pub const fn any(name: &'static str) -> ParamDef {
        ParamDef {
            name,
            kind: ParamKind::Any,
            multi: false,
        }
    }
    pub const fn multi(self) -> ParamDef {
        ParamDef {
            multi: true,
            ..self
        }
    }
}

/// The values given to a module's parameters with `modparam`.
#[derive(Clone, Debug, Default)]
pub struct ModParams {
    values: Vec<(&'static str, Value)>,
}

impl ModParams {
    pub fn push(&mut self, name: &'static str, value: Value) {
        self.values.push((name, value));
    }

    /// The last value set for `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Every value set for `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.values
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Integer value; strings holding numbers are accepted like Kamailio does.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.get(name) {
            Some(Value::Int(i)) => *i,
            Some(Value::Str(s)) => std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(default),
            _ => default,
        }
    }

    pub fn str(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            Value::Int(i) => Some(i.to_string()),
            Value::Null => None,
        }
    }

    pub fn str_or(&self, name: &str, default: &str) -> String {
        self.str(name).unwrap_or_else(|| default.to_string())
    }
}

/// Everything a module's `init` can read and build.
pub struct InitCtx<'a> {
    pub params: &'a ModParams,
    pub cfg: &'a CoreConfig,
    pub states: &'a mut ModuleStates,
    /// Working directory (relative database paths, files).
    pub workdir: &'a std::path::Path,
    /// Names of every loaded module.
    pub loaded: &'a [&'static str],
    /// Counter ids by name (counters are declared while registering).
    pub stats: &'a crate::stats::StatsRegistry,
    /// Pseudo-variable classes, to check the ones module parameters name.
    pub pvs: &'a PvRegistry<Ctx>,
}

pub type InitFn = fn(&mut InitCtx<'_>) -> Result<(), String>;

/// A module ksr ships.
pub struct ModuleDef {
    pub name: &'static str,
    pub params: &'static [ParamDef],
    pub register: fn(&mut Registrar<'_>),
    pub init: Option<InitFn>,
    /// Printed at start-up when the module is loaded (e.g. "accepted, has no effect").
    pub notice: Option<&'static str>,
}

/// Per-module shared state, one field per module that keeps any. Module `init` functions
/// fill them; KSR functions reach them through `ctx.core.m`.
#[derive(Default)]
pub struct ModuleStates {
    pub pv: pv::PvState,
    pub xlog: xlog::XlogState,
    pub maxfwd: maxfwd::MaxfwdState,
    pub sanity: sanity::SanityState,
    pub cfgutils: cfgutils::CfgutilsState,
    pub siputils: siputils::SiputilsState,
    pub htable: htable::HtableState,
    pub sl: sl::SlState,
    pub acc: acc::AccState,
    pub jsonrpcs: jsonrpcs::JsonrpcsState,
    pub pike: pike::PikeState,
    pub sqlops: sqlops::SqlopsState,
    pub xhttp: xhttp::XhttpState,
    pub path: path::PathState,
    pub uac: uac::UacState,
    pub app_lua: crate::engine::KemiApp,
    pub app_python3: crate::engine::KemiApp,
    pub app_jsdt: crate::engine::KemiApp,
    pub tm: tm::TmState,
    pub rr: rr::RrState,
    pub usrloc: usrloc::UsrlocState,
    pub registrar: registrar::RegistrarState,
    pub auth: auth::AuthState,
    pub auth_db: auth_db::AuthDbState,
    pub nathelper: nathelper::NathelperState,
    pub rtpproxy: rtpproxy::RtpproxyState,
    pub permissions: permissions::PermissionsState,
    pub dispatcher: dispatcher::DispatcherState,
    pub domain: domain::DomainState,
    pub alias_db: alias_db::AliasDbState,
    pub speeddial: speeddial::SpeeddialState,
}

/// Module hooks the core calls at fixed points of message processing.
#[derive(Default)]
pub struct Hooks {
    /// Before `request_route` runs (tm resets its per-message state here).
    /// Edits that depend on the socket a request leaves from (path's Path header), asked for
    /// every copy of the request sent (stateless forward, each tm branch).
    pub outbound_edits: Vec<fn(&Ctx, &crate::transport::Listener) -> Vec<crate::sip::Edit>>,
    /// An HTTP request (xhttp): true when a module handled it.
    pub http_request: Vec<fn(&mut Ctx) -> bool>,
    pub request_pre: Vec<fn(&mut Ctx)>,
    /// After `request_route` finished.
    pub request_post: Vec<fn(&mut Ctx)>,
    /// A reply arrived (after `reply_route`): returns true when the module consumed it
    /// (tm matched it to a transaction), false to let the core forward it statelessly.
    pub reply_received: Vec<fn(&mut Ctx) -> bool>,
    /// Called once in each worker after its context is created.
    pub worker_init: Vec<fn(&mut Ctx)>,
    /// Background services (RPC transports ...), started once the workers are up. Each
    /// spawns its own threads and returns them; they end soon after `core.shutdown` is set
    /// (the server joins them when it stops).
    pub services: Vec<ServiceFn>,
    /// Dedicated threads (tm's millisecond timer): each runs `run` once with its own
    /// context; `run` returns when `core.shutdown` is set.
    pub threads: Vec<ThreadDef>,
    /// A reply of a transaction went upstream (Kamailio's TMCB_RESPONSE_OUT): every relayed
    /// provisional (above 100) and the final one (once), with the transaction's request
    /// context restored in `Ctx` (message, flags, AVPs/XAVPs). For modules such as acc.
    pub tm_response_out: Vec<fn(&mut Ctx, &tm::TmReply<'_>)>,
    /// Every branch of a transaction failed and failure handling starts (Kamailio's
    /// TMCB_ON_FAILURE): called with the request context restored, before failure_route.
    pub tm_on_failure: Vec<fn(&mut Ctx, &tm::TmReply<'_>)>,
    /// Called once by the timer thread when the server stops (usrloc flushes its write-back
    /// cache here).
    pub shutdown: Vec<fn(&mut Ctx)>,
}

/// A dedicated thread a module asks for.
#[derive(Clone, Copy)]
pub struct ThreadDef {
    pub name: &'static str,
    pub run: fn(&mut Ctx),
}

/// Starts a background service; returns its threads.
pub type ServiceFn = fn(&'static crate::Core) -> Vec<std::thread::JoinHandle<()>>;

/// A periodic job run by the timer thread with its own context.
#[derive(Clone, Copy)]
pub struct TimerDef {
    pub name: &'static str,
    pub every: Duration,
    pub func: fn(&mut Ctx),
}

/// What a module's `register` adds things to.
pub struct Registrar<'a> {
    /// The module registering (owner of its exports).
    pub owner: &'static str,
    pub table: &'a mut KsrTable<Ctx>,
    pub pvs: &'a mut PvRegistry<Ctx>,
    pub rpc: &'a mut RpcRegistry,
    pub hooks: &'a mut Hooks,
    pub timers: &'a mut Vec<TimerDef>,
    /// Statistics counters (`stats.get_statistics`).
    pub stats: &'a mut crate::stats::StatsRegistry,
}

/// A just-registered export, to attach native names and hints to.
pub struct Reg<'r> {
    table: &'r mut KsrTable<Ctx>,
    idx: u32,
    arity: u8,
}

impl Reg<'_> {
    /// Also callable from native cfg as `name(...)` with the same parameters, in route kinds
    /// `routes`.
    pub fn native(self, name: &str, routes: RouteMask) -> Self {
        self.table.add_native(name, self.arity, self.idx, routes);
        self
    }

    pub fn hints(self, hints: &[ParamHint]) -> Self {
        self.table.set_hints(self.idx, hints);
        self
    }

    pub fn index(&self) -> u32 {
        self.idx
    }
}

impl Registrar<'_> {
    fn add(
        &mut self,
        module: &str,
        name: &str,
        params: &[ParamType],
        ret: RetType,
        kemi: bool,
        func: KsrFn<Ctx>,
    ) -> Reg<'_> {
        let sig = ExportSig {
            owner: self.owner.to_string(),
            module: module.to_string(),
            name: name.to_string(),
            params: params.to_vec(),
            hints: vec![ParamHint::Plain; params.len()],
            ret,
            kemi,
        };
        let idx = self.table.add(sig, func);
        Reg {
            table: self.table,
            idx,
            arity: params.len() as u8,
        }
    }

    /// A KEMI export `KSR.module.name` (module "" for `KSR.name`).
    pub fn kemi(
        &mut self,
        module: &str,
        name: &str,
        params: &[ParamType],
        ret: RetType,
        func: KsrFn<Ctx>,
    ) -> Reg<'_> {
        self.add(module, name, params, ret, true, func)
    }

    /// A function only native cfg can call (no KEMI equivalent, or different semantics).
    pub fn native(
        &mut self,
        name: &str,
        params: &[ParamType],
        routes: RouteMask,
        func: KsrFn<Ctx>,
    ) -> Reg<'_> {
        let owner = self.owner;
        self.add(owner, name, params, RetType::Int, false, func)
            .native(name, routes)
    }
}

/// Every module ksr ships, in registration order.
pub mod acc;
pub mod accepted;
pub mod alias_db;
pub mod app_jsdt;
pub mod app_lua;
pub mod app_python3;
pub mod auth;
pub mod auth_db;
pub mod cfgutils;
pub mod core;
pub mod corex;
pub mod db_sqlite;
pub mod dispatcher;
pub mod domain;
pub mod htable;
pub mod jsonrpcs;
pub mod kemix;
pub mod kex;
pub mod maxfwd;
pub mod nathelper;
pub mod path;
pub mod permissions;
pub mod pike;
pub mod pv;
pub mod registrar;
pub mod rr;
pub mod rtpproxy;
pub mod sanity;
pub mod siputils;
pub mod sl;
pub mod speeddial;
pub mod sqlops;
pub mod textops;
pub mod textopsx;
pub mod tm;
pub mod tmx;
pub mod uac;
pub mod usrloc;
pub mod xhttp;
pub mod xlog;

pub static MODULES: &[&ModuleDef] = &[
    &pv::MODULE,
    &sl::MODULE,
    &xlog::MODULE,
    &maxfwd::MODULE,
    &textops::MODULE,
    &sanity::MODULE,
    &siputils::MODULE,
    &kex::MODULE,
    &cfgutils::MODULE,
    &corex::MODULE,
    &app_lua::MODULE,
    &app_python3::MODULE,
    &app_jsdt::MODULE,
    &htable::MODULE,
    &pike::MODULE,
    &kemix::MODULE,
    &jsonrpcs::MODULE,
    &db_sqlite::MODULE,
    &acc::MODULE,
    &accepted::CTL,
    &accepted::CFG_RPC,
    &accepted::DEBUGGER,
    &accepted::COUNTERS,
    &tm::MODULE,
    &tmx::MODULE,
    &rr::MODULE,
    &usrloc::MODULE,
    &registrar::MODULE,
    &auth::MODULE,
    &auth_db::MODULE,
    &nathelper::MODULE,
    &rtpproxy::MODULE,
    &permissions::MODULE,
    &domain::MODULE,
    &textopsx::MODULE,
    &sqlops::MODULE,
    &xhttp::MODULE,
    &path::MODULE,
    &uac::MODULE,
    &dispatcher::MODULE,
    &alias_db::MODULE,
    &speeddial::MODULE,
];

/// Finds a module by the name `loadmodule` uses: a path, with or without `.so`.
pub fn find(loadmodule_arg: &str) -> Option<&'static ModuleDef> {
    let base = loadmodule_arg.rsplit('/').next().unwrap_or(loadmodule_arg);
    let name = base.strip_suffix(".so").unwrap_or(base);
    MODULES.iter().copied().find(|m| m.name == name)
}

/// Name part of a `loadmodule` argument (`/x/tm.so` -> `tm`).
pub fn module_name(loadmodule_arg: &str) -> &str {
    let base = loadmodule_arg.rsplit('/').next().unwrap_or(loadmodule_arg);
    base.strip_suffix(".so").unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modparams_keep_order_and_convert() {
        let mut p = ModParams::default();
        p.push("fr_timer", Value::from("30000"));
        p.push("htable", Value::from("a=>size=8"));
        p.push("htable", Value::from("b=>size=4"));
        assert_eq!(p.int("fr_timer", 0), 30000);
        assert_eq!(p.int("missing", 7), 7);
        assert_eq!(p.all("htable").count(), 2);
        assert_eq!(p.str("htable").as_deref(), Some("b=>size=4"));
        assert_eq!(module_name("/usr/lib/kamailio/modules/tm.so"), "tm");
        assert_eq!(module_name("sl"), "sl");
    }
}
