//! htable iterators (`sht_iterator_*`, `$shtitkey`/`$shtitval`), slot locks
//! (`sht_lock`/`sht_unlock`) and `sht_print`.
//!
//! An iterator belongs to its worker (Kamailio's are per process) and walks a snapshot of the
//! table's keys taken at start, so it never holds the table lock between script statements
//! (Kamailio keeps a slot locked, and warns that updating the table meanwhile can deadlock;
//! here it cannot). Values are read live, so an item removed meanwhile is skipped.

use super::{Item, Table};
use crate::ctx::Ctx;
use bytes::Bytes;
use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vm::Value;

/// Kamailio allows this many iterators at once (per process).
const MAX_ITERATORS: usize = 4;

struct Iterator {
    name: Bytes,
    table: Arc<Table>,
    keys: Vec<Bytes>,
    /// Index of the current item in `keys`; `None` before the first `next`.
    pos: Option<usize>,
}

thread_local! {
    static ITERATORS: RefCell<Vec<Iterator>> = const { RefCell::new(Vec::new()) };
}

fn live(it: &Item, now: Instant) -> bool {
    it.expires.is_none_or(|e| e > now)
}

/// `sht_iterator_start(iname, hname)`: 1, or -1 (no such table, all iterators in use).
pub fn start(c: &Ctx, iname: Bytes, hname: &[u8]) -> i32 {
    if iname.is_empty() {
        return -1;
    }
    let Some(table) = c.core.m.htable.table(hname).cloned() else {
        crate::klog!(
            crate::log::L_ERR,
            "htable",
            "cannot get hash table [{}]",
            String::from_utf8_lossy(hname)
        );
        return -1;
    };
    let now = Instant::now();
    let keys = table
        .read()
        .iter()
        .filter(|(_, it)| live(it, now))
        .map(|(k, _)| k.clone())
        .collect();
    ITERATORS.with(|its| {
        let mut its = its.borrow_mut();
        let fresh = Iterator {
            name: iname.clone(),
            table,
            keys,
            pos: None,
        };
        if let Some(i) = its.iter_mut().find(|i| i.name == iname) {
            *i = fresh;
            return 1;
        }
        if its.len() >= MAX_ITERATORS {
            crate::klog!(
                crate::log::L_ERR,
                "htable",
                "no iterator available - max number is {MAX_ITERATORS}"
            );
            return -1;
        }
        its.push(fresh);
        1
    })
}

fn with_iter<R>(iname: &[u8], f: impl FnOnce(&mut Iterator) -> R) -> Option<R> {
    ITERATORS.with(|its| {
        let mut its = its.borrow_mut();
        match its.iter_mut().find(|i| i.name == iname) {
            Some(i) => Some(f(i)),
            None => {
                crate::klog!(
                    crate::log::L_ERR,
                    "htable",
                    "iterator not found [{}]",
                    String::from_utf8_lossy(iname)
                );
                None
            }
        }
    })
}

/// Moves to the next key still in the table; false at the end.
fn advance(i: &mut Iterator) -> bool {
    let now = Instant::now();
    let g = i.table.read();
    let mut p = i.pos.map_or(0, |p| p + 1);
    while let Some(k) = i.keys.get(p) {
        if g.get(k).is_some_and(|it| live(it, now)) {
            i.pos = Some(p);
            return true;
        }
        p += 1;
    }
    i.pos = Some(i.keys.len());
    false
}

fn current(i: &Iterator) -> Option<&Bytes> {
    i.pos.and_then(|p| i.keys.get(p))
}

/// `sht_iterator_next(iname)`: 1 at an item, -1 at the end (or no such iterator).
pub fn next(iname: &[u8]) -> i32 {
    with_iter(iname, |i| if advance(i) { 1 } else { -1 }).unwrap_or(-1)
}

/// `sht_iterator_end(iname)`: 1, -1 when there is no such iterator.
pub fn end(iname: &[u8]) -> i32 {
    ITERATORS.with(|its| {
        let mut its = its.borrow_mut();
        let before = its.len();
        its.retain(|i| i.name != iname);
        if its.len() < before { 1 } else { -1 }
    })
}

/// `sht_iterator_rm(iname)`: removes the current item and moves on: 1 at the next item, -2
/// at the end, -1 when the iterator has no current item.
pub fn rm(iname: &[u8]) -> i32 {
    with_iter(iname, |i| {
        let Some(k) = current(i).cloned() else {
            return -1;
        };
        i.table.write().remove(&k);
        if advance(i) { 1 } else { -2 }
    })
    .unwrap_or(-1)
}

/// `sht_iterator_sets/seti` (a value) and `sht_iterator_setex` (an expiry in seconds) on the
/// current item: 1, or -1 without a current item.
pub fn set(iname: &[u8], value: Option<Value>, expire: Option<i64>) -> i32 {
    with_iter(iname, |i| {
        let Some(k) = current(i).cloned() else {
            return -1;
        };
        let table = Arc::clone(&i.table);
        let now = Instant::now();
        let mut g = table.write();
        let Some(it) = g.get_mut(&k) else {
            return -1;
        };
        if let Some(v) = value {
            it.value = v;
            if table.updateexpire {
                it.expires = table.expiry(now);
            }
        }
        if let Some(secs) = expire {
            it.expires = (secs > 0).then(|| now + Duration::from_secs(secs as u64));
        }
        1
    })
    .unwrap_or(-1)
}

/// `$shtitkey(iname)` / `$shtitval(iname)`: the current item's name / value, null elsewhere.
pub fn current_item(iname: &[u8], want_value: bool) -> Value {
    ITERATORS.with(|its| {
        let its = its.borrow();
        let Some(i) = its.iter().find(|i| i.name == iname) else {
            return Value::Null;
        };
        let Some(k) = current(i) else {
            return Value::Null;
        };
        if !want_value {
            return Value::Str(k.clone());
        }
        let now = Instant::now();
        i.table
            .read()
            .get(k)
            .filter(|it| live(it, now))
            .map_or(Value::Null, |it| it.value.clone())
    })
}

// ---------------------------------------------------------------- slot locks

/// Number of lockable slots per table (keys hash onto them, like Kamailio's table slots).
pub(super) const LOCK_SLOTS: usize = 64;

pub(super) type SlotLock = parking_lot::ReentrantMutex<()>;

fn slot<'a>(table: &'a Table, key: &[u8]) -> Option<&'a SlotLock> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    table
        .slot_locks
        .get(h.finish() as usize % LOCK_SLOTS.max(1))
}

/// `sht_lock(table=>key)`: locks the key's slot for this worker (re-entrant); 1 or -1.
pub fn lock(table: &Table, key: &[u8]) -> i32 {
    match slot(table, key) {
        Some(m) => {
            // The guard is released by `sht_unlock`, possibly in a later statement.
            std::mem::forget(m.lock());
            1
        }
        None => -1,
    }
}

/// `sht_unlock(table=>key)`: releases a slot this worker locked; 1, -1 when it holds none.
pub fn unlock(table: &Table, key: &[u8]) -> i32 {
    match slot(table, key) {
        Some(m) if m.is_owned_by_current_thread() => {
            // SAFETY: this thread holds the lock (checked above), taken by `lock` whose guard
            // was forgotten.
            unsafe { m.force_unlock() };
            1
        }
        _ => -1,
    }
}

/// `sht_print()`: every table's live items to the error log (a debugging aid, as in
/// Kamailio).
pub fn print(c: &Ctx) -> i32 {
    let now = Instant::now();
    for t in &c.core.m.htable.tables {
        crate::klog!(crate::log::L_ERR, "htable", "===== htable[{}] >", t.name);
        let g = t.read();
        let mut items: Vec<_> = g.iter().filter(|(_, it)| live(it, now)).collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        for (k, it) in items {
            let exp = it
                .expires
                .map_or(0, |e| e.saturating_duration_since(now).as_secs());
            let v = match &it.value {
                Value::Int(n) => format!("{n} [int]"),
                other => format!("\"{}\" [str]", other.to_text()),
            };
            crate::klog!(
                crate::log::L_ERR,
                "htable",
                "  {} = {v} (expires in {exp}s)",
                String::from_utf8_lossy(k)
            );
        }
    }
    1
}
