//! Kamailio's `htable` module: named in-memory hash tables shared by every worker, with
//! auto-expiry, `$sht(table=>key)` and friends, and the `sht_*` functions.

mod iter;
mod store;

use super::core::actions::{arg_bytes, arg_int, b};

use super::{ModuleDef, ParamDef, Registrar, TimerDef};
use crate::ctx::Ctx;
use ahash::AHashMap;
use bytes::Bytes;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::pv::{PvClass, PvError, PvParam, PvSpec};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "htable",
    params: &[
        ParamDef::str("htable").multi(),
        ParamDef::str("db_url"),
        ParamDef::str("key_name_column"),
        ParamDef::str("key_type_column"),
        ParamDef::str("value_type_column"),
        ParamDef::str("key_value_column"),
        ParamDef::str("expires_column"),
        ParamDef::str("array_size_suffix"),
        ParamDef::int("fetch_rows"),
        ParamDef::int("timer_interval"),
        ParamDef::int("db_expires"),
        ParamDef::int("enable_dmq"),
        ParamDef::int("timer_procs"),
    ],
    register,
    init: Some(init),
    notice: None,
};

#[derive(Clone, Debug)]
struct Item {
    value: Value,
    expires: Option<Instant>,
}

/// One named table.
pub struct Table {
    pub name: String,
    autoexpire: u64,
    updateexpire: bool,
    initval: Option<i64>,
    items: RwLock<AHashMap<Bytes, Item>>,
    /// `sht_lock`/`sht_unlock` slots.
    slot_locks: Vec<iter::SlotLock>,
    /// Kamailio's slot count (`size` attribute): orders `htable.dump`.
    slots: usize,
    /// `dbtable`: loaded at start-up, written back at shutdown when `dbmode` is 1.
    dbtable: Option<String>,
    dbmode: i64,
    /// `cols`: custom columns (first the key), values packed with `coldelim` (`,`), a NULL
    /// written as `colnull` (`*`); 5.6 has these two fixed, later versions make them settable.
    cols: Vec<String>,
    coldelim: String,
    colnull: String,
    dmqreplicate: i64,
}

impl Table {
    /// A table with the same attributes and no items (a reload's scratch space).
    fn empty_copy(&self) -> Table {
        Table {
            name: self.name.clone(),
            autoexpire: self.autoexpire,
            updateexpire: self.updateexpire,
            initval: self.initval,
            items: RwLock::new(AHashMap::new()),
            slot_locks: Vec::new(),
            slots: self.slots,
            dbtable: self.dbtable.clone(),
            dbmode: self.dbmode,
            cols: self.cols.clone(),
            coldelim: self.coldelim.clone(),
            colnull: self.colnull.clone(),
            dmqreplicate: self.dmqreplicate,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, AHashMap<Bytes, Item>> {
        match self.items.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, AHashMap<Bytes, Item>> {
        match self.items.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn expiry(&self, now: Instant) -> Option<Instant> {
        (self.autoexpire > 0).then(|| now + Duration::from_secs(self.autoexpire))
    }

    pub fn get(&self, key: &[u8]) -> Value {
        let now = Instant::now();
        let expired = match self.read().get(key) {
            Some(it) if it.expires.is_none_or(|e| e > now) => return it.value.clone(),
            Some(_) => true,
            None => false,
        };
        if expired {
            // As Kamailio: an expired item read before the sweep is dropped without an
            // expired event.
            let mut g = self.write();
            if g.get(key)
                .is_some_and(|it| it.expires.is_some_and(|e| e <= now))
            {
                g.remove(key);
            }
        }
        self.initval.map_or(Value::Null, Value::Int)
    }

    pub fn set(&self, key: Bytes, value: Value) {
        let now = Instant::now();
        let mut g = self.write();
        if value.is_null() {
            g.remove(&key);
            return;
        }
        let expires = match g.get(&key) {
            Some(old) if !self.updateexpire && old.expires.is_some_and(|e| e > now) => old.expires,
            _ => self.expiry(now),
        };
        g.insert(key, Item { value, expires });
    }

    pub fn set_expire(&self, key: &[u8], secs: i64) -> bool {
        let mut g = self.write();
        match g.get_mut(key) {
            Some(it) => {
                it.expires = (secs > 0).then(|| Instant::now() + Duration::from_secs(secs as u64));
                true
            }
            None => false,
        }
    }

    pub fn expires_in(&self, key: &[u8]) -> Value {
        let now = Instant::now();
        match self.read().get(key) {
            Some(it) => match it.expires {
                Some(e) if e > now => Value::Int(e.duration_since(now).as_secs() as i64),
                Some(_) => Value::Null,
                None => Value::Int(0),
            },
            None => Value::Null,
        }
    }

    /// Adds `by` to an integer item (creating it from 0); null when the item is a string.
    pub fn add(&self, key: Bytes, by: i64) -> Value {
        let now = Instant::now();
        let mut g = self.write();
        let live = g
            .get(&key)
            .filter(|it| it.expires.is_none_or(|e| e > now))
            .cloned();
        let cur = match live {
            Some(Item {
                value: Value::Int(i),
                ..
            }) => i,
            Some(_) => return Value::Null,
            None => self.initval.unwrap_or(0),
        };
        let n = cur.wrapping_add(by);
        let expires = match g.get(&key) {
            Some(old) if !self.updateexpire && old.expires.is_some_and(|e| e > now) => old.expires,
            _ => self.expiry(now),
        };
        g.insert(
            key,
            Item {
                value: Value::Int(n),
                expires,
            },
        );
        Value::Int(n)
    }

    pub fn remove_matching(&self, f: impl Fn(&[u8], &Value) -> bool) -> usize {
        let mut g = self.write();
        let before = g.len();
        g.retain(|k, it| !f(k, &it.value));
        before - g.len()
    }

    pub fn count_matching(&self, f: impl Fn(&[u8], &Value) -> bool) -> usize {
        let now = Instant::now();
        self.read()
            .iter()
            .filter(|(k, it)| it.expires.is_none_or(|e| e > now) && f(k, &it.value))
            .count()
    }

    /// Removes the expired items; returns them when `collect` (for the expired event).
    fn purge_expired(&self, collect: bool) -> Vec<(Bytes, Value)> {
        let now = Instant::now();
        let mut gone = Vec::new();
        self.write().retain(|k, it| {
            let keep = it.expires.is_none_or(|e| e > now);
            if !keep && collect {
                gone.push((k.clone(), it.value.clone()));
            }
            keep
        });
        gone
    }
}

#[derive(Default)]
pub struct HtableState {
    pub tables: Vec<Arc<Table>>,
    /// The `db_url` connection, when set.
    db: Option<crate::db::DbHandle>,
    cols: store::DbCols,
    /// `timer_interval`: seconds between expiry sweeps (the expired events fire then).
    timer_interval: u64,
    last_sweep: std::sync::Mutex<Option<Instant>>,
}

impl HtableState {
    pub fn table(&self, name: &[u8]) -> Option<&Arc<Table>> {
        self.tables.iter().find(|t| t.name.as_bytes() == name)
    }
}

/// Parses `name=>size=8;autoexpire=60;initval=0;updateexpire=1`.
fn parse_def(def: &str) -> Result<Table, String> {
    let (name, attrs) = def
        .split_once("=>")
        .ok_or_else(|| format!("bad htable definition '{def}' (expected name=>attrs)"))?;
    let mut t = Table {
        name: name.trim().to_string(),
        autoexpire: 0,
        updateexpire: true,
        initval: None,
        items: RwLock::new(AHashMap::new()),
        slot_locks: (0..iter::LOCK_SLOTS)
            .map(|_| iter::SlotLock::new(()))
            .collect(),
        slots: 16,
        dbtable: None,
        dbmode: 0,
        cols: Vec::new(),
        coldelim: ",".into(),
        colnull: "*".into(),
        dmqreplicate: 0,
    };
    for a in attrs.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        let (k, v) = a.split_once('=').unwrap_or((a, ""));
        let num = || {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("bad value for {k} in htable '{}'", t.name))
        };
        let text = || v.trim().trim_matches(|c| c == '\'' || c == '"').to_string();
        match k.trim() {
            // Kamailio: 2^size slots, sizes up to 1 giving 8 and above 31 giving 16384.
            "size" => {
                t.slots = match num()? {
                    n if n <= 1 => 8,
                    n if n > 31 => 1 << 14,
                    n => 1usize << n,
                }
            }
            "autoexpire" => t.autoexpire = num()?.max(0) as u64,
            "initval" => t.initval = Some(num()?),
            "updateexpire" => t.updateexpire = num()? != 0,
            "dmqreplicate" => t.dmqreplicate = num()?,
            "dbtable" => t.dbtable = Some(text()).filter(|s| !s.is_empty()),
            "dbmode" => t.dbmode = num()?,
            "cols" => {
                t.cols = text()
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect();
                if t.cols.len() < 2 {
                    return Err(format!(
                        "htable '{}': cols needs the key column and at least one value column",
                        t.name
                    ));
                }
            }
            "coldelim" => t.coldelim = text(),
            "colnull" => t.colnull = text(),
            other => return Err(format!("unknown htable attribute '{other}'")),
        }
    }
    if t.name.is_empty() {
        return Err("htable without a name".into());
    }
    Ok(t)
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    for v in ictx.params.all("htable") {
        let t = parse_def(&v.to_text())?;
        if ictx.states.htable.table(t.name.as_bytes()).is_some() {
            return Err(format!("htable '{}' defined twice", t.name));
        }
        ictx.states.htable.tables.push(Arc::new(t));
    }
    let p = ictx.params;
    let st = &mut ictx.states.htable;
    let c = &mut st.cols;
    for (name, slot) in [
        ("key_name_column", &mut c.name),
        ("key_type_column", &mut c.ktype),
        ("value_type_column", &mut c.vtype),
        ("key_value_column", &mut c.value),
        ("expires_column", &mut c.expires),
        ("array_size_suffix", &mut c.array_suffix),
    ] {
        if let Some(v) = p.str(name) {
            *slot = v;
        }
    }
    c.use_expires = p.int("db_expires", 0) != 0;
    st.timer_interval = p.int("timer_interval", 20).max(1) as u64;
    let needs_db = st.tables.iter().any(|t| t.dbtable.is_some());
    match p.str("db_url") {
        Some(url) => {
            st.db = Some(
                crate::db::open_shared(&url, ictx.workdir).map_err(|e| format!("htable: {e}"))?,
            );
        }
        None if needs_db => return Err("htable: a table has dbtable but db_url is not set".into()),
        None => {}
    }
    for t in &st.tables {
        let n = store::load(st, t)?;
        if t.dbtable.is_some() {
            crate::klog!(
                crate::log::L_INFO,
                "htable",
                "loaded {n} rows into htable [{}]",
                t.name
            );
        }
    }
    Ok(())
}

/// At shutdown, tables with `dbmode=1` are written back to their database table.
fn write_back(c: &mut Ctx) {
    let st = &c.core.m.htable;
    for t in st
        .tables
        .iter()
        .filter(|t| t.dbmode != 0 && t.dbtable.is_some())
    {
        if let Err(e) = store::store(st, t) {
            crate::klog!(
                crate::log::L_ERR,
                "htable",
                "failed syncing hash table: {e}"
            );
        }
    }
}

thread_local! {
    /// The item `event_route[htable:expired:<table>]` runs for (`$shtrecord`).
    static RECORD: std::cell::RefCell<Option<(Bytes, Value)>> = const { std::cell::RefCell::new(None) };
}

/// The expiry sweep, every `timer_interval` seconds: expired items are removed and, for a
/// table with `event_route[htable:expired:<table>]`, that route runs once per item.
fn purge(ctx: &mut Ctx) {
    let st = &ctx.core.m.htable;
    {
        let mut last = match st.last_sweep.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        if last
            .is_some_and(|l| now.duration_since(l) < Duration::from_secs(st.timer_interval.max(1)))
        {
            return;
        }
        *last = Some(now);
    }
    for t in &st.tables {
        let event = format!("htable:expired:{}", t.name);
        let target = crate::engine::RouteTarget::Event(&event);
        let has_route = ctx.engine.as_ref().is_some_and(|e| e.exists(target));
        for (k, v) in t.purge_expired(has_route) {
            RECORD.with(|r| *r.borrow_mut() = Some((k, v)));
            ctx.msg = crate::sip::SipMsg::faked();
            ctx.flags = 0;
            ctx.avps.clear();
            ctx.xavps.clear();
            ctx.route = vm::RouteKind::Event;
            ctx.run_route(target);
            ctx.route = vm::RouteKind::Request;
        }
        RECORD.with(|r| *r.borrow_mut() = None);
    }
}

fn pv_shtrecord(_: &mut Ctx, s: &PvSpec) -> Value {
    let PvParam::Str(attr) = &s.param else {
        return Value::Null;
    };
    RECORD.with(|r| match (&*r.borrow(), &attr[..]) {
        (Some((k, _)), b"key") => Value::Str(k.clone()),
        (Some((_, v)), b"value") => v.clone(),
        _ => Value::Null,
    })
}

// ---------------------------------------------------------------- pseudo-variables

/// `$sht(table=>key)`: the key may hold pseudo-variables, parsed on first use.
pub struct ShtName {
    table: Bytes,
    key_text: String,
    key: OnceLock<Option<vm::pv::Format>>,
}

fn parse_sht_name(s: &str) -> Result<PvParam, String> {
    let (t, k) = s
        .split_once("=>")
        .ok_or_else(|| format!("invalid htable name '{s}' (expected table=>key)"))?;
    Ok(PvParam::Custom(Arc::new(ShtName {
        table: Bytes::copy_from_slice(t.trim().as_bytes()),
        key_text: k.to_string(),
        key: OnceLock::new(),
    })))
}

fn sht_target(ctx: &mut Ctx, spec: &PvSpec) -> Option<(Arc<Table>, Bytes)> {
    let PvParam::Custom(c) = &spec.param else {
        return None;
    };
    let n = c.downcast_ref::<ShtName>()?;
    let table = match ctx.core.m.htable.table(&n.table) {
        Some(t) => Arc::clone(t),
        None => {
            crate::klog!(
                crate::log::L_ERR,
                "htable",
                "no htable '{}'",
                String::from_utf8_lossy(&n.table)
            );
            return None;
        }
    };
    let fmt = n
        .key
        .get_or_init(|| vm::pv::parse_format(&n.key_text, ctx.core.pvs).ok());
    let key = match fmt {
        Some(f) => vm::pv::format(ctx, f),
        None => Bytes::copy_from_slice(n.key_text.as_bytes()),
    };
    Some((table, key))
}

fn pv_sht(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match sht_target(ctx, spec) {
        Some((t, k)) => t.get(&k),
        None => Value::Null,
    }
}

fn pv_sht_set(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let (t, k) = sht_target(ctx, spec).ok_or(PvError::Failed("bad htable".into()))?;
    t.set(k, v.clone());
    Ok(())
}

fn pv_shtex(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match sht_target(ctx, spec) {
        Some((t, k)) => t.expires_in(&k),
        None => Value::Null,
    }
}

fn pv_shtex_set(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let (t, k) = sht_target(ctx, spec).ok_or(PvError::Failed("bad htable".into()))?;
    t.set_expire(&k, v.as_int().unwrap_or(0));
    Ok(())
}

fn pv_shtinc(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match sht_target(ctx, spec) {
        Some((t, k)) => t.add(k, 1),
        None => Value::Null,
    }
}

fn pv_shtdec(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match sht_target(ctx, spec) {
        Some((t, k)) => t.add(k, -1),
        None => Value::Null,
    }
}

/// `$shtcn(table=>regex)` / `$shtcv(table=>regex)`: items whose name / string value match.
fn count(ctx: &mut Ctx, spec: &PvSpec, by_value: bool) -> Value {
    let Some((t, k)) = sht_target(ctx, spec) else {
        return Value::Null;
    };
    let Some(re) = crate::modules::textops::regex(&k) else {
        return Value::Null;
    };
    let n = t.count_matching(|name, v| {
        if by_value {
            matches!(v, Value::Str(s) if re.is_match(s))
        } else {
            re.is_match(name)
        }
    });
    Value::Int(n as i64)
}

fn register(r: &mut Registrar<'_>) {
    store::register(r.rpc);
    r.hooks.shutdown.push(write_back);
    r.pvs.add(PvClass {
        name: "shtrecord",
        get: pv_shtrecord,
        set: None,
        parse_name: Some(parse_iter_name),
        name_required: true,
        takes_index: false,
    });
    r.timers.push(TimerDef {
        name: "htable-expire",
        every: Duration::from_secs(1),
        func: purge,
    });
    let named = |name, get, set| PvClass {
        name,
        get,
        set,
        parse_name: Some(parse_sht_name as fn(&str) -> Result<PvParam, String>),
        name_required: true,
        takes_index: false,
    };
    r.pvs.add(named("sht", pv_sht, Some(pv_sht_set)));
    r.pvs.add(named("shtex", pv_shtex, Some(pv_shtex_set)));
    r.pvs.add(named("shtinc", pv_shtinc, None));
    r.pvs.add(named("shtdec", pv_shtdec, None));
    for (name, want_value) in [("shtitkey", false), ("shtitval", true)] {
        r.pvs.add(PvClass {
            name,
            get: if want_value { pv_shtitval } else { pv_shtitkey },
            set: None,
            parse_name: Some(parse_iter_name),
            name_required: true,
            takes_index: false,
        });
    }
    r.kemi(
        "htable",
        "sht_iterator_start",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(iter::start(c, arg_bytes(a, 0), &arg_bytes(a, 1)) as i64),
    )
    .native("sht_iterator_start", RouteMask::ANY);
    r.kemi("htable", "sht_iterator_next", &[S], RetType::Int, |_, a| {
        Value::Int(iter::next(&arg_bytes(a, 0)) as i64)
    })
    .native("sht_iterator_next", RouteMask::ANY);
    r.kemi("htable", "sht_iterator_end", &[S], RetType::Int, |_, a| {
        Value::Int(iter::end(&arg_bytes(a, 0)) as i64)
    })
    .native("sht_iterator_end", RouteMask::ANY);
    r.kemi("htable", "sht_iterator_rm", &[S], RetType::Int, |_, a| {
        Value::Int(iter::rm(&arg_bytes(a, 0)) as i64)
    })
    .native("sht_iterator_rm", RouteMask::ANY);
    r.kemi(
        "htable",
        "sht_iterator_sets",
        &[S, S],
        RetType::Int,
        |_, a| {
            let v = Value::Str(arg_bytes(a, 1));
            Value::Int(iter::set(&arg_bytes(a, 0), Some(v), None) as i64)
        },
    )
    .native("sht_iterator_sets", RouteMask::ANY);
    r.kemi(
        "htable",
        "sht_iterator_seti",
        &[S, I],
        RetType::Int,
        |_, a| {
            let v = Value::Int(arg_int(a, 1));
            Value::Int(iter::set(&arg_bytes(a, 0), Some(v), None) as i64)
        },
    )
    .native("sht_iterator_seti", RouteMask::ANY);
    r.kemi(
        "htable",
        "sht_iterator_setex",
        &[S, I],
        RetType::Int,
        |_, a| Value::Int(iter::set(&arg_bytes(a, 0), None, Some(arg_int(a, 1))) as i64),
    )
    .native("sht_iterator_setex", RouteMask::ANY);
    // Native `sht_lock("table=>key")`; KEMI `sht_lock(table, key)`.
    r.kemi("htable", "sht_lock", &[S, S], RetType::Int, |c, a| {
        slot_lock(c, arg_bytes(a, 0), arg_bytes(a, 1), true)
    });
    r.kemi("htable", "sht_unlock", &[S, S], RetType::Int, |c, a| {
        slot_lock(c, arg_bytes(a, 0), arg_bytes(a, 1), false)
    });
    r.native("sht_lock", &[S], RouteMask::ANY, |c, a| {
        let (t, k) = split_arrow(&arg_bytes(a, 0));
        slot_lock(c, t, k, true)
    });
    r.native("sht_unlock", &[S], RouteMask::ANY, |c, a| {
        let (t, k) = split_arrow(&arg_bytes(a, 0));
        slot_lock(c, t, k, false)
    });
    r.native("sht_print", &[], RouteMask::ANY, |c, _| {
        Value::Int(iter::print(c) as i64)
    });
    r.pvs.add(named("shtcn", |c, s| count(c, s, false), None));
    r.pvs.add(named("shtcv", |c, s| count(c, s, true), None));

    r.kemi("htable", "sht_get", &[S, S], RetType::Xval, |c, a| {
        with_table(c, a, |t, k| t.get(&k)).unwrap_or(Value::Null)
    });
    r.kemi(
        "htable",
        "sht_gete",
        &[S, S],
        RetType::Xval,
        |c, a| match with_table(c, a, |t, k| t.get(&k)) {
            Some(Value::Null) | None => Value::from(""),
            Some(v) => v,
        },
    );
    r.kemi(
        "htable",
        "sht_getw",
        &[S, S],
        RetType::Xval,
        |c, a| match with_table(c, a, |t, k| t.get(&k)) {
            Some(Value::Null) | None => Value::from("<null>"),
            Some(v) => v,
        },
    );
    r.kemi("htable", "sht_sets", &[S, S, S], RetType::Int, |c, a| {
        let v = Value::Str(arg_bytes(a, 2));
        ok(with_table(c, a, |t, k| t.set(k, v)))
    });
    r.kemi("htable", "sht_seti", &[S, S, I], RetType::Int, |c, a| {
        let v = Value::Int(arg_int(a, 2));
        ok(with_table(c, a, |t, k| t.set(k, v)))
    });
    r.kemi("htable", "sht_setex", &[S, S, I], RetType::Int, |c, a| {
        let e = arg_int(a, 2);
        match with_table(c, a, |t, k| t.set_expire(&k, e)) {
            Some(true) => Value::Int(1),
            _ => Value::Int(-1),
        }
    });
    r.kemi(
        "htable",
        "sht_setxs",
        &[S, S, S, I],
        RetType::Int,
        |c, a| {
            let (v, e) = (Value::Str(arg_bytes(a, 2)), arg_int(a, 3));
            ok(with_table(c, a, |t, k| {
                t.set(k.clone(), v);
                t.set_expire(&k, e);
            }))
        },
    )
    .native("sht_setxs", RouteMask::ANY);
    r.kemi(
        "htable",
        "sht_setxi",
        &[S, S, I, I],
        RetType::Int,
        |c, a| {
            let (v, e) = (Value::Int(arg_int(a, 2)), arg_int(a, 3));
            ok(with_table(c, a, |t, k| {
                t.set(k.clone(), v);
                t.set_expire(&k, e);
            }))
        },
    )
    .native("sht_setxi", RouteMask::ANY);
    r.kemi("htable", "sht_rm", &[S, S], RetType::Int, |c, a| {
        ok(with_table(c, a, |t, k| t.set(k, Value::Null)))
    })
    .native("sht_rm", RouteMask::ANY);
    r.kemi("htable", "sht_is_null", &[S, S], RetType::Int, |c, a| {
        b(with_table(c, a, |t, k| t.get(&k).is_null()).unwrap_or(true))
    })
    .native("sht_is_null", RouteMask::ANY);
    r.kemi("htable", "sht_inc", &[S, S], RetType::Int, |c, a| {
        with_table(c, a, |t, k| t.add(k, 1))
            .and_then(|v| v.as_int())
            .map_or(Value::Int(-1), Value::Int)
    })
    .native("sht_inc", RouteMask::ANY);
    r.kemi("htable", "sht_dec", &[S, S], RetType::Int, |c, a| {
        with_table(c, a, |t, k| t.add(k, -1))
            .and_then(|v| v.as_int())
            .map_or(Value::Int(-1), Value::Int)
    })
    .native("sht_dec", RouteMask::ANY);
    r.kemi("htable", "sht_reset", &[S], RetType::Int, |c, a| {
        match c.core.m.htable.table(&arg_bytes(a, 0)) {
            Some(t) => {
                t.remove_matching(|_, _| true);
                Value::Int(1)
            }
            None => Value::Int(-1),
        }
    })
    .native("sht_reset", RouteMask::ANY);
    r.kemi("htable", "sht_rm_name_re", &[S, S], RetType::Int, |c, a| {
        rm_match(c, &arg_bytes(a, 0), b"re", &arg_bytes(a, 1), false)
    });
    r.kemi(
        "htable",
        "sht_rm_value_re",
        &[S, S],
        RetType::Int,
        |c, a| rm_match(c, &arg_bytes(a, 0), b"re", &arg_bytes(a, 1), true),
    );
    r.native("sht_rm_name_re", &[S], RouteMask::ANY, |c, a| {
        let (t, re) = split_arrow(&arg_bytes(a, 0));
        rm_match(c, &t, b"re", &re, false)
    });
    r.native("sht_rm_value_re", &[S], RouteMask::ANY, |c, a| {
        let (t, re) = split_arrow(&arg_bytes(a, 0));
        rm_match(c, &t, b"re", &re, true)
    });
    r.kemi("htable", "sht_rm_name", &[S, S, S], RetType::Int, |c, a| {
        by_args(c, a, false, rm_match)
    })
    .native("sht_rm_name", RouteMask::ANY);
    r.kemi(
        "htable",
        "sht_rm_value",
        &[S, S, S],
        RetType::Int,
        |c, a| by_args(c, a, true, rm_match),
    )
    .native("sht_rm_value", RouteMask::ANY);
    r.kemi(
        "htable",
        "sht_match_name",
        &[S, S, S],
        RetType::Int,
        |c, a| by_args(c, a, false, has_match),
    )
    .native("sht_match_name", RouteMask::ANY)
    .native("sht_has_name", RouteMask::ANY);
    r.kemi(
        "htable",
        "sht_match_str_value",
        &[S, S, S],
        RetType::Int,
        |c, a| by_args(c, a, true, has_match),
    )
    .native("sht_match_str_value", RouteMask::ANY)
    .native("sht_has_str_value", RouteMask::ANY);
}

fn parse_iter_name(s: &str) -> Result<PvParam, String> {
    match s.trim() {
        "" => Err("empty iterator name".into()),
        n => Ok(PvParam::Str(Bytes::copy_from_slice(n.as_bytes()))),
    }
}

/// `$shtitkey(name)` / `$shtitval(name)`: the current item of the worker's iterator `name`.
fn pv_shtitkey(_: &mut Ctx, s: &PvSpec) -> Value {
    match &s.param {
        PvParam::Str(n) => iter::current_item(n, false),
        _ => Value::Null,
    }
}

fn pv_shtitval(_: &mut Ctx, s: &PvSpec) -> Value {
    match &s.param {
        PvParam::Str(n) => iter::current_item(n, true),
        _ => Value::Null,
    }
}

/// `sht_lock` / `sht_unlock` of `key`'s slot in `table`: 1, -1 (no such table, not held).
fn slot_lock(c: &mut Ctx, table: Bytes, key: Bytes, lock: bool) -> Value {
    let rc = with_table(c, &[Value::Str(table), Value::Str(key)], |t, k| {
        if lock {
            iter::lock(t, &k)
        } else {
            iter::unlock(t, &k)
        }
    });
    Value::Int(rc.unwrap_or(-1) as i64)
}

fn ok(r: Option<()>) -> Value {
    Value::Int(if r.is_some() { 1 } else { -1 })
}

fn with_table<R>(c: &mut Ctx, a: &[Value], f: impl FnOnce(&Table, Bytes) -> R) -> Option<R> {
    let name = arg_bytes(a, 0);
    let Some(t) = c.core.m.htable.table(&name) else {
        crate::klog!(
            crate::log::L_ERR,
            "htable",
            "no htable '{}'",
            String::from_utf8_lossy(&name)
        );
        return None;
    };
    Some(f(t, arg_bytes(a, 1)))
}

fn split_arrow(s: &Bytes) -> (Bytes, Bytes) {
    match s.windows(2).position(|w| w == b"=>") {
        Some(p) => (s.slice(..p), s.slice(p + 2..)),
        None => (s.clone(), Bytes::new()),
    }
}

/// A matcher for `op` in `re` (regex), `sw` (starts with), `ew` (ends with), `eq`, `in`
/// (contains).
type Matcher = Box<dyn Fn(&[u8]) -> bool>;

fn matcher(op: &[u8], pat: &[u8]) -> Option<Matcher> {
    let p = pat.to_vec();
    Some(match op {
        b"re" => {
            let re = crate::modules::textops::regex(pat)?;
            Box::new(move |s| re.is_match(s))
        }
        b"sw" => Box::new(move |s| s.starts_with(&p)),
        b"ew" => Box::new(move |s| s.ends_with(&p)),
        b"eq" => Box::new(move |s| s == &p[..]),
        b"in" => Box::new(move |s| p.is_empty() || s.windows(p.len()).any(|w| w == &p[..])),
        _ => return None,
    })
}

type MatchFn = fn(&mut Ctx, &[u8], &[u8], &[u8], bool) -> Value;

/// `(table, op, value)` arguments to a match/remove function.
fn by_args(c: &mut Ctx, a: &[Value], by_value: bool, f: MatchFn) -> Value {
    f(
        c,
        &arg_bytes(a, 0),
        &arg_bytes(a, 1),
        &arg_bytes(a, 2),
        by_value,
    )
}

/// A predicate over (name, value) of items for the `sht_*_name` / `sht_*_value` functions.
fn item_matcher(op: &[u8], pat: &[u8], by_value: bool) -> Option<impl Fn(&[u8], &Value) -> bool> {
    let m = matcher(op, pat)?;
    Some(move |k: &[u8], v: &Value| {
        if by_value {
            matches!(v, Value::Str(s) if m(s))
        } else {
            m(k)
        }
    })
}

fn rm_match(c: &mut Ctx, table: &[u8], op: &[u8], pat: &[u8], by_value: bool) -> Value {
    match (
        c.core.m.htable.table(table),
        item_matcher(op, pat, by_value),
    ) {
        (Some(t), Some(f)) => {
            t.remove_matching(f);
            Value::Int(1)
        }
        _ => Value::Int(-1),
    }
}

fn has_match(c: &mut Ctx, table: &[u8], op: &[u8], pat: &[u8], by_value: bool) -> Value {
    match (
        c.core.m.htable.table(table),
        item_matcher(op, pat, by_value),
    ) {
        (Some(t), Some(f)) => b(t.count_matching(f) > 0),
        _ => Value::Int(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_and_items() {
        let t = parse_def("ipban=>size=8;autoexpire=300;initval=0").unwrap();
        assert_eq!(t.name, "ipban");
        assert_eq!(t.get(b"x"), Value::Int(0));
        assert_eq!(t.add(Bytes::from("x"), 1), Value::Int(1));
        assert_eq!(t.add(Bytes::from("x"), 1), Value::Int(2));
        assert!(matches!(t.expires_in(b"x"), Value::Int(n) if n > 290));
        t.set(Bytes::from("x"), Value::Null);
        assert_eq!(t.get(b"x"), Value::Int(0));
        let d = parse_def("x=>dbtable=htable;dbmode=1;size=2;cols='k,v'").unwrap();
        assert_eq!(
            (d.dbtable.as_deref(), d.dbmode, d.slots),
            (Some("htable"), 1, 4)
        );
        assert_eq!(d.cols, ["k", "v"]);
        assert!(parse_def("x=>cols='k'").is_err());
        assert!(parse_def("x=>bogus=1").is_err());
    }
}
