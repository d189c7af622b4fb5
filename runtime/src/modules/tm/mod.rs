//! Kamailio's `tm` module: stateful SIP transactions (RFC 3261 17/16), forking, failure
//! routing, CANCEL and ACK handling, local replies and retransmissions.
//!
//! State: the transaction table in `ModuleStates::tm` ([`trans::TmState`]), per message in
//! `Ctx::tm` ([`TmCtx`]). Replies reach tm through the core's `reply_received` hook; timers
//! run on a dedicated thread (`Hooks::threads`). See ARCHITECTURE.md "Transaction layer".

pub mod flow;
pub mod serial;
pub mod trans;

use super::core::actions::{arg_bytes, arg_int, b};
use super::{ModuleDef, ParamDef, Registrar, ThreadDef};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::transport::Proto;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Duration;
use trans::TxRef;
use vm::ksr::{ParamHint, ParamType::Int as I, ParamType::Str as S, RetType};
use vm::pv::PvSpec;
use vm::{RouteKind, RouteMask, Value};

pub use trans::TmState;

/// A reply as the transaction hooks (`Hooks::tm_response_out`, `Hooks::tm_on_failure`)
/// report it.
pub struct TmReply<'a> {
    pub code: u16,
    pub reason: &'a [u8],
    /// To tag of the reply (or of the locally generated one).
    pub to_tag: Option<&'a [u8]>,
    /// R-URI of the branch the reply belongs to.
    pub branch_uri: Option<&'a Bytes>,
    /// The reply carries a body.
    pub has_body: bool,
}

/// Per-message tm state (reset for every message).
#[derive(Clone, Default)]
pub struct TmCtx {
    /// The current transaction (Kamailio's `T`).
    pub t: Option<TxRef>,
    pub on_failure: Option<Bytes>,
    pub on_reply: Option<Bytes>,
    pub on_branch: Option<Bytes>,
    pub on_branch_failure: Option<Bytes>,
    /// `t_set_fr(fr_inv, fr)` in ms (0 = module default).
    pub fr: Option<(u32, u32)>,
    pub auto_inv_100: Option<bool>,
    /// `t_set_disable_6xx` before the transaction exists.
    pub disable_6xx: Option<bool>,
    /// `$T_branch_idx`.
    pub branch_idx: i32,
    /// `$T_reply_code` / `$T_reply_reason` in failure_route.
    pub reply_code: i32,
    pub reply_reason: Option<Bytes>,
    pub branch_timeout: bool,
    pub in_failure: bool,
    /// `t_relay_to(..., 0x02)` / `t_set_disable_internal_reply(1)`: no local error reply
    /// when no branch could be sent.
    pub no_internal_reply: bool,
    /// `t_drop_replies()` in the failure_route being run (None: `failure_reply_mode`).
    pub drop_replies: Option<i64>,
}

pub static MODULE: ModuleDef = ModuleDef {
    name: "tm",
    params: &[
        ParamDef::int("fr_timer"),
        ParamDef::int("fr_inv_timer"),
        ParamDef::int("retr_timer1"),
        ParamDef::int("retr_timer2"),
        ParamDef::int("wait_timer"),
        ParamDef::int("auto_inv_100"),
        ParamDef::str("auto_inv_100_reason"),
        ParamDef::int("failure_reply_mode"),
        ParamDef::int("faked_reply_prio"),
        ParamDef::int("remap_503_500"),
        ParamDef::int("restart_fr_on_each_reply"),
        ParamDef::int("disable_6xx_block"),
        ParamDef::str("contacts_avp"),
        ParamDef::str("contact_flows_avp"),
    ],
    register,
    init: Some(init),
    notice: None,
};

fn init(i: &mut super::InitCtx<'_>) -> Result<(), String> {
    let p = i.params;
    let mut cfg = trans::TmCfg::default();
    let ms = |name: &str, d: Duration| -> Duration {
        let v = p.int(name, d.as_millis() as i64);
        Duration::from_millis(v.max(1) as u64)
    };
    cfg.fr = ms("fr_timer", cfg.fr);
    cfg.fr_inv = ms("fr_inv_timer", cfg.fr_inv);
    cfg.t1 = ms("retr_timer1", cfg.t1);
    cfg.t2 = ms("retr_timer2", cfg.t2);
    cfg.wait = ms("wait_timer", cfg.wait);
    cfg.auto_inv_100 = p.int("auto_inv_100", 1) != 0;
    if let Some(r) = p.str("auto_inv_100_reason") {
        cfg.auto_inv_100_reason = Bytes::from(r);
    }
    cfg.failure_reply_mode = p.int("failure_reply_mode", 3);
    if !(0..=3).contains(&cfg.failure_reply_mode) {
        return Err(format!(
            "failure_reply_mode {} is out of range 0..3",
            cfg.failure_reply_mode
        ));
    }
    cfg.restart_fr_on_each_reply = p.int("restart_fr_on_each_reply", 1) != 0;
    cfg.faked_reply_prio = p.int("faked_reply_prio", 0) as i32;
    cfg.remap_503_500 = p.int("remap_503_500", 1) != 0;
    cfg.disable_6xx = p.int("disable_6xx_block", 0) != 0;
    cfg.contacts_avp = p
        .str("contacts_avp")
        .filter(|s| !s.is_empty())
        .map(Bytes::from);
    cfg.contact_flows_avp = p
        .str("contact_flows_avp")
        .filter(|s| !s.is_empty())
        .map(Bytes::from);
    i.states.tm.cfg = cfg;
    Ok(())
}

/// Route kinds where Kamailio allows each group of functions.
const RQ: RouteMask = RouteMask::REQUEST;
const RQ_F: RouteMask = RouteMask(1 | 2);
const RQ_F_R_B: RouteMask = RouteMask(1 | 2 | 4 | 8);
const REPLY_FNS: RouteMask = RouteMask(1 | 2 | 4 | 128);

fn register(r: &mut Registrar<'_>) {
    r.hooks.reply_received.push(flow::on_reply);
    r.hooks.request_post.push(flow::request_done);
    r.hooks.threads.push(ThreadDef {
        name: "tm-timer",
        run: flow::timer_thread,
    });
    r.rpc.add("tm.stats", "transaction statistics", rpc_stats);

    r.kemi("tm", "t_load_contacts", &[], RetType::Int, |c, _| {
        Value::Int(serial::load_contacts(c) as i64)
    })
    .native("t_load_contacts", RQ_F);
    r.kemi("tm", "t_next_contacts", &[], RetType::Int, |c, _| {
        Value::Int(serial::next_contacts(c) as i64)
    })
    .native("t_next_contacts", RQ_F);

    r.kemi("tm", "t_relay", &[], RetType::Int, |c, _| {
        Value::Int(flow::relay(c, None) as i64)
    })
    .native("t_relay", RQ_F);
    r.native("t_relay", &[S, I], RQ_F, |c, a| {
        relay_to(c, &arg_bytes(a, 0), port_arg(a, 1), Proto::Udp)
    });
    r.native("t_relay_to_udp", &[], RQ_F, |c, _| {
        let hop = flow::request_hop_proto(c, Proto::Udp);
        Value::Int(flow::relay(c, hop) as i64)
    });
    r.native("t_relay_to_tcp", &[], RQ_F, |c, _| {
        let hop = flow::request_hop_proto(c, Proto::Tcp);
        Value::Int(flow::relay(c, hop) as i64)
    });
    r.native("t_relay_to_udp", &[S, I], RQ_F, |c, a| {
        relay_to(c, &arg_bytes(a, 0), port_arg(a, 1), Proto::Udp)
    });
    r.native("t_relay_to_tcp", &[S, I], RQ_F, |c, a| {
        relay_to(c, &arg_bytes(a, 0), port_arg(a, 1), Proto::Tcp)
    });
    r.native("t_relay_to", &[], RQ_F, |c, _| {
        Value::Int(flow::relay(c, None) as i64)
    });
    r.native("t_relay_to", &[S], RQ_F, |c, a| {
        let p = arg_bytes(a, 0);
        match parse_flags(&p) {
            Some(f) => {
                relay_flags(c, f);
                Value::Int(flow::relay(c, None) as i64)
            }
            None => relay_proxy(c, &p),
        }
    });
    r.native("t_relay_to", &[S, I], RQ_F, |c, a| {
        relay_flags(c, arg_int(a, 1));
        relay_proxy(c, &arg_bytes(a, 0))
    });
    r.kemi("tm", "t_relay_to_flags", &[I], RetType::Int, |c, a| {
        relay_flags(c, arg_int(a, 0));
        Value::Int(flow::relay(c, None) as i64)
    });
    r.kemi(
        "tm",
        "t_relay_to_proxy_flags",
        &[S, I],
        RetType::Int,
        |c, a| {
            relay_flags(c, arg_int(a, 1));
            relay_proxy(c, &arg_bytes(a, 0))
        },
    );
    r.kemi(
        "tm",
        "t_set_disable_internal_reply",
        &[I],
        RetType::Int,
        |c, a| {
            c.tm.no_internal_reply = arg_int(a, 0) != 0;
            Value::Int(1)
        },
    )
    .native("t_set_disable_internal_reply", RQ_F_R_B);
    r.native("t_forward_nonack", &[S, I], RQ, |c, a| {
        forward_nonack(c, &arg_bytes(a, 0), port_arg(a, 1), Proto::Udp)
    });
    r.native("t_forward_nonack_udp", &[S, I], RQ, |c, a| {
        forward_nonack(c, &arg_bytes(a, 0), port_arg(a, 1), Proto::Udp)
    });
    r.native("t_forward_nonack_tcp", &[S, I], RQ, |c, a| {
        forward_nonack(c, &arg_bytes(a, 0), port_arg(a, 1), Proto::Tcp)
    });
    r.native("t_forward_nonack_uri", &[], RQ, |c, _| {
        if c.tm.t.is_none() {
            crate::klog!(
                L_ERR,
                "tm",
                "t_forward_nonack_uri: no transaction (call t_newtran first)"
            );
            return Value::Int(-1);
        }
        Value::Int(flow::forward_existing(c, None) as i64)
    });
    r.kemi("tm", "t_release", &[], RetType::Int, |c, _| {
        match c.tm.t.take() {
            Some(t) => {
                flow::release(c, &t);
                Value::Int(1)
            }
            None => Value::Int(-1),
        }
    })
    .native("t_release", RQ);
    r.native("t_relay_to", &[S], RQ_F, |c, a| {
        relay_proxy(c, &arg_bytes(a, 0))
    });
    r.kemi("tm", "t_relay_to_proxy", &[S], RetType::Int, |c, a| {
        relay_proxy(c, &arg_bytes(a, 0))
    })
    .native("t_relay_to_proxy", RQ_F);
    r.kemi("tm", "t_relay_to_proto", &[S], RetType::Int, |c, a| {
        let Some(proto) =
            Proto::parse(&String::from_utf8_lossy(&arg_bytes(a, 0)).to_ascii_lowercase())
        else {
            return Value::Int(-1);
        };
        let hop = flow::request_hop_proto(c, proto);
        Value::Int(flow::relay(c, hop) as i64)
    });
    r.kemi(
        "tm",
        "t_relay_to_proto_addr",
        &[S, S, I],
        RetType::Int,
        |c, a| {
            let Some(proto) =
                Proto::parse(&String::from_utf8_lossy(&arg_bytes(a, 0)).to_ascii_lowercase())
            else {
                return Value::Int(-1);
            };
            relay_to(c, &arg_bytes(a, 1), port_arg(a, 2), proto)
        },
    );

    r.kemi("tm", "t_newtran", &[], RetType::Int, |c, _| {
        Value::Int(flow::newtran(c) as i64)
    })
    .native("t_newtran", RQ);
    r.kemi("tm", "t_check_trans", &[], RetType::Int, |c, _| {
        Value::Int(flow::check_trans(c) as i64)
    })
    .native("t_check_trans", RouteMask(1 | 4 | 8 | 128));
    r.kemi("tm", "t_lookup_request", &[], RetType::Int, |c, _| {
        Value::Int(flow::lookup_request(c) as i64)
    })
    .native("t_lookup_request", RQ);
    r.kemi("tm", "t_lookup_cancel", &[], RetType::Int, |c, _| {
        lookup_cancel(c)
    })
    .native("t_lookup_cancel", RQ);

    // The native reason is Kamailio's `fixup_var_str`: one leading variable or literal text.
    let reason = [ParamHint::Plain, ParamHint::PvOrLiteral];
    r.kemi("tm", "t_reply", &[I, S], RetType::Int, t_reply)
        .native("t_reply", REPLY_FNS)
        .hints(&reason);
    r.kemi("tm", "t_send_reply", &[I, S], RetType::Int, t_send_reply)
        .native("t_send_reply", REPLY_FNS)
        .hints(&reason);
    r.kemi(
        "tm",
        "t_retransmit_reply",
        &[],
        RetType::Int,
        |c, _| match c.tm.t.clone() {
            Some(t) => {
                flow::retransmit_reply(c, &t);
                Value::Int(1)
            }
            None => Value::Int(-1),
        },
    )
    .native("t_retransmit_reply", RQ);

    for (name, kind) in [
        ("t_on_failure", RouteKind::Failure),
        ("t_on_reply", RouteKind::TmOnReply),
        ("t_on_branch", RouteKind::Branch),
        ("t_on_branch_failure", RouteKind::Event),
    ] {
        let f: vm::ksr::KsrFn<Ctx> = match name {
            "t_on_failure" => |c, a| set_route(c, a, |t| &mut t.on_failure, |x| &mut x.on_failure),
            "t_on_reply" => |c, a| set_route(c, a, |t| &mut t.on_reply, |x| &mut x.on_reply),
            "t_on_branch" => |c, a| set_route(c, a, |t| &mut t.on_branch, |x| &mut x.on_branch),
            _ => |c, a| {
                set_route(
                    c,
                    a,
                    |t| &mut t.on_branch_failure,
                    |x| &mut x.on_branch_failure,
                )
            },
        };
        let mask = if name == "t_on_branch" {
            RQ_F
        } else {
            RQ_F_R_B
        };
        let reg = r.kemi("tm", name, &[S], RetType::Int, f).native(name, mask);
        if kind != RouteKind::Event {
            reg.hints(&[ParamHint::Route(kind)]);
        }
    }
    r.kemi("tm", "t_is_set", &[S], RetType::Int, t_is_set)
        .native("t_is_set", RouteMask::ANY);
    r.kemi("tm", "t_is_canceled", &[], RetType::Int, |c, _| {
        b(c.tm.t.as_ref().is_some_and(|t| t.lock().canceled))
    })
    .native("t_is_canceled", RQ_F_R_B);
    // t_drop_replies([mode]): no mode or anything else "all", "n" none, "l" last step.
    r.kemi("tm", "t_drop_replies", &[S], RetType::Int, |c, a| {
        let mode = arg_bytes(a, 0);
        c.tm.drop_replies = Some(match mode.first() {
            Some(b'n') => 0,
            Some(b'l') => 2,
            _ => 1,
        });
        Value::Int(1)
    })
    .native("t_drop_replies", RouteMask::FAILURE);
    r.kemi("tm", "t_drop_replies_all", &[], RetType::Int, |c, _| {
        c.tm.drop_replies = Some(1);
        Value::Int(1)
    })
    .native("t_drop_replies", RouteMask::FAILURE);
    r.kemi("tm", "t_branch_timeout", &[], RetType::Int, |c, _| {
        b(branch_state(c, |br| br.timed_out))
    })
    .native("t_branch_timeout", RouteMask(1 | 2 | 512));
    r.kemi("tm", "t_branch_replied", &[], RetType::Int, |c, _| {
        b(branch_state(c, |br| br.replied))
    })
    .native("t_branch_replied", RouteMask(1 | 2 | 512));
    r.kemi("tm", "t_any_timeout", &[], RetType::Int, |c, _| {
        b(c.tm
            .t
            .as_ref()
            .is_some_and(|t| t.lock().branches.iter().any(|x| x.timed_out)))
    })
    .native("t_any_timeout", RQ_F_R_B);
    r.kemi("tm", "t_any_replied", &[], RetType::Int, |c, _| {
        b(c.tm
            .t
            .as_ref()
            .is_some_and(|t| t.lock().branches.iter().any(|x| x.replied)))
    })
    .native("t_any_replied", RQ_F_R_B);
    r.kemi("tm", "t_grep_status", &[I], RetType::Int, |c, a| {
        let code = arg_int(a, 0);
        b(c.tm
            .t
            .as_ref()
            .is_some_and(|t| t.lock().branches.iter().any(|x| i64::from(x.code) == code)))
    })
    .native("t_grep_status", RQ_F_R_B);
    r.kemi("tm", "t_get_branch_index", &[], RetType::Int, |c, _| {
        Value::Int(branch_index(c) as i64)
    });
    r.kemi("tm", "t_get_status_code", &[], RetType::Int, |c, _| {
        Value::Int(status_code(c) as i64)
    })
    .native("t_get_status_code", RouteMask(1 | 2 | 4 | 8 | 128));
    r.kemi("tm", "t_exists", &[], RetType::Int, |c, _| {
        b(c.tm.t.is_some())
    })
    .native("t_exists", RouteMask::ANY);

    r.kemi("tm", "t_set_fr", &[I, I], RetType::Int, |c, a| {
        set_fr(c, arg_int(a, 0), arg_int(a, 1))
    })
    .native("t_set_fr", RQ_F_R_B);
    r.native("t_set_fr", &[I], RQ_F_R_B, |c, a| {
        set_fr(c, arg_int(a, 0), 0)
    });
    r.kemi("tm", "t_set_fr_inv", &[I], RetType::Int, |c, a| {
        set_fr(c, arg_int(a, 0), 0)
    });
    r.kemi("tm", "t_reset_fr", &[], RetType::Int, |c, _| {
        c.tm.fr = None;
        if let Some(t) = c.tm.t.clone() {
            let cfg = &c.core.m.tm.cfg;
            let mut tx = t.lock();
            tx.fr = cfg.fr;
            tx.fr_inv = cfg.fr_inv;
        }
        Value::Int(1)
    })
    .native("t_reset_fr", RQ_F_R_B);
    r.kemi("tm", "t_set_auto_inv_100", &[I], RetType::Int, |c, a| {
        let on = arg_int(a, 0) != 0;
        c.tm.auto_inv_100 = Some(on);
        if let Some(t) = c.tm.t.clone() {
            t.lock().auto_inv_100 = on;
        }
        Value::Int(1)
    })
    .native("t_set_auto_inv_100", RQ);
    r.kemi("tm", "t_set_disable_6xx", &[I], RetType::Int, |c, a| {
        let on = arg_int(a, 0) != 0;
        match c.tm.t.clone() {
            Some(t) => t.lock().disable_6xx = on,
            None => c.tm.disable_6xx = Some(on),
        }
        Value::Int(1)
    })
    .native("t_set_disable_6xx", RQ_F_R_B);

    r.kemi("tm", "t_check_status", &[S], RetType::Int, |c, a| {
        t_check_status(c, &arg_bytes(a, 0))
    })
    .native("t_check_status", RouteMask(1 | 2 | 4 | 128))
    .hints(&[ParamHint::Regex]);
}

fn port_arg(a: &[Value], i: usize) -> Option<u16> {
    let p = arg_int(a, i);
    (1..=65535).contains(&p).then_some(p as u16)
}

fn relay_to(c: &mut Ctx, host: &[u8], port: Option<u16>, proto: Proto) -> Value {
    match flow::hop_from(host, port, proto) {
        Ok(h) => Value::Int(flow::relay(c, Some(h)) as i64),
        Err(e) => {
            crate::klog!(L_ERR, "tm", "t_relay: bad destination: {e}");
            Value::Int(e.code() as i64)
        }
    }
}

/// `t_forward_nonack*`: forwards statefully on the transaction `t_newtran` created (no
/// transaction is created here, no 100 Trying is sent).
fn forward_nonack(c: &mut Ctx, host: &[u8], port: Option<u16>, proto: Proto) -> Value {
    if c.tm.t.is_none() {
        crate::klog!(
            L_ERR,
            "tm",
            "t_forward_nonack: no transaction (call t_newtran first)"
        );
        return Value::Int(-1);
    }
    match flow::hop_from(host, port, proto) {
        Ok(h) => Value::Int(flow::forward_existing(c, Some(h)) as i64),
        Err(e) => Value::Int(e.code() as i64),
    }
}

fn relay_proxy(c: &mut Ctx, s: &[u8]) -> Value {
    match flow::parse_proxy(s) {
        Ok(h) => Value::Int(flow::relay(c, Some(h)) as i64),
        Err(e) => {
            crate::klog!(
                L_ERR,
                "tm",
                "t_relay_to: bad proxy '{}'",
                String::from_utf8_lossy(s)
            );
            Value::Int(e.code() as i64)
        }
    }
}

/// A `t_relay_to` argument made only of digits is a flag set, not a proxy.
fn parse_flags(p: &[u8]) -> Option<i64> {
    if p.is_empty() || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(p).ok()?.parse().ok()
}

/// `t_relay_to` flags: 0x01 no automatic 100 Trying, 0x02 no internal error reply, 0x04
/// no DNS failover (ksr does no DNS failover anyway).
fn relay_flags(c: &mut Ctx, f: i64) {
    if f & 1 != 0 {
        c.tm.auto_inv_100 = Some(false);
    }
    if f & 2 != 0 {
        c.tm.no_internal_reply = true;
    }
}

fn lookup_cancel(c: &mut Ctx) -> Value {
    if c.msg.method() != crate::sip::Method::Cancel {
        return Value::Int(-1);
    }
    let found = trans::key_of(&c.msg, b"INVITE").and_then(|k| c.core.m.tm.lookup(&k));
    b(found.is_some())
}

fn reply_args(a: &[Value]) -> Option<(u16, Bytes)> {
    let code = arg_int(a, 0);
    if !(100..=699).contains(&code) {
        crate::klog!(L_ERR, "tm", "t_reply: invalid code {code}");
        return None;
    }
    Some((code as u16, arg_bytes(a, 1)))
}

fn t_reply(c: &mut Ctx, a: &[Value]) -> Value {
    let Some((code, reason)) = reply_args(a) else {
        return Value::Int(-1);
    };
    match c.tm.t.clone() {
        Some(t) => Value::Int(flow::reply_on(c, &t, code, &reason, true) as i64),
        None => {
            crate::klog!(
                L_ERR,
                "tm",
                "t_reply: no transaction for this message (call t_newtran first)"
            );
            Value::Int(-1)
        }
    }
}

fn t_send_reply(c: &mut Ctx, a: &[Value]) -> Value {
    let Some((code, reason)) = reply_args(a) else {
        return Value::Int(-1);
    };
    Value::Int(send_reply_stateful(c, code, &reason) as i64)
}

/// Replies statefully, creating the transaction if needed (`t_send_reply`). Returns 0 for
/// a retransmission (already answered), like `t_newtran`.
pub fn send_reply_stateful(c: &mut Ctx, code: u16, reason: &[u8]) -> i32 {
    if c.tm.t.is_none() {
        if !c.msg.is_request() || c.msg.method() == crate::sip::Method::Ack {
            return -1;
        }
        match flow::newtran(c) {
            1 => {}
            r => return r,
        }
    }
    match c.tm.t.clone() {
        Some(t) => flow::reply_on(c, &t, code, reason, true),
        None => -1,
    }
}

/// For sl's `send_reply`: replies on the current transaction when there is one (Kamailio's
/// sl replies statefully then); `None` when the message has no transaction.
pub fn reply_if_transaction(c: &mut Ctx, code: u16, reason: &[u8]) -> Option<i32> {
    let t = c.tm.t.clone()?;
    Some(flow::reply_on(c, &t, code, reason, true))
}

fn set_route(
    c: &mut Ctx,
    a: &[Value],
    ctx_field: fn(&mut TmCtx) -> &mut Option<Bytes>,
    tx_field: fn(&mut trans::Tx) -> &mut Option<Bytes>,
) -> Value {
    let name = arg_bytes(a, 0);
    let v = (!name.is_empty()).then_some(name);
    *ctx_field(&mut c.tm) = v.clone();
    // Inside the transaction's own routes the setting applies to it directly.
    if c.route != RouteKind::Request
        && let Some(t) = c.tm.t.clone()
    {
        *tx_field(&mut t.lock()) = v;
    }
    Value::Int(1)
}

fn t_is_set(c: &mut Ctx, a: &[Value]) -> Value {
    let what = arg_bytes(a, 0);
    let from_tx = c.tm.t.as_ref().map(|t| {
        let tx = t.lock();
        match &what[..] {
            b"failure_route" => tx.on_failure.is_some(),
            b"onreply_route" => tx.on_reply.is_some(),
            b"branch_route" => tx.on_branch.is_some(),
            b"branch_failure_route" => tx.on_branch_failure.is_some(),
            _ => false,
        }
    });
    let from_ctx = match &what[..] {
        b"failure_route" => c.tm.on_failure.is_some(),
        b"onreply_route" => c.tm.on_reply.is_some(),
        b"branch_route" => c.tm.on_branch.is_some(),
        b"branch_failure_route" => c.tm.on_branch_failure.is_some(),
        _ => {
            crate::klog!(
                L_ERR,
                "tm",
                "t_is_set: unknown route type '{}'",
                String::from_utf8_lossy(&what)
            );
            return Value::Int(-1);
        }
    };
    b(from_ctx || from_tx.unwrap_or(false))
}

fn branch_state(c: &Ctx, f: impl Fn(&trans::UacBranch) -> bool) -> bool {
    let idx = c.tm.branch_idx;
    c.tm.t
        .as_ref()
        .is_some_and(|t| t.lock().branches.get(idx.max(0) as usize).is_some_and(f))
}

fn branch_index(c: &Ctx) -> i32 {
    match c.route {
        RouteKind::Branch
        | RouteKind::TmOnReply
        | RouteKind::Failure
        | RouteKind::BranchFailure => c.tm.branch_idx,
        _ if c.tm.t.is_some() => c.tm.branch_idx,
        _ => -1,
    }
}

fn status_code(c: &Ctx) -> i32 {
    if c.route == RouteKind::Failure {
        return c.tm.reply_code;
    }
    if c.msg.is_reply() {
        return c.msg.status().map(i32::from).unwrap_or(-1);
    }
    c.tm.t
        .as_ref()
        .map(|t| t.lock().uas_status as i32)
        .unwrap_or(-1)
}

fn set_fr(c: &mut Ctx, fr_inv: i64, fr: i64) -> Value {
    let clamp = |v: i64| v.clamp(0, u32::MAX as i64) as u32;
    let (fi, f) = (clamp(fr_inv), clamp(fr));
    c.tm.fr = Some((f, fi));
    if let Some(t) = c.tm.t.clone() {
        let mut tx = t.lock();
        if fi > 0 {
            tx.fr_inv = Duration::from_millis(fi as u64);
        }
        if f > 0 {
            tx.fr = Duration::from_millis(f as u64);
        }
    }
    Value::Int(1)
}

/// `t_check_status(re)`: the status of the reply being processed (the winning one in
/// failure_route, the last one sent upstream otherwise) matches the regex (unanchored, as
/// `regexec` searches).
fn t_check_status(c: &mut Ctx, re: &[u8]) -> Value {
    let code = status_code(c);
    if code < 0 {
        return Value::Int(-1);
    }
    let pat = String::from_utf8_lossy(re);
    match regex::Regex::new(&pat) {
        Ok(r) => b(r.is_match(&code.to_string())),
        Err(e) => {
            crate::klog!(L_ERR, "tm", "t_check_status: bad regex '{pat}': {e}");
            Value::Int(-1)
        }
    }
}

pub fn parse_inner_pv(s: &str, p: &dyn vm::pv::PvParser) -> Result<vm::pv::PvParam, String> {
    let t = s.trim();
    let (spec, used) = p.parse_spec_prefix(t).map_err(|e| e.message)?;
    if used != t.len() {
        return Err(format!("trailing text in '{t}'"));
    }
    Ok(vm::pv::PvParam::Spec(Box::new(spec)))
}

/// Evaluates the inner pseudo-variable of `$T_req(...)`/`$T_rpl(...)` with `msg` as the
/// current message.
fn eval_with(c: &mut Ctx, spec: &PvSpec, msg: crate::sip::SipMsg) -> Value {
    let vm::pv::PvParam::Spec(inner) = &spec.param else {
        return Value::Null;
    };
    let saved = std::mem::replace(&mut c.msg, msg);
    let v = vm::pv::get(c, inner);
    c.msg = saved;
    v
}

/// `$T_req(pv)`: `pv` evaluated on the transaction's request (in onreply_route).
pub fn pv_t_req(c: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(t) = c.tm.t.clone() else {
        return Value::Null;
    };
    let req = t.lock().req.clone();
    eval_with(c, spec, req)
}

/// `$T_rpl(pv)`: `pv` evaluated on the winning reply (in failure_route).
pub fn pv_t_rpl(c: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(t) = c.tm.t.clone() else {
        return Value::Null;
    };
    if c.msg.is_reply() {
        let m = c.msg.clone();
        return eval_with(c, spec, m);
    }
    let idx = c.tm.branch_idx.max(0) as usize;
    let reply = t.lock().branches.get(idx).and_then(|b| b.reply.clone());
    match reply {
        Some(r) => eval_with(c, spec, r),
        None => Value::Null,
    }
}

pub fn pv_reply_code(c: &mut Ctx, _: &PvSpec) -> Value {
    match c.route {
        RouteKind::Failure => Value::Int(c.tm.reply_code as i64),
        RouteKind::TmOnReply | RouteKind::CoreOnReply | RouteKind::BranchFailure => {
            Value::Int(c.msg.status().map(i64::from).unwrap_or(0))
        }
        _ => Value::Int(
            c.tm.t
                .as_ref()
                .map(|t| t.lock().uas_status as i64)
                .unwrap_or(0),
        ),
    }
}

pub fn pv_reply_reason(c: &mut Ctx, _: &PvSpec) -> Value {
    match c.route {
        RouteKind::Failure => {
            c.tm.reply_reason
                .clone()
                .map(Value::Str)
                .unwrap_or(Value::Null)
        }
        RouteKind::TmOnReply | RouteKind::CoreOnReply => c
            .msg
            .reason()
            .cloned()
            .map(Value::Str)
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

pub fn pv_branch_idx(c: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(branch_index(c).max(0) as i64)
}

fn rpc_stats(
    core: &'static crate::core::Core,
    _: &[serde_json::Value],
) -> Result<serde_json::Value, crate::rpc::RpcError> {
    let s = &core.m.tm.stats;
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let current = core.m.tm.current();
    Ok(serde_json::json!({
        "current": current,
        "waiting": 0,
        "total": g(&s.created),
        "total_local": g(&s.local),
        "rpl_received": g(&s.rpl_received),
        "rpl_generated": g(&s.rpl_generated),
        "rpl_sent": g(&s.rpl_sent),
        "6xx": g(&s.by_class[6]),
        "5xx": g(&s.by_class[5]),
        "4xx": g(&s.by_class[4]),
        "3xx": g(&s.by_class[3]),
        "2xx": g(&s.by_class[2]),
        "created": g(&s.created),
        "freed": g(&s.freed),
        "delayed_free": 0,
    }))
}

/// `$T(name)`: transaction attributes (`id_index`/`id_label` identify it: ksr has one id).
pub fn pv_t(c: &mut Ctx, spec: &PvSpec) -> Value {
    let vm::pv::PvParam::Str(name) = &spec.param else {
        return Value::Null;
    };
    let Some(t) = c.tm.t.clone() else {
        return Value::Null;
    };
    match &name[..] {
        b"id_index" => Value::Int(t.lock().id as i64 & 0x7fff_ffff),
        b"id_label" => Value::Int(0),
        b"reply_code" => pv_reply_code(c, spec),
        b"reply_reason" => pv_reply_reason(c, spec),
        b"branch_index" => Value::Int(branch_index(c).max(0) as i64),
        b"reply_type" => {
            let idx = c.tm.branch_idx.max(0) as usize;
            let local = t.lock().branches.get(idx).is_some_and(|b| b.local);
            Value::Int(if c.route == RouteKind::Failure && local {
                1
            } else {
                0
            })
        }
        _ => Value::Null,
    }
}

/// Names `$T(...)` accepts.
pub fn parse_t_name(s: &str) -> Result<vm::pv::PvParam, String> {
    match s.trim() {
        n @ ("id_index" | "id_label" | "reply_code" | "reply_reason" | "branch_index"
        | "reply_type") => Ok(vm::pv::PvParam::Str(Bytes::copy_from_slice(n.as_bytes()))),
        other => Err(format!("unknown $T attribute '{other}'")),
    }
}

/// `$T_branch(uri|flags)`: the branch whose reply is being processed.
pub fn pv_t_branch(c: &mut Ctx, spec: &PvSpec) -> Value {
    let vm::pv::PvParam::Str(name) = &spec.param else {
        return Value::Null;
    };
    // Like Kamailio, only while a reply of the branch is processed (onreply_route,
    // branch-failure route); null elsewhere.
    if !c.msg.is_reply() {
        return Value::Null;
    }
    let Some(t) = c.tm.t.clone() else {
        return Value::Null;
    };
    let idx = c.tm.branch_idx.max(0) as usize;
    let tx = t.lock();
    let Some(b) = tx.branches.get(idx) else {
        return Value::Null;
    };
    match &name[..] {
        b"uri" => Value::Str(b.uri.clone()),
        b"flags" => Value::Int(b.flags as i64),
        _ => Value::Null,
    }
}

/// Names `$T_branch(...)` accepts.
pub fn parse_t_branch_name(s: &str) -> Result<vm::pv::PvParam, String> {
    match s.trim() {
        n @ ("uri" | "flags") => Ok(vm::pv::PvParam::Str(Bytes::copy_from_slice(n.as_bytes()))),
        other => Err(format!("unsupported $T_branch attribute '{other}'")),
    }
}
