//! Kamailio's `sl` module: stateless replies (`sl_send_reply`, `send_reply`,
//! `sl_reply_error`) with a To tag that is the same for retransmissions of a request.

use super::core::actions::{arg_bytes, arg_int};
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::sip::Method;
use crate::sip::reply::{ReplySpec, build_reply};
use crate::stats::StatId;
use crate::transport::{Destination, Proto};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use vm::ksr::{ParamHint, ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "sl",
    params: &[ParamDef::int("bind_tm"), ParamDef::int("rich_redirect")],
    register,
    init: Some(init),
    notice: None,
};

/// sl's counters (`sl:200_replies` ...), by position in [`STAT_NAMES`].
#[derive(Default)]
pub struct SlState {
    stats: Option<StatId>,
}

/// Kamailio's sl counters: per code, per class, and the totals.
const STAT_NAMES: [&str; 23] = [
    "1xx_replies",
    "200_replies",
    "202_replies",
    "2xx_replies",
    "300_replies",
    "301_replies",
    "302_replies",
    "3xx_replies",
    "400_replies",
    "401_replies",
    "403_replies",
    "404_replies",
    "407_replies",
    "408_replies",
    "483_replies",
    "4xx_replies",
    "500_replies",
    "5xx_replies",
    "6xx_replies",
    "xxx_replies",
    "sent_replies",
    "sent_err_replies",
    "failures",
];

fn init(i: &mut InitCtx<'_>) -> Result<(), String> {
    i.states.sl.stats = i.stats.find("sl", STAT_NAMES[0]);
    Ok(())
}

/// Position in [`STAT_NAMES`] of the counter a reply with `code` goes to: the code's own
/// counter where Kamailio keeps one, else its class.
fn stat_index(code: u16) -> u32 {
    match code {
        200 => 1,
        202 => 2,
        300 => 4,
        301 => 5,
        302 => 6,
        400 => 8,
        401 => 9,
        403 => 10,
        404 => 11,
        407 => 12,
        408 => 13,
        483 => 14,
        500 => 16,
        100..=199 => 0,
        201..=299 => 3,
        303..=399 => 7,
        402..=499 => 15,
        501..=599 => 17,
        600..=699 => 18,
        _ => 19,
    }
}
const SENT_REPLIES: u32 = 20;
const SENT_ERR_REPLIES: u32 = 21;
const FAILURES: u32 = 22;

fn count(c: &Ctx, code: u16, err: bool, ok: bool) {
    let Some(base) = c.core.m.sl.stats else {
        return;
    };
    let inc = |i: u32| c.core.stats.inc(StatId(base.0 + i));
    if !ok {
        inc(FAILURES);
        return;
    }
    inc(stat_index(code));
    inc(SENT_REPLIES);
    if err {
        inc(SENT_ERR_REPLIES);
    }
}

/// The native reason is Kamailio's `fixup_var_pve_str`: a leading variable alone, else a
/// format.
const REASON: [ParamHint; 2] = [ParamHint::Plain, ParamHint::LeadingPv];

fn register(r: &mut Registrar<'_>) {
    for n in STAT_NAMES {
        r.stats.add("sl", n);
    }
    r.kemi(
        "sl",
        "sl_send_reply",
        &[I, S],
        RetType::Int,
        kemi_send_reply,
    )
    .native("sl_send_reply", RouteMask::REQUEST)
    .hints(&REASON);
    r.kemi("sl", "send_reply", &[I, S], RetType::Int, kemi_freply)
        .native("send_reply", RouteMask(1 | 2 | 4 | 128))
        .hints(&REASON);
    r.kemi("sl", "sl_reply_error", &[], RetType::Int, |c, _| {
        Value::Int(send_counted(c, 500, b"Server Internal Error", true) as i64)
    })
    .native("sl_reply_error", RouteMask::REQUEST);
    // mode 1: do not open a connection for the reply; 2: close it after the reply.
    r.kemi("sl", "send_reply_mode", &[I, S, I], RetType::Int, |c, a| {
        let mode = arg_int(a, 2);
        if mode & 1 != 0 {
            c.send_flags.reply_no_connect = true;
        }
        if mode & 2 != 0 {
            c.send_flags.reply_close = true;
        }
        kemi_freply(c, a)
    })
    .native("send_reply_mode", RouteMask(1 | 2 | 4 | 128))
    .hints(&[ParamHint::Plain, ParamHint::LeadingPv, ParamHint::Plain]);
    r.native("sl_forward_reply", &[], RouteMask::ONREPLY, |c, _| {
        Value::Int(forward_reply(c, None, None) as i64)
    });
    r.native("sl_forward_reply", &[S], RouteMask::ONREPLY, |c, a| {
        Value::Int(forward_reply(c, Some(arg_bytes(a, 0)), None) as i64)
    });
    r.kemi("sl", "sl_forward_reply", &[S, S], RetType::Int, |c, a| {
        let reason = Some(arg_bytes(a, 1)).filter(|r| !r.is_empty());
        Value::Int(forward_reply(c, Some(arg_bytes(a, 0)), reason) as i64)
    })
    .native("sl_forward_reply", RouteMask::ONREPLY);
}

/// `sl_forward_reply([code[, reason]])`: forwards the received reply statelessly now, with
/// the status code (same class only) and reason replaced in that copy; the core still
/// forwards the reply itself when the route ends, as in Kamailio.
fn forward_reply(c: &mut Ctx, code: Option<bytes::Bytes>, reason: Option<bytes::Bytes>) -> i32 {
    let (Some(old_code), Some(old_reason)) = (c.msg.status(), c.msg.reason().cloned()) else {
        crate::klog!(L_ERR, "sl", "invalid SIP message type");
        return -1;
    };
    let code = code.filter(|s| !s.is_empty());
    let new_code = match &code {
        None => old_code,
        Some(s) => {
            let digits = s.len() == 3 && s.iter().all(u8::is_ascii_digit);
            let n = std::str::from_utf8(s)
                .ok()
                .and_then(|t| t.parse::<u16>().ok());
            match n {
                Some(n) if digits && n / 100 == old_code / 100 => n,
                Some(_) if digits => {
                    crate::klog!(L_ERR, "sl", "reply code class cannot be changed");
                    return -1;
                }
                _ => {
                    crate::klog!(
                        L_ERR,
                        "sl",
                        "invalid reply code value {}",
                        String::from_utf8_lossy(s)
                    );
                    return -1;
                }
            }
        }
    };
    let changed = code.is_some() || reason.is_some();
    if changed {
        c.msg
            .set_reply_status(new_code, reason.unwrap_or_else(|| old_reason.clone()));
    }
    let sent = crate::forward::reply_stateless(c);
    if changed {
        c.msg.set_reply_status(old_code, old_reason);
    }
    if sent { 1 } else { -1 }
}

fn kemi_send_reply(c: &mut Ctx, a: &[Value]) -> Value {
    let code = arg_int(a, 0);
    let reason = arg_bytes(a, 1);
    if !(100..=699).contains(&code) {
        crate::klog!(L_ERR, "sl", "sl_send_reply: invalid code {code}");
        return Value::Int(-1);
    }
    Value::Int(send(c, code as u16, &reason) as i64)
}

/// `send_reply`: statefully when tm is loaded and the message has a transaction (as
/// Kamailio's sl does), else statelessly.
fn kemi_freply(c: &mut Ctx, a: &[Value]) -> Value {
    let code = arg_int(a, 0);
    let reason = arg_bytes(a, 1);
    if !(100..=699).contains(&code) {
        crate::klog!(L_ERR, "sl", "send_reply: invalid code {code}");
        return Value::Int(-1);
    }
    Value::Int(freply(c, code as u16, &reason) as i64)
}

/// Kamailio's `slb.freply`, for modules that answer requests (registrar, auth): replies on
/// the current transaction when there is one, statelessly otherwise.
pub fn freply(c: &mut Ctx, code: u16, reason: &[u8]) -> i32 {
    if c.core.is_loaded("tm")
        && let Some(r) = super::tm::reply_if_transaction(c, code, reason)
    {
        return r;
    }
    send(c, code, reason)
}

/// The To tag of a local reply: a per-process prefix and a hash of what identifies the
/// request, so a retransmission gets the same tag.
pub fn to_tag(c: &Ctx) -> String {
    // Hashes the raw header values (no From/To parsing, no Bytes clones): a retransmission
    // repeats them byte for byte, which is all the tag has to be stable against.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.msg.callid().map(|v| &v[..]).hash(&mut h);
    c.msg
        .header(crate::sip::HdrKind::From)
        .map(|x| &x.value[..])
        .hash(&mut h);
    c.msg
        .header(crate::sip::HdrKind::CSeq)
        .map(|x| &x.value[..])
        .hash(&mut h);
    c.msg
        .via1()
        .ok()
        .and_then(|v| v.branch())
        .map(|b| &b[..])
        .hash(&mut h);
    let mut p = std::collections::hash_map::DefaultHasher::new();
    c.core.listeners.first().map(|l| l.addr).hash(&mut p);
    let mut tag = String::with_capacity(25);
    push_hex(&mut tag, p.finish(), 16);
    tag.push('-');
    push_hex(&mut tag, u64::from(h.finish() as u32), 8);
    tag
}

/// Appends the low `digits` hex digits of `v`, zero padded (what `{:0Nx}` prints, without the
/// formatting machinery on every reply).
fn push_hex(out: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
    }
}

/// Where a reply to the current request goes: the source address (RFC 3581 when rport is
/// asked or forced), else the Via sent-by port, over the connection it came on.
pub fn reply_destination(c: &Ctx) -> Destination {
    let src = c.rcv.src;
    let mut port = src.port();
    if c.rcv.proto == Proto::Udp {
        let force = c.opts.force_rport || c.core.cfg.force_rport;
        if let Ok(v) = c.msg.via1()
            && !force
            && v.rport().is_none()
        {
            port = v.port.unwrap_or(5060);
        }
    }
    let mut d = Destination::new(c.rcv.proto, SocketAddr::new(src.ip(), port));
    d.listener = Some(c.rcv.listener);
    d.conn = c.rcv.conn;
    d.no_connect = c.send_flags.reply_no_connect;
    d.close_after = c.send_flags.reply_close;
    d
}

/// Builds and sends a stateless reply; returns Kamailio's return code.
pub fn send(c: &mut Ctx, code: u16, reason: &[u8]) -> i32 {
    send_counted(c, code, reason, false)
}

fn send_counted(c: &mut Ctx, code: u16, reason: &[u8], err: bool) -> i32 {
    if !c.msg.is_request() {
        crate::klog!(L_ERR, "sl", "sl_send_reply: not a request");
        return -1;
    }
    if c.msg.method() == Method::Ack {
        return 1;
    }
    let tag = to_tag(c);
    let server = server_header(c);
    let spec = ReplySpec {
        code,
        reason,
        to_tag: Some(tag.as_bytes()),
        extra_headers: &c.reply_hdrs,
        server: server.as_deref(),
        body: c.reply_body.as_deref().map(|b| (&b""[..], b)),
        src: Some(c.rcv.src),
        force_rport: c.opts.force_rport || c.core.cfg.force_rport,
    };
    let data = build_reply(&c.msg, &spec);
    let dst = reply_destination(c);
    match c.core.sender.send(&dst, &data) {
        Ok(_) => {
            count(c, code, err, true);
            1
        }
        Err(e) => {
            count(c, code, err, false);
            crate::klog!(L_ERR, "sl", "failed to send reply: {e}");
            -1
        }
    }
}

/// The Server header value of locally generated replies (`server_header`, default
/// `ksr (VERSION)`), or `None` when `server_signature=no`.
pub fn server_header(c: &Ctx) -> Option<bytes::Bytes> {
    if !c.core.cfg.server_signature {
        return None;
    }
    Some(
        c.core.cfg.server_header.clone().unwrap_or_else(|| {
            bytes::Bytes::from(concat!("ksr (", env!("CARGO_PKG_VERSION"), ")"))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::push_hex;

    #[test]
    fn push_hex_pads_like_format() {
        for (v, d) in [
            (0u64, 8),
            (0xabc, 8),
            (u64::MAX, 16),
            (0x1234_5678_9abc, 16),
        ] {
            let mut s = String::new();
            push_hex(&mut s, v, d);
            assert_eq!(s, format!("{:0w$x}", v, w = d as usize));
        }
    }
}
