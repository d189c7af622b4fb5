//! A small SIP/SIPS/TEL/URN URI parser with Kamailio's `parse_uri` acceptance rules, and
//! the `{uri.*}` transformations.
//!
//! Results are slices of the input (`Bytes::slice`), so taking a part costs no copy.

use super::params::parse_param_list;
use super::{nonempty_text, str_arg};
use crate::value::Value;
use bytes::Bytes;
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UriKind {
    Sip,
    Sips,
    Tel,
    Urn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    None,
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
}

/// A parsed URI: byte ranges into the parsed text.
#[derive(Clone, Debug)]
pub(crate) struct Uri {
    pub kind: UriKind,
    pub user: Option<Range<usize>>,
    pub passwd: Option<Range<usize>>,
    pub host: Option<Range<usize>>,
    pub port: Option<Range<usize>>,
    pub port_no: u16,
    /// The URI parameters of a sip/sips URI (`sip_params` in Kamailio), without the `;`.
    pub sip_params: Option<Range<usize>>,
    pub headers: Option<Range<usize>>,
    pub transport_val: Option<Range<usize>>,
    pub ttl_val: Option<Range<usize>>,
    pub user_param_val: Option<Range<usize>>,
    pub maddr_val: Option<Range<usize>>,
    pub method_val: Option<Range<usize>>,
    pub lr_val: Option<Range<usize>>,
    pub r2_val: Option<Range<usize>>,
    pub proto: Proto,
}

fn find(b: &[u8], from: usize, to: usize, pred: impl Fn(u8) -> bool) -> Option<usize> {
    (from..to).find(|&i| b.get(i).is_some_and(|&c| pred(c)))
}

/// Parses `b` as a URI. `None` where Kamailio's `parse_uri` reports an error.
pub(crate) fn parse_uri(b: &[u8]) -> Option<Uri> {
    if b.len() < 5 {
        return None;
    }
    let scheme: Vec<u8> = b.get(..4)?.to_ascii_lowercase();
    let (kind, start) = match scheme.as_slice() {
        b"sip:" => (UriKind::Sip, 4),
        b"sips" if b.get(4) == Some(&b':') => (UriKind::Sips, 5),
        b"tel:" => (UriKind::Tel, 4),
        b"urn:" => (UriKind::Urn, 4),
        _ => return None,
    };
    let end = b.len();
    if start >= end {
        return None;
    }
    let mut u = Uri {
        kind,
        user: None,
        passwd: None,
        host: None,
        port: None,
        port_no: 0,
        sip_params: None,
        headers: None,
        transport_val: None,
        ttl_val: None,
        user_param_val: None,
        maddr_val: None,
        method_val: None,
        lr_val: None,
        r2_val: None,
        proto: Proto::None,
    };
    let first = *b.get(start)?;
    if first == b':' || first == b']' {
        return None;
    }
    // The user part ends at the first '@' (Kamailio re-reads params/headers seen before an
    // '@' as part of the user).
    let at = if first == b'[' {
        None
    } else {
        find(b, start, end, |c| c == b'@')
    };
    let mut found_user = false;
    let mut p = start;
    if let Some(at) = at {
        if at == start {
            return None;
        }
        let special = find(b, start, at, |c| matches!(c, b':' | b';' | b'?')).unwrap_or(at);
        if find(b, start, special, |c| c == b'[' || c == b']').is_some() {
            return None;
        }
        if b.get(special) == Some(&b':') {
            let pw = special + 1;
            if find(b, pw, at, |c| matches!(c, b'[' | b']' | b':')).is_some() {
                return None;
            }
            match find(b, pw, at, |c| c == b';' || c == b'?') {
                None => {
                    u.user = Some(start..special);
                    u.passwd = Some(pw..at);
                }
                Some(k) => {
                    // A numeric "password" followed by params was a host:port; the '@'
                    // later turns the whole text into the user. Anything else is a bad
                    // port.
                    if !b.get(pw..k)?.iter().all(u8::is_ascii_digit) {
                        return None;
                    }
                    u.user = Some(start..at);
                }
            }
        } else {
            u.user = Some(start..at);
        }
        found_user = true;
        p = at + 1;
    }

    // host
    let host_start = p;
    if b.get(p) == Some(&b'[') {
        let close = find(b, p, end, |c| c == b']')?;
        if find(b, p + 1, close, |c| {
            matches!(c, b'[' | b'&' | b'@' | b';' | b'?')
        })
        .is_some()
        {
            return None;
        }
        p = close + 1;
        if p < end && !matches!(b.get(p), Some(b':' | b';' | b'?')) {
            return None;
        }
    } else if found_user {
        if !b.get(p).is_some_and(u8::is_ascii_alphanumeric) {
            return None;
        }
        while let Some(&c) = b.get(p) {
            if matches!(c, b':' | b';' | b'?') {
                break;
            }
            if !(c.is_ascii_alphanumeric() || c == b'.' || c == b'-') {
                return None;
            }
            p += 1;
        }
    } else {
        while let Some(&c) = b.get(p) {
            if matches!(c, b':' | b';' | b'?') {
                break;
            }
            if c == b'[' || c == b']' {
                return None;
            }
            p += 1;
        }
    }
    u.host = Some(host_start..p);

    // port
    if b.get(p) == Some(&b':') {
        let ps = p + 1;
        let mut q = ps;
        let mut n: u32 = 0;
        while let Some(&c) = b.get(q).filter(|c| c.is_ascii_digit()) {
            n = n * 10 + (c - b'0') as u32;
            if n > 65535 {
                return None;
            }
            q += 1;
        }
        if q < end && !matches!(b.get(q), Some(b';' | b'?')) {
            if found_user || kind != UriKind::Urn {
                return None;
            }
            // `urn:service:sos`: what follows the colon is the host.
            if find(b, ps, end, |c| {
                matches!(c, b':' | b'[' | b']' | b';' | b'?')
            })
            .is_some()
            {
                return None;
            }
            u.user = u.host.take();
            u.host = Some(ps..end);
            return Some(u);
        }
        if q - ps > 5 {
            return None;
        }
        u.port = Some(ps..q);
        u.port_no = n as u16;
        p = q;
    }

    // params
    let mut params: Option<Range<usize>> = None;
    if b.get(p) == Some(&b';') {
        let ps = p + 1;
        let pe = find(b, ps, end, |c| c == b'?').unwrap_or(end);
        if found_user && find(b, ps, pe, |c| c == b'@').is_some() {
            return None;
        }
        params = Some(ps..pe);
        scan_known_params(b, ps..pe, &mut u);
        p = pe;
    }

    // headers
    if b.get(p) == Some(&b'?') {
        let hs = p + 1;
        if found_user && find(b, hs, end, |c| c == b';' || c == b'@').is_some() {
            return None;
        }
        u.headers = Some(hs..end);
    }

    match kind {
        UriKind::Sip | UriKind::Sips => {
            u.sip_params = params;
            // Kamailio's default `phone2tel`: a user=phone SIP URI is a TEL URI whose
            // number is the user up to its first ';'.
            let is_phone = u
                .user_param_val
                .clone()
                .and_then(|r| b.get(r))
                .is_some_and(|v| v == b"phone");
            if is_phone {
                u.kind = UriKind::Tel;
                if let Some(r) = u.user.clone()
                    && let Some(k) = find(b, r.start, r.end, |c| c == b';')
                {
                    u.user = Some(r.start..k);
                }
            }
        }
        UriKind::Tel => {
            u.user = u.host.take();
            u.host = Some(0..0);
        }
        UriKind::Urn => {}
    }
    Some(u)
}

/// Records the values of the parameters Kamailio's URI parser knows.
fn scan_known_params(b: &[u8], r: Range<usize>, u: &mut Uri) {
    let mut i = r.start;
    while i <= r.end {
        let e = find(b, i, r.end, |c| c == b';').unwrap_or(r.end);
        let eq = find(b, i, e, |c| c == b'=');
        let name = b.get(i..eq.unwrap_or(e)).unwrap_or(&[]);
        let val = eq.map(|k| k + 1..e).filter(|v| !v.is_empty());
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"transport") {
            if let Some(v) = val.clone() {
                let pv = b.get(v.clone()).unwrap_or(&[]).to_ascii_lowercase();
                u.proto = match pv.as_slice() {
                    b"udp" => Proto::Udp,
                    b"tcp" => Proto::Tcp,
                    b"tls" => Proto::Tls,
                    b"sctp" => Proto::Sctp,
                    b"ws" => Proto::Ws,
                    _ => u.proto,
                };
                u.transport_val = Some(v);
            }
        } else if is(b"ttl") {
            u.ttl_val = val.or(u.ttl_val.take());
        } else if is(b"user") {
            u.user_param_val = val.or(u.user_param_val.take());
        } else if is(b"method") {
            u.method_val = val.or(u.method_val.take());
        } else if is(b"maddr") {
            u.maddr_val = val.or(u.maddr_val.take());
        } else if is(b"lr") {
            u.lr_val = val.or(u.lr_val.take());
        } else if is(b"r2") {
            u.r2_val = val.or(u.r2_val.take());
        }
        i = e + 1;
    }
}

/// The text a `{uri.*}` transformation parses: a non-empty string; one trailing `;` is
/// ignored when the text is longer than 4 bytes, as in Kamailio.
fn parsed(v: &Value) -> Option<(Bytes, Uri)> {
    let s = nonempty_text(v)?;
    let n = if s.len() > 4 && s.last() == Some(&b';') {
        s.len() - 1
    } else {
        s.len()
    };
    let u = parse_uri(s.get(..n)?)?;
    Some((s, u))
}

fn part(s: &Bytes, r: &Option<Range<usize>>) -> Value {
    Value::Str(match r {
        Some(r) if r.end <= s.len() => s.slice(r.clone()),
        _ => Bytes::new(),
    })
}

macro_rules! uri_part {
    ($($name:ident => $field:ident;)*) => {
        $(
            pub fn $name(v: &Value, _: &[Value]) -> Option<Value> {
                let (s, u) = parsed(v)?;
                Some(part(&s, &u.$field))
            }
        )*
    };
}

uri_part! {
    user => user;
    host => host;
    passwd => passwd;
    params => sip_params;
    headers => headers;
    transport => transport_val;
    ttl => ttl_val;
    uparam => user_param_val;
    maddr => maddr_val;
    method => method_val;
    lr => lr_val;
    r2 => r2_val;
}

/// `{uri.port}`: the port number, or an empty string when the URI has none.
pub fn port(v: &Value, _: &[Value]) -> Option<Value> {
    let (_, u) = parsed(v)?;
    Some(match u.port {
        Some(r) if !r.is_empty() => Value::Int(u.port_no as i64),
        _ => Value::Str(Bytes::new()),
    })
}

pub fn scheme(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, _) = parsed(v)?;
    let i = memchr::memchr(b':', &s).unwrap_or(s.len());
    Some(Value::Str(s.slice(..i)))
}

#[derive(PartialEq)]
enum Rebuild {
    Saor,
    Suri,
    Duri,
}

/// `scheme:[user@]host[:port][;transport=x]` built from the parsed parts.
fn rebuild(v: &Value, what: Rebuild) -> Option<Value> {
    let (s, u) = parsed(v)?;
    let Some(colon) = memchr::memchr(b':', &s) else {
        return Some(Value::Str(Bytes::new()));
    };
    let get = |r: &Option<Range<usize>>| r.clone().and_then(|r| s.get(r)).unwrap_or(&[]);
    let mut out = Vec::with_capacity(s.len());
    out.extend_from_slice(s.get(..=colon).unwrap_or(&[]));
    let user = get(&u.user);
    if !user.is_empty() && what != Rebuild::Duri {
        out.extend_from_slice(user);
        out.push(b'@');
    }
    out.extend_from_slice(get(&u.host));
    if what != Rebuild::Saor {
        let port = get(&u.port);
        if !port.is_empty() {
            out.push(b':');
            out.extend_from_slice(port);
        }
        let transport = get(&u.transport_val);
        if !transport.is_empty() {
            out.extend_from_slice(b";transport=");
            out.extend_from_slice(transport);
        }
    }
    Some(Value::Str(Bytes::from(out)))
}

/// `{uri.saor}`: scheme, user and host. (Kamailio 5.6 inserts a stray byte after the
/// scheme in saor/suri/duri; later versions fixed it and ksr follows the fix.)
pub fn saor(v: &Value, _: &[Value]) -> Option<Value> {
    rebuild(v, Rebuild::Saor)
}

pub fn suri(v: &Value, _: &[Value]) -> Option<Value> {
    rebuild(v, Rebuild::Suri)
}

pub fn duri(v: &Value, _: &[Value]) -> Option<Value> {
    rebuild(v, Rebuild::Duri)
}

/// `{uri.param,name}`: the value of a URI parameter (the last one when repeated), empty
/// when absent.
pub fn param(v: &Value, args: &[Value]) -> Option<Value> {
    let (s, u) = parsed(v)?;
    let name = str_arg(args, 0)?;
    let Some(r) = u.sip_params.filter(|r| !r.is_empty()) else {
        return Some(Value::Str(Bytes::new()));
    };
    let list = parse_param_list(s.get(r.clone())?, b';')?;
    let found = list.iter().rev().find(|p| {
        p.name(s.get(r.clone()).unwrap_or(&[]))
            .eq_ignore_ascii_case(&name)
    });
    Some(Value::Str(match found {
        Some(p) => s.slice(r.start + p.body.start..r.start + p.body.end),
        None => Bytes::new(),
    }))
}

/// `{uri.rmparam,name}` (after 5.6): the URI without the named parameter(s).
pub fn rmparam(v: &Value, args: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    let name = str_arg(args, 0)?;
    parse_uri(&s)?;
    // Parameters live between the host part and '?'.
    let qpos = memchr::memchr(b'?', &s).unwrap_or(s.len());
    let at = memchr::memchr(b'@', s.get(..qpos)?).map_or(0, |i| i + 1);
    let Some(first) = memchr::memchr(b';', s.get(at..qpos)?).map(|i| at + i) else {
        return Some(Value::Str(s));
    };
    let mut out = Vec::with_capacity(s.len());
    out.extend_from_slice(s.get(..first)?);
    let mut i = first;
    while i < qpos {
        let e = memchr::memchr(b';', s.get(i + 1..qpos)?).map_or(qpos, |k| i + 1 + k);
        let seg = s.get(i + 1..e)?;
        let n = seg.split(|&c| c == b'=').next().unwrap_or(&[]);
        if !n.eq_ignore_ascii_case(&name) {
            out.extend_from_slice(s.get(i..e)?);
        }
        i = e;
    }
    out.extend_from_slice(s.get(qpos..)?);
    Some(Value::Str(Bytes::from(out)))
}

/// `{uri.tosocket}`: `proto:host:port` for URIs with a known transport parameter (port
/// 5060 when absent), empty otherwise.
pub fn tosocket(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, u) = parsed(v)?;
    let proto: &[u8] = match u.proto {
        Proto::None => return Some(Value::Str(Bytes::new())),
        Proto::Udp => b"udp",
        Proto::Tcp => b"tcp",
        Proto::Tls => b"tls",
        Proto::Sctp => b"sctp",
        Proto::Ws => b"ws",
    };
    let host = u.host.and_then(|r| s.get(r)).unwrap_or(&[]);
    let port = if u.port_no != 0 { u.port_no } else { 5060 };
    let mut out = Vec::with_capacity(host.len() + 12);
    out.extend_from_slice(proto);
    out.push(b':');
    out.extend_from_slice(host);
    out.push(b':');
    out.extend_from_slice(port.to_string().as_bytes());
    Some(Value::Str(Bytes::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(f: fn(&Value, &[Value]) -> Option<Value>, uri: &str) -> String {
        match f(&Value::from(uri), &[]) {
            Some(Value::Str(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(Value::Int(i)) => format!("#{i}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn parts() {
        let u = "sip:alice:pw@example.com:5070;transport=TCP;lr;ttl=5?subject=x";
        assert_eq!(t(user, u), "alice");
        assert_eq!(t(passwd, u), "pw");
        assert_eq!(t(host, u), "example.com");
        assert_eq!(t(port, u), "#5070");
        assert_eq!(t(params, u), "transport=TCP;lr;ttl=5");
        assert_eq!(t(headers, u), "subject=x");
        assert_eq!(t(transport, u), "TCP");
        assert_eq!(t(ttl, u), "5");
        assert_eq!(t(lr, u), "");
        assert_eq!(t(scheme, u), "sip");
        assert_eq!(t(suri, u), "sip:alice@example.com:5070;transport=TCP");
        assert_eq!(t(saor, u), "sip:alice@example.com");
        assert_eq!(t(duri, u), "sip:example.com:5070;transport=TCP");
        assert_eq!(t(tosocket, u), "tcp:example.com:5070");
        assert_eq!(t(tosocket, "sip:a@b"), "");
        assert_eq!(t(port, "sip:a@b"), "");
    }

    #[test]
    fn odd_forms() {
        assert_eq!(t(host, "sip:example.com"), "example.com");
        assert_eq!(t(port, "sip:example.com:5060"), "#5060");
        assert_eq!(t(user, "sip:example.com:5060"), "");
        assert_eq!(t(user, "sip:alice;x=1@h"), "alice;x=1");
        assert_eq!(t(host, "sip:[2001:db8::1]:5060"), "[2001:db8::1]");
        assert_eq!(t(user, "tel:+1-555;phone-context=x"), "+1-555");
        assert_eq!(t(host, "tel:+1-555"), "");
        assert_eq!(t(user, "sip:+123;npdi@h;user=phone"), "+123");
        assert_eq!(t(user, "sips:bob@h"), "bob");
        assert_eq!(t(user, "sip:a@b;"), "a");
        assert_eq!(t(user, "http://x"), "None");
        assert_eq!(t(user, "sip:@h"), "None");
        assert_eq!(t(user, "sip:a@b@c"), "None");
        assert_eq!(t(user, "sip:a@h:99999"), "None");
        assert_eq!(t(user, "sip:a@h:5x"), "None");
        assert_eq!(t(user, "sip:a@h_x"), "None");
        assert_eq!(t(user, ""), "None");
    }

    #[test]
    fn uri_param() {
        let u = Value::from("sip:a@h;x=1;Y=\"q\";x=2;z");
        let p = |n: &str| match param(&u, &[Value::from(n)]) {
            Some(Value::Str(b)) => String::from_utf8_lossy(&b).into_owned(),
            o => format!("{o:?}"),
        };
        assert_eq!(p("x"), "2");
        assert_eq!(p("y"), "q");
        assert_eq!(p("z"), "");
        assert_eq!(p("w"), "");
        let r = rmparam(&Value::from("sip:a@h;x=1;lr;y=2?h=1"), &[Value::from("lr")]);
        assert_eq!(r, Some(Value::from("sip:a@h;x=1;y=2?h=1")));
    }
}
