//! What the execution core needs from its host (the runtime's per-worker context).

use crate::ksr::KsrTable;
use crate::pv::PvRegistry;

/// The host context every KSR function and pseudo-variable accessor receives.
///
/// The registries are built once at start-up and leaked, so a function can reach them while
/// holding `&mut self` without reference counting.
pub trait Host: Sized + 'static {
    fn ksr_table(&self) -> &'static KsrTable<Self>;
    fn pv_registry(&self) -> &'static PvRegistry<Self>;
    /// Reports a run-time script error (logged by the host at error level).
    fn script_error(&mut self, _msg: &str) {}
}
