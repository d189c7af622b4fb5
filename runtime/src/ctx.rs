//! The per-worker execution context every KSR function and pseudo-variable receives.
//!
//! One `Ctx` lives as long as its worker thread and is reused for every message (no
//! per-message setup allocation): [`Ctx::begin`] resets the per-message part. Per-worker state
//! (`$var`, the KEMI PV cache, the routing engine instance) survives between messages.

use crate::core::Core;
use crate::engine::RouteEngine;
use crate::sip::SipMsg;
use crate::transport::{Proto, Received};
use bytes::Bytes;
use std::net::SocketAddr;
use std::rc::Rc;
use vm::{RouteKind, Value};

/// Where the current message came from.
#[derive(Clone, Debug)]
pub struct RecvInfo {
    pub src: SocketAddr,
    pub local: SocketAddr,
    pub proto: Proto,
    pub listener: usize,
    pub conn: Option<u64>,
}

impl Default for RecvInfo {
    fn default() -> Self {
        let lo = SocketAddr::from(([127, 0, 0, 1], 5060));
        RecvInfo {
            src: lo,
            local: lo,
            proto: Proto::Udp,
            listener: 0,
            conn: None,
        }
    }
}

/// `set_forward_no_connect()` and friends: per-message transport options.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendFlags {
    pub forward_no_connect: bool,
    pub forward_close: bool,
    pub reply_no_connect: bool,
    pub reply_close: bool,
}

/// What `onsend_route` sees: where the message goes and the bytes that will be sent.
#[derive(Clone, Debug)]
pub struct SendInfo {
    pub dst: crate::transport::Destination,
    pub local: Option<std::net::SocketAddr>,
    pub buf: Bytes,
}

/// Per-message options set by core actions.
#[derive(Clone, Debug, Default)]
pub struct MsgOpts {
    /// `force_rport()`: answer to the source port whatever the top Via says.
    pub force_rport: bool,
    /// `add_local_rport()`: put `;rport` in the Via this proxy adds.
    pub local_rport: bool,
    /// `set_advertised_address()` / `set_advertised_port()`.
    pub advertised_address: Option<Bytes>,
    pub advertised_port: Option<u16>,
}

/// An additional destination set by `append_branch()`, `lookup()`, ...
#[derive(Clone, Debug, Default)]
pub struct Branch {
    pub uri: Bytes,
    pub dst_uri: Option<Bytes>,
    pub path: Option<Bytes>,
    /// q-value times 1000 (Kamailio's qvalue_t); -1 = not set.
    pub q: i32,
    pub flags: u64,
    pub force_socket: Option<usize>,
    pub instance: Option<Bytes>,
    pub ruid: Option<Bytes>,
    pub location_ua: Option<Bytes>,
}

pub struct Ctx {
    pub core: &'static Core,
    /// This worker's routing engine (native VM or a KEMI interpreter). `None` only while the
    /// worker is being set up.
    pub engine: Option<Rc<dyn RouteEngine>>,
    /// Worker number (Kamailio's process rank).
    pub rank: i32,

    // ---- per message ----
    pub msg: SipMsg,
    pub rcv: RecvInfo,
    /// Kind of the routing block being executed.
    pub route: RouteKind,
    /// Message flags (`setflag`).
    pub flags: u64,
    /// Flags of branch 0 (`setbflag`).
    pub bflags: u64,
    /// `$du`.
    pub dst_uri: Option<Bytes>,
    /// Path vector of the R-URI branch.
    pub path_vec: Option<Bytes>,
    /// q-value of the R-URI branch (x1000, -1 = unset).
    pub ruri_q: i32,
    /// `force_send_socket()` / `$fs`.
    pub force_socket: Option<usize>,
    pub send_flags: SendFlags,
    pub opts: MsgOpts,
    /// Set while `onsend_route` runs (`$snd(...)`).
    pub snd: Option<SendInfo>,
    /// Branches beyond the R-URI one.
    pub branches: Vec<Branch>,
    /// `drop` was requested for this message.
    pub drop: bool,
    /// Headers added to locally generated replies (`append_to_reply`).
    pub reply_hdrs: Vec<Bytes>,
    /// Body of locally generated replies (`set_reply_body`; its Content-Type is in
    /// `reply_hdrs`).
    pub reply_body: Option<Bytes>,
    /// When processing started (for `$TV`, latency logs).
    pub started: std::time::Instant,

    /// `$avp(...)` values of this message, newest first (Kamailio's AVP list order).
    pub avps: Vec<(Bytes, Value)>,
    /// `$xavp(...)` lists of this message.
    pub xavps: crate::modules::pv::xavp::XavpList,
    /// `$xavu(...)`: xavps with unique names.
    pub xavus: crate::modules::pv::xavp::XavpList,
    /// `$xavi(...)`: xavps with case-insensitive names (kept lowercased).
    pub xavis: crate::modules::pv::xavp::XavpList,
    /// Return code of the last action, for KEMI `$rc`-like reads outside the VM.
    pub last_rc: i32,
    /// tm's per-message state: the current transaction, `t_on_*` routes armed, timers.
    pub tm: crate::modules::tm::TmCtx,
    /// rr's per-message state: Record-Route added, parameters pending.
    pub rr: crate::modules::rr::RrCtx,
    /// corex's per-message state: extended flags (`setxflag`), internal flags
    /// (`msg_iflag_set`).
    pub corex: crate::modules::corex::CorexCtx,

    // ---- per worker ----
    /// Script flags (`setsflag`), kept across messages like Kamailio's per-process sflags.
    pub sflags: u64,
    /// `$var(...)` values of this worker, by slot (see `modules::pv::vars`).
    pub vars: Vec<Value>,
    /// Pseudo-variable names parsed for `KSR.pv.*` (bounded, see `modules::core::pvapi`).
    pub pv_cache: std::collections::HashMap<Bytes, Rc<vm::pv::PvSpec>>,
    /// Format strings parsed for KEMI logging (bounded, see `modules::xlog`).
    pub fmt_cache: std::collections::HashMap<Bytes, Rc<vm::pv::Format>>,
}

impl Ctx {
    /// A context for worker `rank`, holding a faked message until the first real one.
    pub fn new(core: &'static Core, rank: i32) -> Ctx {
        Ctx {
            core,
            engine: None,
            rank,
            msg: SipMsg::faked(),
            rcv: RecvInfo::default(),
            route: RouteKind::Request,
            flags: 0,
            bflags: 0,
            dst_uri: None,
            path_vec: None,
            ruri_q: -1,
            force_socket: None,
            send_flags: SendFlags::default(),
            opts: MsgOpts::default(),
            snd: None,
            branches: Vec::new(),
            drop: false,
            reply_hdrs: Vec::new(),
            reply_body: None,
            started: std::time::Instant::now(),
            avps: Vec::new(),
            xavps: Default::default(),
            xavus: Default::default(),
            xavis: Default::default(),
            last_rc: 1,
            tm: Default::default(),
            rr: Default::default(),
            corex: Default::default(),
            sflags: 0,
            vars: Vec::new(),
            pv_cache: std::collections::HashMap::new(),
            fmt_cache: std::collections::HashMap::new(),
        }
    }

    /// Resets the per-message state for `msg` received as `rcv`.
    pub fn begin(&mut self, msg: SipMsg, rcv: RecvInfo) {
        self.msg = msg;
        self.rcv = rcv;
        self.route = RouteKind::Request;
        self.flags = 0;
        self.bflags = 0;
        self.dst_uri = None;
        self.path_vec = None;
        self.ruri_q = -1;
        self.force_socket = None;
        self.send_flags = SendFlags::default();
        self.opts = MsgOpts::default();
        self.snd = None;
        self.branches.clear();
        self.drop = false;
        self.reply_hdrs.clear();
        self.reply_body = None;
        self.started = std::time::Instant::now();
        self.avps.clear();
        self.xavps.clear();
        self.xavus.clear();
        self.xavis.clear();
        self.last_rc = 1;
        self.tm = Default::default();
        self.rr = Default::default();
        self.corex = Default::default();
    }

    /// Runs a routing target through this worker's engine.
    pub fn run_route(&mut self, target: crate::engine::RouteTarget<'_>) -> crate::engine::Outcome {
        match self.engine.clone() {
            Some(e) => e.run(self, target),
            None => crate::engine::Outcome::default(),
        }
    }
}

impl RecvInfo {
    pub fn from_received(r: &Received) -> RecvInfo {
        RecvInfo {
            src: r.src,
            local: r.local,
            proto: r.proto,
            listener: r.listener,
            conn: r.conn,
        }
    }
}

impl vm::Host for Ctx {
    fn ksr_table(&self) -> &'static vm::KsrTable<Self> {
        self.core.ksr
    }

    fn pv_registry(&self) -> &'static vm::pv::PvRegistry<Self> {
        self.core.pvs
    }

    fn script_error(&mut self, msg: &str) {
        crate::klog!(crate::log::L_ERR, "core", "{msg}");
    }
}
