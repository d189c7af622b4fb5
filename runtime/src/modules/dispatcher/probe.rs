//! Probing: every `ds_ping_interval` seconds a `ds_ping_method` request (OPTIONS) goes to
//! each destination chosen by `ds_probing_mode` / the probing flag, from a SIP listener. A
//! final reply 2xx (or one listed in `ds_ping_reply_codes`) makes it active again, any
//! other reply or no final reply within tm's `fr_timer` makes it "trying" (inactive after
//! `ds_probing_threshold` such results), as Kamailio's keepalive callback does. Requests
//! are sent without a transaction (no retransmissions); their replies are consumed by the
//! `reply_received` hook.

use super::list::{DS_DISABLED, DS_INACTIVE, DS_PROBING, DS_TRYING};
use crate::ctx::Ctx;
use crate::log::{L_DBG, L_ERR};
use crate::transport::{Destination, Proto};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Branch prefix of keepalives (replies carrying it are ours).
const BRANCH_PREFIX: &str = "z9hG4bKdsping";

struct Pending {
    group: i32,
    uri: Bytes,
    deadline: Instant,
}

#[derive(Default)]
pub struct Prober {
    pending: Mutex<HashMap<String, Pending>>,
    seq: AtomicU64,
}

/// `ds_ping_reply_codes`: `class=N` (N*100..N*100+99) and `code=NNN` entries.
pub fn parse_reply_codes(s: &str) -> Result<Vec<(bool, i32)>, String> {
    let mut out = Vec::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (n, v) = part
            .split_once('=')
            .ok_or_else(|| format!("bad ds_ping_reply_codes entry '{part}'"))?;
        let v: i32 = v
            .trim()
            .parse()
            .map_err(|_| format!("bad ds_ping_reply_codes value '{part}'"))?;
        match n.trim().to_ascii_lowercase().as_str() {
            "class" => out.push((true, v)),
            "code" => out.push((false, v)),
            _ => return Err(format!("bad ds_ping_reply_codes entry '{part}'")),
        }
    }
    Ok(out)
}

fn code_accepted(codes: &[(bool, i32)], code: i32) -> bool {
    (200..=299).contains(&code)
        || codes.iter().any(
            |(class, v)| {
                if *class { code / 100 == *v } else { code == *v }
            },
        )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Applies the result of one keepalive (Kamailio's `ds_options_callback`).
fn result(c: &Ctx, group: i32, uri: &[u8], code: i32) {
    let st = &c.core.m.dispatcher;
    let cur = super::state_of(c.core, group, uri);
    let Some(cur) = cur else { return };
    if st.probing_mode == 3 && cur & DS_PROBING == 0 {
        return;
    }
    if cur & DS_DISABLED != 0 {
        return;
    }
    let state = if code_accepted(&st.ping_reply_codes, code) {
        if st.probing_mode == 1 || (st.probing_mode == 3 && cur & DS_PROBING != 0) {
            DS_PROBING
        } else {
            0
        }
    } else if st.probing_mode != 0 {
        DS_TRYING | DS_PROBING
    } else {
        DS_TRYING
    };
    crate::klog!(
        L_DBG,
        "dispatcher",
        "keepalive to {} (group {group}) finished with {code}",
        String::from_utf8_lossy(uri)
    );
    if super::update_state(c.core, group, uri, state) != 0 {
        crate::klog!(
            L_ERR,
            "dispatcher",
            "Setting the state failed ({}, group {group})",
            String::from_utf8_lossy(uri)
        );
    }
}

/// Whether a destination is pinged (Kamailio's `ds_ping_result_helper`).
fn wanted(mode: i64, flags: i32) -> bool {
    if flags & DS_DISABLED != 0 {
        return false;
    }
    match mode {
        1 => true,
        2 => flags & DS_PROBING != 0 && flags & DS_INACTIVE != 0,
        _ => flags & DS_PROBING != 0,
    }
}

fn send_ping(c: &Ctx, group: i32, d: &super::list::Dest) -> bool {
    let st = &c.core.m.dispatcher;
    let Some(ip) = d.ip else {
        return false;
    };
    let proto = d.proto.unwrap_or(Proto::Udp);
    let port = if d.port != 0 {
        d.port
    } else if proto == Proto::Tls {
        5061
    } else {
        5060
    };
    let mut dst = Destination::new(proto, SocketAddr::new(ip, port));
    let listeners = c.core.sender.listeners();
    let Some(li) = crate::transport::choose_listener(listeners, &dst) else {
        return false;
    };
    let Some(l) = listeners.get(li) else {
        return false;
    };
    dst.listener = Some(li);
    let n = st.prober.seq.fetch_add(1, Ordering::Relaxed);
    let branch = format!("{BRANCH_PREFIX}{:x}.{n:x}", std::process::id());
    let from = if d.attrs.ping_from.is_empty() {
        &st.ping_from
    } else {
        &d.attrs.ping_from
    };
    let uri = String::from_utf8_lossy(&d.uri);
    let method = &st.ping_method;
    let msg = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/{} {}:{};branch={branch}\r\n\
         To: <{uri}>\r\nFrom: <{from}>;tag={n:x}-ds\r\nCSeq: 10 {method}\r\n\
         Call-ID: dsping-{:x}-{n:x}@{}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        l.proto.via_name(),
        l.host_for_headers(),
        l.port_for_headers(),
        std::process::id(),
        l.host_for_headers(),
    );
    let fr = c.core.m.tm.cfg.fr;
    lock(&st.prober.pending).insert(
        branch,
        Pending {
            group,
            uri: d.uri.clone(),
            deadline: Instant::now() + fr,
        },
    );
    match c.core.sender.send(&dst, msg.as_bytes()) {
        Ok(_) => true,
        Err(e) => {
            crate::klog!(
                L_ERR,
                "dispatcher",
                "unable to ping [{uri}] in group [{group}]: {e}"
            );
            false
        }
    }
}

/// One probing round: expired keepalives count as 408, then new ones go out.
fn round(c: &Ctx) {
    let st = &c.core.m.dispatcher;
    let now = Instant::now();
    let expired: Vec<Pending> = {
        let mut p = lock(&st.prober.pending);
        let keys: Vec<String> = p
            .iter()
            .filter(|(_, v)| v.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| p.remove(k)).collect()
    };
    for e in expired {
        result(c, e.group, &e.uri, 408);
    }
    let lst = st.current();
    for set in &lst.sets {
        let flags = set.rt().flags.clone();
        for (j, d) in set.dests.iter().enumerate() {
            if !wanted(st.probing_mode, flags[j]) {
                continue;
            }
            if !send_ping(c, set.id, d) {
                let state = if st.probing_mode != 0 {
                    DS_TRYING | DS_PROBING
                } else {
                    DS_TRYING
                };
                if super::update_state(c.core, set.id, &d.uri, state) != 0 {
                    crate::klog!(L_ERR, "dispatcher", "Setting the probing state failed");
                }
            }
        }
    }
}

/// The probing thread: a round every `ds_ping_interval` seconds; expiries are checked
/// more often so a timeout is not counted later than tm would.
pub fn thread(c: &mut Ctx) {
    let interval = c.core.m.dispatcher.ping_interval;
    if interval.is_zero() {
        return;
    }
    let mut next = Instant::now() + interval;
    while !c.core.shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        if now >= next {
            round(c);
            next = now + interval;
        } else {
            expire(c, now);
        }
    }
}

fn expire(c: &Ctx, now: Instant) {
    let st = &c.core.m.dispatcher;
    let expired: Vec<Pending> = {
        let mut p = lock(&st.prober.pending);
        if p.is_empty() {
            return;
        }
        let keys: Vec<String> = p
            .iter()
            .filter(|(_, v)| v.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| p.remove(k)).collect()
    };
    for e in expired {
        result(c, e.group, &e.uri, 408);
    }
}

/// `reply_received` hook: consumes replies to keepalives.
pub fn on_reply(c: &mut Ctx) -> bool {
    let st = &c.core.m.dispatcher;
    if st.ping_interval.is_zero() {
        return false;
    }
    let Ok(v) = c.msg.via1() else {
        return false;
    };
    let Some(b) = v.branch() else {
        return false;
    };
    if !b.starts_with(BRANCH_PREFIX.as_bytes()) {
        return false;
    }
    let key = String::from_utf8_lossy(b).into_owned();
    let code = c.msg.status().unwrap_or(0) as i32;
    if code < 200 {
        return true;
    }
    let p = lock(&st.prober.pending).remove(&key);
    if let Some(p) = p {
        result(c, p.group, &p.uri, code);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes() {
        let c = parse_reply_codes("class=3;code=403;code=488").unwrap();
        assert!(code_accepted(&c, 200));
        assert!(code_accepted(&c, 302));
        assert!(code_accepted(&c, 403));
        assert!(!code_accepted(&c, 404));
        assert!(parse_reply_codes("foo=1").is_err());
        assert!(wanted(1, 0));
        assert!(!wanted(0, 0));
        assert!(wanted(0, DS_PROBING));
        assert!(!wanted(2, DS_PROBING));
        assert!(wanted(2, DS_PROBING | DS_INACTIVE));
        assert!(!wanted(1, DS_DISABLED));
    }
}
