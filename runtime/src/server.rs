//! Starting and stopping the server: sockets, worker threads, the timer thread.

use crate::core::{Core, Setup};
use crate::ctx::Ctx;
use crate::engine::EngineFactory;
use crate::log::{self, L_CRIT, L_ERR, L_INFO};
use crate::transport::tcp::{TcpLimits, TcpManager};
use crate::transport::{self, Destination, Listener, Proto, Received, SendError, Sender, SentInfo};
use std::net::{TcpListener, UdpSocket};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The real network transport.
pub struct NetSender {
    listeners: Vec<Listener>,
    udp: Vec<Option<Arc<UdpSocket>>>,
    tcp: Arc<TcpManager>,
}

impl Sender for NetSender {
    fn send(&self, dst: &Destination, data: &[u8]) -> Result<SentInfo, SendError> {
        match dst.proto {
            Proto::Udp => {
                let id = transport::choose_listener(&self.listeners, dst)
                    .ok_or(SendError::NoSocket(dst.proto, dst.addr))?;
                let sock = self
                    .udp
                    .get(id)
                    .and_then(|s| s.as_ref())
                    .ok_or(SendError::NoSocket(dst.proto, dst.addr))?;
                sock.send_to(data, dst.addr)
                    .map_err(|e| SendError::Io(dst.addr, e))?;
                Ok(SentInfo {
                    listener: id,
                    local: self.listeners[id].addr,
                    conn: None,
                })
            }
            Proto::Tcp => self.tcp.send(dst, data),
            other => Err(SendError::Unsupported(other)),
        }
    }

    fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
}

/// A running server.
pub struct Server {
    pub core: &'static Core,
    threads: Vec<JoinHandle<()>>,
    tcp: Arc<TcpManager>,
}

impl Server {
    /// Binds the sockets, builds the core, creates every worker's engine and starts serving.
    /// Fails without leaving threads behind when a socket cannot be bound, a module cannot
    /// initialise or an engine cannot load its script.
    pub fn start(
        setup: Setup,
        factory: Arc<dyn EngineFactory>,
        workdir: std::path::PathBuf,
    ) -> Result<Server, String> {
        log::install(setup.cfg.debug);
        for n in &setup.notices {
            crate::klog!(L_INFO, "core", "{n}");
        }
        let listeners = crate::socket::resolve_listeners(&setup.cfg)?;
        let mut udp: Vec<Option<Arc<UdpSocket>>> = Vec::new();
        let mut tcp_socks: Vec<(usize, TcpListener)> = Vec::new();
        for l in &listeners {
            match l.proto {
                Proto::Udp => {
                    let s = transport::udp::bind(l)
                        .map_err(|e| format!("cannot bind {}: {e}", l.sock_str()))?;
                    udp.push(Some(Arc::new(s)));
                }
                Proto::Tcp => {
                    let s = TcpListener::bind(l.addr)
                        .map_err(|e| format!("cannot bind {}: {e}", l.sock_str()))?;
                    tcp_socks.push((l.id, s));
                    udp.push(None);
                }
                _ => udp.push(None),
            }
        }
        let (tcp_tx, tcp_rx) = crossbeam_channel::bounded::<Received>(4096);
        let cfg = &setup.cfg;
        let limits = TcpLimits {
            max_msg: cfg.msg_recv_max_size.max(65535),
            max_connections: cfg.tcp_max_connections as usize,
            idle: Duration::from_secs(cfg.tcp_connection_lifetime.max(1) as u64),
            read_timeout: Duration::from_secs(cfg.tcp_msg_read_timeout.max(1) as u64),
            connect_timeout: Duration::from_secs(cfg.tcp_connect_timeout.max(1) as u64),
            send_timeout: Duration::from_secs(cfg.tcp_send_timeout.max(1) as u64),
            accept_no_cl: cfg.tcp_accept_no_cl,
        };
        let tcp = TcpManager::new(
            listeners.clone(),
            limits,
            Box::new(move |r| {
                if tcp_tx.send(r).is_err() {
                    crate::klog!(L_ERR, "core", "tcp: worker queue closed, message dropped");
                }
            }),
        );
        let sender = NetSender {
            listeners: listeners.clone(),
            udp: udp.clone(),
            tcp: Arc::clone(&tcp),
        };
        let children = setup.cfg.children;
        let tcp_workers = setup.cfg.tcp_workers();
        let core = setup.into_core(listeners.clone(), Box::new(sender), workdir)?;
        startup_events(core, &*factory);

        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let mut threads = Vec::new();
        let mut rank = 1;
        let mut expected = 0;
        for l in listeners.iter().filter(|l| l.proto == Proto::Udp) {
            let Some(sock) = udp.get(l.id).cloned().flatten() else {
                continue;
            };
            for _ in 0..children {
                let (sock, l, f, ready) = (
                    Arc::clone(&sock),
                    l.clone(),
                    Arc::clone(&factory),
                    ready_tx.clone(),
                );
                let r = rank;
                threads.push(spawn(format!("udp-{r}"), move || {
                    let Some(mut ctx) = worker_ctx(core, r, &*f, &ready) else {
                        return;
                    };
                    let stop = || core.shutdown.load(Ordering::Relaxed);
                    let res = transport::udp::recv_loop(&sock, &l, &stop, &mut |rcv| {
                        handle(&mut ctx, rcv)
                    });
                    if let Err(e) = res {
                        crate::klog!(L_CRIT, "core", "udp receiver {} failed: {e}", l.sock_str());
                    }
                })?);
                rank += 1;
                expected += 1;
            }
        }
        if !tcp_socks.is_empty() {
            for _ in 0..tcp_workers {
                let (rx, f, ready) = (tcp_rx.clone(), Arc::clone(&factory), ready_tx.clone());
                let r = rank;
                threads.push(spawn(format!("tcp-{r}"), move || {
                    let Some(mut ctx) = worker_ctx(core, r, &*f, &ready) else {
                        return;
                    };
                    while !core.shutdown.load(Ordering::Relaxed) {
                        match rx.recv_timeout(Duration::from_millis(500)) {
                            Ok(rcv) => handle(&mut ctx, rcv),
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                            Err(_) => break,
                        }
                    }
                })?);
                rank += 1;
                expected += 1;
            }
        }
        {
            let (f, ready) = (Arc::clone(&factory), ready_tx.clone());
            let r = rank;
            threads.push(spawn("timer".to_string(), move || {
                let Some(mut ctx) = worker_ctx(core, r, &*f, &ready) else {
                    return;
                };
                timer_loop(&mut ctx);
            })?);
            expected += 1;
        }
        for td in core.hooks.threads.iter().copied() {
            let (f, ready) = (Arc::clone(&factory), ready_tx.clone());
            rank += 1;
            let r = rank;
            threads.push(spawn(td.name.to_string(), move || {
                let Some(mut ctx) = worker_ctx(core, r, &*f, &ready) else {
                    return;
                };
                (td.run)(&mut ctx);
            })?);
            expected += 1;
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..expected {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(_) => {
                    failure.get_or_insert("a worker exited during start-up".into());
                    break;
                }
            }
        }
        let server = Server { core, threads, tcp };
        if let Some(e) = failure {
            server.stop();
            return Err(e);
        }
        for (id, sock) in tcp_socks {
            server
                .tcp
                .serve(id, sock)
                .map_err(|e| format!("tcp accept thread: {e}"))?;
        }
        for l in &core.listeners {
            crate::klog!(L_INFO, "core", "listening on {}", l.sock_str());
        }
        let mut server = server;
        for start in &core.hooks.services {
            server.threads.extend(start(core));
        }
        Ok(server)
    }

    /// Asks every thread to stop and waits for them.
    pub fn stop(mut self) {
        self.core.shutdown.store(true, Ordering::SeqCst);
        self.tcp.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|e| format!("cannot start thread {name}: {e}"))
}

/// Creates a worker's context and engine; reports readiness (or the error) to the starter.
fn worker_ctx(
    core: &'static Core,
    rank: i32,
    factory: &dyn EngineFactory,
    ready: &mpsc::Sender<Result<(), String>>,
) -> Option<Ctx> {
    log::set_proc_no(rank);
    let mut ctx = Ctx::new(core, rank);
    match factory.create(core, rank) {
        Ok(e) => ctx.engine = Some(e),
        Err(e) => {
            let _ = ready.send(Err(e));
            return None;
        }
    }
    for h in &core.hooks.worker_init {
        h(&mut ctx);
    }
    if rank == 1 {
        run_event(&mut ctx, "core:worker-one-init");
    }
    let _ = ready.send(Ok(()));
    Some(ctx)
}

/// Runs `event_route[name]` (when the routing has it) outside any SIP message, as Kamailio
/// does for its start-up events.
fn run_event(ctx: &mut Ctx, name: &str) {
    let target = crate::engine::RouteTarget::Event(name);
    if ctx.engine.as_ref().is_some_and(|e| e.exists(target)) {
        ctx.route = vm::RouteKind::Event;
        ctx.run_route(target);
        ctx.route = vm::RouteKind::Request;
    }
}

/// `event_route[htable:mod-init]`: once, before any worker serves (Kamailio runs it when the
/// module initialises, before forking).
fn startup_events(core: &'static Core, factory: &dyn EngineFactory) {
    if !core.is_loaded("htable") {
        return;
    }
    let mut ctx = Ctx::new(core, 0);
    match factory.create(core, 0) {
        Ok(e) => ctx.engine = Some(e),
        Err(e) => {
            crate::klog!(L_ERR, "core", "htable:mod-init not run: {e}");
            return;
        }
    }
    run_event(&mut ctx, "htable:mod-init");
}

/// Processes one message, containing any panic so the worker keeps serving.
fn handle(ctx: &mut Ctx, rcv: Received) {
    let src = rcv.src;
    if std::panic::catch_unwind(AssertUnwindSafe(|| crate::receive::process(ctx, rcv))).is_err() {
        crate::klog!(
            L_CRIT,
            "core",
            "internal error while processing a message from {src}; the worker goes on"
        );
    }
}

/// Runs the module timers at their intervals.
fn timer_loop(ctx: &mut Ctx) {
    let core = ctx.core;
    let start = Instant::now();
    let mut next: Vec<Instant> = core.timers.iter().map(|t| start + t.every).collect();
    while !core.shutdown.load(Ordering::Relaxed) {
        let now = Instant::now();
        for (t, due) in core.timers.iter().zip(next.iter_mut()) {
            if now >= *due {
                let func = t.func;
                if std::panic::catch_unwind(AssertUnwindSafe(|| func(ctx))).is_err() {
                    crate::klog!(L_CRIT, "core", "timer {} failed", t.name);
                }
                *due = now + t.every;
            }
        }
        let sleep = next
            .iter()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        std::thread::sleep(sleep.max(Duration::from_millis(1)));
    }
    for h in &core.hooks.shutdown {
        let h = *h;
        if std::panic::catch_unwind(AssertUnwindSafe(|| h(ctx))).is_err() {
            crate::klog!(L_CRIT, "core", "shutdown hook failed");
        }
    }
}
