//! Process-wide state and start-up: from a parsed cfg to a [`Core`] every worker shares.

use crate::config::CoreConfig;
use crate::ctx::Ctx;
use crate::modules::{
    self, Hooks, InitCtx, ModParams, ModuleDef, ModuleStates, Registrar, TimerDef,
};
use crate::rpc::RpcRegistry;
use crate::socket::Myself;
use crate::transport::{Listener, Sender};
use compiler::ast::{self, ItemKind, ModParamValue, Span};
use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::AtomicBool;
use vm::Value;
use vm::ksr::KsrTable;
use vm::pv::PvRegistry;

/// Shared by every worker; built once and leaked, so it is `&'static`.
pub struct Core {
    pub cfg: CoreConfig,
    pub listeners: Vec<Listener>,
    pub myself: RwLock<Myself>,
    pub sender: Box<dyn Sender>,
    pub ksr: &'static KsrTable<Ctx>,
    pub pvs: &'static PvRegistry<Ctx>,
    /// Loaded module names, in load order.
    pub loaded: Vec<&'static str>,
    /// Module shared state.
    pub m: ModuleStates,
    pub rpc: RpcRegistry,
    pub hooks: Hooks,
    pub timers: Vec<TimerDef>,
    pub stats: crate::stats::Stats,
    pub started_at: std::time::SystemTime,
    pub workdir: PathBuf,
    pub shutdown: AtomicBool,
}

impl Core {
    pub fn is_loaded(&self, module: &str) -> bool {
        self.loaded.contains(&module)
    }

    /// `host:port` is this server (`myself`).
    pub fn is_myself(
        &self,
        host: &[u8],
        port: Option<u16>,
        proto: Option<crate::transport::Proto>,
    ) -> bool {
        let own = match self.myself.read() {
            Ok(m) => m.check(host, port, proto),
            Err(p) => p.into_inner().check(host, port, proto),
        };
        // Modules registering as `myself` (domain's `register_myself`), any port.
        own || self.m.domain.check_self(host)
    }

    /// `host` (any port) is one of our sockets or aliases.
    pub fn is_myself_any_port(&self, host: &[u8], proto: Option<crate::transport::Proto>) -> bool {
        let own = match self.myself.read() {
            Ok(m) => m.check_any_port(host, proto),
            Err(p) => p.into_inner().check_any_port(host, proto),
        };
        // Modules registering as `myself` (domain's `register_myself`), any port.
        own || self.m.domain.check_self(host)
    }
}

/// A start-up error tied to a place in the cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    pub span: Span,
    pub message: String,
    /// What the error is about.
    pub kind: SetupErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupErrorKind {
    /// A global parameter.
    Core,
    /// A `loadmodule` naming a module ksr does not provide.
    LoadModule,
    /// A `modparam` (unknown module or parameter, wrong type).
    ModParam,
}

/// The cfg read and the modules registered, before anything is bound or started. `ksr check`
/// stops here; `ksr run` goes on to [`Setup::into_core`].
pub struct Setup {
    pub cfg: CoreConfig,
    pub modules: Vec<(&'static ModuleDef, ModParams)>,
    pub table: KsrTable<Ctx>,
    pub pvs: PvRegistry<Ctx>,
    pub rpc: RpcRegistry,
    pub hooks: Hooks,
    pub timers: Vec<TimerDef>,
    pub stats: crate::stats::StatsRegistry,
    /// Notices to print at start-up (ignored parameters, modules without effect).
    pub notices: Vec<String>,
}

impl Setup {
    /// Reads global parameters, resolves `loadmodule`s, registers every loaded module's
    /// exports and applies `modparam`s. Reports every problem found, not just the first.
    pub fn from_config(config: &ast::Config) -> Result<Setup, Vec<SetupError>> {
        let (setup, errors) = Setup::from_config_partial(config);
        if errors.is_empty() {
            Ok(setup)
        } else {
            Err(errors)
        }
    }

    /// Like [`Setup::from_config`], but also returns the setup built from everything that
    /// was valid, so `ksr check` can go on to check the routing blocks against the modules
    /// that did load.
    pub fn from_config_partial(config: &ast::Config) -> (Setup, Vec<SetupError>) {
        let mut errors = Vec::new();
        let cfg = match CoreConfig::from_ast(config) {
            Ok(c) => c,
            Err(es) => {
                errors.extend(es.into_iter().map(|e| SetupError {
                    span: e.span,
                    message: e.message,
                    kind: SetupErrorKind::Core,
                }));
                CoreConfig::default()
            }
        };
        let mut setup = Setup {
            cfg,
            modules: Vec::new(),
            table: KsrTable::new(),
            pvs: PvRegistry::new(),
            rpc: RpcRegistry::default(),
            hooks: Hooks::default(),
            timers: Vec::new(),
            stats: crate::stats::StatsRegistry::with_core(),
            notices: Vec::new(),
        };
        setup.register(&modules::core::MODULE);
        for item in &config.items {
            if let ItemKind::LoadModule { path, .. } = &item.kind {
                let arg = String::from_utf8_lossy(path);
                match modules::find(&arg) {
                    Some(def) if setup.modules.iter().any(|(m, _)| m.name == def.name) => {}
                    Some(def) => {
                        setup.register(def);
                        if let Some(n) = def.notice {
                            setup.notices.push(format!("module {}: {n}", def.name));
                        }
                    }
                    None => errors.push(SetupError {
                        span: item.span,
                        message: format!(
                            "module '{}' is not available in ksr (loadmodule \"{arg}\")",
                            modules::module_name(&arg)
                        ),
                        kind: SetupErrorKind::LoadModule,
                    }),
                }
            }
        }
        for item in &config.items {
            if let ItemKind::ModParam {
                modules: mods,
                param,
                value,
                ..
            } = &item.kind
            {
                let param = String::from_utf8_lossy(param);
                for module in String::from_utf8_lossy(mods).split('|') {
                    if let Err(message) = setup.set_param(module.trim(), &param, value) {
                        errors.push(SetupError {
                            span: item.span,
                            message,
                            kind: SetupErrorKind::ModParam,
                        });
                    }
                }
            }
        }
        if !setup.cfg.ignored.is_empty() {
            setup.notices.push(format!(
                "core parameters accepted without effect in ksr: {}",
                setup.cfg.ignored.join(", ")
            ));
        }
        (setup, errors)
    }

    fn register(&mut self, def: &'static ModuleDef) {
        let mut r = Registrar {
            owner: def.name,
            table: &mut self.table,
            pvs: &mut self.pvs,
            rpc: &mut self.rpc,
            hooks: &mut self.hooks,
            timers: &mut self.timers,
            stats: &mut self.stats,
        };
        (def.register)(&mut r);
        if def.name != modules::core::MODULE.name {
            self.modules.push((def, ModParams::default()));
        }
    }

    fn set_param(
        &mut self,
        module: &str,
        param: &str,
        value: &ModParamValue,
    ) -> Result<(), String> {
        let Some((def, params)) = self.modules.iter_mut().find(|(m, _)| m.name == module) else {
            return Err(match modules::find(module) {
                Some(_) => format!("modparam: module '{module}' is not loaded"),
                None => format!("modparam: module '{module}' is not available in ksr"),
            });
        };
        let Some(pdef) = def.params.iter().find(|p| p.name == param) else {
            return Err(format!(
                "modparam: module '{module}' has no parameter '{param}'"
            ));
        };
        let v = match value {
            ModParamValue::Int(i) => Value::Int(*i),
            ModParamValue::Str(s) => Value::Str(s.clone()),
            ModParamValue::Pv(pv) => {
                return Err(format!(
                    "modparamx: pseudo-variable values ({}) are not supported yet",
                    pv.text
                ));
            }
        };
        match (pdef.kind, &v) {
            (modules::ParamKind::Int, Value::Str(s))
                if std::str::from_utf8(s)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .is_none() =>
            {
                return Err(format!("modparam: {module}.{param} expects an integer"));
            }
            (modules::ParamKind::Str, Value::Int(_)) => {
                return Err(format!("modparam: {module}.{param} expects a string"));
            }
            _ => {}
        }
        params.push(pdef.name, v);
        Ok(())
    }

    /// Names of the loaded modules.
    pub fn loaded(&self) -> Vec<&'static str> {
        self.modules.iter().map(|(m, _)| m.name).collect()
    }

    /// Runs every module's `init` and builds the shared [`Core`].
    pub fn into_core(
        self,
        listeners: Vec<Listener>,
        sender: Box<dyn Sender>,
        workdir: PathBuf,
    ) -> Result<&'static Core, String> {
        let loaded = self.loaded();
        let mut states = ModuleStates::default();
        for (def, params) in &self.modules {
            if let Some(init) = def.init {
                let mut ictx = InitCtx {
                    params,
                    cfg: &self.cfg,
                    states: &mut states,
                    workdir: &workdir,
                    loaded: &loaded,
                    stats: &self.stats,
                    pvs: &self.pvs,
                };
                init(&mut ictx).map_err(|e| format!("module {}: {e}", def.name))?;
            }
        }
        crate::dns::SRV_LB.store(self.cfg.dns_srv_lb, std::sync::atomic::Ordering::Relaxed);
        let myself = Myself::new(&listeners, &self.cfg);
        let core = Core {
            myself: RwLock::new(myself),
            listeners,
            sender,
            ksr: Box::leak(Box::new(self.table)),
            pvs: Box::leak(Box::new(self.pvs)),
            loaded,
            m: states,
            rpc: self.rpc,
            hooks: self.hooks,
            timers: self.timers,
            stats: self.stats.into_stats(),
            started_at: std::time::SystemTime::now(),
            workdir,
            shutdown: AtomicBool::new(false),
            cfg: self.cfg,
        };
        Ok(Box::leak(Box::new(core)))
    }
}
