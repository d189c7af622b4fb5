//! `KSR.pv.*`: pseudo-variables by name for KEMI scripts. Names are parsed once per worker
//! and kept in a bounded cache (Kamailio's own cache grows without limit).

use super::actions::{arg_bytes, arg_int};
use crate::ctx::Ctx;
use crate::modules::Registrar;
use bytes::Bytes;
use std::rc::Rc;
use vm::Value;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::pv::PvSpec;

/// Most distinct names a worker keeps parsed; past it the cache starts over.
const CACHE_MAX: usize = 1024;

pub fn register(r: &mut Registrar<'_>) {
    r.kemi("pv", "get", &[S], RetType::Xval, |c, a| {
        get(c, &arg_bytes(a, 0))
    });
    r.kemi("pv", "gete", &[S], RetType::Xval, |c, a| {
        match get(c, &arg_bytes(a, 0)) {
            Value::Null => Value::from(""),
            v => v,
        }
    });
    r.kemi("pv", "getw", &[S], RetType::Xval, |c, a| {
        match get(c, &arg_bytes(a, 0)) {
            Value::Null => Value::from("<null>"),
            v => v,
        }
    });
    r.kemi("pv", "geti", &[S], RetType::Int, |c, a| {
        Value::Int(get(c, &arg_bytes(a, 0)).as_int().unwrap_or(0))
    });
    r.kemi("pv", "getvn", &[S, I], RetType::Xval, |c, a| {
        match get(c, &arg_bytes(a, 0)) {
            Value::Null => Value::Int(arg_int(a, 1)),
            v => v,
        }
    });
    r.kemi("pv", "getvs", &[S, S], RetType::Xval, |c, a| {
        match get(c, &arg_bytes(a, 0)) {
            Value::Null => Value::Str(arg_bytes(a, 1)),
            v => v,
        }
    });
    r.kemi("pv", "seti", &[S, I], RetType::Bool, |c, a| {
        set(c, &arg_bytes(a, 0), Value::Int(arg_int(a, 1)))
    });
    r.kemi("pv", "sets", &[S, S], RetType::Bool, |c, a| {
        set(c, &arg_bytes(a, 0), Value::Str(arg_bytes(a, 1)))
    });
    r.kemi("pv", "unset", &[S], RetType::Bool, |c, a| {
        set(c, &arg_bytes(a, 0), Value::Null)
    });
    r.kemi("pv", "is_null", &[S], RetType::Bool, |c, a| {
        super::actions::b(get(c, &arg_bytes(a, 0)).is_null())
    });
}

/// The parsed spec of `name`, from the worker's cache.
pub fn spec(c: &mut Ctx, name: &Bytes) -> Option<Rc<PvSpec>> {
    if let Some(s) = c.pv_cache.get(name) {
        return Some(Rc::clone(s));
    }
    let text = std::str::from_utf8(name).ok()?;
    match vm::pv::parse_spec(text, c.core.pvs) {
        Ok(s) => {
            if c.pv_cache.len() >= CACHE_MAX {
                c.pv_cache.clear();
            }
            let s = Rc::new(s);
            c.pv_cache.insert(name.clone(), Rc::clone(&s));
            Some(s)
        }
        Err(e) => {
            crate::klog!(
                crate::log::L_ERR,
                "core",
                "invalid pseudo-variable {text}: {e}"
            );
            None
        }
    }
}

fn get(c: &mut Ctx, name: &Bytes) -> Value {
    match spec(c, name) {
        Some(s) => vm::pv::get(c, &s),
        None => Value::Null,
    }
}

fn set(c: &mut Ctx, name: &Bytes, v: Value) -> Value {
    let Some(s) = spec(c, name) else {
        return Value::Int(-1);
    };
    match vm::pv::set(c, &s, &v) {
        Ok(()) => Value::Int(1),
        Err(e) => {
            crate::klog!(crate::log::L_ERR, "core", "cannot set {}: {e}", s.text);
            Value::Int(-1)
        }
    }
}
