//! Kamailio's `usrloc` module: the location table the registrar saves contacts into and
//! looks them up from, shared by every worker.
//!
//! Tables ("domains" in Kamailio's words: `location`, ...) hold records by address of
//! record, each with its contacts ordered by q. `db_mode` decides how the database follows
//! the memory: 0 memory only, 1 write-through, 2 write-back (flushed by the timer and at
//! shutdown), 3 database only (every operation reads and writes the database). Contacts are
//! removed when they expire by the timer (`timer_interval`). RPC: `ul.dump`, `ul.lookup`.

mod rpc;

use super::{InitCtx, ModuleDef, ParamDef, Registrar, TimerDef};
use crate::ctx::Ctx;
use crate::db::{self, Cond, DbError, DbHandle, DbVal, Op};
use crate::log::{L_ERR, L_INFO};
use ahash::AHashMap;
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

pub static MODULE: ModuleDef = ModuleDef {
    name: "usrloc",
    params: &[
        ParamDef::str("db_url"),
        ParamDef::int("db_mode"),
        ParamDef::int("use_domain"),
        ParamDef::int("timer_interval"),
        ParamDef::int("timer_procs"),
        ParamDef::int("nat_bflag"),
        ParamDef::str("preload").multi(),
        ParamDef::int("desc_time_order"),
        ParamDef::int("matching_mode"),
        ParamDef::int("cseq_delay"),
        ParamDef::int("hash_size"),
        ParamDef::int("db_check_update"),
        ParamDef::int("db_update_as_insert"),
        ParamDef::int("version_table"),
        ParamDef::str("user_column"),
        ParamDef::str("domain_column"),
        ParamDef::str("contact_column"),
        ParamDef::str("expires_column"),
        ParamDef::str("q_column"),
        ParamDef::str("callid_column"),
        ParamDef::str("cseq_column"),
        ParamDef::str("flags_column"),
        ParamDef::str("cflags_column"),
        ParamDef::str("user_agent_column"),
        ParamDef::str("received_column"),
        ParamDef::str("path_column"),
        ParamDef::str("socket_column"),
        ParamDef::str("methods_column"),
        ParamDef::str("instance_column"),
        ParamDef::str("reg_id_column"),
        ParamDef::str("ruid_column"),
        ParamDef::str("server_id_column"),
        ParamDef::str("connection_id_column"),
        ParamDef::str("keepalive_column"),
        ParamDef::str("partition_column"),
        ParamDef::str("last_modified_column"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// Contact flag: kept in memory only, never written to the database (save flag 0x02).
pub const FL_MEM: u32 = 1;
/// Every method allowed (no Allow header in the REGISTER).
pub const ALL_METHODS: u32 = 0xFFFF_FFFF;
/// q not given (Kamailio's Q_UNSPECIFIED).
pub const Q_UNSPECIFIED: i32 = -1;

/// Database state of a contact in write-back mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CState {
    New,
    Sync,
    Dirty,
}

impl CState {
    fn name(self) -> &'static str {
        match self {
            CState::New => "CS_NEW",
            CState::Sync => "CS_SYNC",
            CState::Dirty => "CS_DIRTY",
        }
    }
}

/// One binding of an address of record.
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    /// The Contact URI.
    pub c: String,
    pub received: String,
    pub path: String,
    /// Unix time it expires; 0 = permanent.
    pub expires: i64,
    /// q x 1000, or [`Q_UNSPECIFIED`].
    pub q: i32,
    pub callid: String,
    pub cseq: i32,
    pub flags: u32,
    pub cflags: u32,
    pub user_agent: String,
    /// Receiving socket as `proto:ip:port`, empty when unknown.
    pub sock: String,
    pub methods: u32,
    pub instance: String,
    pub reg_id: u32,
    pub ruid: String,
    pub last_modified: i64,
    pub server_id: i32,
    pub tcpconn_id: i64,
    pub keepalive: u32,
    pub state: CState,
}

impl Default for Contact {
    fn default() -> Self {
        Contact {
            c: String::new(),
            received: String::new(),
            path: String::new(),
            expires: 0,
            q: Q_UNSPECIFIED,
            callid: String::new(),
            cseq: 0,
            flags: 0,
            cflags: 0,
            user_agent: String::new(),
            sock: String::new(),
            methods: ALL_METHODS,
            instance: String::new(),
            reg_id: 0,
            ruid: String::new(),
            last_modified: 0,
            server_id: 0,
            tcpconn_id: -1,
            keepalive: 0,
            state: CState::New,
        }
    }
}

impl Contact {
    /// Not expired at `now` (Kamailio's VALID_CONTACT).
    pub fn valid(&self, now: i64) -> bool {
        self.expires == 0 || self.expires > now
    }

    /// Same content, ignoring the write-back state.
    fn same(&self, o: &Contact) -> bool {
        let mut a = self.clone();
        a.state = o.state;
        a == *o
    }
}

/// An address of record and its contacts, highest q first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub aor: String,
    pub contacts: Vec<Contact>,
}

impl Record {
    /// Inserts `c` after every contact with a q at least as high (Kamailio's order when
    /// `desc_time_order` is 0), or first with `desc_time_order`.
    pub fn insert(&mut self, c: Contact, desc_time_order: bool) -> usize {
        let at = if desc_time_order {
            0
        } else {
            self.contacts
                .iter()
                .position(|x| x.q < c.q)
                .unwrap_or(self.contacts.len())
        };
        self.contacts.insert(at, c);
        at
    }

    /// Puts contact `i` back in q order after its q changed (or first with
    /// `desc_time_order`, the most recently updated contact leading).
    pub fn reposition(&mut self, i: usize, desc_time_order: bool) {
        if i >= self.contacts.len() {
            return;
        }
        let c = self.contacts.remove(i);
        self.insert(c, desc_time_order);
    }
}

/// One location table.
pub struct Domain {
    pub name: String,
    /// Records by AoR, spread over `2^hash_size` independently locked slots.
    slots: Vec<Mutex<AHashMap<String, Record>>>,
    /// ruids deleted from memory but still in the database (write-back mode).
    deleted: Mutex<Vec<String>>,
}

impl Domain {
    fn slot(&self, aor: &str) -> &Mutex<AHashMap<String, Record>> {
        let i = aor_hash(aor) as usize & (self.slots.len() - 1);
        &self.slots[i]
    }
}

/// Database column names (modparams `*_column`).
#[derive(Clone, Debug)]
pub struct Cols {
    pub user: String,
    pub domain: String,
    pub contact: String,
    pub expires: String,
    pub q: String,
    pub callid: String,
    pub cseq: String,
    pub flags: String,
    pub cflags: String,
    pub user_agent: String,
    pub received: String,
    pub path: String,
    pub socket: String,
    pub methods: String,
    pub instance: String,
    pub reg_id: String,
    pub ruid: String,
    pub server_id: String,
    pub connection_id: String,
    pub keepalive: String,
    pub partition: String,
    pub last_modified: String,
}

impl Default for Cols {
    fn default() -> Self {
        Cols {
            user: "username".into(),
            domain: "domain".into(),
            contact: "contact".into(),
            expires: "expires".into(),
            q: "q".into(),
            callid: "callid".into(),
            cseq: "cseq".into(),
            flags: "flags".into(),
            cflags: "cflags".into(),
            user_agent: "user_agent".into(),
            received: "received".into(),
            path: "path".into(),
            socket: "socket".into(),
            methods: "methods".into(),
            instance: "instance".into(),
            reg_id: "reg_id".into(),
            ruid: "ruid".into(),
            server_id: "server_id".into(),
            connection_id: "connection_id".into(),
            keepalive: "keepalive".into(),
            partition: "partition".into(),
            last_modified: "last_modified".into(),
        }
    }
}

pub struct UsrlocState {
    domains: RwLock<Vec<Arc<Domain>>>,
    pub db: Option<DbHandle>,
    pub db_mode: i32,
    pub use_domain: bool,
    pub desc_time_order: bool,
    /// Seconds within which an equal CSeq counts as a retransmission.
    pub cseq_delay: i64,
    /// Branch flag marking contacts behind NAT (-1: none).
    pub nat_bflag: i32,
    pub hash_size: u32,
    cols: Cols,
    timer_interval: i64,
    last_timer: AtomicI64,
    ruid_counter: AtomicU32,
}

impl Default for UsrlocState {
    fn default() -> Self {
        UsrlocState {
            domains: RwLock::new(Vec::new()),
            db: None,
            db_mode: 0,
            use_domain: false,
            desc_time_order: false,
            cseq_delay: 20,
            nat_bflag: -1,
            hash_size: 10,
            cols: Cols::default(),
            timer_interval: 60,
            last_timer: AtomicI64::new(0),
            ruid_counter: AtomicU32::new(0),
        }
    }
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Hash of an AoR: picks its slot and is shown as `HashID` in RPC output (ksr's own
/// function; the value differs from Kamailio's, only its stability matters).
pub fn aor_hash(aor: &str) -> u32 {
    let mut h: u32 = 0;
    for b in aor.bytes() {
        h = h.wrapping_mul(31).wrapping_add(b as u32);
    }
    h
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.usrloc;
    st.db_mode = p.int("db_mode", 0) as i32;
    if !(0..=3).contains(&st.db_mode) {
        return Err(format!("invalid db_mode {}", st.db_mode));
    }
    st.use_domain = p.int("use_domain", 0) != 0;
    st.desc_time_order = p.int("desc_time_order", 0) != 0;
    st.cseq_delay = p.int("cseq_delay", 20);
    st.nat_bflag = p.int("nat_bflag", -1) as i32;
    st.hash_size = p.int("hash_size", 10).clamp(1, 16) as u32;
    st.timer_interval = p.int("timer_interval", 60).max(1);
    if p.int("matching_mode", 0) != 0 {
        return Err("only matching_mode 0 (contact only) is supported".into());
    }
    let c = &mut st.cols;
    for (name, slot) in [
        ("user_column", &mut c.user),
        ("domain_column", &mut c.domain),
        ("contact_column", &mut c.contact),
        ("expires_column", &mut c.expires),
        ("q_column", &mut c.q),
        ("callid_column", &mut c.callid),
        ("cseq_column", &mut c.cseq),
        ("flags_column", &mut c.flags),
        ("cflags_column", &mut c.cflags),
        ("user_agent_column", &mut c.user_agent),
        ("received_column", &mut c.received),
        ("path_column", &mut c.path),
        ("socket_column", &mut c.socket),
        ("methods_column", &mut c.methods),
        ("instance_column", &mut c.instance),
        ("reg_id_column", &mut c.reg_id),
        ("ruid_column", &mut c.ruid),
        ("server_id_column", &mut c.server_id),
        ("connection_id_column", &mut c.connection_id),
        ("keepalive_column", &mut c.keepalive),
        ("partition_column", &mut c.partition),
        ("last_modified_column", &mut c.last_modified),
    ] {
        if let Some(v) = p.str(name) {
            *slot = v;
        }
    }
    if st.db_mode != 0 {
        let url = p
            .str("db_url")
            .ok_or("db_mode is not 0 but db_url is not set")?;
        let h = db::open_shared(&url, ictx.workdir).map_err(|e| e.to_string())?;
        st.db = Some(h);
    }
    let preload: Vec<String> = p.all("preload").filter_map(|v| v.as_str_lossy()).collect();
    for table in preload {
        let d = st.domain(&table);
        if let Some(h) = &st.db {
            ensure(h, &table)?;
            if st.db_mode != 3 {
                let n = st.preload(h, &d).map_err(|e| e.to_string())?;
                crate::klog!(L_INFO, "usrloc", "preloaded {n} contacts of table {table}");
            }
        }
    }
    Ok(())
}

trait LossyStr {
    fn as_str_lossy(&self) -> Option<String>;
}

impl LossyStr for vm::Value {
    fn as_str_lossy(&self) -> Option<String> {
        match self {
            vm::Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }
}

/// Creates a table ksr knows the schema of when it does not exist yet.
fn ensure(h: &DbHandle, table: &str) -> Result<(), String> {
    if db::schema::table(table).is_none() {
        return Ok(());
    }
    db::with(h, |d| d.ensure_table(table, &[])).map_err(|e| e.to_string())
}

fn register(r: &mut Registrar<'_>) {
    r.timers.push(TimerDef {
        name: "usrloc-timer",
        every: Duration::from_secs(1),
        func: |c: &mut Ctx| c.core.m.usrloc.timer(false),
    });
    r.hooks
        .shutdown
        .push(|c: &mut Ctx| c.core.m.usrloc.timer(true));
    rpc::register(r.rpc);
}

fn text(v: &DbVal) -> String {
    v.to_text()
}

impl UsrlocState {
    /// The table `name`, created on first use (Kamailio registers them when a cfg function
    /// names them).
    pub fn domain(&self, name: &str) -> Arc<Domain> {
        if let Some(d) = self.domains.read().iter().find(|d| d.name == name) {
            return d.clone();
        }
        let mut w = self.domains.write();
        if let Some(d) = w.iter().find(|d| d.name == name) {
            return d.clone();
        }
        let d = Arc::new(Domain {
            name: name.to_string(),
            slots: (0..1usize << self.hash_size)
                .map(|_| Mutex::new(AHashMap::new()))
                .collect(),
            deleted: Mutex::new(Vec::new()),
        });
        w.push(d.clone());
        drop(w);
        // A table first named by save()/lookup() at run time: create it in the database
        // now (Kamailio expects it to exist; ksr creates its schema on demand).
        if let Some(h) = &self.db
            && let Err(e) = ensure(h, name)
        {
            crate::klog!(L_ERR, "usrloc", "cannot create table {name}: {e}");
        }
        d
    }

    pub fn domains(&self) -> Vec<Arc<Domain>> {
        self.domains.read().clone()
    }

    /// A new record-unique id.
    pub fn new_ruid(&self) -> String {
        let n = self.ruid_counter.fetch_add(1, Ordering::Relaxed);
        format!("uloc-{:x}-{:x}-{}", now(), std::process::id(), n + 1)
    }

    /// `username` and `domain` column values of an AoR.
    fn split_aor<'a>(&self, aor: &'a str) -> (&'a str, Option<&'a str>) {
        if self.use_domain {
            match aor.split_once('@') {
                Some((u, d)) => (u, Some(d)),
                None => (aor, None),
            }
        } else {
            (aor, None)
        }
    }

    fn aor_conds<'a>(&'a self, aor: &'a str) -> Vec<Cond<'a>> {
        let (u, d) = self.split_aor(aor);
        let mut conds = vec![Cond::eq(&self.cols.user, u)];
        if let Some(d) = d {
            conds.push(Cond::eq(&self.cols.domain, d));
        }
        conds
    }

    fn select_cols(&self) -> Vec<&str> {
        let c = &self.cols;
        vec![
            &c.user,
            &c.domain,
            &c.contact,
            &c.received,
            &c.path,
            &c.expires,
            &c.q,
            &c.callid,
            &c.cseq,
            &c.flags,
            &c.cflags,
            &c.user_agent,
            &c.socket,
            &c.methods,
            &c.instance,
            &c.reg_id,
            &c.ruid,
            &c.last_modified,
            &c.server_id,
            &c.connection_id,
            &c.keepalive,
        ]
    }

    /// A contact from a row of [`Self::select_cols`], with its AoR.
    fn row_contact(&self, row: &[DbVal]) -> Option<(String, Contact)> {
        let g = |i: usize| row.get(i).cloned().unwrap_or(DbVal::Null);
        let user = text(&g(0));
        let dom = text(&g(1));
        let aor = if self.use_domain && !dom.is_empty() {
            format!("{user}@{dom}")
        } else {
            user
        };
        let contact = text(&g(2));
        if aor.is_empty() || contact.is_empty() {
            return None;
        }
        let expires = db::time_of(&g(5)).unwrap_or(0);
        let q = match g(6) {
            DbVal::Double(d) => (d * 1000.0).round() as i32,
            DbVal::Int(i) => (i * 1000) as i32,
            v => text(&v)
                .parse::<f64>()
                .map(|d| (d * 1000.0).round() as i32)
                .unwrap_or(Q_UNSPECIFIED),
        };
        let c = Contact {
            c: contact,
            received: text(&g(3)),
            path: text(&g(4)),
            expires,
            q: if q < 0 { Q_UNSPECIFIED } else { q.min(1000) },
            callid: text(&g(7)),
            cseq: g(8).as_int().unwrap_or(0) as i32,
            flags: g(9).as_int().unwrap_or(0) as u32,
            cflags: g(10).as_int().unwrap_or(0) as u32,
            user_agent: text(&g(11)),
            sock: text(&g(12)),
            methods: g(13).as_int().map(|m| m as u32).unwrap_or(ALL_METHODS),
            instance: text(&g(14)),
            reg_id: g(15).as_int().unwrap_or(0) as u32,
            ruid: text(&g(16)),
            last_modified: db::time_of(&g(17)).unwrap_or(0),
            server_id: g(18).as_int().unwrap_or(0) as i32,
            tcpconn_id: g(19).as_int().unwrap_or(-1),
            keepalive: g(20).as_int().unwrap_or(0) as u32,
            state: CState::Sync,
        };
        Some((aor, c))
    }

    /// Loads every unexpired contact of table `d` from the database into memory.
    fn preload(&self, h: &DbHandle, d: &Domain) -> Result<usize, DbError> {
        let cols = self.select_cols();
        let rows = db::with(h, |db| db.select(&d.name, &cols, &[], None))?;
        let t = now();
        let mut n = 0;
        for row in rows {
            let Some((aor, c)) = self.row_contact(&row) else {
                continue;
            };
            if !c.valid(t) {
                continue;
            }
            let mut recs = d.slot(&aor).lock();
            let rec = recs.entry(aor.clone()).or_insert_with(|| Record {
                aor,
                contacts: Vec::new(),
            });
            rec.insert(c, self.desc_time_order);
            n += 1;
        }
        Ok(n)
    }

    fn load_record(&self, h: &DbHandle, d: &Domain, aor: &str) -> Result<Record, DbError> {
        let cols = self.select_cols();
        let conds = self.aor_conds(aor);
        let rows = db::with(h, |db| db.select(&d.name, &cols, &conds, None))?;
        let mut rec = Record {
            aor: aor.to_string(),
            contacts: Vec::new(),
        };
        for row in rows {
            if let Some((_, c)) = self.row_contact(&row) {
                rec.insert(c, self.desc_time_order);
            }
        }
        Ok(rec)
    }

    /// A copy of the record of `aor` (None when it has no contacts).
    pub fn get(&self, d: &Domain, aor: &str) -> Result<Option<Record>, DbError> {
        if self.db_mode == 3 {
            let Some(h) = &self.db else {
                return Ok(None);
            };
            let r = self.load_record(h, d, aor)?;
            return Ok((!r.contacts.is_empty()).then_some(r));
        }
        Ok(d.slot(aor).lock().get(aor).cloned())
    }

    /// Changes the record of `aor` (created empty when missing) with `f`, then writes the
    /// differences to the database as `db_mode` asks. A record left without contacts is
    /// removed.
    pub fn update<R>(
        &self,
        d: &Domain,
        aor: &str,
        f: impl FnOnce(&mut Record) -> R,
    ) -> Result<R, DbError> {
        let mut recs = d.slot(aor).lock();
        if self.db_mode == 3 {
            let Some(h) = &self.db else {
                return Err(DbError::BadUrl(String::new()));
            };
            let mut rec = self.load_record(h, d, aor)?;
            let before = rec.contacts.clone();
            let r = f(&mut rec);
            self.write_diff(d, aor, &before, &mut rec.contacts)?;
            return Ok(r);
        }
        let rec = recs.entry(aor.to_string()).or_insert_with(|| Record {
            aor: aor.to_string(),
            contacts: Vec::new(),
        });
        let before = if self.db_mode == 0 {
            Vec::new()
        } else {
            rec.contacts.clone()
        };
        let r = f(rec);
        let res = if self.db_mode == 0 {
            Ok(())
        } else {
            self.write_diff(d, aor, &before, &mut rec.contacts)
        };
        if rec.contacts.is_empty() {
            recs.remove(aor);
        }
        res.map(|_| r)
    }

    /// Applies the changes from `before` to `after` to the database (modes 1 and 3), or
    /// marks them for the next flush (mode 2).
    fn write_diff(
        &self,
        d: &Domain,
        aor: &str,
        before: &[Contact],
        after: &mut [Contact],
    ) -> Result<(), DbError> {
        let Some(h) = &self.db else {
            return Ok(());
        };
        let mut first_err = None;
        for old in before {
            if after.iter().any(|c| c.ruid == old.ruid) {
                continue;
            }
            if old.flags & FL_MEM != 0 {
                continue;
            }
            if self.db_mode == 2 {
                if old.state != CState::New {
                    d.deleted.lock().push(old.ruid.clone());
                }
            } else if let Err(e) = self.db_delete(h, &d.name, &old.ruid) {
                first_err.get_or_insert(e);
            }
        }
        for c in after.iter_mut() {
            let prev = before.iter().find(|o| o.ruid == c.ruid);
            if c.flags & FL_MEM != 0 {
                continue;
            }
            match prev {
                Some(p) if p.same(c) => {}
                Some(p) => {
                    if self.db_mode == 2 {
                        if p.state == CState::Sync {
                            c.state = CState::Dirty;
                        }
                    } else if let Err(e) = self.db_upsert(h, &d.name, aor, c, false) {
                        first_err.get_or_insert(e);
                    }
                }
                None => {
                    if self.db_mode == 2 {
                        c.state = CState::New;
                    } else if let Err(e) = self.db_upsert(h, &d.name, aor, c, true) {
                        first_err.get_or_insert(e);
                    } else {
                        c.state = CState::Sync;
                    }
                }
            }
        }
        match first_err {
            Some(e) => {
                crate::klog!(L_ERR, "usrloc", "database write for {aor} failed: {e}");
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn db_delete(&self, h: &DbHandle, table: &str, ruid: &str) -> Result<(), DbError> {
        db::with(h, |db| db.delete(table, &[Cond::eq(&self.cols.ruid, ruid)])).map(|_| ())
    }

    fn db_upsert(
        &self,
        h: &DbHandle,
        table: &str,
        aor: &str,
        c: &Contact,
        insert: bool,
    ) -> Result<(), DbError> {
        let cl = &self.cols;
        let (user, dom) = self.split_aor(aor);
        let opt = |s: &str| {
            if s.is_empty() {
                DbVal::Null
            } else {
                DbVal::Str(s.to_string())
            }
        };
        // Kamailio stores an unspecified q as -1.0.
        let q = if c.q == Q_UNSPECIFIED {
            -1.0
        } else {
            c.q as f64 / 1000.0
        };
        let mut cols: Vec<&str> = vec![
            &cl.ruid,
            &cl.user,
            &cl.contact,
            &cl.received,
            &cl.path,
            &cl.expires,
            &cl.q,
            &cl.callid,
            &cl.cseq,
            &cl.flags,
            &cl.cflags,
            &cl.user_agent,
            &cl.socket,
            &cl.methods,
            &cl.instance,
            &cl.reg_id,
            &cl.server_id,
            &cl.connection_id,
            &cl.keepalive,
            &cl.last_modified,
        ];
        let mut vals = vec![
            DbVal::from(c.ruid.as_str()),
            DbVal::from(user),
            DbVal::from(c.c.as_str()),
            opt(&c.received),
            opt(&c.path),
            // Kamailio's db_sqlite keeps DATETIME columns as Julian day numbers.
            DbVal::Double(db::julian(c.expires)),
            DbVal::Double(q),
            DbVal::from(c.callid.as_str()),
            DbVal::Int(c.cseq as i64),
            DbVal::Int(c.flags as i64),
            DbVal::Int(c.cflags as i64),
            DbVal::from(c.user_agent.as_str()),
            opt(&c.sock),
            if c.methods == ALL_METHODS {
                DbVal::Null
            } else {
                DbVal::Int(c.methods as i64)
            },
            opt(&c.instance),
            DbVal::Int(c.reg_id as i64),
            DbVal::Int(c.server_id as i64),
            DbVal::Int(c.tcpconn_id),
            DbVal::Int(c.keepalive as i64),
            DbVal::Double(db::julian(c.last_modified)),
        ];
        if let Some(d) = dom {
            cols.push(&cl.domain);
            vals.push(DbVal::from(d));
        }
        db::with(h, |db| {
            if !insert {
                let n = db.update(table, &[Cond::eq(&cl.ruid, c.ruid.as_str())], &cols, &vals)?;
                if n > 0 {
                    return Ok(());
                }
            }
            db.replace(table, &cols, &vals)
        })
    }

    /// Deletes the contact with `ruid` from any record of `d`. Returns false when none has it.
    pub fn delete_by_ruid(&self, d: &Domain, ruid: &str) -> Result<bool, DbError> {
        if self.db_mode == 3 {
            let Some(h) = &self.db else {
                return Ok(false);
            };
            let n = db::with(h, |db| {
                db.delete(&d.name, &[Cond::eq(&self.cols.ruid, ruid)])
            })?;
            return Ok(n > 0);
        }
        let aor = {
            d.slots.iter().find_map(|s| {
                s.lock()
                    .values()
                    .find(|r| r.contacts.iter().any(|c| c.ruid == ruid))
                    .map(|r| r.aor.clone())
            })
        };
        let Some(aor) = aor else {
            return Ok(false);
        };
        self.update(d, &aor, |r| r.contacts.retain(|c| c.ruid != ruid))?;
        Ok(true)
    }

    /// Every record of `d` (for RPC dumps).
    pub fn snapshot(&self, d: &Domain) -> Vec<Record> {
        if self.db_mode == 3 {
            let Some(h) = &self.db else {
                return Vec::new();
            };
            let cols = self.select_cols();
            let rows = db::with(h, |db| db.select(&d.name, &cols, &[], None)).unwrap_or_default();
            let mut map: AHashMap<String, Record> = AHashMap::new();
            for row in rows {
                if let Some((aor, c)) = self.row_contact(&row) {
                    map.entry(aor.clone())
                        .or_insert_with(|| Record {
                            aor,
                            contacts: Vec::new(),
                        })
                        .insert(c, self.desc_time_order);
                }
            }
            let mut v: Vec<Record> = map.into_values().collect();
            v.sort_by(|a, b| a.aor.cmp(&b.aor));
            return v;
        }
        let mut v: Vec<Record> = d
            .slots
            .iter()
            .flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>())
            .collect();
        v.sort_by(|a, b| a.aor.cmp(&b.aor));
        v
    }

    /// Expires contacts and (write-back) flushes changes, every `timer_interval` seconds or
    /// now when `force`.
    pub fn timer(&self, force: bool) {
        let t = now();
        let last = self.last_timer.load(Ordering::Relaxed);
        if last == 0 {
            self.last_timer.store(t, Ordering::Relaxed);
            if !force {
                return;
            }
        }
        if !force && t - last < self.timer_interval {
            return;
        }
        self.last_timer.store(t, Ordering::Relaxed);
        for d in self.domains() {
            self.timer_domain(&d, t);
        }
    }

    fn timer_domain(&self, d: &Domain, t: i64) {
        if self.db_mode == 3 {
            if let Some(h) = &self.db {
                let never = db::julian(0);
                let r = db::with(h, |db| {
                    db.delete(
                        &d.name,
                        &[
                            Cond {
                                col: &self.cols.expires,
                                op: Op::Lt,
                                val: DbVal::Double(db::julian(t)),
                            },
                            Cond {
                                col: &self.cols.expires,
                                op: Op::Ne,
                                val: DbVal::Double(never),
                            },
                        ],
                    )
                });
                if let Err(e) = r {
                    crate::klog!(L_ERR, "usrloc", "removing expired contacts failed: {e}");
                }
            }
            return;
        }
        let mut expired: Vec<(String, CState, u32)> = Vec::new();
        for slot in &d.slots {
            let mut recs = slot.lock();
            for r in recs.values_mut() {
                r.contacts.retain(|c| {
                    let keep = c.valid(t);
                    if !keep {
                        expired.push((c.ruid.clone(), c.state, c.flags));
                    }
                    keep
                });
            }
            recs.retain(|_, r| !r.contacts.is_empty());
            // Write-back: new and changed contacts go to the database now.
            let (Some(h), 2) = (&self.db, self.db_mode) else {
                continue;
            };
            for r in recs.values_mut() {
                for c in r.contacts.iter_mut() {
                    if c.state == CState::Sync || c.flags & FL_MEM != 0 {
                        continue;
                    }
                    match self.db_upsert(h, &d.name, &r.aor, c, c.state == CState::New) {
                        Ok(()) => c.state = CState::Sync,
                        Err(e) => crate::klog!(
                            L_ERR,
                            "usrloc",
                            "flushing contact of {} failed: {e}",
                            r.aor
                        ),
                    }
                }
            }
        }
        let Some(h) = &self.db else {
            return;
        };
        let mut deleted = std::mem::take(&mut *d.deleted.lock());
        for (ruid, state, flags) in expired {
            if flags & FL_MEM == 0 && (self.db_mode == 1 || state != CState::New) {
                deleted.push(ruid);
            }
        }
        for ruid in &deleted {
            if let Err(e) = self.db_delete(h, &d.name, ruid) {
                crate::klog!(L_ERR, "usrloc", "deleting contact {ruid} failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(uri: &str, q: i32, ruid: &str) -> Contact {
        Contact {
            c: uri.into(),
            q,
            ruid: ruid.into(),
            expires: now() + 100,
            ..Contact::default()
        }
    }

    #[test]
    fn contacts_stay_in_q_order() {
        let mut r = Record::default();
        r.insert(contact("sip:a@x", 500, "1"), false);
        r.insert(contact("sip:b@x", 1000, "2"), false);
        r.insert(contact("sip:c@x", 500, "3"), false);
        r.insert(contact("sip:d@x", Q_UNSPECIFIED, "4"), false);
        let order: Vec<&str> = r.contacts.iter().map(|c| c.c.as_str()).collect();
        assert_eq!(order, ["sip:b@x", "sip:a@x", "sip:c@x", "sip:d@x"]);
        r.contacts[3].q = 1000;
        r.reposition(3, false);
        assert_eq!(r.contacts[1].c, "sip:d@x");
    }

    fn state(db_mode: i32) -> UsrlocState {
        let mut st = UsrlocState {
            db_mode,
            use_domain: true,
            ..UsrlocState::default()
        };
        if db_mode != 0 {
            let mut s = db::Sqlite::open_in_memory().unwrap();
            db::Db::ensure_table(&mut s, "location", &[]).unwrap();
            st.db = Some(Arc::new(std::sync::Mutex::new(Box::new(s))));
        }
        st
    }

    fn db_contacts(st: &UsrlocState) -> Vec<String> {
        let h = st.db.as_ref().unwrap();
        let rows = db::with(h, |d| {
            d.select(
                "location",
                &["contact", "username", "domain"],
                &[],
                Some("contact"),
            )
        })
        .unwrap();
        rows.iter()
            .map(|r| format!("{}|{}|{}", r[0].to_text(), r[1].to_text(), r[2].to_text()))
            .collect()
    }

    #[test]
    fn write_through_and_db_only_follow_every_change() {
        for mode in [1, 3] {
            let st = state(mode);
            let d = st.domain("location");
            st.update(&d, "alice@ex.com", |r| {
                r.insert(contact("sip:a@1.2.3.4", 1000, "r1"), false);
                r.insert(contact("sip:b@1.2.3.4", 500, "r2"), false);
            })
            .unwrap();
            assert_eq!(
                db_contacts(&st),
                ["sip:a@1.2.3.4|alice|ex.com", "sip:b@1.2.3.4|alice|ex.com"]
            );
            let rec = st.get(&d, "alice@ex.com").unwrap().unwrap();
            assert_eq!(rec.contacts.len(), 2);
            assert_eq!(rec.contacts[1].q, 500);
            st.update(&d, "alice@ex.com", |r| r.contacts[0].cseq = 7)
                .unwrap();
            assert_eq!(
                st.get(&d, "alice@ex.com").unwrap().unwrap().contacts[0].cseq,
                7
            );
            assert!(st.delete_by_ruid(&d, "r2").unwrap());
            assert!(!st.delete_by_ruid(&d, "r2").unwrap());
            assert_eq!(db_contacts(&st), ["sip:a@1.2.3.4|alice|ex.com"]);
            st.update(&d, "alice@ex.com", |r| r.contacts.clear())
                .unwrap();
            assert!(db_contacts(&st).is_empty());
            assert!(st.get(&d, "alice@ex.com").unwrap().is_none());
        }
    }

    #[test]
    fn write_back_flushes_on_timer_and_expires() {
        let st = state(2);
        let d = st.domain("location");
        st.update(&d, "bob@ex.com", |r| {
            r.insert(contact("sip:b@h", 1000, "r1"), false);
        })
        .unwrap();
        assert!(db_contacts(&st).is_empty());
        st.timer(true);
        assert_eq!(db_contacts(&st), ["sip:b@h|bob|ex.com"]);
        st.update(&d, "bob@ex.com", |r| r.contacts[0].expires = now() - 1)
            .unwrap();
        st.timer(true);
        assert!(db_contacts(&st).is_empty());
        assert!(st.get(&d, "bob@ex.com").unwrap().is_none());
        // a preload brings saved contacts back
        st.update(&d, "carol@ex.com", |r| {
            r.insert(contact("sip:c@h", 300, "r9"), false);
        })
        .unwrap();
        st.timer(true);
        let st2 = UsrlocState {
            db: st.db.clone(),
            db_mode: 2,
            use_domain: true,
            ..UsrlocState::default()
        };
        let d2 = st2.domain("location");
        assert_eq!(st2.preload(st.db.as_ref().unwrap(), &d2).unwrap(), 1);
        let rec = st2.get(&d2, "carol@ex.com").unwrap().unwrap();
        assert_eq!(rec.contacts[0].q, 300);
        assert_eq!(rec.contacts[0].ruid, "r9");
        assert_eq!(rec.contacts[0].state, CState::Sync);
    }
}
