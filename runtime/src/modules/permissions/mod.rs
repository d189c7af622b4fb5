//! Kamailio's `permissions` module: the `address` table (group, IP or subnet, port, tag)
//! loaded from `db_url` into memory and matched against the source address or given ones,
//! the `trusted` table (`trusted.rs`, `allow_trusted`), and the
//! `permissions.addressReload` / `addressDump` / `subnetDump` / `trustedReload` /
//! `trustedDump` RPCs, and the allow/deny files of `allow_routing` / `allow_register`
//! (`rules.rs`; relative file names are taken from the working directory, Kamailio takes
//! them from the cfg file's) and `allow_uri`. The address file (`address_file`) is not
//! implemented.

pub mod rules;
pub mod trusted;

use super::core::actions::{arg_bytes, arg_int};
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::core::Core;
use crate::ctx::Ctx;
use crate::db::{self, DbHandle, DbVal};
use crate::log::{L_ERR, L_INFO};
use crate::rpc::RpcError;
use bytes::Bytes;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "permissions",
    params: &[
        ParamDef::str("db_url"),
        ParamDef::str("address_table"),
        ParamDef::str("grp_col"),
        ParamDef::str("ip_addr_col"),
        ParamDef::str("mask_col"),
        ParamDef::str("port_col"),
        ParamDef::str("tag_col"),
        ParamDef::str("peer_tag_avp"),
        ParamDef::int("peer_tag_mode"),
        ParamDef::int("db_mode"),
        ParamDef::int("load_backends"),
        ParamDef::str("trusted_table"),
        ParamDef::str("source_col"),
        ParamDef::str("proto_col"),
        ParamDef::str("from_col"),
        ParamDef::str("ruri_col"),
        ParamDef::str("priority_col"),
        ParamDef::str("default_allow_file"),
        ParamDef::str("default_deny_file"),
        ParamDef::int("check_all_branches"),
        ParamDef::str("allow_suffix"),
        ParamDef::str("deny_suffix"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// One row of the address table.
#[derive(Clone, Debug, PartialEq)]
pub struct AddrEntry {
    pub grp: i64,
    /// `None` for a domain name entry (matched as text against the address).
    pub ip: Option<IpAddr>,
    pub name: String,
    pub mask: u32,
    pub port: u16,
    pub tag: Option<String>,
}

impl AddrEntry {
    fn is_subnet(&self) -> bool {
        match self.ip {
            Some(IpAddr::V4(_)) => self.mask < 32,
            Some(IpAddr::V6(_)) => self.mask < 128,
            None => false,
        }
    }

    fn matches(&self, ip: &IpAddr, ip_text: &str, port: u16) -> bool {
        if self.port != 0 && self.port != port {
            return false;
        }
        match (&self.ip, ip) {
            (Some(IpAddr::V4(a)), IpAddr::V4(b)) => {
                let m = if self.mask >= 32 {
                    u32::MAX
                } else {
                    !(u32::MAX >> self.mask)
                };
                (u32::from(*a) & m) == (u32::from(*b) & m)
            }
            (Some(IpAddr::V6(a)), IpAddr::V6(b)) => {
                let m = if self.mask >= 128 {
                    u128::MAX
                } else {
                    !(u128::MAX >> self.mask)
                };
                (u128::from(*a) & m) == (u128::from(*b) & m)
            }
            (None, _) => self.name.eq_ignore_ascii_case(ip_text),
            _ => false,
        }
    }
}

#[derive(Default)]
pub struct PermissionsState {
    /// Exact addresses first, then subnets, then names (Kamailio's lookup order).
    pub entries: RwLock<Arc<Vec<AddrEntry>>>,
    pub db: Option<DbHandle>,
    pub cols: Cols,
    pub tag_avp: Option<Bytes>,
    pub tag_mode_all: bool,
    pub trusted_cols: trusted::TrustedCols,
    /// `db_mode=1`: the trusted table is held in `trusted`.
    pub trusted_cached: bool,
    /// `load_backends` includes the trusted table and a database is configured.
    pub trusted_loaded: bool,
    pub trusted: RwLock<Arc<Vec<trusted::TrustedEntry>>>,
    /// Allow/deny rule files by (allow, deny) path, read on first use.
    pub rule_sets: Mutex<HashMap<(PathBuf, PathBuf), Arc<RuleSet>>>,
    pub files: FileParams,
}

/// Rules of one allow file and one deny file.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub allow: Vec<rules::Rule>,
    pub deny: Vec<rules::Rule>,
}

#[derive(Clone, Debug, Default)]
pub struct FileParams {
    pub dir: PathBuf,
    pub default_allow: String,
    pub default_deny: String,
    pub allow_suffix: String,
    pub deny_suffix: String,
    pub check_all_branches: bool,
}

#[derive(Clone, Debug)]
pub struct Cols {
    pub table: String,
    pub grp: String,
    pub ip: String,
    pub mask: String,
    pub port: String,
    pub tag: String,
}

impl Default for Cols {
    fn default() -> Self {
        Cols {
            table: "address".into(),
            grp: "grp".into(),
            ip: "ip_addr".into(),
            mask: "mask".into(),
            port: "port".into(),
            tag: "tag".into(),
        }
    }
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.permissions;
    st.cols = Cols {
        table: p.str_or("address_table", "address"),
        grp: p.str_or("grp_col", "grp"),
        ip: p.str_or("ip_addr_col", "ip_addr"),
        mask: p.str_or("mask_col", "mask"),
        port: p.str_or("port_col", "port"),
        tag: p.str_or("tag_col", "tag"),
    };
    if let Some(a) = p.str("peer_tag_avp").filter(|s| !s.is_empty()) {
        st.tag_avp = Some(
            super::nathelper::avp_name_of(&a)
                .map_err(|e| format!("permissions: peer_tag_avp: {e}"))?,
        );
    }
    st.tag_mode_all = p.int("peer_tag_mode", 0) != 0;
    st.files = FileParams {
        dir: ictx.workdir.to_path_buf(),
        default_allow: p.str_or("default_allow_file", "permissions.allow"),
        default_deny: p.str_or("default_deny_file", "permissions.deny"),
        allow_suffix: p.str_or("allow_suffix", ".allow"),
        deny_suffix: p.str_or("deny_suffix", ".deny"),
        check_all_branches: p.int("check_all_branches", 1) != 0,
    };
    st.trusted_cols = trusted::TrustedCols {
        table: p.str_or("trusted_table", "trusted"),
        source: p.str_or("source_col", "src_ip"),
        proto: p.str_or("proto_col", "proto"),
        from: p.str_or("from_col", "from_pattern"),
        ruri: p.str_or("ruri_col", "ruri_pattern"),
        tag: p.str_or("tag_col", "tag"),
        priority: p.str_or("priority_col", "priority"),
    };
    let db_mode = p.int("db_mode", 0);
    if db_mode != 0 && db_mode != 1 {
        return Err(format!("permissions: invalid db_mode value: {db_mode}"));
    }
    st.trusted_cached = db_mode == 1;
    let backends = p.int("load_backends", 0xff);
    let Some(url) = p.str("db_url").filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let h = db::open(&url, ictx.workdir).map_err(|e| format!("permissions: {e}"))?;
    if backends & 1 != 0 {
        let list = load(&h, &st.cols).map_err(|e| format!("permissions: {e}"))?;
        crate::klog!(
            L_INFO,
            "permissions",
            "{} address entries loaded",
            list.len()
        );
        st.entries = RwLock::new(Arc::new(list));
    }
    if backends & 2 != 0 {
        st.trusted_loaded = true;
        if st.trusted_cached {
            let rows = trusted::query(&h, &st.trusted_cols, None)
                .map_err(|e| format!("permissions: {e}"))?;
            let list = trusted::cache(rows).map_err(|e| format!("permissions: {e}"))?;
            st.trusted = RwLock::new(Arc::new(list));
        }
    }
    st.db = Some(h);
    Ok(())
}

/// Reads the address table; bad rows are logged and skipped.
pub fn load(h: &DbHandle, cols: &Cols) -> Result<Vec<AddrEntry>, db::DbError> {
    let rows = db::with(h, |d| {
        if cols.table == "address" {
            d.ensure_table("address", &[])?;
        }
        d.select(
            &cols.table,
            &[&cols.grp, &cols.ip, &cols.mask, &cols.port, &cols.tag],
            &[],
            None,
        )
    })?;
    let mut exact = Vec::new();
    let mut subnets = Vec::new();
    let mut names = Vec::new();
    for r in rows {
        let [g, ip, mask, port, tag] = &r[..] else {
            continue;
        };
        let name = ip.to_text();
        let parsed = name.parse::<IpAddr>().ok();
        let max = match parsed {
            Some(IpAddr::V6(_)) => 128,
            _ => 32,
        };
        let mask = mask.as_int().unwrap_or(max as i64);
        let port = port.as_int().unwrap_or(0);
        if !(0..=max as i64).contains(&mask) || !(0..=65535).contains(&port) {
            crate::klog!(
                L_ERR,
                "permissions",
                "bad address table row for '{name}' (mask {mask}, port {port}), skipped"
            );
            continue;
        }
        let e = AddrEntry {
            grp: g.as_int().unwrap_or(0),
            ip: parsed,
            name,
            mask: mask as u32,
            port: port as u16,
            tag: match tag {
                DbVal::Null => None,
                t => Some(t.to_text()),
            },
        };
        if e.ip.is_none() {
            names.push(e);
        } else if e.is_subnet() {
            subnets.push(e);
        } else {
            exact.push(e);
        }
    }
    // Kamailio's hash buckets put the last loaded entry first; its subnet table is kept
    // sorted by group.
    exact.reverse();
    subnets.sort_by_key(|e| e.grp);
    exact.extend(subnets);
    exact.extend(names);
    Ok(exact)
}

fn entries(c: &Ctx) -> Arc<Vec<AddrEntry>> {
    c.core
        .m
        .permissions
        .entries
        .read()
        .map(|g| g.clone())
        .unwrap_or_default()
}

/// Matches `ip:port` against `group` (or any group when `None`): the matching entry's group.
fn find(c: &mut Ctx, group: Option<i64>, ip: &[u8], port: u16) -> Option<i64> {
    let txt = std::str::from_utf8(ip).ok()?;
    let txt = txt
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(txt);
    let Ok(addr) = txt.parse::<IpAddr>() else {
        crate::klog!(L_ERR, "permissions", "address '{txt}' is not an IP address");
        return None;
    };
    let list = entries(c);
    let e = list
        .iter()
        .find(|e| group.is_none_or(|g| g == e.grp) && e.matches(&addr, txt, port))?;
    if let Some(name) = c.core.m.permissions.tag_avp.clone()
        && let Some(t) = &e.tag
    {
        c.avps.insert(0, (name, Value::Str(Bytes::from(t.clone()))));
    }
    Some(e.grp)
}

fn src(c: &Ctx) -> (Bytes, u16) {
    (Bytes::from(c.rcv.src.ip().to_string()), c.rcv.src.port())
}

fn port_of(v: i64) -> u16 {
    u16::try_from(v).unwrap_or(0)
}

fn register(r: &mut Registrar<'_>) {
    let any = RouteMask::ANY;
    r.kemi(
        "permissions",
        "allow_source_address",
        &[I],
        RetType::Int,
        |c, a| {
            let (ip, port) = src(c);
            let g = arg_int(a, 0);
            Value::Int(if find(c, Some(g), &ip, port).is_some() {
                1
            } else {
                -1
            })
        },
    )
    .native("allow_source_address", any);
    r.native("allow_source_address", &[], any, |c, _| {
        let (ip, port) = src(c);
        Value::Int(if find(c, Some(1), &ip, port).is_some() {
            1
        } else {
            -1
        })
    });
    r.kemi(
        "permissions",
        "allow_address",
        &[I, S, I],
        RetType::Int,
        |c, a| {
            let g = arg_int(a, 0);
            let ip = arg_bytes(a, 1);
            let port = port_of(arg_int(a, 2));
            Value::Int(if find(c, Some(g), &ip, port).is_some() {
                1
            } else {
                -1
            })
        },
    )
    .native("allow_address", any);
    r.kemi(
        "permissions",
        "allow_source_address_group",
        &[],
        RetType::Int,
        |c, _| {
            let (ip, port) = src(c);
            Value::Int(find(c, None, &ip, port).unwrap_or(-1))
        },
    )
    .native("allow_source_address_group", any);
    r.kemi(
        "permissions",
        "allow_address_group",
        &[S, I],
        RetType::Int,
        |c, a| {
            let ip = arg_bytes(a, 0);
            let port = port_of(arg_int(a, 1));
            Value::Int(find(c, None, &ip, port).unwrap_or(-1))
        },
    )
    .native("allow_address_group", any);
    r.kemi("permissions", "allow_trusted", &[], RetType::Int, |c, _| {
        let (ip, _) = src(c);
        let from = from_uri(c);
        let proto = c.rcv.proto;
        Value::Int(trusted::allow(
            c,
            &String::from_utf8_lossy(&ip),
            Some(proto),
            &from,
        ))
    })
    .native("allow_trusted", any);
    r.native("allow_trusted", &[S, S], any, |c, a| {
        let from = from_uri(c);
        trusted_args(c, a, &from)
    });
    r.native("allow_trusted", &[S, S, S], any, |c, a| {
        let from = String::from_utf8_lossy(&arg_bytes(a, 2)).into_owned();
        trusted_args(c, a, &from)
    });
    r.native("allow_routing", &[], any, |c, a| {
        let set = files_of(c, a);
        Value::Int(check_routing(c, &set))
    });
    r.native("allow_routing", &[S], any, |c, a| {
        let set = files_of(c, a);
        Value::Int(check_routing(c, &set))
    });
    r.native("allow_routing", &[S, S], any, |c, a| {
        let set = files_of(c, a);
        Value::Int(check_routing(c, &set))
    });
    let req_fail = RouteMask(1 | 2);
    r.native("allow_uri", &[S, S], req_fail, |c, a| {
        let set = files_of(c, &a[..a.len().min(1)]);
        let pv = arg_bytes(a, 1);
        Value::Int(check_uri(c, &set, &pv))
    })
    .hints(&[vm::ksr::ParamHint::Plain, vm::ksr::ParamHint::PvName]);
    r.native("allow_register", &[S], req_fail, |c, a| {
        let set = files_of(c, a);
        Value::Int(check_register(c, &set))
    });
    r.native("allow_register", &[S, S], req_fail, |c, a| {
        let set = files_of(c, a);
        Value::Int(check_register(c, &set))
    });
    r.rpc.add(
        "permissions.trustedReload",
        "Reload the trusted table from the database.",
        rpc_trusted_reload,
    );
    r.rpc.add(
        "permissions.trustedDump",
        "Dump the cached trusted table.",
        |core, _| {
            let list = core
                .m
                .permissions
                .trusted
                .read()
                .map(|g| g.clone())
                .unwrap_or_default();
            Ok(Json::Array(
                list.iter()
                    .map(|e| {
                        json!({
                            "src_ip": e.src_ip,
                            "proto": e.proto,
                            "pattern": e.from_pattern,
                            "ruri_pattern": e.ruri_pattern,
                            "tag": e.tag,
                            "priority": e.priority,
                        })
                    })
                    .collect(),
            ))
        },
    );
    r.rpc.add(
        "permissions.addressReload",
        "Reload the address table from the database.",
        rpc_reload,
    );
    r.rpc.add(
        "permissions.addressDump",
        "Dump the address table (exact addresses).",
        |core, _| Ok(dump(core, false)),
    );
    r.rpc.add(
        "permissions.subnetDump",
        "Dump the address table (subnets).",
        |core, _| Ok(dump(core, true)),
    );
}

fn rule_set(c: &Ctx, allow: &[u8], deny: &[u8]) -> Arc<RuleSet> {
    let st = &c.core.m.permissions;
    let path = |f: &[u8]| {
        let p = PathBuf::from(String::from_utf8_lossy(f).into_owned());
        if p.is_absolute() {
            p
        } else {
            st.files.dir.join(p)
        }
    };
    let key = (path(allow), path(deny));
    let Ok(mut m) = st.rule_sets.lock() else {
        return Arc::default();
    };
    if let Some(r) = m.get(&key) {
        return r.clone();
    }
    let set = Arc::new(RuleSet {
        allow: rules::parse_file(&key.0),
        deny: rules::parse_file(&key.1),
    });
    if m.len() < 64 {
        m.insert(key, set.clone());
    }
    set
}

/// The files named by `allow_routing`/`allow_register` arguments: none (the defaults), a
/// base name (with the suffixes) or both names.
fn files_of(c: &Ctx, a: &[Value]) -> Arc<RuleSet> {
    let f = &c.core.m.permissions.files;
    match a.len() {
        0 => rule_set(c, f.default_allow.as_bytes(), f.default_deny.as_bytes()),
        1 => {
            let base = arg_bytes(a, 0);
            let mut al = base.to_vec();
            al.extend_from_slice(f.allow_suffix.as_bytes());
            let mut de = base.to_vec();
            de.extend_from_slice(f.deny_suffix.as_bytes());
            rule_set(c, &al, &de)
        }
        _ => rule_set(c, &arg_bytes(a, 0), &arg_bytes(a, 1)),
    }
}

/// `sip:user@host` (or `sip:host`) of a URI, as Kamailio's rules see it.
fn plain_uri(u: &crate::sip::Uri) -> String {
    let user = String::from_utf8_lossy(&u.user);
    let host = String::from_utf8_lossy(&u.host);
    if user.is_empty() {
        format!("sip:{host}")
    } else {
        format!("sip:{user}@{host}")
    }
}

fn check_routing(c: &mut Ctx, set: &RuleSet) -> i64 {
    if set.allow.is_empty() && set.deny.is_empty() {
        return 1;
    }
    let Ok(from) = c.msg.from() else {
        crate::klog!(L_ERR, "permissions", "failed to parse From body");
        return -1;
    };
    let from = String::from_utf8_lossy(&from.uri_raw).into_owned();
    if from.len() > 256 {
        crate::klog!(
            L_ERR,
            "permissions",
            "From header field is too long: {} chars",
            from.len()
        );
        return -1;
    }
    let Ok(ruri) = c.msg.parsed_ruri() else {
        crate::klog!(L_ERR, "permissions", "uri parsing failed");
        return -1;
    };
    let ruri = format!(
        "sip:{}@{}",
        String::from_utf8_lossy(&ruri.user),
        String::from_utf8_lossy(&ruri.host)
    );
    let all_branches = c.core.m.permissions.files.check_all_branches;
    if rules::search(&set.allow, &from, &ruri) {
        if !all_branches {
            return 1;
        }
    } else {
        if rules::search(&set.deny, &from, &ruri) {
            return -1;
        }
        if !all_branches {
            return 1;
        }
    }
    for b in &c.branches {
        let Ok(u) = crate::sip::Uri::parse(&b.uri) else {
            crate::klog!(L_ERR, "permissions", "failed to extract plain URI");
            return -1;
        };
        let bu = plain_uri(&u);
        if rules::search(&set.allow, &from, &bu) {
            continue;
        }
        if rules::search(&set.deny, &from, &bu) {
            return -1;
        }
    }
    1
}

/// `allow_uri(basename, pv)`: the From URI against the URI held in the pseudo-variable.
fn check_uri(c: &mut Ctx, set: &RuleSet, pv: &Bytes) -> i64 {
    if set.allow.is_empty() && set.deny.is_empty() {
        return 1;
    }
    let Ok(from) = c.msg.from() else {
        crate::klog!(L_ERR, "permissions", "failed to parse From body");
        return -1;
    };
    let from = String::from_utf8_lossy(&from.uri_raw).into_owned();
    if from.len() > 256 {
        crate::klog!(
            L_ERR,
            "permissions",
            "From header field is too long: {} chars",
            from.len()
        );
        return -1;
    }
    let Some(spec) = super::core::pvapi::spec(c, pv) else {
        crate::klog!(L_ERR, "permissions", "cannot get pseudo variable value");
        return -1;
    };
    let uri = match vm::pv::get(c, &spec) {
        Value::Str(s) if s.len() <= 256 => String::from_utf8_lossy(&s).into_owned(),
        Value::Str(s) => {
            crate::klog!(
                L_ERR,
                "permissions",
                "pseudo variable value is too long: {} chars",
                s.len()
            );
            return -1;
        }
        Value::Null => {
            crate::klog!(L_ERR, "permissions", "cannot get pseudo variable value");
            return -1;
        }
        // Integer pseudo-variables have a string form too.
        Value::Int(i) => i.to_string(),
    };
    if rules::search(&set.allow, &from, &uri) {
        return 1;
    }
    if rules::search(&set.deny, &from, &uri) {
        return -1;
    }
    1
}

fn check_register(c: &mut Ctx, set: &RuleSet) -> i64 {
    if set.allow.is_empty() && set.deny.is_empty() {
        return 1;
    }
    let Ok(to) = c.msg.to() else {
        crate::klog!(L_ERR, "permissions", "To or Contact not found");
        return -1;
    };
    let to = String::from_utf8_lossy(&to.uri_raw).into_owned();
    let list = match c.msg.contacts() {
        Ok(None) | Ok(Some(crate::sip::Contacts::Star)) => return 1,
        Ok(Some(crate::sip::Contacts::List(l))) => l.clone(),
        Err(_) => {
            crate::klog!(L_ERR, "permissions", "failed to parse Contact HF");
            return -1;
        }
    };
    if to.len() > 256 {
        crate::klog!(
            L_ERR,
            "permissions",
            "To header field is too long: {} chars",
            to.len()
        );
        return -1;
    }
    let all_branches = c.core.m.permissions.files.check_all_branches;
    for n in list {
        let cu = plain_uri(&n.uri);
        if rules::search(&set.allow, &to, &cu) && all_branches {
            continue;
        }
        if rules::search(&set.deny, &to, &cu) {
            return -1;
        }
    }
    1
}

fn from_uri(c: &Ctx) -> String {
    c.msg
        .from()
        .map(|f| String::from_utf8_lossy(&f.uri_raw).into_owned())
        .unwrap_or_default()
}

fn trusted_args(c: &mut Ctx, a: &[Value], from: &str) -> Value {
    let ip = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
    let p = arg_bytes(a, 1);
    match trusted::proto_arg(&p) {
        Some(proto) => Value::Int(trusted::allow(c, &ip, proto, from)),
        None => {
            crate::klog!(
                L_ERR,
                "permissions",
                "unknown protocol {}",
                String::from_utf8_lossy(&p)
            );
            Value::Int(-1)
        }
    }
}

fn rpc_trusted_reload(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let st = &core.m.permissions;
    let Some(h) = &st.db else {
        return Err(RpcError::new(500, "Reload failed. No database."));
    };
    if !st.trusted_cached {
        return Err(RpcError::new(
            500,
            "Reload failed. The trusted table is not cached.",
        ));
    }
    let rows = trusted::query(h, &st.trusted_cols, None)
        .map_err(|e| RpcError::new(500, format!("Reload failed. {e}")))?;
    let list =
        trusted::cache(rows).map_err(|e| RpcError::new(500, format!("Reload failed. {e}")))?;
    let mut g = st
        .trusted
        .write()
        .map_err(|_| RpcError::new(500, "Reload failed."))?;
    *g = Arc::new(list);
    Ok(Json::String("Reload OK".into()))
}

fn rpc_reload(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let st = &core.m.permissions;
    let Some(h) = &st.db else {
        return Err(RpcError::new(500, "Reload failed. No database."));
    };
    let list = load(h, &st.cols).map_err(|e| RpcError::new(500, format!("Reload failed. {e}")))?;
    let mut g = st
        .entries
        .write()
        .map_err(|_| RpcError::new(500, "Reload failed."))?;
    *g = Arc::new(list);
    Ok(Json::String("Reload OK".into()))
}

fn dump(core: &'static Core, subnets: bool) -> Json {
    let list = core
        .m
        .permissions
        .entries
        .read()
        .map(|g| g.clone())
        .unwrap_or_default();
    let rows: Vec<Json> = list
        .iter()
        .filter(|e| e.ip.is_some() && e.is_subnet() == subnets)
        .map(|e| {
            let mut o = json!({
                "group": e.grp,
                "ip": e.name,
                "port": e.port,
                "tag": e.tag.clone().unwrap_or_default(),
            });
            if subnets {
                o["mask"] = json!(e.mask);
            }
            o
        })
        .collect();
    Json::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ip: &str, mask: u32, port: u16) -> AddrEntry {
        AddrEntry {
            grp: 1,
            ip: ip.parse().ok(),
            name: ip.into(),
            mask,
            port,
            tag: None,
        }
    }

    #[test]
    fn matching() {
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(e("10.1.2.3", 32, 0).matches(&a, "10.1.2.3", 5060));
        assert!(!e("10.1.2.4", 32, 0).matches(&a, "10.1.2.3", 5060));
        assert!(e("10.0.0.0", 8, 0).matches(&a, "10.1.2.3", 1));
        assert!(!e("10.0.0.0", 8, 5060).matches(&a, "10.1.2.3", 1));
        assert!(e("0.0.0.0", 0, 0).matches(&a, "10.1.2.3", 1));
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(e("2001:db8::", 32, 0).matches(&b, "2001:db8::1", 1));
        assert!(!e("10.0.0.0", 8, 0).matches(&b, "2001:db8::1", 1));
        assert!(e("host.example", 32, 0).matches(&a, "HOST.example", 1));
        assert!(!e("host.example", 32, 0).matches(&a, "10.1.2.3", 1));
    }

    #[test]
    fn loads_from_sqlite() {
        let dir = std::env::temp_dir().join(format!("ksr-perm-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let h = db::open("sqlite:///perm.sqlite", &dir).unwrap();
        db::with(&h, |d| {
            d.ensure_table("address", &[])?;
            d.delete("address", &[])?;
            for (g, ip, m, p) in [
                (1, "10.0.0.0", 8, 0),
                (2, "127.0.0.1", 32, 5060),
                (3, "bad", 40, 0),
            ] {
                d.insert(
                    "address",
                    &["grp", "ip_addr", "mask", "port"],
                    &[
                        DbVal::Int(g),
                        DbVal::Str(ip.into()),
                        DbVal::Int(m),
                        DbVal::Int(p),
                    ],
                )?;
            }
            Ok(())
        })
        .unwrap();
        let l = load(&h, &Cols::default()).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].grp, 2, "exact addresses come first");
        assert_eq!(l[1].grp, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
