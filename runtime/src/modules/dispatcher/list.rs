//! Destination sets: loading (list file or database rows), the in-memory layout Kamailio
//! uses (destinations of a set ordered by priority, highest first; sets walked in the
//! order of Kamailio's AVL tree), weight tables and the hash Kamailio's algorithms use.

use crate::sip::uri::Uri;
use crate::transport::Proto;
use bytes::Bytes;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Mutex;

pub const DS_INACTIVE: i32 = 1;
pub const DS_TRYING: i32 = 2;
pub const DS_DISABLED: i32 = 4;
pub const DS_PROBING: i32 = 8;
pub const DS_NODNSARES: i32 = 16;
pub const DS_STATES_ALL: i32 = 31;

/// Destinations with these state bits are not selected.
pub fn skip(flags: i32) -> bool {
    flags & (DS_INACTIVE | DS_DISABLED) != 0
}

/// One row as read from the list file or the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub setid: i32,
    pub uri: String,
    pub flags: i32,
    pub priority: i32,
    pub attrs: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attrs {
    /// The attribute text (a trailing `;` removed).
    pub body: String,
    pub duid: String,
    pub maxload: i32,
    pub weight: i32,
    pub rweight: i32,
    pub socket: String,
    pub sockname: String,
    pub obproxy: String,
    pub ping_from: String,
}

#[derive(Debug)]
pub struct Dest {
    pub uri: Bytes,
    /// Flags as loaded (state bits are kept in the set's runtime part).
    pub flags: i32,
    pub priority: i32,
    pub attrs: Attrs,
    pub host: String,
    /// Port as written in the URI (0 when absent).
    pub port: u16,
    /// Transport named by the URI, if any.
    pub proto: Option<Proto>,
    pub ip: Option<IpAddr>,
}

/// Mutable part of a set: states, counters and the round-robin / weight cursors.
#[derive(Debug)]
pub struct SetRt {
    pub flags: Vec<i32>,
    pub msg_count: Vec<i32>,
    pub last: u32,
    pub wlast: u32,
    pub rwlast: u32,
    pub rwlist: [u32; 100],
}

#[derive(Debug)]
pub struct DsSet {
    pub id: i32,
    pub dests: Vec<Dest>,
    /// Weight table (alg 9), empty when the first destination has no weight.
    pub wlist: Vec<u32>,
    pub rt: Mutex<SetRt>,
}

impl DsSet {
    pub fn rt(&self) -> std::sync::MutexGuard<'_, SetRt> {
        match self.rt.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

#[derive(Debug, Default)]
pub struct DsList {
    /// Sets in the order Kamailio walks its tree (RPC listing, `ds_is_from_list()`).
    pub sets: Vec<DsSet>,
}

impl DsList {
    pub fn find(&self, id: i32) -> Option<&DsSet> {
        self.sets.iter().find(|s| s.id == id)
    }
}

/// Parses the list file format: `setid uri [flags [priority [attrs]]]`, `#` comments.
pub fn parse_file(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let b = line.as_bytes();
        let mut p = 0;
        let ws = |b: &[u8], mut p: usize| {
            while p < b.len() && matches!(b[p], b' ' | b'\t' | b'\r' | b'\n') {
                p += 1;
            }
            p
        };
        p = ws(b, p);
        if p >= b.len() || b[p] == b'#' {
            continue;
        }
        let mut id: i32 = 0;
        while p < b.len() && b[p].is_ascii_digit() {
            id = id.wrapping_mul(10).wrapping_add((b[p] - b'0') as i32);
            p += 1;
        }
        p = ws(b, p);
        if p >= b.len() || b[p] == b'#' {
            return Err(format!("bad line [{line}]"));
        }
        let s = p;
        while p < b.len() && !matches!(b[p], b' ' | b'\t' | b'\r' | b'\n' | b'#') {
            p += 1;
        }
        let uri = line[s..p].to_string();
        let mut row = Row {
            setid: id,
            uri,
            flags: 0,
            priority: 0,
            attrs: String::new(),
        };
        p = ws(b, p);
        if p < b.len() && b[p] != b'#' {
            if b[p] == b'0' && b.get(p + 1) == Some(&b'x') {
                p += 2;
                while p < b.len() && b[p].is_ascii_hexdigit() {
                    let v = (b[p] as char).to_digit(16).unwrap_or(0) as i32;
                    row.flags = (row.flags << 4) | v;
                    p += 1;
                }
            } else {
                while p < b.len() && b[p].is_ascii_digit() {
                    row.flags = row
                        .flags
                        .wrapping_mul(10)
                        .wrapping_add((b[p] - b'0') as i32);
                    p += 1;
                }
            }
            p = ws(b, p);
            if p < b.len() && b[p] != b'#' {
                while p < b.len() && b[p].is_ascii_digit() {
                    row.priority = row
                        .priority
                        .wrapping_mul(10)
                        .wrapping_add((b[p] - b'0') as i32);
                    p += 1;
                }
                p = ws(b, p);
                if p < b.len() && b[p] != b'#' {
                    let s = p;
                    while p < b.len() && !matches!(b[p], b' ' | b'\t' | b'\r' | b'\n') {
                        p += 1;
                    }
                    row.attrs = line[s..p].to_string();
                }
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn str2sint(s: &str) -> i32 {
    let t = s.trim();
    let (neg, d) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if d.is_empty() || !d.bytes().all(|c| c.is_ascii_digit()) {
        return 0;
    }
    let v: i64 = d.parse().unwrap_or(0);
    let v = if neg { -v } else { v };
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

pub fn parse_attrs(text: &str) -> Attrs {
    let body = text.strip_suffix(';').unwrap_or(text).to_string();
    let mut a = Attrs {
        body: body.clone(),
        ..Attrs::default()
    };
    for part in body.split(';') {
        let (n, v) = match part.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (part.trim(), ""),
        };
        match n.to_ascii_lowercase().as_str() {
            "duid" => a.duid = v.to_string(),
            "maxload" => a.maxload = str2sint(v),
            "weight" => {
                let w = str2sint(v);
                a.weight = if (1..=100).contains(&w) { w } else { 0 };
            }
            "rweight" => {
                let w = str2sint(v);
                a.rweight = if (1..=100).contains(&w) { w } else { 0 };
            }
            "socket" => a.socket = v.to_string(),
            "sockname" => a.sockname = v.to_string(),
            "obproxy" => a.obproxy = v.to_string(),
            "ping_from" => a.ping_from = v.to_string(),
            _ => {}
        }
    }
    a
}

/// The transport named by the URI's `transport` parameter (none when absent: Kamailio 5.6
/// keeps the URI's protocol as it is).
pub fn proto_of(u: &Uri) -> Option<Proto> {
    match u.transport()?.to_ascii_lowercase().as_str() {
        "udp" => Some(Proto::Udp),
        "tcp" => Some(Proto::Tcp),
        "tls" => Some(Proto::Tls),
        "sctp" => Some(Proto::Sctp),
        "ws" => Some(Proto::Ws),
        "wss" => Some(Proto::Wss),
        _ => None,
    }
}

/// Builds a destination (Kamailio's `pack_dest`): a missing `sip:` is added, the host is
/// resolved unless flag 16 says not to. `Err` carries the reason it is skipped.
pub fn pack_dest(row: &Row) -> Result<Dest, String> {
    let mut text = row.uri.clone();
    // Only SIP-like schemes count; `host:port` would otherwise parse as scheme `host`.
    let sip_like = |u: &Uri| {
        [&b"sip"[..], b"sips", b"tel", b"tels"]
            .iter()
            .any(|s| u.scheme_raw.eq_ignore_ascii_case(s))
    };
    let mut parsed = Uri::parse(&Bytes::from(text.clone())).and_then(|u| {
        if sip_like(&u) {
            Ok(u)
        } else {
            Err(crate::sip::uri::UriError::NoScheme)
        }
    });
    if parsed.is_err() && row.uri.len() > 4 && !row.uri.starts_with("sip:") {
        text = format!("sip:{}", row.uri);
        parsed = Uri::parse(&Bytes::from(text.clone()));
    }
    let u = parsed.map_err(|_| format!("bad uri [{}]", row.uri))?;
    let host = String::from_utf8_lossy(u.host_unbracketed()).into_owned();
    let ip: Option<IpAddr> = host.parse().ok();
    let proto = proto_of(&u);
    let resolved = if row.flags & DS_NODNSARES != 0 {
        None
    } else if ip.is_some() {
        ip
    } else {
        match (host.as_str(), 0u16).to_socket_addrs() {
            Ok(mut it) => match it.next() {
                Some(a) => Some(a.ip()),
                None => return Err(format!("could not resolve {host}")),
            },
            Err(_) => return Err(format!("could not resolve {host}")),
        }
    };
    let attrs = if row.attrs.is_empty() {
        Attrs::default()
    } else {
        parse_attrs(&row.attrs)
    };
    Ok(Dest {
        uri: Bytes::from(text),
        flags: row.flags,
        priority: row.priority,
        attrs,
        host,
        port: u.port.unwrap_or(0),
        proto,
        ip: resolved,
    })
}

/// Builds the sets from rows. Bad destinations are logged and skipped (or fail the whole
/// load when `strict`, Kamailio's `ds_load_mode=1`).
pub fn build(rows: &[Row], strict: bool) -> Result<DsList, String> {
    // Per set: destinations kept ascending by priority, a new one after equal ones.
    let mut order: Vec<i32> = Vec::new();
    let mut groups: Vec<(i32, Vec<Dest>)> = Vec::new();
    for row in rows {
        let d = match pack_dest(row) {
            Ok(d) => d,
            Err(e) => {
                crate::klog!(
                    crate::log::L_WARN,
                    "dispatcher",
                    "unable to add destination {} to set {} -- skipping ({e})",
                    row.uri,
                    row.setid
                );
                if strict {
                    return Err(e);
                }
                continue;
            }
        };
        let g = match groups.iter().position(|(id, _)| *id == row.setid) {
            Some(i) => &mut groups[i].1,
            None => {
                order.push(row.setid);
                groups.push((row.setid, Vec::new()));
                let n = groups.len() - 1;
                &mut groups[n].1
            }
        };
        let pos = g
            .iter()
            .position(|x| x.priority > d.priority)
            .unwrap_or(g.len());
        g.insert(pos, d);
    }
    let mut sets = Vec::new();
    for id in avl_postorder(&order) {
        let Some(i) = groups.iter().position(|(gid, _)| *gid == id) else {
            continue;
        };
        let (_, mut dests) = std::mem::take(&mut groups[i]);
        // Kamailio copies its list backwards: highest priority first.
        dests.reverse();
        let flags: Vec<i32> = dests.iter().map(|d| d.flags).collect();
        let wlist = init_weights(&dests);
        let mut rt = SetRt {
            msg_count: vec![0; dests.len()],
            flags,
            last: 0,
            wlast: 0,
            rwlast: 0,
            rwlist: [0; 100],
        };
        init_rweights(&dests, &mut rt);
        sets.push(DsSet {
            id,
            dests,
            wlist,
            rt: Mutex::new(rt),
        });
    }
    Ok(DsList { sets })
}

fn shuffle(arr: &mut [u32]) {
    let n = arr.len();
    for j in 0..n {
        let k = j + (rand_u32() as usize) % (n - j);
        arr.swap(j, k);
    }
}

/// A pseudo-random number (random selection and shuffling need no crypto quality).
pub fn rand_u32() -> u32 {
    use std::cell::Cell;
    thread_local! {
        static S: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9);
            t ^ (std::process::id() as u64) << 32 | 1
        });
    }
    S.with(|s| {
        // xorshift64*
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as u32
    })
}

fn init_weights(dests: &[Dest]) -> Vec<u32> {
    if dests.first().is_none_or(|d| d.attrs.weight == 0) {
        return Vec::new();
    }
    let mut w = Vec::with_capacity(100);
    'fill: for (j, d) in dests.iter().enumerate() {
        for _ in 0..d.attrs.weight {
            if w.len() >= 100 {
                break 'fill;
            }
            w.push(j as u32);
        }
    }
    while w.len() < 100 {
        w.push((dests.len() - 1) as u32);
    }
    shuffle(&mut w);
    w
}

/// Relative weights over the active destinations (recomputed on state changes).
pub fn init_rweights(dests: &[Dest], rt: &mut SetRt) {
    if dests.len() < 2 {
        return;
    }
    let sum: i32 = dests
        .iter()
        .zip(&rt.flags)
        .filter(|(_, f)| !skip(**f))
        .map(|(d, _)| d.attrs.rweight)
        .sum();
    if sum == 0 {
        return;
    }
    let mut t = 0usize;
    for (j, d) in dests.iter().enumerate() {
        if skip(rt.flags[j]) {
            continue;
        }
        let slice = (d.attrs.rweight * 100 / sum) as usize;
        for _ in 0..slice {
            if t < 100 {
                rt.rwlist[t] = j as u32;
                t += 1;
            }
        }
    }
    let last = if t > 0 {
        rt.rwlist[t - 1]
    } else {
        (dests.len() - 1) as u32
    };
    for slot in rt.rwlist.iter_mut().skip(t) {
        *slot = last;
    }
    shuffle(&mut rt.rwlist);
}

/// Set ids in the post-order of the AVL tree Kamailio builds by inserting them in order of
/// first appearance (left, right, node), which is how it lists and searches sets.
pub fn avl_postorder(ids: &[i32]) -> Vec<i32> {
    #[derive(Clone)]
    struct N {
        id: i32,
        l: Option<usize>,
        r: Option<usize>,
        h: i32,
    }
    fn h(t: &[N], n: Option<usize>) -> i32 {
        n.map_or(0, |i| t[i].h)
    }
    fn fix(t: &mut [N], i: usize) {
        t[i].h = 1 + h(t, t[i].l).max(h(t, t[i].r));
    }
    fn rot_right(t: &mut [N], i: usize) -> usize {
        let Some(l) = t[i].l else { return i };
        t[i].l = t[l].r;
        t[l].r = Some(i);
        fix(t, i);
        fix(t, l);
        l
    }
    fn rot_left(t: &mut [N], i: usize) -> usize {
        let Some(r) = t[i].r else { return i };
        t[i].r = t[r].l;
        t[r].l = Some(i);
        fix(t, i);
        fix(t, r);
        r
    }
    fn insert(t: &mut Vec<N>, root: Option<usize>, id: i32) -> usize {
        let Some(i) = root else {
            t.push(N {
                id,
                l: None,
                r: None,
                h: 1,
            });
            return t.len() - 1;
        };
        if id < t[i].id {
            let c = insert(t, t[i].l, id);
            t[i].l = Some(c);
        } else if id > t[i].id {
            let c = insert(t, t[i].r, id);
            t[i].r = Some(c);
        } else {
            return i;
        }
        fix(t, i);
        let bal = h(t, t[i].l) - h(t, t[i].r);
        if bal > 1 {
            let l = t[i].l.unwrap_or(i);
            if h(t, t[l].l) < h(t, t[l].r) {
                let nl = rot_left(t, l);
                t[i].l = Some(nl);
            }
            return rot_right(t, i);
        }
        if bal < -1 {
            let r = t[i].r.unwrap_or(i);
            if h(t, t[r].r) < h(t, t[r].l) {
                let nr = rot_right(t, r);
                t[i].r = Some(nr);
            }
            return rot_left(t, i);
        }
        i
    }
    fn post(t: &[N], n: Option<usize>, out: &mut Vec<i32>) {
        if let Some(i) = n {
            post(t, t[i].l, out);
            post(t, t[i].r, out);
            out.push(t[i].id);
        }
    }
    let mut t = Vec::new();
    let mut root = None;
    for id in ids {
        root = Some(insert(&mut t, root, *id));
    }
    let mut out = Vec::new();
    post(&t, root, &mut out);
    out
}

/// Kamailio's dispatcher hash over one or two strings (bytes taken as signed chars).
pub fn hash(x: Option<&[u8]>, y: Option<&[u8]>) -> u32 {
    if x.is_none() && y.is_none() {
        return 0;
    }
    let mut h: u32 = 0;
    for s in [x, y].into_iter().flatten() {
        let c = |i: usize| s[i] as i8 as i32 as u32;
        let mut p = 0usize;
        if s.len() >= 4 {
            while p + 4 <= s.len() {
                let v = (c(p) << 24)
                    .wrapping_add(c(p + 1) << 16)
                    .wrapping_add(c(p + 2) << 8)
                    .wrapping_add(c(p + 3));
                h = h.wrapping_add(v ^ (v >> 3));
                p += 4;
            }
        }
        let mut v: u32 = 0;
        while p < s.len() {
            v <<= 8;
            v = v.wrapping_add(c(p));
            p += 1;
        }
        h = h.wrapping_add(v ^ (v >> 3));
    }
    h = h
        .wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23));
    if h == 0 { 1 } else { h }
}

/// Hash keys of a URI: the user, and `host[:port]` (the port only when it is not the
/// scheme's default), or only the user with `user_only`.
pub fn uri_hash(uri: &[u8], user_only: bool) -> Option<u32> {
    let u = Uri::parse_bytes(uri).ok()?;
    if u.host.is_empty() {
        return None;
    }
    let user = (!u.user.is_empty()).then_some(&u.user[..]);
    if user_only {
        return Some(hash(user, None));
    }
    let mut key2 = u.host.to_vec();
    if !u.port_raw.is_empty() {
        let default = if u.scheme_raw.eq_ignore_ascii_case(b"sips") {
            5061
        } else {
            5060
        };
        if u.port != Some(default) {
            key2.push(b':');
            key2.extend_from_slice(&u.port_raw);
        }
    }
    Some(hash(user, Some(&key2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_rows_and_order() {
        let rows = parse_file(
            "# comment\n1 sip:127.0.0.1:5070\n1 sip:127.0.0.1:5071 0 5 weight=50;duid=b;\n\
             2 127.0.0.1:5080 0x8 0 # tail\n\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].priority, 5);
        assert_eq!(rows[1].attrs, "weight=50;duid=b;");
        assert_eq!(rows[2].flags, 8);
        let l = build(&rows, false).unwrap();
        let s1 = l.find(1).unwrap();
        // Highest priority first.
        assert_eq!(&s1.dests[0].uri[..], b"sip:127.0.0.1:5071");
        assert_eq!(s1.dests[0].attrs.body, "weight=50;duid=b");
        assert_eq!(s1.dests[0].attrs.weight, 50);
        assert_eq!(&l.find(2).unwrap().dests[0].uri[..], b"sip:127.0.0.1:5080");
        assert!(parse_file("1\n").is_err());
    }

    #[test]
    fn equal_priorities_come_out_reversed() {
        let rows =
            parse_file("1 sip:a.invalid 16\n1 sip:b.invalid 16\n1 sip:c.invalid 16\n").unwrap();
        let l = build(&rows, false).unwrap();
        let u: Vec<_> = l.sets[0].dests.iter().map(|d| d.uri.clone()).collect();
        assert_eq!(u, ["sip:c.invalid", "sip:b.invalid", "sip:a.invalid"]);
    }

    #[test]
    fn avl_order() {
        assert_eq!(avl_postorder(&[1, 2, 3]), [1, 3, 2]);
        assert_eq!(avl_postorder(&[3, 2, 1]), [1, 3, 2]);
        assert_eq!(avl_postorder(&[1]), [1]);
        assert_eq!(avl_postorder(&[2, 1]), [1, 2]);
    }

    #[test]
    fn hash_basics() {
        assert_eq!(hash(None, None), 0);
        assert_ne!(hash(Some(b"abc"), None), hash(Some(b"abd"), None));
        assert_eq!(
            uri_hash(b"sip:bob@h:5060", false),
            uri_hash(b"sip:bob@h", false)
        );
        assert_ne!(
            uri_hash(b"sip:bob@h:5070", false),
            uri_hash(b"sip:bob@h", false)
        );
    }
}
