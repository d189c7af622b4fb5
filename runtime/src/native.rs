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

impl NativeEngine {
    fn run_id(&self, ctx: &mut Ctx, id: u32, kind: RouteKind) -> Outcome {
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
}

impl RouteEngine for NativeEngine {
    fn run(&self, ctx: &mut Ctx, target: RouteTarget<'_>) -> Outcome {
        match self.lookup(target) {
            Some((id, kind)) => self.run_id(ctx, id, kind),
            None => Outcome::default(),
        }
    }

    fn exists(&self, target: RouteTarget<'_>) -> bool {
        self.lookup(target).is_some()
    }

    fn name(&self) -> &'static str {
        "native"
    }

    fn run_sub(&self, ctx: &mut Ctx, name: &str) -> Option<Outcome> {
        let id = self.program.sub_route(name.as_bytes())?;
        Some(self.run_id(ctx, id, ctx.route))
    }

    fn has_sub(&self, name: &str) -> bool {
        self.program.sub_route(name.as_bytes()).is_some()
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

/// A KEMI engine with the cfg's native routing blocks beside it (Kamailio's hybrid configs).
/// As in Kamailio, a native `request_route` / `reply_route` / `onsend_route` in the cfg wins
/// over the script's entry point; for every other target the script's function is used when
/// it exists, else the cfg's block of that name (`event_route[xhttp:request]`,
/// `failure_route[X]` armed by native code ...).
pub struct HybridFactory {
    pub kemi: Arc<dyn EngineFactory>,
    pub native: NativeFactory,
}

impl EngineFactory for HybridFactory {
    fn create(&self, core: &'static Core, rank: i32) -> Result<Rc<dyn RouteEngine>, String> {
        Ok(Rc::new(HybridEngine {
            kemi: self.kemi.create(core, rank)?,
            native: self.native.create(core, rank)?,
        }))
    }
}

struct HybridEngine {
    kemi: Rc<dyn RouteEngine>,
    native: Rc<dyn RouteEngine>,
}

impl HybridEngine {
    fn pick(&self, target: RouteTarget<'_>) -> &Rc<dyn RouteEngine> {
        let main = matches!(
            target,
            RouteTarget::Request | RouteTarget::Reply | RouteTarget::OnSend
        );
        let native = if main {
            self.native.exists(target)
        } else {
            !self.kemi.exists(target) && self.native.exists(target)
        };
        if native { &self.native } else { &self.kemi }
    }
}

impl RouteEngine for HybridEngine {
    fn run(&self, ctx: &mut Ctx, target: RouteTarget<'_>) -> Outcome {
        self.pick(target).clone().run(ctx, target)
    }

    fn exists(&self, target: RouteTarget<'_>) -> bool {
        self.pick(target).exists(target)
    }

    fn name(&self) -> &'static str {
        self.kemi.name()
    }

    fn run_sub(&self, ctx: &mut Ctx, name: &str) -> Option<Outcome> {
        self.native.run_sub(ctx, name)
    }

    fn has_sub(&self, name: &str) -> bool {
        self.native.has_sub(name)
    }
}
