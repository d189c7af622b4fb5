//! What happens to every received message (Kamailio's `receive_msg`): parse, run the routing
//! logic, hand replies to the transaction layer or forward them statelessly.

use crate::ctx::{Ctx, RecvInfo};
use crate::engine::RouteTarget;
use crate::log::{self, L_ERR};
use crate::sip::SipMsg;
use crate::stats::CoreStat;
use crate::transport::Received;
use vm::RouteKind;

/// Processes one received message in this worker's context.
pub fn process(ctx: &mut Ctx, rcv: Received) {
    let info = RecvInfo::from_received(&rcv);
    let msg = match SipMsg::parse(rcv.data) {
        Ok(m) => m,
        Err(e) => {
            ctx.core.stats.core(CoreStat::BadMsgHdr);
            crate::klog!(
                L_ERR,
                "core",
                "parse_msg(): dropping malformed message from {}:{} ({}): {e}",
                info.proto,
                info.src,
                info.src.port()
            );
            return;
        }
    };
    // HTTP requests go to the modules that serve them (xhttp), else are dropped.
    if msg.is_request()
        && msg.version().starts_with(b"HTTP/")
        && !ctx.core.hooks.http_request.is_empty()
    {
        ctx.begin(msg, info);
        for h in &ctx.core.hooks.http_request {
            if h(ctx) {
                return;
            }
        }
        crate::klog!(L_ERR, "core", "dropping HTTP request from {}", ctx.rcv.src);
        return;
    }
    // Kamailio's parser only accepts SIP/2.0; anything else is dropped without a reply.
    if !msg.version().eq_ignore_ascii_case(b"SIP/2.0") {
        crate::klog!(
            L_ERR,
            "core",
            "parse_msg(): dropping message with unsupported version {} from {}",
            String::from_utf8_lossy(msg.version()),
            info.src
        );
        return;
    }
    ctx.begin(msg, info);
    if ctx.msg.is_request() {
        ctx.core.stats.request_received(ctx.msg.method());
        request(ctx);
        if ctx.drop {
            ctx.core.stats.core(CoreStat::DropRequests);
        }
    } else {
        let code = ctx.msg.status().unwrap_or(0);
        let method = ctx
            .msg
            .cseq()
            .map(|c| crate::sip::Method::parse(&c.method))
            .unwrap_or(crate::sip::Method::Other);
        ctx.core.stats.reply_received(code, method);
        reply(ctx);
    }
}

fn request(ctx: &mut Ctx) {
    for h in &ctx.core.hooks.request_pre {
        h(ctx);
    }
    ctx.route = RouteKind::Request;
    let out = ctx.run_route(RouteTarget::Request);
    if out.missing {
        crate::klog!(L_ERR, "core", "no request route to run");
    }
    latency_log(ctx, "request-route");
    for h in &ctx.core.hooks.request_post {
        h(ctx);
    }
}

fn reply(ctx: &mut Ctx) {
    ctx.route = RouteKind::CoreOnReply;
    let exists = ctx
        .engine
        .as_ref()
        .is_some_and(|e| e.exists(RouteTarget::Reply));
    if exists {
        let out = ctx.run_route(RouteTarget::Reply);
        latency_log(ctx, "reply-route");
        if out.drop || ctx.drop {
            ctx.core.stats.core(CoreStat::DropReplies);
            return;
        }
    }
    for h in &ctx.core.hooks.reply_received {
        if h(ctx) {
            return;
        }
    }
    let _ = crate::forward::reply_stateless(ctx);
}

/// Kamailio's `latency_cfg_log`: `request-route executed in: N usec`.
fn latency_log(ctx: &Ctx, what: &str) {
    let level = ctx.core.cfg.latency_cfg_log;
    if !log::enabled(level) {
        return;
    }
    let usec = ctx.started.elapsed().as_micros() as u64;
    if usec >= ctx.core.cfg.latency_limit_cfg {
        log::emit(level, "core", &format!("{what} executed in: {usec} usec"));
    }
}
