//! Kamailio's `kex` module: `pv_printf`, `avp_printf`, `is_myself`, `is_myhost`,
//! `setdebug`/`resetdebug`. (The flag
//! and destination-URI functions kex also exports are core actions in ksr and available
//! without loading it.)

use super::core::actions::{arg_bytes, arg_int, b, uri_is_myself};
use super::{ModuleDef, Registrar};
use crate::ctx::Ctx;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "kex",
    params: &[],
    register,
    init: None,
    notice: None,
};

fn register(r: &mut Registrar<'_>) {
    use vm::ParamHint::{Plain, PvName};
    r.native("pv_printf", &[S, S], RouteMask::ANY, printf)
        .hints(&[PvName, Plain]);
    r.native("avp_printf", &[S, S], RouteMask::ANY, printf)
        .hints(&[PvName, Plain]);
    r.native("is_myself", &[S], RouteMask::ANY, |c, a| {
        b(uri_is_myself(c, &arg_bytes(a, 0)))
    });
    r.native("is_myhost", &[S], RouteMask::ANY, |c, a| {
        let u = arg_bytes(a, 0);
        let host = match crate::sip::Uri::parse(&u) {
            Ok(p) => p.host_unbracketed().to_vec(),
            Err(_) => u.to_vec(),
        };
        b(c.core.is_myself(&host, None, None))
    });
    r.kemi("kex", "setdebug", &[I], RetType::Int, |_, a| {
        crate::log::set_local_level(Some(arg_int(a, 0) as i32));
        Value::Int(1)
    })
    .native("setdebug", RouteMask::ANY);
    r.kemi("kex", "resetdebug", &[], RetType::Int, |_, _| {
        crate::log::set_local_level(None);
        Value::Int(1)
    })
    .native("resetdebug", RouteMask::ANY);
}

/// `pv_printf("$var(x)", "text $ru")`: the second argument arrives already formatted; the
/// first names the pseudo-variable to set.
fn printf(c: &mut Ctx, a: &[Value]) -> Value {
    let name = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
    let reg = vm::Host::pv_registry(c);
    let spec = match vm::pv::parse_spec(&name, reg) {
        Ok(s) => s,
        Err(e) => {
            crate::klog!(crate::log::L_ERR, "kex", "pv_printf: {e}");
            return Value::Int(-1);
        }
    };
    match vm::pv::set(c, &spec, &Value::Str(arg_bytes(a, 1))) {
        Ok(()) => Value::Int(1),
        Err(e) => {
            crate::klog!(crate::log::L_ERR, "kex", "pv_printf: {e}");
            Value::Int(-1)
        }
    }
}
