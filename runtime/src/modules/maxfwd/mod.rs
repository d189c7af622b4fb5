//! Kamailio's `maxfwd` module: Max-Forwards checks and decrement.

use super::core::actions::arg_int;
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::sip::{Edit, HdrKind};
use bytes::Bytes;
use vm::ksr::{ParamType::Int as I, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "maxfwd",
    params: &[ParamDef::int("max_limit")],
    register,
    init: Some(init),
    notice: None,
};

/// `max_limit` (default 70), read by workers.
#[derive(Default)]
pub struct MaxfwdState {
    pub max_limit: std::sync::atomic::AtomicU32,
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let v = ictx.params.int("max_limit", 70);
    if !(1..=256).contains(&v) {
        return Err(format!("max_limit {v} out of range 1..256"));
    }
    ictx.states
        .maxfwd
        .max_limit
        .store(v as u32, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn register(r: &mut Registrar<'_>) {
    r.kemi("maxfwd", "process_maxfwd", &[I], RetType::Int, process)
        .native("mf_process_maxfwd_header", RouteMask::REQUEST)
        .native("maxfwd_process", RouteMask::REQUEST)
        .native("process_maxfwd", RouteMask::REQUEST);
    r.kemi("maxfwd", "is_maxfwd_lt", &[I], RetType::Int, is_lt)
        .native("is_maxfwd_lt", RouteMask::ANY)
        .native("maxfwd_at_least", RouteMask::ANY)
        .native("mf_lowlimit", RouteMask::ANY);
}

fn process(c: &mut Ctx, a: &[Value]) -> Value {
    let max = arg_int(a, 0);
    if !(0..=256).contains(&max) {
        return Value::Int(-2);
    }
    let Some(h) = c.msg.header(HdrKind::MaxForwards).cloned() else {
        c.msg
            .insert_header_first(Bytes::from(format!("Max-Forwards: {max}\r\n")));
        return Value::Int(2);
    };
    let Ok(Some(v)) = c.msg.max_forwards() else {
        return Value::Int(-2);
    };
    if v == 0 {
        return Value::Int(-1);
    }
    let limit = c
        .core
        .m
        .maxfwd
        .max_limit
        .load(std::sync::atomic::Ordering::Relaxed);
    let limit = if limit == 0 { 70 } else { limit };
    let new = (v - 1).min(limit);
    let start = c.msg.offset_of(&h.value).unwrap_or(h.value_start);
    c.msg.add_edit(Edit::replace(
        start,
        start + h.value.len(),
        Bytes::from(new.to_string()),
    ));
    Value::Int(1)
}

fn is_lt(c: &mut Ctx, a: &[Value]) -> Value {
    let max = arg_int(a, 0);
    match c.msg.max_forwards() {
        Ok(Some(v)) => Value::Int(if (v as i64) < max { 1 } else { -1 }),
        Ok(None) => Value::Int(-2),
        Err(_) => Value::Int(-3),
    }
}
