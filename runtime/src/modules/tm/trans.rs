//! The transaction table and the RFC 3261 state machine of tm: server transactions keyed by
//! the top Via branch (RFC 2543 fallback without the magic cookie), client branches keyed by
//! the branch id this proxy puts in its own Via, the timer heap the tm timer thread runs.
//!
//! Locking: the index maps are sharded `Mutex<HashMap>`s held only for a lookup or an
//! insert; each transaction has its own `Mutex`. Code that changes a transaction returns the
//! datagrams to send (`Vec<Out>`) and sends them after the lock is released; routing blocks
//! (branch_route, onreply_route, failure_route) are never run with a lock held.

use crate::ctx::{Ctx, MsgOpts, RecvInfo, SendFlags};
use crate::sip::{HdrKind, Method, SipMsg};
use crate::transport::{Destination, Proto};
use bytes::Bytes;
use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vm::Value;

pub type TxRef = Arc<Mutex<Tx>>;

const SHARDS: usize = 16;
/// Prefix of the Via branch ids of tm's client branches (after the magic cookie).
pub const BRANCH_PREFIX: &[u8] = b"z9hG4bKtm";

/// Module parameters.
#[derive(Clone, Debug)]
pub struct TmCfg {
    pub fr: Duration,
    pub fr_inv: Duration,
    pub t1: Duration,
    pub t2: Duration,
    pub wait: Duration,
    pub auto_inv_100: bool,
    pub auto_inv_100_reason: Bytes,
    pub remap_503_500: bool,
    /// `disable_6xx_block`: 6xx replies do not cancel the other branches by default.
    pub disable_6xx: bool,
    pub failure_reply_mode: i64,
    pub faked_reply_prio: i32,
    pub restart_fr_on_each_reply: bool,
    /// XAVP names of `t_load_contacts`/`t_next_contacts` (unset: the functions fail).
    pub contacts_avp: Option<Bytes>,
    pub contact_flows_avp: Option<Bytes>,
}

impl Default for TmCfg {
    fn default() -> Self {
        TmCfg {
            fr: Duration::from_millis(30000),
            fr_inv: Duration::from_millis(120000),
            t1: Duration::from_millis(500),
            t2: Duration::from_millis(4000),
            wait: Duration::from_millis(5000),
            auto_inv_100: true,
            auto_inv_100_reason: Bytes::from_static(b"trying -- your call is important to us"),
            remap_503_500: true,
            disable_6xx: false,
            failure_reply_mode: 3,
            faked_reply_prio: 0,
            restart_fr_on_each_reply: true,
            contacts_avp: None,
            contact_flows_avp: None,
        }
    }
}

/// Counters for `tm.stats`.
#[derive(Default)]
pub struct Stats {
    pub created: AtomicU64,
    pub freed: AtomicU64,
    pub local: AtomicU64,
    pub rpl_received: AtomicU64,
    pub rpl_generated: AtomicU64,
    pub rpl_sent: AtomicU64,
    pub by_class: [AtomicU64; 7],
}

/// Server-transaction key: branch (with sent-by) or the RFC 2543 identifiers, and the
/// method class (INVITE and ACK share the INVITE class; CANCEL looks the INVITE up).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TKey {
    id: Bytes,
    class: Bytes,
}

/// The request's key, with `class` chosen by the caller.
pub fn key_of(msg: &SipMsg, class: &[u8]) -> Option<TKey> {
    let v = msg.via1().ok()?;
    let mut id = Vec::with_capacity(64);
    match v.branch() {
        Some(b) if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"z9hG4bK") => {
            id.extend_from_slice(b);
            id.push(0);
            id.extend(v.host.iter().map(u8::to_ascii_lowercase));
            id.extend_from_slice(v.port.unwrap_or(0).to_string().as_bytes());
        }
        _ => {
            // RFC 2543: Call-ID, CSeq number, From tag, Request-URI and top Via.
            id.push(1);
            id.extend_from_slice(msg.callid()?);
            id.push(0);
            id.extend_from_slice(msg.cseq().ok()?.number.to_string().as_bytes());
            id.push(0);
            if let Some(t) = msg.from().ok().and_then(|f| f.tag()) {
                id.extend_from_slice(t);
            }
            id.push(0);
            id.extend_from_slice(msg.ruri_orig()?);
            id.push(0);
            id.extend_from_slice(&v.raw);
        }
    }
    Some(TKey {
        id: Bytes::from(id),
        class: Bytes::copy_from_slice(class),
    })
}

/// Key class of a request method: ACK and CANCEL find their INVITE.
pub fn class_of(msg: &SipMsg) -> Bytes {
    match msg.method() {
        Method::Invite | Method::Ack | Method::Cancel => Bytes::from_static(b"INVITE"),
        _ => msg.method_raw().clone(),
    }
}

/// What failure_route and the transaction hooks get back: the request-route context at
/// the time of `t_relay`.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub flags: u64,
    pub bflags: u64,
    pub avps: Vec<(Bytes, Value)>,
    pub xavps: crate::modules::pv::xavp::XavpList,
    pub xavus: crate::modules::pv::xavp::XavpList,
    pub xavis: crate::modules::pv::xavp::XavpList,
    /// corex's extended and internal flags (kept with the request, as Kamailio's).
    pub corex: crate::modules::corex::CorexCtx,
    pub dst_uri: Option<Bytes>,
    pub path_vec: Option<Bytes>,
    pub force_socket: Option<usize>,
    pub opts: MsgOpts,
    pub send_flags: SendFlags,
}

impl Snapshot {
    pub fn take(ctx: &Ctx) -> Snapshot {
        Snapshot {
            flags: ctx.flags,
            bflags: ctx.bflags,
            avps: ctx.avps.clone(),
            xavps: ctx.xavps.clone(),
            xavus: ctx.xavus.clone(),
            xavis: ctx.xavis.clone(),
            corex: ctx.corex,
            dst_uri: ctx.dst_uri.clone(),
            path_vec: ctx.path_vec.clone(),
            force_socket: ctx.force_socket,
            opts: ctx.opts.clone(),
            send_flags: ctx.send_flags,
        }
    }
}

/// One client branch.
pub struct UacBranch {
    pub uri: Bytes,
    pub dst: Destination,
    /// The request as sent (for retransmissions, CANCEL and ACK).
    pub sent: Bytes,
    /// Our Via header line for this branch.
    pub via: Bytes,
    /// Last status received (or faked); 0 = none yet.
    pub code: u16,
    pub reply: Option<SipMsg>,
    /// The final status was produced locally (timeout, cancel).
    pub local: bool,
    pub is_final: bool,
    pub timed_out: bool,
    /// At least one reply was received on this branch.
    pub replied: bool,
    pub cancel_sent: bool,
    pub retr_interval: Duration,
    pub fr_deadline: Instant,
    pub flags: u64,
    /// Its reply was discarded after a failure_route (`failure_reply_mode`,
    /// `t_drop_replies`): no longer a candidate for the reply sent upstream.
    pub dropped: bool,
}

impl UacBranch {
    pub fn provisional(&self) -> bool {
        self.code >= 100 && self.code < 200
    }
}

pub struct Tx {
    pub id: u64,
    pub key: Option<TKey>,
    pub method: Method,
    /// The request as it was when `t_relay` ran (with the script's changes as edits).
    pub req: SipMsg,
    pub rcv: RecvInfo,
    pub reply_dst: Destination,
    pub to_tag: Bytes,
    pub snap: Snapshot,
    pub on_failure: Option<Bytes>,
    pub on_reply: Option<Bytes>,
    pub on_branch: Option<Bytes>,
    pub on_branch_failure: Option<Bytes>,
    pub fr: Duration,
    pub fr_inv: Duration,
    /// Status of the last reply sent upstream (0 = none).
    pub uas_status: u16,
    pub uas_reply: Option<Bytes>,
    pub branches: Vec<UacBranch>,
    /// First branch of the current forking round (serial forking from failure_route).
    pub first_branch: usize,
    pub canceled: bool,
    pub in_failure: bool,
    pub acked: bool,
    pub deleted: bool,
    pub reply_retr: Duration,
    pub reply_retr_count: u32,
    pub auto_inv_100: bool,
    /// `t_set_disable_6xx(1)`: a 6xx is a negative reply like any other.
    pub disable_6xx: bool,
    /// A 6xx arrived while branches were pending: they are being cancelled (Kamailio's
    /// `T_6xx`; cleared once every branch is final so failure_route may fork again).
    pub got_6xx: bool,
    /// Completion hooks already ran.
    pub completed: bool,
}

impl Tx {
    pub fn is_invite(&self) -> bool {
        self.method == Method::Invite
    }

    pub fn branch_id(&self, idx: usize) -> String {
        format!("z9hG4bKtm{:x}.{idx}", self.id)
    }

    /// The branch to relay upstream when all branches of the round are final (RFC 3261
    /// 16.7 with Kamailio's priorities: 6xx, then 3xx, 4xx with 401/407/415/420/484 first,
    /// 5xx; faked replies after received ones when `faked_reply_prio` says so). `None`
    /// while a branch is still pending.
    pub fn pick_branch(&self, faked_prio: i32) -> Option<usize> {
        let mut best: Option<(i32, usize)> = None;
        for (i, b) in self.branches.iter().enumerate().filter(|(_, b)| !b.dropped) {
            if !b.is_final {
                return None;
            }
            let mut p = prio(b.code);
            if b.local {
                p += faked_prio;
            }
            if best.is_none_or(|(bp, _)| p < bp) {
                best = Some((p, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

fn prio(code: u16) -> i32 {
    let class = code / 100;
    let xx = (code % 100) as i32;
    match class {
        2 => xx,
        3 => 3000 + xx,
        4 => {
            4000 + match xx {
                1 | 7 | 15 | 20 | 84 => xx,
                _ => 100 + xx,
            }
        }
        5 => 5000 + xx,
        6 => 1000 + xx,
        0 => 32000 + xx,
        1 => 11000 + xx,
        _ => 10000 + code as i32,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ev {
    Retr(usize),
    Fr(usize),
    ReplyRetr,
    Delete,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct TimerEntry {
    at: Instant,
    seq: u64,
    id: u64,
    ev: Ev,
}

/// A datagram to send once the transaction lock is released.
pub struct Out {
    pub dst: Destination,
    pub data: Bytes,
}

pub struct TmState {
    pub cfg: TmCfg,
    by_key: Vec<Mutex<HashMap<TKey, TxRef>>>,
    by_id: Vec<Mutex<HashMap<u64, TxRef>>>,
    next_id: AtomicU64,
    timers: Mutex<BinaryHeap<Reverse<TimerEntry>>>,
    seq: AtomicU64,
    pub stats: Stats,
}

impl Default for TmState {
    fn default() -> Self {
        TmState {
            cfg: TmCfg::default(),
            by_key: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            by_id: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            next_id: AtomicU64::new(1),
            timers: Mutex::new(BinaryHeap::new()),
            seq: AtomicU64::new(0),
            stats: Stats::default(),
        }
    }
}

fn shard_of<K: Hash>(k: &K) -> usize {
    let mut h = ahash::AHasher::default();
    k.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

/// Result of trying to create a server transaction.
pub enum NewTx {
    Created(TxRef),
    /// A transaction for this request exists already (retransmission).
    Exists(TxRef),
}

impl TmState {
    pub fn lookup(&self, key: &TKey) -> Option<TxRef> {
        self.by_key.get(shard_of(key))?.lock().get(key).cloned()
    }

    pub fn by_id(&self, id: u64) -> Option<TxRef> {
        self.by_id
            .get(id as usize % SHARDS)?
            .lock()
            .get(&id)
            .cloned()
    }

    /// Creates and indexes a transaction unless one with the same key exists.
    pub fn insert(&self, key: TKey, make: impl FnOnce(u64) -> Tx) -> NewTx {
        let Some(shard) = self.by_key.get(shard_of(&key)) else {
            // Unreachable (shard_of is modulo SHARDS); keep a total answer.
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            return NewTx::Created(Arc::new(Mutex::new(make(id))));
        };
        let mut map = shard.lock();
        if let Some(t) = map.get(&key) {
            return NewTx::Exists(t.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut tx = make(id);
        tx.key = Some(key.clone());
        let t = Arc::new(Mutex::new(tx));
        map.insert(key, t.clone());
        drop(map);
        if let Some(s) = self.by_id.get(id as usize % SHARDS) {
            s.lock().insert(id, t.clone());
        }
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        NewTx::Created(t)
    }

    /// Removes a transaction from both indexes.
    pub fn remove(&self, id: u64, key: Option<&TKey>) {
        if let Some(k) = key
            && let Some(s) = self.by_key.get(shard_of(k))
        {
            let mut map = s.lock();
            // Only if it is still this transaction under the key.
            if map.get(k).is_some_and(|t| t.lock().id == id) {
                map.remove(k);
            }
        }
        if let Some(s) = self.by_id.get(id as usize % SHARDS)
            && s.lock().remove(&id).is_some()
        {
            self.stats.freed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The first live transaction `f` accepts (a scan: for rare lookups such as
    /// `t_reply_callid`).
    pub fn find(&self, f: impl Fn(&Tx) -> bool) -> Option<TxRef> {
        for s in &self.by_id {
            let candidates: Vec<TxRef> = s.lock().values().cloned().collect();
            for t in candidates {
                if f(&t.lock()) {
                    return Some(t);
                }
            }
        }
        None
    }

    pub fn current(&self) -> usize {
        self.by_id.iter().map(|s| s.lock().len()).sum()
    }

    pub fn schedule(&self, id: u64, ev: Ev, after: Duration) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.timers.lock().push(Reverse(TimerEntry {
            at: Instant::now() + after,
            seq,
            id,
            ev,
        }));
    }

    /// Pops the next timer event due at `now`.
    pub fn pop_due(&self, now: Instant) -> Option<(u64, Ev)> {
        let mut h = self.timers.lock();
        match h.peek() {
            Some(Reverse(e)) if e.at <= now => h.pop().map(|Reverse(e)| (e.id, e.ev)),
            _ => None,
        }
    }

    /// When the next timer is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.lock().peek().map(|Reverse(e)| e.at)
    }

    pub fn count_reply(&self, code: u16) {
        if let Some(c) = self.stats.by_class.get((code / 100) as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Parses one of our branch ids: (transaction id, branch index).
pub fn parse_branch(b: &[u8]) -> Option<(u64, usize)> {
    let rest = b.strip_prefix(BRANCH_PREFIX)?;
    let s = std::str::from_utf8(rest).ok()?;
    let (id, idx) = s.split_once('.')?;
    Some((u64::from_str_radix(id, 16).ok()?, idx.parse().ok()?))
}

/// Builds the ACK (`cancel == false`, for a negative final reply with `reply_to`) or the
/// CANCEL for a branch from the request sent on it (RFC 3261 17.1.1.3 and 9.1). Like
/// Kamailio's tm (`reparse_invite`), the headers keep the order and spelling they had in the
/// INVITE: our Via, Route, Max-Forwards, From, To (the reply's for an ACK), Call-ID, CSeq with
/// the method replaced, and Content-Length set to 0; everything else is left out.
pub fn build_ack_or_cancel(sent: &[u8], reply_to: Option<&[u8]>, cancel: bool) -> Option<Bytes> {
    let req = SipMsg::parse(Bytes::copy_from_slice(sent)).ok()?;
    let method: &[u8] = if cancel { b"CANCEL" } else { b"ACK" };
    let mut out = Vec::with_capacity(sent.len().min(1024));
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(req.ruri_orig()?);
    out.extend_from_slice(b" SIP/2.0\r\n");
    let buf = req.buf();
    let line = |h: &crate::sip::Header| buf.get(h.start..h.end).unwrap_or(&[]);
    let mut first_via = true;
    for h in req.headers() {
        match h.kind {
            // Only our own (top) Via line.
            HdrKind::Via if first_via => {
                first_via = false;
                out.extend_from_slice(line(h));
            }
            HdrKind::Route | HdrKind::MaxForwards | HdrKind::From | HdrKind::CallId => {
                out.extend_from_slice(line(h))
            }
            HdrKind::To => match reply_to {
                Some(t) => {
                    out.extend_from_slice(b"To: ");
                    out.extend_from_slice(t);
                    out.extend_from_slice(b"\r\n");
                }
                None => out.extend_from_slice(line(h)),
            },
            HdrKind::CSeq => {
                // Name, colon and number as written, then the new method.
                let l = line(h);
                let keep = l
                    .iter()
                    .skip(h.name.len())
                    .position(|&c| !matches!(c, b':' | b' ' | b'\t' | b'0'..=b'9'))
                    .map_or(l.len(), |p| p + h.name.len());
                out.extend_from_slice(l.get(..keep).unwrap_or(l));
                out.extend_from_slice(method);
                out.extend_from_slice(b"\r\n");
            }
            HdrKind::ContentLength => {
                out.extend_from_slice(&h.name);
                out.extend_from_slice(b": 0\r\n");
            }
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    Some(Bytes::from(out))
}

/// Destination of a request over `proto` to `addr`, from `listener`.
pub fn dest(proto: Proto, addr: std::net::SocketAddr, listener: Option<usize>) -> Destination {
    let mut d = Destination::new(proto, addr);
    d.listener = listener;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(raw: &str) -> SipMsg {
        SipMsg::parse(Bytes::from(raw.to_string())).unwrap()
    }

    #[test]
    fn keys_match_retransmissions_ack_and_cancel() {
        let inv = msg(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKabc\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        let cancel = msg(
            "CANCEL sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKabc\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
        );
        let bye = msg(
            "BYE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKabc\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        );
        let ki = key_of(&inv, &class_of(&inv)).unwrap();
        assert_eq!(ki, key_of(&cancel, &class_of(&cancel)).unwrap());
        assert_ne!(ki, key_of(&bye, &class_of(&bye)).unwrap());
        // RFC 2543 requests (no cookie) match on the dialog identifiers.
        let old = "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let ack = old
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK");
        assert_eq!(key_of(&msg(old), b"INVITE"), key_of(&msg(&ack), b"INVITE"));
    }

    #[test]
    fn branch_ids_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_branch(b"z9hG4bKtm1f.3"), Some((0x1f, 3)));
        assert_eq!(parse_branch(b"z9hG4bKtm.3"), None);
        assert_eq!(parse_branch(b"z9hG4bKtmzz.1"), None);
        assert_eq!(parse_branch(b"z9hG4bKsl12"), None);
        assert_eq!(parse_branch(b""), None);
    }

    #[test]
    fn best_reply_follows_kamailio_priorities() {
        let mut v = vec![486u16, 603, 500];
        v.sort_by_key(|c| prio(*c));
        assert_eq!(v, vec![603, 486, 500]);
        let mut v = vec![404u16, 407, 302];
        v.sort_by_key(|c| prio(*c));
        assert_eq!(v, vec![302, 407, 404]);
    }

    #[test]
    fn ack_and_cancel_copy_the_right_headers() {
        let sent = "INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtm1.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nRoute: <sip:r@h;lr>\r\nMax-Forwards: 69\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nRequire: 100rel\r\nContact: <sip:a@1.2.3.4>\r\nContent-Type: application/sdp\r\nl: 4\r\n\r\nv=0\n";
        // Kamailio's layout (reparse_invite): the INVITE's order and spelling.
        let c = build_ack_or_cancel(sent.as_bytes(), None, true).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&c),
            "CANCEL sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtm1.0\r\nRoute: <sip:r@h;lr>\r\nMax-Forwards: 69\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 7 CANCEL\r\nl: 0\r\n\r\n"
        );
        let ack = build_ack_or_cancel(sent.as_bytes(), Some(b"<sip:b@h>;tag=x"), false).unwrap();
        let a = String::from_utf8_lossy(&ack);
        assert!(a.starts_with("ACK sip:b@10.0.0.2 SIP/2.0\r\n"), "{a}");
        assert!(a.contains("CSeq: 7 ACK\r\n") && a.contains("To: <sip:b@h>;tag=x\r\n"));
        assert!(!a.contains("1.2.3.4;branch") && a.contains("Route: <sip:r@h;lr>"));
        let c = build_ack_or_cancel(sent.as_bytes(), None, true).unwrap();
        let c = String::from_utf8_lossy(&c);
        assert!(c.contains("CSeq: 7 CANCEL\r\n") && c.contains("To: <sip:b@h>\r\n"));
        assert!(build_ack_or_cancel(b"garbage", None, true).is_none());
    }
}
