//! Kamailio's `pv` module: the pseudo-variable classes of the message and context, script
//! variables, and the `KSR.pvx.*` functions.

pub mod funcs;
pub mod msgpv;
pub mod sbranch;
pub mod util;
pub mod vars;
pub mod xavp;
pub mod xavx;

use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use vars::SharedVars;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::pv::{PvClass, PvGetFn, PvParseNameFn, PvSetFn, PvSpec};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "pv",
    params: &[
        ParamDef::str("shvset").multi(),
        ParamDef::str("varset").multi(),
        ParamDef::str("avp_aliases"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// State of the pv module shared by every worker.
#[derive(Default)]
pub struct PvState {
    pub shv: SharedVars,
    /// `varset` initial values for every worker's `$var`s.
    pub var_init: Vec<(bytes::Bytes, Value)>,
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    for v in ictx.params.all("shvset") {
        let (n, val) = SharedVars::parse_init(&v.to_text())?;
        ictx.states.pv.shv.set(n, val);
    }
    for v in ictx.params.all("varset") {
        let init = SharedVars::parse_init(&v.to_text())?;
        ictx.states.pv.var_init.push(init);
    }
    Ok(())
}

/// Sets every worker's `$var`s from `varset` when the worker starts.
fn worker_init(ctx: &mut Ctx) {
    let inits = ctx.core.m.pv.var_init.clone();
    for (name, v) in inits {
        let slot = vars::var_slot(&name) as usize;
        if ctx.vars.len() <= slot {
            ctx.vars.resize(slot + 1, Value::Null);
        }
        if let Some(s) = ctx.vars.get_mut(slot) {
            *s = v;
        }
    }
}

fn class(r: &mut Registrar<'_>, name: &'static str, get: PvGetFn<Ctx>, set: Option<PvSetFn<Ctx>>) {
    r.pvs.add(PvClass {
        name,
        get,
        set,
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
}

fn named(
    r: &mut Registrar<'_>,
    name: &'static str,
    get: PvGetFn<Ctx>,
    set: Option<PvSetFn<Ctx>>,
    parse: PvParseNameFn,
    takes_index: bool,
) {
    r.pvs.add(PvClass {
        name,
        get,
        set,
        parse_name: Some(parse),
        name_required: true,
        takes_index,
    });
}

/// Registers the pseudo-variable classes of the message and context.
pub fn register_classes(r: &mut Registrar<'_>) {
    use msgpv as m;
    // Request line and R-URI.
    for n in ["ru", "ruri"] {
        class(r, n, m::ruri, Some(m::set_ruri));
    }
    for n in ["rU", "ruri.user"] {
        class(r, n, m::ruri_user, Some(m::set_ruri_user));
    }
    for n in ["rd", "ruri.domain"] {
        class(r, n, m::ruri_host, Some(m::set_ruri_host));
    }
    class(r, "rp", m::ruri_port, Some(m::set_ruri_port));
    class(r, "rP", m::ruri_transport, None);
    class(r, "rz", m::ruri_scheme, None);
    class(r, "rUl", m::ruri_user_len, None);
    for n in ["ou", "ouri"] {
        class(r, n, m::ouri, None);
    }
    class(r, "oU", m::ouri_user, None);
    class(r, "od", m::ouri_host, None);
    class(r, "op", m::ouri_port, None);
    class(r, "oP", m::ouri_transport, None);
    class(r, "oUl", m::ouri_user_len, None);
    class(r, "rm", m::method, None);
    class(r, "rmid", m::method_id, None);
    class(r, "rv", m::version, None);
    class(r, "rs", m::status, None);
    class(r, "rr", m::reason, None);
    class(r, "mt", m::msg_type, None);
    // Message, body, headers.
    class(r, "mb", m::msg_buf, None);
    class(r, "ml", m::msg_len, None);
    class(r, "rb", m::body, None);
    class(r, "bs", m::body_len, None);
    class(r, "cl", m::content_length, None);
    class(r, "ci", m::callid, None);
    class(r, "cs", m::cseq_num, None);
    class(r, "csb", m::cseq_body, None);
    class(r, "cT", m::content_type, None);
    class(r, "ua", m::user_agent, None);
    class(r, "re", m::rpid, None);
    r.pvs.add(PvClass {
        name: "ct",
        get: m::contact,
        set: None,
        parse_name: None,
        name_required: false,
        takes_index: true,
    });
    named(r, "hdr", m::hdr, None, m::parse_hdr_name, true);
    named(r, "hdrc", m::hdr_count, None, m::parse_hdr_name, false);
    // `$hdr($var(h))`, `$avp($var(n))`: a name starting with `$` is a pseudo-variable.
    for (name, f) in [
        ("hdr", dyn_hdr as vm::pv::PvParseDynNameFn),
        ("hdrc", dyn_hdr),
        ("avp", dyn_avp),
    ] {
        if let Some(id) = r.pvs.lookup(name) {
            r.pvs.set_dyn_name_parser(id, f);
        }
    }
    class(r, "ai", m::pai_uri, None);
    class(r, "di", m::diversion_uri, None);
    class(r, "rt", m::refer_to_uri, None);
    class(r, "pu", m::ppi_uri, None);
    class(r, "pU", m::ppi_user, None);
    class(r, "pd", m::ppi_host, None);
    class(r, "pn", m::ppi_display, None);
    // From / To.
    for n in ["fu", "from"] {
        class(r, n, m::from_uri, Some(m::set_from_uri));
    }
    for n in ["fU", "from.user"] {
        class(r, n, m::from_user, Some(m::set_from_user));
    }
    for n in ["fd", "from.domain"] {
        class(r, n, m::from_host, Some(m::set_from_host));
    }
    class(r, "fn", m::from_display, Some(m::set_from_display));
    class(r, "ft", m::from_tag, None);
    class(r, "fUl", m::from_user_len, None);
    for n in ["tu", "to"] {
        class(r, n, m::to_uri, Some(m::set_to_uri));
    }
    for n in ["tU", "to.user"] {
        class(r, n, m::to_user, Some(m::set_to_user));
    }
    for n in ["td", "to.domain"] {
        class(r, n, m::to_host, Some(m::set_to_host));
    }
    class(r, "tn", m::to_display, Some(m::set_to_display));
    class(r, "tt", m::to_tag, None);
    class(r, "tUl", m::to_user_len, None);
    // Transport.
    for n in ["si", "src_ip"] {
        class(r, n, m::src_ip, None);
    }
    class(r, "sp", m::src_port, None);
    class(r, "su", m::src_uri, None);
    class(r, "sut", m::src_uri_full, None);
    class(r, "Ri", m::rcv_ip, None);
    class(r, "Rp", m::rcv_port, None);
    class(r, "Ru", m::rcv_uri, None);
    class(r, "Rut", m::rcv_uri_full, None);
    class(r, "RAi", m::rcv_adv_ip, None);
    class(r, "RAp", m::rcv_adv_port, None);
    for n in ["pr", "proto"] {
        class(r, n, m::proto, None);
    }
    class(r, "prid", m::proto_id, None);
    class(r, "fs", m::force_sock, Some(m::set_force_sock));
    class(r, "fsn", m::force_sock_name, Some(m::set_force_sock_name));
    class(r, "fsp", m::force_sock_port, None);
    for n in ["du", "duri"] {
        class(r, n, m::dst_uri, Some(m::set_dst_uri));
    }
    class(r, "dd", m::dst_host, None);
    class(r, "dp", m::dst_port, None);
    class(r, "dP", m::dst_transport, None);
    named(r, "nh", m::next_hop, None, m::parse_nh_name, false);
    // Flags.
    class(r, "mf", m::mflags, Some(m::set_mflags));
    class(r, "mF", m::mflags_hex, Some(m::set_mflags));
    class(r, "bf", m::bflags, Some(m::set_bflags));
    class(r, "bF", m::bflags_hex, Some(m::set_bflags));
    class(r, "sf", m::sflags, Some(m::set_sflags));
    class(r, "sF", m::sflags_hex, Some(m::set_sflags));
    named(
        r,
        "Mf",
        m::mflag,
        Some(m::set_mflag),
        m::parse_flag_name,
        false,
    );
    named(
        r,
        "Bf",
        m::bflag,
        Some(m::set_bflag),
        m::parse_flag_name,
        false,
    );
    named(
        r,
        "Sf",
        m::sflag,
        Some(m::set_sflag),
        m::parse_flag_name,
        false,
    );
    // Branches.
    class(r, "br", m::first_branch, None);
    class(r, "bR", m::all_branches, None);
    named(
        r,
        "branch",
        m::branch_attr,
        Some(m::set_branch_attr),
        m::parse_branch_name,
        true,
    );
    // Credentials.
    class(r, "au", m::auth_user, None);
    class(r, "ar", m::auth_realm, None);
    class(r, "aU", m::auth_user_part, None);
    class(r, "ad", m::auth_domain, None);
    class(r, "adu", m::auth_uri, None);
    class(r, "aa", m::auth_algorithm, None);
    class(r, "adn", m::auth_nonce, None);
    class(r, "adc", m::auth_cnonce, None);
    class(r, "adr", m::auth_response, None);
    class(r, "ado", m::auth_opaque, None);
    // Via.
    named(r, "via0", m::via0, None, m::parse_via_name, false);
    named(r, "via1", m::via1, None, m::parse_via_name, false);
    named(r, "viaZ", m::via_last, None, m::parse_via_name, false);
    // Misc.
    named(r, "K", m::constant, None, m::parse_const_name, false);
    named(r, "snd", m::snd, None, m::parse_snd_name, false);
    named(r, "env", m::env, None, vars::parse_plain_name, false);
    named(r, "stat", m::stat, None, vars::parse_plain_name, false);
    named(r, "sel", select, None, parse_select, false);
    class(r, "null", m::null, None);
    named(
        r,
        "version",
        m::version_info,
        None,
        m::parse_version_name,
        false,
    );
    named(r, "cnt", vars::cnt, None, vars::parse_cnt_name, false);
    named(r, "expires", m::expires, None, m::parse_expires_name, false);
    // Variables.
    for n in ["var", "vz"] {
        named(
            r,
            n,
            vars::var_get,
            Some(vars::var_set),
            vars::parse_var_name,
            false,
        );
    }
    named(
        r,
        "vn",
        vars::vn_get,
        Some(vars::vn_set),
        vars::parse_var_name,
        false,
    );
    named(
        r,
        "avp",
        vars::avp_get,
        Some(vars::avp_set),
        vars::parse_avp_name,
        true,
    );
    named(
        r,
        "xavp",
        vars::xavp_get,
        Some(vars::xavp_set),
        vars::parse_xavp_name,
        true,
    );
    named(
        r,
        "shv",
        vars::shv_get,
        Some(vars::shv_set),
        vars::parse_plain_name,
        false,
    );
    named(
        r,
        "shvinc",
        vars::shv_inc,
        None,
        vars::parse_plain_name,
        false,
    );
    // Time.
    class(r, "Ts", vars::time_now, None);
    class(r, "Tf", vars::time_now_fmt, None);
    class(r, "TF", vars::time_now_fmt, None);
    class(r, "TS", vars::time_start, None);
    class(r, "Tb", vars::time_start_fmt, None);
    named(r, "TV", vars::time_tv, None, vars::parse_tv_name, false);
    named(
        r,
        "time",
        vars::time_local,
        None,
        vars::parse_time_name,
        false,
    );
    named(
        r,
        "utime",
        vars::time_utc,
        None,
        vars::parse_time_name,
        false,
    );
    named(
        r,
        "timef",
        vars::timef_local,
        None,
        vars::parse_plain_name,
        false,
    );
    named(
        r,
        "utimef",
        vars::timef_utc,
        None,
        vars::parse_plain_name,
        false,
    );
}

fn dyn_hdr(s: &str, p: &dyn vm::pv::PvParser) -> Result<vm::pv::PvParam, String> {
    if s.trim_start().starts_with('$') {
        return vm::pv::parse_dynamic_name(s.trim(), p).map_err(|e| e.message);
    }
    msgpv::parse_hdr_name(s)
}

fn dyn_avp(s: &str, p: &dyn vm::pv::PvParser) -> Result<vm::pv::PvParam, String> {
    if s.trim_start().starts_with('$') {
        return vm::pv::parse_dynamic_name(s.trim(), p).map_err(|e| e.message);
    }
    vars::parse_avp_name(s)
}

fn register(r: &mut Registrar<'_>) {
    register_classes(r);
    funcs::register(r);
    sbranch::register(r);
    xavx::register(r);
    r.hooks.worker_init.push(worker_init);
    r.kemi("pvx", "var_seti", &[S, I], RetType::Int, kx_var_set);
    r.kemi("pvx", "var_sets", &[S, S], RetType::Int, kx_var_set);
    r.kemi("pvx", "var_get", &[S], RetType::Xval, kx_var_get);
    r.kemi("pvx", "shv_seti", &[S, I], RetType::Int, kx_shv_set);
    r.kemi("pvx", "shv_sets", &[S, S], RetType::Int, kx_shv_set);
    r.kemi("pvx", "shv_get", &[S], RetType::Xval, kx_shv_get);
    r.kemi("pvx", "shvinc_get", &[S], RetType::Xval, kx_shvinc_get);
    r.kemi("pvx", "avp_seti", &[S, I], RetType::Int, kx_avp_set);
    r.kemi("pvx", "avp_sets", &[S, S], RetType::Int, kx_avp_set);
    r.kemi("pvx", "avp_get", &[S], RetType::Xval, kx_avp_get);
    r.kemi("pvx", "avp_gete", &[S], RetType::Xval, kx_avp_gete);
    r.kemi("pvx", "avp_getw", &[S], RetType::Xval, kx_avp_getw);
    r.kemi("pvx", "avp_rm", &[S], RetType::Int, kx_avp_rm);
    r.kemi("pvx", "avp_is_null", &[S], RetType::Int, kx_avp_is_null);
    r.kemi("pvx", "xavp_seti", &[S, I], RetType::Int, kx_xavp_set);
    r.kemi("pvx", "xavp_sets", &[S, S], RetType::Int, kx_xavp_set);
    r.kemi("pvx", "xavp_get", &[S], RetType::Xval, kx_xavp_get);
    r.kemi("pvx", "xavp_gete", &[S], RetType::Xval, kx_xavp_gete);
    r.kemi("pvx", "xavp_getw", &[S], RetType::Xval, kx_xavp_getw);
    r.kemi("pvx", "xavp_rm", &[S], RetType::Int, kx_xavp_rm)
        .native("xavp_rm", RouteMask::ANY);
    r.kemi("pvx", "xavp_rm_all", &[S], RetType::Int, kx_xavp_rm_all)
        .native("xavp_rm_all", RouteMask::ANY);
    r.kemi("pvx", "xavp_is_null", &[S], RetType::Int, kx_xavp_is_null);
    r.kemi(
        "pvx",
        "xavp_child_seti",
        &[S, S, I],
        RetType::Int,
        kx_xavp_child_set,
    )
    .native("xavp_child_seti", RouteMask::ANY);
    r.kemi(
        "pvx",
        "xavp_child_sets",
        &[S, S, S],
        RetType::Int,
        kx_xavp_child_set,
    )
    .native("xavp_child_sets", RouteMask::ANY);
    r.kemi(
        "pvx",
        "xavp_child_get",
        &[S, S],
        RetType::Xval,
        kx_xavp_child_get,
    );
    r.kemi(
        "pvx",
        "xavp_child_gete",
        &[S, S],
        RetType::Xval,
        kx_xavp_child_gete,
    );
    r.kemi(
        "pvx",
        "xavp_child_getw",
        &[S, S],
        RetType::Xval,
        kx_xavp_child_getw,
    );
    r.kemi(
        "pvx",
        "xavp_child_rm",
        &[S, S],
        RetType::Int,
        kx_xavp_child_rm,
    )
    .native("xavp_child_rm", RouteMask::ANY);
    r.kemi(
        "pvx",
        "xavp_child_is_null",
        &[S, S],
        RetType::Int,
        kx_xavp_child_is_null,
    );
}

// ---------------------------------------------------------------- KSR.pvx.*

fn arg_bytes(args: &[Value], i: usize) -> bytes::Bytes {
    args.get(i).map(util::value_bytes).unwrap_or_default()
}

fn arg(args: &[Value], i: usize) -> Value {
    args.get(i).cloned().unwrap_or(Value::Null)
}

fn kx_var_set(ctx: &mut Ctx, args: &[Value]) -> Value {
    let slot = vars::var_slot(&arg_bytes(args, 0)) as usize;
    if ctx.vars.len() <= slot {
        ctx.vars.resize(slot + 1, Value::Null);
    }
    if let Some(s) = ctx.vars.get_mut(slot) {
        *s = arg(args, 1);
    }
    Value::Int(1)
}

fn kx_var_get(ctx: &mut Ctx, args: &[Value]) -> Value {
    let slot = vars::var_slot(&arg_bytes(args, 0)) as usize;
    match ctx.vars.get(slot) {
        Some(Value::Null) | None => Value::Int(0),
        Some(v) => v.clone(),
    }
}

fn kx_shv_set(ctx: &mut Ctx, args: &[Value]) -> Value {
    ctx.core.m.pv.shv.set(arg_bytes(args, 0), arg(args, 1));
    Value::Int(1)
}

fn kx_shv_get(ctx: &mut Ctx, args: &[Value]) -> Value {
    ctx.core.m.pv.shv.get(&arg_bytes(args, 0))
}

fn kx_shvinc_get(ctx: &mut Ctx, args: &[Value]) -> Value {
    Value::Int(ctx.core.m.pv.shv.incr(&arg_bytes(args, 0), 1))
}

fn kx_avp_set(ctx: &mut Ctx, args: &[Value]) -> Value {
    ctx.avps.insert(0, (arg_bytes(args, 0), arg(args, 1)));
    Value::Int(1)
}

fn avp_first(ctx: &Ctx, name: &[u8]) -> Value {
    ctx.avps
        .iter()
        .find(|(n, _)| n[..] == *name)
        .map_or(Value::Null, |(_, v)| v.clone())
}

fn kx_avp_get(ctx: &mut Ctx, args: &[Value]) -> Value {
    avp_first(ctx, &arg_bytes(args, 0))
}

fn kx_avp_gete(ctx: &mut Ctx, args: &[Value]) -> Value {
    empty_if_null(avp_first(ctx, &arg_bytes(args, 0)))
}

fn kx_avp_getw(ctx: &mut Ctx, args: &[Value]) -> Value {
    null_text_if_null(avp_first(ctx, &arg_bytes(args, 0)))
}

fn kx_avp_rm(ctx: &mut Ctx, args: &[Value]) -> Value {
    let name = arg_bytes(args, 0);
    ctx.avps.retain(|(n, _)| *n != name);
    Value::Int(1)
}

fn kx_avp_is_null(ctx: &mut Ctx, args: &[Value]) -> Value {
    Value::Int(if avp_first(ctx, &arg_bytes(args, 0)).is_null() {
        1
    } else {
        -1
    })
}

fn empty_if_null(v: Value) -> Value {
    if v.is_null() { Value::from("") } else { v }
}

fn null_text_if_null(v: Value) -> Value {
    if v.is_null() {
        Value::from("<null>")
    } else {
        v
    }
}

fn xn(
    root: bytes::Bytes,
    field: Option<bytes::Bytes>,
    root_idx: Option<vars::XIdx>,
) -> vars::XavpName {
    vars::XavpName {
        root,
        root_idx,
        field: field.map(|f| (f, None)),
    }
}

pub(super) fn kx_xavp_set(ctx: &mut Ctx, args: &[Value]) -> Value {
    let n = xn(arg_bytes(args, 0), None, None);
    match vars::xavp_set_in(&mut ctx.xavps, &n, &arg(args, 1)) {
        Ok(()) => Value::Int(1),
        Err(_) => Value::Int(-1),
    }
}

fn xavp_read(ctx: &Ctx, root: bytes::Bytes, field: Option<bytes::Bytes>) -> Value {
    vars::xavp_get_from(&ctx.xavps, &xn(root, field, None), util::Idx::None)
}

pub(super) fn kx_xavp_get(ctx: &mut Ctx, args: &[Value]) -> Value {
    xavp_read(ctx, arg_bytes(args, 0), None)
}
pub(super) fn kx_xavp_gete(ctx: &mut Ctx, args: &[Value]) -> Value {
    empty_if_null(xavp_read(ctx, arg_bytes(args, 0), None))
}
pub(super) fn kx_xavp_getw(ctx: &mut Ctx, args: &[Value]) -> Value {
    null_text_if_null(xavp_read(ctx, arg_bytes(args, 0), None))
}

/// `xavp_rm(name)`: removes the first `name` item; 1 whether there was one or not.
pub(super) fn kx_xavp_rm(ctx: &mut Ctx, args: &[Value]) -> Value {
    ctx.xavps.remove(&arg_bytes(args, 0), Some(0));
    Value::Int(1)
}

fn kx_xavp_rm_all(ctx: &mut Ctx, args: &[Value]) -> Value {
    ctx.xavps.remove(&arg_bytes(args, 0), None);
    Value::Int(1)
}

pub(super) fn kx_xavp_is_null(ctx: &mut Ctx, args: &[Value]) -> Value {
    b(matches!(
        ctx.xavps.get(&arg_bytes(args, 0), 0),
        None | Some(xavp::XVal::Val(Value::Null))
    ))
}

fn b(v: bool) -> Value {
    Value::Int(if v { 1 } else { -1 })
}

/// `xavp_child_seti("root", "field", v)`: in the first `root` item, the first `field` is
/// replaced by a new one at the front; a first `root` item that holds a plain value is
/// replaced by a new item with the field; without `root` item one is added.
pub(super) fn kx_xavp_child_set(ctx: &mut Ctx, args: &[Value]) -> Value {
    let root = arg_bytes(args, 0);
    let field = arg_bytes(args, 1);
    let v = xavp::XVal::Val(arg(args, 2));
    if let Some(xavp::XVal::List(sub)) = ctx.xavps.get_mut(&root, 0) {
        sub.remove(&field, Some(0));
        sub.add(field, v);
        return Value::Int(1);
    }
    ctx.xavps.remove(&root, Some(0));
    let mut sub = xavp::XavpList::default();
    sub.add(field, v);
    ctx.xavps.add(root, xavp::XVal::List(sub));
    Value::Int(1)
}

pub(super) fn kx_xavp_child_get(ctx: &mut Ctx, args: &[Value]) -> Value {
    xavp_read(ctx, arg_bytes(args, 0), Some(arg_bytes(args, 1)))
}
pub(super) fn kx_xavp_child_gete(ctx: &mut Ctx, args: &[Value]) -> Value {
    empty_if_null(xavp_read(ctx, arg_bytes(args, 0), Some(arg_bytes(args, 1))))
}
pub(super) fn kx_xavp_child_getw(ctx: &mut Ctx, args: &[Value]) -> Value {
    null_text_if_null(xavp_read(ctx, arg_bytes(args, 0), Some(arg_bytes(args, 1))))
}

/// `xavp_child_rm(root, field)`: removes the first `field` of the first `root` item; 1
/// whether there was one or not.
pub(super) fn kx_xavp_child_rm(ctx: &mut Ctx, args: &[Value]) -> Value {
    let root = arg_bytes(args, 0);
    let field = arg_bytes(args, 1);
    if let Some(xavp::XVal::List(sub)) = ctx.xavps.get_mut(&root, 0) {
        sub.remove(&field, Some(0));
    }
    Value::Int(1)
}

pub(super) fn kx_xavp_child_is_null(ctx: &mut Ctx, args: &[Value]) -> Value {
    let v = xavp_read(ctx, arg_bytes(args, 0), Some(arg_bytes(args, 1)));
    Value::Int(if v.is_null() { 1 } else { -1 })
}

/// Reads a pseudo-variable by spec through its class (used by modules that hold a spec).
pub fn read(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    util::pv_get(ctx, spec)
}

/// `$sel(cfg_get.GROUP.VAR)`: the value of a custom cfg variable declared in the cfg
/// (`pstn.gw_ip = "1.2.3.4" desc "..."`). Other selects are not provided.
fn parse_select(name: &str) -> Result<vm::pv::PvParam, String> {
    match name.trim().strip_prefix("cfg_get.") {
        Some(var) if var.contains('.') => Ok(vm::pv::PvParam::Str(bytes::Bytes::copy_from_slice(
            var.as_bytes(),
        ))),
        _ => Err(format!(
            "select '{name}' is not provided by ksr (only cfg_get.GROUP.VAR)"
        )),
    }
}

fn select(c: &mut Ctx, spec: &vm::pv::PvSpec) -> Value {
    let vm::pv::PvParam::Str(var) = &spec.param else {
        return Value::Null;
    };
    let key = String::from_utf8_lossy(var);
    match c.core.cfg.cfg_vars.get(key.as_ref()) {
        // Selects always give text, numbers too ($sel(...) + 1 concatenates, as in Kamailio).
        Some(compiler::ast::Literal::Int(i)) => Value::Str(bytes::Bytes::from(i.to_string())),
        Some(compiler::ast::Literal::Str(s)) => Value::Str(s.clone()),
        Some(compiler::ast::Literal::Ident(s)) => Value::Str(bytes::Bytes::from(s.clone())),
        None => {
            crate::klog!(crate::log::L_ERR, "pv", "cfg_get: unknown variable {key}");
            Value::Null
        }
    }
}
