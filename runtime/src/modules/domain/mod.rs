//! Kamailio's `domain` module: the `domain` and `domain_attrs` tables read from `db_url` into
//! memory at start-up (and again on `domain.reload`), the checks `is_from_local`,
//! `is_uri_host_local`, `is_domain_local`, `lookup_domain` (the domain's id and attributes as
//! AVPs), the RPC commands `domain.reload` / `domain.dump`, and with `register_myself` the
//! loaded domains count as `myself` (any port, any transport).
//!
//! The in-memory layout follows Kamailio's: 128 hash buckets of domains (Kamailio's
//! case-insensitive core hash, newest entry first) and one list of attribute sets by domain
//! id (newest first, each set's attributes newest first), which fixes the order of the AVPs
//! `lookup_domain` adds and of the `domain.dump` output.

use super::core::actions::arg_bytes;
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::core::Core;
use crate::ctx::Ctx;
use crate::db::{self, DbHandle, DbVal};
use crate::log::{L_ERR, L_INFO};
use crate::rpc::RpcError;
use bytes::Bytes;
use serde_json::{Value as Json, json};
use std::sync::{Arc, RwLock};
use vm::ksr::{ParamType::Str as S, RetType};
use vm::{RouteKind, RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "domain",
    params: &[
        ParamDef::str("db_url"),
        ParamDef::str("domain_table"),
        ParamDef::str("domain_attrs_table"),
        ParamDef::str("did_col"),
        ParamDef::str("domain_col"),
        ParamDef::str("name_col"),
        ParamDef::str("type_col"),
        ParamDef::str("value_col"),
        ParamDef::int("register_myself"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// Number of hash buckets (Kamailio's DOM_HASH_SIZE).
const BUCKETS: usize = 128;

/// One attribute of a domain id.
#[derive(Clone, Debug, PartialEq)]
pub struct Attr {
    pub name: Bytes,
    /// `Value::Int` for type 0, `Value::Str` for type 2.
    pub val: Value,
}

/// A domain id with its attributes, newest first.
#[derive(Clone, Debug, Default)]
pub struct AttrSet {
    pub did: Bytes,
    pub attrs: Arc<Vec<Attr>>,
}

#[derive(Clone, Debug)]
pub struct DomainEntry {
    pub domain: Bytes,
    pub did: Bytes,
    pub attrs: Arc<Vec<Attr>>,
}

/// The loaded tables.
#[derive(Clone, Debug, Default)]
pub struct Domains {
    /// `BUCKETS` buckets, newest entry first in each.
    pub buckets: Vec<Vec<DomainEntry>>,
    /// Attribute sets, newest domain id first.
    pub attr_sets: Vec<AttrSet>,
}

impl Domains {
    pub fn lookup(&self, host: &[u8]) -> Option<&DomainEntry> {
        let b = self.buckets.get(bucket_of(host))?;
        b.iter().find(|e| e.domain.eq_ignore_ascii_case(host))
    }

    pub fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug)]
pub struct Cols {
    pub domain_table: String,
    pub attrs_table: String,
    pub did: String,
    pub domain: String,
    pub name: String,
    pub typ: String,
    pub value: String,
}

impl Default for Cols {
    fn default() -> Self {
        Cols {
            domain_table: "domain".into(),
            attrs_table: "domain_attrs".into(),
            did: "did".into(),
            domain: "domain".into(),
            name: "name".into(),
            typ: "type".into(),
            value: "value".into(),
        }
    }
}

#[derive(Default)]
pub struct DomainState {
    pub table: RwLock<Arc<Domains>>,
    pub db: Option<DbHandle>,
    pub cols: Cols,
    /// `register_myself`: the domains count as `myself`.
    pub register_myself: bool,
}

impl DomainState {
    fn current(&self) -> Arc<Domains> {
        match self.table.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Kamailio's lookup: 1 when `host` is a loaded domain, -1 otherwise.
    pub fn is_local(&self, host: &[u8]) -> bool {
        self.current().lookup(host).is_some()
    }

    /// The `myself` hook (`register_myself`).
    pub fn check_self(&self, host: &[u8]) -> bool {
        self.register_myself && self.is_local(host)
    }
}

/// Kamailio's case-insensitive core hash of one string, reduced to a bucket.
fn bucket_of(s: &[u8]) -> usize {
    // Bytes are read as signed C chars; only A-Z are folded.
    let ch = |b: u8| -> u32 {
        let b = if b.is_ascii_uppercase() { b | 0x20 } else { b };
        b as i8 as i32 as u32
    };
    let mut h: u32 = 0;
    let mut chunks = s.chunks_exact(4);
    for c in &mut chunks {
        if let [a, b, cc, d] = c {
            let v = (ch(*a) << 24)
                .wrapping_add(ch(*b) << 16)
                .wrapping_add(ch(*cc) << 8)
                .wrapping_add(ch(*d));
            h = h.wrapping_add(v ^ (v >> 3));
        }
    }
    let mut v: u32 = 0;
    for b in chunks.remainder() {
        v = (v << 8).wrapping_add(ch(*b));
    }
    h = h.wrapping_add(v ^ (v >> 3));
    h = h
        .wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23));
    (h as usize) & (BUCKETS - 1)
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.domain;
    st.cols = Cols {
        domain_table: p.str_or("domain_table", "domain"),
        attrs_table: p.str_or("domain_attrs_table", "domain_attrs"),
        did: p.str_or("did_col", "did"),
        domain: p.str_or("domain_col", "domain"),
        name: p.str_or("name_col", "name"),
        typ: p.str_or("type_col", "type"),
        value: p.str_or("value_col", "value"),
    };
    st.register_myself = p.int("register_myself", 0) != 0;
    let url = p.str_or("db_url", "mysql://kamailioro:kamailioro@localhost/kamailio");
    let h = db::open(&url, ictx.workdir).map_err(|e| format!("domain: {e}"))?;
    let d = load(&h, &st.cols).map_err(|e| format!("domain: domain reload failed: {e}"))?;
    crate::klog!(L_INFO, "domain", "{} domains loaded", d.len());
    st.table = RwLock::new(Arc::new(d));
    st.db = Some(h);
    Ok(())
}

fn text_col(v: &DbVal) -> Option<String> {
    match v {
        DbVal::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// Kamailio's `str2sint`: an optional sign and decimal digits.
fn parse_sint(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    let n = n as i32;
    Some(if neg { -(n as i64) } else { n as i64 })
}

/// Reads both tables; any bad row fails the whole load (the old tables stay), as Kamailio.
pub fn load(h: &DbHandle, cols: &Cols) -> Result<Domains, String> {
    let (attr_rows, dom_rows) = db::with(h, |d| {
        if cols.attrs_table == "domain_attrs" {
            d.ensure_table("domain_attrs", &[])?;
        }
        if cols.domain_table == "domain" {
            d.ensure_table("domain", &[])?;
        }
        let a = d.select(
            &cols.attrs_table,
            &[&cols.did, &cols.name, &cols.typ, &cols.value],
            &[],
            None,
        )?;
        let b = d.select(&cols.domain_table, &[&cols.domain, &cols.did], &[], None)?;
        Ok((a, b))
    })
    .map_err(|e| e.to_string())?;
    let mut sets: Vec<(Bytes, Vec<Attr>)> = Vec::new();
    for (i, r) in attr_rows.iter().enumerate() {
        let [did, name, typ, value] = &r[..] else {
            return Err(format!("bad row <{i}> in domain attributes table"));
        };
        let did = text_col(did)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("did at row <{i}> is null, empty or not string"))?;
        let name = text_col(name)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("name at row <{i}> is null, empty or not string"))?;
        let typ = match typ {
            DbVal::Int(t) => *t as i16,
            _ => return Err(format!("type at row <{i}> is null or not int")),
        };
        let value =
            text_col(value).ok_or_else(|| format!("value at row <{i}> is null or not string"))?;
        let val = match typ {
            0 => Value::Int(
                parse_sint(&value).ok_or_else(|| format!("value at row <{i}> is invalid int"))?,
            ),
            2 => Value::Str(Bytes::from(value)),
            t => return Err(format!("unknown type <{t}> at row <{i}>")),
        };
        let attr = Attr {
            name: Bytes::from(name),
            val,
        };
        match sets
            .iter_mut()
            .find(|(d, _)| d.eq_ignore_ascii_case(did.as_bytes()))
        {
            Some((_, list)) => list.insert(0, attr),
            None => sets.insert(0, (Bytes::from(did), vec![attr])),
        }
    }
    let attr_sets: Vec<AttrSet> = sets
        .into_iter()
        .map(|(did, attrs)| AttrSet {
            did,
            attrs: Arc::new(attrs),
        })
        .collect();
    let mut buckets: Vec<Vec<DomainEntry>> = vec![Vec::new(); BUCKETS];
    for (i, r) in dom_rows.iter().enumerate() {
        let [domain, did] = &r[..] else {
            return Err(format!("bad row <{i}> in domain table"));
        };
        let domain = text_col(domain)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("domain at row <{i}> is null, empty or not string"))?;
        let did = match did {
            DbVal::Null => domain.clone(),
            DbVal::Str(s) if !s.is_empty() => s.clone(),
            DbVal::Str(_) => return Err(format!("did at row <{i}> is empty string")),
            _ => return Err(format!("did at row <{i}> is not null or string")),
        };
        let attrs = attr_sets
            .iter()
            .find(|s| s.did.eq_ignore_ascii_case(did.as_bytes()))
            .map(|s| s.attrs.clone())
            .unwrap_or_default();
        let e = DomainEntry {
            domain: Bytes::from(domain),
            did: Bytes::from(did),
            attrs,
        };
        if let Some(b) = buckets.get_mut(bucket_of(&e.domain)) {
            b.insert(0, e);
        }
    }
    Ok(Domains { buckets, attr_sets })
}

fn st(c: &Ctx) -> &DomainState {
    &c.core.m.domain
}

fn rc(ok: bool) -> Value {
    Value::Int(if ok { 1 } else { -1 })
}

fn is_from_local(c: &mut Ctx) -> Value {
    let host = match c.msg.from() {
        Ok(f) => f.uri.host.clone(),
        Err(_) => {
            crate::klog!(L_ERR, "domain", "Error while parsing From header");
            return Value::Int(-2);
        }
    };
    rc(st(c).is_local(&host))
}

fn is_uri_host_local(c: &mut Ctx) -> Value {
    match c.route {
        RouteKind::Request | RouteKind::Branch => match c.msg.parsed_ruri() {
            Ok(u) => {
                let host = u.host.clone();
                rc(st(c).is_local(&host))
            }
            Err(_) => {
                crate::klog!(L_ERR, "domain", "error while parsing R-URI");
                Value::Int(-1)
            }
        },
        RouteKind::Failure => {
            let Some(b) = c.branches.first() else {
                crate::klog!(L_ERR, "domain", "branch is missing, error in script");
                return Value::Int(-1);
            };
            match crate::sip::Uri::parse(&b.uri) {
                Ok(u) => rc(st(c).is_local(&u.host)),
                Err(_) => {
                    crate::klog!(L_ERR, "domain", "error while parsing branch URI");
                    Value::Int(-1)
                }
            }
        }
        _ => {
            crate::klog!(L_ERR, "domain", "unsupported route type");
            Value::Int(-1)
        }
    }
}

fn lookup_domain(c: &mut Ctx, domain: &[u8], prefix: Option<&[u8]>) -> Value {
    let d = st(c).current();
    let Some(e) = d.lookup(domain) else {
        return Value::Int(-1);
    };
    let named = |n: &[u8]| -> Bytes {
        match prefix {
            Some(p) => {
                let mut v = Vec::with_capacity(p.len() + n.len());
                v.extend_from_slice(p);
                v.extend_from_slice(n);
                Bytes::from(v)
            }
            None => Bytes::copy_from_slice(n),
        }
    };
    for a in e.attrs.iter() {
        c.avps.insert(0, (named(&a.name), a.val.clone()));
    }
    c.avps.insert(0, (named(b"did"), Value::Str(e.did.clone())));
    Value::Int(1)
}

fn register(r: &mut Registrar<'_>) {
    let routes = RouteMask::REQUEST
        .union(RouteMask::BRANCH)
        .union(RouteMask::FAILURE)
        .union(RouteMask::LOCAL);
    r.kemi("domain", "is_from_local", &[], RetType::Int, |c, _| {
        is_from_local(c)
    })
    .native("is_from_local", routes);
    r.kemi("domain", "is_uri_host_local", &[], RetType::Int, |c, _| {
        is_uri_host_local(c)
    })
    .native("is_uri_host_local", routes);
    r.kemi("domain", "is_domain_local", &[S], RetType::Int, |c, a| {
        let d = arg_bytes(a, 0);
        rc(st(c).is_local(&d))
    })
    .native("is_domain_local", routes);
    r.kemi("domain", "lookup_domain", &[S], RetType::Int, |c, a| {
        let d = arg_bytes(a, 0);
        lookup_domain(c, &d, None)
    })
    .native("lookup_domain", routes);
    r.kemi(
        "domain",
        "lookup_domain_prefix",
        &[S, S],
        RetType::Int,
        |c, a| {
            let d = arg_bytes(a, 0);
            let p = arg_bytes(a, 1);
            lookup_domain(c, &d, Some(&p))
        },
    )
    .native("lookup_domain", routes);
    r.rpc.add(
        "domain.reload",
        "Reload domain tables from database",
        rpc_reload,
    );
    r.rpc.add(
        "domain.dump",
        "Return the contents of domain and domain_attrs tables",
        rpc_dump,
    );
}

fn rpc_reload(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let st = &core.m.domain;
    let fail = || RpcError::new(400, "Reload of domain tables failed");
    let Some(h) = &st.db else {
        return Err(fail());
    };
    let d = load(h, &st.cols).map_err(|e| {
        crate::klog!(L_ERR, "domain", "{e}");
        fail()
    })?;
    let mut g = st.table.write().map_err(|_| fail())?;
    *g = Arc::new(d);
    // Kamailio's reply carries an empty result structure.
    Ok(json!({}))
}

fn rpc_dump(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let d = core.m.domain.current();
    let text = |b: &Bytes| Json::String(String::from_utf8_lossy(b).into_owned());
    let domains: Vec<Json> = d
        .buckets
        .iter()
        .flatten()
        .map(|e| json!({"domain": text(&e.domain), "did": text(&e.did)}))
        .collect();
    let attributes: Vec<Json> = d
        .attr_sets
        .iter()
        .map(|s| {
            json!({
                "did": text(&s.did),
                "attrs": s.attrs.iter().map(|a| text(&a.name)).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({"domains": domains, "attributes": attributes}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_hash_folds_case() {
        assert_eq!(bucket_of(b"Example.COM"), bucket_of(b"example.com"));
        assert!(bucket_of(b"") < BUCKETS);
    }

    #[test]
    fn sint() {
        assert_eq!(parse_sint("42"), Some(42));
        assert_eq!(parse_sint("-7"), Some(-7));
        assert_eq!(parse_sint("+3"), Some(3));
        assert_eq!(parse_sint("x"), None);
        assert_eq!(parse_sint(""), None);
        assert_eq!(parse_sint("-"), None);
    }
}
