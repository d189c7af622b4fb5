//! `reg_fetch_contacts()` / `reg_free_contacts()` and `$ulc(profile=>attr)[i]`: a copy of an
//! AoR's contacts kept in the worker until fetched again or freed (Kamailio keeps them in
//! process memory the same way), and the KEMI getters `ulc_rget`/`ulc_cget`.

use super::super::usrloc::{Contact, aor_hash};
use crate::ctx::Ctx;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use vm::Value;
use vm::pv::{PvIndex, PvParam, PvSpec};

#[derive(Default)]
struct Profile {
    aor: String,
    domain: String,
    contacts: Vec<Contact>,
}

thread_local! {
    static PROFILES: RefCell<HashMap<String, Profile>> = RefCell::new(HashMap::new());
}

const ATTRS: &[&str] = &[
    "aor",
    "domain",
    "aorhash",
    "addr",
    "path",
    "received",
    "expires",
    "callid",
    "q",
    "cseq",
    "flags",
    "cflags",
    "user_agent",
    "socket",
    "modified",
    "methods",
    "count",
    "ruid",
    "regid",
    "instance",
    "conid",
    "server_id",
];

pub struct UlcName {
    profile: String,
    attr: &'static str,
}

pub fn parse_name(s: &str) -> Result<PvParam, String> {
    let (p, a) = s
        .split_once("=>")
        .ok_or_else(|| format!("invalid $ulc name '{s}' (expected profile=>attribute)"))?;
    let attr = ATTRS
        .iter()
        .copied()
        .find(|x| *x == a.trim())
        .ok_or_else(|| format!("unknown $ulc attribute '{}'", a.trim()))?;
    let profile = p.trim();
    if profile.is_empty() {
        return Err("empty $ulc profile".into());
    }
    Ok(PvParam::Custom(Arc::new(UlcName {
        profile: profile.to_string(),
        attr,
    })))
}

/// Copies the contacts of `aor` in `table` into `profile`: 1 found, -1 not found.
pub fn fetch(c: &mut Ctx, table: &str, uri: &[u8], profile: &str) -> i32 {
    let ul = &c.core.m.usrloc;
    let rs = &c.core.m.registrar;
    PROFILES.with(|p| p.borrow_mut().remove(profile));
    let Ok(aor) = super::extract_aor(uri, ul.use_domain, rs) else {
        crate::klog!(
            crate::log::L_ERR,
            "registrar",
            "failed to extract Address Of Record"
        );
        return -1;
    };
    let d = ul.domain(table);
    let rec = match ul.get(&d, &aor) {
        Ok(Some(r)) => r,
        _ => return -1,
    };
    PROFILES.with(|p| {
        p.borrow_mut().insert(
            profile.to_string(),
            Profile {
                aor,
                domain: table.to_string(),
                contacts: rec.contacts,
            },
        )
    });
    1
}

/// Drops `profile`: always 1.
pub fn free(profile: &str) -> i32 {
    PROFILES.with(|p| p.borrow_mut().remove(profile));
    1
}

fn attr_value(p: &Profile, attr: &str, idx: i64) -> Value {
    let s = |x: &str| Value::Str(bytes::Bytes::copy_from_slice(x.as_bytes()));
    match attr {
        "aor" => return s(&p.aor),
        "domain" => return s(&p.domain),
        "aorhash" => return Value::Int(aor_hash(&p.aor) as i64),
        "count" => return Value::Int(p.contacts.len() as i64),
        _ => {}
    }
    let Some(c) = p.contacts.get(idx.max(0) as usize) else {
        return Value::Null;
    };
    match attr {
        "addr" => s(&c.c),
        "path" => s(&c.path),
        "received" => s(&c.received),
        "expires" => Value::Int(c.expires),
        "callid" => s(&c.callid),
        "q" => Value::Int(c.q as i64),
        "cseq" => Value::Int(c.cseq as i64),
        "flags" => Value::Int(c.flags as i64),
        "cflags" => Value::Int(c.cflags as i64),
        "user_agent" => s(&c.user_agent),
        "socket" if !c.sock.is_empty() => s(&c.sock),
        "modified" => Value::Int(c.last_modified),
        "methods" => Value::Int(c.methods as i64),
        "ruid" => s(&c.ruid),
        "regid" => Value::Int(c.reg_id as i64),
        "instance" if !c.instance.is_empty() => s(&c.instance),
        "conid" if c.tcpconn_id > 0 => Value::Int(c.tcpconn_id),
        "server_id" => Value::Int(c.server_id as i64),
        _ => Value::Null,
    }
}

/// The value of `attr` of contact `idx` in `profile` (null when unset).
pub fn get(profile: &str, attr: &str, idx: i64) -> Value {
    PROFILES.with(|p| match p.borrow().get(profile) {
        Some(pr) => attr_value(pr, attr, idx),
        None => Value::Null,
    })
}

pub fn pv_get(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let PvParam::Custom(c) = &spec.param else {
        return Value::Null;
    };
    let Some(n) = c.downcast_ref::<UlcName>() else {
        return Value::Null;
    };
    let idx = match &spec.index {
        PvIndex::Int(i) => *i as i64,
        PvIndex::Dyn(s) => crate::modules::pv::util::pv_get(ctx, s)
            .as_int()
            .unwrap_or(0),
        _ => 0,
    };
    get(&n.profile, n.attr, idx)
}

/// `lookup_xavp(table, uri, rxname, cxname)`: the AoR's bindings as xavps — `rxname` with
/// `aor` and `count`, one `cxname` per contact (in order) with `uri`, `socket`, `dsturi`
/// (received). 1 found, -1 not found.
pub fn lookup_xavp(c: &mut Ctx, table: &str, uri: &[u8], rxname: &[u8], cxname: &[u8]) -> i32 {
    use crate::modules::pv::xavp::{XVal, XavpList};
    let ul = &c.core.m.usrloc;
    let rs = &c.core.m.registrar;
    let Ok(aor) = super::extract_aor(uri, ul.use_domain, rs) else {
        crate::klog!(
            crate::log::L_ERR,
            "registrar",
            "failed to extract Address Of Record"
        );
        return -1;
    };
    let d = ul.domain(table);
    let rec = match ul.get(&d, &aor) {
        Ok(Some(r)) => r,
        _ => return -1,
    };
    let s = |x: &str| XVal::Val(Value::Str(bytes::Bytes::copy_from_slice(x.as_bytes())));
    let cx = bytes::Bytes::copy_from_slice(cxname);
    for ct in rec.contacts.iter().rev() {
        let mut l = XavpList::default();
        l.add(bytes::Bytes::from_static(b"uri"), s(&ct.c));
        if !ct.sock.is_empty() {
            l.add(bytes::Bytes::from_static(b"socket"), s(&ct.sock));
        }
        if !ct.received.is_empty() {
            l.add(bytes::Bytes::from_static(b"dsturi"), s(&ct.received));
        }
        c.xavps.add(cx.clone(), XVal::List(l));
    }
    let mut r = XavpList::default();
    r.add(bytes::Bytes::from_static(b"aor"), s(&aor));
    r.add(
        bytes::Bytes::from_static(b"count"),
        XVal::Val(Value::Int(rec.contacts.len() as i64)),
    );
    c.xavps
        .add(bytes::Bytes::copy_from_slice(rxname), XVal::List(r));
    1
}
