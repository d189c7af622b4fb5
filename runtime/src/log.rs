//! Kamailio log levels on top of `tracing`.
//!
//! Kamailio filters log lines by a numeric level (`debug=` and `KSR.get_debug()`), from
//! L_ALERT (-5) to L_DBG (3). The current threshold is one atomic read, so a disabled `xlog`
//! costs nothing; enabled lines become `tracing` events whose formatter prints Kamailio's
//! stderr layout (` 1(4242) INFO: <script>: text`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

pub const L_ALERT: i32 = -5;
pub const L_BUG: i32 = -4;
pub const L_CRIT2: i32 = -3;
pub const L_CRIT: i32 = -2;
pub const L_ERR: i32 = -1;
pub const L_WARN: i32 = 0;
pub const L_NOTICE: i32 = 1;
pub const L_INFO: i32 = 2;
pub const L_DBG: i32 = 3;

static DEBUG_LEVEL: AtomicI32 = AtomicI32::new(L_WARN);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Sets the threshold (`debug=` global parameter, `-d` flags, RPC).
pub fn set_level(level: i32) {
    DEBUG_LEVEL.store(level, Ordering::Relaxed);
}

pub fn level() -> i32 {
    DEBUG_LEVEL.load(Ordering::Relaxed)
}

thread_local! {
    /// kex `setdebug`: this worker's own level, overriding the global one until `resetdebug`
    /// (Kamailio's per-process local debug level).
    static LOCAL_LEVEL: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

pub fn set_local_level(level: Option<i32>) {
    LOCAL_LEVEL.with(|l| l.set(level));
}

/// The level in force for this thread: its local one, else the global.
pub fn effective_level() -> i32 {
    LOCAL_LEVEL
        .with(|l| l.get())
        .unwrap_or_else(|| DEBUG_LEVEL.load(Ordering::Relaxed))
}

#[inline]
pub fn enabled(level: i32) -> bool {
    level <= effective_level()
}

/// The name Kamailio prints for a level.
pub fn level_name(level: i32) -> &'static str {
    match level {
        i32::MIN..=L_ALERT => "ALERT",
        L_BUG => "BUG",
        L_CRIT2 | L_CRIT => "CRITICAL",
        L_ERR => "ERROR",
        L_WARN => "WARNING",
        L_NOTICE => "NOTICE",
        L_INFO => "INFO",
        _ => "DEBUG",
    }
}

/// Parses `L_INFO`-style names and plain numbers, as `xlog("L_INFO", ...)` accepts them.
pub fn parse_level(name: &str) -> Option<i32> {
    let n = name.trim();
    Some(match n {
        "L_ALERT" => L_ALERT,
        "L_BUG" => L_BUG,
        "L_CRIT2" => L_CRIT2,
        "L_CRIT" => L_CRIT,
        "L_ERR" => L_ERR,
        "L_WARN" => L_WARN,
        "L_NOTICE" => L_NOTICE,
        "L_INFO" => L_INFO,
        "L_DBG" => L_DBG,
        _ => return n.parse().ok(),
    })
}

/// Emits one log line at a Kamailio level. `module` is what Kamailio prints in `<...>`
/// (`script` for xlog, `core`, or a module name).
pub fn emit(level: i32, module: &str, msg: &str) {
    if !enabled(level) {
        return;
    }
    let msg = msg.strip_suffix('\n').unwrap_or(msg);
    match level {
        i32::MIN..=L_ERR => tracing::error!(klevel = level, kmod = module, "{msg}"),
        L_WARN => tracing::warn!(klevel = level, kmod = module, "{msg}"),
        L_NOTICE | L_INFO => tracing::info!(klevel = level, kmod = module, "{msg}"),
        _ => tracing::debug!(klevel = level, kmod = module, "{msg}"),
    }
}

/// Log with a Kamailio level and `format!` arguments, checking the level first.
#[macro_export]
macro_rules! klog {
    ($level:expr, $module:expr, $($arg:tt)+) => {
        if $crate::log::enabled($level) {
            $crate::log::emit($level, $module, &format!($($arg)+));
        }
    };
}

thread_local! {
    static PROC_NO: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// Sets the process number printed at the start of each line (Kamailio's process rank).
pub fn set_proc_no(n: i32) {
    PROC_NO.with(|p| p.set(n));
}

/// Installs the Kamailio-style formatter as the global `tracing` subscriber. Safe to call
/// more than once (later calls only update the level).
pub fn install(level: i32) {
    set_level(level);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    use tracing_subscriber::prelude::*;
    let _ = tracing_subscriber::registry()
        .with(KamailioLayer)
        .try_init();
}

struct KamailioLayer;

#[derive(Default)]
struct Fields {
    klevel: Option<i64>,
    kmod: Option<String>,
    message: String,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "klevel" {
            self.klevel = Some(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "kmod" => self.kmod = Some(value.to_string()),
            "message" => self.message.push_str(value),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else if field.name() == "kmod" {
            self.kmod = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for KamailioLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let level = f
            .klevel
            .map(|l| l as i32)
            .unwrap_or(match *event.metadata().level() {
                tracing::Level::ERROR => L_ERR,
                tracing::Level::WARN => L_WARN,
                tracing::Level::INFO => L_INFO,
                _ => L_DBG,
            });
        if !enabled(level) {
            return;
        }
        let module = f.kmod.as_deref().unwrap_or("core");
        let line = format!(
            "{:2}({}) {}: <{}>: {}\n",
            PROC_NO.with(|p| p.get()),
            std::process::id(),
            level_name(level),
            module,
            f.message
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_and_parsing() {
        assert_eq!(parse_level("L_INFO"), Some(L_INFO));
        assert_eq!(parse_level("-1"), Some(L_ERR));
        assert_eq!(parse_level("L_NOPE"), None);
        assert_eq!(level_name(L_ERR), "ERROR");
        assert_eq!(level_name(L_DBG), "DEBUG");
        assert_eq!(level_name(7), "DEBUG");
    }
}
