//! Kamailio's `pike` module: per-source-address request rate limiting. An address is
//! blocked while it sends more than `reqs_density_per_unit` requests per
//! `sampling_time_unit`, and unblocked by the first unit that stays under the limit.

use super::{ModuleDef, ParamDef, Registrar, TimerDef};
use crate::ctx::Ctx;
use ahash::AHashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vm::ksr::{ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "pike",
    params: &[
        ParamDef::int("sampling_time_unit"),
        ParamDef::int("reqs_density_per_unit"),
        ParamDef::int("remove_latency"),
        ParamDef::int("pike_log_level"),
    ],
    register,
    init: Some(init),
    notice: None,
};

#[derive(Clone, Copy)]
struct Entry {
    unit_start: Instant,
    count: u32,
    /// The count of the previous unit (a burst straddling two units still counts).
    prev: u32,
    blocked: bool,
    last_seen: Instant,
}

pub struct PikeState {
    unit: Duration,
    density: u32,
    remove_latency: Duration,
    log_level: i32,
    ips: Mutex<AHashMap<IpAddr, Entry>>,
}

impl Default for PikeState {
    fn default() -> Self {
        PikeState {
            unit: Duration::from_secs(2),
            density: 30,
            remove_latency: Duration::from_secs(120),
            log_level: crate::log::L_WARN,
            ips: Mutex::new(AHashMap::new()),
        }
    }
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.pike;
    st.unit = Duration::from_secs(p.int("sampling_time_unit", 2).max(1) as u64);
    st.density = p.int("reqs_density_per_unit", 30).max(1) as u32;
    st.remove_latency = Duration::from_secs(p.int("remove_latency", 120).max(1) as u64);
    st.log_level = p.int("pike_log_level", crate::log::L_WARN as i64) as i32;
    Ok(())
}

impl PikeState {
    /// 1 allowed, -1 still blocked, -2 newly blocked.
    pub fn check(&self, ip: IpAddr, now: Instant) -> i64 {
        let mut m = match self.ips.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let e = m.entry(ip).or_insert(Entry {
            unit_start: now,
            count: 0,
            prev: 0,
            blocked: false,
            last_seen: now,
        });
        let elapsed = now.saturating_duration_since(e.unit_start);
        if elapsed >= self.unit {
            // A new unit: a finished unit that stayed under the limit unblocks (and when
            // two units have passed, the one in between was quiet).
            let skipped = elapsed >= self.unit * 2;
            e.prev = if skipped { 0 } else { e.count };
            if e.count <= self.density || skipped {
                e.blocked = false;
            }
            e.unit_start = now;
            e.count = 0;
        }
        e.count = e.count.saturating_add(1);
        e.last_seen = now;
        let over = e.count > self.density || e.prev.saturating_add(e.count) > self.density * 2;
        if over {
            if e.blocked {
                return -1;
            }
            e.blocked = true;
            crate::klog!(
                self.log_level,
                "pike",
                "PIKE - BLOCKing ip {ip}, count {}",
                e.count
            );
            return -2;
        }
        if e.blocked { -1 } else { 1 }
    }

    fn purge(&self, now: Instant) {
        let mut m = match self.ips.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.retain(|_, e| now.saturating_duration_since(e.last_seen) < self.remove_latency);
    }
}

fn register(r: &mut Registrar<'_>) {
    r.timers.push(TimerDef {
        name: "pike-clean",
        every: Duration::from_secs(5),
        func: |c: &mut Ctx| c.core.m.pike.purge(Instant::now()),
    });
    r.kemi("pike", "pike_check_req", &[], RetType::Int, |c, _| {
        Value::Int(c.core.m.pike.check(c.rcv.src.ip(), Instant::now()))
    })
    .native("pike_check_req", RouteMask(1 | 4 | 128));
    // Kamailio parses the address with its IPv4-only `str2ip`: anything else is -1.
    r.kemi("pike", "pike_check_ip", &[S], RetType::Int, |c, a| {
        let text = super::core::actions::arg_bytes(a, 0);
        let ip = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.parse::<std::net::Ipv4Addr>().ok());
        match ip {
            Some(ip) => Value::Int(c.core.m.pike.check(IpAddr::V4(ip), Instant::now())),
            None => {
                crate::klog!(
                    crate::log::L_ERR,
                    "pike",
                    "failed to parse ip address: {}",
                    String::from_utf8_lossy(&text)
                );
                Value::Int(-1)
            }
        }
    })
    .native("pike_check_ip", RouteMask(1 | 4 | 128));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_over_density_and_unblocks_after_a_quiet_unit() {
        let st = PikeState {
            density: 3,
            ..PikeState::default()
        };
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(st.check(ip, t0), 1);
        assert_eq!(st.check(ip, t0), 1);
        assert_eq!(st.check(ip, t0), 1);
        assert_eq!(st.check(ip, t0), -2);
        assert_eq!(st.check(ip, t0), -1);
        // Another address is not affected.
        assert_eq!(st.check("10.0.0.2".parse().unwrap(), t0), 1);
        // Two quiet units later it is allowed again.
        assert_eq!(st.check(ip, t0 + Duration::from_secs(5)), 1);
    }
}
