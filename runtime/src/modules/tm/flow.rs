//! tm's message flows: creating server transactions, forking client branches, handling
//! replies and timers, failure_route, CANCEL and ACK.

use super::trans::*;
use crate::ctx::Ctx;
use crate::engine::RouteTarget;
use crate::forward::{self, ForwardError, NextHop};
use crate::log::{L_DBG, L_ERR, L_WARN};
use crate::sip::msg::{Edit, ORDER_VIA};
use crate::sip::reply::{ReplySpec, build_reply};
use crate::sip::{HdrKind, Method, SipMsg, Uri};
use crate::transport::{Destination, Proto};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vm::RouteKind;

fn st(ctx: &Ctx) -> &'static TmState {
    &ctx.core.m.tm
}

pub fn send_all(ctx: &Ctx, outs: Vec<Out>) {
    for o in outs {
        if let Err(e) = ctx.core.sender.send(&o.dst, &o.data) {
            crate::klog!(L_ERR, "tm", "send to {} failed: {e}", o.dst.addr);
        }
    }
}

/// Creates the server transaction of the request in `ctx` (Kamailio's `t_newtran`):
/// 1 created (or already current), 0 retransmission absorbed (last reply re-sent), -1 error.
pub fn newtran(ctx: &mut Ctx) -> i32 {
    if ctx.tm.t.is_some() {
        return 1;
    }
    if !ctx.msg.is_request() {
        return -1;
    }
    if ctx.msg.method() == Method::Ack {
        return match ack_lookup(ctx) {
            AckMatch::Negative => 0,
            _ => 1,
        };
    }
    let Some(key) = key_of(&ctx.msg, &class_of(&ctx.msg)) else {
        crate::klog!(
            L_ERR,
            "tm",
            "t_newtran: cannot build transaction key (bad Via?)"
        );
        return -1;
    };
    let cfg = &st(ctx).cfg;
    let (fr, fr_inv) = match ctx.tm.fr {
        Some((a, b)) => (
            if a > 0 {
                Duration::from_millis(a as u64)
            } else {
                cfg.fr
            },
            if b > 0 {
                Duration::from_millis(b as u64)
            } else {
                cfg.fr_inv
            },
        ),
        None => (cfg.fr, cfg.fr_inv),
    };
    let make = |id| Tx {
        id,
        key: None,
        method: ctx.msg.method(),
        req: ctx.msg.clone(),
        rcv: ctx.rcv.clone(),
        reply_dst: crate::modules::sl::reply_destination(ctx),
        to_tag: Bytes::from(crate::modules::sl::to_tag(ctx)),
        snap: Snapshot::take(ctx),
        on_failure: None,
        on_reply: None,
        on_branch: None,
        on_branch_failure: None,
        fr,
        fr_inv,
        uas_status: 0,
        uas_reply: None,
        branches: Vec::new(),
        first_branch: 0,
        canceled: false,
        in_failure: false,
        acked: false,
        deleted: false,
        reply_retr: cfg.t1,
        reply_retr_count: 0,
        auto_inv_100: ctx.tm.auto_inv_100.unwrap_or(cfg.auto_inv_100),
        disable_6xx: ctx.tm.disable_6xx.unwrap_or(cfg.disable_6xx),
        got_6xx: false,
        completed: false,
    };
    match st(ctx).insert(key, make) {
        NewTx::Created(t) => {
            ctx.tm.t = Some(t);
            1
        }
        NewTx::Exists(t) => {
            retransmit_reply(ctx, &t);
            0
        }
    }
}

/// Re-sends the last reply of a transaction (a request retransmission arrived).
pub fn retransmit_reply(ctx: &Ctx, t: &TxRef) {
    let out = {
        let tx = t.lock();
        tx.uas_reply.clone().map(|data| Out {
            dst: tx.reply_dst.clone(),
            data,
        })
    };
    crate::klog!(L_DBG, "tm", "retransmission absorbed");
    send_all(ctx, out.into_iter().collect());
}

pub enum AckMatch {
    None,
    /// ACK to our negative final reply: absorbed.
    Negative,
    /// ACK for a 2xx of a transaction still alive (end to end).
    Positive,
}

/// Matches an ACK to its INVITE transaction; an ACK to a negative reply is absorbed here.
pub fn ack_lookup(ctx: &Ctx) -> AckMatch {
    let Some(key) = key_of(&ctx.msg, b"INVITE") else {
        return AckMatch::None;
    };
    let Some(t) = st(ctx).lookup(&key) else {
        return AckMatch::None;
    };
    let mut tx = t.lock();
    if tx.uas_status >= 300 {
        tx.acked = true;
        AckMatch::Negative
    } else if tx.uas_status >= 200 {
        AckMatch::Positive
    } else {
        AckMatch::None
    }
}

/// `t_relay` and its variants: `hop` overrides the destination of every branch.
pub fn relay(ctx: &mut Ctx, hop: Option<NextHop>) -> i32 {
    if !ctx.msg.is_request() {
        crate::klog!(L_ERR, "tm", "t_relay: not a request");
        return -1;
    }
    match ctx.msg.method() {
        Method::Cancel if ctx.route != RouteKind::Failure => return relay_cancel(ctx, hop),
        Method::Ack if ctx.route != RouteKind::Failure => {
            return match ack_lookup(ctx) {
                AckMatch::Negative => 1,
                _ => stateless(ctx, hop),
            };
        }
        _ => {}
    }
    // A transaction created here already holds this request and context.
    let (t, fresh) = match ctx.tm.t.clone() {
        Some(t) => (t, false),
        None => match newtran(ctx) {
            1 => match ctx.tm.t.clone() {
                Some(t) => (t, true),
                None => return -1,
            },
            0 => return 1,
            e => return e,
        },
    };
    let in_failure = ctx.route == RouteKind::Failure;
    let send_100 = {
        let mut tx = t.lock();
        if !in_failure && !fresh {
            tx.req = ctx.msg.clone();
            tx.snap = Snapshot::take(ctx);
            if let Some((a, b)) = ctx.tm.fr {
                if a > 0 {
                    tx.fr = Duration::from_millis(a as u64);
                }
                if b > 0 {
                    tx.fr_inv = Duration::from_millis(b as u64);
                }
            }
        }
        if ctx.tm.on_failure.is_some() {
            tx.on_failure = ctx.tm.on_failure.clone();
        }
        if ctx.tm.on_reply.is_some() {
            tx.on_reply = ctx.tm.on_reply.clone();
        }
        if ctx.tm.on_branch_failure.is_some() {
            tx.on_branch_failure = ctx.tm.on_branch_failure.clone();
        }
        if let Some(a) = ctx.tm.auto_inv_100 {
            tx.auto_inv_100 = a;
        }
        if let Some(d) = ctx.tm.disable_6xx {
            tx.disable_6xx = d;
        }
        tx.is_invite() && tx.auto_inv_100 && tx.uas_status < 100
    };
    if send_100 {
        let reason = st(ctx).cfg.auto_inv_100_reason.clone();
        reply_on(ctx, &t, 100, &reason, false);
    }
    match fork(ctx, &t, hop.as_ref()) {
        Ok(_) => 1,
        Err(e) => {
            crate::klog!(L_ERR, "tm", "t_relay: no branch could be sent: {e}");
            if ctx.tm.no_internal_reply {
                return -4;
            }
            if !in_failure {
                let (code, reason): (u16, &[u8]) = match e {
                    ForwardError::Resolve(_) | ForwardError::BadUri => {
                        (478, b"Unresolvable destination (478/TM)")
                    }
                    ForwardError::Send(_) => (
                        477,
                        b"Unfortunately error on sending to next hop occurred (477/TM)",
                    ),
                    ForwardError::Transport(_) => (500, b"Server Internal Error (500/TM)"),
                };
                reply_on(ctx, &t, code, reason, false);
            }
            e.code()
        }
    }
}

fn stateless(ctx: &mut Ctx, hop: Option<NextHop>) -> i32 {
    let hop = match hop {
        Some(h) => Ok(h),
        None => forward::request_next_hop(ctx),
    };
    match hop.and_then(|h| forward::forward_request(ctx, &h)) {
        Ok(()) => 1,
        Err(e) => {
            crate::klog!(L_ERR, "tm", "t_relay: stateless forward failed: {e}");
            e.code()
        }
    }
}

struct Target {
    uri: Bytes,
    dst_uri: Option<Bytes>,
    path: Option<Bytes>,
    flags: u64,
    force_socket: Option<usize>,
}

/// Sends one branch per destination of the current message (R-URI/$du, then the
/// additional branches), running branch_route for each. Ok(number sent).
fn fork(ctx: &mut Ctx, t: &TxRef, hop: Option<&NextHop>) -> Result<usize, ForwardError> {
    let mut targets = Vec::with_capacity(1 + ctx.branches.len());
    if let Some(u) = ctx.msg.ruri().cloned() {
        targets.push(Target {
            uri: u,
            dst_uri: ctx.dst_uri.clone(),
            path: ctx.path_vec.clone(),
            flags: ctx.bflags,
            force_socket: ctx.force_socket,
        });
    }
    for b in std::mem::take(&mut ctx.branches) {
        targets.push(Target {
            uri: b.uri,
            dst_uri: b.dst_uri,
            path: b.path,
            flags: b.flags,
            force_socket: b.force_socket,
        });
    }
    let on_branch = ctx.tm.on_branch.clone();
    let first = {
        let mut tx = t.lock();
        let n = tx.branches.len();
        tx.first_branch = n;
        n
    };
    let mut sent = 0;
    let mut last_err = ForwardError::BadUri;
    for (k, tg) in targets.into_iter().enumerate() {
        let idx = first + k;
        match build_branch(ctx, t, idx, &tg, on_branch.as_deref(), hop) {
            Ok(Some(b)) => {
                let out = Out {
                    dst: b.dst.clone(),
                    data: b.sent.clone(),
                };
                // Indexed before it is sent: the reply may arrive at once on another worker.
                let id = {
                    let mut tx = t.lock();
                    while tx.branches.len() < idx {
                        tx.branches.push(dead_branch(tg.uri.clone()));
                    }
                    tx.branches.push(b);
                    tx.id
                };
                if let Err(e) = ctx.core.sender.send(&out.dst, &out.data) {
                    crate::klog!(L_ERR, "tm", "branch {idx}: send failed: {e}");
                    last_err = ForwardError::Send(e.to_string());
                    if let Some(b) = t.lock().branches.get_mut(idx) {
                        b.is_final = true;
                        b.local = true;
                        b.code = 477;
                    }
                    continue;
                }
                let cfg = &st(ctx).cfg;
                if out.dst.proto == Proto::Udp {
                    st(ctx).schedule(id, Ev::Retr(idx), cfg.t1);
                }
                let fr = t.lock().fr;
                st(ctx).schedule(id, Ev::Fr(idx), fr);
                sent += 1;
            }
            Ok(None) => {
                // Dropped in branch_route: the branch does not exist.
                push_failed(ctx, t, idx, tg.uri.clone());
            }
            Err(e) => {
                crate::klog!(L_ERR, "tm", "branch {idx}: {e}");
                push_failed(ctx, t, idx, tg.uri.clone());
                last_err = e;
            }
        }
    }
    if sent == 0 {
        return Err(last_err);
    }
    Ok(sent)
}

fn dead_branch(uri: Bytes) -> UacBranch {
    UacBranch {
        uri,
        dst: Destination::new(Proto::Udp, std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        sent: Bytes::new(),
        via: Bytes::new(),
        code: 0,
        reply: None,
        local: true,
        is_final: true,
        timed_out: false,
        replied: false,
        cancel_sent: false,
        retr_interval: Duration::ZERO,
        fr_deadline: Instant::now(),
        flags: 0,
        dropped: false,
    }
}

/// A branch that could not be sent still takes its index (final, no reply), so that the
/// others keep their ids; it never wins unless alone (then the caller replies an error).
fn push_failed(ctx: &Ctx, t: &TxRef, idx: usize, uri: Bytes) {
    let _ = ctx;
    let mut tx = t.lock();
    while tx.branches.len() <= idx {
        let mut b = dead_branch(uri.clone());
        b.code = 500;
        tx.branches.push(b);
    }
}

fn build_branch(
    ctx: &mut Ctx,
    t: &TxRef,
    idx: usize,
    tg: &Target,
    on_branch: Option<&[u8]>,
    hop: Option<&NextHop>,
) -> Result<Option<UacBranch>, ForwardError> {
    let (id, fr) = {
        let tx = t.lock();
        (tx.id, tx.fr)
    };
    // Per-branch view of the message: branch_route changes stay in this branch.
    let saved_msg = ctx.msg.clone();
    let saved = (
        ctx.dst_uri.clone(),
        ctx.path_vec.clone(),
        ctx.bflags,
        ctx.force_socket,
        ctx.tm.branch_idx,
        ctx.rr.clone(),
    );
    if ctx.msg.ruri() != Some(&tg.uri) {
        ctx.msg.set_ruri(tg.uri.clone());
    }
    ctx.dst_uri = tg.dst_uri.clone();
    ctx.path_vec = tg.path.clone();
    ctx.bflags = tg.flags;
    ctx.force_socket = tg.force_socket;
    ctx.tm.branch_idx = idx as i32;
    let mut dropped = false;
    if let Some(name) = on_branch {
        let name = String::from_utf8_lossy(name).into_owned();
        let prev_t = ctx.tm.t.replace(t.clone());
        let drop_before = ctx.drop;
        let saved_route = std::mem::replace(&mut ctx.route, RouteKind::Branch);
        let out = ctx.run_route(RouteTarget::Branch(&name));
        ctx.route = saved_route;
        dropped = out.drop || (ctx.drop && !drop_before);
        ctx.drop = drop_before;
        ctx.tm.t = prev_t;
    }
    let result = if dropped {
        crate::klog!(L_DBG, "tm", "branch {idx} dropped in branch_route");
        Ok(None)
    } else {
        build_branch_msg(ctx, id, idx, hop).map(|(dst, sent, via)| {
            Some(UacBranch {
                uri: ctx.msg.ruri().cloned().unwrap_or_default(),
                dst,
                sent,
                via,
                code: 0,
                reply: None,
                local: false,
                is_final: false,
                timed_out: false,
                replied: false,
                cancel_sent: false,
                retr_interval: st(ctx).cfg.t1,
                fr_deadline: Instant::now() + fr,
                flags: ctx.bflags,
                dropped: false,
            })
        })
    };
    ctx.msg = saved_msg;
    ctx.dst_uri = saved.0;
    ctx.path_vec = saved.1;
    ctx.bflags = saved.2;
    ctx.force_socket = saved.3;
    ctx.tm.branch_idx = saved.4;
    ctx.rr = saved.5;
    result
}

/// The bytes of the branch request: our Via, received/rport on the previous one, Route
/// from the path vector, the script's edits and the branch's R-URI.
fn build_branch_msg(
    ctx: &mut Ctx,
    id: u64,
    idx: usize,
    hop: Option<&NextHop>,
) -> Result<(Destination, Bytes, Bytes), ForwardError> {
    let hop = match hop {
        Some(h) => h.clone(),
        None => forward::request_next_hop(ctx)?,
    };
    let addr = forward::resolve(&hop, ctx.core.cfg.dns_try_ipv6)?;
    let mut dst = Destination::new(hop.proto, addr);
    dst.listener = ctx.force_socket;
    dst.no_connect = ctx.send_flags.forward_no_connect;
    dst.close_after = ctx.send_flags.forward_close;
    let listeners = ctx.core.sender.listeners();
    let lid = crate::transport::choose_listener(listeners, &dst)
        .ok_or_else(|| ForwardError::Send(format!("no socket for {} to {addr}", hop.proto)))?;
    dst.listener = Some(lid);
    let listener = listeners
        .get(lid)
        .ok_or_else(|| ForwardError::Send("bad socket".into()))?
        .clone();
    let branch = format!("z9hG4bKtm{id:x}.{idx}");
    let via = forward::via_line(ctx, &listener, &branch, "");
    let at = ctx
        .msg
        .via1()
        .ok()
        .and_then(|v| ctx.msg.headers().get(v.header).map(|h| h.start))
        .unwrap_or_else(|| ctx.msg.headers_start());
    let via = Bytes::from(via);
    let mut extra = vec![Edit::insert(at, via.clone(), ORDER_VIA)];
    if let Some(e) = forward::via1_received_edit(ctx) {
        extra.push(e);
    }
    if let Some(p) = &ctx.path_vec {
        let mut line = b"Route: ".to_vec();
        line.extend_from_slice(p);
        line.extend_from_slice(b"\r\n");
        extra.push(Edit::insert(ctx.msg.headers_start(), Bytes::from(line), 9));
    }
    extra.extend(crate::modules::rr::outbound_edits(ctx, &listener));
    for h in &ctx.core.hooks.outbound_edits {
        extra.extend(h(ctx, &listener));
    }
    let data = ctx.msg.serialize(&extra);
    if !forward::run_onsend(ctx, &dst, listener.addr, &data) {
        return Err(ForwardError::Send("dropped in onsend_route".into()));
    }
    Ok((dst, Bytes::from(data), via))
}

/// Sends a locally generated reply on transaction `t` (t_reply, auto 100, 408/487/5xx).
/// `use_ctx_hdrs` adds the headers from `append_to_reply`.
pub fn reply_on(ctx: &mut Ctx, t: &TxRef, code: u16, reason: &[u8], use_ctx_hdrs: bool) -> i32 {
    let server = crate::modules::sl::server_header(ctx);
    let (outs, final_now, to_tag) = {
        let mut tx = t.lock();
        if tx.uas_status >= 200 && !(tx.is_invite() && tx.uas_status < 300 && code < 300) {
            crate::klog!(
                L_WARN,
                "tm",
                "t_reply: a final reply ({}) was already sent, {code} not sent",
                tx.uas_status
            );
            return -1;
        }
        let hdrs: &[Bytes] = if use_ctx_hdrs { &ctx.reply_hdrs } else { &[] };
        let body = if use_ctx_hdrs {
            ctx.reply_body.as_deref().map(|b| (&b""[..], b))
        } else {
            None
        };
        let spec = ReplySpec {
            code,
            reason,
            to_tag: Some(&tx.to_tag),
            extra_headers: hdrs,
            server: server.as_deref(),
            body,
            src: Some(tx.rcv.src),
            force_rport: tx.snap.opts.force_rport || ctx.core.cfg.force_rport,
        };
        let data = Bytes::from(build_reply(&tx.req, &spec));
        let mut outs = vec![Out {
            dst: tx.reply_dst.clone(),
            data: data.clone(),
        }];
        tx.uas_reply = Some(data);
        if code >= 200 || tx.uas_status < 200 {
            tx.uas_status = code;
        }
        let final_now = code >= 200;
        if final_now {
            outs.extend(finalize(ctx, &mut tx));
        }
        let to_tag = tx
            .req
            .to()
            .ok()
            .and_then(|t| t.tag().cloned())
            .unwrap_or_else(|| tx.to_tag.clone());
        (outs, final_now, to_tag)
    };
    st(ctx).stats.rpl_generated.fetch_add(1, Ordering::Relaxed);
    st(ctx).stats.rpl_sent.fetch_add(1, Ordering::Relaxed);
    st(ctx).count_reply(code);
    send_all(ctx, outs);
    if final_now {
        let r = HookReply {
            code,
            reason: Bytes::copy_from_slice(reason),
            to_tag: Some(to_tag),
            branch_uri: None,
            has_body: false,
        };
        response_out(ctx, t, &r, true);
    }
    1
}

/// Bookkeeping once a final reply went upstream: cancel pending INVITE branches, start
/// reply retransmission (negative INVITE replies over UDP) and the wait timer.
fn finalize(ctx: &Ctx, tx: &mut Tx) -> Vec<Out> {
    let mut outs = Vec::new();
    if tx.is_invite() {
        outs.extend(cancel_pending(tx));
    }
    let cfg = &st(ctx).cfg;
    if tx.is_invite() && tx.uas_status >= 300 && tx.reply_dst.proto == Proto::Udp {
        tx.reply_retr = cfg.t1;
        st(ctx).schedule(tx.id, Ev::ReplyRetr, cfg.t1);
    }
    st(ctx).schedule(tx.id, Ev::Delete, cfg.wait);
    outs
}

/// CANCELs for the branches still pending that already got a provisional reply; the
/// others are cancelled when their first provisional reply arrives (or time out).
fn cancel_pending(tx: &mut Tx) -> Vec<Out> {
    let mut outs = Vec::new();
    for b in tx.branches.iter_mut() {
        if !b.is_final && !b.cancel_sent && b.provisional() {
            if let Some(c) = build_ack_or_cancel(&b.sent, None, true) {
                outs.push(Out {
                    dst: b.dst.clone(),
                    data: c,
                });
            }
            b.cancel_sent = true;
        }
    }
    outs
}

/// `t_relay` of a CANCEL: 200 to the CANCEL, CANCEL to every pending branch of the INVITE.
fn relay_cancel(ctx: &mut Ctx, hop: Option<NextHop>) -> i32 {
    let Some(t) = key_of(&ctx.msg, b"INVITE").and_then(|k| st(ctx).lookup(&k)) else {
        crate::klog!(
            L_DBG,
            "tm",
            "CANCEL without INVITE transaction: forwarded statelessly"
        );
        return stateless(ctx, hop);
    };
    let (outs, to_tag) = {
        let mut tx = t.lock();
        tx.canceled = true;
        let outs = if tx.uas_status < 200 {
            cancel_pending(&mut tx)
        } else {
            Vec::new()
        };
        (outs, tx.to_tag.clone())
    };
    send_all(ctx, outs);
    // The CANCEL's own 200.
    let server = crate::modules::sl::server_header(ctx);
    let spec = ReplySpec {
        code: 200,
        reason: b"canceling",
        to_tag: Some(&to_tag),
        extra_headers: &[],
        server: server.as_deref(),
        body: None,
        src: Some(ctx.rcv.src),
        force_rport: ctx.opts.force_rport || ctx.core.cfg.force_rport,
    };
    let data = Bytes::from(build_reply(&ctx.msg, &spec));
    let dst = crate::modules::sl::reply_destination(ctx);
    st(ctx).stats.rpl_generated.fetch_add(1, Ordering::Relaxed);
    send_all(ctx, vec![Out { dst, data }]);
    1
}

/// The reply hook: matches a reply to its client branch. False when it is not ours (the
/// core then forwards it statelessly).
pub fn on_reply(ctx: &mut Ctx) -> bool {
    let Some(code) = ctx.msg.status() else {
        return false;
    };
    let Some((id, idx)) = ctx
        .msg
        .via1()
        .ok()
        .and_then(|v| v.branch().and_then(|b| parse_branch(b)))
    else {
        return false;
    };
    let is_cancel_reply = ctx
        .msg
        .cseq()
        .is_ok_and(|c| c.method.eq_ignore_ascii_case(b"CANCEL"));
    let Some(t) = st(ctx).by_id(id) else {
        return is_cancel_reply;
    };
    st(ctx).stats.rpl_received.fetch_add(1, Ordering::Relaxed);
    if is_cancel_reply {
        return true;
    }
    let on_reply = {
        let tx = t.lock();
        if idx >= tx.branches.len() || tx.deleted {
            return true;
        }
        tx.on_reply.clone()
    };
    ctx.tm.t = Some(t.clone());
    ctx.tm.branch_idx = idx as i32;
    if let Some(name) = on_reply {
        let name = String::from_utf8_lossy(&name).into_owned();
        let drop_before = ctx.drop;
        let saved_route = std::mem::replace(&mut ctx.route, RouteKind::TmOnReply);
        let out = ctx.run_route(RouteTarget::OnReply(&name));
        ctx.route = saved_route;
        let dropped = out.drop || (ctx.drop && !drop_before);
        if dropped && code < 200 {
            return true;
        }
    }
    let mut outs = Vec::new();
    let mut relay = false;
    let mut done = false;
    {
        let mut tx = t.lock();
        let invite = tx.is_invite();
        let Some(b) = tx.branches.get_mut(idx) else {
            return true;
        };
        b.replied = true;
        if b.is_final {
            // Retransmission of a final reply: ACK it again (negative INVITE replies),
            // relay 2xx retransmissions end to end.
            if code >= 300 && invite && !b.local {
                let to = ctx.msg.header(HdrKind::To).map(|h| h.value.clone());
                if let Some(a) = build_ack_or_cancel(&b.sent, to.as_deref(), false) {
                    outs.push(Out {
                        dst: b.dst.clone(),
                        data: a,
                    });
                }
            }
            relay = (200..300).contains(&code);
        } else if code < 200 {
            let fr_inv = tx.fr_inv;
            let cancel_now = tx_canceled_or_final(&tx) || tx.got_6xx;
            let txid = tx.id;
            let uas_status = tx.uas_status;
            let Some(b) = tx.branches.get_mut(idx) else {
                return true;
            };
            let first_provisional = !b.provisional();
            b.code = code;
            if invite && (first_provisional || st(ctx).cfg.restart_fr_on_each_reply) {
                b.fr_deadline = Instant::now() + fr_inv;
                st(ctx).schedule(txid, Ev::Fr(idx), fr_inv);
            }
            // A CANCEL was waiting for this branch's first provisional reply.
            if cancel_now && invite && !b.cancel_sent {
                if let Some(c) = build_ack_or_cancel(&b.sent, None, true) {
                    outs.push(Out {
                        dst: b.dst.clone(),
                        data: c,
                    });
                }
                b.cancel_sent = true;
            }
            relay = code > 100 && uas_status < 200;
            if relay {
                tx.uas_status = code;
            }
        } else {
            b.code = code;
            b.is_final = true;
            if code >= 300 {
                if invite {
                    let to = ctx.msg.header(HdrKind::To).map(|h| h.value.clone());
                    if let Some(a) = build_ack_or_cancel(&b.sent, to.as_deref(), false) {
                        outs.push(Out {
                            dst: b.dst.clone(),
                            data: a,
                        });
                    }
                }
                b.reply = Some(ctx.msg.clone());
                done = true;
                // A 6xx ends the search (RFC 3261 16.7.10): the other pending branches
                // are cancelled, the first time only.
                if invite
                    && (600..700).contains(&code)
                    && !tx.disable_6xx
                    && !tx.got_6xx
                    && tx.branches.iter().any(|b| !b.is_final && !b.dropped)
                {
                    tx.got_6xx = true;
                    outs.extend(cancel_pending(&mut tx));
                }
            } else {
                relay = true;
                let first_2xx = tx.uas_status < 200;
                tx.uas_status = code;
                if first_2xx {
                    outs.extend(finalize(ctx, &mut tx));
                }
            }
        }
    }
    send_all(ctx, outs);
    if relay {
        let reply = ctx.msg.clone();
        let uri = t.lock().branches.get(idx).map(|b| b.uri.clone());
        relay_reply_msg(ctx, &t, &reply, None);
        if code > 100 {
            response_out(ctx, &t, &HookReply::of_msg(&reply, uri), code >= 200);
        }
    }
    if done {
        run_branch_failure(ctx, &t, idx);
        complete(ctx, &t);
    }
    true
}

fn tx_canceled_or_final(tx: &Tx) -> bool {
    tx.canceled || tx.uas_status >= 200
}

/// Relays a received reply upstream: our Via removed, `extra` header lines added (the
/// aggregated challenges of 401/407).
fn relay_reply_msg(ctx: &mut Ctx, t: &TxRef, reply: &SipMsg, extra: Option<Vec<Bytes>>) {
    let Ok(v1) = reply.via1().cloned() else {
        return;
    };
    let mut edits = vec![forward::remove_via_edit(reply, &v1)];
    let mut code = reply.status().unwrap_or(500);
    if code == 503 && st(ctx).cfg.remap_503_500 {
        // RFC 3261 16.7: a 503 is not passed upstream as such.
        code = 500;
        let mut first = b"SIP/2.0 500 ".to_vec();
        first.extend_from_slice(reply.reason().map(|r| &r[..]).unwrap_or(b"Server Error"));
        first.extend_from_slice(b"\r\n");
        edits.push(Edit::replace(0, reply.headers_start(), Bytes::from(first)));
    }
    if let Some(lines) = extra {
        let at = reply.headers_end();
        for l in lines {
            edits.push(Edit::insert(at, l, 30));
        }
    }
    let data = Bytes::from(serialize_reply(reply, &edits));
    let dst = {
        let mut tx = t.lock();
        if code >= 200 || tx.uas_status < 200 {
            tx.uas_reply = Some(data.clone());
        }
        tx.reply_dst.clone()
    };
    st(ctx).stats.rpl_sent.fetch_add(1, Ordering::Relaxed);
    if code >= 200 {
        st(ctx).count_reply(code);
    }
    send_all(ctx, vec![Out { dst, data }]);
}

/// Serializes a reply with edits that may touch its first line (the 503 remap).
fn serialize_reply(reply: &SipMsg, edits: &[Edit]) -> Vec<u8> {
    let first_line = edits
        .iter()
        .find(|e| e.start == 0 && e.end == reply.headers_start());
    let rest: Vec<Edit> = edits
        .iter()
        .filter(|e| !(e.start == 0 && e.end == reply.headers_start()))
        .cloned()
        .collect();
    let out = reply.serialize(&rest);
    match first_line {
        Some(f) => {
            let cut = reply.headers_start().min(out.len());
            let mut v = f.data.to_vec();
            v.extend_from_slice(&out[cut..]);
            v
        }
        None => out,
    }
}

/// `event_route[tm:branch-failure:NAME]` / `t_on_branch_failure` callback for a branch
/// that got a negative final reply.
fn run_branch_failure(ctx: &mut Ctx, t: &TxRef, idx: usize) {
    let name = t.lock().on_branch_failure.clone();
    let Some(name) = name else { return };
    let name = String::from_utf8_lossy(&name).into_owned();
    let target = if ctx.engine.as_ref().is_some_and(|e| e.name() == "native") {
        format!("tm:branch-failure:{name}")
    } else {
        name
    };
    ctx.tm.t = Some(t.clone());
    ctx.tm.branch_idx = idx as i32;
    let saved_route = std::mem::replace(&mut ctx.route, RouteKind::BranchFailure);
    ctx.run_route(RouteTarget::BranchFailure(&target));
    ctx.route = saved_route;
}

/// Called when a branch becomes final: once every branch of the round is final, runs
/// failure_route (which may fork again or reply) or relays the best reply.
pub fn complete(ctx: &mut Ctx, t: &TxRef) {
    // Bounded: each failure_route round either adds branches (and returns) or finishes.
    for _ in 0..16 {
        let (best, on_failure, step_start) = {
            let mut tx = t.lock();
            if tx.in_failure || tx.uas_status >= 200 {
                return;
            }
            let Some(best) = tx.pick_branch(st(ctx).cfg.faked_reply_prio) else {
                return;
            };
            tx.got_6xx = false;
            let on_failure = tx.on_failure.take();
            if on_failure.is_some() {
                tx.in_failure = true;
            }
            (best, on_failure, tx.first_branch)
        };
        failure_hooks(ctx, t, best);
        if let Some(name) = on_failure {
            ctx.tm.drop_replies = None;
            let before = run_failure(ctx, t, best, &name);
            let mode = ctx
                .tm
                .drop_replies
                .take()
                .unwrap_or(st(ctx).cfg.failure_reply_mode);
            let mut tx = t.lock();
            tx.in_failure = false;
            let added = tx.branches.len() > before;
            // Which saved replies stop counting (Kamailio's failure_reply_mode values):
            // 0 none, 1 all, 2 those of the last serial step, 3 all once new branches exist.
            let drop_from = match mode {
                1 => Some(0),
                2 => Some(step_start),
                3 if added => Some(0),
                _ => None,
            };
            if let Some(from) = drop_from {
                for b in tx.branches.iter_mut().take(before).skip(from) {
                    b.dropped = true;
                }
            }
            if tx.uas_status >= 200 {
                return;
            }
            if added && tx.branches[before..].iter().any(|b| !b.is_final) {
                return;
            }
            if added {
                // New branches failed at once: pick again among the replies still counted.
                continue;
            }
            if drop_from.is_some() {
                // Every reply was discarded and nothing new was tried: Kamailio answers
                // with its generic error.
                drop(tx);
                reply_on(
                    ctx,
                    t,
                    500,
                    b"I'm terribly sorry, server error occurred (1/TM)",
                    false,
                );
                return;
            }
            drop(tx);
        }
        relay_best(ctx, t, best);
        return;
    }
}

/// Restores the transaction's request context in `ctx` (for failure_route and the
/// transaction hooks).
fn restore(ctx: &mut Ctx, t: &TxRef) {
    let (req, rcv, snap) = {
        let tx = t.lock();
        (tx.req.clone(), tx.rcv.clone(), tx.snap.clone())
    };
    ctx.begin(req, rcv);
    ctx.flags = snap.flags;
    ctx.bflags = snap.bflags;
    ctx.avps = snap.avps;
    ctx.xavps = snap.xavps;
    ctx.xavus = snap.xavus;
    ctx.xavis = snap.xavis;
    ctx.corex = snap.corex;
    ctx.dst_uri = snap.dst_uri;
    ctx.path_vec = snap.path_vec;
    ctx.force_socket = snap.force_socket;
    ctx.opts = snap.opts;
    ctx.send_flags = snap.send_flags;
    ctx.tm.t = Some(t.clone());
}

/// Runs failure_route `name`; returns the branch count before it ran.
fn run_failure(ctx: &mut Ctx, t: &TxRef, best: usize, name: &[u8]) -> usize {
    let (code, reason, timed_out, before) = {
        let tx = t.lock();
        let (code, reason, timed_out) = match tx.branches.get(best) {
            Some(b) => (
                b.code,
                b.reply
                    .as_ref()
                    .and_then(|r| r.reason().cloned())
                    .unwrap_or_else(|| Bytes::from_static(local_reason(b.code))),
                b.timed_out,
            ),
            None => (500, Bytes::from_static(local_reason(500)), false),
        };
        (code, reason, timed_out, tx.branches.len())
    };
    restore(ctx, t);
    ctx.tm.reply_code = code as i32;
    ctx.tm.reply_reason = Some(reason);
    ctx.tm.branch_idx = best as i32;
    ctx.tm.branch_timeout = timed_out;
    ctx.tm.in_failure = true;
    let name = String::from_utf8_lossy(name).into_owned();
    ctx.route = RouteKind::Failure;
    let out = ctx.run_route(RouteTarget::Failure(&name));
    if out.missing {
        crate::klog!(L_ERR, "tm", "failure_route '{name}' does not exist");
    }
    ctx.route = RouteKind::Request;
    ctx.tm.in_failure = false;
    // Flags/AVPs changed in failure_route go with the transaction.
    let snap = Snapshot::take(ctx);
    t.lock().snap = snap;
    before
}

fn local_reason(code: u16) -> &'static [u8] {
    match code {
        408 => b"Request Timeout",
        487 => b"Request Terminated",
        _ => b"Server Internal Error",
    }
}

/// Relays the winning branch's reply (or a local one for timeouts) upstream.
fn relay_best(ctx: &mut Ctx, t: &TxRef, best: usize) {
    let (reply, code, extra, uri) = {
        let tx = t.lock();
        let Some(b) = tx.branches.get(best) else {
            return;
        };
        let extra = if matches!(b.code, 401 | 407) {
            // Aggregate the challenges of every 401/407 branch (RFC 3261 16.7 step 7).
            let mut lines = Vec::new();
            // Only the current round counts (failure_reply_mode 3).
            for (i, o) in tx.branches.iter().enumerate().filter(|(_, b)| !b.dropped) {
                if i == best || !matches!(o.code, 401 | 407) {
                    continue;
                }
                if let Some(r) = &o.reply {
                    for h in r.headers() {
                        if matches!(
                            h.kind,
                            HdrKind::WwwAuthenticate | HdrKind::ProxyAuthenticate
                        ) {
                            lines.push(Bytes::copy_from_slice(
                                r.buf().get(h.start..h.end).unwrap_or(&[]),
                            ));
                        }
                    }
                }
            }
            Some(lines)
        } else {
            None
        };
        (b.reply.clone(), b.code, extra, b.uri.clone())
    };
    match reply {
        Some(r) => {
            {
                let mut tx = t.lock();
                if tx.uas_status >= 200 {
                    return;
                }
                tx.uas_status = code;
                let outs = finalize(ctx, &mut tx);
                drop(tx);
                send_all(ctx, outs);
            }
            relay_reply_msg(ctx, t, &r, extra);
            response_out(ctx, t, &HookReply::of_msg(&r, Some(uri)), true);
        }
        None => {
            let code = if code == 0 { 500 } else { code };
            reply_on(ctx, t, code, local_reason(code), false);
        }
    }
}

/// A reply for the transaction hooks, owned.
struct HookReply {
    code: u16,
    reason: Bytes,
    to_tag: Option<Bytes>,
    branch_uri: Option<Bytes>,
    has_body: bool,
}

impl HookReply {
    fn of_msg(m: &SipMsg, branch_uri: Option<Bytes>) -> HookReply {
        HookReply {
            code: m.status().unwrap_or(0),
            reason: m.reason().cloned().unwrap_or_default(),
            to_tag: m.to().ok().and_then(|t| t.tag().cloned()),
            branch_uri,
            has_body: !m.body().is_empty(),
        }
    }

    fn view(&self) -> super::TmReply<'_> {
        super::TmReply {
            code: self.code,
            reason: &self.reason,
            to_tag: self.to_tag.as_deref(),
            branch_uri: self.branch_uri.as_ref(),
            has_body: self.has_body,
        }
    }
}

/// Puts the transaction's request context in `ctx` for the hooks, unless it is already
/// there (request route or failure_route of this transaction).
fn hook_ctx(ctx: &mut Ctx, t: &TxRef) {
    let here = ctx.msg.is_request()
        && ctx
            .tm
            .t
            .as_ref()
            .is_some_and(|c| std::sync::Arc::ptr_eq(c, t));
    if !here {
        restore(ctx, t);
    }
}

/// TMCB_RESPONSE_OUT: relayed provisional replies, and the final reply once.
fn response_out(ctx: &mut Ctx, t: &TxRef, r: &HookReply, is_final: bool) {
    if ctx.core.hooks.tm_response_out.is_empty() {
        return;
    }
    if is_final {
        let mut tx = t.lock();
        if tx.completed {
            return;
        }
        tx.completed = true;
    }
    hook_ctx(ctx, t);
    for h in &ctx.core.hooks.tm_response_out {
        h(ctx, &r.view());
    }
    // Hooks may change the transaction's flags (acc clears its missed-call flag).
    t.lock().snap.flags = ctx.flags;
}

/// TMCB_ON_FAILURE: every branch of the round failed; `best` is the reply chosen.
fn failure_hooks(ctx: &mut Ctx, t: &TxRef, best: usize) {
    if ctx.core.hooks.tm_on_failure.is_empty() {
        return;
    }
    let r = {
        let tx = t.lock();
        let Some(b) = tx.branches.get(best) else {
            return;
        };
        match &b.reply {
            Some(m) => HookReply::of_msg(m, Some(b.uri.clone())),
            None => HookReply {
                code: b.code,
                reason: Bytes::from_static(local_reason(b.code)),
                to_tag: Some(tx.to_tag.clone()),
                branch_uri: Some(b.uri.clone()),
                has_body: false,
            },
        }
    };
    hook_ctx(ctx, t);
    for h in &ctx.core.hooks.tm_on_failure {
        h(ctx, &r.view());
    }
    t.lock().snap.flags = ctx.flags;
}

/// Runs one due timer event.
pub fn timer_event(ctx: &mut Ctx, id: u64, ev: Ev) {
    let Some(t) = st(ctx).by_id(id) else { return };
    let cfg = st(ctx).cfg.clone();
    let mut outs = Vec::new();
    let mut check_complete = false;
    match ev {
        Ev::Retr(idx) => {
            let mut tx = t.lock();
            let invite = tx.is_invite();
            if tx.deleted {
                return;
            }
            if let Some(b) = tx.branches.get_mut(idx)
                && !b.is_final
                && (b.code == 0 || (!invite && b.provisional()))
            {
                outs.push(Out {
                    dst: b.dst.clone(),
                    data: b.sent.clone(),
                });
                b.retr_interval = if invite {
                    b.retr_interval * 2
                } else if b.provisional() {
                    cfg.t2
                } else {
                    (b.retr_interval * 2).min(cfg.t2)
                };
                let next = b.retr_interval;
                st(ctx).schedule(id, Ev::Retr(idx), next);
            }
        }
        Ev::Fr(idx) => {
            let mut tx = t.lock();
            let canceled = tx.canceled;
            let invite = tx.is_invite();
            if let Some(b) = tx.branches.get_mut(idx)
                && !b.is_final
            {
                let now = Instant::now();
                if now + Duration::from_millis(2) < b.fr_deadline {
                    let left = b.fr_deadline - now;
                    st(ctx).schedule(id, Ev::Fr(idx), left);
                } else {
                    if invite && b.provisional() && !b.cancel_sent {
                        if let Some(c) = build_ack_or_cancel(&b.sent, None, true) {
                            outs.push(Out {
                                dst: b.dst.clone(),
                                data: c,
                            });
                        }
                        b.cancel_sent = true;
                    }
                    b.code = if canceled { 487 } else { 408 };
                    b.is_final = true;
                    b.local = true;
                    b.timed_out = true;
                    check_complete = true;
                }
            }
        }
        Ev::ReplyRetr => {
            let mut tx = t.lock();
            if !tx.acked && !tx.deleted && tx.reply_retr_count < 7 {
                if let Some(r) = tx.uas_reply.clone() {
                    outs.push(Out {
                        dst: tx.reply_dst.clone(),
                        data: r,
                    });
                }
                tx.reply_retr_count += 1;
                tx.reply_retr = (tx.reply_retr * 2).min(cfg.t2);
                let next = tx.reply_retr;
                st(ctx).schedule(id, Ev::ReplyRetr, next);
            }
        }
        Ev::Delete => {
            let key = {
                let mut tx = t.lock();
                if tx.in_failure {
                    st(ctx).schedule(id, Ev::Delete, cfg.wait);
                    return;
                }
                tx.deleted = true;
                tx.key.clone()
            };
            st(ctx).remove(id, key.as_ref());
        }
    }
    send_all(ctx, outs);
    if check_complete {
        complete(ctx, &t);
    }
}

/// Runs every due timer event (the tm timer thread's tick; tests call it directly).
pub fn run_due(ctx: &mut Ctx, now: Instant) {
    // Bounded per tick so a flood of events cannot starve shutdown checks.
    for _ in 0..10_000 {
        let Some((id, ev)) = st(ctx).pop_due(now) else {
            return;
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| timer_event(ctx, id, ev)));
        if r.is_err() {
            crate::klog!(crate::log::L_CRIT, "tm", "timer event failed");
        }
    }
}

/// The tm timer thread.
pub fn timer_thread(ctx: &mut Ctx) {
    let core = ctx.core;
    while !core.shutdown.load(Ordering::Relaxed) {
        let now = Instant::now();
        run_due(ctx, now);
        let sleep = st(ctx)
            .next_due()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(10))
            .min(Duration::from_millis(10));
        std::thread::sleep(sleep.max(Duration::from_millis(1)));
    }
}

/// `t_check_trans()`.
pub fn check_trans(ctx: &mut Ctx) -> i32 {
    if ctx.msg.is_reply() {
        let found = ctx
            .msg
            .via1()
            .ok()
            .and_then(|v| v.branch().and_then(|b| parse_branch(b)))
            .and_then(|(id, _)| st(ctx).by_id(id))
            .is_some();
        return if found { 1 } else { -1 };
    }
    match ctx.msg.method() {
        Method::Cancel => {
            let found = key_of(&ctx.msg, b"INVITE").and_then(|k| st(ctx).lookup(&k));
            if found.is_some() { 1 } else { -1 }
        }
        Method::Ack => match ack_lookup(ctx) {
            AckMatch::Negative => 0,
            AckMatch::Positive => 1,
            AckMatch::None => -1,
        },
        _ => {
            let Some(key) = key_of(&ctx.msg, &class_of(&ctx.msg)) else {
                return -1;
            };
            match st(ctx).lookup(&key) {
                Some(t) => {
                    retransmit_reply(ctx, &t);
                    0
                }
                None => -1,
            }
        }
    }
}

/// `t_lookup_request()`: 1 when the request belongs to an existing transaction.
pub fn lookup_request(ctx: &mut Ctx) -> i32 {
    let Some(key) = key_of(&ctx.msg, &class_of(&ctx.msg)) else {
        return -1;
    };
    match st(ctx).lookup(&key) {
        Some(t) => {
            ctx.tm.t = Some(t);
            1
        }
        None => -1,
    }
}

/// Resolves a next hop from `host`/`port`/`proto` arguments of the `t_relay_to*` family.
pub fn hop_from(host: &[u8], port: Option<u16>, proto: Proto) -> Result<NextHop, ForwardError> {
    if host.starts_with(b"sip:") || host.starts_with(b"sips:") {
        let u = Uri::parse(&Bytes::copy_from_slice(host)).map_err(|_| ForwardError::BadUri)?;
        let mut h = forward::next_hop_of(&u)?;
        if port.is_some() {
            h.port = port;
        }
        return Ok(h);
    }
    let s = String::from_utf8_lossy(host);
    if s.is_empty() {
        return Err(ForwardError::BadUri);
    }
    Ok(NextHop {
        proto,
        host: s.trim_start_matches('[').trim_end_matches(']').to_string(),
        port,
        secure: proto == Proto::Tls,
    })
}

/// Parses Kamailio's proxy string `[proto:]host[:port]` (t_relay_to / t_relay_to_proxy).
pub fn parse_proxy(s: &[u8]) -> Result<NextHop, ForwardError> {
    let s = String::from_utf8_lossy(s).into_owned();
    let (proto, rest) = match s.split_once(':') {
        Some((p, r)) if Proto::parse(&p.to_ascii_lowercase()).is_some() && !r.is_empty() => (
            Proto::parse(&p.to_ascii_lowercase()).unwrap_or(Proto::Udp),
            r.to_string(),
        ),
        _ => (Proto::Udp, s.clone()),
    };
    let (host, port) = if let Some(end) = rest.strip_prefix('[').and_then(|r| r.find(']')) {
        let host = rest[1..end + 1].to_string();
        let port = rest[end + 2..]
            .strip_prefix(':')
            .and_then(|p| p.parse().ok());
        (host, port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().ok()),
            _ => (rest.clone(), None),
        }
    };
    if host.is_empty() {
        return Err(ForwardError::BadUri);
    }
    Ok(NextHop {
        proto,
        host,
        port,
        secure: proto == Proto::Tls,
    })
}

/// The next hop of the current request (`$du` or R-URI) with its transport forced.
pub fn request_hop_proto(ctx: &Ctx, proto: Proto) -> Option<NextHop> {
    forward::request_next_hop(ctx).ok().map(|mut h| {
        h.proto = proto;
        h
    })
}

/// After request_route: a transaction that got neither a branch nor a final reply is put on
/// the wait timer (Kamailio releases it the same way).
pub fn request_done(ctx: &mut Ctx) {
    if let Some(t) = ctx.tm.t.take() {
        let idle = {
            let tx = t.lock();
            tx.branches.is_empty() && tx.uas_status < 200
        };
        if idle {
            release(ctx, &t);
        }
    }
}

/// `t_release()`: the transaction goes on the wait timer, then is deleted.
pub fn release(ctx: &Ctx, t: &TxRef) {
    let id = t.lock().id;
    st(ctx).schedule(id, Ev::Delete, st(ctx).cfg.wait);
}

/// Forks the current request on its existing transaction (`t_forward_nonack*`).
pub fn forward_existing(ctx: &mut Ctx, hop: Option<NextHop>) -> i32 {
    let Some(t) = ctx.tm.t.clone() else {
        return -1;
    };
    {
        let mut tx = t.lock();
        tx.req = ctx.msg.clone();
        tx.snap = Snapshot::take(ctx);
        if ctx.tm.on_failure.is_some() {
            tx.on_failure = ctx.tm.on_failure.clone();
        }
        if ctx.tm.on_reply.is_some() {
            tx.on_reply = ctx.tm.on_reply.clone();
        }
    }
    match fork(ctx, &t, hop.as_ref()) {
        Ok(_) => 1,
        Err(e) => {
            crate::klog!(L_ERR, "tm", "t_forward_nonack: {e}");
            e.code()
        }
    }
}

/// Finds a live transaction by Call-ID and CSeq number (tmx `t_reply_callid`).
pub fn find_by_callid(ctx: &Ctx, callid: &[u8], cseq: &[u8]) -> Option<TxRef> {
    st(ctx).find(|tx| {
        tx.req.callid().is_some_and(|c| c[..] == *callid)
            && tx
                .req
                .cseq()
                .is_ok_and(|c| c.number.to_string().as_bytes() == cseq.trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_strings_parse_like_kamailio_and_never_panic() {
        let h = parse_proxy(b"tcp:10.0.0.1:5080").unwrap();
        assert_eq!(
            (h.proto, h.host.as_str(), h.port),
            (Proto::Tcp, "10.0.0.1", Some(5080))
        );
        let h = parse_proxy(b"example.com").unwrap();
        assert_eq!(
            (h.proto, h.host.as_str(), h.port),
            (Proto::Udp, "example.com", None)
        );
        let h = parse_proxy(b"udp:[::1]:5070").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", Some(5070)));
        assert!(parse_proxy(b"").is_err());
        for s in [
            "[",
            "]",
            "[]",
            "tcp:",
            ":",
            "udp:[",
            "[::1",
            "é:[é]:é",
            "tcp:[]:",
        ] {
            let _ = parse_proxy(s.as_bytes());
        }
        assert!(hop_from(b"", None, Proto::Udp).is_err());
        let h = hop_from(b"sip:x@10.0.0.2;transport=tcp", Some(5099), Proto::Udp).unwrap();
        assert_eq!((h.proto, h.port), (Proto::Tcp, Some(5099)));
    }
}
