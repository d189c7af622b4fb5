//! Kamailio's `tmx` module: helpers over tm (route-type tests, `t_precheck_trans`,
//! `t_flush_flags`).

use super::core::actions::{arg_bytes, arg_int, b};
use super::{ModuleDef, Registrar, tm};
use crate::ctx::Ctx;
use crate::sip::Method;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use vm::ksr::RetType;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S};
use vm::pv::PvClass;
use vm::{RouteKind, RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "tmx",
    params: &[],
    register,
    init: None,
    notice: None,
};

/// Requests seen by `t_precheck_trans` and not yet turned into transactions, keyed like
/// tm's transactions; entries expire after a few seconds.
#[derive(Default)]
pub struct PrecheckState {
    seen: Mutex<HashMap<(Bytes, Bytes), Instant>>,
}

static PRECHECK: std::sync::OnceLock<PrecheckState> = std::sync::OnceLock::new();

fn precheck_key(c: &Ctx) -> Option<(Bytes, Bytes)> {
    let v = c.msg.via1().ok()?;
    let mut id = v.raw.to_vec();
    id.push(0);
    id.extend_from_slice(c.msg.callid()?);
    id.push(0);
    id.extend_from_slice(c.msg.cseq().ok()?.number.to_string().as_bytes());
    Some((Bytes::from(id), c.msg.method_raw()))
}

thread_local! {
    /// The key this worker's current message registered in `t_precheck_trans`.
    static MINE: std::cell::RefCell<Option<(Bytes, Bytes)>> = const { std::cell::RefCell::new(None) };
}

/// After request_route: the request is no longer "being processed".
fn request_done(_: &mut Ctx) {
    if let Some(k) = MINE.with(|m| m.borrow_mut().take())
        && let Some(st) = PRECHECK.get()
    {
        st.seen.lock().remove(&k);
    }
}

/// `t_precheck_trans()`: true when the request is a retransmission of one another worker
/// is still processing (before tm has created its transaction) or of an existing
/// transaction.
fn precheck(c: &mut Ctx) -> Value {
    if !c.msg.is_request() || matches!(c.msg.method(), Method::Ack | Method::Cancel) {
        return Value::Int(-1);
    }
    let key = super::tm::trans::key_of(&c.msg, &super::tm::trans::class_of(&c.msg));
    if key.and_then(|k| c.core.m.tm.lookup(&k)).is_some() {
        return Value::Int(1);
    }
    let Some(k) = precheck_key(c) else {
        return Value::Int(-1);
    };
    let st = PRECHECK.get_or_init(PrecheckState::default);
    let now = Instant::now();
    let mut seen = st.seen.lock();
    if seen.len() > 4096 {
        seen.retain(|_, t| now.duration_since(*t) < Duration::from_secs(5));
    }
    match seen.get(&k) {
        Some(t) if now.duration_since(*t) < Duration::from_secs(5) => Value::Int(1),
        _ => {
            seen.insert(k.clone(), now);
            MINE.with(|m| *m.borrow_mut() = Some(k));
            Value::Int(-1)
        }
    }
}

fn register(r: &mut Registrar<'_>) {
    // Pseudo-variables.
    for (name, get) in [
        ("T_req", tm::pv_t_req as vm::pv::PvGetFn<Ctx>),
        ("T_rpl", tm::pv_t_rpl),
    ] {
        let id = r.pvs.add(PvClass {
            name,
            get,
            set: None,
            parse_name: Some(|s| Err(format!("'{s}' is not a pseudo-variable"))),
            name_required: true,
            takes_index: false,
        });
        r.pvs.set_dyn_name_parser(id, tm::parse_inner_pv);
    }
    for (name, get) in [
        ("T_reply_code", tm::pv_reply_code as vm::pv::PvGetFn<Ctx>),
        ("T_reply_reason", tm::pv_reply_reason),
        ("T_branch_idx", tm::pv_branch_idx),
    ] {
        r.pvs.add(PvClass {
            name,
            get,
            set: None,
            parse_name: None,
            name_required: false,
            takes_index: false,
        });
    }
    r.pvs.add(PvClass {
        name: "T_branch",
        get: tm::pv_t_branch,
        set: None,
        parse_name: Some(tm::parse_t_branch_name),
        name_required: true,
        takes_index: false,
    });
    r.pvs.add(PvClass {
        name: "T",
        get: tm::pv_t,
        set: None,
        parse_name: Some(tm::parse_t_name),
        name_required: true,
        takes_index: false,
    });
    r.hooks.request_post.push(request_done);
    r.kemi("tmx", "t_precheck_trans", &[], RetType::Int, |c, _| {
        precheck(c)
    })
    .native("t_precheck_trans", RouteMask::REQUEST);
    r.kemi("tmx", "t_is_request_route", &[], RetType::Int, |c, _| {
        b(c.route == RouteKind::Request)
    })
    .native("t_is_request_route", RouteMask::ANY);
    r.kemi("tmx", "t_is_failure_route", &[], RetType::Int, |c, _| {
        b(c.route == RouteKind::Failure)
    })
    .native("t_is_failure_route", RouteMask::ANY);
    r.kemi("tmx", "t_is_branch_route", &[], RetType::Int, |c, _| {
        b(c.route == RouteKind::Branch)
    })
    .native("t_is_branch_route", RouteMask::ANY);
    r.kemi("tmx", "t_is_reply_route", &[], RetType::Int, |c, _| {
        b(c.route == RouteKind::TmOnReply)
    })
    .native("t_is_reply_route", RouteMask::ANY);
    r.kemi(
        "tmx",
        "t_reply_callid",
        &[S, S, I, S],
        RetType::Int,
        |c, a| {
            let code = arg_int(a, 2);
            if !(100..=699).contains(&code) {
                return Value::Int(-1);
            }
            match tm::flow::find_by_callid(c, &arg_bytes(a, 0), &arg_bytes(a, 1)) {
                Some(t) => {
                    Value::Int(
                        tm::flow::reply_on(c, &t, code as u16, &arg_bytes(a, 3), false) as i64,
                    )
                }
                None => {
                    crate::klog!(
                        crate::log::L_DBG,
                        "tmx",
                        "t_reply_callid: no such transaction"
                    );
                    Value::Int(-1)
                }
            }
        },
    )
    .native("t_reply_callid", RouteMask::ANY);
    r.kemi("tmx", "t_flush_flags", &[], RetType::Int, |c, _| {
        match c.tm.t.clone() {
            Some(t) => {
                t.lock().snap.flags = c.flags;
                Value::Int(1)
            }
            None => Value::Int(-1),
        }
    })
    .native("t_flush_flags", RouteMask::ANY);
}
