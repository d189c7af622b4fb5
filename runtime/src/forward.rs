//! Stateless forwarding: requests to their next hop (`forward()`), replies back along the
//! Via path (Kamailio's `forward_reply`), and next-hop resolution shared with `tm`.

use crate::ctx::Ctx;
use crate::log::{L_DBG, L_ERR, L_WARN};
use crate::sip::msg::ORDER_VIA;
use crate::sip::{Edit, Scheme, SipMsg, Uri};
use crate::stats::CoreStat;
use crate::transport::{Destination, Listener, Proto};
use bytes::Bytes;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Where a message goes next, before name resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub proto: Proto,
    pub host: String,
    pub port: Option<u16>,
    pub secure: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    #[error("bad next-hop URI")]
    BadUri,
    #[error("cannot resolve '{0}'")]
    Resolve(String),
    #[error("unsupported transport '{0}'")]
    Transport(String),
    #[error("{0}")]
    Send(String),
}

impl ForwardError {
    /// Kamailio's `ser_error` style code for `sl_reply_error` and return values.
    pub fn code(&self) -> i32 {
        match self {
            ForwardError::BadUri => -2,
            ForwardError::Resolve(_) => -4,
            ForwardError::Transport(_) => -3,
            ForwardError::Send(_) => -6,
        }
    }
}

/// The next hop a SIP/SIPS URI points to (transport param, scheme, host, port).
pub fn next_hop_of(uri: &Uri) -> Result<NextHop, ForwardError> {
    let secure = matches!(uri.scheme, Scheme::Sips);
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) || uri.host.is_empty() {
        return Err(ForwardError::BadUri);
    }
    let proto = match uri.transport() {
        Some(t) => Proto::parse(&t).ok_or(ForwardError::Transport(t))?,
        None if secure => Proto::Tls,
        None => Proto::Udp,
    };
    Ok(NextHop {
        proto,
        host: String::from_utf8_lossy(uri.host_unbracketed()).into_owned(),
        port: uri.port,
        secure,
    })
}

/// Resolves a next hop to an address: IP literals directly; a name without a port through
/// DNS SRV (`_sip._udp.NAME` ..., see [`crate::dns`]) and then its targets' addresses; other
/// names through the system resolver (A/AAAA) on the given or default port (5060/5061).
pub fn resolve(hop: &NextHop, try_ipv6: bool) -> Result<SocketAddr, ForwardError> {
    let default_port = if hop.secure || hop.proto == Proto::Tls {
        5061
    } else {
        5060
    };
    let port = hop.port.filter(|p| *p != 0).unwrap_or(default_port);
    if let Ok(ip) = hop.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if hop.port.is_none_or(|p| p == 0) {
        let prefix = match (hop.secure || hop.proto == Proto::Tls, hop.proto) {
            (true, _) => "_sips._tcp",
            (false, Proto::Tcp | Proto::Ws | Proto::Wss) => "_sip._tcp",
            (false, Proto::Sctp) => "_sip._sctp",
            _ => "_sip._udp",
        };
        let recs = crate::dns::srv(&format!("{prefix}.{}", hop.host));
        if !recs.is_empty() {
            let lb = crate::dns::SRV_LB.load(std::sync::atomic::Ordering::Relaxed);
            for r in crate::dns::order(recs, lb, crate::dns::rand_below) {
                if let Ok(a) = lookup(&r.target, r.port, try_ipv6) {
                    return Ok(a);
                }
            }
            return Err(ForwardError::Resolve(hop.host.clone()));
        }
    }
    lookup(&hop.host, port, try_ipv6)
}

/// A/AAAA through the system resolver: the first IPv4 address, else (with `try_ipv6`)
/// the first IPv6 one.
fn lookup(host: &str, port: u16, try_ipv6: bool) -> Result<SocketAddr, ForwardError> {
    let host = host.trim_end_matches('.');
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|_| ForwardError::Resolve(host.to_string()))?;
    let mut fallback = None;
    for a in addrs {
        if a.is_ipv4() {
            return Ok(a);
        }
        if try_ipv6 && fallback.is_none() {
            fallback = Some(a);
        }
    }
    fallback.ok_or_else(|| ForwardError::Resolve(host.to_string()))
}

/// A branch id for a stateless forward: the same request (and its retransmissions) always
/// gets the same branch, as RFC 3261 §16.11 asks.
pub fn stateless_branch(msg: &SipMsg) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match msg.via1().ok().and_then(|v| v.branch().cloned()) {
        Some(b) if b.starts_with(b"z9hG4bK") => b.hash(&mut h),
        _ => {
            msg.callid().hash(&mut h);
            msg.header(crate::sip::HdrKind::CSeq)
                .map(|x| &x.value)
                .hash(&mut h);
            msg.from().ok().and_then(|f| f.tag().cloned()).hash(&mut h);
            msg.ruri_orig().hash(&mut h);
        }
    }
    format!("z9hG4bKsl{:016x}", h.finish())
}

/// The Via header line this proxy adds when it sends a request from `listener`.
pub fn via_line(ctx: &Ctx, listener: &Listener, branch: &str, extra: &str) -> Vec<u8> {
    let host = match &ctx.opts.advertised_address {
        Some(a) => String::from_utf8_lossy(a).into_owned(),
        None => listener.host_for_headers(),
    };
    let port = ctx
        .opts
        .advertised_port
        .unwrap_or_else(|| listener.port_for_headers());
    let mut v = format!(
        "Via: SIP/2.0/{} {host}:{port};branch={branch}",
        listener.proto.via_name()
    );
    if ctx.opts.local_rport {
        v.push_str(";rport");
    }
    crate::modules::corex::via_extra_params(ctx, &mut v);
    v.push_str(extra);
    v.push_str("\r\n");
    v.into_bytes()
}

/// Edits that add `received`/`rport` to the top Via of a request being forwarded.
pub fn via1_received_edit(ctx: &Ctx) -> Option<Edit> {
    let force = ctx.opts.force_rport || ctx.core.cfg.force_rport;
    let new = crate::sip::reply::via1_with_received(&ctx.msg, &ctx.rcv.src, force)?;
    let v = ctx.msg.via1().ok()?;
    Some(Edit::replace(v.start, v.end, Bytes::from(new)))
}

/// The destination of the current request: `$du` when set, else the R-URI.
pub fn request_next_hop(ctx: &Ctx) -> Result<NextHop, ForwardError> {
    let raw = match &ctx.dst_uri {
        Some(d) => d.clone(),
        None => ctx.msg.ruri().cloned().ok_or(ForwardError::BadUri)?,
    };
    let uri = Uri::parse(&raw).map_err(|_| ForwardError::BadUri)?;
    next_hop_of(&uri)
}

/// Sends the current request statelessly to `hop` (Kamailio's `forward_request`): adds
/// this proxy's Via (and received/rport to the previous one) and applies the script's
/// changes.
pub fn forward_request(ctx: &mut Ctx, hop: &NextHop) -> Result<(), ForwardError> {
    let addr = resolve(hop, ctx.core.cfg.dns_try_ipv6)?;
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
        .ok_or_else(|| ForwardError::Send("bad socket".into()))?;
    let branch = stateless_branch(&ctx.msg);
    let via = via_line(ctx, listener, &branch, "");
    let at = ctx
        .msg
        .via1()
        .ok()
        .and_then(|v| ctx.msg.headers().get(v.header).map(|h| h.start))
        .unwrap_or_else(|| ctx.msg.headers_start());
    let mut extra = vec![Edit::insert(at, Bytes::from(via), ORDER_VIA)];
    if let Some(e) = via1_received_edit(ctx) {
        extra.push(e);
    }
    for h in &ctx.core.hooks.outbound_edits {
        extra.extend(h(ctx, listener));
    }
    let data = ctx.msg.serialize(&extra);
    if !run_onsend(ctx, &dst, listener.addr, &data) {
        crate::klog!(L_DBG, "core", "forward: dropped in onsend_route");
        return Ok(());
    }
    send(ctx, &dst, &data)?;
    ctx.core.stats.core(CoreStat::FwdRequests);
    Ok(())
}

/// Runs `onsend_route` (when the config has one) for a request about to be sent; false
/// when the route dropped it.
pub fn run_onsend(ctx: &mut Ctx, dst: &Destination, local: SocketAddr, data: &[u8]) -> bool {
    let exists = ctx
        .engine
        .as_ref()
        .is_some_and(|e| e.exists(crate::engine::RouteTarget::OnSend));
    if !exists {
        return true;
    }
    ctx.snd = Some(crate::ctx::SendInfo {
        dst: dst.clone(),
        local: Some(local),
        buf: Bytes::copy_from_slice(data),
    });
    let saved = ctx.route;
    ctx.route = vm::RouteKind::OnSend;
    let drop_before = ctx.drop;
    let out = ctx.run_route(crate::engine::RouteTarget::OnSend);
    ctx.route = saved;
    ctx.snd = None;
    // `drop` in onsend_route cancels this send only.
    let dropped = out.drop || (ctx.drop && !drop_before);
    ctx.drop = drop_before;
    !dropped
}

fn send(ctx: &Ctx, dst: &Destination, data: &[u8]) -> Result<(), ForwardError> {
    match ctx.core.sender.send(dst, data) {
        Ok(_) => Ok(()),
        Err(e) => Err(ForwardError::Send(e.to_string())),
    }
}

/// `forward()` and friends: to the given host/port, or to `$du`/R-URI. Returns Kamailio's
/// return code (1 on success, negative on error).
pub fn forward_action(
    ctx: &mut Ctx,
    host: Option<&[u8]>,
    port: Option<u16>,
    proto: Option<Proto>,
) -> i32 {
    if !ctx.msg.is_request() {
        crate::klog!(L_ERR, "core", "forward: not a request");
        return -1;
    }
    let hop = match host {
        Some(h) if !h.is_empty() => {
            // A URI or a plain host.
            let parsed = if h.starts_with(b"sip:") || h.starts_with(b"sips:") {
                Uri::parse(&Bytes::copy_from_slice(h))
                    .map_err(|_| ForwardError::BadUri)
                    .and_then(|u| next_hop_of(&u))
            } else {
                Ok(NextHop {
                    proto: Proto::Udp,
                    host: String::from_utf8_lossy(h)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                    port: None,
                    secure: false,
                })
            };
            parsed.map(|mut n| {
                if port.is_some() {
                    n.port = port;
                }
                if let Some(p) = proto {
                    n.proto = p;
                }
                n
            })
        }
        _ => request_next_hop(ctx).map(|mut n| {
            if let Some(p) = proto {
                n.proto = p;
            }
            if port.is_some() {
                n.port = port;
            }
            n
        }),
    };
    let res = hop.and_then(|h| forward_request(ctx, &h));
    match res {
        Ok(()) => 1,
        Err(e) => {
            crate::klog!(L_ERR, "core", "forward: {e}");
            e.code()
        }
    }
}

/// Forwards the reply in `ctx` to the address in its second Via (Kamailio's
/// `forward_reply`): the top Via must be ours; it is removed. True when it was sent.
pub fn reply_stateless(ctx: &mut Ctx) -> bool {
    let (via1, via2) = match ctx.msg.vias() {
        Ok(v) => (v.first().cloned(), v.get(1).cloned()),
        Err(e) => {
            crate::klog!(L_ERR, "core", "forward_reply: bad Via: {e}");
            return false;
        }
    };
    let Some(v1) = via1 else { return false };
    if !ctx.core.is_myself(v1.host_unbracketed(), v1.port, None) {
        crate::klog!(
            L_WARN,
            "core",
            "forward_reply: host in first via != me : {}:{}",
            String::from_utf8_lossy(&v1.host),
            v1.port.unwrap_or(5060)
        );
        return false;
    }
    let Some(v2) = via2 else {
        crate::klog!(
            L_DBG,
            "core",
            "forward_reply: no second Via, reply is for us"
        );
        return false;
    };
    let proto = Proto::parse(&String::from_utf8_lossy(&v2.transport).to_ascii_lowercase())
        .unwrap_or(Proto::Udp);
    let host = match v2.received() {
        Some(r) => String::from_utf8_lossy(r).into_owned(),
        None => String::from_utf8_lossy(v2.host_unbracketed()).into_owned(),
    };
    let port = match v2.rport() {
        Some(Some(p)) => std::str::from_utf8(p).ok().and_then(|s| s.parse().ok()),
        _ => None,
    }
    .or(v2.port);
    let hop = NextHop {
        proto,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        secure: proto == Proto::Tls,
    };
    let addr = match resolve(&hop, ctx.core.cfg.dns_try_ipv6) {
        Ok(a) => a,
        Err(e) => {
            crate::klog!(L_ERR, "core", "forward_reply: {e}");
            return false;
        }
    };
    let remove = remove_via_edit(&ctx.msg, &v1);
    let data = ctx.msg.serialize(&[remove]);
    let mut dst = Destination::new(proto, addr);
    dst.no_connect = ctx.send_flags.reply_no_connect;
    dst.close_after = ctx.send_flags.reply_close;
    match send(ctx, &dst, &data) {
        Ok(()) => {
            ctx.core.stats.core(CoreStat::FwdReplies);
            true
        }
        Err(e) => {
            crate::klog!(L_ERR, "core", "forward_reply: {e}");
            false
        }
    }
}

/// The edit that deletes one Via value: the whole header line when it is alone in it, else
/// the value and its separating comma.
pub fn remove_via_edit(msg: &SipMsg, v: &crate::sip::Via) -> Edit {
    let Some(h) = msg.headers().get(v.header) else {
        return Edit::replace(v.start, v.end, Bytes::new());
    };
    let hv_start = msg.offset_of(&h.value).unwrap_or(h.value_start);
    let hv_end = hv_start + h.value.len();
    if v.start <= hv_start && v.end >= hv_end {
        return Edit::replace(h.start, h.end, Bytes::new());
    }
    let buf = msg.buf();
    // Extend over the comma (and spaces) that follows, or the one before when last.
    let mut end = v.end;
    while let Some(b) = buf.get(end) {
        if *b == b',' || *b == b' ' || *b == b'\t' {
            end += 1;
            if *b == b',' {
                while matches!(buf.get(end), Some(b' ' | b'\t')) {
                    end += 1;
                }
                return Edit::replace(v.start, end, Bytes::new());
            }
        } else {
            break;
        }
    }
    let mut start = v.start;
    while start > hv_start {
        start -= 1;
        if buf.get(start) == Some(&b',') {
            break;
        }
    }
    Edit::replace(start, v.end, Bytes::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hop_from_uris() {
        let u = Uri::parse(&Bytes::from_static(b"sip:bob@10.0.0.1:5070;transport=tcp")).unwrap();
        let h = next_hop_of(&u).unwrap();
        assert_eq!(
            (h.proto, h.host.as_str(), h.port),
            (Proto::Tcp, "10.0.0.1", Some(5070))
        );
        let u = Uri::parse(&Bytes::from_static(b"sips:bob@[::1]")).unwrap();
        let h = next_hop_of(&u).unwrap();
        assert_eq!((h.proto, h.host.as_str()), (Proto::Tls, "::1"));
        assert_eq!(resolve(&h, true).unwrap().port(), 5061);
        let u = Uri::parse(&Bytes::from_static(b"tel:+123")).unwrap();
        assert_eq!(next_hop_of(&u), Err(ForwardError::BadUri));
    }

    #[test]
    fn removing_one_via_value_keeps_the_others() {
        let raw = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a:5060;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let m = SipMsg::parse(Bytes::from_static(raw)).unwrap();
        let v1 = m.vias().unwrap()[0].clone();
        let out = m.serialize(&[remove_via_edit(&m, &v1)]);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\n"), "{s}");
        let m2 = SipMsg::parse(Bytes::from(s)).unwrap();
        assert_eq!(m2.vias().unwrap().len(), 1);
    }

    #[test]
    fn stateless_branch_is_stable() {
        let raw = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKabc\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let m = SipMsg::parse(Bytes::from_static(raw)).unwrap();
        assert_eq!(stateless_branch(&m), stateless_branch(&m.clone()));
        assert!(stateless_branch(&m).starts_with("z9hG4bK"));
    }
}
