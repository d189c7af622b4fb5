//! Kamailio's `rtpproxy` module: asks an RTP proxy (the rtpproxy control protocol over UDP or a
//! unix socket) for a relay port per media stream and rewrites the SDP `c=`/`m=`/`o=` lines
//! (and `a=rtcp`) to it; `D` deletes the session.
//!
//! A proxy that does not answer is logged and disabled for `rtpproxy_disable_tout` seconds
//! (shared by all workers); the function then returns Kamailio's "no proxy" code and routing
//! goes on. Nodes are checked (`V`/`VF` version and capability queries) on first use rather
//! than at start-up, so ksr starts at once even when no proxy runs.

use super::core::actions::arg_bytes;
use super::nathelper::sdp;
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::log::{L_DBG, L_ERR, L_INFO, L_WARN};
use crate::sip::Method;
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteKind, RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "rtpproxy",
    params: &[
        ParamDef::str("nortpproxy_str"),
        ParamDef::str("rtpproxy_sock").multi(),
        ParamDef::int("rtpproxy_disable_tout"),
        ParamDef::int("rtpproxy_retr"),
        ParamDef::int("rtpproxy_tout"),
        ParamDef::str("timeout_socket"),
        ParamDef::str("rtp_inst_pvar"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// Oldest control protocol this module speaks, and the capabilities it asks for.
const SUP_CPROTOVER: i64 = 20040107;
const REQ_CPROTOVER: &str = "20050322";
const REP_CPROTOVER: &str = "20081102";
const PTL_CPROTOVER: &str = "20081224";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAddr {
    Udp(SocketAddr),
    Unix(String),
}

#[derive(Debug)]
pub struct Node {
    pub url: String,
    pub addr: NodeAddr,
    pub weight: u32,
}

/// Per-node health, shared by the workers.
#[derive(Clone, Copy, Debug, Default)]
struct Health {
    /// Not checked yet (first use runs the version test).
    checked: bool,
    disabled: bool,
    /// When a disabled node may be tried again.
    recheck: Option<Instant>,
    rep_supported: bool,
    ptl_supported: bool,
}

#[derive(Debug)]
pub struct Set {
    pub id: i64,
    /// Indices into `RtpproxyState::nodes`.
    pub nodes: Vec<usize>,
}

#[derive(Default)]
pub struct RtpproxyState {
    pub nodes: Vec<Node>,
    pub sets: Vec<Set>,
    health: Mutex<Vec<Health>>,
    pub nortpproxy: Option<Bytes>,
    pub disable_tout: i64,
    pub retr: i64,
    pub tout: i64,
    pub timeout_socket: Option<Bytes>,
    /// AVP that receives the URL of the node used (`rtp_inst_pvar`).
    pub inst_avp: Option<Bytes>,
}

/// Parses one `rtpproxy_sock` value: `[set ==] url[=weight] url...`.
/// A set id and its nodes (url, address, weight).
pub type SockList = (i64, Vec<(String, NodeAddr, u32)>);

pub fn parse_sock(v: &str) -> Result<SockList, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok((0, Vec::new()));
    }
    let (id, list) = match v.split_once("==") {
        Some((id, rest)) => {
            let id = id.trim();
            if id.is_empty() || rest.trim().is_empty() {
                return Err(format!("invalid rtp proxy list '{v}'"));
            }
            let n: i64 = id
                .parse()
                .map_err(|_| format!("invalid rtpproxy set id '{id}'"))?;
            (n, rest)
        }
        None => (0, v),
    };
    let mut out = Vec::new();
    for tok in list.split_whitespace() {
        let (url, weight) = match tok.split_once('=') {
            Some((u, w)) => (u, w.parse::<u32>().unwrap_or(0)),
            None => (tok, 1),
        };
        out.push((url.to_string(), node_addr(url)?, weight));
    }
    if out.is_empty() {
        return Err(format!("empty rtp proxy list '{v}'"));
    }
    Ok((id, out))
}

fn node_addr(url: &str) -> Result<NodeAddr, String> {
    let lower = url.to_ascii_lowercase();
    let hostport = if lower.starts_with("udp:") {
        &url[4..]
    } else if lower.starts_with("udp6:") {
        &url[5..]
    } else if lower.starts_with("unix:") {
        return Ok(NodeAddr::Unix(url[5..].to_string()));
    } else {
        return Ok(NodeAddr::Unix(url.to_string()));
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bad port in '{url}'"))?,
        ),
        _ => (hostport, 22222),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let a = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("can't resolve rtpproxy '{url}': {e}"))?
        .next()
        .ok_or_else(|| format!("can't resolve rtpproxy '{url}'"))?;
    Ok(NodeAddr::Udp(a))
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.rtpproxy;
    for v in p.all("rtpproxy_sock") {
        let (id, list) = parse_sock(&v.to_text())?;
        if list.is_empty() {
            continue;
        }
        let set = match st.sets.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                st.sets.push(Set {
                    id,
                    nodes: Vec::new(),
                });
                st.sets.len() - 1
            }
        };
        for (url, addr, weight) in list {
            st.nodes.push(Node { url, addr, weight });
            st.sets[set].nodes.push(st.nodes.len() - 1);
        }
    }
    st.health = Mutex::new(vec![Health::default(); st.nodes.len()]);
    st.nortpproxy = Some(Bytes::from(p.str_or("nortpproxy_str", "a=nortpproxy:yes")));
    st.disable_tout = p.int("rtpproxy_disable_tout", 60);
    st.retr = p.int("rtpproxy_retr", 5).max(1);
    st.tout = p.int("rtpproxy_tout", 1).max(0);
    st.timeout_socket = p
        .str("timeout_socket")
        .filter(|s| !s.is_empty())
        .map(Bytes::from);
    if let Some(pv) = p.str("rtp_inst_pvar").filter(|s| !s.is_empty()) {
        st.inst_avp = Some(
            super::nathelper::avp_name_of(&pv)
                .map_err(|e| format!("rtpproxy: rtp_inst_pvar: {e} (only $avp is supported)"))?,
        );
    }
    if st.nodes.is_empty() {
        crate::klog!(
            L_WARN,
            "rtpproxy",
            "no rtpproxy_sock given: every rtpproxy function will fail"
        );
    }
    Ok(())
}

fn register(r: &mut Registrar<'_>) {
    for name in ["rtpstat", "rtppstat"] {
        r.pvs.add(vm::pv::PvClass {
            name,
            get: |c: &mut Ctx, _: &vm::pv::PvSpec| rtpstat(c),
            set: None,
            parse_name: None,
            name_required: false,
            takes_index: false,
        });
    }
    let any = RouteMask::ANY;
    r.kemi("rtpproxy", "rtpproxy_manage0", &[], RetType::Int, |c, _| {
        Value::Int(manage(c, b"", None))
    });
    r.native("rtpproxy_manage", &[], any, |c, _| {
        Value::Int(manage(c, b"", None))
    });
    r.kemi("rtpproxy", "rtpproxy_manage", &[S], RetType::Int, |c, a| {
        Value::Int(manage(c, &arg_bytes(a, 0), None))
    })
    .native("rtpproxy_manage", any);
    r.kemi(
        "rtpproxy",
        "rtpproxy_manage_ip",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(manage(c, &arg_bytes(a, 0), Some(arg_bytes(a, 1)))),
    )
    .native("rtpproxy_manage", any);
    r.kemi("rtpproxy", "rtpproxy_offer0", &[], RetType::Int, |c, _| {
        Value::Int(force(c, b"", None, true))
    });
    r.native("rtpproxy_offer", &[], any, |c, _| {
        Value::Int(force(c, b"", None, true))
    });
    r.kemi("rtpproxy", "rtpproxy_offer", &[S], RetType::Int, |c, a| {
        Value::Int(force(c, &arg_bytes(a, 0), None, true))
    })
    .native("rtpproxy_offer", any);
    r.kemi(
        "rtpproxy",
        "rtpproxy_offer_ip",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(force(c, &arg_bytes(a, 0), Some(arg_bytes(a, 1)), true)),
    )
    .native("rtpproxy_offer", any);
    r.kemi("rtpproxy", "rtpproxy_answer0", &[], RetType::Int, |c, _| {
        Value::Int(answer(c, b"", None))
    });
    r.native("rtpproxy_answer", &[], any, |c, _| {
        Value::Int(answer(c, b"", None))
    });
    r.kemi("rtpproxy", "rtpproxy_answer", &[S], RetType::Int, |c, a| {
        Value::Int(answer(c, &arg_bytes(a, 0), None))
    })
    .native("rtpproxy_answer", any);
    r.kemi(
        "rtpproxy",
        "rtpproxy_answer_ip",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(answer(c, &arg_bytes(a, 0), Some(arg_bytes(a, 1)))),
    )
    .native("rtpproxy_answer", any);
    r.kemi(
        "rtpproxy",
        "rtpproxy_destroy0",
        &[],
        RetType::Int,
        |c, _| Value::Int(unforce(c, b"")),
    );
    r.kemi(
        "rtpproxy",
        "rtpproxy_destroy",
        &[S],
        RetType::Int,
        |c, a| Value::Int(unforce(c, &arg_bytes(a, 0))),
    )
    .native("rtpproxy_destroy", any)
    .native("unforce_rtp_proxy", any);
    r.native("rtpproxy_destroy", &[], any, |c, _| {
        Value::Int(unforce(c, b""))
    });
    r.native("unforce_rtp_proxy", &[], any, |c, _| {
        Value::Int(unforce(c, b""))
    });
    r.kemi("rtpproxy", "start_recording", &[], RetType::Int, |c, _| {
        Value::Int(start_recording(c))
    })
    .native("start_recording", any);
    r.kemi(
        "rtpproxy",
        "rtpproxy_stream2uac",
        &[S, I],
        RetType::Int,
        |c, a| {
            let n = a.get(1).and_then(Value::as_int).unwrap_or(0);
            Value::Int(stream(c, Some((&arg_bytes(a, 0), n)), true))
        },
    )
    .native("rtpproxy_stream2uac", any);
    r.kemi(
        "rtpproxy",
        "rtpproxy_stream2uas",
        &[S, I],
        RetType::Int,
        |c, a| {
            let n = a.get(1).and_then(Value::as_int).unwrap_or(0);
            Value::Int(stream(c, Some((&arg_bytes(a, 0), n)), false))
        },
    )
    .native("rtpproxy_stream2uas", any);
    r.kemi(
        "rtpproxy",
        "rtpproxy_stop_stream2uac",
        &[],
        RetType::Int,
        |c, _| Value::Int(stream(c, None, true)),
    )
    .native("rtpproxy_stop_stream2uac", any);
    r.kemi(
        "rtpproxy",
        "rtpproxy_stop_stream2uas",
        &[],
        RetType::Int,
        |c, _| Value::Int(stream(c, None, false)),
    )
    .native("rtpproxy_stop_stream2uas", any);
    r.kemi(
        "rtpproxy",
        "set_rtpproxy_set",
        &[I],
        RetType::Int,
        |c, a| Value::Int(set_set(c, a.first().and_then(Value::as_int).unwrap_or(-1))),
    )
    .native("set_rtp_proxy_set", any);
}

// ---------------------------------------------------------------- set selection

thread_local! {
    /// Set chosen by `set_rtp_proxy_set` for the message that started at this instant.
    static SELECTED: RefCell<Option<(Instant, usize)>> = const { RefCell::new(None) };
    /// One UDP socket per node in each worker.
    static SOCKS: RefCell<HashMap<usize, UdpSocket>> = RefCell::new(HashMap::new());
    static SEQ: RefCell<u32> = const { RefCell::new(0) };
}

fn set_set(c: &mut Ctx, id: i64) -> i64 {
    let st = &c.core.m.rtpproxy;
    match st.sets.iter().position(|s| s.id == id) {
        Some(i) => {
            SELECTED.with(|s| *s.borrow_mut() = Some((c.started, i)));
            1
        }
        None => {
            crate::klog!(L_ERR, "rtpproxy", "could not locate rtpproxy set {id}");
            -1
        }
    }
}

fn current_set(c: &Ctx) -> Option<usize> {
    let st = &c.core.m.rtpproxy;
    let sel = SELECTED.with(|s| *s.borrow());
    match sel {
        Some((t, i)) if t == c.started => Some(i),
        _ => st.sets.iter().position(|s| s.id == 0),
    }
}

// ---------------------------------------------------------------- talking to a node

/// Sends one command (`parts` joined, without the cookie) and returns the reply text
/// without the cookie, or `None` when the node did not answer (it is then disabled).
fn send_command(c: &Ctx, node: usize, cmd: &[u8]) -> Option<String> {
    let st = &c.core.m.rtpproxy;
    let n = st.nodes.get(node)?;
    let res = match &n.addr {
        NodeAddr::Unix(path) => send_unix(path, cmd, st.tout),
        NodeAddr::Udp(a) => send_udp(node, *a, cmd, st.retr, st.tout),
    };
    match res {
        Ok(r) => Some(r),
        Err(e) => {
            crate::klog!(L_ERR, "rtpproxy", "{e}");
            crate::klog!(
                L_ERR,
                "rtpproxy",
                "proxy <{}> does not respond, disable it",
                n.url
            );
            if let Ok(mut h) = st.health.lock()
                && let Some(h) = h.get_mut(node)
            {
                h.disabled = true;
                h.recheck =
                    Some(Instant::now() + Duration::from_secs(st.disable_tout.max(0) as u64));
            }
            None
        }
    }
}

fn send_unix(path: &str, cmd: &[u8], tout: i64) -> Result<String, String> {
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|_| "can't connect to RTP proxy".to_string())?;
    let t = Some(Duration::from_secs(tout.max(1) as u64));
    let _ = s.set_read_timeout(t);
    let _ = s.set_write_timeout(t);
    s.write_all(cmd)
        .map_err(|_| "can't send command to a RTP proxy".to_string())?;
    let mut buf = [0u8; 256];
    let n = s
        .read(&mut buf)
        .map_err(|_| "can't read reply from a RTP proxy".to_string())?;
    if n == 0 {
        return Err("can't read reply from a RTP proxy".into());
    }
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn send_udp(
    node: usize,
    to: SocketAddr,
    cmd: &[u8],
    retr: i64,
    tout: i64,
) -> Result<String, String> {
    let cookie = SEQ.with(|s| {
        let mut s = s.borrow_mut();
        *s = s.wrapping_add(1);
        format!("{}_{} ", std::process::id(), *s)
    });
    let mut pkt = Vec::with_capacity(cookie.len() + cmd.len());
    pkt.extend_from_slice(cookie.as_bytes());
    pkt.extend_from_slice(cmd);
    let ck = &cookie.as_bytes()[..cookie.len() - 1];
    SOCKS.with(|socks| {
        let mut socks = socks.borrow_mut();
        #[allow(clippy::map_entry)]
        if !socks.contains_key(&node) {
            let bind: SocketAddr = if to.is_ipv6() {
                "[::]:0"
                    .parse()
                    .map_err(|_| "bad bind address".to_string())?
            } else {
                "0.0.0.0:0"
                    .parse()
                    .map_err(|_| "bad bind address".to_string())?
            };
            let s = UdpSocket::bind(bind).map_err(|e| format!("can't create socket: {e}"))?;
            s.connect(to)
                .map_err(|e| format!("can't connect to RTP proxy: {e}"))?;
            socks.insert(node, s);
        }
        let Some(s) = socks.get(&node) else {
            return Err("no socket".to_string());
        };
        let mut buf = [0u8; 256];
        // Drop late answers to earlier commands.
        let _ = s.set_nonblocking(true);
        while s.recv(&mut buf).is_ok() {}
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_millis(
            (tout.max(0) as u64 * 1000).max(10),
        )));
        for _ in 0..retr {
            if s.send(&pkt).is_err() {
                return Err("can't send command to a RTP proxy".into());
            }
            while let Ok(n) = s.recv(&mut buf) {
                let r = &buf[..n];
                if r.len() >= ck.len() && r.starts_with(ck) {
                    let mut rest = &r[ck.len()..];
                    if !rest.is_empty() {
                        rest = &rest[1..];
                    }
                    return Ok(String::from_utf8_lossy(rest).into_owned());
                }
            }
        }
        Err("timeout waiting reply from a RTP proxy".into())
    })
}

/// The `V`/`VF` checks; true when the node is usable.
fn test_node(c: &Ctx, node: usize) -> bool {
    let st = &c.core.m.rtpproxy;
    let url = st
        .nodes
        .get(node)
        .map(|n| n.url.clone())
        .unwrap_or_default();
    let ok = (|| {
        let v = send_command(c, node, b"V")?;
        let ver: i64 = atoi(&v);
        if ver != SUP_CPROTOVER {
            crate::klog!(
                L_WARN,
                "rtpproxy",
                "unsupported version of RTP proxy <{url}> found: {SUP_CPROTOVER} supported,{ver} present"
            );
            return None;
        }
        let cap = |c: &Ctx, v: &str| -> Option<bool> {
            let r = send_command(c, node, format!("VF {v}").as_bytes())?;
            Some(!r.starts_with('E') && atoi(&r) == 1)
        };
        if !cap(c, REQ_CPROTOVER)? {
            crate::klog!(
                L_WARN,
                "rtpproxy",
                "of RTP proxy <{url}> doesn't support required protocol version{REQ_CPROTOVER}"
            );
            return None;
        }
        crate::klog!(
            L_INFO,
            "rtpproxy",
            "rtp proxy <{url}> found, support for it enabled"
        );
        let rep = cap(c, REP_CPROTOVER).unwrap_or(false);
        let ptl = cap(c, PTL_CPROTOVER).unwrap_or(false);
        Some((rep, ptl))
    })();
    let tout = st.disable_tout;
    if let Ok(mut h) = st.health.lock()
        && let Some(h) = h.get_mut(node)
    {
        h.checked = true;
        match ok {
            Some((rep, ptl)) => {
                h.disabled = false;
                h.rep_supported = rep;
                h.ptl_supported = ptl;
            }
            None => {
                crate::klog!(
                    L_WARN,
                    "rtpproxy",
                    "support for RTP proxy <{url}> has been disabled{}",
                    if tout < 0 { "" } else { " temporarily" }
                );
                h.disabled = true;
                h.recheck = (tout >= 0).then(|| Instant::now() + Duration::from_secs(tout as u64));
            }
        }
    }
    ok.is_some()
}

fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let end = t
        .char_indices()
        .find(|(i, ch)| !(ch.is_ascii_digit() || (*i == 0 && (*ch == '-' || *ch == '+'))))
        .map(|(i, _)| i)
        .unwrap_or(t.len());
    t[..end].parse().unwrap_or(0)
}

fn health(c: &Ctx, node: usize) -> Health {
    c.core
        .m
        .rtpproxy
        .health
        .lock()
        .ok()
        .and_then(|h| h.get(node).copied())
        .unwrap_or_default()
}

/// Kamailio's balancing: one node, or a weighted pick by a hash of the Call-ID; nodes due
/// for a recheck are tested again.
fn select_node(c: &Ctx, callid: &[u8]) -> Option<usize> {
    let st = &c.core.m.rtpproxy;
    let Some(set) = current_set(c).and_then(|i| st.sets.get(i)) else {
        crate::klog!(L_ERR, "rtpproxy", "script error -no valid set selected");
        return None;
    };
    let usable = |c: &Ctx, n: usize| -> bool {
        let h = health(c, n);
        if !h.checked {
            return test_node(c, n);
        }
        if h.disabled {
            if h.recheck.is_some_and(|t| t <= Instant::now()) {
                return test_node(c, n);
            }
            return false;
        }
        true
    };
    if set.nodes.len() == 1 {
        let n = set.nodes[0];
        return usable(c, n).then_some(n);
    }
    let sum = callid.iter().fold(0u32, |a, b| a.wrapping_add(*b as u32)) & 0xff;
    for forced in [false, true] {
        let mut live = Vec::new();
        for &n in &set.nodes {
            let ok = if forced {
                test_node(c, n)
            } else {
                usable(c, n)
            };
            if ok {
                live.push(n);
            }
        }
        let total: u32 = live.iter().map(|n| st.nodes[*n].weight).sum();
        if total == 0 {
            continue;
        }
        let mut cut = sum % total;
        for n in live {
            let w = st.nodes[n].weight;
            if cut < w {
                return Some(n);
            }
            cut -= w;
        }
        return None;
    }
    None
}

fn set_inst(c: &mut Ctx, node: usize) {
    if let Some(name) = c.core.m.rtpproxy.inst_avp.clone()
        && let Some(n) = c.core.m.rtpproxy.nodes.get(node)
    {
        let url = Bytes::from(n.url.clone());
        c.avps.retain(|(k, _)| *k != name);
        c.avps.insert(0, (name, Value::Str(url)));
    }
}

// ---------------------------------------------------------------- functions

fn tags(c: &Ctx) -> Option<(Bytes, Bytes, Bytes)> {
    let callid = c.msg.callid().filter(|x| !x.is_empty())?.clone();
    let from = c.msg.from().ok()?.tag().filter(|t| !t.is_empty())?.clone();
    let to = match c.msg.to() {
        Ok(t) => t.tag().cloned().unwrap_or_default(),
        Err(_) => return None,
    };
    Some((callid, from, to))
}

fn via_branch(c: &Ctx, which: u8) -> Option<Bytes> {
    let v = if which == 1 {
        c.msg.via1().ok()
    } else {
        c.msg.via2()
    }?;
    v.branch().filter(|b| !b.is_empty()).cloned()
}

fn unforce(c: &mut Ctx, flags: &[u8]) -> i64 {
    let mut via = 0u8;
    let mut with_to = true;
    for &f in flags {
        match f {
            b'1' => via = 1,
            b'2' => via = 2,
            b'3' => via = if c.msg.is_reply() { 2 } else { 1 },
            b't' | b'T' => with_to = false,
            b'b' | b'a' | b'A' | b'i' | b'I' | b'e' | b'E' | b'l' | b'L' | b'f' | b'F' | b'r'
            | b'R' | b'c' | b'C' | b'o' | b'O' | b'x' | b'X' | b'w' | b'W' | b'z' | b'Z' => {}
            other => {
                crate::klog!(L_ERR, "rtpproxy", "unknown option `{}'", other as char);
                return -1;
            }
        }
    }
    let Some(callid) = c.msg.callid().filter(|x| !x.is_empty()).cloned() else {
        crate::klog!(L_ERR, "rtpproxy", "can't get Call-Id field");
        return -1;
    };
    let to_tag = if with_to {
        match c.msg.to() {
            Ok(t) => t.tag().cloned().unwrap_or_default(),
            Err(_) => {
                crate::klog!(L_ERR, "rtpproxy", "can't get To tag");
                return -1;
            }
        }
    } else {
        Bytes::new()
    };
    let Some(from_tag) = c
        .msg
        .from()
        .ok()
        .and_then(|f| f.tag().cloned())
        .filter(|t| !t.is_empty())
    else {
        crate::klog!(L_ERR, "rtpproxy", "can't get From tag");
        return -1;
    };
    let mut cmd = b"D ".to_vec();
    cmd.extend_from_slice(&callid);
    if via != 0 {
        let Some(br) = via_branch(c, via) else {
            crate::klog!(L_ERR, "rtpproxy", "can't get Via branch");
            return -1;
        };
        cmd.push(b';');
        cmd.extend_from_slice(&br);
    }
    cmd.push(b' ');
    cmd.extend_from_slice(&from_tag);
    if !to_tag.is_empty() {
        cmd.push(b' ');
        cmd.extend_from_slice(&to_tag);
    }
    let Some(node) = select_node(c, &callid) else {
        crate::klog!(L_ERR, "rtpproxy", "no available proxies");
        return -1;
    };
    set_inst(c, node);
    let _ = send_command(c, node, &cmd);
    1
}

/// `$rtpstat`: the proxy's answer to `Q callid tag;1 tag`, or null.
fn rtpstat(c: &mut Ctx) -> Value {
    let Some((callid, from, to)) = tags(c) else {
        crate::klog!(L_ERR, "rtpproxy", "can't get Call-Id, To or From tag");
        return Value::Null;
    };
    let Some(node) = select_node(c, &callid) else {
        crate::klog!(L_ERR, "rtpproxy", "no available proxies");
        return Value::Null;
    };
    set_inst(c, node);
    let mut cmd = b"Q ".to_vec();
    cmd.extend_from_slice(&callid);
    cmd.push(b' ');
    if c.msg.is_reply() {
        if to.is_empty() {
            return Value::Null;
        }
        cmd.extend_from_slice(&to);
        cmd.extend_from_slice(b";1 ");
        cmd.extend_from_slice(&from);
    } else {
        cmd.extend_from_slice(&from);
        if !to.is_empty() {
            cmd.extend_from_slice(b";1 ");
            cmd.extend_from_slice(&to);
        }
    }
    match send_command(c, node, &cmd) {
        Some(r) => Value::Str(Bytes::from(r)),
        None => Value::Null,
    }
}

/// `R callid tag tag`: the proxy starts recording the session.
fn start_recording(c: &mut Ctx) -> i64 {
    let Some((callid, from, to)) = tags(c) else {
        crate::klog!(L_ERR, "rtpproxy", "can't get Call-Id, To or From tag");
        return -1;
    };
    let Some(node) = select_node(c, &callid) else {
        crate::klog!(L_ERR, "rtpproxy", "no available proxies");
        return -1;
    };
    set_inst(c, node);
    let mut cmd = b"R ".to_vec();
    cmd.extend_from_slice(&callid);
    if c.msg.is_reply() {
        if to.is_empty() {
            return -1;
        }
        for t in [&to, &from] {
            cmd.push(b' ');
            cmd.extend_from_slice(t);
        }
    } else {
        cmd.push(b' ');
        cmd.extend_from_slice(&from);
        if !to.is_empty() {
            cmd.push(b' ');
            cmd.extend_from_slice(&to);
        }
    }
    let _ = send_command(c, node, &cmd);
    1
}

/// `P<count> callid prompt session tag;1 tag;1` plays a prompt to one side, `S callid
/// tag;1 tag;1` stops it (`play` is `None`). Needs a node with the play capability.
fn stream(c: &mut Ctx, play: Option<(&[u8], i64)>, to_uac: bool) -> i64 {
    let Some((callid, from, to)) = tags(c) else {
        crate::klog!(L_ERR, "rtpproxy", "can't get Call-Id, To or From tag");
        return -1;
    };
    let Some(node) = select_node(c, &callid) else {
        crate::klog!(L_ERR, "rtpproxy", "no available proxies");
        return -1;
    };
    if !health(c, node).ptl_supported {
        crate::klog!(
            L_ERR,
            "rtpproxy",
            "required functionality is not supported by the version of the RTPproxy running on the selected node.  Please upgrade the RTPproxy and try again."
        );
        return -1;
    }
    set_inst(c, node);
    let mut cmd = match play {
        Some((_, n)) => format!("P{n} ").into_bytes(),
        None => b"S ".to_vec(),
    };
    cmd.extend_from_slice(&callid);
    cmd.push(b' ');
    if let Some((name, _)) = play {
        cmd.extend_from_slice(name);
        cmd.extend_from_slice(b" session ");
    }
    let (first, second) = if to_uac {
        (&from, &to)
    } else {
        if to.is_empty() {
            return -1;
        }
        (&to, &from)
    };
    cmd.extend_from_slice(first);
    cmd.extend_from_slice(b";1 ");
    // Without a To tag Kamailio leaves the separator's trailing space in the command.
    if !(to_uac && to.is_empty()) {
        cmd.extend_from_slice(second);
        cmd.extend_from_slice(b";1");
    }
    let _ = send_command(c, node, &cmd);
    1
}

fn answer(c: &mut Ctx, flags: &[u8], ip: Option<Bytes>) -> i64 {
    if c.msg.is_request() && c.msg.method() != Method::Ack {
        return -1;
    }
    force(c, flags, ip, false)
}

/// The local address the message came in on (Kamailio's `rcv.dst_ip`).
fn local_ip(c: &Ctx) -> Bytes {
    Bytes::from(c.rcv.local.ip().to_string())
}

fn manage(c: &mut Ctx, flags: &[u8], ip: Option<Bytes>) -> i64 {
    if c.route == RouteKind::BranchFailure {
        return 1;
    }
    let Ok(cseq) = c.msg.cseq() else {
        crate::klog!(L_ERR, "rtpproxy", "no CSEQ header");
        return -1;
    };
    let method = Method::parse(&cseq.method);
    if !matches!(
        method,
        Method::Invite
            | Method::Ack
            | Method::Cancel
            | Method::Bye
            | Method::Update
            | Method::Prack
    ) {
        return -1;
    }
    if matches!(method, Method::Cancel | Method::Bye) {
        return unforce(c, flags);
    }
    let has_sdp = sdp_body(c).is_some_and(|b| sdp::parse(&b).iter().any(|s| !s.media.is_empty()));
    if c.msg.is_request() {
        if !has_sdp {
            return -1;
        }
        return match method {
            Method::Ack => force(c, flags, ip, false),
            Method::Prack | Method::Update => force(c, flags, ip, true),
            Method::Invite => {
                if c.route == RouteKind::Failure {
                    unforce(c, flags)
                } else {
                    force(c, flags, ip, true)
                }
            }
            _ => -1,
        };
    }
    if c.msg.status().unwrap_or(0) >= 300 {
        return unforce(c, flags);
    }
    if has_sdp {
        // Without a transaction to tell a late offer apart, a reply carries the answer.
        return force(c, flags, ip, false);
    }
    -1
}

fn sdp_body(c: &Ctx) -> Option<Bytes> {
    let body = c.msg.current_body();
    if sdp::trimmed_end(body) == 0 {
        return None;
    }
    if let Some(ct) = c.msg.content_type() {
        let main = ct.split(|x| *x == b';').next().unwrap_or(&[]);
        if !crate::sip::scan::trim_lws(main).eq_ignore_ascii_case(b"application/sdp") {
            return None;
        }
    }
    Some(body.clone())
}

/// Kamailio's force_rtp_proxy: offer (`U`) or answer/lookup (`L`) for every media stream,
/// then the SDP rewrite. 1 done, -1 error, -2 already proxied, -3 no proxy answers.
fn force(c: &mut Ctx, flags: &[u8], forced_ip: Option<Bytes>, offer: bool) -> i64 {
    let mut opts: Vec<u8> = vec![b'?'];
    let mut rep_opts: Vec<u8> = Vec::new();
    let (mut flookup, mut force_f, mut real, mut commip, mut via, mut bridge) =
        (false, false, false, false, 0u8, false);
    let mut i = 0;
    while i < flags.len() {
        match flags[i] {
            b'1' => via = 1,
            b'2' => via = 2,
            b'3' => via = if c.msg.is_reply() { 2 } else { 1 },
            b'a' | b'A' => {
                opts.push(b'A');
                real = true;
            }
            b'b' | b't' | b'T' | b'o' | b'O' => {}
            b'i' | b'I' => opts.push(b'I'),
            b'e' | b'E' => opts.push(b'E'),
            b'l' | b'L' => {
                if !offer {
                    return -1;
                }
                flookup = true;
            }
            b'f' | b'F' => force_f = true,
            b'r' | b'R' => real = true,
            b'c' | b'C' => commip = true,
            b'x' | b'X' => bridge = true,
            b'w' | b'W' => opts.push(b'S'),
            b'z' | b'Z' => {
                rep_opts.push(b'Z');
                while let Some(d) = flags.get(i + 1).filter(|d| d.is_ascii_digit()) {
                    rep_opts.push(*d);
                    i += 1;
                }
            }
            other => {
                crate::klog!(L_ERR, "rtpproxy", "unknown option `{}'", other as char);
                return -1;
            }
        }
        i += 1;
    }
    let Some(body) = sdp_body(c) else {
        crate::klog!(L_ERR, "rtpproxy", "can't extract body from the message");
        return -1;
    };
    let Some((callid, mut from_tag, mut to_tag)) = tags(c) else {
        crate::klog!(L_ERR, "rtpproxy", "can't get Call-Id, To or From tag");
        return -1;
    };
    let mut branch = None;
    if via != 0 {
        match via_branch(c, via) {
            Some(b) => branch = Some(b),
            None => {
                crate::klog!(L_ERR, "rtpproxy", "can't get Via branch");
                return -1;
            }
        }
    }
    let mut create = offer;
    if flookup {
        if to_tag.is_empty() {
            return -1;
        }
        if c.msg.is_request() {
            std::mem::swap(&mut from_tag, &mut to_tag);
        }
        create = false;
    } else if (c.msg.is_reply() && offer) || (c.msg.is_request() && !offer) {
        if to_tag.is_empty() {
            return -1;
        }
        std::mem::swap(&mut from_tag, &mut to_tag);
    }
    let end = sdp::trimmed_end(&body);
    let nortp = c.core.m.rtpproxy.nortpproxy.clone().unwrap_or_default();
    let proxied = !nortp.is_empty()
        && memchr::memmem::find_iter(&body[..end], &nortp[..])
            .any(|p| p > 0 && matches!(body[p - 1], b'\n' | b'\r'));
    if proxied && !force_f {
        return -2;
    }
    let sessions = sdp::parse(&body[..end]);
    let nstreams: usize = sessions.iter().map(|s| s.media.len()).sum();
    if nstreams == 0 {
        crate::klog!(L_ERR, "rtpproxy", "sdp w/o streams");
        return -1;
    }
    opts[0] = if create { b'U' } else { b'L' };
    let dst_ip = forced_ip.clone().unwrap_or_else(|| local_ip(c));
    let src_ip = c.rcv.src.ip();
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut medianum = 0;
    for s in &sessions {
        let mut c1_altered = false;
        let mut o_done = false;
        let o_addr = o_line_addr(&body[..end]);
        for m in &s.media {
            let Some(old) = m.c.as_ref().or(s.c.as_ref()) else {
                crate::klog!(L_ERR, "rtpproxy", "no connection address in SDP");
                return -1;
            };
            let Some((oldport_n, ps, pe)) = m.port else {
                crate::klog!(L_ERR, "rtpproxy", "bad m= line in SDP");
                return -1;
            };
            let _ = oldport_n;
            let oldip = &body[old.start..old.end];
            let oldport = &body[ps..pe];
            medianum += 1;
            let (cmd_ip, _cmd_pf): (Vec<u8>, sdp::Pf) = if real {
                (oldip.to_vec(), old.pf)
            } else {
                (
                    src_ip.to_string().into_bytes(),
                    if src_ip.is_ipv6() {
                        sdp::Pf::V6
                    } else {
                        sdp::Pf::V4
                    },
                )
            };
            if old.pf == sdp::Pf::V6 {
                if bridge {
                    opts.extend_from_slice(b"EI");
                    bridge = false;
                }
                opts.push(b'6');
            } else if bridge {
                opts.extend_from_slice(b"IE");
                bridge = false;
            }
            let payloads = payload_types(&body, m.start);
            let mut reply = None;
            while reply.is_none() {
                let Some(node) = select_node(c, &callid) else {
                    crate::klog!(L_ERR, "rtpproxy", "no available proxies");
                    return -3;
                };
                set_inst(c, node);
                let h = health(c, node);
                let mut cmd = opts.clone();
                if !rep_opts.is_empty() {
                    if h.rep_supported {
                        cmd.extend_from_slice(&rep_opts);
                    } else {
                        crate::klog!(
                            L_WARN,
                            "rtpproxy",
                            "re-packetization is requested but is not supported by the selected RTP proxy node"
                        );
                    }
                }
                if h.ptl_supported && !payloads.is_empty() {
                    cmd.push(b'c');
                    cmd.extend_from_slice(&payloads);
                }
                cmd.push(b' ');
                cmd.extend_from_slice(&callid);
                if let Some(b) = &branch {
                    cmd.push(b';');
                    cmd.extend_from_slice(b);
                }
                cmd.push(b' ');
                cmd.extend_from_slice(&cmd_ip);
                cmd.push(b' ');
                cmd.extend_from_slice(oldport);
                cmd.push(b' ');
                cmd.extend_from_slice(&from_tag);
                cmd.extend_from_slice(format!(";{medianum}").as_bytes());
                if !to_tag.is_empty() {
                    cmd.push(b' ');
                    cmd.extend_from_slice(&to_tag);
                    cmd.extend_from_slice(format!(";{medianum}").as_bytes());
                    if cmd.first() == Some(&b'U')
                        && let Some(ts) = &c.core.m.rtpproxy.timeout_socket
                    {
                        cmd.push(b' ');
                        cmd.extend_from_slice(ts);
                    }
                }
                reply = send_command(c, node, &cmd);
            }
            let reply = reply.unwrap_or_default();
            crate::klog!(L_DBG, "rtpproxy", "proxy reply: {}", reply.trim_end());
            let argv: Vec<&str> = reply.split_whitespace().take(10).collect();
            let Some(first) = argv.first() else {
                crate::klog!(L_ERR, "rtpproxy", "no reply from rtp proxy");
                return -1;
            };
            let port = atoi(first);
            if port <= 0 || port > 65535 {
                if port != 0 || !flookup {
                    crate::klog!(
                        L_ERR,
                        "rtpproxy",
                        "incorrect port {port} in reply from rtp proxy"
                    );
                }
                return -1;
            }
            let new_pf = match argv.len() {
                1 => {
                    if src_ip.is_ipv6() && !real {
                        sdp::Pf::V6
                    } else if real {
                        old.pf
                    } else {
                        sdp::Pf::V4
                    }
                }
                2 => sdp::Pf::V4,
                _ => {
                    if argv[2].starts_with('6') {
                        sdp::Pf::V6
                    } else {
                        sdp::Pf::V4
                    }
                }
            };
            let newip: Vec<u8> = if sdp::is_null_addr(oldip, old.pf) {
                if new_pf == sdp::Pf::V6 {
                    b"::".to_vec()
                } else {
                    b"0.0.0.0".to_vec()
                }
            } else if forced_ip.is_some() || argv.len() < 2 {
                dst_ip.to_vec()
            } else {
                argv[1].as_bytes().to_vec()
            };
            let newport = port.to_string().into_bytes();
            if oldport != b"0" && oldport != &newport[..] {
                edits.push((ps, pe, newport.clone()));
            }
            if let Some((rs, re)) = rtcp_port(&body[..end], m.start, m.end.min(end)) {
                let nr = (port + 1).to_string().into_bytes();
                if body[rs..re] != nr[..] {
                    edits.push((rs, re, nr));
                }
            }
            let target = if m.c.is_some() {
                m.c.as_ref()
            } else if !c1_altered {
                c1_altered = true;
                s.c.as_ref()
            } else {
                None
            };
            if let Some(t) = target {
                alter_ip(&body, t, &newip, new_pf, &mut edits);
            }
            if commip
                && !c1_altered
                && let Some(sc) = s.c.as_ref()
            {
                alter_ip(&body, sc, &newip, new_pf, &mut edits);
                c1_altered = true;
            }
            if !o_done {
                if let Some(oa) = o_addr.as_ref() {
                    alter_ip(&body, oa, &newip, new_pf, &mut edits);
                }
                o_done = true;
            }
        }
    }
    if !proxied && !nortp.is_empty() {
        let mut d = b"\r\n".to_vec();
        d.extend_from_slice(&nortp);
        edits.push((end, end, d));
    }
    let nb = sdp::apply(&body, &mut edits);
    c.msg.set_body(Bytes::from(nb));
    1
}

fn alter_ip(
    body: &[u8],
    old: &sdp::Addr,
    new: &[u8],
    new_pf: sdp::Pf,
    edits: &mut Vec<(usize, usize, Vec<u8>)>,
) {
    let oldip = &body[old.start..old.end];
    if old.pf == new_pf && sdp::is_null_addr(oldip, old.pf) {
        return;
    }
    if oldip == new {
        return;
    }
    if old.pf == new_pf {
        edits.push((old.start, old.end, new.to_vec()));
        return;
    }
    // Change the family too: "IP4 a" becomes "IP6 b".
    let mut s = old.start;
    while s > 0 && body[s - 1] != b'4' && body[s - 1] != b'6' {
        s -= 1;
    }
    let s = s.saturating_sub(1);
    let mut d = vec![if new_pf == sdp::Pf::V6 { b'6' } else { b'4' }, b' '];
    d.extend_from_slice(new);
    edits.push((s, old.end, d));
}

/// The address of the session's `o=` line (first one in the body).
fn o_line_addr(body: &[u8]) -> Option<sdp::Addr> {
    for (s, e) in sdp::lines(body) {
        if body[s..e].starts_with(b"o=") {
            return sdp::line_addr(body, s + 2, e);
        }
        if body[s..e].starts_with(b"m=") {
            break;
        }
    }
    None
}

/// The port of an `a=rtcp:` line inside a media section.
fn rtcp_port(body: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    for (s, e) in sdp::lines(&body[..end]) {
        if s < start {
            continue;
        }
        let line = &body[s..e];
        if let Some(rest) = line.strip_prefix(b"a=rtcp:") {
            let ps = s + 7;
            let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            if n > 0 {
                return Some((ps, ps + n));
            }
        }
    }
    None
}

/// The payload types of the `m=` line at `start`, comma-separated (`0,8,101`).
fn payload_types(body: &[u8], start: usize) -> Vec<u8> {
    let Some((s, e)) = sdp::lines(body).find(|(s, _)| *s == start) else {
        return Vec::new();
    };
    let line = &body[s..e];
    let toks: Vec<&[u8]> = line
        .split(|c| *c == b' ')
        .filter(|t| !t.is_empty())
        .collect();
    // m=<media> <port> <proto> <fmt>...; only RTP profiles carry payload numbers.
    if toks.len() < 4 || !toks[2].windows(3).any(|w| w.eq_ignore_ascii_case(b"RTP")) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for t in &toks[3..] {
        if t.iter().all(|c| c.is_ascii_digit()) {
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sock_params() {
        let (id, l) = parse_sock("udp:127.0.0.1:7722").unwrap();
        assert_eq!(id, 0);
        assert_eq!(l[0].1, NodeAddr::Udp("127.0.0.1:7722".parse().unwrap()));
        let (id, l) = parse_sock("2 == udp:127.0.0.1:7722=3 unix:/tmp/rtpp.sock").unwrap();
        assert_eq!(id, 2);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].2, 3);
        assert_eq!(l[1].1, NodeAddr::Unix("/tmp/rtpp.sock".into()));
        assert!(parse_sock("1 ==").is_err());
        assert!(parse_sock("x == udp:1.2.3.4:1").is_err());
    }

    #[test]
    fn sdp_parts() {
        let b =
            b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtcp:4001\r\n";
        let m = memchr::memmem::find(b, b"m=").unwrap();
        assert_eq!(payload_types(b, m), b"0,8,101");
        let (s, e) = rtcp_port(b, m, b.len()).unwrap();
        assert_eq!(&b[s..e], b"4001");
        let o = o_line_addr(b).unwrap();
        assert_eq!(&b[o.start..o.end], b"10.0.0.1");
        assert_eq!(atoi(" 20040107\n"), 20040107);
        assert_eq!(atoi("E1"), 0);
    }
}
