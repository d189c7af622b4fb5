//! The KSR function table: every function a module exports, in one dense array.
//!
//! Modules register their exports at start-up. The compiler resolves native cfg calls
//! (`sl_send_reply("404", "Not here")`) through [`KsrTable::native`], KEMI engines resolve
//! `KSR.sl.sl_send_reply` through [`KsrTable::kemi`]; both end up with the same integer
//! index and call the same [`KsrFn`]. There is no size limit.
//!
//! A native alias maps `(name, arity)` to an export whose parameters are in the same order;
//! the caller converts each argument to the declared [`ParamType`] before the call (native
//! arguments are usually strings with pseudo-variables, so `"404"` becomes `404`). Where the
//! native function behaves differently from the KEMI one, the module registers a separate
//! export that is not visible to KEMI.

use crate::route::RouteMask;
use crate::value::Value;
use ahash::AHashMap;
use serde::{Deserialize, Serialize};

/// Type of a parameter as KEMI declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParamType {
    Int,
    Str,
}

/// Return type as KEMI declares it. It decides how engines convert the returned value:
/// `Int` to a number, `Bool` to a boolean (Value::Int 1/0, or <0 false), `Str` to a string or
/// nil, `Xval` to whatever the value is, `None` to nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RetType {
    None,
    Int,
    Bool,
    Str,
    Xval,
}

/// What a parameter means beyond its type, for compile-time checks of native calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParamHint {
    Plain,
    /// The name of a routing block of this kind (e.g. `t_on_failure("X")`).
    Route(crate::route::RouteKind),
    /// A regular expression (checked when constant).
    Regex,
    /// A message flag number (0..=31... Kamailio allows up to 63 with MAX_FLAG).
    Flag,
    /// A branch flag number.
    BranchFlag,
    /// A `/regex/replacement/flags` substitution, passed as written.
    Subst,
    /// The name of a pseudo-variable to write (`pv_printf("$var(x)", ...)`): passed as
    /// written, not evaluated.
    PvName,
    /// Names of pseudo-variables to write, separated by `;`, `,` or blanks
    /// (`sql_pvquery`'s result list): passed as written, each name checked.
    PvList,
    /// Kamailio's `fixup_var_pve_str`: a string that starts with a pseudo-variable is that
    /// variable alone (text after it is ignored: `"$rU is gone"` gives the user); any other
    /// string is a format.
    LeadingPv,
    /// Kamailio's `fixup_var_str`: a string that starts with a pseudo-variable is that
    /// variable alone; any other string is literal text (not expanded).
    PvOrLiteral,
}

/// The signature of one export: everything about it except the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSig {
    /// The cfg module that must be loaded (`loadmodule`) for the export to exist:
    /// `core` for the core, otherwise e.g. `tm`, `kemix`, `pv`.
    pub owner: String,
    /// The KEMI sub-module (`tm` in `KSR.tm.t_relay`, `kx` for kemix, `pvx` for pv, empty for
    /// `KSR.*`).
    pub module: String,
    /// The function name as KEMI exposes it (or the native name for native-only exports).
    pub name: String,
    pub params: Vec<ParamType>,
    pub hints: Vec<ParamHint>,
    pub ret: RetType,
    /// Exposed to KEMI engines (false for native-only exports).
    pub kemi: bool,
}

impl ExportSig {
    /// `module.name` as KEMI scripts write it after `KSR.` (just `name` for core exports).
    pub fn kemi_path(&self) -> String {
        if self.module.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.module, self.name)
        }
    }
}

/// The code of an export. Gets the host context and the arguments, already converted to the
/// declared parameter types; returns the function's result (an `Int` return code for most).
pub type KsrFn<C> = fn(&mut C, &[Value]) -> Value;

pub struct Export<C> {
    pub sig: ExportSig,
    pub func: KsrFn<C>,
}

/// A native cfg spelling of an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeAlias {
    pub name: String,
    pub arity: u8,
    pub export: u32,
    /// Route kinds the native function may be called from.
    pub routes: RouteMask,
}

pub struct KsrTable<C> {
    exports: Vec<Export<C>>,
    by_kemi: AHashMap<(String, String), u32>,
    by_native: AHashMap<(String, u8), NativeAlias>,
}

impl<C> Default for KsrTable<C> {
    fn default() -> Self {
        KsrTable {
            exports: Vec::new(),
            by_kemi: AHashMap::new(),
            by_native: AHashMap::new(),
        }
    }
}

impl<C> KsrTable<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an export and returns its index. A KEMI export whose `module.name` is already taken
    /// replaces the name mapping (the last registration wins), like Kamailio's module order.
    pub fn add(&mut self, sig: ExportSig, func: KsrFn<C>) -> u32 {
        let idx = self.exports.len() as u32;
        if sig.kemi {
            self.by_kemi
                .insert((sig.module.clone(), sig.name.clone()), idx);
        }
        self.exports.push(Export { sig, func });
        idx
    }

    /// Maps a native cfg function `name` with `arity` parameters onto export `export`.
    pub fn add_native(&mut self, name: &str, arity: u8, export: u32, routes: RouteMask) {
        self.by_native.insert(
            (name.to_string(), arity),
            NativeAlias {
                name: name.to_string(),
                arity,
                export,
                routes,
            },
        );
    }

    /// Sets the parameter hints of an export (for compile-time checks of native calls).
    pub fn set_hints(&mut self, idx: u32, hints: &[ParamHint]) {
        if let Some(e) = self.exports.get_mut(idx as usize) {
            e.sig.hints = hints.to_vec();
        }
    }

    pub fn len(&self) -> usize {
        self.exports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exports.is_empty()
    }

    pub fn get(&self, idx: u32) -> Option<&Export<C>> {
        self.exports.get(idx as usize)
    }

    pub fn exports(&self) -> impl Iterator<Item = (u32, &Export<C>)> {
        self.exports.iter().enumerate().map(|(i, e)| (i as u32, e))
    }

    /// Looks up `KSR.module.name` (`module` empty for core functions).
    pub fn kemi(&self, module: &str, name: &str) -> Option<u32> {
        self.by_kemi
            .get(&(module.to_string(), name.to_string()))
            .copied()
    }

    /// Looks up a native cfg call by name and number of arguments.
    pub fn native(&self, name: &str, arity: u8) -> Option<&NativeAlias> {
        self.by_native.get(&(name.to_string(), arity))
    }

    /// Every arity a native name is registered with (for "wrong number of parameters").
    pub fn native_arities(&self, name: &str) -> Vec<u8> {
        let mut v: Vec<u8> = self
            .by_native
            .values()
            .filter(|a| a.name == name)
            .map(|a| a.arity)
            .collect();
        v.sort_unstable();
        v
    }

    pub fn natives(&self) -> impl Iterator<Item = &NativeAlias> {
        self.by_native.values()
    }

    /// Calls export `idx`. Arguments must already match the declared parameter types.
    #[inline]
    pub fn call(&self, idx: u32, ctx: &mut C, args: &[Value]) -> Value {
        match self.exports.get(idx as usize) {
            Some(e) => (e.func)(ctx, args),
            None => Value::Int(-1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(ctx: &mut i64, args: &[Value]) -> Value {
        *ctx += args[0].as_int().unwrap_or(0);
        Value::Int(*ctx)
    }

    #[test]
    fn native_and_kemi_names_reach_one_entry() {
        let mut t: KsrTable<i64> = KsrTable::new();
        let idx = t.add(
            ExportSig {
                owner: "m".into(),
                module: "m".into(),
                name: "add".into(),
                params: vec![ParamType::Int],
                hints: vec![ParamHint::Plain],
                ret: RetType::Int,
                kemi: true,
            },
            add,
        );
        t.add_native("m_add", 1, idx, RouteMask::ANY);
        let mut ctx = 1;
        let k = t.kemi("m", "add").unwrap();
        let n = t.native("m_add", 1).unwrap().export;
        assert_eq!(k, n);
        assert_eq!(t.call(k, &mut ctx, &[Value::Int(2)]), Value::Int(3));
        assert!(t.native("m_add", 2).is_none());
        assert_eq!(t.native_arities("m_add"), vec![1]);
    }
}
