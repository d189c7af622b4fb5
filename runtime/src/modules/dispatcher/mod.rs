//! Kamailio's `dispatcher` module: destination sets from a list file or the `dispatcher`
//! table, selection of a destination by one of Kamailio's algorithms (the hash ones pick
//! the same destination Kamailio picks), failover through the `$xavp(_dsdst_)` records
//! (`ds_next_dst`), destination states (`ds_mark_dst`, `dispatcher.set_state`) and
//! matching the source address against the sets (`ds_is_from_list`).
//!
//! Not implemented: call-load (alg 10, needs dialog), latency (alg 13), `ds_select_routes`,
//! event routes (`dispatcher:dst-down`/`dst-up`), `socket`/`sockname` attributes. Probing
//! (`probe.rs`) sends keepalives without a transaction.

pub mod list;
pub mod probe;

use super::core::actions::{arg_bytes, arg_int};
use super::pv::xavp::{XVal, XavpList};
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::core::Core;
use crate::ctx::{Branch, Ctx};
use crate::db::{self, DbHandle};
use crate::log::{L_DBG, L_ERR, L_INFO, L_WARN};
use crate::rpc::RpcError;
use crate::sip::HdrKind;
use crate::sip::uri::Uri;
use bytes::Bytes;
use list::{DS_DISABLED, DS_INACTIVE, DS_PROBING, DS_STATES_ALL, DS_TRYING, DsList, DsSet};
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "dispatcher",
    params: &[
        ParamDef::str("list_file"),
        ParamDef::str("db_url"),
        ParamDef::str("table_name"),
        ParamDef::str("setid_col"),
        ParamDef::str("destination_col"),
        ParamDef::str("flags_col"),
        ParamDef::str("priority_col"),
        ParamDef::str("attrs_col"),
        ParamDef::int("force_dst"),
        ParamDef::int("flags"),
        ParamDef::int("use_default"),
        ParamDef::str("xavp_dst"),
        ParamDef::int("xavp_dst_mode"),
        ParamDef::str("xavp_ctx"),
        ParamDef::int("xavp_ctx_mode"),
        ParamDef::str("hash_pvar"),
        ParamDef::str("setid_pvname"),
        ParamDef::str("attrs_pvname"),
        ParamDef::int("ds_probing_mode"),
        ParamDef::int("ds_probing_threshold"),
        ParamDef::int("ds_inactive_threshold"),
        ParamDef::int("ds_load_mode"),
        ParamDef::int("ds_attrs_none"),
        ParamDef::int("reload_delta"),
        ParamDef::int("ds_ping_interval"),
        ParamDef::str("ds_ping_method"),
        ParamDef::str("ds_ping_from"),
        ParamDef::str("ds_ping_reply_codes"),
    ],
    register,
    init: Some(init),
    notice: None,
};

const DS_HASH_USER_ONLY: i64 = 1;
const DS_FAILOVER_ON: i64 = 2;
const MATCH_NOPORT: i64 = 1;
const MATCH_NOPROTO: i64 = 2;
const MATCH_ACTIVE: i64 = 4;

/// Where a selected address goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SetOp {
    DstUri,
    Ruri,
    Xavp,
}

#[derive(Clone, Debug)]
pub struct Source {
    file: PathBuf,
    db: Option<(String, Cols)>,
}

#[derive(Clone, Debug)]
struct Cols {
    table: String,
    setid: String,
    dest: String,
    flags: String,
    priority: String,
    attrs: String,
}

pub struct DispatcherState {
    list: RwLock<Arc<DsList>>,
    source: Option<Source>,
    db: Option<DbHandle>,
    workdir: PathBuf,
    force_dst: bool,
    flags: i64,
    use_default: bool,
    xavp_dst: Bytes,
    xavp_dst_mode: i64,
    xavp_ctx: Bytes,
    xavp_ctx_mode: i64,
    hash_pvar: Option<vm::pv::Format>,
    setid_pv: Option<vm::pv::PvSpec>,
    attrs_pv: Option<vm::pv::PvSpec>,
    probing_mode: i64,
    probing_threshold: i32,
    inactive_threshold: i32,
    load_mode: i64,
    reload_delta: i64,
    last_reload: AtomicI64,
    /// `ds_ping_interval` (zero: no probing).
    ping_interval: std::time::Duration,
    ping_method: String,
    ping_from: String,
    ping_reply_codes: Vec<(bool, i32)>,
    prober: probe::Prober,
    attrs_none: bool,
}

impl Default for DispatcherState {
    fn default() -> Self {
        DispatcherState {
            list: RwLock::new(Arc::new(DsList::default())),
            source: None,
            db: None,
            workdir: PathBuf::new(),
            force_dst: true,
            flags: 0,
            use_default: false,
            xavp_dst: Bytes::from_static(b"_dsdst_"),
            xavp_dst_mode: 0,
            xavp_ctx: Bytes::from_static(b"_dsctx_"),
            xavp_ctx_mode: 0,
            hash_pvar: None,
            setid_pv: None,
            attrs_pv: None,
            probing_mode: 0,
            probing_threshold: 1,
            inactive_threshold: 1,
            load_mode: 0,
            reload_delta: 5,
            last_reload: AtomicI64::new(0),
            ping_interval: std::time::Duration::ZERO,
            ping_method: "OPTIONS".into(),
            ping_from: "sip:dispatcher@localhost".into(),
            ping_reply_codes: Vec::new(),
            prober: probe::Prober::default(),
            attrs_none: false,
        }
    }
}

impl DispatcherState {
    pub fn current(&self) -> Arc<DsList> {
        self.list.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Reloads on request are at least `reload_delta` seconds apart (Kamailio refuses the
    /// ones in between as "ongoing").
    fn reload_allowed(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let last = self.last_reload.load(Ordering::Relaxed);
        if last != 0 && last > now - self.reload_delta {
            return false;
        }
        self.last_reload.store(now, Ordering::Relaxed);
        true
    }

    /// Loads the sets again from the file or the table (start-up, `dispatcher.reload`).
    pub fn reload(&self) -> Result<usize, String> {
        let Some(src) = &self.source else {
            return Err("no destination source".into());
        };
        let rows = match (&src.db, &self.db) {
            (Some((_, cols)), Some(h)) => load_db(h, cols)?,
            _ => {
                let text = std::fs::read_to_string(&src.file)
                    .map_err(|e| format!("can't open list file [{}]: {e}", src.file.display()))?;
                list::parse_file(&text)?
            }
        };
        let mut rows = rows;
        if self.attrs_none {
            for r in rows.iter_mut().filter(|r| r.attrs.is_empty()) {
                r.attrs = "none=yes".into();
            }
        }
        let l = list::build(&rows, self.load_mode == 1)?;
        let n = l.sets.len();
        if let Ok(mut g) = self.list.write() {
            *g = Arc::new(l);
        }
        Ok(n)
    }
}

fn load_db(h: &DbHandle, c: &Cols) -> Result<Vec<list::Row>, String> {
    let rows = db::with(h, |d| {
        if c.table == "dispatcher" {
            d.ensure_table("dispatcher", &[])?;
        }
        d.select(
            &c.table,
            &[&c.setid, &c.dest, &c.flags, &c.priority, &c.attrs],
            &[],
            None,
        )
    })
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for r in rows {
        let [id, uri, flags, prio, attrs] = &r[..] else {
            continue;
        };
        let uri = uri.to_text();
        if uri.is_empty() {
            continue;
        }
        out.push(list::Row {
            setid: id.as_int().unwrap_or(0) as i32,
            uri,
            flags: flags.as_int().unwrap_or(0) as i32,
            priority: prio.as_int().unwrap_or(0) as i32,
            attrs: match attrs {
                db::DbVal::Null => String::new(),
                a => a.to_text(),
            },
        });
    }
    Ok(out)
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let pvs = ictx.pvs;
    let st = &mut ictx.states.dispatcher;
    st.workdir = ictx.workdir.to_path_buf();
    st.force_dst = p.int("force_dst", 1) != 0;
    st.flags = p.int("flags", 0);
    st.use_default = p.int("use_default", 0) != 0;
    st.xavp_dst = Bytes::from(p.str_or("xavp_dst", "_dsdst_"));
    st.xavp_dst_mode = p.int("xavp_dst_mode", 0);
    st.xavp_ctx = Bytes::from(p.str_or("xavp_ctx", "_dsctx_"));
    st.xavp_ctx_mode = p.int("xavp_ctx_mode", 0);
    st.probing_mode = p.int("ds_probing_mode", 0);
    st.probing_threshold = p.int("ds_probing_threshold", 1) as i32;
    st.inactive_threshold = p.int("ds_inactive_threshold", 1) as i32;
    st.load_mode = p.int("ds_load_mode", 0);
    st.reload_delta = p.int("reload_delta", 5);
    st.attrs_none = p.int("ds_attrs_none", 0) != 0;
    st.ping_interval = std::time::Duration::from_secs(p.int("ds_ping_interval", 0).max(0) as u64);
    st.ping_method = p.str_or("ds_ping_method", "OPTIONS");
    st.ping_from = p.str_or("ds_ping_from", "sip:dispatcher@localhost");
    st.ping_reply_codes = probe::parse_reply_codes(&p.str_or("ds_ping_reply_codes", ""))
        .map_err(|e| format!("dispatcher: {e}"))?;
    if !st.ping_interval.is_zero() && !ictx.loaded.contains(&"tm") {
        return Err("dispatcher: could not load the TM-functions - disable DS ping".into());
    }
    if let Some(h) = p.str("hash_pvar").filter(|s| !s.is_empty()) {
        st.hash_pvar =
            Some(vm::pv::parse_format(&h, pvs).map_err(|e| format!("dispatcher: hash_pvar: {e}"))?);
    }
    for (name, slot) in [
        ("setid_pvname", &mut st.setid_pv),
        ("attrs_pvname", &mut st.attrs_pv),
    ] {
        if let Some(t) = p.str(name).filter(|s| !s.is_empty()) {
            *slot =
                Some(vm::pv::parse_spec(&t, pvs).map_err(|e| format!("dispatcher: {name}: {e}"))?);
        }
    }
    let file = p.str_or("list_file", "/etc/kamailio/dispatcher.list");
    let file = {
        let f = PathBuf::from(file);
        if f.is_absolute() {
            f
        } else {
            ictx.workdir.join(f)
        }
    };
    let mut src = Source { file, db: None };
    if let Some(url) = p.str("db_url").filter(|s| !s.is_empty()) {
        let cols = Cols {
            table: p.str_or("table_name", "dispatcher"),
            setid: p.str_or("setid_col", "setid"),
            dest: p.str_or("destination_col", "destination"),
            flags: p.str_or("flags_col", "flags"),
            priority: p.str_or("priority_col", "priority"),
            attrs: p.str_or("attrs_col", "attrs"),
        };
        st.db = Some(db::open(&url, ictx.workdir).map_err(|e| format!("dispatcher: {e}"))?);
        src.db = Some((url, cols));
    }
    st.source = Some(src);
    match st.reload() {
        Ok(n) => {
            crate::klog!(L_INFO, "dispatcher", "{n} destination sets loaded");
            Ok(())
        }
        Err(e) if st.source.as_ref().is_some_and(|s| s.db.is_some()) => {
            Err(format!("dispatcher: cannot load destinations from db: {e}"))
        }
        Err(e) => Err(format!("dispatcher: {e}")),
    }
}

// ------------------------------------------------------------------ hashing

fn hash_callid(c: &Ctx) -> Option<u32> {
    let cid = c.msg.callid()?;
    Some(list::hash(Some(cid.trim_ascii()), None))
}

fn user_only(c: &Ctx) -> bool {
    c.core.m.dispatcher.flags & DS_HASH_USER_ONLY != 0
}

fn hash_from(c: &Ctx) -> Option<u32> {
    let f = c.msg.from().ok()?;
    list::uri_hash(f.uri_raw.trim_ascii(), user_only(c))
}

fn hash_to(c: &Ctx) -> Option<u32> {
    let t = c.msg.to().ok()?;
    list::uri_hash(t.uri_raw.trim_ascii(), user_only(c))
}

fn hash_ruri(c: &Ctx) -> Option<u32> {
    let r = c.msg.ruri()?.clone();
    list::uri_hash(&r, user_only(c))
}

/// `Ok(Some)` a hash, `Ok(None)` no credentials (round robin instead), `Err` bad header.
fn hash_authuser(c: &Ctx) -> Result<Option<u32>, ()> {
    for kind in [HdrKind::ProxyAuthorization, HdrKind::Authorization] {
        let Some(h) = c.msg.header(kind) else {
            continue;
        };
        let Ok(cred) = crate::sip::Credentials::parse_in(c.msg.buf(), &h.value) else {
            continue;
        };
        let Some(user) = cred.username.as_ref() else {
            return Ok(None);
        };
        let u: &[u8] = user;
        let u = match u.iter().position(|b| *b == b'@') {
            Some(i) => &u[..i],
            None => u,
        };
        let u = u.trim_ascii();
        if u.is_empty() {
            return Ok(None);
        }
        return Ok(Some(list::hash(Some(u), None)));
    }
    Ok(None)
}

fn hash_pv(c: &mut Ctx) -> Option<u32> {
    let f = c.core.m.dispatcher.hash_pvar.as_ref()?;
    let s = super::pv::util::pv_format(c, f);
    let s = s.trim_ascii();
    if s.is_empty() {
        crate::klog!(L_ERR, "dispatcher", "hash_pvar: string is empty");
        return None;
    }
    Some(list::hash(Some(s), None))
}

// ------------------------------------------------------------------ selection

fn set_ruri_hostall(c: &mut Ctx, dst: &[u8]) -> bool {
    let rest = if dst.len() > 4 && dst[..4].eq_ignore_ascii_case(b"sip:") {
        &dst[4..]
    } else if dst.len() > 5 && dst[..5].eq_ignore_ascii_case(b"sips:") {
        &dst[5..]
    } else {
        dst
    };
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return false;
    };
    let mut s = u.scheme_raw.to_vec();
    s.push(b':');
    if !u.user.is_empty() {
        s.extend_from_slice(&u.user);
        if let Some(pw) = &u.password {
            s.push(b':');
            s.extend_from_slice(pw);
        }
        s.push(b'@');
    }
    s.extend_from_slice(rest);
    let b = Bytes::from(s);
    if Uri::parse(&b).is_err() {
        return false;
    }
    c.msg.set_ruri(b);
    true
}

fn push_dst(c: &mut Ctx, uri: &Bytes, op: SetOp) -> bool {
    match op {
        SetOp::Ruri => set_ruri_hostall(c, uri),
        SetOp::Xavp => true,
        SetOp::DstUri => {
            if Uri::parse(uri).is_err() {
                return false;
            }
            c.dst_uri = Some(uri.clone());
            true
        }
    }
}

fn xavp_record(c: &Ctx, set: &DsSet, pos: usize) -> XavpList {
    let mut r = XavpList::default();
    let d = &set.dests[pos];
    r.add(
        Bytes::from_static(b"uri"),
        XVal::Val(Value::Str(d.uri.clone())),
    );
    r.add(
        Bytes::from_static(b"grp"),
        XVal::Val(Value::Int(set.id as i64)),
    );
    if c.core.m.dispatcher.xavp_dst_mode & 1 == 0 && !d.attrs.body.is_empty() {
        r.add(
            Bytes::from_static(b"attrs"),
            XVal::Val(Value::Str(Bytes::from(d.attrs.body.clone()))),
        );
    }
    r
}

fn add_branches(c: &mut Ctx, set: &DsSet, first: usize, op: SetOp) -> bool {
    if op == SetOp::Xavp || first + 1 >= set.dests.len() {
        return true;
    }
    let ruser = if op == SetOp::Ruri {
        match c.msg.parsed_ruri() {
            Ok(u) => Some(u.user.clone()),
            Err(_) => return false,
        }
    } else {
        None
    };
    for d in &set.dests[first + 1..] {
        if c.branches.len() + 1 >= c.core.cfg.max_branches.max(1) as usize {
            crate::klog!(L_ERR, "dispatcher", "max number of branches exceeded");
            return false;
        }
        let br = match &ruser {
            Some(user) if !user.is_empty() => {
                let u: &[u8] = &d.uri;
                let (scheme, rest) = if u.len() >= 5 && u.starts_with(b"sips:") {
                    ("sips:", &u[5..])
                } else if u.starts_with(b"sip:") {
                    ("sip:", &u[4..])
                } else {
                    crate::klog!(
                        L_WARN,
                        "dispatcher",
                        "unsupported protocol schema - ignoring"
                    );
                    continue;
                };
                let mut s = scheme.as_bytes().to_vec();
                s.extend_from_slice(user);
                s.push(b'@');
                s.extend_from_slice(rest);
                Branch {
                    uri: Bytes::from(s),
                    q: -1,
                    ..Branch::default()
                }
            }
            Some(_) => Branch {
                uri: d.uri.clone(),
                q: -1,
                ..Branch::default()
            },
            None => {
                let Some(r) = c.msg.ruri().cloned() else {
                    return false;
                };
                Branch {
                    uri: r,
                    dst_uri: Some(d.uri.clone()),
                    q: -1,
                    ..Branch::default()
                }
            }
        };
        c.branches.push(br);
    }
    true
}

/// Kamailio's `ds_select_dst_limit`: 1 selected, -1 not (2 when extra branches failed).
fn select(c: &mut Ctx, setid: i64, alg: i64, limit: i64, op: SetOp) -> i64 {
    let limit: u64 = if limit <= 0 {
        // 0 means unlimited; a negative value is a huge unsigned number in Kamailio.
        u64::MAX
    } else {
        limit as u64
    };
    let mut cnt: i64 = 0;
    let rc = manage_routes(c, setid, alg, limit, op, &mut cnt);
    if rc < 0 {
        return rc;
    }
    let st = &c.core.m.dispatcher;
    if st.xavp_ctx_mode & 1 == 0 {
        let mut l = XavpList::default();
        l.add(Bytes::from_static(b"cnt"), XVal::Val(Value::Int(cnt)));
        let name = st.xavp_ctx.clone();
        c.xavps.add(name, XVal::List(l));
    }
    rc
}

fn manage_routes(c: &mut Ctx, setid: i64, alg: i64, limit: u64, op: SetOp, cnt: &mut i64) -> i64 {
    let st = &c.core.m.dispatcher;
    let lst = st.current();
    if lst.sets.is_empty() {
        crate::klog!(L_ERR, "dispatcher", "no destination sets");
        return -1;
    }
    if op == SetOp::DstUri && !st.force_dst && c.dst_uri.is_some() {
        crate::klog!(L_ERR, "dispatcher", "destination already set");
        return -1;
    }
    let Some(set) = lst.find(setid as i32) else {
        crate::klog!(L_ERR, "dispatcher", "destination set [{setid}] not found");
        return -1;
    };
    let nr = set.dests.len() as u32;
    if nr == 0 {
        return -1;
    }
    let use_default = st.use_default;
    let mut ulast = false;
    let mut vlast = 0u32;
    let rr = |set: &DsSet, vlast: &mut u32| {
        let mut rt = set.rt();
        let h = rt.last;
        rt.last = (rt.last + 1) % nr;
        *vlast = rt.last;
        h
    };
    let hash: u32 = match alg {
        0 => match hash_callid(c) {
            Some(h) => h,
            None => {
                crate::klog!(L_ERR, "dispatcher", "can't get callid hash");
                return -1;
            }
        },
        1 => match hash_from(c) {
            Some(h) => h,
            None => {
                crate::klog!(L_ERR, "dispatcher", "can't get From uri hash");
                return -1;
            }
        },
        2 => match hash_to(c) {
            Some(h) => h,
            None => {
                crate::klog!(L_ERR, "dispatcher", "can't get To uri hash");
                return -1;
            }
        },
        3 => match hash_ruri(c) {
            Some(h) => h,
            None => {
                crate::klog!(L_ERR, "dispatcher", "can't get ruri hash");
                return -1;
            }
        },
        4 => {
            ulast = true;
            rr(set, &mut vlast)
        }
        5 => match hash_authuser(c) {
            Ok(Some(h)) => h,
            Ok(None) => {
                ulast = true;
                rr(set, &mut vlast)
            }
            Err(()) => {
                crate::klog!(L_ERR, "dispatcher", "can't get authorization hash");
                return -1;
            }
        },
        6 => list::rand_u32() & 0x7fff_ffff,
        7 => match hash_pv(c) {
            Some(h) => h,
            None => {
                crate::klog!(L_ERR, "dispatcher", "can't get PV hash");
                return -1;
            }
        },
        8 | 12 => 0,
        9 => {
            let mut rt = set.rt();
            let h = set.wlist.get(rt.wlast as usize).copied().unwrap_or(0);
            rt.wlast = (rt.wlast + 1) % 100;
            h
        }
        11 => {
            let mut rt = set.rt();
            let h = rt.rwlist[rt.rwlast as usize % 100];
            rt.rwlast = (rt.rwlast + 1) % 100;
            h
        }
        10 | 13 => {
            crate::klog!(
                L_ERR,
                "dispatcher",
                "algorithm {alg} is not supported by ksr"
            );
            return -1;
        }
        _ => {
            crate::klog!(
                L_WARN,
                "dispatcher",
                "algo {alg} not implemented - using first entry..."
            );
            0
        }
    };
    let modn = if use_default && nr != 1 { nr - 1 } else { nr };
    let start = hash % modn;
    let mut i = start;
    let flags: Vec<i32> = set.rt().flags.clone();
    while list::skip(flags[i as usize]) {
        i = (i + 1) % modn;
        if i == start {
            if use_default {
                i = nr - 1;
                if list::skip(flags[i as usize]) {
                    return -1;
                }
                break;
            }
            return -1;
        }
    }
    let pick = i as usize;
    if op != SetOp::Xavp && !push_dst(c, &set.dests[pick].uri, op) {
        crate::klog!(
            L_ERR,
            "dispatcher",
            "cannot set next hop address with: {}",
            String::from_utf8_lossy(&set.dests[pick].uri)
        );
        return -1;
    }
    if ulast {
        let mut rt = set.rt();
        if vlast == rt.last {
            rt.last = (i + 1) % nr;
        }
    }
    crate::klog!(
        L_DBG,
        "dispatcher",
        "selected [{alg}-{setid}/{pick}] <{}>",
        String::from_utf8_lossy(&set.dests[pick].uri)
    );
    if alg == 12 {
        return if add_branches(c, set, pick, op) { 1 } else { 2 };
    }
    let st = &c.core.m.dispatcher;
    if st.flags & DS_FAILOVER_ON == 0 || st.xavp_dst.is_empty() {
        return 1;
    }
    // The selected destination, then the following ones, then the ones before it.
    let mut recs = vec![xavp_record(c, set, pick)];
    *cnt = 1;
    let n = set.dests.len();
    let candidates = (pick + 1..n).chain(0..pick);
    for j in candidates {
        if (*cnt as u64) >= limit {
            break;
        }
        if list::skip(flags[j]) || (use_default && j == n - 1) {
            continue;
        }
        recs.push(xavp_record(c, set, j));
        *cnt += 1;
    }
    if use_default && pick != n - 1 && (*cnt as u64) < limit {
        recs.push(xavp_record(c, set, n - 1));
        *cnt += 1;
    }
    let name = st.xavp_dst.clone();
    for r in recs.into_iter().rev() {
        c.xavps.add(name.clone(), XVal::List(r));
    }
    1
}

fn rec_field<'a>(rec: &'a XVal, field: &[u8]) -> Option<&'a Value> {
    match rec {
        XVal::List(l) => match l.get(field, 0)? {
            XVal::Val(v) => Some(v),
            XVal::List(_) => None,
        },
        XVal::Val(_) => None,
    }
}

/// `ds_next_dst` / `ds_set_dst` and the domain variants.
fn update_dst(c: &mut Ctx, next: bool, op: SetOp) -> i64 {
    let st = &c.core.m.dispatcher;
    if next && (st.flags & DS_FAILOVER_ON == 0 || st.xavp_dst.is_empty()) {
        crate::klog!(L_WARN, "dispatcher", "failover support disabled");
        return -1;
    }
    let name = st.xavp_dst.clone();
    if !matches!(c.xavps.get(&name, 0), Some(XVal::List(_))) {
        return -1;
    }
    if next {
        c.xavps.remove(&name, Some(0));
    }
    let Some(rec) = c.xavps.get(&name, 0) else {
        return -1;
    };
    let Some(Value::Str(uri)) = rec_field(rec, b"uri").cloned() else {
        crate::klog!(
            L_WARN,
            "dispatcher",
            "no xavp uri field in next destination record"
        );
        return -1;
    };
    if !push_dst(c, &uri, op) {
        crate::klog!(
            L_ERR,
            "dispatcher",
            "cannot set dst addr: {}",
            String::from_utf8_lossy(&uri)
        );
        return -1;
    }
    1
}

// ------------------------------------------------------------------ states

/// Kamailio's `ds_parse_flags`: letters A, I, D, T, P.
pub fn parse_state(s: &[u8]) -> Option<i32> {
    let mut f = 0;
    for b in s {
        match b.to_ascii_lowercase() {
            b'a' => f &= !DS_STATES_ALL,
            b'i' => f |= DS_INACTIVE,
            b'd' => f |= DS_DISABLED,
            b't' => f |= DS_TRYING,
            b'p' => f |= DS_PROBING,
            _ => return None,
        }
    }
    Some(f)
}

/// Current state bits of `address` in `group`.
fn state_of(core: &Core, group: i32, address: &[u8]) -> Option<i32> {
    let lst = core.m.dispatcher.current();
    let set = lst.find(group)?;
    let i = set
        .dests
        .iter()
        .position(|d| d.uri.eq_ignore_ascii_case(address))?;
    set.rt().flags.get(i).copied()
}

/// Sets the state of `address` in `group` (Kamailio's `ds_update_state`): 0 done, -1 no
/// such destination.
fn update_state(core: &Core, group: i32, address: &[u8], mut state: i32) -> i32 {
    let st = &core.m.dispatcher;
    let lst = st.current();
    let Some(set) = lst.find(group) else {
        crate::klog!(L_ERR, "dispatcher", "destination set [{group}] not found");
        return -1;
    };
    let Some(i) = set
        .dests
        .iter()
        .position(|d| d.uri.eq_ignore_ascii_case(address))
    else {
        return -1;
    };
    let mut rt = set.rt();
    let old = rt.flags[i];
    rt.flags[i] &= !DS_STATES_ALL;
    let init = state;
    if state & DS_TRYING != 0 && old & DS_INACTIVE != 0 {
        state &= !DS_TRYING;
        state |= DS_INACTIVE;
    }
    if state & DS_DISABLED != 0 {
        rt.flags[i] |= DS_DISABLED;
    } else {
        rt.flags[i] |= state;
    }
    if state & DS_TRYING != 0 {
        rt.msg_count[i] += 1;
        if rt.msg_count[i] >= st.probing_threshold {
            rt.flags[i] &= !DS_TRYING;
            rt.flags[i] |= DS_INACTIVE;
            rt.msg_count[i] = 0;
        }
    } else if init & DS_TRYING == 0 && old & DS_INACTIVE != 0 {
        rt.msg_count[i] += 1;
        if rt.msg_count[i] < st.inactive_threshold {
            rt.flags[i] |= DS_INACTIVE;
            if old & DS_PROBING != 0 {
                rt.flags[i] |= DS_PROBING;
            }
        } else {
            rt.msg_count[i] = 0;
        }
    } else {
        rt.msg_count[i] = 0;
    }
    if set.dests[i].attrs.rweight > 0 && list::skip(old) != list::skip(rt.flags[i]) {
        list::init_rweights(&set.dests, &mut rt);
    }
    0
}

fn mark_dst(c: &mut Ctx, state: i32) -> i64 {
    let st = &c.core.m.dispatcher;
    if st.flags & DS_FAILOVER_ON == 0 {
        crate::klog!(L_WARN, "dispatcher", "failover support disabled");
        return -1;
    }
    if st.xavp_dst.is_empty() {
        return -1;
    }
    let Some(rec) = c.xavps.get(&st.xavp_dst, 0) else {
        return -1;
    };
    let Some(Value::Int(grp)) = rec_field(rec, b"grp").cloned() else {
        return -1;
    };
    let Some(Value::Str(uri)) = rec_field(rec, b"uri").cloned() else {
        return -1;
    };
    if update_state(c.core, grp as i32, &uri, state) == 0 {
        1
    } else {
        -1
    }
}

fn mark_default(c: &Ctx) -> i32 {
    let mut s = DS_INACTIVE;
    if c.core.m.dispatcher.probing_mode == 1 {
        s |= DS_PROBING;
    }
    s
}

fn mark_dst_state(c: &mut Ctx, sval: &[u8]) -> i64 {
    if sval.is_empty() {
        let s = mark_default(c);
        return mark_dst(c, s);
    }
    match parse_state(sval) {
        Some(s) => mark_dst(c, s),
        None => {
            crate::klog!(
                L_WARN,
                "dispatcher",
                "Failed to parse state flags: {}",
                String::from_utf8_lossy(sval)
            );
            -1
        }
    }
}

// ------------------------------------------------------------------ matching

fn from_list(c: &mut Ctx, group: i64, uri: Option<&[u8]>, mode: i64) -> i64 {
    let (ip, port, proto) = match uri.filter(|u| !u.is_empty()) {
        None => (c.rcv.src.ip(), c.rcv.src.port(), Some(c.rcv.proto)),
        Some(u) => {
            let Ok(p) = Uri::parse_bytes(u) else {
                crate::klog!(
                    L_ERR,
                    "dispatcher",
                    "bad uri [{}]",
                    String::from_utf8_lossy(u)
                );
                return -1;
            };
            let host = String::from_utf8_lossy(p.host_unbracketed()).into_owned();
            let ip = match host.parse() {
                Ok(ip) => ip,
                Err(_) => {
                    use std::net::ToSocketAddrs;
                    match (host.as_str(), 0u16)
                        .to_socket_addrs()
                        .map(|mut a| a.next())
                    {
                        Ok(Some(a)) => a.ip(),
                        _ => {
                            crate::klog!(L_ERR, "dispatcher", "could not resolve {host}");
                            return -1;
                        }
                    }
                }
            };
            let proto = list::proto_of(&p);
            (ip, p.port.unwrap_or(0), proto)
        }
    };
    let lst = c.core.m.dispatcher.current();
    let sets: Vec<&DsSet> = if group == -1 {
        lst.sets.iter().collect()
    } else {
        lst.find(group as i32).into_iter().collect()
    };
    for set in sets {
        let flags = set.rt().flags.clone();
        for (j, d) in set.dests.iter().enumerate() {
            let Some(dip) = d.ip else { continue };
            if dip != ip {
                continue;
            }
            if mode & MATCH_NOPORT == 0 && d.port != 0 && d.port != port {
                continue;
            }
            if mode & MATCH_NOPROTO == 0 && d.proto != proto {
                continue;
            }
            if mode & MATCH_ACTIVE != 0 && list::skip(flags[j]) {
                continue;
            }
            let st = &c.core.m.dispatcher;
            if group == -1
                && let Some(spec) = st.setid_pv.as_ref()
                && vm::pv::set(c, spec, &Value::Int(set.id as i64)).is_err()
            {
                return -2;
            }
            let st = &c.core.m.dispatcher;
            if !d.attrs.body.is_empty()
                && let Some(spec) = st.attrs_pv.as_ref()
                && vm::pv::set(c, spec, &Value::Str(Bytes::from(d.attrs.body.clone()))).is_err()
            {
                return -3;
            }
            return 1;
        }
    }
    -1
}

fn list_exists(c: &Ctx, set: i64) -> i64 {
    if c.core.m.dispatcher.current().find(set as i32).is_some() {
        1
    } else {
        -1
    }
}

fn is_active(c: &Ctx, group: i64, uri: Option<&[u8]>) -> i64 {
    let lst = c.core.m.dispatcher.current();
    let Some(set) = lst.find(group as i32) else {
        return -1;
    };
    let flags = set.rt().flags.clone();
    for (j, d) in set.dests.iter().enumerate() {
        if list::skip(flags[j]) {
            continue;
        }
        match uri {
            None | Some([]) => return 1,
            Some(u) if d.uri[..] == *u => return 1,
            _ => {}
        }
    }
    -1
}

fn reload_fn(c: &Ctx) -> i64 {
    if !c.core.m.dispatcher.reload_allowed() {
        crate::klog!(L_ERR, "dispatcher", "ongoing reload");
        return -1;
    }
    match c.core.m.dispatcher.reload() {
        Ok(_) => 1,
        Err(e) => {
            crate::klog!(L_ERR, "dispatcher", "Error reloading: {e}");
            -1
        }
    }
}

// ------------------------------------------------------------------ RPC

fn state_letters(f: i32) -> String {
    let a = if f & DS_INACTIVE != 0 {
        'I'
    } else if f & DS_DISABLED != 0 {
        'D'
    } else if f & DS_TRYING != 0 {
        'T'
    } else {
        'A'
    };
    let b = if f & DS_PROBING != 0 { 'P' } else { 'X' };
    format!("{a}{b}")
}

/// Attributes not given print as null in Kamailio's listing.
fn or_null(s: &str) -> Json {
    if s.is_empty() {
        Json::Null
    } else {
        Json::String(s.to_string())
    }
}

fn rpc_list(core: &'static Core, params: &[Json]) -> Result<Json, RpcError> {
    let mode = params
        .first()
        .and_then(|v| v.as_str())
        .map(|s| s.to_ascii_lowercase());
    let short = mode.as_deref() == Some("short");
    let lst = core.m.dispatcher.current();
    if lst.sets.is_empty() {
        return Err(RpcError::new(500, "No Destination Sets"));
    }
    let mut records = Vec::new();
    for set in &lst.sets {
        let flags = set.rt().flags.clone();
        let mut targets = Vec::new();
        for (j, d) in set.dests.iter().enumerate() {
            let mut dest = serde_json::Map::new();
            dest.insert(
                "URI".into(),
                Json::String(String::from_utf8_lossy(&d.uri).into_owned()),
            );
            dest.insert("FLAGS".into(), Json::String(state_letters(flags[j])));
            dest.insert("PRIORITY".into(), json!(d.priority));
            if !short && !d.attrs.body.is_empty() {
                dest.insert(
                    "ATTRS".into(),
                    json!({
                        "BODY": d.attrs.body,
                        "DUID": or_null(&d.attrs.duid),
                        "MAXLOAD": d.attrs.maxload,
                        "WEIGHT": d.attrs.weight,
                        "RWEIGHT": d.attrs.rweight,
                        "SOCKET": or_null(&d.attrs.socket),
                        "SOCKNAME": or_null(&d.attrs.sockname),
                        "OBPROXY": or_null(&d.attrs.obproxy),
                    }),
                );
            }
            targets.push(json!({ "DEST": Json::Object(dest) }));
        }
        records.push(json!({ "SET": { "ID": set.id, "TARGETS": targets } }));
    }
    Ok(json!({ "NRSETS": lst.sets.len(), "RECORDS": records }))
}

fn rpc_reload(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let st = &core.m.dispatcher;
    if !st.reload_allowed() {
        crate::klog!(L_ERR, "dispatcher", "ongoing reload");
        return Err(RpcError::new(500, "Ongoing reload"));
    }
    match st.reload() {
        Ok(_) => Ok(Json::String("Ok. Dispatcher successfully reloaded.".into())),
        Err(e) => {
            crate::klog!(L_ERR, "dispatcher", "reload failed: {e}");
            Err(RpcError::new(500, "Reload Failed"))
        }
    }
}

fn rpc_set_state(core: &'static Core, params: &[Json]) -> Result<Json, RpcError> {
    let text = |v: Option<&Json>| match v {
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let state = text(params.first());
    let group = text(params.get(1)).and_then(|s| s.trim().parse::<i64>().ok());
    let dest = text(params.get(2));
    let (Some(state), Some(group), Some(dest)) = (state, group, dest) else {
        return Err(RpcError::new(500, "Invalid Parameters"));
    };
    let st = state.as_bytes();
    let Some(&first) = st.first() else {
        return Err(RpcError::new(500, "Invalid State Parameter"));
    };
    let probing = st.len() > 1 && st[1].eq_ignore_ascii_case(&b'p');
    let flag = match first.to_ascii_lowercase() {
        b'0' | b'i' => DS_INACTIVE | if probing { DS_PROBING } else { 0 },
        b'1' | b'a' => {
            if probing {
                DS_PROBING
            } else {
                0
            }
        }
        b'2' | b'd' => DS_DISABLED,
        b'3' | b't' => DS_TRYING | if probing { DS_PROBING } else { 0 },
        _ => return Err(RpcError::new(500, "Unknown State Value")),
    };
    let group = group as i32;
    if dest == "all" {
        // Kamailio answers Ok even for a set that does not exist.
        let lst = core.m.dispatcher.current();
        if let Some(set) = lst.find(group) {
            let mut rt = set.rt();
            for f in rt.flags.iter_mut() {
                *f = (*f & !DS_STATES_ALL) | flag;
            }
            list::init_rweights(&set.dests, &mut rt);
        }
    } else if !reinit_state(core, group, dest.as_bytes(), flag) {
        return Err(RpcError::new(500, "State Update Failed"));
    }
    Ok(Json::String("Ok. Dispatcher state updated.".into()))
}

/// Sets the state bits directly (Kamailio's `ds_reinit_state`, used by the RPC).
fn reinit_state(core: &Core, group: i32, address: &[u8], state: i32) -> bool {
    let lst = core.m.dispatcher.current();
    let Some(set) = lst.find(group) else {
        return false;
    };
    let Some(i) = set
        .dests
        .iter()
        .position(|d| d.uri.eq_ignore_ascii_case(address))
    else {
        return false;
    };
    let mut rt = set.rt();
    let old = rt.flags[i];
    rt.flags[i] = (old & !DS_STATES_ALL) | state;
    if set.dests[i].attrs.rweight > 0 {
        list::init_rweights(&set.dests, &mut rt);
    }
    true
}

// ------------------------------------------------------------------ registration

fn register(r: &mut Registrar<'_>) {
    r.hooks.reply_received.push(probe::on_reply);
    r.hooks.threads.push(super::ThreadDef {
        name: "ds-ping",
        run: probe::thread,
    });
    let rf = RouteMask::REQUEST.union(RouteMask::FAILURE);
    let any = RouteMask::ANY;
    let m = "dispatcher";
    type Sel = (&'static str, &'static str, SetOp, RouteMask);
    let sels: [Sel; 3] = [
        ("ds_select", "ds_select_limit", SetOp::Xavp, any),
        ("ds_select_dst", "ds_select_dst_limit", SetOp::DstUri, rf),
        (
            "ds_select_domain",
            "ds_select_domain_limit",
            SetOp::Ruri,
            rf,
        ),
    ];
    for (name, lname, op, routes) in sels {
        // Each function body needs its own `op`; a match keeps them plain fn pointers.
        let f2: vm::ksr::KsrFn<Ctx> = match op {
            SetOp::Xavp => {
                |c, a| Value::Int(select(c, arg_int(a, 0), arg_int(a, 1), 0, SetOp::Xavp))
            }
            SetOp::DstUri => {
                |c, a| Value::Int(select(c, arg_int(a, 0), arg_int(a, 1), 0, SetOp::DstUri))
            }
            SetOp::Ruri => {
                |c, a| Value::Int(select(c, arg_int(a, 0), arg_int(a, 1), 0, SetOp::Ruri))
            }
        };
        let f3: vm::ksr::KsrFn<Ctx> = match op {
            SetOp::Xavp => |c, a| {
                Value::Int(select(
                    c,
                    arg_int(a, 0),
                    arg_int(a, 1),
                    arg_int(a, 2),
                    SetOp::Xavp,
                ))
            },
            SetOp::DstUri => |c, a| {
                Value::Int(select(
                    c,
                    arg_int(a, 0),
                    arg_int(a, 1),
                    arg_int(a, 2),
                    SetOp::DstUri,
                ))
            },
            SetOp::Ruri => |c, a| {
                Value::Int(select(
                    c,
                    arg_int(a, 0),
                    arg_int(a, 1),
                    arg_int(a, 2),
                    SetOp::Ruri,
                ))
            },
        };
        r.kemi(m, name, &[I, I], RetType::Int, f2)
            .native(name, routes);
        let routes3 = if op == SetOp::Xavp { rf } else { routes };
        r.kemi(m, lname, &[I, I, I], RetType::Int, f3);
        r.native(name, &[I, I, I], routes3, f3);
    }
    r.kemi(m, "ds_next_dst", &[], RetType::Int, |c, _| {
        Value::Int(update_dst(c, true, SetOp::DstUri))
    })
    .native("ds_next_dst", rf);
    r.kemi(m, "ds_next_domain", &[], RetType::Int, |c, _| {
        Value::Int(update_dst(c, true, SetOp::Ruri))
    })
    .native("ds_next_domain", rf);
    r.kemi(m, "ds_set_dst", &[], RetType::Int, |c, _| {
        Value::Int(update_dst(c, false, SetOp::DstUri))
    })
    .native("ds_set_dst", rf);
    r.kemi(m, "ds_set_domain", &[], RetType::Int, |c, _| {
        Value::Int(update_dst(c, false, SetOp::Ruri))
    })
    .native("ds_set_domain", rf);
    let rfo = RouteMask::REQUEST
        .union(RouteMask::FAILURE)
        .union(RouteMask::ONREPLY);
    r.kemi(m, "ds_mark_dst", &[], RetType::Int, |c, _| {
        let s = mark_default(c);
        Value::Int(mark_dst(c, s))
    })
    .native("ds_mark_dst", rfo);
    r.kemi(m, "ds_mark_dst_state", &[S], RetType::Int, |c, a| {
        Value::Int(mark_dst_state(c, &arg_bytes(a, 0)))
    })
    .native("ds_mark_dst", rfo);
    r.kemi(m, "ds_is_from_lists", &[], RetType::Int, |c, _| {
        Value::Int(from_list(c, -1, None, MATCH_NOPROTO))
    })
    .native("ds_is_from_list", rfo.union(RouteMask::BRANCH));
    r.kemi(m, "ds_is_from_list", &[I], RetType::Int, |c, a| {
        Value::Int(from_list(c, arg_int(a, 0), None, MATCH_NOPROTO))
    })
    .native("ds_is_from_list", any);
    r.kemi(m, "ds_is_from_list_mode", &[I, I], RetType::Int, |c, a| {
        Value::Int(from_list(c, arg_int(a, 0), None, arg_int(a, 1)))
    })
    .native("ds_is_from_list", any);
    r.kemi(
        m,
        "ds_is_from_list_uri",
        &[I, I, S],
        RetType::Int,
        |c, a| {
            let u = arg_bytes(a, 2);
            Value::Int(from_list(c, arg_int(a, 0), Some(&u), arg_int(a, 1)))
        },
    )
    .native("ds_is_from_list", any);
    r.kemi(m, "ds_list_exists", &[I], RetType::Int, |c, a| {
        Value::Int(list_exists(c, arg_int(a, 0)))
    })
    .native("ds_list_exists", any)
    .native("ds_list_exist", any);
    r.kemi(m, "ds_is_active", &[I], RetType::Int, |c, a| {
        Value::Int(is_active(c, arg_int(a, 0), None))
    })
    .native("ds_is_active", any);
    r.kemi(m, "ds_is_active_uri", &[I, S], RetType::Int, |c, a| {
        let u = arg_bytes(a, 1);
        Value::Int(is_active(c, arg_int(a, 0), Some(&u)))
    })
    .native("ds_is_active", any);
    r.kemi(m, "ds_reload", &[], RetType::Int, |c, _| {
        Value::Int(reload_fn(c))
    })
    .native("ds_reload", any);
    r.rpc.add(
        "dispatcher.list",
        "Return the content of dispatcher sets",
        rpc_list,
    );
    r.rpc.add(
        "dispatcher.reload",
        "Reload dispatcher destination sets",
        rpc_reload,
    );
    r.rpc.add(
        "dispatcher.set_state",
        "Set the state of a destination address",
        rpc_set_state,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_letters_parse() {
        assert_eq!(parse_state(b"ip"), Some(DS_INACTIVE | DS_PROBING));
        assert_eq!(parse_state(b"a"), Some(0));
        assert_eq!(parse_state(b"x"), None);
        assert_eq!(state_letters(DS_INACTIVE | DS_PROBING), "IP");
        assert_eq!(state_letters(0), "AX");
        assert_eq!(state_letters(DS_DISABLED), "DX");
    }
}
