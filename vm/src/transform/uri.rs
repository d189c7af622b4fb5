//! `{uri.*}`, `{param.*}`, `{nameaddr.*}` and `{tobody.*}`, over a small private URI and
//! name-addr splitter (the runtime has the full SIP parser; the vm crate stays independent).

use crate::value::Value;
use bytes::Bytes;

fn input(v: &Value) -> Option<Bytes> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(Bytes::from(i.to_string())),
        Value::Null => None,
    }
}

struct Parts {
    scheme: Bytes,
    user: Bytes,
    passwd: Bytes,
    host: Bytes,
    port: Bytes,
    params: Bytes,
    headers: Bytes,
}

fn split_uri(s: &Bytes) -> Option<Parts> {
    let colon = s.iter().position(|c| *c == b':')?;
    let scheme = s.slice(..colon);
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+')
    {
        return None;
    }
    let rest = s.slice(colon + 1..);
    let (rest, headers) = match rest.iter().position(|c| *c == b'?') {
        Some(q) => (rest.slice(..q), rest.slice(q + 1..)),
        None => (rest.clone(), Bytes::new()),
    };
    let (userinfo, hostpart) = match rest.iter().rposition(|c| *c == b'@') {
        Some(a) => (rest.slice(..a), rest.slice(a + 1..)),
        None => (Bytes::new(), rest.clone()),
    };
    let (user, passwd) = match userinfo.iter().position(|c| *c == b':') {
        Some(p) => (userinfo.slice(..p), userinfo.slice(p + 1..)),
        None => (userinfo.clone(), Bytes::new()),
    };
    let (hostport, params) = match hostpart.iter().position(|c| *c == b';') {
        Some(p) => (hostpart.slice(..p), hostpart.slice(p + 1..)),
        None => (hostpart.clone(), Bytes::new()),
    };
    let (host, port) = if hostport.first() == Some(&b'[') {
        let e = hostport.iter().position(|c| *c == b']')?;
        let h = hostport.slice(..e + 1);
        let p = match hostport.get(e + 1) {
            Some(b':') => hostport.slice(e + 2..),
            _ => Bytes::new(),
        };
        (h, p)
    } else {
        match hostport.iter().position(|c| *c == b':') {
            Some(p) => (hostport.slice(..p), hostport.slice(p + 1..)),
            None => (hostport.clone(), Bytes::new()),
        }
    };
    if host.is_empty() && !scheme.eq_ignore_ascii_case(b"tel") {
        return None;
    }
    Some(Parts {
        scheme,
        user,
        passwd,
        host,
        port,
        params,
        headers,
    })
}

fn with<F: FnOnce(Parts) -> Value>(v: &Value, f: F) -> Option<Value> {
    let s = input(v)?;
    let p = split_uri(&s)?;
    Some(f(p))
}

fn s_or_empty(b: Bytes) -> Value {
    Value::Str(b)
}

pub fn user(v: &Value, _: &[Value]) -> Option<Value> {
    with(v, |p| s_or_empty(p.user))
}
pub fn host(v: &Value, _: &[Value]) -> Option<Value> {
    with(v, |p| s_or_empty(p.host))
}
pub fn port(v: &Value, _: &[Value]) -> Option<Value> {
    with(v, |p| s_or_empty(p.port))
}
pub fn passwd(v: &Value, _: &[Value]) -> Option<Value> {
    with(v, |p| s_or_empty(p.passwd))
}
pub fn params(v: &Value, _: &[Value]) -> Option<Value> {
    with(v, |p| s_or_empty(p.params))
}
pub fn headers(v: &Value, _: &[Value]) -> Option<Value> {
    with(v, |p| s_or_empty(p.headers))
}
pub fn scheme(v: &Value, _: &[Value]) -> Option<Value> {
    with(v, |p| s_or_empty(p.scheme))
}

fn uri_param(v: &Value, name: &[u8]) -> Option<Value> {
    let s = input(v)?;
    let p = split_uri(&s)?;
    Some(find_param(&p.params, name, b';').map_or(Value::from(""), Value::Str))
}

pub fn transport(v: &Value, _: &[Value]) -> Option<Value> {
    uri_param(v, b"transport")
}
pub fn ttl(v: &Value, _: &[Value]) -> Option<Value> {
    uri_param(v, b"ttl")
}
pub fn uparam(v: &Value, _: &[Value]) -> Option<Value> {
    uri_param(v, b"user")
}
pub fn maddr(v: &Value, _: &[Value]) -> Option<Value> {
    uri_param(v, b"maddr")
}
pub fn method(v: &Value, _: &[Value]) -> Option<Value> {
    uri_param(v, b"method")
}
pub fn lr(v: &Value, _: &[Value]) -> Option<Value> {
    uri_param(v, b"lr")
}
pub fn r2(v: &Value, _: &[Value]) -> Option<Value> {
    uri_param(v, b"r2")
}

pub fn param(v: &Value, a: &[Value]) -> Option<Value> {
    let name = input(a.first()?)?;
    uri_param(v, &name)
}

/// `{uri.tosocket}`: `proto:host:port` of the URI.
pub fn tosocket(v: &Value, _: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let p = split_uri(&s)?;
    let proto = find_param(&p.params, b"transport", b';')
        .map(|t| String::from_utf8_lossy(&t).to_ascii_lowercase())
        .unwrap_or_else(|| "udp".into());
    let port = if p.port.is_empty() {
        "5060".to_string()
    } else {
        String::from_utf8_lossy(&p.port).into_owned()
    };
    Some(Value::from(format!(
        "{proto}:{}:{port}",
        String::from_utf8_lossy(&p.host)
    )))
}

/// Splits `a=1;b;c=3` into (name, value) pairs.
fn param_list(s: &Bytes, sep: u8) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut quoted = false;
    while i <= s.len() {
        let c = s.get(i).copied();
        if c == Some(b'"') {
            quoted = !quoted;
        }
        if c.is_none() || (c == Some(sep) && !quoted) {
            let item = s.slice(start..i);
            let t = trim(&item);
            if !t.is_empty() {
                match t.iter().position(|c| *c == b'=') {
                    Some(e) => out.push((trim(&t.slice(..e)), trim(&t.slice(e + 1..)))),
                    None => out.push((t.clone(), Bytes::new())),
                }
            }
            start = i + 1;
        }
        i += 1;
    }
    out
}

fn trim(b: &Bytes) -> Bytes {
    let st = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let en = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(st, |p| p + 1);
    b.slice(st..en.max(st))
}

fn find_param(params: &Bytes, name: &[u8], sep: u8) -> Option<Bytes> {
    param_list(params, sep)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn sep_arg(a: &[Value], i: usize) -> u8 {
    a.get(i)
        .and_then(input)
        .and_then(|s| s.first().copied())
        .unwrap_or(b';')
}

pub fn param_value(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let name = input(a.first()?)?;
    find_param(&s, &name, sep_arg(a, 1)).map(Value::Str)
}

pub fn param_valueat(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let i = a.first()?.as_int()?;
    let l = param_list(&s, sep_arg(a, 1));
    let idx = if i < 0 { l.len() as i64 + i } else { i };
    l.get(usize::try_from(idx).ok()?)
        .map(|(_, v)| Value::Str(v.clone()))
}

pub fn param_name(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let i = a.first()?.as_int()?;
    let l = param_list(&s, sep_arg(a, 1));
    let idx = if i < 0 { l.len() as i64 + i } else { i };
    l.get(usize::try_from(idx).ok()?)
        .map(|(n, _)| Value::Str(n.clone()))
}

pub fn param_count(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    Some(Value::Int(param_list(&s, sep_arg(a, 0)).len() as i64))
}

pub fn param_in(v: &Value, a: &[Value]) -> Option<Value> {
    let s = input(v)?;
    let name = input(a.first()?)?;
    let found = param_list(&s, sep_arg(a, 1))
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(&name));
    Some(Value::Int(if found { 1 } else { 0 }))
}

struct NameAddr {
    display: Bytes,
    uri: Bytes,
    params: Bytes,
    len: usize,
}

fn split_nameaddr(s: &Bytes) -> Option<NameAddr> {
    let t = trim(s);
    match t.iter().position(|c| *c == b'<') {
        Some(lt) => {
            let gt = lt + t[lt..].iter().position(|c| *c == b'>')?;
            let display = trim(&t.slice(..lt));
            let params = t.slice(gt + 1..);
            let params = trim(&params);
            let params = if params.first() == Some(&b';') {
                params.slice(1..)
            } else {
                params
            };
            Some(NameAddr {
                display,
                uri: t.slice(lt + 1..gt),
                params,
                len: gt + 1,
            })
        }
        None => {
            let (uri, params) = match t.iter().position(|c| *c == b';') {
                Some(p) => (t.slice(..p), t.slice(p + 1..)),
                None => (t.clone(), Bytes::new()),
            };
            Some(NameAddr {
                display: Bytes::new(),
                len: uri.len(),
                uri,
                params,
            })
        }
    }
}

pub fn na_name(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Str(split_nameaddr(&input(v)?)?.display))
}
pub fn na_uri(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Str(split_nameaddr(&input(v)?)?.uri))
}
pub fn na_len(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Int(split_nameaddr(&input(v)?)?.len as i64))
}

pub fn tb_uri(v: &Value, _: &[Value]) -> Option<Value> {
    let na = split_nameaddr(&input(v)?)?;
    split_uri(&na.uri)?;
    Some(Value::Str(na.uri))
}
pub fn tb_display(v: &Value, _: &[Value]) -> Option<Value> {
    let na = split_nameaddr(&input(v)?)?;
    let d = na.display;
    let d = if d.len() >= 2 && d.first() == Some(&b'"') && d.last() == Some(&b'"') {
        d.slice(1..d.len() - 1)
    } else {
        d
    };
    Some(Value::Str(d))
}
pub fn tb_tag(v: &Value, _: &[Value]) -> Option<Value> {
    let na = split_nameaddr(&input(v)?)?;
    Some(find_param(&na.params, b"tag", b';').map_or(Value::from(""), Value::Str))
}
pub fn tb_user(v: &Value, _: &[Value]) -> Option<Value> {
    let na = split_nameaddr(&input(v)?)?;
    Some(Value::Str(split_uri(&na.uri)?.user))
}
pub fn tb_host(v: &Value, _: &[Value]) -> Option<Value> {
    let na = split_nameaddr(&input(v)?)?;
    Some(Value::Str(split_uri(&na.uri)?.host))
}
pub fn tb_params(v: &Value, _: &[Value]) -> Option<Value> {
    Some(Value::Str(split_nameaddr(&input(v)?)?.params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn uri_parts() {
        let u = s("sip:alice:pw@example.com:5070;transport=tcp;lr?X=1");
        assert_eq!(user(&u, &[]), Some(s("alice")));
        assert_eq!(passwd(&u, &[]), Some(s("pw")));
        assert_eq!(host(&u, &[]), Some(s("example.com")));
        assert_eq!(port(&u, &[]), Some(s("5070")));
        assert_eq!(transport(&u, &[]), Some(s("tcp")));
        assert_eq!(headers(&u, &[]), Some(s("X=1")));
        assert_eq!(param(&u, &[s("lr")]), Some(s("")));
        assert_eq!(user(&s("nonsense"), &[]), None);
    }

    #[test]
    fn params_and_bodies() {
        assert_eq!(param_value(&s("a=1;b=2"), &[s("b")]), Some(s("2")));
        assert_eq!(param_count(&s("a=1;b=2;c"), &[]), Some(Value::Int(3)));
        let tb = s("\"Alice\" <sip:alice@a.com>;tag=abc");
        assert_eq!(tb_display(&tb, &[]), Some(s("Alice")));
        assert_eq!(tb_tag(&tb, &[]), Some(s("abc")));
        assert_eq!(tb_user(&tb, &[]), Some(s("alice")));
        assert_eq!(na_uri(&tb, &[]), Some(s("sip:alice@a.com")));
    }
}
