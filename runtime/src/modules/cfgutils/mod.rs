//! Kamailio's `cfgutils` module: random events, sleeping, global flags, keyed locks shared by
//! every worker, `core_hash`, `$RANDOM`.

use super::core::actions::{arg_bytes, arg_int, b};
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use parking_lot::lock_api::RawMutex as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering::Relaxed};
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::pv::{PvClass, PvSpec};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "cfgutils",
    params: &[
        ParamDef::int("initial_probability"),
        ParamDef::int("initial_gflags"),
        ParamDef::str("hash_file"),
        ParamDef::int("lock_set_size"),
    ],
    register,
    init: Some(init),
    notice: None,
};

pub struct CfgutilsState {
    prob: AtomicI64,
    initial_prob: AtomicI64,
    gflags: AtomicU32,
    locks: Vec<parking_lot::RawMutex>,
}

impl Default for CfgutilsState {
    fn default() -> Self {
        CfgutilsState {
            prob: AtomicI64::new(10),
            initial_prob: AtomicI64::new(10),
            gflags: AtomicU32::new(0),
            locks: Vec::new(),
        }
    }
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params.int("initial_probability", 10);
    if !(0..=100).contains(&p) {
        return Err(format!("initial_probability {p} out of range 0..100"));
    }
    let st = &mut ictx.states.cfgutils;
    st.prob.store(p, Relaxed);
    st.initial_prob.store(p, Relaxed);
    st.gflags
        .store(ictx.params.int("initial_gflags", 0) as u32, Relaxed);
    // As in Kamailio, the lock set exists only when `lock_set_size` is given.
    if ictx.params.get("lock_set_size").is_some() {
        let bits = ictx.params.int("lock_set_size", 4).clamp(1, 14);
        st.locks = (0..(1usize << bits))
            .map(|_| parking_lot::RawMutex::INIT)
            .collect();
    }
    Ok(())
}

fn random_u32() -> u32 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::time::SystemTime::now().hash(&mut h);
    std::thread::current().id().hash(&mut h);
    thread_local! {
        static SEQ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    SEQ.with(|s| {
        s.set(s.get().wrapping_add(0x9e37_79b9_7f4a_7c15));
        s.get().hash(&mut h);
    });
    (h.finish() >> 33) as u32
}

fn register(r: &mut Registrar<'_>) {
    r.pvs.add(PvClass {
        name: "RANDOM",
        get: |_: &mut Ctx, _: &PvSpec| Value::Int((random_u32() & 0x7fff_ffff) as i64),
        set: None,
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
    r.kemi("cfgutils", "rand_set_prob", &[I], RetType::Int, |c, a| {
        let p = arg_int(a, 0);
        if !(0..=100).contains(&p) {
            return Value::Int(-1);
        }
        c.core.m.cfgutils.prob.store(p, Relaxed);
        Value::Int(1)
    })
    .native("rand_set_prob", RouteMask::ANY);
    r.kemi("cfgutils", "rand_reset_prob", &[], RetType::Int, |c, _| {
        let st = &c.core.m.cfgutils;
        st.prob.store(st.initial_prob.load(Relaxed), Relaxed);
        Value::Int(1)
    })
    .native("rand_reset_prob", RouteMask::ANY);
    r.kemi("cfgutils", "rand_get_prob", &[], RetType::Int, |c, _| {
        Value::Int(c.core.m.cfgutils.prob.load(Relaxed))
    })
    .native("rand_get_prob", RouteMask::ANY);
    r.kemi("cfgutils", "rand_event", &[], RetType::Int, |c, _| {
        let p = c.core.m.cfgutils.prob.load(Relaxed);
        b((random_u32() % 100) < p as u32)
    })
    .native("rand_event", RouteMask::ANY);
    r.kemi("cfgutils", "sleep", &[I], RetType::Int, |_, a| {
        std::thread::sleep(std::time::Duration::from_secs(
            arg_int(a, 0).clamp(0, 3600) as u64
        ));
        Value::Int(1)
    })
    .native("sleep", RouteMask::ANY);
    r.kemi("cfgutils", "usleep", &[I], RetType::Int, |_, a| {
        std::thread::sleep(std::time::Duration::from_micros(
            arg_int(a, 0).clamp(0, 3_600_000_000) as u64,
        ));
        Value::Int(1)
    })
    .native("usleep", RouteMask::ANY);
    r.native("set_gflag", &[I], RouteMask::ANY, |c, a| {
        gflag(c, arg_int(a, 0), 1)
    });
    r.native("reset_gflag", &[I], RouteMask::ANY, |c, a| {
        gflag(c, arg_int(a, 0), 0)
    });
    r.native("is_gflag", &[I], RouteMask::ANY, |c, a| {
        gflag(c, arg_int(a, 0), 2)
    });
    r.kemi("cfgutils", "core_hash", &[S, S, I], RetType::Int, |_, a| {
        // The bucket index (1-based, so never the 0 that would stop a native script) in a
        // table of 2^size slots (2 slots when size <= 0).
        let size = match arg_int(a, 2) {
            n if n <= 0 => 2,
            n => 1u32 << n.min(31),
        };
        let s2 = arg_bytes(a, 1);
        let h = core_hash(&arg_bytes(a, 0), (!s2.is_empty()).then_some(&s2[..]), size);
        Value::Int(h as i64 + 1)
    })
    .native("core_hash", RouteMask::ANY);
    r.kemi("cfgutils", "lock", &[S], RetType::Int, |c, a| {
        lock(c, &arg_bytes(a, 0), None, 0)
    })
    .native("lock", RouteMask::ANY);
    r.kemi("cfgutils", "unlock", &[S], RetType::Int, |c, a| {
        lock(c, &arg_bytes(a, 0), None, 1)
    })
    .native("unlock", RouteMask::ANY);
    r.kemi("cfgutils", "trylock", &[S], RetType::Int, |c, a| {
        lock(c, &arg_bytes(a, 0), None, 2)
    })
    .native("trylock", RouteMask::ANY);
    r.kemi("cfgutils", "lock_key2", &[S, S], RetType::Int, |c, a| {
        lock(c, &arg_bytes(a, 0), Some(&arg_bytes(a, 1)), 0)
    })
    .native("lock", RouteMask::ANY);
    r.kemi("cfgutils", "unlock_key2", &[S, S], RetType::Int, |c, a| {
        lock(c, &arg_bytes(a, 0), Some(&arg_bytes(a, 1)), 1)
    })
    .native("unlock", RouteMask::ANY);
    r.kemi("cfgutils", "trylock_key2", &[S, S], RetType::Int, |c, a| {
        lock(c, &arg_bytes(a, 0), Some(&arg_bytes(a, 1)), 2)
    })
    .native("trylock", RouteMask::ANY);
    r.kemi(
        "cfgutils",
        "check_route_exists",
        &[S],
        RetType::Int,
        |c, a| {
            let name = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
            let found = c.engine.clone().is_some_and(|e| e.has_sub(&name));
            Value::Int(if found { 1 } else { -1 })
        },
    )
    .native("check_route_exists", RouteMask::ANY);
    r.kemi("cfgutils", "route_if_exists", &[S], RetType::Int, |c, a| {
        let name = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
        let Some(engine) = c.engine.clone() else {
            return Value::Int(-1);
        };
        match engine.run_sub(c, &name) {
            // `exit` inside the route stops the caller too, as Kamailio's 0 does.
            Some(out) if out.exit => Value::Int(0),
            Some(out) => Value::Int(out.code as i64),
            None => Value::Int(-1),
        }
    })
    .native("route_if_exists", RouteMask::ANY);
}

/// Kamailio's core string hash (the one its hash tables use), masked to `size` buckets.
fn core_hash(s1: &[u8], s2: Option<&[u8]>, size: u32) -> u32 {
    let mut h: u32 = 0;
    for s in std::iter::once(s1).chain(s2) {
        let mut chunks = s.chunks_exact(4);
        for c in &mut chunks {
            let v = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            h = h.wrapping_add(v ^ (v >> 3));
        }
        let v = chunks
            .remainder()
            .iter()
            .fold(0u32, |v, &x| (v << 8) + u32::from(x));
        h = h.wrapping_add(v ^ (v >> 3));
    }
    h = h
        .wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23));
    if size == 0 { h } else { h & (size - 1) }
}

/// `set_gflag(1)` etc.: the argument is a bit mask, as in Kamailio.
fn gflag(c: &mut Ctx, mask: i64, op: u8) -> Value {
    let m = mask as u32;
    let g = &c.core.m.cfgutils.gflags;
    match op {
        0 => {
            g.fetch_and(!m, Relaxed);
        }
        1 => {
            g.fetch_or(m, Relaxed);
        }
        _ => return b(g.load(Relaxed) & m == m && m != 0),
    }
    Value::Int(1)
}

/// Keyed locks: the key hashes onto one of `2^lock_set_size` mutexes shared by every worker.
fn lock(c: &mut Ctx, key: &[u8], key2: Option<&[u8]>, op: u8) -> Value {
    let locks = &c.core.m.cfgutils.locks;
    if locks.is_empty() {
        crate::klog!(
            crate::log::L_ERR,
            "cfgutils",
            "lock set not initialized - see param lock_set_size"
        );
        return Value::Int(-1);
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    key2.hash(&mut h);
    let Some(m) = locks.get(h.finish() as usize % locks.len()) else {
        return Value::Int(-1);
    };
    match op {
        0 => {
            m.lock();
            Value::Int(1)
        }
        1 => {
            if m.is_locked() {
                // SAFETY: the script pairs lock()/unlock() on the same key; unlocking a
                // mutex another worker holds is the script's error, as in Kamailio.
                unsafe { m.unlock() };
            }
            Value::Int(1)
        }
        _ => b(m.try_lock()),
    }
}

#[cfg(test)]
mod tests {
    use super::core_hash;

    #[test]
    fn hash_masks_to_size() {
        assert!(core_hash(b"alice@example.com", None, 16) < 16);
        assert_eq!(core_hash(b"", None, 0), 0);
        assert_eq!(
            core_hash(b"ab", Some(b"cd"), 0),
            core_hash(b"ab", Some(b"cd"), 0)
        );
    }
}
