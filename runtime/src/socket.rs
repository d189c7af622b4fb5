//! Listening sockets from `listen=`/`port=`/`socket=`, and the `myself` check.

use crate::config::CoreConfig;
use crate::transport::{Listener, Proto};
use compiler::ast::SocketSpec;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Expands the configured listen specs into concrete sockets. Without any `listen`, binds
/// every local interface address on `port`, like Kamailio.
pub fn resolve_listeners(cfg: &CoreConfig) -> Result<Vec<Listener>, String> {
    let mut out: Vec<Listener> = Vec::new();
    let protos_for = |spec_proto: &Option<String>| -> Result<Vec<Proto>, String> {
        match spec_proto {
            Some(p) => {
                let proto = Proto::parse(p).ok_or_else(|| format!("unknown protocol '{p}'"))?;
                match proto {
                    Proto::Udp | Proto::Tcp => Ok(vec![proto]),
                    other => Err(format!(
                        "listen: protocol {other} is not supported by ksr (udp and tcp are)"
                    )),
                }
            }
            None if cfg.disable_tcp => Ok(vec![Proto::Udp]),
            None => Ok(vec![Proto::Udp, Proto::Tcp]),
        }
    };
    let specs: Vec<SocketSpec> = if cfg.listen.is_empty() {
        vec![SocketSpec {
            host: "*".into(),
            ..SocketSpec::default()
        }]
    } else {
        cfg.listen.clone()
    };
    for spec in &specs {
        let protos = protos_for(&spec.proto)?;
        if protos.contains(&Proto::Tcp) && cfg.disable_tcp && spec.proto.is_some() {
            return Err("listen: tcp socket configured but disable_tcp=yes".into());
        }
        let ips = host_addresses(&spec.host)?;
        let first = spec.port.unwrap_or(cfg.port);
        let last = spec.port_end.unwrap_or(first);
        if last < first {
            return Err(format!("listen: bad port range {first}-{last}"));
        }
        let advertise = match (&spec.advertise, &cfg.advertised_address) {
            (Some(a), _) => Some((a.host.clone(), a.port.unwrap_or(0))),
            (None, Some(h)) => Some((h.clone(), cfg.advertised_port.unwrap_or(0))),
            // Only a port advertised: the host stays the socket address.
            (None, None) => cfg.advertised_port.map(|p| (String::new(), p)),
        };
        for port in first..=last {
            for ip in &ips {
                for proto in &protos {
                    let addr = SocketAddr::new(*ip, port);
                    if out.iter().any(|l| l.addr == addr && l.proto == *proto) {
                        continue;
                    }
                    out.push(Listener {
                        id: out.len(),
                        proto: *proto,
                        addr,
                        advertise: advertise.clone(),
                        name: spec
                            .name
                            .as_ref()
                            .map(|n| String::from_utf8_lossy(n).into_owned()),
                    });
                }
            }
        }
    }
    if out.is_empty() {
        return Err("no listening socket could be configured".into());
    }
    Ok(out)
}

/// Addresses a listen host stands for: an IP, `*` (all interfaces), an interface name or a
/// host name resolved through the system resolver.
fn host_addresses(host: &str) -> Result<Vec<IpAddr>, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let ifaces = if_addrs::get_if_addrs().unwrap_or_default();
    if h == "*" {
        let mut v: Vec<IpAddr> = ifaces
            .iter()
            .map(|i| i.ip())
            .filter(|ip| ip.is_ipv4())
            .collect();
        v.dedup();
        if v.is_empty() {
            v.push(IpAddr::from([127, 0, 0, 1]));
        }
        return Ok(v);
    }
    let by_iface: Vec<IpAddr> = ifaces
        .iter()
        .filter(|i| i.name == h)
        .map(|i| i.ip())
        .collect();
    if !by_iface.is_empty() {
        return Ok(by_iface);
    }
    let resolved: Vec<IpAddr> = (h, 0)
        .to_socket_addrs()
        .map_err(|e| format!("listen: cannot resolve '{h}': {e}"))?
        .map(|a| a.ip())
        .collect();
    resolved
        .into_iter()
        .next()
        .map(|ip| vec![ip])
        .ok_or_else(|| format!("listen: '{h}' has no address"))
}

/// Decides whether a host/port names this server (`uri == myself`, `is_myself()`).
#[derive(Clone, Debug, Default)]
pub struct Myself {
    /// Listen addresses (and advertised names) with their port and protocol.
    sockets: Vec<(HostKey, u16, Proto)>,
    /// `alias=` entries: host, optional port (None: any), optional proto.
    aliases: Vec<(HostKey, Option<u16>, Option<Proto>)>,
}

/// A host in canonical form. Addresses are kept parsed so a check compares `IpAddr`s instead
/// of formatting the candidate host into a new string on every message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostKey {
    Ip(IpAddr),
    /// Lower case.
    Name(String),
}

impl HostKey {
    fn new(h: &str) -> HostKey {
        match parse_ip(h) {
            Some(ip) => HostKey::Ip(ip),
            None => HostKey::Name(unbracket(h).to_ascii_lowercase()),
        }
    }
}

fn unbracket(h: &str) -> &str {
    h.trim_start_matches('[').trim_end_matches(']')
}

fn parse_ip(h: &str) -> Option<IpAddr> {
    unbracket(h).parse::<IpAddr>().ok()
}

/// A host taken from a message, ready to be compared without allocating.
enum Candidate<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

impl<'a> Candidate<'a> {
    fn new(h: &'a str) -> Candidate<'a> {
        match parse_ip(h) {
            Some(ip) => Candidate::Ip(ip),
            None => Candidate::Name(unbracket(h)),
        }
    }

    fn is(&self, key: &HostKey) -> bool {
        match (self, key) {
            (Candidate::Ip(a), HostKey::Ip(b)) => a == b,
            (Candidate::Name(a), HostKey::Name(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl Myself {
    /// The `alias=` (and automatic) host aliases as (host, port (0 = any), protocol name or
    /// `*`), for `corex.list_aliases`: newest first, as Kamailio keeps them.
    pub fn alias_list(&self) -> Vec<(String, u16, &'static str)> {
        self.aliases
            .iter()
            .rev()
            .map(|(h, port, proto)| {
                let host = match h {
                    HostKey::Ip(ip) => ip.to_string(),
                    HostKey::Name(n) => n.clone(),
                };
                (host, port.unwrap_or(0), proto.map_or("*", Proto::as_str))
            })
            .collect()
    }

    pub fn new(listeners: &[Listener], cfg: &CoreConfig) -> Myself {
        let mut m = Myself::default();
        for l in listeners {
            m.sockets
                .push((HostKey::Ip(l.addr.ip()), l.addr.port(), l.proto));
            if let Some((h, p)) = &l.advertise
                && !h.is_empty()
            {
                let port = if *p == 0 { l.addr.port() } else { *p };
                m.sockets.push((HostKey::new(h), port, l.proto));
            }
        }
        for a in &cfg.aliases {
            m.aliases.push((
                HostKey::new(&a.host),
                a.port,
                a.proto.as_deref().and_then(Proto::parse),
            ));
        }
        if cfg.auto_aliases
            && let Ok(name) = hostname()
        {
            // Kamailio adds the names its listen addresses resolve back to; the local host
            // name is the one that matters in practice.
            let sockets: Vec<(u16, Proto)> = m.sockets.iter().map(|s| (s.1, s.2)).collect();
            for (port, proto) in sockets {
                m.aliases
                    .push((HostKey::new(&name), Some(port), Some(proto)));
            }
        }
        m
    }

    /// Adds an alias at run time (`KSR.corex.add_alias`, `alias=` from RPC...).
    pub fn add_alias(&mut self, host: &str, port: Option<u16>, proto: Option<Proto>) {
        self.aliases.push((HostKey::new(host), port, proto));
    }

    /// True when `host:port` (port 0/None = the default 5060) over `proto` (None = any) is
    /// one of our sockets or aliases.
    pub fn check(&self, host: &[u8], port: Option<u16>, proto: Option<Proto>) -> bool {
        let Ok(host) = std::str::from_utf8(host) else {
            return false;
        };
        let host = Candidate::new(host);
        let port = match port {
            None | Some(0) => 5060,
            Some(p) => p,
        };
        let proto_ok = |p: Proto| proto.is_none_or(|want| want == p);
        self.sockets
            .iter()
            .any(|(h, p, pr)| *p == port && proto_ok(*pr) && host.is(h))
            || self.aliases.iter().any(|(h, p, pr)| {
                p.is_none_or(|p| p == port) && pr.is_none_or(proto_ok) && host.is(h)
            })
    }

    /// Like [`Myself::check`] with any port matching: Kamailio's `check_self` with port 0,
    /// what `is_myself("sip:host")` and `KSR.is_myself("1.2.3.4")` ask.
    pub fn check_any_port(&self, host: &[u8], proto: Option<Proto>) -> bool {
        let Ok(host) = std::str::from_utf8(host) else {
            return false;
        };
        let host = Candidate::new(host);
        let proto_ok = |p: Proto| proto.is_none_or(|want| want == p);
        self.sockets
            .iter()
            .any(|(h, _, pr)| proto_ok(*pr) && host.is(h))
            || self
                .aliases
                .iter()
                .any(|(h, _, pr)| pr.is_none_or(proto_ok) && host.is(h))
    }

    /// True when `ip` is one of our listen addresses (any port), for `src_ip == myself`.
    pub fn check_ip(&self, ip: IpAddr) -> bool {
        self.sockets.iter().any(|(h, _, _)| *h == HostKey::Ip(ip))
    }
}

fn hostname() -> Result<String, ()> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(());
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Alias;

    fn spec(proto: Option<&str>, host: &str, port: Option<u16>) -> SocketSpec {
        SocketSpec {
            proto: proto.map(String::from),
            host: host.into(),
            port,
            ..SocketSpec::default()
        }
    }

    #[test]
    fn expands_listen_specs() {
        let cfg = CoreConfig {
            listen: vec![
                spec(Some("udp"), "127.0.0.1", Some(5070)),
                spec(None, "[::1]", None),
            ],
            port: 5080,
            ..CoreConfig::default()
        };
        let l = resolve_listeners(&cfg).unwrap();
        let got: Vec<String> = l.iter().map(|l| l.sock_str()).collect();
        assert_eq!(
            got,
            vec!["udp:127.0.0.1:5070", "udp:[::1]:5080", "tcp:[::1]:5080"]
        );
        let bad = CoreConfig {
            listen: vec![spec(Some("tls"), "127.0.0.1", None)],
            ..CoreConfig::default()
        };
        assert!(
            resolve_listeners(&bad)
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn myself_matches_sockets_and_aliases() {
        let cfg = CoreConfig {
            listen: vec![spec(Some("udp"), "127.0.0.1", Some(5070))],
            aliases: vec![Alias {
                host: "Example.COM".into(),
                port: None,
                proto: None,
            }],
            auto_aliases: false,
            ..CoreConfig::default()
        };
        let l = resolve_listeners(&cfg).unwrap();
        let m = Myself::new(&l, &cfg);
        assert!(m.check(b"127.0.0.1", Some(5070), None));
        assert!(
            !m.check(b"127.0.0.1", None, None),
            "default port 5060 differs"
        );
        assert!(!m.check(b"127.0.0.1", Some(5070), Some(Proto::Tcp)));
        assert!(m.check(b"example.com", Some(1234), None));
        assert!(!m.check(b"other.com", Some(5070), None));
        assert!(m.check_ip("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn myself_compares_addresses_not_spellings() {
        let cfg = CoreConfig {
            listen: vec![spec(Some("udp"), "::1", Some(5070))],
            aliases: vec![Alias {
                host: "10.0.0.1".into(),
                port: Some(5080),
                proto: None,
            }],
            auto_aliases: false,
            ..CoreConfig::default()
        };
        let l = resolve_listeners(&cfg).unwrap();
        let m = Myself::new(&l, &cfg);
        assert!(m.check(b"[::1]", Some(5070), None));
        assert!(m.check(b"[0:0:0:0:0:0:0:1]", Some(5070), None));
        assert!(m.check_any_port(b"::1", Some(Proto::Udp)));
        assert!(m.check(b"10.0.0.1", Some(5080), None));
        assert!(!m.check(b"10.0.0.1", Some(5081), None));
        assert!(!m.check(b"10.0.0.10", Some(5080), None));
        assert!(!m.check_any_port(b"\xff", None));
    }
}
