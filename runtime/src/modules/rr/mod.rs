//! Kamailio's `rr` module: Record-Route insertion (RFC 3261 16.6 step 4) and loose
//! routing of requests that carry a route set (16.4, 16.12), with strict-router
//! compatibility and double Record-Route when the request leaves on another socket.

use super::core::actions::{arg_bytes, b, uri_is_myself_default_port};
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::sip::msg::Edit;
use crate::sip::{HdrKind, NameAddr, SipMsg};
use crate::transport::{Listener, Proto};
use bytes::Bytes;
use vm::ksr::{ParamType::Str as S, RetType};
use vm::pv::{PvClass, PvSpec};
use vm::{RouteMask, Value};

/// Edit orders at the start of the headers: the outbound Record-Route of a double RR goes
/// first, then ours in parts (`<sip:host`, the `;r2=on` a double RR adds at send time,
/// `;lr;ftag=..`, parameters, `>`), so that later additions land where Kamailio puts them.
const ORD_RR_OUT: u8 = 8;
const ORD_RR_HEAD: u8 = 11;
const ORD_RR_R2: u8 = 12;
const ORD_RR_LR: u8 = 13;
const ORD_RR_PARAM: u8 = 14;
const ORD_RR_TAIL: u8 = 15;

pub static MODULE: ModuleDef = ModuleDef {
    name: "rr",
    params: &[
        ParamDef::int("enable_full_lr"),
        ParamDef::int("append_fromtag"),
        ParamDef::int("enable_double_rr"),
        ParamDef::int("add_username"),
        ParamDef::int("enable_socket_mismatch_warning"),
        ParamDef::int("ignore_user"),
    ],
    register,
    init: Some(init),
    notice: None,
};

#[derive(Clone, Debug)]
pub struct RrState {
    pub full_lr: bool,
    pub append_fromtag: bool,
    pub double_rr: bool,
    pub add_username: bool,
}

impl Default for RrState {
    fn default() -> Self {
        RrState {
            full_lr: false,
            append_fromtag: true,
            double_rr: true,
            add_username: false,
        }
    }
}

/// Per-message rr state.
#[derive(Clone, Debug, Default)]
pub struct RrCtx {
    /// `record_route()` added our header to this message.
    pub added: bool,
    /// It was a preset (`record_route_preset`): no automatic double RR.
    pub preset: bool,
    /// Parameters given to `record_route(params)` and `add_rr_param`, in order.
    pub params: Vec<Bytes>,
    /// `add_rr_param` calls before `record_route`.
    pub pending: Vec<Bytes>,
    /// URI parameters of our Route entry processed by `loose_route`.
    pub routed_params: Option<Bytes>,
    /// `loose_route` removed our Route entry and took the next hop from the following one
    /// (`rr_next_hop_route`, Kamailio's FL_ROUTE_ADDR).
    pub next_hop_from_route: bool,
}

fn init(i: &mut super::InitCtx<'_>) -> Result<(), String> {
    let p = i.params;
    i.states.rr = RrState {
        full_lr: p.int("enable_full_lr", 0) != 0,
        append_fromtag: p.int("append_fromtag", 1) != 0,
        double_rr: p.int("enable_double_rr", 1) != 0,
        add_username: p.int("add_username", 0) != 0,
    };
    Ok(())
}

const RR_ROUTES: RouteMask = RouteMask(1 | 2 | 8);

fn register(r: &mut Registrar<'_>) {
    r.kemi("rr", "record_route", &[], RetType::Int, |c, _| {
        Value::Int(record_route(c, None) as i64)
    })
    .native("record_route", RR_ROUTES);
    r.kemi("rr", "record_route_params", &[S], RetType::Int, |c, a| {
        Value::Int(record_route(c, Some(arg_bytes(a, 0))) as i64)
    });
    r.native("record_route", &[S], RR_ROUTES, |c, a| {
        Value::Int(record_route(c, Some(arg_bytes(a, 0))) as i64)
    });
    r.kemi(
        "rr",
        "record_route_preset_one",
        &[S],
        RetType::Int,
        |c, a| Value::Int(preset(c, &arg_bytes(a, 0), None, false) as i64),
    );
    r.kemi(
        "rr",
        "record_route_preset",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(preset(c, &arg_bytes(a, 0), Some(&arg_bytes(a, 1)), false) as i64),
    )
    .native("record_route_preset", RR_ROUTES);
    r.native("record_route_preset", &[S], RR_ROUTES, |c, a| {
        Value::Int(preset(c, &arg_bytes(a, 0), None, false) as i64)
    });
    r.kemi(
        "rr",
        "record_route_advertised_address",
        &[S],
        RetType::Int,
        |c, a| Value::Int(preset(c, &arg_bytes(a, 0), None, true) as i64),
    )
    .native("record_route_advertised_address", RR_ROUTES);
    r.kemi("rr", "add_rr_param", &[S], RetType::Int, |c, a| {
        Value::Int(add_rr_param(c, arg_bytes(a, 0)) as i64)
    })
    .native("add_rr_param", RR_ROUTES);
    r.kemi("rr", "remove_record_route", &[], RetType::Int, |c, _| {
        c.msg
            .remove_edits_where(|e| (ORD_RR_OUT..=ORD_RR_TAIL).contains(&e.order));
        c.rr.added = false;
        c.rr.preset = false;
        c.rr.params.clear();
        Value::Int(1)
    })
    .native("remove_record_route", RouteMask(1 | 2));
    r.kemi("rr", "loose_route", &[], RetType::Int, |c, _| {
        Value::Int(loose_route(c, false) as i64)
    })
    .native("loose_route", RouteMask::REQUEST);
    r.kemi(
        "rr",
        "loose_route_mode",
        &[vm::ksr::ParamType::Int],
        RetType::Int,
        |c, a| {
            let mode = super::core::actions::arg_int(a, 0);
            Value::Int(loose_route(c, mode & 1 != 0) as i64)
        },
    )
    .native("loose_route_mode", RouteMask::REQUEST);
    r.kemi("rr", "loose_route_preloaded", &[], RetType::Int, |c, _| {
        let preloaded = c
            .msg
            .to()
            .is_ok_and(|t| t.tag().is_none_or(|t| t.is_empty()));
        if !preloaded {
            return Value::Int(-1);
        }
        let r = loose_route(c, false);
        b(r == 1 || r == -3)
    })
    .native("loose_route_preloaded", RouteMask::REQUEST);
    r.kemi("rr", "check_route_param", &[S], RetType::Int, |c, a| {
        check_route_param(c, &arg_bytes(a, 0))
    })
    .native("check_route_param", RouteMask::REQUEST)
    .hints(&[vm::ksr::ParamHint::Regex]);
    r.kemi("rr", "is_direction", &[S], RetType::Int, |c, a| {
        is_direction(c, &arg_bytes(a, 0))
    })
    .native("is_direction", RouteMask::REQUEST);
    r.kemi("rr", "next_hop_route", &[], RetType::Int, |c, _| {
        b(c.rr.next_hop_from_route)
    })
    .native("rr_next_hop_route", RouteMask::ANY);
    r.pvs.add(PvClass {
        name: "route_uri",
        get: pv_route_uri,
        set: None,
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
}

fn pv_route_uri(c: &mut Ctx, _: &PvSpec) -> Value {
    match c.msg.routes() {
        Ok(r) => r
            .first()
            .map(|n| Value::Str(n.uri_raw.clone()))
            .unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn lr_text(c: &Ctx) -> &'static str {
    if c.core.m.rr.full_lr { ";lr=on" } else { ";lr" }
}

/// `sip:[user@]host[:port][;transport=x]` of a listener.
fn listener_uri(c: &Ctx, l: &Listener) -> String {
    let mut s = String::from("sip:");
    if c.core.m.rr.add_username
        && let Ok(u) = c.msg.parsed_ruri()
        && !u.user.is_empty()
    {
        s.push_str(&String::from_utf8_lossy(&u.user));
        s.push('@');
    }
    let host = match &c.opts.advertised_address {
        Some(a) => String::from_utf8_lossy(a).into_owned(),
        None => l.host_for_headers(),
    };
    s.push_str(&host);
    let port = c
        .opts
        .advertised_port
        .unwrap_or_else(|| l.port_for_headers());
    let default = if l.proto == Proto::Tls { 5061 } else { 5060 };
    if port != default {
        s.push_str(&format!(":{port}"));
    }
    if l.proto != Proto::Udp {
        s.push_str(";transport=");
        s.push_str(l.proto.as_str());
    }
    s
}

fn ftag(c: &Ctx) -> Option<Bytes> {
    if !c.core.m.rr.append_fromtag {
        return None;
    }
    c.msg.from().ok().and_then(|f| f.tag().cloned())
}

/// Normalizes a parameter string to start with ';'.
fn norm_param(p: &[u8]) -> Bytes {
    if p.is_empty() || p.starts_with(b";") {
        Bytes::copy_from_slice(p)
    } else {
        let mut v = b";".to_vec();
        v.extend_from_slice(p);
        Bytes::from(v)
    }
}

/// `record_route([params])`.
pub fn record_route(c: &mut Ctx, params: Option<Bytes>) -> i32 {
    if !c.msg.is_request() {
        return -1;
    }
    if c.rr.added {
        crate::klog!(
            L_ERR,
            "rr",
            "record_route: Record-Route already added to this message"
        );
        return -1;
    }
    let Some(l) = c.core.listeners.get(c.rcv.listener).cloned() else {
        return -1;
    };
    let head = format!("Record-Route: <{}", listener_uri(c, &l)).into_bytes();
    let mut lr = lr_text(c).as_bytes().to_vec();
    if let Some(t) = ftag(c) {
        lr.extend_from_slice(b";ftag=");
        lr.extend_from_slice(&t);
    }
    let at = c.msg.headers_start();
    c.msg
        .add_edit(Edit::insert(at, Bytes::from(head), ORD_RR_HEAD));
    c.msg.add_edit(Edit::insert(at, Bytes::from(lr), ORD_RR_LR));
    let mut all = Vec::new();
    if let Some(p) = params.filter(|p| !p.is_empty()) {
        all.push(norm_param(&p));
    }
    all.append(&mut c.rr.pending);
    for p in &all {
        c.msg.add_edit(Edit::insert(at, p.clone(), ORD_RR_PARAM));
    }
    c.msg
        .add_edit(Edit::insert(at, Bytes::from_static(b">\r\n"), ORD_RR_TAIL));
    c.rr.params = all;
    c.rr.added = true;
    1
}

/// `record_route_preset(s1[, s2])`: the given address(es) instead of the socket's;
/// `record_route_advertised_address(addr)` (`with_ftag_user`): the same with the
/// `add_username` user part.
fn preset(c: &mut Ctx, first: &[u8], second: Option<&[u8]>, advertised: bool) -> i32 {
    if c.rr.added {
        return -1;
    }
    let at = c.msg.headers_start();
    let tag = ftag(c);
    let lr = lr_text(c);
    let user = if advertised && c.core.m.rr.add_username {
        c.msg
            .parsed_ruri()
            .ok()
            .filter(|u| !u.user.is_empty())
            .map(|u| u.user.clone())
    } else {
        None
    };
    // Kamailio's preset order: address, ftag, parameters, then `;lr`.
    let mk = |addr: &[u8]| {
        let mut h = b"Record-Route: <sip:".to_vec();
        if let Some(u) = &user {
            h.extend_from_slice(u);
            h.push(b'@');
        }
        h.extend_from_slice(addr);
        if let Some(t) = &tag {
            h.extend_from_slice(b";ftag=");
            h.extend_from_slice(t);
        }
        h
    };
    if let Some(second) = second {
        let mut h1 = mk(first);
        h1.extend_from_slice(lr.as_bytes());
        h1.extend_from_slice(b">\r\n");
        c.msg
            .add_edit(Edit::insert(at, Bytes::from(h1), ORD_RR_OUT));
        c.msg
            .add_edit(Edit::insert(at, Bytes::from(mk(second)), ORD_RR_HEAD));
    } else {
        c.msg
            .add_edit(Edit::insert(at, Bytes::from(mk(first)), ORD_RR_HEAD));
    }
    for p in std::mem::take(&mut c.rr.pending) {
        c.msg.add_edit(Edit::insert(at, p.clone(), ORD_RR_PARAM));
        c.rr.params.push(p);
    }
    let mut tail = lr.as_bytes().to_vec();
    tail.extend_from_slice(b">\r\n");
    c.msg
        .add_edit(Edit::insert(at, Bytes::from(tail), ORD_RR_TAIL));
    c.rr.added = true;
    c.rr.preset = true;
    1
}

/// `add_rr_param(param)`: to the Record-Route of this message (now or when added).
fn add_rr_param(c: &mut Ctx, p: Bytes) -> i32 {
    if p.is_empty() {
        return -1;
    }
    let p = norm_param(&p);
    if c.rr.added {
        let at = c.msg.headers_start();
        c.msg.add_edit(Edit::insert(at, p.clone(), ORD_RR_PARAM));
        c.rr.params.push(p);
    } else {
        c.rr.pending.push(p);
    }
    1
}

/// The extra edits for a request leaving on `out`: with double Record-Route on, a second
/// Record-Route for the outbound socket (on top) when it differs from the inbound one,
/// both marked `r2=on`.
pub fn outbound_edits(c: &Ctx, out: &Listener) -> Vec<Edit> {
    if !c.rr.added || c.rr.preset || !c.core.m.rr.double_rr {
        return Vec::new();
    }
    let Some(inb) = c.core.listeners.get(c.rcv.listener) else {
        return Vec::new();
    };
    if inb.proto == out.proto && inb.addr == out.addr {
        return Vec::new();
    }
    let at = c.msg.headers_start();
    let mut h = format!(
        "Record-Route: <{};r2=on{}",
        listener_uri(c, out),
        lr_text(c)
    )
    .into_bytes();
    if let Some(t) = ftag(c) {
        h.extend_from_slice(b";ftag=");
        h.extend_from_slice(&t);
    }
    for p in &c.rr.params {
        h.extend_from_slice(p);
    }
    h.extend_from_slice(b">\r\n");
    vec![
        Edit::insert(at, Bytes::from(h), ORD_RR_OUT),
        Edit::insert(at, Bytes::from_static(b";r2=on"), ORD_RR_R2),
    ]
}

/// Index of the Route header holding `na` and its byte span in the message.
fn locate(msg: &SipMsg, na: &NameAddr) -> Option<(usize, usize, usize)> {
    let off = msg.offset_of(&na.raw)?;
    let hi = msg
        .headers()
        .iter()
        .position(|h| h.kind == HdrKind::Route && h.start <= off && off < h.end)?;
    Some((hi, off, off + na.raw.len()))
}

/// Edits removing the consecutive Route entries `first..=last` of `routes`: a whole header
/// line when all of its entries go, else the entries with the commas between them.
fn remove_run(msg: &SipMsg, routes: &[NameAddr], first: usize, last: usize) -> Vec<Edit> {
    let located: Vec<Option<(usize, usize, usize)>> =
        routes.iter().map(|r| locate(msg, r)).collect();
    let mut edits = Vec::new();
    let mut i = first;
    while i <= last {
        let Some(Some((hi, start, _))) = located.get(i).copied() else {
            i += 1;
            continue;
        };
        // The run inside header `hi`.
        let mut j = i;
        while j < last && matches!(located.get(j + 1), Some(Some((h, _, _))) if *h == hi) {
            j += 1;
        }
        let end = located
            .get(j)
            .copied()
            .flatten()
            .map(|l| l.2)
            .unwrap_or(start);
        let in_hdr = |k: usize| matches!(located.get(k), Some(Some((h, _, _))) if *h == hi);
        let before = i > 0 && in_hdr(i - 1);
        let after = in_hdr(j + 1);
        let edit = match (before, after) {
            (false, false) => msg
                .headers()
                .get(hi)
                .map(|h| Edit::replace(h.start, h.end, Bytes::new())),
            // Up to the next kept entry.
            (_, true) => located
                .get(j + 1)
                .copied()
                .flatten()
                .map(|n| Edit::replace(start, n.1, Bytes::new())),
            // From the end of the previous kept entry.
            (true, false) => located
                .get(i - 1)
                .copied()
                .flatten()
                .map(|p| Edit::replace(p.2, end, Bytes::new())),
        };
        edits.extend(edit);
        i = j + 1;
    }
    edits
}

fn is_strict(na: &NameAddr) -> bool {
    na.uri.param(b"lr").is_none()
}

fn has_r2(na: &NameAddr) -> bool {
    na.uri.param(b"r2").is_some()
}

/// `loose_route()` with Kamailio's return codes: 1 routed by the route set, -1 no route
/// set (or error), -3 an initial request whose only Route was ours (removed).
pub fn loose_route(c: &mut Ctx, loose_only: bool) -> i32 {
    let routes: Vec<NameAddr> = match c.msg.routes() {
        Ok(r) if !r.is_empty() => r.to_vec(),
        Ok(_) => return -1,
        Err(e) => {
            crate::klog!(L_ERR, "rr", "loose_route: bad Route header: {e}");
            return -1;
        }
    };
    let preloaded = match c.msg.to() {
        Ok(t) => t.tag().is_none_or(|t| t.is_empty()),
        Err(_) => return -1,
    };
    let ruri_mine = c
        .msg
        .ruri()
        .is_some_and(|u| uri_is_myself_default_port(c, u));
    if !preloaded && !loose_only && ruri_mine {
        after_strict(c, &routes)
    } else {
        after_loose(c, &routes, preloaded)
    }
}

fn remove(c: &mut Ctx, routes: &[NameAddr], first: usize, last: usize) {
    for e in remove_run(&c.msg, routes, first, last) {
        c.msg.add_edit(e);
    }
}

fn after_loose(c: &mut Ctx, routes: &[NameAddr], preloaded: bool) -> i32 {
    let Some(first) = routes.first() else {
        return -1;
    };
    // Number of our own entries at the top (two with double Record-Route).
    let mut own = 0;
    c.rr.routed_params = None;
    if uri_is_myself_default_port(c, &first.uri_raw) {
        c.rr.routed_params = Some(first.uri.params_raw.clone());
        own = if c.core.m.rr.double_rr && has_r2(first) && routes.len() > 1 {
            2
        } else {
            1
        };
        if routes.len() <= own {
            remove(c, routes, 0, own - 1);
            return if preloaded { -3 } else { 1 };
        }
    }
    let Some(next) = routes.get(own) else {
        return -1;
    };
    if is_strict(next) {
        // The next hop is a strict router: it gets the request with its URI as R-URI, the
        // current R-URI goes to the end of the route set.
        let Some(old) = c.msg.ruri().cloned() else {
            return -1;
        };
        let last_hdr = c
            .msg
            .headers()
            .iter()
            .enumerate()
            .filter(|(_, h)| h.kind == HdrKind::Route)
            .map(|(k, _)| k)
            .last();
        let mut line = b"Route: <".to_vec();
        line.extend_from_slice(&old);
        line.extend_from_slice(b">\r\n");
        if let Some(k) = last_hdr {
            c.msg.insert_header_after(k, Bytes::from(line));
        }
        c.msg.set_ruri(next.uri_raw.clone());
        remove(c, routes, 0, own);
    } else {
        c.dst_uri = Some(next.uri_raw.clone());
        if own > 0 {
            remove(c, routes, 0, own - 1);
        }
    }
    // Kamailio's FL_ROUTE_ADDR: our entry was followed by the next hop's.
    c.rr.next_hop_from_route = own > 0;
    1
}

fn after_strict(c: &mut Ctx, routes: &[NameAddr]) -> i32 {
    // Our second (double-RR) entry may come first; it is removed with what follows.
    let mut i = 0;
    if let Some(first) = routes.first()
        && c.core.m.rr.double_rr
        && has_r2(first)
        && uri_is_myself_default_port(c, &first.uri_raw)
    {
        i = 1;
        if routes.len() == 1 {
            remove(c, routes, 0, 0);
            return -1;
        }
    }
    c.rr.routed_params = c.msg.parsed_ruri().ok().map(|u| u.params_raw.clone());
    let Some(next) = routes.get(i) else {
        return -1;
    };
    if is_strict(next) {
        c.msg.set_ruri(next.uri_raw.clone());
        remove(c, routes, 0, i);
    } else {
        // Recover from the previous strict router: the last Route is the real target.
        let n = routes.len() - 1;
        if n == i {
            return -1;
        }
        c.dst_uri = Some(next.uri_raw.clone());
        if i == 1 {
            remove(c, routes, 0, 0);
        }
        let Some(last) = routes.last() else {
            return -1;
        };
        c.msg.set_ruri(last.uri_raw.clone());
        remove(c, routes, n, n);
    }
    1
}

fn check_route_param(c: &Ctx, re: &[u8]) -> Value {
    let Some(params) = &c.rr.routed_params else {
        return Value::Int(-1);
    };
    let pat = String::from_utf8_lossy(re);
    match regex::bytes::RegexBuilder::new(&pat).build() {
        Ok(r) => b(r.is_match(params)),
        Err(e) => {
            crate::klog!(L_ERR, "rr", "check_route_param: bad regex '{pat}': {e}");
            Value::Int(-1)
        }
    }
}

/// `is_direction("downstream"|"upstream")`: compares the `ftag` of our Route entry with
/// the From tag (a request from the caller carries the same From tag).
fn is_direction(c: &Ctx, dir: &[u8]) -> Value {
    let down = match dir {
        d if d.eq_ignore_ascii_case(b"downstream") => true,
        d if d.eq_ignore_ascii_case(b"upstream") => false,
        _ => {
            crate::klog!(L_ERR, "rr", "is_direction: unknown direction");
            return Value::Int(-1);
        }
    };
    let Some(params) = &c.rr.routed_params else {
        return Value::Int(-1);
    };
    let ftag = params.split(|b| *b == b';').find_map(|p| {
        let (n, v) = match p.iter().position(|b| *b == b'=') {
            Some(k) => (&p[..k], &p[k + 1..]),
            None => (p, &b""[..]),
        };
        n.trim_ascii().eq_ignore_ascii_case(b"ftag").then_some(v)
    });
    let Some(ftag) = ftag else {
        // Without ftag the direction is taken as downstream.
        return b(down);
    };
    let from_tag = c.msg.from().ok().and_then(|f| f.tag().cloned());
    let is_down = from_tag.is_some_and(|t| t[..] == *ftag);
    b(is_down == down)
}
