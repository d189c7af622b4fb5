//! Variables: `$var` (per worker), `$vn`/`$vz`, `$avp` (per message/transaction), `$xavp`,
//! `$shv` (shared by every worker), and the time pseudo-variables.

use super::util::{Idx, index_of, name_of, parse_int, value_bytes};
use super::xavp::{XVal, XavpList};
use crate::ctx::Ctx;
use ahash::AHashMap;
use bytes::Bytes;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use vm::Value;
use vm::pv::{PvError, PvParam, PvSpec};

// ---------------------------------------------------------------- $var

/// Process-wide interning of `$var` names to slots, so each worker keeps its variables in a
/// plain vector indexed at run time without hashing.
static VAR_SLOTS: LazyLock<Mutex<AHashMap<Box<[u8]>, u32>>> =
    LazyLock::new(|| Mutex::new(AHashMap::new()));

pub fn var_slot(name: &[u8]) -> u32 {
    let mut m = match VAR_SLOTS.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    let n = m.len() as u32;
    *m.entry(name.into()).or_insert(n)
}

/// The slot of `$var(name)` when the name is known (used somewhere), without interning it.
pub fn var_slot_lookup(name: &[u8]) -> Option<u32> {
    let m = match VAR_SLOTS.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    m.get(name).copied()
}

/// Every known `$var` name with its slot, in slot order.
pub fn var_names() -> Vec<(Bytes, u32)> {
    let m = match VAR_SLOTS.lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    let mut v: Vec<(Bytes, u32)> = m
        .iter()
        .map(|(k, s)| (Bytes::copy_from_slice(k), *s))
        .collect();
    v.sort_by_key(|(_, s)| *s);
    v
}

pub fn parse_var_name(s: &str) -> Result<PvParam, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty variable name".into());
    }
    Ok(PvParam::Slot(var_slot(t.as_bytes())))
}

fn slot_of(ctx: &mut Ctx, p: &PvParam) -> Option<u32> {
    match p {
        PvParam::Slot(s) => Some(*s),
        other => name_of(ctx, other).map(|n| var_slot(&n)),
    }
}

/// `$var(x)`: unset reads 0, like Kamailio's script variables.
pub fn var_get(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(slot) = slot_of(ctx, &spec.param) else {
        return Value::Null;
    };
    match ctx.vars.get(slot as usize) {
        Some(Value::Null) | None => Value::Int(0),
        Some(v) => v.clone(),
    }
}

/// `$vn(x)`: like `$var` but keeps null.
pub fn vn_get(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(slot) = slot_of(ctx, &spec.param) else {
        return Value::Null;
    };
    ctx.vars.get(slot as usize).cloned().unwrap_or(Value::Null)
}

fn store_var(ctx: &mut Ctx, slot: u32, v: Value) {
    let i = slot as usize;
    if ctx.vars.len() <= i {
        ctx.vars.resize(i + 1, Value::Null);
    }
    if let Some(s) = ctx.vars.get_mut(i) {
        *s = v;
    }
}

/// Assigning null to `$var` resets it to 0.
pub fn var_set(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let slot = slot_of(ctx, &spec.param).ok_or(PvError::Failed("no variable name".into()))?;
    store_var(
        ctx,
        slot,
        if v.is_null() {
            Value::Int(0)
        } else {
            v.clone()
        },
    );
    Ok(())
}

pub fn vn_set(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let slot = slot_of(ctx, &spec.param).ok_or(PvError::Failed("no variable name".into()))?;
    store_var(ctx, slot, v.clone());
    Ok(())
}

// ---------------------------------------------------------------- $avp

/// AVP names: `s:name`, `i:number`, or a bare name. Kamailio keeps numeric and string names
/// apart; numbers are stored as `#n` so they never collide with string names.
pub fn parse_avp_name(s: &str) -> Result<PvParam, String> {
    let t = s.trim();
    let name = if let Some(n) = t.strip_prefix("s:") {
        n.to_string()
    } else if let Some(n) = t.strip_prefix("i:") {
        let v: i64 = n.trim().parse().map_err(|_| format!("bad AVP id '{n}'"))?;
        format!("#{v}")
    } else {
        t.to_string()
    };
    if name.is_empty() {
        return Err("empty AVP name".into());
    }
    Ok(PvParam::Str(Bytes::from(name)))
}

pub fn avp_get(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(name) = name_of(ctx, &spec.param) else {
        return Value::Null;
    };
    let idx = index_of(ctx, spec);
    let vals: Vec<&Value> = ctx
        .avps
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .collect();
    if idx == Idx::All {
        if vals.is_empty() {
            return Value::Null;
        }
        let mut out = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&value_bytes(v));
        }
        return Value::Str(Bytes::from(out));
    }
    match idx.position(vals.len()).and_then(|p| vals.get(p)) {
        Some(v) => (*v).clone(),
        None => Value::Null,
    }
}

/// Adds a value on top (native `$avp(x) = v` and `KSR.pv.sets` alike: the older values stay,
/// as the oracle shows); null deletes the top value, or all with `[*]`.
pub fn avp_set(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let name = name_of(ctx, &spec.param).ok_or(PvError::Failed("no AVP name".into()))?;
    let idx = index_of(ctx, spec);
    if v.is_null() {
        remove_avp(ctx, &name, idx == Idx::All);
        return Ok(());
    }
    if idx == Idx::All {
        remove_avp(ctx, &name, true);
    }
    ctx.avps.insert(0, (name, v.clone()));
    Ok(())
}

fn remove_avp(ctx: &mut Ctx, name: &[u8], all: bool) {
    if all {
        ctx.avps.retain(|(n, _)| n[..] != *name);
    } else if let Some(p) = ctx.avps.iter().position(|(n, _)| n[..] == *name) {
        ctx.avps.remove(p);
    }
}

// ---------------------------------------------------------------- $xavp

/// `$xavp(root[i]=>field[j])`, pre-parsed.
#[derive(Debug, Clone)]
pub struct XavpName {
    pub root: Bytes,
    pub root_idx: Option<XIdx>,
    pub field: Option<(Bytes, Option<XIdx>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XIdx {
    At(i32),
    All,
}

fn split_idx(s: &str) -> Result<(Bytes, Option<XIdx>), String> {
    let s = s.trim();
    match s.find('[') {
        None => {
            if s.is_empty() {
                return Err("empty xavp name".into());
            }
            Ok((Bytes::copy_from_slice(s.as_bytes()), None))
        }
        Some(p) => {
            let name = s[..p].trim();
            let rest = s[p + 1..]
                .strip_suffix(']')
                .ok_or_else(|| format!("missing ']' in '{s}'"))?
                .trim();
            let idx = if rest == "*" {
                XIdx::All
            } else {
                XIdx::At(
                    rest.parse()
                        .map_err(|_| format!("bad xavp index '{rest}'"))?,
                )
            };
            if name.is_empty() {
                return Err("empty xavp name".into());
            }
            Ok((Bytes::copy_from_slice(name.as_bytes()), Some(idx)))
        }
    }
}

pub fn parse_xavp_name(s: &str) -> Result<PvParam, String> {
    let (root_part, field_part) = match s.split_once("=>") {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let (root, root_idx) = split_idx(root_part)?;
    let field = match field_part {
        Some(f) => Some(split_idx(f)?),
        None => None,
    };
    Ok(PvParam::Custom(Arc::new(XavpName {
        root,
        root_idx,
        field,
    })))
}

fn xname(spec: &PvSpec) -> Option<&XavpName> {
    match &spec.param {
        PvParam::Custom(c) => c.downcast_ref::<XavpName>(),
        _ => None,
    }
}

fn xval_value(x: &XVal) -> Value {
    match x {
        XVal::Val(v) => v.clone(),
        // Kamailio prints a nested list as `<<xavp:0x...>>`; a stable marker is enough.
        XVal::List(_) => Value::from("<<xavp>>"),
    }
}

/// Reads an xavp: outer `[index]` on the PV applies to the last level.
pub fn xavp_get_from(list: &XavpList, n: &XavpName, spec_idx: Idx) -> Value {
    let ri = n.root_idx.unwrap_or(XIdx::At(0));
    let root_pos = match ri {
        XIdx::At(i) => list.fix_index(&n.root, i),
        XIdx::All => Some(0),
    };
    let Some(rp) = root_pos else {
        return Value::Null;
    };
    let Some(root) = list.get(&n.root, rp) else {
        return Value::Null;
    };
    let Some((field, fidx)) = &n.field else {
        return xval_value(root);
    };
    let XVal::List(sub) = root else {
        return Value::Null;
    };
    let fi = match (fidx, spec_idx) {
        (Some(XIdx::At(i)), _) => *i,
        (Some(XIdx::All), _) | (None, Idx::All) => {
            let vals: Vec<Bytes> = sub
                .all(field)
                .map(|x| value_bytes(&xval_value(x)))
                .collect();
            if vals.is_empty() {
                return Value::Null;
            }
            return Value::Str(Bytes::from(vals.join(&b","[..])));
        }
        (None, Idx::At(i)) => i,
        (None, Idx::None) => 0,
    };
    match sub.fix_index(field, fi).and_then(|p| sub.get(field, p)) {
        Some(x) => xval_value(x),
        None => Value::Null,
    }
}

pub fn xavp_get(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    let Some(n) = xname(spec) else {
        return Value::Null;
    };
    let idx = index_of(ctx, spec);
    xavp_get_from(&ctx.xavps, n, idx)
}

/// Kamailio's `pv_set_xavp` rules: without a root index a new root item is added (holding
/// the field); with one, the field is added to (or, indexed, replaced in) that item. Null
/// removes.
pub fn xavp_set_in(list: &mut XavpList, n: &XavpName, v: &Value) -> Result<(), PvError> {
    let fix_root = |list: &XavpList, i: i32| list.fix_index(&n.root, i);
    if v.is_null() {
        match (&n.field, n.root_idx) {
            (None, Some(XIdx::All)) => list.remove(&n.root, None),
            (None, None) | (None, Some(XIdx::At(0))) => list.remove(&n.root, Some(0)),
            (None, Some(XIdx::At(i))) => {
                if let Some(p) = fix_root(list, i) {
                    list.remove(&n.root, Some(p));
                }
            }
            (Some((field, fidx)), ri) => {
                let roots: Vec<usize> = match ri {
                    Some(XIdx::All) => (0..list.count(&n.root)).collect(),
                    Some(XIdx::At(i)) => fix_root(list, i).into_iter().collect(),
                    None => vec![0],
                };
                for rp in roots {
                    if let Some(XVal::List(sub)) = list.get_mut(&n.root, rp) {
                        match fidx {
                            Some(XIdx::All) => sub.remove(field, None),
                            Some(XIdx::At(i)) => {
                                if let Some(p) = sub.fix_index(field, *i) {
                                    sub.remove(field, Some(p));
                                }
                            }
                            None => sub.remove(field, Some(0)),
                        }
                    }
                }
            }
        }
        return Ok(());
    }
    let val = XVal::Val(v.clone());
    match (&n.field, n.root_idx) {
        (None, None) => {
            list.add(n.root.clone(), val);
            Ok(())
        }
        (None, Some(XIdx::All)) | (Some(_), Some(XIdx::All)) => {
            Err(PvError::Failed("cannot assign to [*]".into()))
        }
        (None, Some(XIdx::At(i))) => {
            let p = fix_root(list, i).ok_or(PvError::Failed("index out of range".into()))?;
            if list.set(&n.root, p, val) {
                Ok(())
            } else {
                Err(PvError::Failed("index out of range".into()))
            }
        }
        (Some((field, fidx)), Some(XIdx::At(i))) => {
            let Some(p) = fix_root(list, i) else {
                return Ok(());
            };
            let Some(XVal::List(sub)) = list.get_mut(&n.root, p) else {
                return Err(PvError::Failed("xavp is not a list".into()));
            };
            match fidx {
                Some(XIdx::All) => Ok(()),
                Some(XIdx::At(j)) => {
                    if let Some(q) = sub.fix_index(field, *j) {
                        sub.set(field, q, val);
                    }
                    Ok(())
                }
                None => {
                    sub.add(field.clone(), val);
                    Ok(())
                }
            }
        }
        (Some((field, _)), None) => {
            let mut sub = XavpList::default();
            sub.add(field.clone(), val);
            list.add(n.root.clone(), XVal::List(sub));
            Ok(())
        }
    }
}

pub fn xavp_set(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let n = xname(spec).ok_or(PvError::Failed("bad xavp name".into()))?;
    xavp_set_in(&mut ctx.xavps, n, v)
}

// ---------------------------------------------------------------- $shv

/// Shared variables (`$shv(name)`), visible to every worker.
#[derive(Default)]
pub struct SharedVars {
    vals: RwLock<AHashMap<Bytes, Value>>,
}

impl SharedVars {
    pub fn get(&self, name: &[u8]) -> Value {
        let m = match self.vals.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.get(name).cloned().unwrap_or(Value::Int(0))
    }

    pub fn set(&self, name: Bytes, v: Value) {
        let mut m = match self.vals.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.insert(name, v);
    }

    /// Adds `by` to an integer variable and returns the new value (`$shvinc`).
    pub fn incr(&self, name: &[u8], by: i64) -> i64 {
        let mut m = match self.vals.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let e = m
            .entry(Bytes::copy_from_slice(name))
            .or_insert(Value::Int(0));
        let n = e.as_int().unwrap_or(0).wrapping_add(by);
        *e = Value::Int(n);
        n
    }

    /// `shvset`/`varset` modparam value `name=i:1` or `name=s:text`.
    pub fn parse_init(spec: &str) -> Result<(Bytes, Value), String> {
        let (name, val) = spec
            .split_once('=')
            .ok_or_else(|| format!("bad value '{spec}', expected name=type:value"))?;
        let (ty, v) = val
            .split_once(':')
            .ok_or_else(|| format!("bad value '{spec}', expected name=type:value"))?;
        let value = match ty.trim() {
            "i" | "I" => Value::Int(
                parse_int(v.as_bytes()).ok_or_else(|| format!("bad integer in '{spec}'"))?,
            ),
            "s" | "S" => Value::from(v),
            t => return Err(format!("bad type '{t}' in '{spec}'")),
        };
        Ok((Bytes::copy_from_slice(name.trim().as_bytes()), value))
    }
}

pub fn parse_plain_name(s: &str) -> Result<PvParam, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty name".into());
    }
    Ok(PvParam::Str(Bytes::copy_from_slice(t.as_bytes())))
}

pub fn shv_get(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match name_of(ctx, &spec.param) {
        Some(n) => ctx.core.m.pv.shv.get(&n),
        None => Value::Null,
    }
}

pub fn shv_set(ctx: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let n = name_of(ctx, &spec.param).ok_or(PvError::Failed("no name".into()))?;
    ctx.core.m.pv.shv.set(
        n,
        if v.is_null() {
            Value::Int(0)
        } else {
            v.clone()
        },
    );
    Ok(())
}

pub fn shv_inc(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    match name_of(ctx, &spec.param) {
        Some(n) => Value::Int(ctx.core.m.pv.shv.incr(&n, 1)),
        None => Value::Null,
    }
}

// ---------------------------------------------------------------- time

fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Broken-down time (local or UTC) through libc, as Kamailio does.
fn broken_down(secs: i64, utc: bool) -> libc::tm {
    // SAFETY: `tm` is plain data; localtime_r/gmtime_r only write into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = secs as libc::time_t;
    unsafe {
        if utc {
            libc::gmtime_r(&t, &mut tm);
        } else {
            libc::localtime_r(&t, &mut tm);
        }
    }
    tm
}

/// strftime over libc, so every conversion Kamailio users know works.
pub fn strftime(fmt: &str, secs: i64, utc: bool) -> Option<String> {
    let tm = broken_down(secs, utc);
    let cfmt = std::ffi::CString::new(fmt).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: buf has the given size; strftime writes at most that many bytes.
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm) };
    if n == 0 && !fmt.is_empty() {
        return None;
    }
    buf.truncate(n);
    String::from_utf8(buf).ok()
}

/// ctime(3) without the trailing newline, like `$Tf`.
fn ctime_text(secs: i64) -> Value {
    ctime(secs).map_or(Value::Null, Value::from)
}

/// ctime(3) text of a Unix time (local time), without the newline.
pub fn ctime(secs: i64) -> Option<String> {
    strftime("%a %b %e %H:%M:%S %Y", secs, false)
}

pub fn time_now(ctx: &mut Ctx, _: &PvSpec) -> Value {
    // Kamailio keeps `$Ts` constant while one message is processed.
    let _ = ctx;
    Value::Int(unix_now().as_secs() as i64)
}
pub fn time_now_fmt(_: &mut Ctx, _: &PvSpec) -> Value {
    ctime_text(unix_now().as_secs() as i64)
}
pub fn time_start(ctx: &mut Ctx, _: &PvSpec) -> Value {
    let s = ctx
        .core
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    Value::Int(s)
}
pub fn time_start_fmt(ctx: &mut Ctx, _: &PvSpec) -> Value {
    let s = ctx
        .core
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    ctime_text(s)
}

pub fn parse_tv_name(s: &str) -> Result<PvParam, String> {
    match s.trim() {
        "s" | "u" | "sn" | "un" | "Sn" | "Sm" | "Fn" => {
            Ok(PvParam::Str(Bytes::copy_from_slice(s.trim().as_bytes())))
        }
        o => Err(format!("unknown $TV name '{o}'")),
    }
}

pub fn time_tv(_: &mut Ctx, spec: &PvSpec) -> Value {
    let now = unix_now();
    let name = match &spec.param {
        PvParam::Str(s) => s.clone(),
        _ => Bytes::from_static(b"Sn"),
    };
    match &name[..] {
        b"s" | b"sn" => Value::Int(now.as_secs() as i64),
        b"u" | b"un" => Value::Int(now.subsec_micros() as i64),
        b"Sm" => Value::Int(now.as_millis() as i64),
        b"Fn" => Value::from(format!("{}.{:09}", now.as_secs(), now.subsec_nanos())),
        _ => Value::from(format!("{}.{:06}", now.as_secs(), now.subsec_micros())),
    }
}

pub fn parse_time_name(s: &str) -> Result<PvParam, String> {
    let n = match s.trim() {
        "sec" => 0,
        "min" => 1,
        "hour" => 2,
        "mday" => 3,
        "mon" => 4,
        "year" => 5,
        "wday" => 6,
        "yday" => 7,
        "isdst" => 8,
        o => return Err(format!("unknown $time name '{o}'")),
    };
    Ok(PvParam::Int(n))
}

fn time_part(spec: &PvSpec, utc: bool) -> Value {
    let tm = broken_down(unix_now().as_secs() as i64, utc);
    let v = match spec.param {
        PvParam::Int(0) => tm.tm_sec,
        PvParam::Int(1) => tm.tm_min,
        PvParam::Int(2) => tm.tm_hour,
        PvParam::Int(3) => tm.tm_mday,
        PvParam::Int(4) => tm.tm_mon + 1,
        PvParam::Int(5) => tm.tm_year + 1900,
        PvParam::Int(6) => tm.tm_wday + 1,
        PvParam::Int(7) => tm.tm_yday + 1,
        PvParam::Int(8) => tm.tm_isdst,
        _ => return Value::Null,
    };
    Value::Int(v as i64)
}

pub fn time_local(_: &mut Ctx, spec: &PvSpec) -> Value {
    time_part(spec, false)
}
pub fn time_utc(_: &mut Ctx, spec: &PvSpec) -> Value {
    time_part(spec, true)
}

fn time_fmt(ctx: &mut Ctx, spec: &PvSpec, utc: bool) -> Value {
    let Some(f) = name_of(ctx, &spec.param) else {
        return Value::Null;
    };
    strftime(
        &String::from_utf8_lossy(&f),
        unix_now().as_secs() as i64,
        utc,
    )
    .map_or(Value::Null, Value::from)
}

pub fn timef_local(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    time_fmt(ctx, spec, false)
}
pub fn timef_utc(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    time_fmt(ctx, spec, true)
}

/// `$cnt($avp(x))` / `$cnt($xavp(x))`: how many values.
pub fn parse_cnt_name(s: &str) -> Result<PvParam, String> {
    let t = s.trim();
    let inner = |p: &str| {
        t.strip_prefix(p)
            .and_then(|r| r.strip_suffix(')'))
            .map(|n| Bytes::copy_from_slice(n.trim().as_bytes()))
    };
    if let Some(n) = inner("$avp(") {
        return match parse_avp_name(&String::from_utf8_lossy(&n))? {
            PvParam::Str(b) => Ok(PvParam::Custom(Arc::new(CntOf::Avp(b)))),
            _ => Err("bad avp name".into()),
        };
    }
    if let Some(n) = inner("$xavp(") {
        return Ok(PvParam::Custom(Arc::new(CntOf::Xavp(n))));
    }
    Err(format!("$cnt supports $avp(...) and $xavp(...), not '{t}'"))
}

enum CntOf {
    Avp(Bytes),
    Xavp(Bytes),
}

pub fn cnt(ctx: &mut Ctx, spec: &PvSpec) -> Value {
    // The parser hands `$cnt($avp(x))` over as a nested spec.
    if let PvParam::Spec(inner) = &spec.param {
        let class = ctx.core.pvs.class(inner.class).map(|c| c.name);
        return match (class, &inner.param) {
            (Some("avp"), PvParam::Str(n)) => {
                Value::Int(ctx.avps.iter().filter(|(k, _)| k == n).count() as i64)
            }
            (Some("xavp"), PvParam::Custom(c)) => match c.downcast_ref::<XavpName>() {
                Some(x) => Value::Int(ctx.xavps.count(&x.root) as i64),
                None => Value::Int(0),
            },
            _ => Value::Int(0),
        };
    }
    let PvParam::Custom(c) = &spec.param else {
        return Value::Int(0);
    };
    match c.downcast_ref::<CntOf>() {
        Some(CntOf::Avp(n)) => Value::Int(ctx.avps.iter().filter(|(k, _)| k == n).count() as i64),
        Some(CntOf::Xavp(n)) => Value::Int(ctx.xavps.count(n) as i64),
        None => Value::Int(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xn(s: &str) -> XavpName {
        match parse_xavp_name(s) {
            Ok(PvParam::Custom(c)) => c.downcast_ref::<XavpName>().cloned().unwrap(),
            _ => panic!("parse {s}"),
        }
    }

    #[test]
    fn xavp_assignment_rules() {
        let mut l = XavpList::default();
        // No root index: each assignment adds a new root item.
        xavp_set_in(&mut l, &xn("r=>a"), &Value::Int(1)).unwrap();
        xavp_set_in(&mut l, &xn("r=>a"), &Value::Int(2)).unwrap();
        assert_eq!(l.count(b"r"), 2);
        assert_eq!(xavp_get_from(&l, &xn("r=>a"), Idx::None), Value::Int(2));
        assert_eq!(xavp_get_from(&l, &xn("r[1]=>a"), Idx::None), Value::Int(1));
        // With a root index: the field is added to that item.
        xavp_set_in(&mut l, &xn("r[0]=>b"), &Value::from("x")).unwrap();
        assert_eq!(xavp_get_from(&l, &xn("r=>b"), Idx::None), Value::from("x"));
        assert_eq!(l.count(b"r"), 2);
        // Null removes.
        xavp_set_in(&mut l, &xn("r[0]=>b"), &Value::Null).unwrap();
        assert_eq!(xavp_get_from(&l, &xn("r=>b"), Idx::None), Value::Null);
        xavp_set_in(&mut l, &xn("r[*]"), &Value::Null).unwrap();
        assert_eq!(l.count(b"r"), 0);
    }

    #[test]
    fn shv_init_values() {
        assert_eq!(
            SharedVars::parse_init("debug=i:3").unwrap(),
            (Bytes::from("debug"), Value::Int(3))
        );
        assert!(SharedVars::parse_init("x=q:1").is_err());
    }

    #[test]
    fn strftime_works() {
        assert_eq!(strftime("%Y", 0, true).as_deref(), Some("1970"));
    }
}
