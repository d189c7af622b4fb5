//! Helpers shared by pseudo-variable classes: dynamic names, indexes, value conversions.

use crate::ctx::Ctx;
use bytes::Bytes;
use vm::Value;
use vm::pv::{PvIndex, PvParam, PvSpec};

/// The inner name of a pseudo-variable as bytes, evaluating dynamic names
/// (`$hdr($var(h))`) for this message.
pub fn name_of(ctx: &mut Ctx, p: &PvParam) -> Option<Bytes> {
    match p {
        PvParam::Str(s) => Some(s.clone()),
        PvParam::Int(i) => Some(Bytes::from(i.to_string())),
        PvParam::Spec(spec) => match pv_get(ctx, spec) {
            Value::Null => None,
            v => Some(value_bytes(&v)),
        },
        PvParam::Format(f) => Some(pv_format(ctx, f)),
        PvParam::None | PvParam::Slot(_) | PvParam::Custom(_) => None,
    }
}

/// The `[index]` of a pseudo-variable, evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idx {
    None,
    At(i32),
    All,
}

pub fn index_of(ctx: &mut Ctx, spec: &PvSpec) -> Idx {
    match &spec.index {
        PvIndex::None => Idx::None,
        PvIndex::Int(i) => Idx::At(*i),
        PvIndex::All => Idx::All,
        PvIndex::Dyn(s) => match pv_get(ctx, s).as_int() {
            Some(i) => Idx::At(i.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
            None => Idx::At(0),
        },
    }
}

impl Idx {
    /// Position among `n` items for a single-item read (`[-1]` = last); `None` when out of
    /// range.
    pub fn position(self, n: usize) -> Option<usize> {
        match self {
            Idx::None | Idx::All => (n > 0).then_some(0),
            Idx::At(i) if i >= 0 => ((i as usize) < n).then_some(i as usize),
            Idx::At(i) => {
                let p = n as i64 + i as i64;
                (p >= 0).then_some(p as usize)
            }
        }
    }
}

/// Bytes of a value as Kamailio prints it (ints in decimal, null as empty).
pub fn value_bytes(v: &Value) -> Bytes {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => Bytes::from(i.to_string()),
        Value::Null => Bytes::new(),
    }
}

/// A string value, or null when empty (most message PVs read null for missing parts).
pub fn str_or_null(b: &Bytes) -> Value {
    if b.is_empty() {
        Value::Null
    } else {
        Value::Str(b.clone())
    }
}

/// Parses a decimal integer the way Kamailio's `str2sint` does for PV assignments.
pub fn parse_int(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?.trim();
    s.parse::<i64>().ok()
}

/// Reads a pseudo-variable (class getter and transformations).
pub fn pv_get(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    vm::pv::get(ctx, spec)
}

/// Evaluates a format string.
pub fn pv_format(ctx: &mut Ctx, f: &vm::pv::Format) -> Bytes {
    vm::pv::format(ctx, f)
}
