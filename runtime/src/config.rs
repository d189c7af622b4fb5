//! Core global parameters, read from the parsed cfg.
//!
//! Every core parameter Kamailio's grammar accepts parses (that is the front-end's job); here
//! the ones ksr acts on are turned into typed fields. Parameters that only tune Kamailio
//! internals ksr does not have (memory pools, real-time priorities, DNS cache sizes...) are
//! accepted and listed in [`CoreConfig::ignored`] so start-up can say so once; none of them
//! changes routing.

use bytes::Bytes;
use compiler::ast::{self, ItemKind, Literal, ParamValue, SocketSpec, Span};
use std::collections::BTreeMap;

/// A problem with a global parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub span: Span,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Alias {
    pub host: String,
    pub port: Option<u16>,
    pub proto: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub debug: i32,
    pub log_stderror: bool,
    pub log_prefix: Option<Bytes>,
    pub log_prefix_mode: i64,
    pub log_name: Option<String>,
    pub log_facility: Option<String>,
    pub fork: bool,
    pub children: usize,
    /// `None`: same as `children` (Kamailio's default).
    pub tcp_children: Option<usize>,
    pub listen: Vec<SocketSpec>,
    pub port: u16,
    pub aliases: Vec<Alias>,
    pub auto_aliases: bool,
    pub advertised_address: Option<String>,
    pub advertised_port: Option<u16>,
    pub disable_tcp: bool,
    pub tcp_connection_lifetime: u32,
    pub tcp_max_connections: u32,
    pub tcp_connect_timeout: u32,
    pub tcp_send_timeout: u32,
    pub tcp_accept_no_cl: bool,
    pub tcp_msg_read_timeout: u32,
    pub max_while_loops: u32,
    pub max_recursive_level: u32,
    pub max_branches: u32,
    pub latency_cfg_log: i32,
    pub latency_log: i32,
    pub latency_limit_action: u64,
    pub latency_limit_db: u64,
    pub latency_limit_cfg: u64,
    pub server_signature: bool,
    pub server_header: Option<Bytes>,
    pub user_agent_header: Option<Bytes>,
    pub sip_warning: bool,
    pub reply_to_via: bool,
    pub force_rport: bool,
    pub onsend_route_reply: bool,
    pub msg_recv_max_size: usize,
    pub dns_try_ipv6: bool,
    pub dns_srv_lb: bool,
    pub mhomed: bool,
    /// `server_id`: this instance's number (corex `via_add_srvid()` puts it in Via).
    pub server_id: i64,
    /// `xavp_via_params`: xavp whose fields corex `via_add_xavp_params()` adds to Via.
    /// Kamailio 5.6's grammar stores `xavp_via_fields` here too (the last one written wins)
    /// and never sets the via-fields name, so `via_use_xavp_fields()` changes nothing.
    pub xavp_via_params: Option<Bytes>,
    pub cfgengine: Option<String>,
    /// `run_dir`: where control files (RPC FIFO and sockets) go.
    pub run_dir: Option<String>,
    pub mpath: Vec<String>,
    /// `kemi.request_route_callback = "..."` and friends.
    pub kemi_callbacks: BTreeMap<String, String>,
    /// `group.var = value` custom cfg variables.
    pub cfg_vars: BTreeMap<String, Literal>,
    pub ignored: Vec<String>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            debug: crate::log::L_WARN,
            log_stderror: false,
            log_prefix: None,
            log_prefix_mode: 0,
            log_name: None,
            log_facility: None,
            fork: true,
            children: 8,
            tcp_children: None,
            listen: Vec::new(),
            port: 5060,
            aliases: Vec::new(),
            auto_aliases: true,
            advertised_address: None,
            advertised_port: None,
            disable_tcp: false,
            tcp_connection_lifetime: 120,
            tcp_max_connections: 2048,
            tcp_connect_timeout: 10,
            tcp_send_timeout: 10,
            tcp_accept_no_cl: false,
            tcp_msg_read_timeout: 20,
            max_while_loops: 100,
            max_recursive_level: 256,
            max_branches: 12,
            latency_cfg_log: 3,
            latency_log: 0,
            latency_limit_action: 0,
            latency_limit_db: 0,
            latency_limit_cfg: 0,
            server_signature: true,
            server_header: None,
            user_agent_header: None,
            sip_warning: false,
            reply_to_via: false,
            force_rport: false,
            onsend_route_reply: false,
            msg_recv_max_size: 32 * 1024,
            dns_try_ipv6: false,
            dns_srv_lb: false,
            mhomed: false,
            server_id: 0,
            xavp_via_params: None,
            cfgengine: None,
            run_dir: None,
            mpath: Vec::new(),
            kemi_callbacks: BTreeMap::new(),
            cfg_vars: BTreeMap::new(),
            ignored: Vec::new(),
        }
    }
}

/// Canonical spelling of a parameter written with one of Kamailio's aliases.
fn canonical(name: &str) -> &str {
    match name {
        "mem_log" => "memlog",
        "mem_dbg" => "memdbg",
        "dns_rev_via" => "rev_dns",
        "dns_srv_loadbalancing" => "dns_srv_lb",
        "add_rport" => "force_rport",
        "tcp_async" => "tcp_buf_write",
        "shm_mem" | "shm_mem_size" => "shm",
        "ser_kill_timeout" => "exit_timeout",
        "uid" => "user",
        "gid" => "group",
        "wdir" => "workdir",
        "run_dir" => "rundir",
        "tls_disable" => "disable_tls",
        "tls_enable" => "enable_tls",
        other => other,
    }
}

impl CoreConfig {
    /// Reads the global parameters and module-independent top-level statements of `cfg`.
    pub fn from_ast(cfg: &ast::Config) -> Result<CoreConfig, Vec<ConfigError>> {
        let mut c = CoreConfig::default();
        let mut errors = Vec::new();
        for item in &cfg.items {
            match &item.kind {
                ItemKind::GlobalParam { name, value } => {
                    if let Err(message) = c.set(&name.name, value) {
                        errors.push(ConfigError {
                            span: item.span,
                            message,
                        });
                    }
                }
                ItemKind::CfgVar {
                    group, var, value, ..
                } => {
                    // `kemi.request_route_callback = "..."` and friends configure the engines.
                    if group.name == "kemi" {
                        match literal_str(value) {
                            Some(v) => {
                                c.kemi_callbacks.insert(var.name.clone(), v);
                            }
                            None => errors.push(ConfigError {
                                span: item.span,
                                message: format!("kemi.{}: a string is expected", var.name),
                            }),
                        }
                    }
                    c.cfg_vars
                        .insert(format!("{}.{}", group.name, var.name), value.clone());
                }
                ItemKind::CfgEngine { name } => {
                    c.cfgengine = Some(String::from_utf8_lossy(name).into_owned());
                }
                ItemKind::LoadPath { path } => {
                    c.mpath.push(String::from_utf8_lossy(path).into_owned());
                }
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }

    /// Applies one `name = value` global parameter.
    pub fn set(&mut self, name: &str, value: &ParamValue) -> Result<(), String> {
        let name = canonical(name);
        let int = || param_int(name, value);
        let boolean = || param_int(name, value).map(|v| v != 0);
        let string = || param_str(name, value);
        match name {
            "debug" => self.debug = int()? as i32,
            "log_stderror" => self.log_stderror = boolean()?,
            "log_prefix" => self.log_prefix = Some(Bytes::from(string()?)),
            "log_prefix_mode" => self.log_prefix_mode = int()?,
            "log_name" => self.log_name = Some(string()?),
            "log_facility" => self.log_facility = Some(string()?),
            "fork" => self.fork = boolean()?,
            "children" => self.children = positive(name, int()?)?,
            "tcp_children" => self.tcp_children = Some(positive(name, int()?)?),
            "listen" => match value {
                ParamValue::Sockets(s) => self.listen.extend(s.iter().cloned()),
                // `listen="udp:1.2.3.4:5060"` (often from a #!define'd string).
                ParamValue::Literal(Literal::Str(s)) => self
                    .listen
                    .push(socket_from_text(&String::from_utf8_lossy(s))?),
                other => return Err(format!("listen: unexpected value {other:?}")),
            },
            "socket" => match value {
                ParamValue::SocketBlock(attrs) => self.listen.push(socket_from_block(attrs)?),
                other => return Err(format!("socket: unexpected value {other:?}")),
            },
            "port" => self.port = port(name, int()?)?,
            "alias" | "domain" => match value {
                ParamValue::Sockets(s) => self.aliases.extend(s.iter().map(|s| Alias {
                    host: s.host.clone(),
                    port: s.port,
                    proto: s.proto.clone(),
                })),
                _ => self.aliases.push(Alias {
                    host: string()?,
                    port: None,
                    proto: None,
                }),
            },
            "auto_aliases" => self.auto_aliases = boolean()?,
            "advertised_address" => self.advertised_address = Some(string()?),
            "advertised_port" => self.advertised_port = Some(port(name, int()?)?),
            "disable_tcp" => self.disable_tcp = boolean()?,
            "tcp_connection_lifetime" => self.tcp_connection_lifetime = int()?.max(0) as u32,
            "tcp_max_connections" => self.tcp_max_connections = int()?.max(0) as u32,
            "tcp_connect_timeout" => self.tcp_connect_timeout = int()?.max(0) as u32,
            "tcp_send_timeout" => self.tcp_send_timeout = int()?.max(0) as u32,
            "tcp_accept_no_cl" => self.tcp_accept_no_cl = boolean()?,
            "tcp_msg_read_timeout" => self.tcp_msg_read_timeout = int()?.max(0) as u32,
            "max_while_loops" => self.max_while_loops = int()?.max(0) as u32,
            "max_recursive_level" => self.max_recursive_level = int()?.max(0) as u32,
            "max_branches" => self.max_branches = int()?.clamp(1, 31) as u32,
            "latency_cfg_log" => self.latency_cfg_log = int()? as i32,
            "latency_log" => self.latency_log = int()? as i32,
            "latency_limit_action" => self.latency_limit_action = int()?.max(0) as u64,
            "latency_limit_db" => self.latency_limit_db = int()?.max(0) as u64,
            "latency_limit_cfg" => self.latency_limit_cfg = int()?.max(0) as u64,
            "server_signature" => self.server_signature = boolean()?,
            "server_header" => self.server_header = Some(Bytes::from(string()?)),
            "user_agent_header" => self.user_agent_header = Some(Bytes::from(string()?)),
            "sip_warning" => self.sip_warning = boolean()?,
            "reply_to_via" => self.reply_to_via = boolean()?,
            "force_rport" => self.force_rport = boolean()?,
            "onsend_route_reply" => self.onsend_route_reply = boolean()?,
            "msg_recv_max_size" => self.msg_recv_max_size = int()?.max(1024) as usize,
            "dns_try_ipv6" => self.dns_try_ipv6 = boolean()?,
            "dns_srv_lb" => self.dns_srv_lb = boolean()?,
            "mhomed" => self.mhomed = boolean()?,
            "server_id" => self.server_id = int()?,
            "xavp_via_params" | "xavp_via_fields" => {
                self.xavp_via_params = Some(Bytes::from(string()?))
            }
            "rundir" => self.run_dir = Some(string()?),
            "kemi" => {
                if let ParamValue::Keyed { key, value } = value {
                    let v = literal_str(value)
                        .ok_or_else(|| format!("kemi.{key}: a string is expected"))?;
                    self.kemi_callbacks.insert(key.clone(), v);
                }
            }
            // Accepted: they tune Kamailio internals that ksr has no equivalent for, or
            // features whose absence cannot change how a message is routed.
            _ => self.ignored.push(name.to_string()),
        }
        Ok(())
    }

    /// Number of TCP workers.
    pub fn tcp_workers(&self) -> usize {
        self.tcp_children.unwrap_or(self.children).max(1)
    }

    /// KEMI callback name for a route, honouring `kemi.*_callback` overrides.
    pub fn kemi_callback(&self, key: &str, default: &str) -> String {
        self.kemi_callbacks
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
}

fn positive(name: &str, v: i64) -> Result<usize, String> {
    if v <= 0 {
        return Err(format!("{name}: must be greater than 0 (got {v})"));
    }
    Ok(v as usize)
}

fn port(name: &str, v: i64) -> Result<u16, String> {
    u16::try_from(v).map_err(|_| format!("{name}: invalid port {v}"))
}

fn literal_str(l: &Literal) -> Option<String> {
    match l {
        Literal::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
        Literal::Ident(s) => Some(s.clone()),
        Literal::Int(_) => None,
    }
}

fn param_int(name: &str, value: &ParamValue) -> Result<i64, String> {
    match value {
        ParamValue::Literal(Literal::Int(i)) => Ok(*i),
        ParamValue::Literal(Literal::Str(s)) => std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("{name}: a number is expected")),
        _ => Err(format!("{name}: a number is expected")),
    }
}

fn param_str(name: &str, value: &ParamValue) -> Result<String, String> {
    match value {
        ParamValue::Literal(l) => match l {
            Literal::Int(i) => Ok(i.to_string()),
            other => literal_str(other).ok_or_else(|| format!("{name}: a string is expected")),
        },
        ParamValue::Host(h) => Ok(h.clone()),
        ParamValue::Sockets(s) if s.len() == 1 => Ok(s[0].host.clone()),
        _ => Err(format!("{name}: a string is expected")),
    }
}

/// Parses `[proto:]host[:port]` text.
fn socket_from_text(t: &str) -> Result<SocketSpec, String> {
    let t = t.trim();
    let (proto, rest) = match t.split_once(':') {
        Some((p, r)) if crate::transport::Proto::parse(p).is_some() => {
            (Some(p.to_ascii_lowercase()), r)
        }
        _ => (None, t),
    };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| format!("listen: bad address '{t}'"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            _ => (rest.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("listen: bad port in '{t}'"))?,
        ),
        None => None,
    };
    Ok(SocketSpec {
        proto,
        host,
        port,
        ..SocketSpec::default()
    })
}

/// `socket = { bind = udp:1.2.3.4:5060; advertise = ...; name = "..."; }`.
fn socket_from_block(attrs: &[(ast::Ident, ast::SocketAttr)]) -> Result<SocketSpec, String> {
    let mut spec: Option<SocketSpec> = None;
    let mut advertise = None;
    let mut name = None;
    let mut is_virtual = false;
    for (key, attr) in attrs {
        match (key.name.as_str(), attr) {
            ("bind", ast::SocketAttr::Socket(s)) => spec = Some(s.clone()),
            ("advertise", ast::SocketAttr::Socket(s)) => advertise = Some(Box::new(s.clone())),
            ("name", ast::SocketAttr::Literal(l)) => name = literal_str(l).map(Bytes::from),
            ("virtual", ast::SocketAttr::Literal(Literal::Int(v))) => is_virtual = *v != 0,
            _ => {}
        }
    }
    let mut spec = spec.ok_or_else(|| "socket: missing 'bind' attribute".to_string())?;
    if advertise.is_some() {
        spec.advertise = advertise;
    }
    if name.is_some() {
        spec.name = name;
    }
    spec.is_virtual |= is_virtual;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::ast::{Config, Ident, Item};

    fn param(name: &str, value: ParamValue) -> Item {
        Item {
            kind: ItemKind::GlobalParam {
                name: Ident {
                    name: name.into(),
                    span: Span::default(),
                },
                value,
            },
            span: Span::default(),
        }
    }

    #[test]
    fn reads_typed_params_and_keeps_unknown_ones_as_ignored() {
        let cfg = Config {
            items: vec![
                param("debug", ParamValue::Literal(Literal::Int(3))),
                param("children", ParamValue::Literal(Literal::Int(4))),
                param("shm_mem", ParamValue::Literal(Literal::Int(64))),
                param(
                    "log_prefix",
                    ParamValue::Literal(Literal::Str(Bytes::from_static(b"P "))),
                ),
            ],
        };
        let c = CoreConfig::from_ast(&cfg).unwrap();
        assert_eq!(c.debug, 3);
        assert_eq!(c.children, 4);
        assert_eq!(c.tcp_workers(), 4);
        assert_eq!(c.log_prefix.as_deref(), Some(&b"P "[..]));
        assert_eq!(c.ignored, vec!["shm".to_string()]);
    }

    #[test]
    fn rejects_bad_values_with_the_item_span() {
        let cfg = Config {
            items: vec![param("children", ParamValue::Literal(Literal::Int(0)))],
        };
        let errs = CoreConfig::from_ast(&cfg).unwrap_err();
        assert!(errs[0].message.contains("children"));
    }
}
