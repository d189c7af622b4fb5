//! Pseudo-variables: compiled descriptors, the class registry modules plug into, and
//! format strings (`"$rU@$rd"`).
//!
//! A pseudo-variable is written `$name`, `$name(inner)`, `$name(inner)[index]` or in the
//! full form `$(name(inner)[index]{trans.one}{trans.two})`. It is parsed once (at compile
//! time for native configs, through a bounded cache for KEMI `KSR.pv.*` calls) into a
//! [`PvSpec`]; reading or writing it then costs one indirect call into the class accessor.

pub mod cache;
pub mod eval;
pub mod parse;

pub use cache::PvCache;
pub use eval::{
    ResolvedIndex, format, format_into, get, index_of, param_bytes, param_value, position,
    push_value, set, try_get,
};
pub use parse::{
    PvParseError, PvParser, has_pv, locate_name, parse_dynamic_name, parse_format, parse_index,
    parse_spec, parse_spec_prefix,
};

use crate::value::Value;
use bytes::Bytes;
use std::any::Any;
use std::sync::Arc;

/// Index of a pseudo-variable class in the [`PvRegistry`].
pub type PvClassId = u16;

/// The class of `$$` (and `$($)`), which reads as a literal `$`. It is built in, never
/// registered.
pub const PV_MARKER_CLASS: PvClassId = PvClassId::MAX;

/// The parsed inner name of a pseudo-variable (`From` in `$hdr(From)`). Each class decides
/// what its name parses into.
#[derive(Clone, Default)]
pub enum PvParam {
    #[default]
    None,
    Str(Bytes),
    Int(i64),
    /// A name computed at run time from a format string (`$var($var(n))`, `$hdr($var(h))`).
    Format(Box<Format>),
    /// A name that is itself a pseudo-variable.
    Spec(Box<PvSpec>),
    /// A slot number assigned by the class at parse time (e.g. `$var(x)` storage).
    Slot(u32),
    /// Anything else a class pre-parses (`$sht(table=>key)`, `$xavp(a[0]=>b)`).
    Custom(Arc<dyn Any + Send + Sync>),
}

/// The `[index]` of a pseudo-variable.
#[derive(Clone, Default)]
pub enum PvIndex {
    #[default]
    None,
    /// `[n]`, negative counts from the end.
    Int(i32),
    /// `[*]`.
    All,
    /// `[$var(i)]`.
    Dyn(Box<PvSpec>),
}

/// A compiled pseudo-variable reference.
#[derive(Clone)]
pub struct PvSpec {
    pub class: PvClassId,
    pub param: PvParam,
    pub index: PvIndex,
    pub trans: Box<[crate::pv::Transform]>,
    /// The text as written, for messages, images (re-parsed on load) and `--emit ir`.
    pub text: Box<str>,
}

impl std::fmt::Debug for PvSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pv({})", self.text)
    }
}

/// A string with embedded pseudo-variables, e.g. `"$rU@$rd"`.
#[derive(Clone, Debug, Default)]
pub struct Format {
    pub parts: Vec<FormatPart>,
}

#[derive(Clone, Debug)]
pub enum FormatPart {
    Lit(Bytes),
    Pv(PvSpec),
}

/// One `{class.name,params}` transformation, compiled.
#[derive(Clone)]
pub struct Transform {
    pub func: TransFn,
    pub params: Box<[TransParam]>,
    /// The text as written, e.g. `{s.substr,1,2}`.
    pub text: Box<str>,
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A transformation parameter: a constant or a pseudo-variable evaluated per use.
#[derive(Clone, Debug)]
pub enum TransParam {
    Value(Value),
    Pv(PvSpec),
}

/// The code of a transformation: input value and evaluated parameters in, result out.
/// `None` is a failed transformation (the whole pseudo-variable then reads as null).
pub type TransFn = fn(&Value, &[Value]) -> Option<Value>;

/// Reads a pseudo-variable. `spec` carries the pre-parsed name and index.
pub type PvGetFn<C> = fn(&mut C, &PvSpec) -> Value;
/// Writes a pseudo-variable. Assigning `Value::Null` deletes where the class allows it.
pub type PvSetFn<C> = fn(&mut C, &PvSpec, &Value) -> Result<(), PvError>;
/// Parses the inner name of a pseudo-variable of this class.
pub type PvParseNameFn = fn(&str) -> Result<PvParam, String>;
/// Parses an inner name that may embed pseudo-variables (`$sht(t=>$si)`, `$hdr($var(h))`):
/// the parser parses the nested ones. Registered with [`PvRegistry::set_dyn_name_parser`].
pub type PvParseDynNameFn = fn(&str, &dyn PvParser) -> Result<PvParam, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PvError {
    #[error("pseudo-variable is read-only")]
    ReadOnly,
    #[error("invalid value for pseudo-variable: {0}")]
    BadValue(String),
    #[error("{0}")]
    Failed(String),
}

/// A pseudo-variable class: `$ru`, `$var`, `$hdr`, `$sht`, ...
pub struct PvClass<C> {
    pub name: &'static str,
    pub get: PvGetFn<C>,
    pub set: Option<PvSetFn<C>>,
    /// `Some` when the class takes an inner name: `$name(inner)`.
    pub parse_name: Option<PvParseNameFn>,
    /// True when the inner name is required (`$hdr` without a name is an error).
    pub name_required: bool,
    /// True when the class accepts `[index]`.
    pub takes_index: bool,
}

/// All pseudo-variable classes known to this process, by name.
pub struct PvRegistry<C> {
    classes: Vec<PvClass<C>>,
    by_name: ahash::AHashMap<&'static str, PvClassId>,
    /// Name parsers that need to parse nested pseudo-variables, by class.
    dyn_names: ahash::AHashMap<PvClassId, PvParseDynNameFn>,
}

impl<C> Default for PvRegistry<C> {
    fn default() -> Self {
        PvRegistry {
            classes: Vec::new(),
            by_name: ahash::AHashMap::new(),
            dyn_names: ahash::AHashMap::new(),
        }
    }
}

impl<C> PvRegistry<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a class; a later registration of the same name replaces the earlier one.
    pub fn add(&mut self, class: PvClass<C>) -> PvClassId {
        if let Some(&id) = self.by_name.get(class.name) {
            self.classes[id as usize] = class;
            return id;
        }
        let id = self.classes.len() as PvClassId;
        self.by_name.insert(class.name, id);
        self.classes.push(class);
        id
    }

    /// Gives class `id` a name parser that can parse nested pseudo-variables; it is used
    /// instead of the class's `parse_name`.
    pub fn set_dyn_name_parser(&mut self, id: PvClassId, f: PvParseDynNameFn) {
        self.dyn_names.insert(id, f);
    }

    /// The nested-aware name parser of class `id`, if it has one.
    pub fn dyn_name_parser(&self, id: PvClassId) -> Option<PvParseDynNameFn> {
        self.dyn_names.get(&id).copied()
    }

    pub fn lookup(&self, name: &str) -> Option<PvClassId> {
        self.by_name.get(name).copied()
    }

    pub fn class(&self, id: PvClassId) -> Option<&PvClass<C>> {
        self.classes.get(id as usize)
    }

    pub fn classes(&self) -> impl Iterator<Item = &PvClass<C>> {
        self.classes.iter()
    }
}

#[cfg(test)]
mod tests;
