//! htable's database side (`dbtable` loaded at start-up, written back at shutdown with
//! `dbmode=1`) and the `htable.*` RPC commands, in Kamailio's layout.

use super::{HtableState, Item, Table};
use crate::core::Core;
use crate::db::{self, DbVal};
use crate::rpc::{RpcError, RpcRegistry};
use bytes::Bytes;
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vm::Value;

/// Column names and options shared by every database-backed table.
pub struct DbCols {
    pub name: String,
    pub ktype: String,
    pub vtype: String,
    pub value: String,
    pub expires: String,
    /// `db_expires`: load and save the `expires` column (tables with autoexpire only).
    pub use_expires: bool,
    pub array_suffix: String,
}

impl Default for DbCols {
    fn default() -> Self {
        DbCols {
            name: "key_name".into(),
            ktype: "key_type".into(),
            vtype: "value_type".into(),
            value: "key_value".into(),
            expires: "expires".into(),
            use_expires: false,
            array_suffix: "::size".into(),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Kamailio's `core_case_hash` (ASCII letters folded), the hash id htable orders items by.
pub fn case_hash(s: &[u8]) -> u32 {
    // Kamailio's `char` is signed: bytes above 0x7f enter sign-extended.
    let ch = |c: u8| -> u32 {
        let c = if c.is_ascii_uppercase() { c | 0x20 } else { c };
        c as i8 as i32 as u32
    };
    let mut h: u32 = 0;
    let mut chunks = s.chunks_exact(4);
    for c in &mut chunks {
        let v = (ch(c[0]) << 24)
            .wrapping_add(ch(c[1]) << 16)
            .wrapping_add(ch(c[2]) << 8)
            .wrapping_add(ch(c[3]));
        h = h.wrapping_add(v ^ (v >> 3));
    }
    let v = chunks
        .remainder()
        .iter()
        .fold(0u32, |v, &c| (v << 8).wrapping_add(ch(c)));
    h = h.wrapping_add(v ^ (v >> 3));
    h.wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23))
}

/// The live items of `t` in Kamailio's order: by slot, then hash id, then name.
fn ordered(t: &Table) -> Vec<(usize, Bytes, Item)> {
    let now = Instant::now();
    let mask = t.slots.max(1) - 1;
    let mut v: Vec<(usize, u32, Bytes, Item)> = t
        .read()
        .iter()
        .filter(|(_, it)| it.expires.is_none_or(|e| e > now))
        .map(|(k, it)| {
            let h = case_hash(k);
            ((h as usize) & mask, h, k.clone(), it.clone())
        })
        .collect();
    v.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    v.into_iter().map(|(s, _, k, it)| (s, k, it)).collect()
}

// ---------------------------------------------------------------- database

/// Loads `t` from its `dbtable` (rows ordered by name; arrays from `key_type` 1 become
/// `name[i]` plus `name::size`; expired rows skipped). Returns the number of rows taken.
pub fn load(st: &HtableState, t: &Table) -> Result<usize, String> {
    let (Some(h), Some(table)) = (&st.db, &t.dbtable) else {
        return Ok(0);
    };
    let c = &st.cols;
    let custom = !t.cols.is_empty();
    let with_expires = !custom && t.autoexpire > 0 && c.use_expires;
    let cols: Vec<&str> = if custom {
        t.cols.iter().map(String::as_str).collect()
    } else if with_expires {
        vec![&c.name, &c.ktype, &c.vtype, &c.value, &c.expires]
    } else {
        vec![&c.name, &c.ktype, &c.vtype, &c.value]
    };
    let order = cols.first().copied().unwrap_or("key_name");
    let rows = db::with(h, |d| {
        if table == "htable" {
            d.ensure_table("htable", &[])?;
        }
        d.select(table, &cols, &[], Some(order))
    })
    .map_err(|e| format!("htable [{}]: {e}", t.name))?;
    let now = unix_now();
    let mut items: Vec<(Bytes, Value, Option<i64>)> = Vec::new();
    let (mut array_name, mut array_len, mut last_array) = (String::new(), 0i64, false);
    let mut taken = 0;
    for row in rows {
        let Some(name) = row.first().filter(|v| !matches!(v, DbVal::Null)) else {
            return Err(format!("htable [{}] row has NULL key value", t.name));
        };
        let name = name.to_text();
        if custom {
            let vals: Vec<String> = row
                .get(1..)
                .unwrap_or(&[])
                .iter()
                .map(|v| match v {
                    DbVal::Null => t.colnull.clone(),
                    v => v.to_text(),
                })
                .collect();
            items.push((
                Bytes::from(name),
                Value::Str(Bytes::from(vals.join(&t.coldelim))),
                None,
            ));
            taken += 1;
            continue;
        }
        let expires = if with_expires {
            row.get(4).and_then(DbVal::as_int).unwrap_or(0)
        } else {
            0
        };
        if expires > 0 && expires < now {
            continue;
        }
        taken += 1;
        let ktype = row.get(1).and_then(DbVal::as_int).unwrap_or(0);
        let vtype = row.get(2).and_then(DbVal::as_int).unwrap_or(0);
        if last_array && array_len > 0 && array_name != name {
            items.push((
                Bytes::from(format!("{array_name}{}", c.array_suffix)),
                Value::Int(array_len),
                None,
            ));
            array_len = 0;
        }
        last_array = ktype == 1;
        let key = if ktype == 1 {
            let k = format!("{name}[{array_len}]");
            array_len += 1;
            k
        } else {
            name.clone()
        };
        array_name = name;
        let raw = row.get(3).cloned().unwrap_or(DbVal::Null);
        let value = if vtype == 1 {
            Value::Int(match &raw {
                DbVal::Int(i) => *i,
                other => str_to_sint(&other.to_text()),
            })
        } else {
            Value::Str(Bytes::from(raw.to_text()))
        };
        items.push((
            Bytes::from(key),
            value,
            (expires > 0).then_some(expires - now),
        ));
    }
    if last_array && array_len > 0 {
        items.push((
            Bytes::from(format!("{array_name}{}", c.array_suffix)),
            Value::Int(array_len),
            None,
        ));
    }
    let at = Instant::now();
    let mut g = t.write();
    for (k, v, exp) in items {
        let expires = match exp {
            Some(secs) if t.autoexpire > 0 => Some(at + Duration::from_secs(secs.max(0) as u64)),
            _ => t.expiry(at),
        };
        g.insert(k, Item { value: v, expires });
    }
    Ok(taken)
}

/// Kamailio's `str2sint`: an optional sign and leading digits; 0 when there are none.
fn str_to_sint(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.wrapping_mul(10).wrapping_add(i64::from(d - b'0'))
        });
    if neg { -n } else { n }
}

/// Replaces the rows of `t`'s `dbtable` with its live items (`htable.store`, shutdown with
/// `dbmode=1`). Tables with custom `cols` are not written, as in Kamailio.
pub fn store(st: &HtableState, t: &Table) -> Result<(), String> {
    let (Some(h), Some(table)) = (&st.db, &t.dbtable) else {
        return Err("no database table".into());
    };
    if !t.cols.is_empty() {
        crate::klog!(
            crate::log::L_WARN,
            "htable",
            "saving htable [{}] with custom db columns is not available",
            t.name
        );
        return Ok(());
    }
    let c = &st.cols;
    let with_expires = c.use_expires && t.autoexpire > 0;
    let now = Instant::now();
    let unix = unix_now();
    let items = ordered(t);
    db::with(h, |d| {
        if table == "htable" {
            d.ensure_table("htable", &[])?;
        }
        d.delete(table, &[])?;
        for (_, k, it) in &items {
            let (vtype, text) = match &it.value {
                Value::Int(n) => (1, n.to_string()),
                v => (0, v.to_text()),
            };
            let mut cols = vec![c.name.as_str(), &c.ktype, &c.vtype, &c.value];
            let mut vals = vec![
                DbVal::Str(String::from_utf8_lossy(k).into_owned()),
                DbVal::Int(0),
                DbVal::Int(vtype),
                DbVal::Str(text),
            ];
            if with_expires {
                let exp = it.expires.map_or(0, |e| {
                    unix + e.saturating_duration_since(now).as_secs() as i64
                });
                cols.push(&c.expires);
                vals.push(DbVal::Int(exp));
            }
            d.insert(table, &cols, &vals)?;
        }
        Ok(())
    })
    .map_err(|e| format!("htable [{}]: {e}", t.name))
}

// ---------------------------------------------------------------- RPC

pub fn register(r: &mut RpcRegistry) {
    r.add("htable.get", "Get one item: table, key.", get);
    r.add("htable.delete", "Delete one item: table, key.", delete);
    r.add("htable.sets", "Set a string item: table, key, value.", sets);
    r.add(
        "htable.seti",
        "Set an integer item: table, key, value.",
        seti,
    );
    r.add(
        "htable.setex",
        "Set an item's expire: table, key, seconds.",
        setex,
    );
    r.add(
        "htable.setxs",
        "Set a string item and its expire: table, key, value, seconds.",
        setxs,
    );
    r.add(
        "htable.setxi",
        "Set an integer item and its expire: table, key, value, seconds.",
        setxi,
    );
    r.add("htable.dump", "Dump a table's items by slot: table.", dump);
    r.add(
        "htable.reload",
        "Reload a table from its database table.",
        reload,
    );
    r.add(
        "htable.store",
        "Write a table to its database table.",
        store_rpc,
    );
    r.add("htable.flush", "Empty a table.", flush);
    r.add(
        "htable.listTables",
        "List the tables and their attributes.",
        list,
    );
    r.add("htable.stats", "Items per table and slot usage.", stats);
}

fn fault(msg: &str) -> RpcError {
    RpcError::new(500, msg)
}

/// A string parameter (numbers accepted in their decimal form, as Kamailio's scan does).
fn s_param(p: &[Json], i: usize) -> Option<String> {
    match p.get(i)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn d_param(p: &[Json], i: usize) -> Option<i64> {
    match p.get(i)? {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn table<'a>(core: &'a Core, name: &str) -> Result<&'a Table, RpcError> {
    core.m
        .htable
        .table(name.as_bytes())
        .map(|t| &**t)
        .ok_or_else(|| fault("No such htable"))
}

fn ok(msg: &str) -> Result<Json, RpcError> {
    Ok(Json::String(msg.into()))
}

fn get(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let (Some(tn), Some(key)) = (s_param(p, 0), s_param(p, 1)) else {
        return Err(fault("Not enough parameters (htable name and key name)"));
    };
    let t = table(core, &tn)?;
    let now = Instant::now();
    let Some(it) = t
        .read()
        .get(key.as_bytes())
        .filter(|it| it.expires.is_none_or(|e| e > now))
        .cloned()
    else {
        return Err(fault("Key name doesn't exist in htable."));
    };
    let expire = match it.expires {
        Some(e) => db::format_time(unix_now() + e.saturating_duration_since(now).as_secs() as i64),
        None => "NEVER".into(),
    };
    let (value, flags) = match &it.value {
        Value::Int(n) => (json!(n), 0),
        v => (json!(v.to_text()), 2),
    };
    Ok(json!({"item": {"name": key, "value": value, "flags": flags, "expire": expire}}))
}

fn delete(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let (Some(tn), Some(key)) = (s_param(p, 0), s_param(p, 1)) else {
        return Err(fault("Not enough parameters (htable name & key name"));
    };
    let t = table(core, &tn)?;
    if t.write().remove(key.as_bytes()).is_none() {
        return Err(RpcError::new(404, "Key not found in htable."));
    }
    ok("Ok. Key deleted.")
}

fn set_item(
    core: &'static Core,
    p: &[Json],
    int: bool,
    with_expire: bool,
) -> Result<Json, RpcError> {
    let need = if with_expire { 4 } else { 3 };
    let tn = s_param(p, 0);
    let key = s_param(p, 1);
    let value = if int {
        d_param(p, 2).map(Value::Int)
    } else {
        s_param(p, 2).map(|s| Value::Str(Bytes::from(s)))
    };
    let exp = if with_expire { d_param(p, 3) } else { Some(0) };
    let (Some(tn), Some(key), Some(value), Some(exp)) = (tn, key, value, exp) else {
        return Err(fault(if need == 4 {
            "Not enough parameters (htable name, key name, value and expire)"
        } else {
            "Not enough parameters (htable name, key name and value)"
        }));
    };
    let t = table(core, &tn)?;
    let key = Bytes::from(key);
    t.set(key.clone(), value);
    if with_expire {
        t.set_expire(&key, exp);
    }
    ok("Ok. Key set to new value.")
}

fn sets(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    set_item(core, p, false, false)
}

fn seti(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    set_item(core, p, true, false)
}

fn setxs(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    set_item(core, p, false, true)
}

fn setxi(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    set_item(core, p, true, true)
}

fn setex(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let (Some(tn), Some(key), Some(exp)) = (s_param(p, 0), s_param(p, 1), d_param(p, 2)) else {
        return Err(fault(
            "Not enough parameters (htable name, item name and expire)",
        ));
    };
    let t = table(core, &tn)?;
    t.set_expire(key.as_bytes(), exp);
    ok("Ok")
}

fn dump(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let Some(tn) = s_param(p, 0) else {
        return Err(fault("No htable name given"));
    };
    let t = table(core, &tn)?;
    let mut out: Vec<Json> = Vec::new();
    let mut cur: Option<(usize, Vec<Json>)> = None;
    for (slot, k, it) in ordered(t) {
        if cur.as_ref().is_some_and(|(s, _)| *s != slot)
            && let Some((s, items)) = cur.take()
        {
            out.push(json!({"entry": s, "size": items.len(), "slot": items}));
        }
        let item = match &it.value {
            Value::Int(n) => {
                json!({"name": String::from_utf8_lossy(&k), "value": n, "type": "int"})
            }
            v => json!({"name": String::from_utf8_lossy(&k), "value": v.to_text(), "type": "str"}),
        };
        cur.get_or_insert_with(|| (slot, Vec::new())).1.push(item);
    }
    if let Some((s, items)) = cur {
        out.push(json!({"entry": s, "size": items.len(), "slot": items}));
    }
    Ok(Json::Array(out))
}

fn db_table<'a>(core: &'a Core, p: &[Json]) -> Result<&'a Table, RpcError> {
    if core.m.htable.db.is_none() {
        return Err(fault("No htable db_url"));
    }
    let Some(tn) = s_param(p, 0) else {
        return Err(fault("No htable name given"));
    };
    let t = table(core, &tn)?;
    if t.dbtable.is_none() {
        return Err(fault("No database htable"));
    }
    Ok(t)
}

fn reload(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let t = db_table(core, p)?;
    // Load into a scratch table first, so a failing database leaves the content alone.
    let scratch = t.empty_copy();
    if load(&core.m.htable, &scratch).is_err() {
        return Err(fault("Htable reload failed"));
    }
    let fresh = std::mem::take(&mut *scratch.write());
    *t.write() = fresh;
    ok("Ok. Htable reloaded.")
}

fn store_rpc(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let t = db_table(core, p)?;
    store(&core.m.htable, t).map_err(|_| fault("Storing htable failed"))?;
    ok("Ok. Htable successfully stored to DB.")
}

fn flush(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let Some(tn) = s_param(p, 0) else {
        return Err(fault("No htable name given"));
    };
    table(core, &tn)?.write().clear();
    ok("Ok. Htable flushed.")
}

fn list(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let tables = &core.m.htable.tables;
    if tables.is_empty() {
        return Err(fault("No htables"));
    }
    // Kamailio lists the most recently defined table first.
    Ok(Json::Array(
        tables
            .iter()
            .rev()
            .map(|t| {
                json!({
                    "name": t.name,
                    "dbtable": t.dbtable.clone().unwrap_or_default(),
                    "dbmode": t.dbmode,
                    "expire": t.autoexpire,
                    "updateexpire": i32::from(t.updateexpire),
                    "size": t.slots,
                    "dmqreplicate": t.dmqreplicate,
                })
            })
            .collect(),
    ))
}

fn stats(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    let tables = &core.m.htable.tables;
    if tables.is_empty() {
        return Err(fault("No htables"));
    }
    Ok(Json::Array(
        tables
            .iter()
            .rev()
            .map(|t| {
                let mut per_slot = vec![0usize; t.slots.max(1)];
                let mask = t.slots.max(1) - 1;
                // Every item counts, expired ones not yet removed included (as Kamailio's).
                for k in t.read().keys() {
                    if let Some(n) = per_slot.get_mut(case_hash(k) as usize & mask) {
                        *n += 1;
                    }
                }
                let all: usize = per_slot.iter().sum();
                json!({
                    "name": t.name,
                    "slots": t.slots,
                    "all": all,
                    "min": per_slot.iter().min().copied().unwrap_or(0),
                    "max": per_slot.iter().max().copied().unwrap_or(0),
                })
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sint_like_kamailio() {
        assert_eq!(str_to_sint("42abc"), 42);
        assert_eq!(str_to_sint("-7"), -7);
        assert_eq!(str_to_sint("x"), 0);
    }

    #[test]
    fn case_hash_folds_letters() {
        assert_eq!(case_hash(b"Alice"), case_hash(b"alice"));
        assert_ne!(case_hash(b"alice"), case_hash(b"alicf"));
    }
}
