//! Small transformation classes: `urialias` and `val`, `num` (pv), `sock` (corex) and
//! `url` (xhttp).

use super::uri::{Proto, parse_uri};
use super::{nonempty_text, str_val, text_of};
use crate::value::Value;
use bytes::Bytes;

/// `{urialias.encode}`: `sip:host:port;transport=x` to `host~port~proto-number` (port 5060,
/// or 5061 for TLS, when absent). A URI that does not parse gives an empty string.
pub fn urialias_encode(v: &Value, _: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    let Some(u) = parse_uri(&s) else {
        return Some(Value::Str(Bytes::new()));
    };
    let host = u.host.and_then(|r| s.get(r)).unwrap_or(&[]);
    let port = u.port.and_then(|r| s.get(r)).unwrap_or(&[]);
    let mut out = Vec::with_capacity(host.len() + 8);
    out.extend_from_slice(host);
    out.push(b'~');
    if !port.is_empty() {
        out.extend_from_slice(port);
    } else if u.proto == Proto::Tls {
        out.extend_from_slice(b"5061");
    } else {
        out.extend_from_slice(b"5060");
    }
    out.push(b'~');
    out.push(match u.proto {
        Proto::None | Proto::Udp => b'1',
        Proto::Tcp => b'2',
        Proto::Tls => b'3',
        Proto::Sctp => b'4',
        Proto::Ws => b'5',
    });
    str_val(out)
}

/// `{urialias.decode}`: `host~port~proto` back to a SIP URI (no transport parameter for
/// UDP). An unknown protocol number gives an empty string.
pub fn urialias_decode(v: &Value, _: &[Value]) -> Option<Value> {
    let s = nonempty_text(v)?;
    let mut out = Vec::with_capacity(s.len() + 24);
    out.extend_from_slice(b"sip:");
    let mut seps = 0;
    for (i, &c) in s.iter().enumerate() {
        if c == 0 {
            break;
        }
        if c != b'~' {
            out.push(c);
            continue;
        }
        seps += 1;
        if seps == 1 {
            out.push(b':');
            continue;
        }
        let Some(&d) = s.get(i + 1).filter(|&&d| d != 0) else {
            return Some(Value::Str(Bytes::new()));
        };
        let proto: &[u8] = match d.wrapping_sub(b'0') {
            0 | 1 => b"",
            2 => b"tcp",
            3 => b"tls",
            4 => b"sctp",
            5 | 6 => b"ws",
            _ => return Some(Value::Str(Bytes::new())),
        };
        if !proto.is_empty() {
            out.extend_from_slice(b";transport=");
            out.extend_from_slice(proto);
        }
        return str_val(out);
    }
    str_val(out)
}

/// `{val.n0}` (after 5.6): null becomes 0.
pub fn val_n0(v: &Value, _: &[Value]) -> Option<Value> {
    Some(match v {
        Value::Null => Value::Int(0),
        other => other.clone(),
    })
}

/// `{val.ne}` (after 5.6): null becomes the empty string.
pub fn val_ne(v: &Value, _: &[Value]) -> Option<Value> {
    Some(match v {
        Value::Null => Value::Str(Bytes::new()),
        other => other.clone(),
    })
}

/// JSON string escaping; `None` when nothing needs escaping.
fn json_escape(s: &[u8]) -> Option<Vec<u8>> {
    if !s.iter().any(|&c| c < 32 || c == b'"' || c == b'\\') {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() + 8);
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c if c < 32 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    Some(out)
}

/// `{val.json}` (after 5.6): a string escaped for use inside JSON quotes; null becomes
/// empty; numbers are unchanged.
pub fn val_json(v: &Value, _: &[Value]) -> Option<Value> {
    Some(match v {
        Value::Null => Value::Str(Bytes::new()),
        Value::Int(i) => Value::Int(*i),
        Value::Str(s) => match json_escape(s) {
            Some(e) => Value::Str(Bytes::from(e)),
            None => Value::Str(s.clone()),
        },
    })
}

/// `{val.jsonqe}` (after 5.6): like `val.json`, but null becomes `""` and an escaped string
/// is put in quotes (a string needing no escape is left as it is, like Kamailio).
pub fn val_jsonqe(v: &Value, _: &[Value]) -> Option<Value> {
    Some(match v {
        Value::Null => Value::from_static("\"\""),
        Value::Int(i) => Value::Int(*i),
        Value::Str(s) => match json_escape(s) {
            Some(e) => {
                let mut q = Vec::with_capacity(e.len() + 2);
                q.push(b'"');
                q.extend_from_slice(&e);
                q.push(b'"');
                Value::Str(Bytes::from(q))
            }
            None => Value::Str(s.clone()),
        },
    })
}

/// `{num.fdigit}` (after 5.6): first decimal digit of an integer; 0 for non-integers.
pub fn num_fdigit(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Int(match v {
        Value::Int(i) => {
            let mut n = i.unsigned_abs();
            while n >= 10 {
                n /= 10;
            }
            n as i64
        }
        _ => 0,
    }))
}

/// `{num.ldigit}` (after 5.6): last decimal digit (C remainder, so negative for negative
/// numbers); 0 for non-integers.
pub fn num_ldigit(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Int(match v {
        Value::Int(i) => i % 10,
        _ => 0,
    }))
}

/// `[proto:]host[:port]` split like Kamailio's `parse_protohostport`.
struct PHostPort {
    proto: Option<std::ops::Range<usize>>,
    host: std::ops::Range<usize>,
    port: Option<std::ops::Range<usize>>,
}

/// Kamailio's `parse_proto`: udp, tcp, tls and sctp (not ws/wss). Kamailio also refuses tls
/// when TLS is disabled (`enable_tls=no`, its default); ksr cannot see that setting here and
/// accepts it.
fn is_proto(s: &[u8]) -> bool {
    let l = s.to_ascii_lowercase();
    matches!(l.as_slice(), b"udp" | b"tcp" | b"tls" | b"sctp")
}

fn is_port(s: &[u8]) -> bool {
    let mut n: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return false;
        }
        n = n * 10 + (c - b'0') as u64;
        if n > u32::MAX as u64 {
            return false;
        }
    }
    true
}

fn parse_phostport(s: &[u8]) -> Option<PHostPort> {
    let mut colons = Vec::with_capacity(2);
    let mut depth = 0i32;
    for (i, &c) in s.iter().enumerate() {
        match c {
            b'[' => {
                depth += 1;
                if depth > 1 {
                    return None;
                }
            }
            b']' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            b':' if depth == 0 => {
                if colons.len() == 2 {
                    return None;
                }
                colons.push(i);
            }
            _ => {}
        }
    }
    if s.is_empty() || s.last() == Some(&b':') {
        return None;
    }
    let n = s.len();
    match colons.as_slice() {
        [] => Some(PHostPort {
            proto: None,
            host: 0..n,
            port: None,
        }),
        [a, b] => {
            if !is_proto(s.get(..*a)?) || !is_port(s.get(b + 1..)?) {
                return None;
            }
            Some(PHostPort {
                proto: Some(0..*a),
                host: a + 1..*b,
                port: Some(b + 1..n),
            })
        }
        [a] => {
            if is_port(s.get(a + 1..)?) {
                Some(PHostPort {
                    proto: None,
                    host: 0..*a,
                    port: Some(a + 1..n),
                })
            } else if is_proto(s.get(..*a)?) {
                Some(PHostPort {
                    proto: Some(0..*a),
                    host: a + 1..n,
                    port: None,
                })
            } else {
                None
            }
        }
        _ => None,
    }
}

fn sock(v: &Value) -> Option<(Bytes, PHostPort)> {
    let s = text_of(v)?;
    let p = parse_phostport(&s)?;
    Some((s, p))
}

fn piece(s: &Bytes, r: Option<std::ops::Range<usize>>) -> Value {
    Value::Str(
        r.filter(|r| r.end <= s.len())
            .map_or_else(Bytes::new, |r| s.slice(r)),
    )
}

pub fn sock_host(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, p) = sock(v)?;
    Some(piece(&s, Some(p.host)))
}

pub fn sock_port(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, p) = sock(v)?;
    Some(piece(&s, p.port))
}

pub fn sock_proto(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, p) = sock(v)?;
    Some(piece(&s, p.proto))
}

/// `{sock.touri}`: `sip:host[:port][;transport=proto]`.
pub fn sock_touri(v: &Value, _: &[Value]) -> Option<Value> {
    let (s, p) = sock(v)?;
    let get = |r: Option<std::ops::Range<usize>>| r.and_then(|r| s.get(r)).unwrap_or(&[]);
    let host = get(Some(p.host.clone()));
    if host.is_empty() {
        return Some(Value::Str(Bytes::new()));
    }
    let mut out = Vec::with_capacity(s.len() + 16);
    out.extend_from_slice(b"sip:");
    out.extend_from_slice(host);
    let port = get(p.port.clone());
    if !port.is_empty() {
        out.push(b':');
        out.extend_from_slice(port);
    }
    let proto = get(p.proto.clone());
    if !proto.is_empty() {
        out.extend_from_slice(b";transport=");
        out.extend_from_slice(proto);
    }
    str_val(out)
}

/// `{url.path}`: an HTTP URL up to `?`.
pub fn url_path(v: &Value, _: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    let i = memchr::memchr(b'?', &s).unwrap_or(s.len());
    Some(Value::Str(s.slice(..i)))
}

/// `{url.querystring}`: what follows the first `?` (empty without one).
pub fn url_querystring(v: &Value, _: &[Value]) -> Option<Value> {
    let s = text_of(v)?;
    Some(Value::Str(match memchr::memchr(b'?', &s) {
        Some(i) => s.slice(i + 1..),
        None => Bytes::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(f: fn(&Value, &[Value]) -> Option<Value>, x: &str) -> String {
        match f(&Value::from(x), &[]) {
            Some(Value::Str(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(Value::Int(i)) => format!("#{i}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn urialias() {
        assert_eq!(
            t(urialias_encode, "sip:1.2.3.4:5070;transport=tcp"),
            "1.2.3.4~5070~2"
        );
        assert_eq!(t(urialias_encode, "sip:1.2.3.4"), "1.2.3.4~5060~1");
        assert_eq!(t(urialias_encode, "sip:h;transport=tls"), "h~5061~3");
        assert_eq!(
            t(urialias_decode, "1.2.3.4~5070~2"),
            "sip:1.2.3.4:5070;transport=tcp"
        );
        assert_eq!(t(urialias_decode, "1.2.3.4~5060~1"), "sip:1.2.3.4:5060");
        assert_eq!(t(urialias_decode, "1.2.3.4~5060~9"), "");
    }

    #[test]
    fn vals_and_nums() {
        assert_eq!(val_n0(&Value::Null, &[]), Some(Value::Int(0)));
        assert_eq!(val_ne(&Value::Null, &[]), Some(Value::from("")));
        assert_eq!(t(val_json, "a\"b\n"), "a\\\"b\\n");
        assert_eq!(t(val_jsonqe, "a\"b"), "\"a\\\"b\"");
        assert_eq!(t(val_jsonqe, "ab"), "ab");
        assert_eq!(num_fdigit(&Value::Int(-4321), &[]), Some(Value::Int(4)));
        assert_eq!(num_ldigit(&Value::Int(4321), &[]), Some(Value::Int(1)));
        assert_eq!(num_ldigit(&Value::from("12"), &[]), Some(Value::Int(0)));
    }

    #[test]
    fn sockets_and_urls() {
        assert_eq!(t(sock_host, "udp:1.2.3.4:5060"), "1.2.3.4");
        assert_eq!(t(sock_port, "udp:1.2.3.4:5060"), "5060");
        assert_eq!(t(sock_proto, "UDP:1.2.3.4:5060"), "UDP");
        assert_eq!(t(sock_touri, "tcp:h:5"), "sip:h:5;transport=tcp");
        assert_eq!(t(sock_touri, "h:5"), "sip:h:5");
        assert_eq!(t(sock_touri, "tls:h"), "sip:h;transport=tls");
        assert_eq!(t(sock_host, "[::1]:5060"), "[::1]");
        assert_eq!(t(sock_host, "xyz:h"), "None");
        assert_eq!(t(sock_host, "a:b:c:d"), "None");
        assert_eq!(t(url_path, "/a/b?x=1"), "/a/b");
        assert_eq!(t(url_querystring, "/a/b?x=1"), "x=1");
        assert_eq!(t(url_querystring, "/a/b"), "");
    }
}
