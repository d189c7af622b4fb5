//! An offline server: the real core, modules and routing engine, with a transport that
//! records instead of sending. Used by tests, benches and `ksr bench`.

use crate::core::{Core, Setup};
use crate::ctx::Ctx;
use crate::engine::EngineFactory;
use crate::transport::{
    Destination, Listener, Proto, Received, RecordingSender, SendError, Sender, SentInfo,
};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

struct Shared(Arc<RecordingSender>);

impl Sender for Shared {
    fn send(&self, dst: &Destination, data: &[u8]) -> Result<SentInfo, SendError> {
        self.0.send(dst, data)
    }
    fn listeners(&self) -> &[Listener] {
        self.0.listeners()
    }
}

pub struct Harness {
    pub core: &'static Core,
    pub ctx: Ctx,
    rec: Arc<RecordingSender>,
}

impl Harness {
    /// Builds the core from `setup` (listeners as configured, nothing bound) and one worker
    /// context running the engine from `factory`.
    pub fn new(setup: Setup, factory: &dyn EngineFactory) -> Result<Harness, String> {
        let listeners = crate::socket::resolve_listeners(&setup.cfg)?;
        let rec = Arc::new(RecordingSender::new(listeners.clone()));
        let workdir = std::env::current_dir().unwrap_or_default();
        let core = setup.into_core(listeners, Box::new(Shared(Arc::clone(&rec))), workdir)?;
        let ctx = worker_ctx(core, factory, 1)?;
        Ok(Harness { core, ctx, rec })
    }

    /// Processes one message as if it arrived over UDP on the first listener from `src`.
    pub fn feed(&mut self, data: Bytes, src: SocketAddr) {
        feed_ctx(&mut self.ctx, data, src);
    }

    /// The recording transport (shared by extra workers made with [`worker_ctx`]).
    pub fn recorder(&self) -> Arc<RecordingSender> {
        Arc::clone(&self.rec)
    }

    /// What was sent since the last call.
    pub fn take_sent(&self) -> Vec<(Destination, Bytes)> {
        self.rec.take()
    }
}

/// Another worker of an offline core (for multi-worker benches): its own context and engine
/// instance, the worker init hooks run.
pub fn worker_ctx(
    core: &'static Core,
    factory: &dyn EngineFactory,
    rank: i32,
) -> Result<Ctx, String> {
    let mut ctx = Ctx::new(core, rank);
    ctx.engine = Some(factory.create(core, rank)?);
    for h in &core.hooks.worker_init {
        h(&mut ctx);
    }
    Ok(ctx)
}

/// Processes one message in `ctx` as if it arrived over UDP on the first listener from `src`.
pub fn feed_ctx(ctx: &mut Ctx, data: Bytes, src: SocketAddr) {
    let (local, listener) = ctx
        .core
        .listeners
        .first()
        .map(|l| (l.addr, l.id))
        .unwrap_or((src, 0));
    crate::receive::process(
        ctx,
        Received {
            data,
            src,
            local,
            proto: Proto::Udp,
            listener,
            conn: None,
        },
    );
}
