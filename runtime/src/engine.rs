//! The routing-engine interface: what the core calls to run routing logic, whatever language
//! it is written in (native cfg through the VM, or a KEMI script).

use crate::core::Core;
use crate::ctx::Ctx;
use std::rc::Rc;

/// Which routing logic to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTarget<'a> {
    /// `request_route` / `ksr_request_route`.
    Request,
    /// `reply_route` / `ksr_reply_route`.
    Reply,
    /// `onsend_route` / `ksr_onsend_route`.
    OnSend,
    /// `failure_route[name]` / the KEMI callback `name`.
    Failure(&'a str),
    /// `branch_route[name]`.
    Branch(&'a str),
    /// `onreply_route[name]`.
    OnReply(&'a str),
    /// `event_route[tm:branch-failure:name]` / `t_on_branch_failure` callback.
    BranchFailure(&'a str),
    /// `event_route[module:event]` / a module `event_callback`.
    Event(&'a str),
}

/// How a routing run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The return code (`return N`, last function's code, or 1 when the block just ended).
    pub code: i32,
    /// `exit`/`drop` (or `KSR.x.exit()`) stopped the script.
    pub exit: bool,
    /// `drop` was requested.
    pub drop: bool,
    /// The target does not exist in this engine (nothing ran).
    pub missing: bool,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            code: 1,
            exit: false,
            drop: false,
            missing: true,
        }
    }
}

/// A worker's instance of a routing engine. Engines are re-entrant: a KSR function called
/// by a route (e.g. `t_relay`) may run another route (`branch_route`) through the same
/// engine while the first is still running.
pub trait RouteEngine {
    /// Runs `target` for the message in `ctx`. Script errors are logged by the engine and end
    /// the run (the outcome says how).
    fn run(&self, ctx: &mut Ctx, target: RouteTarget<'_>) -> Outcome;
    /// True when `target` exists (a `failure_route[X]` block, a KEMI function `X`).
    fn exists(&self, target: RouteTarget<'_>) -> bool;
    /// `native`, `lua`, `python`, `jsdt`.
    fn name(&self) -> &'static str;
}

/// Creates the engine instance of each worker.
pub trait EngineFactory: Send + Sync {
    fn create(&self, core: &'static Core, rank: i32) -> Result<Rc<dyn RouteEngine>, String>;
}
