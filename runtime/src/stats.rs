//! Statistics counters (Kamailio's `core:rcv_requests`, `sl:200_replies`, ...), read with the
//! `stats.*` RPC commands.
//!
//! Modules declare their counters by name while registering ([`StatsRegistry::add`]); the
//! values live in one array of atomics in the [`Core`](crate::Core), addressed by
//! [`StatId`], so counting is one relaxed atomic add.

use crate::sip::Method;
use std::sync::atomic::{AtomicU64, Ordering};

/// Index of a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatId(pub u32);

/// Counter names, as declared by the core and the loaded modules.
#[derive(Default)]
pub struct StatsRegistry {
    names: Vec<(&'static str, String)>,
}

impl StatsRegistry {
    /// A registry holding the core's own counters at their fixed ids.
    pub fn with_core() -> StatsRegistry {
        let mut r = StatsRegistry::default();
        for n in CORE_SCALARS {
            r.add("core", n);
        }
        for (_, m) in METHODS {
            r.add("core", &format!("rcv_requests_{m}"));
        }
        for class in 1..=6 {
            r.add("core", &format!("rcv_replies_{class}xx"));
            for (_, m) in REPLY_METHODS {
                r.add("core", &format!("rcv_replies_{class}xx_{m}"));
            }
        }
        for code in CORE_REPLY_CODES {
            r.add("core", &format!("rcv_replies_{code}"));
        }
        r
    }

    /// Declares counter `group:name`; declaring it again returns the same id.
    pub fn add(&mut self, group: &'static str, name: &str) -> StatId {
        if let Some(i) = self.find(group, name) {
            return i;
        }
        self.names.push((group, name.to_string()));
        StatId(self.names.len() as u32 - 1)
    }

    pub fn find(&self, group: &str, name: &str) -> Option<StatId> {
        self.names
            .iter()
            .position(|(g, n)| *g == group && n == name)
            .map(|i| StatId(i as u32))
    }

    pub fn into_stats(self) -> Stats {
        let values = self.names.iter().map(|_| AtomicU64::new(0)).collect();
        Stats {
            names: self.names,
            values,
        }
    }
}

/// The counters of a running server.
pub struct Stats {
    names: Vec<(&'static str, String)>,
    values: Box<[AtomicU64]>,
}

impl Stats {
    #[inline]
    pub fn inc(&self, id: StatId) {
        self.add(id, 1);
    }

    #[inline]
    pub fn add(&self, id: StatId, n: u64) {
        if let Some(v) = self.values.get(id.0 as usize) {
            v.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self, id: StatId) -> u64 {
        self.values
            .get(id.0 as usize)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }

    pub fn reset(&self, id: StatId) {
        if let Some(v) = self.values.get(id.0 as usize) {
            v.store(0, Ordering::Relaxed);
        }
    }

    pub fn find(&self, group: &str, name: &str) -> Option<StatId> {
        self.names
            .iter()
            .position(|(g, n)| *g == group && n == name)
            .map(|i| StatId(i as u32))
    }

    /// Counters selected the way `stats.get_statistics` takes them: `all`, `group:` (a whole
    /// group), `group:name`, or a bare `name` searched in every group. Sorted by group, name.
    pub fn select(&self, what: &str) -> Vec<(StatId, &str, &str)> {
        let mut out: Vec<(StatId, &str, &str)> = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, (g, n))| match what.split_once(':') {
                _ if what == "all" => true,
                Some((grp, "")) => *g == grp,
                Some((grp, name)) => *g == grp && n == name,
                None => n == what,
            })
            .map(|(i, (g, n))| (StatId(i as u32), *g, n.as_str()))
            .collect();
        out.sort_by(|a, b| (a.1, a.2).cmp(&(b.1, b.2)));
        out
    }

    // ---- the core's counters ----

    pub fn request_received(&self, method: Method) {
        self.inc(core_id(CoreStat::RcvRequests));
        if let Some(i) = METHODS.iter().position(|(m, _)| *m == method) {
            self.inc(StatId((CORE_SCALARS.len() + i) as u32));
        }
    }

    pub fn reply_received(&self, code: u16, cseq_method: Method) {
        self.inc(core_id(CoreStat::RcvReplies));
        let class = (code / 100) as usize;
        if !(1..=6).contains(&class) {
            return;
        }
        let base = CORE_SCALARS.len() + METHODS.len() + (class - 1) * (1 + REPLY_METHODS.len());
        self.inc(StatId(base as u32));
        if let Some(i) = REPLY_METHODS.iter().position(|(m, _)| *m == cseq_method) {
            self.inc(StatId((base + 1 + i) as u32));
        }
        let codes = CORE_SCALARS.len() + METHODS.len() + 6 * (1 + REPLY_METHODS.len());
        let code_text = code.to_string();
        if let Some(i) = CORE_REPLY_CODES
            .iter()
            .position(|c| *c == code_text || (c.ends_with('x') && code_text.starts_with(&c[..2])))
        {
            self.inc(StatId((codes + i) as u32));
        }
    }

    pub fn core(&self, s: CoreStat) {
        self.inc(core_id(s));
    }
}

/// The core's scalar counters, in their fixed order.
#[derive(Clone, Copy, Debug)]
pub enum CoreStat {
    RcvRequests = 0,
    RcvReplies,
    FwdRequests,
    FwdReplies,
    DropRequests,
    DropReplies,
    ErrRequests,
    ErrReplies,
    BadUrisRcvd,
    UnsupportedMethods,
    BadMsgHdr,
}

const CORE_SCALARS: [&str; 11] = [
    "rcv_requests",
    "rcv_replies",
    "fwd_requests",
    "fwd_replies",
    "drop_requests",
    "drop_replies",
    "err_requests",
    "err_replies",
    "bad_URIs_rcvd",
    "unsupported_methods",
    "bad_msg_hdr",
];

fn core_id(s: CoreStat) -> StatId {
    StatId(s as u32)
}

const METHODS: [(Method, &str); 14] = [
    (Method::Invite, "invite"),
    (Method::Cancel, "cancel"),
    (Method::Ack, "ack"),
    (Method::Bye, "bye"),
    (Method::Info, "info"),
    (Method::Register, "register"),
    (Method::Subscribe, "subscribe"),
    (Method::Notify, "notify"),
    (Method::Message, "message"),
    (Method::Options, "options"),
    (Method::Prack, "prack"),
    (Method::Update, "update"),
    (Method::Refer, "refer"),
    (Method::Publish, "publish"),
];
const REPLY_METHODS: [(Method, &str); 8] = [
    (Method::Invite, "invite"),
    (Method::Cancel, "cancel"),
    (Method::Bye, "bye"),
    (Method::Register, "reg"),
    (Method::Message, "message"),
    (Method::Prack, "prack"),
    (Method::Update, "update"),
    (Method::Refer, "refer"),
];
const CORE_REPLY_CODES: [&str; 6] = ["18x", "401", "404", "407", "480", "486"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_counters_and_selection() {
        let s = StatsRegistry::with_core().into_stats();
        s.request_received(Method::Invite);
        s.request_received(Method::Options);
        s.reply_received(183, Method::Invite);
        s.reply_received(486, Method::Invite);
        s.reply_received(200, Method::Register);
        let val = |name: &str| s.select(name).first().map(|(id, _, _)| s.get(*id));
        assert_eq!(val("core:rcv_requests"), Some(2));
        assert_eq!(val("rcv_requests_invite"), Some(1));
        assert_eq!(val("rcv_replies"), Some(3));
        assert_eq!(val("rcv_replies_1xx_invite"), Some(1));
        assert_eq!(val("rcv_replies_18x"), Some(1));
        assert_eq!(val("rcv_replies_486"), Some(1));
        assert_eq!(val("rcv_replies_2xx_reg"), Some(1));
        assert_eq!(val("rcv_replies_4xx"), Some(1));
        assert!(s.select("nosuch").is_empty());
        let core = s.select("core:");
        assert!(core.windows(2).all(|w| w[0].2 <= w[1].2));
        assert_eq!(s.select("all").len(), core.len());
    }
}
