//! The native routing engine: runs the compiled `kamailio.cfg` program on the register VM.

use crate::core::Core;
use crate::ctx::Ctx;
use crate::engine::{EngineFactory, Outcome, RouteEngine, RouteTarget};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use vm::RouteKind;
use vm::interp::{Limits, Stack, Vm};
use vm::program::Program;

/// One worker's native engine (the program is shared, read-only).
pub struct NativeEngine {
    program: Arc<Program>,
    limits: Limits,
    /// Register stacks reused across messages; a route run from inside another (tm running
    /// branch_route from t_relay) takes its own.
    stacks: RefCell<Vec<Stack>>,
}

impl NativeEngine {
    pub fn new(program: Arc<Program>, core: &Core) -> NativeEngine {
        NativeEngine {
            program,
            limits: Limits {
                max_while_loops: core.cfg.max_while_loops,
                max_recursive_level: core.cfg.max_recursive_level.max(1),
            },
            stacks: RefCell::new(Vec::new()),
        }
    }

    fn lookup(&self, target: RouteTarget<'_>) -> Option<(u32, RouteKind)> {
        let (kind, name) = match target {
            RouteTarget::Request => (RouteKind::Request, None),
            RouteTarget::Reply => (RouteKind::CoreOnReply, None),
            RouteTarget::OnSend => (RouteKind::OnSend, None),
            RouteTarget::Failure(n) => (RouteKind::Failure, Some(n)),
            RouteTarget::Branch(n) => (RouteKind::Branch, Some(n)),
            RouteTarget::OnReply(n) => (RouteKind::TmOnReply, Some(n)),
            RouteTarget::BranchFailure(n) => (RouteKind::Event, Some(n)),
            RouteTarget::Event(n) => (RouteKind::Event, Some(n)),
        };
        let id = self.program.route(kind, name)?;
        let run_kind = match target {
            RouteTarget::BranchFailure(_) => RouteKind::BranchFailure,
            _ => kind,
        };
        Some((id, run_kind))
    }
}

impl RouteEngine for NativeEngine {
    fn run(&self, ctx: &mut Ctx, target: RouteTarget<'_>) -> Outcome {
        let Some((id, kind)) = self.lookup(target) else {
            return Outcome::default();
        };
        let saved = ctx.route;
        ctx.route = kind;
        let stack = self.stacks.borrow_mut().pop().unwrap_or_default();
        let mut vm = Vm::with_stack(&self.program, self.limits, stack);
        let r = vm.run(ctx, id);
        ctx.route = saved;
        ctx.last_rc = vm.last_rc();
        let mut pool = self.stacks.borrow_mut();
        if pool.len() < 8 {
            pool.push(vm.into_stack());
        }
        drop(pool);
        if r.drop {
            ctx.drop = true;
        }
        Outcome {
            code: r.code,
            exit: r.exit,
            drop: r.drop,
            missing: false,
        }
    }

    fn exists(&self, target: RouteTarget<'_>) -> bool {
        self.lookup(target).is_some()
    }

    fn name(&self) -> &'static str {
        "native"
    }
}

/// Creates each worker's native engine over one shared program.
pub struct NativeFactory {
    pub program: Arc<Program>,
}

impl EngineFactory for NativeFactory {
    fn create(&self, core: &'static Core, _rank: i32) -> Result<Rc<dyn RouteEngine>, String> {
        Ok(Rc::new(NativeEngine::new(self.program.clone(), core)))
    }
}
