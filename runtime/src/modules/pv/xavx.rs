//! `$xavu` (xavps with unique names: setting replaces) and `$xavi` (xavps whose names are
//! compared without case) with their cfg and `KSR.pvx.*` functions.
//!
//! xavi lists keep their names lowercased, so lookups are plain comparisons; the only
//! visible difference with Kamailio is the case of names in `pv_xavi_print()`.

use super::util::value_bytes;
use super::vars::{self, XavpName};
use super::xavp::{XVal, XavpList};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::modules::Registrar;
use bytes::Bytes;
use std::sync::Arc;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::pv::{PvClass, PvError, PvParam, PvSpec};
use vm::{ParamHint, RouteMask, Value};

fn arg_bytes(args: &[Value], i: usize) -> Bytes {
    args.get(i).map(value_bytes).unwrap_or_default()
}

fn arg(args: &[Value], i: usize) -> Value {
    args.get(i).cloned().unwrap_or(Value::Null)
}

fn lower(b: &[u8]) -> Bytes {
    Bytes::from(b.to_ascii_lowercase())
}

fn rc(v: bool) -> Value {
    Value::Int(if v { 1 } else { -1 })
}

// ---------------------------------------------------------------- $xavu

/// `$xavu(root)` / `$xavu(root=>field)`.
struct XavuName {
    root: Bytes,
    field: Option<Bytes>,
}

fn parse_xavu_name(s: &str) -> Result<PvParam, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty xavu name".into());
    }
    let (root, field) = match s.find('=') {
        None => (s, None),
        Some(i) => {
            let rest = s.get(i + 1..).unwrap_or("");
            let field = rest
                .strip_prefix('>')
                .filter(|f| !f.is_empty())
                .ok_or_else(|| format!("bad xavu name '{s}'"))?;
            (s.get(..i).unwrap_or(""), Some(field))
        }
    };
    Ok(PvParam::Custom(Arc::new(XavuName {
        root: Bytes::copy_from_slice(root.as_bytes()),
        field: field.map(|f| Bytes::copy_from_slice(f.as_bytes())),
    })))
}

fn xavu_name(spec: &PvSpec) -> Option<&XavuName> {
    match &spec.param {
        PvParam::Custom(c) => c.downcast_ref::<XavuName>(),
        _ => None,
    }
}

fn xval_value(x: &XVal) -> Value {
    match x {
        XVal::Val(v) => v.clone(),
        XVal::List(_) => Value::from("<<xavp>>"),
    }
}

/// Kamailio looks a field up in the root list when the item's own list is empty.
fn xavu_child<'a>(list: &'a XavpList, root: &[u8], field: &[u8]) -> Option<&'a XVal> {
    match list.get(root, 0)? {
        XVal::List(sub) if sub.is_empty() => list.get(field, 0),
        XVal::List(sub) => sub.get(field, 0),
        XVal::Val(_) => None,
    }
}

fn xavu_get(c: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(n) = xavu_name(spec) else {
        return Value::Null;
    };
    let x = match &n.field {
        None => c.xavus.get(&n.root, 0),
        Some(f) => xavu_child(&c.xavus, &n.root, f),
    };
    x.map_or(Value::Null, xval_value)
}

/// Sets `name` in a unique-name list: the existing item is replaced where it is, else a new
/// one goes first.
pub fn xavu_set_in(list: &mut XavpList, name: Bytes, v: XVal) {
    if !list.set(&name, 0, v.clone()) {
        list.add(name, v);
    }
}

/// `$xavu(root=>field) = v`: the first `field` of `root` is replaced by a new one at the
/// front; `root` holding a plain value is replaced by a new item with the field.
pub fn xavu_set_child(list: &mut XavpList, root: Bytes, field: Bytes, v: XVal) {
    if let Some(XVal::List(sub)) = list.get_mut(&root, 0) {
        sub.remove(&field, Some(0));
        sub.add(field, v);
        return;
    }
    list.remove(&root, Some(0));
    let mut sub = XavpList::default();
    sub.add(field, v);
    list.add(root, XVal::List(sub));
}

fn xavu_set(c: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let n = xavu_name(spec).ok_or(PvError::Failed("bad xavu name".into()))?;
    match (&n.field, v) {
        (None, Value::Null) => c.xavus.remove(&n.root, None),
        (Some(f), Value::Null) => {
            if let Some(XVal::List(sub)) = c.xavus.get_mut(&n.root, 0) {
                sub.remove(f, None);
            }
        }
        (None, v) => xavu_set_in(&mut c.xavus, n.root.clone(), XVal::Val(v.clone())),
        (Some(f), v) => xavu_set_child(
            &mut c.xavus,
            n.root.clone(),
            f.clone(),
            XVal::Val(v.clone()),
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------- $xavi

fn parse_xavi_name(s: &str) -> Result<PvParam, String> {
    let p = vars::parse_xavp_name(s)?;
    let PvParam::Custom(c) = &p else {
        return Ok(p);
    };
    let Some(n) = c.downcast_ref::<XavpName>() else {
        return Ok(p);
    };
    Ok(PvParam::Custom(Arc::new(XavpName {
        root: lower(&n.root),
        root_idx: n.root_idx,
        field: n.field.as_ref().map(|(f, i)| (lower(f), *i)),
    })))
}

/// Runs an `$xavp` class function on the xavi list (names already lowercased).
fn on_xavis<T>(c: &mut Ctx, f: impl FnOnce(&mut Ctx) -> T) -> T {
    std::mem::swap(&mut c.xavps, &mut c.xavis);
    let out = f(c);
    std::mem::swap(&mut c.xavps, &mut c.xavis);
    out
}

fn xavi_get(c: &mut Ctx, spec: &PvSpec) -> Value {
    on_xavis(c, |c| vars::xavp_get(c, spec))
}

fn xavi_set(c: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    on_xavis(c, |c| vars::xavp_set(c, spec, v))
}

/// A `KSR.pvx.xavp_*` function run on the xavi list with its name arguments lowercased
/// (the first `names` arguments).
fn xavi_fn(c: &mut Ctx, a: &[Value], names: usize, f: fn(&mut Ctx, &[Value]) -> Value) -> Value {
    let args: Vec<Value> = a
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if i < names {
                Value::Str(lower(&value_bytes(v)))
            } else {
                v.clone()
            }
        })
        .collect();
    on_xavis(c, |c| f(c, &args))
}

// ---------------------------------------------------------------- registration

pub fn register_classes(r: &mut Registrar<'_>) {
    r.pvs.add(PvClass {
        name: "xavu",
        get: xavu_get,
        set: Some(xavu_set),
        parse_name: Some(parse_xavu_name),
        name_required: true,
        takes_index: false,
    });
    r.pvs.add(PvClass {
        name: "xavi",
        get: xavi_get,
        set: Some(xavi_set),
        parse_name: Some(parse_xavi_name),
        name_required: true,
        takes_index: true,
    });
}

pub fn register(r: &mut Registrar<'_>) {
    use super::{
        kx_xavp_child_get, kx_xavp_child_gete, kx_xavp_child_getw, kx_xavp_child_is_null,
        kx_xavp_child_rm, kx_xavp_child_set, kx_xavp_get, kx_xavp_gete, kx_xavp_getw,
        kx_xavp_is_null, kx_xavp_rm, kx_xavp_set,
    };
    register_classes(r);
    // xavi: the xavp functions on the case-insensitive list.
    macro_rules! xavi {
        ($name:literal, $params:expr, $ret:expr, $names:literal, $f:ident, $native:literal) => {{
            fn w(c: &mut Ctx, a: &[Value]) -> Value {
                xavi_fn(c, a, $names, $f)
            }
            let reg = r.kemi("pvx", $name, $params, $ret, w);
            if $native {
                reg.native($name, RouteMask::ANY);
            }
        }};
    }
    xavi!("xavi_seti", &[S, I], RetType::Int, 1, kx_xavp_set, false);
    xavi!("xavi_sets", &[S, S], RetType::Int, 1, kx_xavp_set, false);
    xavi!("xavi_get", &[S], RetType::Xval, 1, kx_xavp_get, false);
    xavi!("xavi_gete", &[S], RetType::Xval, 1, kx_xavp_gete, false);
    xavi!("xavi_getw", &[S], RetType::Xval, 1, kx_xavp_getw, false);
    xavi!("xavi_rm", &[S], RetType::Int, 1, kx_xavp_rm, true);
    xavi!(
        "xavi_is_null",
        &[S],
        RetType::Int,
        1,
        kx_xavp_is_null,
        false
    );
    xavi!(
        "xavi_child_seti",
        &[S, S, I],
        RetType::Int,
        2,
        kx_xavp_child_set,
        true
    );
    xavi!(
        "xavi_child_sets",
        &[S, S, S],
        RetType::Int,
        2,
        kx_xavp_child_set,
        true
    );
    xavi!(
        "xavi_child_rm",
        &[S, S],
        RetType::Int,
        2,
        kx_xavp_child_rm,
        true
    );
    xavi!(
        "xavi_child_is_null",
        &[S, S],
        RetType::Int,
        2,
        kx_xavp_child_is_null,
        false
    );
    xavi!(
        "xavi_child_get",
        &[S, S],
        RetType::Xval,
        2,
        kx_xavp_child_get,
        false
    );
    xavi!(
        "xavi_child_gete",
        &[S, S],
        RetType::Xval,
        2,
        kx_xavp_child_gete,
        false
    );
    xavi!(
        "xavi_child_getw",
        &[S, S],
        RetType::Xval,
        2,
        kx_xavp_child_getw,
        false
    );
    r.kemi("pvx", "pv_xavi_print", &[], RetType::Int, |c, _| {
        super::funcs::print_list("XAVI", &c.xavis, 0);
        Value::Int(1)
    })
    .native("pv_xavi_print", RouteMask::ANY);

    // xavu.
    r.kemi("pvx", "xavu_seti", &[S, I], RetType::Int, kx_xavu_set);
    r.kemi("pvx", "xavu_sets", &[S, S], RetType::Int, kx_xavu_set);
    r.kemi("pvx", "xavu_get", &[S], RetType::Xval, |c, a| {
        xavu_root(c, a)
    });
    r.kemi("pvx", "xavu_gete", &[S], RetType::Xval, |c, a| {
        or_empty(xavu_root(c, a))
    });
    r.kemi("pvx", "xavu_getw", &[S], RetType::Xval, |c, a| {
        or_null_text(xavu_root(c, a))
    });
    r.kemi("pvx", "xavu_rm", &[S], RetType::Int, |c, a| {
        c.xavus.remove(&arg_bytes(a, 0), None);
        Value::Int(1)
    });
    r.kemi("pvx", "xavu_is_null", &[S], RetType::Int, |c, a| {
        rc(matches!(
            c.xavus.get(&arg_bytes(a, 0), 0),
            None | Some(XVal::Val(Value::Null))
        ))
    });
    r.kemi(
        "pvx",
        "xavu_child_seti",
        &[S, S, I],
        RetType::Int,
        kx_xavu_child_set,
    );
    r.kemi(
        "pvx",
        "xavu_child_sets",
        &[S, S, S],
        RetType::Int,
        kx_xavu_child_set,
    );
    r.kemi("pvx", "xavu_child_rm", &[S, S], RetType::Int, |c, a| {
        let field = arg_bytes(a, 1);
        if let Some(XVal::List(sub)) = c.xavus.get_mut(&arg_bytes(a, 0), 0) {
            sub.remove(&field, None);
        }
        Value::Int(1)
    });
    r.kemi(
        "pvx",
        "xavu_child_is_null",
        &[S, S],
        RetType::Int,
        |c, a| {
            rc(matches!(
                xavu_child(&c.xavus, &arg_bytes(a, 0), &arg_bytes(a, 1)),
                None | Some(XVal::Val(Value::Null))
            ))
        },
    );
    r.kemi("pvx", "xavu_child_get", &[S, S], RetType::Xval, xavu_field);
    r.kemi("pvx", "xavu_child_gete", &[S, S], RetType::Xval, |c, a| {
        or_empty(xavu_field(c, a))
    });
    r.kemi("pvx", "xavu_child_getw", &[S, S], RetType::Xval, |c, a| {
        or_null_text(xavu_field(c, a))
    });
    r.kemi(
        "pvx",
        "xavu_params_explode",
        &[S, S],
        RetType::Int,
        xavu_params_explode,
    )
    .native("xavu_params_explode", RouteMask::ANY);
    r.kemi(
        "pvx",
        "xavu_params_implode",
        &[S, S],
        RetType::Int,
        xavu_params_implode,
    )
    .native("xavu_params_implode", RouteMask::ANY)
    .hints(&[ParamHint::Plain, ParamHint::PvName]);
    r.kemi("pvx", "pv_xavu_print", &[], RetType::Int, |c, _| {
        super::funcs::print_list("XAVU", &c.xavus, 0);
        Value::Int(1)
    })
    .native("pv_xavu_print", RouteMask::ANY);
}

fn or_empty(v: Value) -> Value {
    if v.is_null() { Value::from("") } else { v }
}

fn or_null_text(v: Value) -> Value {
    if v.is_null() {
        Value::from("<null>")
    } else {
        v
    }
}

fn kx_xavu_set(c: &mut Ctx, a: &[Value]) -> Value {
    xavu_set_in(&mut c.xavus, arg_bytes(a, 0), XVal::Val(arg(a, 1)));
    Value::Int(1)
}

fn kx_xavu_child_set(c: &mut Ctx, a: &[Value]) -> Value {
    xavu_set_child(
        &mut c.xavus,
        arg_bytes(a, 0),
        arg_bytes(a, 1),
        XVal::Val(arg(a, 2)),
    );
    Value::Int(1)
}

fn xavu_root(c: &mut Ctx, a: &[Value]) -> Value {
    c.xavus
        .get(&arg_bytes(a, 0), 0)
        .map_or(Value::Null, xval_value)
}

fn xavu_field(c: &mut Ctx, a: &[Value]) -> Value {
    xavu_child(&c.xavus, &arg_bytes(a, 0), &arg_bytes(a, 1)).map_or(Value::Null, xval_value)
}

/// `xavu_params_explode(params, xname)` as Kamailio 5.6 does it: its helper stores each
/// parameter in the root xavu list (not in the new item) and `xname` gets an empty list.
fn xavu_params_explode(c: &mut Ctx, a: &[Value]) -> Value {
    let xname = arg_bytes(a, 1);
    let Some(fields) = super::funcs::params_explode(&arg_bytes(a, 0), &xname) else {
        return Value::Int(-1);
    };
    for (n, v) in fields.iter() {
        xavu_set_in(&mut c.xavus, n.clone(), v.clone());
    }
    xavu_set_in(&mut c.xavus, xname, XVal::List(XavpList::default()));
    Value::Int(1)
}

fn xavu_params_implode(c: &mut Ctx, a: &[Value]) -> Value {
    let (xname, vname) = (arg_bytes(a, 0), arg_bytes(a, 1));
    if xname.is_empty() || vname.is_empty() {
        crate::klog!(L_ERR, "pv", "invalid xavu or output var name");
        return Value::Int(-1);
    }
    let Some(spec) = crate::modules::core::pvapi::spec(c, &vname) else {
        return Value::Int(-1);
    };
    let text = super::funcs::params_serialize(&c.xavus, &xname);
    if text.is_empty() {
        return Value::Int(-1);
    }
    rc(vm::pv::set(c, &spec, &Value::Str(text.into())).is_ok())
}
