//! The pv module's cfg functions: tests on a pseudo-variable's value (`pv_isset`,
//! `is_int`, `typeof`, `not_empty`), `pv_unset`, `pv_evalx`, the xavp helpers
//! (`xavp_params_explode` ...) and the `$var` <-> xavp copies, with their `KSR.pvx.*`
//! equivalents.

use super::util::value_bytes;
use super::vars;
use super::xavp::{XVal, XavpList};
use crate::ctx::Ctx;
use crate::log::{L_ERR, L_INFO};
use crate::modules::Registrar;
use bytes::Bytes;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{ParamHint, RouteMask, Value};

pub fn register(r: &mut Registrar<'_>) {
    use ParamHint::{Plain, PvName};
    r.native("pv_isset", &[S], RouteMask::ANY, |c, a| {
        with_value(c, a, |v| !v.is_null())
    })
    .hints(&[PvName]);
    r.native("pv_unset", &[S], RouteMask::ANY, pv_unset)
        .hints(&[PvName]);
    r.native("is_int", &[S], RouteMask::ANY, |c, a| {
        with_typed(c, a, |v, strint| {
            matches!(v, Value::Int(_)) || (strint && !v.is_null())
        })
    })
    .hints(&[PvName]);
    r.native("not_empty", &[S], RouteMask::ANY, |c, a| {
        with_typed(c, a, |v, strint| match v {
            Value::Str(s) => !s.is_empty(),
            Value::Int(_) => strint,
            Value::Null => false,
        })
    })
    .hints(&[PvName]);
    r.native("typeof", &[S, S], RouteMask::ANY, pv_typeof)
        .hints(&[PvName, Plain]);
    r.native("pv_evalx", &[S, S], RouteMask::ANY, |c, a| {
        evalx(c, &arg_bytes(a, 0), &arg_bytes(a, 1))
    })
    .hints(&[PvName, Plain]);
    r.kemi("pvx", "evalx", &[S, S], RetType::Int, |c, a| {
        evalx(c, &arg_bytes(a, 0), &arg_bytes(a, 1))
    });
    r.kemi(
        "pvx",
        "xavp_params_explode",
        &[S, S],
        RetType::Int,
        |c, a| {
            let xname = arg_bytes(a, 1);
            match params_explode(&arg_bytes(a, 0), &xname) {
                Some(list) => {
                    c.xavps.add(xname, XVal::List(list));
                    Value::Int(1)
                }
                None => Value::Int(-1),
            }
        },
    )
    .native("xavp_params_explode", RouteMask::ANY);
    r.kemi(
        "pvx",
        "xavp_params_implode",
        &[S, S],
        RetType::Int,
        params_implode,
    )
    .native("xavp_params_implode", RouteMask::ANY)
    .hints(&[Plain, PvName]);
    r.kemi(
        "pvx",
        "xavp_slist_explode",
        &[S, S, S, S],
        RetType::Int,
        slist_explode,
    )
    .native("xavp_slist_explode", RouteMask::ANY);
    r.kemi("pvx", "pv_var_to_xavp", &[S, S], RetType::Int, var_to_xavp)
        .native("pv_var_to_xavp", RouteMask::ANY);
    r.kemi("pvx", "pv_xavp_to_var", &[S], RetType::Int, xavp_to_var)
        .native("pv_xavp_to_var", RouteMask::ANY);
    r.kemi("pvx", "xavp_copy", &[S, I, S], RetType::Int, |c, a| {
        xavp_copy(c, a, None)
    });
    // Kamailio 5.6's KEMI xavp_copy_dst() ignores the destination index (it appends like
    // xavp_copy()); the 4-parameter cfg function replaces that item.
    r.kemi(
        "pvx",
        "xavp_copy_dst",
        &[S, I, S, I],
        RetType::Int,
        |c, a| xavp_copy(c, a, None),
    );
    r.native("xavp_copy", &[S, I, S], RouteMask::ANY, |c, a| {
        xavp_copy(c, a, None)
    });
    r.native("xavp_copy", &[S, I, S, I], RouteMask::ANY, |c, a| {
        let di = a.get(3).and_then(Value::as_int).unwrap_or(0);
        xavp_copy(c, a, Some(di))
    });
    r.kemi("pvx", "pv_xavp_print", &[], RetType::Int, |c, _| {
        print_list("XAVP", &c.xavps, 0);
        Value::Int(1)
    })
    .native("pv_xavp_print", RouteMask::ANY);
}

fn arg_bytes(args: &[Value], i: usize) -> Bytes {
    args.get(i).map(value_bytes).unwrap_or_default()
}

/// The spec of the pseudo-variable named by argument 0, from the worker's cache.
fn spec_of(c: &mut Ctx, name: &Bytes) -> Option<std::rc::Rc<vm::pv::PvSpec>> {
    crate::modules::core::pvapi::spec(c, name)
}

fn with_value(c: &mut Ctx, a: &[Value], test: fn(&Value) -> bool) -> Value {
    let Some(spec) = spec_of(c, &arg_bytes(a, 0)) else {
        return Value::Int(-1);
    };
    let v = vm::pv::get(c, &spec);
    Value::Int(if test(&v) { 1 } else { -1 })
}

/// Pseudo-variables Kamailio gives as text that also carries a number (port, protocol,
/// method id, hex flags ...): `is_int()` is true for them while `typeof(.., "int")` is
/// false and `typeof(.., "str")` true, whichever way ksr holds the value.
fn is_strint(spec: &vm::pv::PvSpec) -> bool {
    if !spec.trans.is_empty() {
        return false;
    }
    let t = spec.text.trim_start_matches('$');
    let t = t
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .unwrap_or(t);
    let (name, arg) = match t.split_once('(') {
        Some((n, rest)) => (n, rest.strip_suffix(')').unwrap_or(rest).trim()),
        None => (t, ""),
    };
    match name {
        "rm" | "mF" | "bF" | "sF" | "Tf" | "TF" | "dp" | "dP" | "rp" | "op" | "rz" | "pr"
        | "proto" | "rP" | "oP" => true,
        "nh" => matches!(arg, "p" | "P"),
        _ => false,
    }
}

fn with_typed(c: &mut Ctx, a: &[Value], test: fn(&Value, bool) -> bool) -> Value {
    let Some(spec) = spec_of(c, &arg_bytes(a, 0)) else {
        return Value::Int(-1);
    };
    let v = vm::pv::get(c, &spec);
    Value::Int(if test(&v, is_strint(&spec)) { 1 } else { -1 })
}

fn pv_unset(c: &mut Ctx, a: &[Value]) -> Value {
    let Some(spec) = spec_of(c, &arg_bytes(a, 0)) else {
        return Value::Int(-1);
    };
    match vm::pv::set(c, &spec, &Value::Null) {
        Ok(()) => Value::Int(1),
        Err(e) => {
            crate::klog!(L_ERR, "pv", "failed to unset variable {}: {e}", spec.text);
            Value::Int(-1)
        }
    }
}

/// `typeof(pv, "int"|"str"|"null")`: only the type's first letter counts.
fn pv_typeof(c: &mut Ctx, a: &[Value]) -> Value {
    let Some(spec) = spec_of(c, &arg_bytes(a, 0)) else {
        return Value::Int(-1);
    };
    let v = vm::pv::get(c, &spec);
    let strint = is_strint(&spec);
    let ok = match arg_bytes(a, 1).first().map(u8::to_ascii_lowercase) {
        Some(b'i') => matches!(v, Value::Int(_)) && !strint,
        Some(b'n') => v.is_null(),
        Some(b's') => matches!(v, Value::Str(_)) || (strint && !v.is_null()),
        _ => false,
    };
    Value::Int(if ok { 1 } else { -1 })
}

/// Evaluates `fmt` as a format string and stores the text in the variable named `dst`.
fn evalx(c: &mut Ctx, dst: &Bytes, fmt: &Bytes) -> Value {
    if dst.is_empty() {
        crate::klog!(L_ERR, "pv", "invalid destination var name");
        return Value::Int(-1);
    }
    let Some(spec) = spec_of(c, dst) else {
        return Value::Int(-1);
    };
    let text = String::from_utf8_lossy(fmt).into_owned();
    let f = match vm::pv::parse_format(&text, c.core.pvs) {
        Ok(f) => f,
        Err(e) => {
            crate::klog!(L_ERR, "pv", "cannot evaluate [{text}]: {e}");
            return Value::Int(-1);
        }
    };
    let out = vm::pv::format(c, &f);
    match vm::pv::set(c, &spec, &Value::Str(out)) {
        Ok(()) => Value::Int(1),
        Err(e) => {
            crate::klog!(L_ERR, "pv", "setting PV failed: {e}");
            Value::Int(-1)
        }
    }
}

/// Splits `name=value;name2;name3="x y"` into a list of string fields, in order (one
/// trailing `;` is allowed). `None` for an empty or malformed list.
pub fn params_explode(params: &[u8], xname: &[u8]) -> Option<XavpList> {
    if params.is_empty() || xname.is_empty() {
        crate::klog!(L_ERR, "pv", "invalid parameters");
        return None;
    }
    let s = params.strip_suffix(b";").unwrap_or(params);
    let fields = parse_param_list(s)?;
    if fields.is_empty() {
        return None;
    }
    let mut list = XavpList::default();
    for (n, v) in fields {
        list.push_back(n, XVal::Val(Value::Str(v)));
    }
    Some(list)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `a=1;b;c="q"` as Kamailio's generic parameter parser reads it: names end at `=`, `;`
/// or white space; values are trimmed, a quoted value loses its quotes.
fn parse_param_list(s: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = s.len();
    let skip_ws = |mut i: usize| {
        while i < n && s.get(i).is_some_and(|b| is_ws(*b)) {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    if i >= n {
        return Some(out);
    }
    loop {
        i = skip_ws(i);
        let start = i;
        while i < n
            && s.get(i)
                .is_some_and(|b| !is_ws(*b) && *b != b'=' && *b != b';')
        {
            i += 1;
        }
        let name = s.get(start..i)?;
        if name.is_empty() {
            return None;
        }
        i = skip_ws(i);
        let mut value: &[u8] = b"";
        if s.get(i) == Some(&b'=') {
            i = skip_ws(i + 1);
            if s.get(i) == Some(&b'"') {
                let vs = i + 1;
                let close = s.get(vs..)?.iter().position(|b| *b == b'"')?;
                value = s.get(vs..vs + close)?;
                i = skip_ws(vs + close + 1);
            } else {
                let vs = i;
                while i < n && s.get(i).is_some_and(|b| *b != b';') {
                    i += 1;
                }
                let mut ve = i;
                while ve > vs && s.get(ve - 1).is_some_and(|b| is_ws(*b)) {
                    ve -= 1;
                }
                value = s.get(vs..ve)?;
            }
        }
        out.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
        match s.get(i) {
            None => return Some(out),
            Some(b';') => {
                i += 1;
                if skip_ws(i) >= n {
                    return Some(out);
                }
            }
            Some(_) => return None,
        }
    }
}

/// The fields of the first `xname` item as `name=value;` text: ints unsigned, empty strings
/// as `name;`, other kinds skipped. Empty when there is no such item or field.
pub fn params_serialize(list: &XavpList, xname: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(XVal::List(sub)) = list.get(xname, 0) else {
        return out;
    };
    for (n, v) in sub.iter() {
        match v {
            XVal::Val(Value::Int(i)) => {
                out.extend_from_slice(n);
                out.push(b'=');
                out.extend_from_slice((*i as i32 as u32).to_string().as_bytes());
                out.push(b';');
            }
            XVal::Val(Value::Str(s)) => {
                out.extend_from_slice(n);
                if !s.is_empty() {
                    out.push(b'=');
                    out.extend_from_slice(s);
                }
                out.push(b';');
            }
            _ => {}
        }
    }
    out
}

fn params_implode(c: &mut Ctx, a: &[Value]) -> Value {
    let (xname, vname) = (arg_bytes(a, 0), arg_bytes(a, 1));
    if xname.is_empty() || vname.is_empty() {
        crate::klog!(L_ERR, "pv", "invalid xavp or output var name");
        return Value::Int(-1);
    }
    let Some(spec) = spec_of(c, &vname) else {
        return Value::Int(-1);
    };
    let text = params_serialize(&c.xavps, &xname);
    if text.is_empty() {
        return Value::Int(-1);
    }
    match vm::pv::set(c, &spec, &Value::Str(text.into())) {
        Ok(()) => Value::Int(1),
        Err(e) => {
            crate::klog!(L_ERR, "pv", "setting PV failed: {e}");
            Value::Int(-1)
        }
    }
}

/// `xavp_slist_explode(list, separators, mode, xname)`: items `v` in order, empty ones
/// skipped, trimmed when mode starts with `t`.
fn slist_explode(c: &mut Ctx, a: &[Value]) -> Value {
    let (slist, sep, mode, xname) = (
        arg_bytes(a, 0),
        arg_bytes(a, 1),
        arg_bytes(a, 2),
        arg_bytes(a, 3),
    );
    if slist.is_empty() || sep.is_empty() || xname.is_empty() {
        crate::klog!(L_ERR, "pv", "invalid parameters");
        return Value::Int(-1);
    }
    let trim = mode.first() == Some(&b't');
    let mut list = XavpList::default();
    for tok in slist.split(|b| sep.contains(b)) {
        let mut t = tok;
        if trim {
            while let [first, rest @ ..] = t {
                if !is_ws(*first) {
                    break;
                }
                t = rest;
            }
            while let [rest @ .., last] = t {
                if !is_ws(*last) {
                    break;
                }
                t = rest;
            }
        }
        if !t.is_empty() {
            list.push_back(
                Bytes::from_static(b"v"),
                XVal::Val(Value::Str(Bytes::copy_from_slice(t))),
            );
        }
    }
    c.xavps.add(xname, XVal::List(list));
    Value::Int(1)
}

/// A `$var` value as Kamailio's script variables hold it (never null: 0).
fn var_value(c: &Ctx, slot: u32) -> Value {
    match c.vars.get(slot as usize) {
        Some(Value::Null) | None => Value::Int(0),
        Some(v) => v.clone(),
    }
}

/// `pv_var_to_xavp(varname, xname)`: `$var(varname)` (or every `$var` with `*`, empty
/// strings left out) as fields of a new `xname` item; older `xname` items are removed.
fn var_to_xavp(c: &mut Ctx, a: &[Value]) -> Value {
    let (varname, xname) = (arg_bytes(a, 0), arg_bytes(a, 1));
    c.xavps.remove(&xname, None);
    if &varname[..] == b"*" {
        let mut sub = XavpList::default();
        for (name, slot) in vars::var_names() {
            let v = var_value(c, slot);
            if matches!(&v, Value::Str(s) if s.is_empty()) {
                continue;
            }
            sub.push_back(name, XVal::Val(v));
        }
        if !sub.is_empty() {
            c.xavps.add(xname, XVal::List(sub));
        }
        return Value::Int(1);
    }
    let Some(slot) = vars::var_slot_lookup(&varname) else {
        crate::klog!(
            L_ERR,
            "pv",
            "script var [{}] not found",
            String::from_utf8_lossy(&varname)
        );
        return Value::Int(-1);
    };
    let mut sub = XavpList::default();
    sub.add(varname, XVal::Val(var_value(c, slot)));
    c.xavps.add(xname, XVal::List(sub));
    Value::Int(1)
}

/// `pv_xavp_to_var(xname)`: every field of every `xname` item into `$var(field)`.
fn xavp_to_var(c: &mut Ctx, a: &[Value]) -> Value {
    let xname = arg_bytes(a, 0);
    match c.xavps.get(&xname, 0) {
        Some(XVal::List(_)) => {}
        Some(_) => {
            crate::klog!(L_ERR, "pv", "xavp is not a list of fields");
            return Value::Int(-1);
        }
        None => {
            crate::klog!(
                L_ERR,
                "pv",
                "xavp [{}] not found",
                String::from_utf8_lossy(&xname)
            );
            return Value::Int(-1);
        }
    }
    let mut sets: Vec<(Bytes, Value)> = Vec::new();
    let mut bad = false;
    for item in c.xavps.all(&xname) {
        let XVal::List(sub) = item else { continue };
        for (n, v) in sub.iter() {
            match v {
                XVal::Val(v @ (Value::Int(_) | Value::Str(_))) => sets.push((n.clone(), v.clone())),
                _ => {
                    bad = true;
                    break;
                }
            }
        }
        if bad {
            break;
        }
    }
    for (n, v) in sets {
        let slot = vars::var_slot(&n) as usize;
        if c.vars.len() <= slot {
            c.vars.resize(slot + 1, Value::Null);
        }
        if let Some(s) = c.vars.get_mut(slot) {
            *s = v;
        }
    }
    if bad {
        crate::klog!(L_ERR, "pv", "avp type not STR nor INT");
        return Value::Int(-1);
    }
    Value::Int(1)
}

/// `xavp_copy(src, src_idx, dst[, dst_idx])`: a copy of item `src[src_idx]` named `dst`,
/// after the last `dst` item, or in place of `dst[dst_idx]`.
fn xavp_copy(c: &mut Ctx, a: &[Value], dst_idx: Option<i64>) -> Value {
    let src = arg_bytes(a, 0);
    let si = a.get(1).and_then(Value::as_int).unwrap_or(0);
    let dst = arg_bytes(a, 2);
    // A negative index finds nothing, as in Kamailio.
    let item = usize::try_from(si)
        .ok()
        .and_then(|p| c.xavps.get(&src, p))
        .cloned();
    let Some(item) = item else {
        crate::klog!(
            L_ERR,
            "pv",
            "missing can not find source xavp [{}]",
            String::from_utf8_lossy(&src)
        );
        return Value::Int(-1);
    };
    match dst_idx {
        None => {
            if c.xavps.count(&dst) == 0 {
                c.xavps.add(dst, item);
            } else {
                c.xavps.push_back(dst, item);
            }
            Value::Int(1)
        }
        Some(di) => {
            let pos = usize::try_from(di)
                .ok()
                .filter(|p| *p < c.xavps.count(&dst));
            match pos {
                Some(p) if c.xavps.set(&dst, p, item) => Value::Int(1),
                _ => {
                    crate::klog!(
                        L_ERR,
                        "pv",
                        "xavp_copy: can not find destination xavp [{}]",
                        String::from_utf8_lossy(&dst)
                    );
                    Value::Int(-1)
                }
            }
        }
    }
}

/// `pv_xavp_print()`: the xavp list in the log at INFO level.
pub fn print_list(kind: &str, list: &XavpList, level: usize) {
    crate::klog!(L_INFO, "pv", "+++++ start {kind} list (level={level})");
    for (n, v) in list.iter() {
        let name = String::from_utf8_lossy(n);
        crate::klog!(L_INFO, "pv", "     *** (l:{level}) {kind} name: {name}");
        match v {
            XVal::Val(Value::Null) => crate::klog!(L_INFO, "pv", "     {kind} value: <null>"),
            XVal::Val(Value::Int(i)) => {
                crate::klog!(L_INFO, "pv", "     {kind} value (int): {i}")
            }
            XVal::Val(Value::Str(s)) => crate::klog!(
                L_INFO,
                "pv",
                "     {kind} value (str): {}",
                String::from_utf8_lossy(s)
            ),
            XVal::List(sub) => {
                crate::klog!(L_INFO, "pv", "     {kind} value: <xavp>");
                print_list(kind, sub, level + 1);
            }
        }
        crate::klog!(L_INFO, "pv", "     *** (l:{level}) end");
    }
    crate::klog!(L_INFO, "pv", "----- end {kind} list (level={level})");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(s: &str) -> Option<Vec<(String, String)>> {
        parse_param_list(s.as_bytes()).map(|v| {
            v.into_iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(&n).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect()
        })
    }

    #[test]
    fn param_lists() {
        let f = fields("a=1;b = 2 ;c;d=\"x y\";e=").unwrap_or_default();
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(f[1].1, "2");
        assert_eq!(f[3].1, "x y");
        assert_eq!(f[4].1, "");
        assert!(fields("a=\"open").is_none());
        assert!(fields("=1").is_none());
        assert_eq!(fields(""), Some(vec![]));
    }

    #[test]
    fn serialize_fields() {
        let list = params_explode(b"a=1;c;", b"p").unwrap_or_default();
        let mut root = XavpList::default();
        let mut l = list;
        l.add("z".into(), XVal::Val(Value::Int(-3)));
        root.add("p".into(), XVal::List(l));
        assert_eq!(params_serialize(&root, b"p"), b"z=4294967293;a=1;c;");
        assert!(params_serialize(&root, b"q").is_empty());
        assert!(params_explode(b";", b"p").is_none());
    }
}
