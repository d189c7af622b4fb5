//! DNS SRV lookups for next hops (RFC 3263 §4.2): a name without a port is looked up as
//! `_sip._udp.NAME` (`_sip._tcp`, `_sips._tcp` by transport); the targets are tried in
//! priority order, and by weight within a priority (randomly weighted when `dns_srv_lb` is
//! on, highest weight first otherwise); a name without SRV records falls back to A/AAAA on
//! the default port, as in Kamailio. Answers are cached for their TTL; failures for a minute.
//!
//! A/AAAA go through the system resolver (so /etc/hosts applies); SRV queries are sent to
//! the first `nameserver` of /etc/resolv.conf (or `KSR_DNS_SERVER=ip:port`, used by tests).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

const T_SRV: u16 = 33;

/// `dns_srv_lb`: weighted random choice among SRV records of equal priority. Process-wide
/// like Kamailio's core setting; set once at start-up.
pub static SRV_LB: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A cheap per-thread pseudo-random number in `0..n` (load balancing needs no more).
pub fn rand_below(n: u32) -> u32 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            (std::process::id() as u64) << 32
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        if n == 0 { 0 } else { (x % n as u64) as u32 }
    })
}
const NEG_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(3600);

type Cache = HashMap<String, (Instant, Vec<Srv>)>;

fn cache() -> &'static Mutex<Cache> {
    static C: OnceLock<Mutex<Cache>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

fn nameserver() -> Option<SocketAddr> {
    static NS: OnceLock<Option<SocketAddr>> = OnceLock::new();
    *NS.get_or_init(|| {
        if let Ok(s) = std::env::var("KSR_DNS_SERVER") {
            return s.parse().ok();
        }
        let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
        text.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("nameserver"))
                .then(|| it.next())
                .flatten()
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
    })
}

/// The SRV records of `name` (cached), empty when there are none or DNS fails.
pub fn srv(name: &str) -> Vec<Srv> {
    let key = name.to_ascii_lowercase();
    if let Ok(c) = cache().lock()
        && let Some((until, v)) = c.get(&key)
        && *until > Instant::now()
    {
        return v.clone();
    }
    let (records, ttl) = match nameserver().and_then(|ns| query(ns, &key, T_SRV).ok()) {
        Some((recs, ttl)) if !recs.is_empty() => (recs, ttl.min(MAX_TTL)),
        _ => (Vec::new(), NEG_TTL),
    };
    if let Ok(mut c) = cache().lock() {
        if c.len() > 4096 {
            c.clear();
        }
        c.insert(key, (Instant::now() + ttl, records.clone()));
    }
    records
}

/// Orders SRV records for trying: by priority; within one, by weight (weighted random
/// when `load_balance`, else highest weight first).
pub fn order(mut recs: Vec<Srv>, load_balance: bool, mut rand: impl FnMut(u32) -> u32) -> Vec<Srv> {
    recs.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    if !load_balance {
        return recs;
    }
    let mut out = Vec::with_capacity(recs.len());
    let mut i = 0;
    while i < recs.len() {
        let p = recs[i].priority;
        let mut group: Vec<Srv> = recs[i..]
            .iter()
            .take_while(|r| r.priority == p)
            .cloned()
            .collect();
        i += group.len();
        // RFC 2782 selection: pick by running sum of weights.
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| r.weight as u32).sum();
            let pick = if total == 0 { 0 } else { rand(total + 1) };
            let mut sum = 0;
            let idx = group
                .iter()
                .position(|r| {
                    sum += r.weight as u32;
                    sum >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(idx));
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("DNS I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad DNS reply")]
    Bad,
    #[error("DNS name too long")]
    Name,
}

fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), DnsError> {
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::Name);
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    if out.len() > 300 {
        return Err(DnsError::Name);
    }
    Ok(())
}

/// Builds a query packet for `name`/`qtype` with id `id`.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    encode_name(&mut q, name)?;
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

fn query(ns: SocketAddr, name: &str, qtype: u16) -> Result<(Vec<Srv>, Duration), DnsError> {
    let bind = if ns.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(Duration::from_millis(1000)))?;
    let id = (std::process::id() as u16) ^ (Instant::now().elapsed().subsec_nanos() as u16);
    let q = build_query(id, name, qtype)?;
    let mut buf = [0u8; 4096];
    for _ in 0..2 {
        sock.send_to(&q, ns)?;
        let deadline = Instant::now() + Duration::from_millis(1000);
        while Instant::now() < deadline {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            if from != ns {
                continue;
            }
            let reply = buf.get(..n).ok_or(DnsError::Bad)?;
            if reply.get(..2) != Some(&id.to_be_bytes()[..]) {
                continue;
            }
            return parse_srv_reply(reply);
        }
    }
    Err(DnsError::Io(std::io::ErrorKind::TimedOut.into()))
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, DnsError> {
        let v = *self.b.get(self.pos).ok_or(DnsError::Bad)?;
        self.pos += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, DnsError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Result<u32, DnsError> {
        Ok(((self.u16()? as u32) << 16) | self.u16()? as u32)
    }
    /// A possibly compressed name starting at the current position.
    fn name(&mut self) -> Result<String, DnsError> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        for _ in 0..128 {
            let len = *self.b.get(pos).ok_or(DnsError::Bad)? as usize;
            if len == 0 {
                if !jumped {
                    self.pos = pos + 1;
                }
                return Ok(out);
            }
            if len & 0xc0 == 0xc0 {
                let lo = *self.b.get(pos + 1).ok_or(DnsError::Bad)? as usize;
                if !jumped {
                    self.pos = pos + 2;
                }
                jumped = true;
                pos = ((len & 0x3f) << 8) | lo;
                continue;
            }
            let label = self.b.get(pos + 1..pos + 1 + len).ok_or(DnsError::Bad)?;
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&String::from_utf8_lossy(label));
            pos += 1 + len;
        }
        Err(DnsError::Bad)
    }
}

/// Parses the SRV answers of a reply and the smallest TTL.
pub fn parse_srv_reply(b: &[u8]) -> Result<(Vec<Srv>, Duration), DnsError> {
    let mut r = Reader { b, pos: 2 };
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::Bad);
    }
    let rcode = flags & 0x000f;
    let qd = r.u16()?;
    let an = r.u16()?;
    let _ns = r.u16()?;
    let _ar = r.u16()?;
    if rcode != 0 {
        return Ok((Vec::new(), NEG_TTL));
    }
    for _ in 0..qd {
        r.name()?;
        r.u16()?;
        r.u16()?;
    }
    let mut out = Vec::new();
    let mut ttl = MAX_TTL;
    for _ in 0..an {
        r.name()?;
        let rtype = r.u16()?;
        let _class = r.u16()?;
        let t = r.u32()?;
        let len = r.u16()? as usize;
        let end = r.pos + len;
        if rtype == T_SRV {
            let priority = r.u16()?;
            let weight = r.u16()?;
            let port = r.u16()?;
            let target = r.name()?;
            ttl = ttl.min(Duration::from_secs(t as u64));
            if !target.is_empty() {
                out.push(Srv {
                    priority,
                    weight,
                    port,
                    target,
                });
            }
        }
        r.pos = end;
    }
    Ok((out, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply with two SRV answers, the second target compressed against the first.
    pub fn srv_reply(id: u16, name: &str, recs: &[(u16, u16, u16, &str)]) -> Vec<u8> {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x81, 0x80, 0, 1]);
        b.extend_from_slice(&(recs.len() as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        encode_name(&mut b, name).unwrap();
        b.extend_from_slice(&[0, 33, 0, 1]);
        for (p, w, port, target) in recs {
            b.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60]);
            let mut rdata = Vec::new();
            rdata.extend_from_slice(&p.to_be_bytes());
            rdata.extend_from_slice(&w.to_be_bytes());
            rdata.extend_from_slice(&port.to_be_bytes());
            encode_name(&mut rdata, target).unwrap();
            b.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            b.extend_from_slice(&rdata);
        }
        b
    }

    #[test]
    fn query_and_reply_round_trip() {
        let q = build_query(7, "_sip._udp.example.com", T_SRV).unwrap();
        assert_eq!(&q[..2], &[0, 7]);
        let reply = srv_reply(
            7,
            "_sip._udp.example.com",
            &[
                (20, 0, 5080, "b.example.com"),
                (10, 5, 5070, "a.example.com"),
            ],
        );
        let (recs, ttl) = parse_srv_reply(&reply).unwrap();
        assert_eq!(ttl, Duration::from_secs(60));
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].target, "a.example.com");
        let o = order(recs, false, |_| 0);
        assert_eq!(o[0].port, 5070);
        // Garbage never panics.
        for n in 0..reply.len() {
            let _ = parse_srv_reply(&reply[..n]);
        }
        assert!(build_query(1, &"a".repeat(70), T_SRV).is_err());
    }

    #[test]
    fn weighted_order_within_a_priority() {
        let recs = vec![
            Srv {
                priority: 1,
                weight: 0,
                port: 1,
                target: "x".into(),
            },
            Srv {
                priority: 1,
                weight: 10,
                port: 2,
                target: "y".into(),
            },
            Srv {
                priority: 0,
                weight: 1,
                port: 3,
                target: "z".into(),
            },
        ];
        let o = order(recs.clone(), false, |_| 0);
        assert_eq!(o.iter().map(|r| r.port).collect::<Vec<_>>(), vec![3, 2, 1]);
        // With load balancing the weight-10 record wins for any pick in 1..=10.
        let o = order(recs, true, |_| 5);
        assert_eq!(o.iter().map(|r| r.port).collect::<Vec<_>>(), vec![3, 2, 1]);
    }
}
