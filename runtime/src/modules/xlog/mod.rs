//! Kamailio's `xlog` module: log lines with pseudo-variables expanded, at any level.

use super::core::actions::arg_bytes;
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::log;
use vm::ksr::ParamType::Str as S;
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "xlog",
    params: &[
        ParamDef::int("buf_size"),
        ParamDef::int("force_color"),
        ParamDef::int("long_format"),
        ParamDef::str("prefix"),
        ParamDef::int("log_facility"),
        ParamDef::str("log_colors").multi(),
        ParamDef::int("methods_filter"),
    ],
    register,
    init: Some(init),
    notice: None,
};

pub struct XlogState {
    /// `methods_filter`: method bits `xlogm` stays silent for (-1 = every method).
    pub methods_filter: i64,
}

impl Default for XlogState {
    fn default() -> Self {
        XlogState { methods_filter: -1 }
    }
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    ictx.states.xlog.methods_filter = ictx.params.int("methods_filter", -1);
    Ok(())
}

fn emit(level: i32, text: &[u8]) -> Value {
    log::emit(level, "script", &String::from_utf8_lossy(text));
    Value::Int(1)
}

fn emit_line(level: i32, text: &[u8]) -> Value {
    let line = vm::interp::current_cfg_line();
    log::emit(
        level,
        "script",
        &format!("{line}:{}", String::from_utf8_lossy(text)),
    );
    Value::Int(1)
}

fn level_of(b: &[u8]) -> i32 {
    log::parse_level(&String::from_utf8_lossy(b)).unwrap_or(log::L_ERR)
}

/// KEMI `KSR.xlog.*`: the text is a format string, parsed once per worker (bounded cache).
fn kemi_log(c: &mut Ctx, level: i32, text: &bytes::Bytes) -> Value {
    if !log::enabled(level) {
        return Value::Int(1);
    }
    let out = match c.fmt_cache.get(text) {
        Some(f) => {
            let f = std::rc::Rc::clone(f);
            vm::pv::format(c, &f)
        }
        None => match vm::pv::parse_format(&String::from_utf8_lossy(text), c.core.pvs) {
            Ok(f) => {
                if c.fmt_cache.len() >= 1024 {
                    c.fmt_cache.clear();
                }
                let f = std::rc::Rc::new(f);
                c.fmt_cache.insert(text.clone(), std::rc::Rc::clone(&f));
                vm::pv::format(c, &f)
            }
            Err(e) => {
                log::emit(log::L_ERR, "xlog", &format!("bad format: {e}"));
                return Value::Int(-1);
            }
        },
    };
    emit(level, &out)
}

fn register(r: &mut Registrar<'_>) {
    use vm::ksr::RetType;
    for (name, f) in [
        (
            "xdbg",
            (|c: &mut Ctx, a: &[Value]| kemi_log(c, log::L_DBG, &arg_bytes(a, 0)))
                as vm::KsrFn<Ctx>,
        ),
        ("xinfo", |c, a| kemi_log(c, log::L_INFO, &arg_bytes(a, 0))),
        ("xnotice", |c, a| {
            kemi_log(c, log::L_NOTICE, &arg_bytes(a, 0))
        }),
        ("xwarn", |c, a| kemi_log(c, log::L_WARN, &arg_bytes(a, 0))),
        ("xerr", |c, a| kemi_log(c, log::L_ERR, &arg_bytes(a, 0))),
        ("xalert", |c, a| kemi_log(c, log::L_ALERT, &arg_bytes(a, 0))),
        ("xcrit", |c, a| kemi_log(c, log::L_CRIT, &arg_bytes(a, 0))),
    ] {
        r.kemi("xlog", name, &[S], RetType::Int, f);
    }
    r.kemi("xlog", "xlog", &[S, S], RetType::Int, |c, a| {
        kemi_log(c, level_of(&arg_bytes(a, 0)), &arg_bytes(a, 1))
    });
    // xlog(msg) logs at L_ERR, as Kamailio does.
    r.native("xlog", &[S], RouteMask::ANY, |_, a| {
        emit(log::L_ERR, &arg_bytes(a, 0))
    });
    r.native("xlog", &[S, S], RouteMask::ANY, |_, a| {
        emit(level_of(&arg_bytes(a, 0)), &arg_bytes(a, 1))
    });
    r.native("xlog", &[S, S, S], RouteMask::ANY, |_, a| {
        emit(level_of(&arg_bytes(a, 1)), &arg_bytes(a, 2))
    });
    // The `l` variants put the cfg line first (`LINE:text`, Kamailio's short format).
    r.native("xlogl", &[S], RouteMask::ANY, |_, a| {
        emit_line(log::L_ERR, &arg_bytes(a, 0))
    });
    r.native("xlogl", &[S, S], RouteMask::ANY, |_, a| {
        emit_line(level_of(&arg_bytes(a, 0)), &arg_bytes(a, 1))
    });
    r.native("xlogl", &[S, S, S], RouteMask::ANY, |_, a| {
        emit_line(level_of(&arg_bytes(a, 1)), &arg_bytes(a, 2))
    });
    r.native("xdbgl", &[S], RouteMask::ANY, |_, a| {
        emit_line(log::L_DBG, &arg_bytes(a, 0))
    });
    r.native("xlogm", &[S, S], RouteMask::ANY, |c, a| {
        // methods_filter: the method ids (Kamailio's bits) never logged; -1 all.
        let filter = c.core.m.xlog.methods_filter;
        if filter == -1 {
            return Value::Int(1);
        }
        let m = if c.msg.is_request() {
            Some(c.msg.method())
        } else {
            c.msg
                .cseq()
                .ok()
                .map(|cs| crate::sip::Method::parse(&cs.method))
        };
        match m {
            Some(m) if i64::from(m.bit()) & filter != 0 => Value::Int(1),
            Some(_) => emit(level_of(&arg_bytes(a, 0)), &arg_bytes(a, 1)),
            None => Value::Int(-1),
        }
    });
    r.kemi("xlog", "xlog_facility", &[S, S, S], RetType::Int, |c, a| {
        kemi_log(c, level_of(&arg_bytes(a, 1)), &arg_bytes(a, 2))
    });
    for (name, f) in [
        (
            "xdbg",
            (|_: &mut Ctx, a: &[Value]| emit(log::L_DBG, &arg_bytes(a, 0))) as vm::KsrFn<Ctx>,
        ),
        ("xinfo", |_, a| emit(log::L_INFO, &arg_bytes(a, 0))),
        ("xnotice", |_, a| emit(log::L_NOTICE, &arg_bytes(a, 0))),
        ("xwarn", |_, a| emit(log::L_WARN, &arg_bytes(a, 0))),
        ("xerr", |_, a| emit(log::L_ERR, &arg_bytes(a, 0))),
        ("xbug", |_, a| emit(log::L_BUG, &arg_bytes(a, 0))),
        ("xcrit", |_, a| emit(log::L_CRIT, &arg_bytes(a, 0))),
        ("xalert", |_, a| emit(log::L_ALERT, &arg_bytes(a, 0))),
    ] {
        r.native(name, &[S], RouteMask::ANY, f);
    }
}
