//! The core's own exports: `KSR.*`, `KSR.hdr.*` and the native core actions (`forward`,
//! `setflag`, `seturi`, ...). Always loaded.

pub mod actions;
pub mod hdr;
pub mod pvapi;

use super::{ModuleDef, Registrar};
use crate::core::Core;

pub static MODULE: ModuleDef = ModuleDef {
    name: "core",
    params: &[],
    register,
    init: None,
    notice: None,
};

fn register(r: &mut Registrar<'_>) {
    crate::rpc::commands::register(r.rpc);
    actions::register(r);
    hdr::register(r);
    pvapi::register(r);
}

/// Finds one of our sockets by its spec: `proto:host:port`, `host:port`, `host` (with the
/// proto defaulting to any) or a socket name.
pub fn find_socket(core: &Core, spec: &str) -> Option<usize> {
    let spec = spec.trim();
    let (proto, rest) = match spec.split_once(':') {
        Some((p, r)) if crate::transport::Proto::parse(p).is_some() => {
            (crate::transport::Proto::parse(p), r)
        }
        _ => (None, spec),
    };
    let (host, port) = split_host_port(rest);
    core.listeners
        .iter()
        .find(|l| {
            proto.is_none_or(|p| p == l.proto)
                && port.is_none_or(|p| p == l.addr.port())
                && (host_matches(l, host) || l.name.as_deref() == Some(spec))
        })
        .map(|l| l.id)
}

fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h, port);
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

fn host_matches(l: &crate::transport::Listener, host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip == l.addr.ip(),
        Err(_) => l.advertise.as_ref().is_some_and(|(h, _)| h == host),
    }
}

/// A q-value (x1000) as Kamailio prints it: `0.5`, `1`, `0.05`.
pub fn q_text(q: i32) -> String {
    if q >= 1000 {
        return "1".into();
    }
    if q <= 0 {
        return "0".into();
    }
    let s = format!("0.{:03}", q);
    s.trim_end_matches('0').to_string()
}

/// Parses a q-value (`0.5`, `1.0`, `1`) into thousandths.
pub fn parse_q(b: &[u8]) -> Option<i32> {
    let s = std::str::from_utf8(b).ok()?.trim();
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let i: i32 = int.parse().ok()?;
    let mut f = 0;
    for (n, c) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .enumerate()
    {
        f += (c - b'0') as i32 * [100, 10, 1][n];
    }
    let q = i * 1000 + f;
    (0..=1000).contains(&q).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"1"), Some(1000));
        assert_eq!(parse_q(b"1.1"), None);
        assert_eq!(q_text(500), "0.5");
        assert_eq!(q_text(50), "0.05");
        assert_eq!(q_text(1000), "1");
        assert_eq!(split_host_port("[::1]:5060"), ("::1", Some(5060)));
        assert_eq!(split_host_port("1.2.3.4"), ("1.2.3.4", None));
    }
}
