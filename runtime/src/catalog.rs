//! What `ksr check` knows about modules: the ones the cfg loaded, the ones this binary ships,
//! their parameters, and which module exports a function (shipped or only in Kamailio), so a
//! call to a function of a module that is not loaded — or not provided by ksr — is reported
//! with the fix.

use crate::core::Setup;
use crate::modules::{self, Hooks, ParamKind as ModKind, Registrar};
use crate::rpc::RpcRegistry;
use compiler::check::{ModuleCatalog, ParamKind};
use std::collections::HashMap;
use std::sync::OnceLock;
use vm::ksr::KsrTable;
use vm::pv::PvRegistry;

/// `module<TAB>function` for every function Kamailio 5.6's modules export to the cfg (from
/// the project's API catalogue). Only names: used for "which module has it" hints.
const KAMAILIO_FUNCTIONS: &str = include_str!("modules/kamailio-functions.tsv");

/// Native function name -> module, shipped modules first, then Kamailio's list.
fn exporters() -> &'static HashMap<String, String> {
    static MAP: OnceLock<HashMap<String, String>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = HashMap::new();
        for line in KAMAILIO_FUNCTIONS.lines() {
            if let Some((m, f)) = line.split_once('\t') {
                // Several modules export some names (`save`, `lookup`): name the general
                // one rather than an IMS variant.
                let keep = map
                    .get(f)
                    .is_some_and(|old: &String| !old.starts_with("ims_") || m.starts_with("ims_"));
                if !keep {
                    map.insert(f.to_string(), m.to_string());
                }
            }
        }
        // What ksr's modules register wins (some functions moved between modules).
        for def in modules::MODULES {
            let mut table = KsrTable::new();
            let mut pvs = PvRegistry::new();
            let mut rpc = RpcRegistry::default();
            let mut hooks = Hooks::default();
            let mut timers = Vec::new();
            let mut stats = crate::stats::StatsRegistry::default();
            let mut r = Registrar {
                owner: def.name,
                table: &mut table,
                pvs: &mut pvs,
                rpc: &mut rpc,
                hooks: &mut hooks,
                timers: &mut timers,
                stats: &mut stats,
            };
            (def.register)(&mut r);
            for alias in table.natives() {
                map.insert(alias.name.clone(), def.name.to_string());
            }
        }
        map
    })
}

/// Module facts for the compiler's checks, from a (possibly partial) [`Setup`].
pub struct SetupCatalog<'a> {
    setup: &'a Setup,
}

impl<'a> SetupCatalog<'a> {
    pub fn new(setup: &'a Setup) -> SetupCatalog<'a> {
        SetupCatalog { setup }
    }
}

impl ModuleCatalog for SetupCatalog<'_> {
    fn is_loaded(&self, module: &str) -> bool {
        self.setup.modules.iter().any(|(m, _)| m.name == module)
    }

    fn is_known(&self, module: &str) -> bool {
        modules::find(module).is_some()
    }

    fn param(&self, module: &str, param: &str) -> Option<ParamKind> {
        let def = modules::find(module)?;
        let p = def.params.iter().find(|p| p.name == param)?;
        Some(match p.kind {
            ModKind::Int => ParamKind::Int,
            ModKind::Str => ParamKind::Str,
            ModKind::Any => ParamKind::Any,
        })
    }

    fn exporter_of(&self, name: &str) -> Option<String> {
        exporters().get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporters_cover_shipped_and_kamailio_modules() {
        let m = exporters();
        assert_eq!(m.get("sl_send_reply").map(String::as_str), Some("sl"));
        assert_eq!(m.get("t_relay").map(String::as_str), Some("tm"));
        assert_eq!(m.get("save").map(String::as_str), Some("registrar"));
        assert!(m.get("no_such_function").is_none());
    }
}
