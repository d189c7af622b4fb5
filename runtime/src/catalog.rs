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

/// `module<TAB>name` for every pseudo-variable class Kamailio 5.6's modules export (the
/// core's are left out: ksr always has those). For "which module has it" hints.
const KAMAILIO_PVS: &str = include_str!("modules/kamailio-pvs.tsv");

/// Pseudo-variable class name -> module, as [`exporters`] for functions.
fn pv_exporters() -> &'static HashMap<String, String> {
    &exporter_maps().1
}

/// Native function name -> module, shipped modules first, then Kamailio's list.
fn exporters() -> &'static HashMap<String, String> {
    &exporter_maps().0
}

/// (functions, pseudo-variables) -> exporting module.
fn exporter_maps() -> &'static (HashMap<String, String>, HashMap<String, String>) {
    static MAPS: OnceLock<(HashMap<String, String>, HashMap<String, String>)> = OnceLock::new();
    MAPS.get_or_init(|| {
        let mut pv_map: HashMap<String, String> = HashMap::new();
        for line in KAMAILIO_PVS.lines() {
            if let Some((m, n)) = line.split_once('\t') {
                pv_map.entry(n.to_string()).or_insert_with(|| m.to_string());
            }
        }
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
            for class in pvs.classes() {
                pv_map.insert(class.name.to_string(), def.name.to_string());
            }
        }
        (map, pv_map)
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

    fn pv_exporter_of(&self, name: &str) -> Option<String> {
        pv_exporters().get(name).cloned()
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
        let p = pv_exporters();
        assert_eq!(p.get("rm").map(String::as_str), Some("pv"));
        assert_eq!(p.get("T_reply_code").map(String::as_str), Some("tmx"));
        assert_eq!(p.get("dlg_var").map(String::as_str), Some("dialog"));
    }
}
