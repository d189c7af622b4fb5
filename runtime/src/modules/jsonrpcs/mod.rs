//! Kamailio's `jsonrpcs` module: the JSON-RPC 2.0 server for RPC commands, over a FIFO file
//! and a datagram socket (Unix or UDP), plus `jsonrpc_exec()` and `$jsonrpl(...)` to run a
//! command from the routing script.
//!
//! The transports are background services: a broken control socket is logged and does not
//! stop SIP service (Kamailio refuses to start instead). Over HTTP (the xhttp module),
//! `jsonrpc_dispatch()` in `event_route[xhttp:request]` answers the request.

use super::core::actions::arg_bytes;
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::core::Core;
use crate::ctx::Ctx;
use crate::log::{L_ERR, L_INFO, L_WARN};
use crate::rpc;
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;
use vm::ksr::{ParamType::Str as S, RetType};
use vm::pv::{PvClass, PvParam, PvSpec};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "jsonrpcs",
    params: &[
        ParamDef::int("pretty_format"),
        ParamDef::int("transport"),
        ParamDef::str("fifo_name"),
        ParamDef::int("fifo_mode"),
        ParamDef::any("fifo_group"),
        ParamDef::any("fifo_user"),
        ParamDef::str("fifo_reply_dir"),
        ParamDef::str("dgram_socket"),
        ParamDef::int("dgram_workers"),
        ParamDef::int("dgram_mode"),
        ParamDef::any("dgram_group"),
        ParamDef::any("dgram_user"),
        ParamDef::int("dgram_timeout"),
    ],
    register,
    init: Some(init),
    notice: None,
};

const T_HTTP: i64 = 1;
const T_FIFO: i64 = 2;
const T_DGRAM: i64 = 4;

/// The module's settings, read once at start-up.
#[derive(Default, Clone, Debug)]
pub struct JsonrpcsState {
    pub pretty: bool,
    /// FIFO file to serve, when that transport is on.
    pub fifo: Option<PathBuf>,
    pub fifo_mode: u32,
    pub fifo_reply_dir: PathBuf,
    /// Datagram socket to serve, when that transport is on.
    pub dgram: Option<DgramAddr>,
    pub dgram_mode: u32,
    pub dgram_workers: usize,
    pub dgram_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DgramAddr {
    Unix(PathBuf),
    Udp(String),
}

/// Kamailio's default `run_dir`.
pub const DEFAULT_RUN_DIR: &str = "/run/kamailio";

/// Where a relative FIFO/socket name lives: under `run_dir`.
fn in_run_dir(run_dir: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        run_dir.join(p)
    }
}

/// Parses the `dgram_socket` parameter (`udp:host:port`, `unix:/path` or a path).
pub fn dgram_addr(run_dir: &Path, spec: &str) -> DgramAddr {
    if let Some(rest) = spec.strip_prefix("udp:") {
        DgramAddr::Udp(rest.to_string())
    } else {
        let path = spec.strip_prefix("unix:").unwrap_or(spec);
        DgramAddr::Unix(in_run_dir(run_dir, path))
    }
}

fn init(i: &mut InitCtx<'_>) -> Result<(), String> {
    let p = i.params;
    let run_dir = PathBuf::from(i.cfg.run_dir.as_deref().unwrap_or(DEFAULT_RUN_DIR));
    let transport = p.int("transport", T_FIFO | T_DGRAM);
    let on = |bit: i64| transport == 0 || transport & bit != 0;
    let mode = |name: &str| {
        // Octal in the cfg (`0660`) arrives as the decimal-looking integer; read it as octal.
        let v = p.int(name, 660);
        u32::from_str_radix(&v.to_string(), 8).unwrap_or(0o660)
    };
    let s = &mut i.states.jsonrpcs;
    s.pretty = p.int("pretty_format", 1) != 0;
    if on(T_FIFO) {
        s.fifo = Some(in_run_dir(
            &run_dir,
            &p.str_or("fifo_name", "kamailio_rpc.fifo"),
        ));
    }
    s.fifo_mode = mode("fifo_mode");
    s.fifo_reply_dir = PathBuf::from(p.str_or("fifo_reply_dir", "/tmp/"));
    if on(T_DGRAM) {
        s.dgram = Some(dgram_addr(
            &run_dir,
            &p.str_or("dgram_socket", "kamailio_rpc.sock"),
        ));
    }
    s.dgram_mode = mode("dgram_mode");
    s.dgram_workers = p.int("dgram_workers", 1).clamp(1, 64) as usize;
    s.dgram_timeout = Duration::from_millis(p.int("dgram_timeout", 2000).max(1) as u64);
    if transport & T_HTTP != 0 && transport != 0 && !i.loaded.contains(&"xhttp") {
        crate::klog!(
            L_WARN,
            "jsonrpcs",
            "the HTTP transport needs the xhttp module, which is not loaded; not served"
        );
    }
    Ok(())
}

fn register(r: &mut Registrar<'_>) {
    r.kemi("jsonrpcs", "dispatch", &[], RetType::Int, |c, _| {
        Value::Int(dispatch(c))
    })
    .native(
        "jsonrpc_dispatch",
        RouteMask(RouteMask::REQUEST.0 | RouteMask::EVENT.0),
    );
    r.kemi("jsonrpcs", "exec", &[S], RetType::Int, |c, a| {
        Value::Int(exec(c, &arg_bytes(a, 0)))
    })
    .native("jsonrpc_exec", RouteMask::ANY);
    r.pvs.add(PvClass {
        name: "jsonrpl",
        get: pv_jsonrpl,
        set: None,
        parse_name: Some(parse_jsonrpl_name),
        name_required: true,
        takes_index: false,
    });
    r.hooks.services.push(start);
}

// ---------------------------------------------------------------- jsonrpc_exec / $jsonrpl

/// The reply of this worker's last `jsonrpc_exec()` (per worker, as in Kamailio).
#[derive(Default)]
struct ExecReply {
    code: i64,
    text: String,
    body: String,
}

thread_local! {
    static LAST: RefCell<ExecReply> = RefCell::new(ExecReply::default());
}

fn exec(c: &mut Ctx, doc: &[u8]) -> i64 {
    let Some(reply) = rpc::handle(c.core, doc) else {
        crate::klog!(L_ERR, "jsonrpcs", "jsonrpc_exec: invalid JSON document");
        return -1;
    };
    let (code, text) = reply_status(&reply);
    let body = rpc::json::format(&reply, c.core.m.jsonrpcs.pretty);
    LAST.with(|l| *l.borrow_mut() = ExecReply { code, text, body });
    1
}

/// The status of a JSON-RPC reply: the error's code and message, or 200 OK.
fn reply_status(reply: &serde_json::Value) -> (i64, String) {
    match reply.get("error") {
        Some(e) => (
            e.get("code").and_then(|v| v.as_i64()).unwrap_or(500),
            e.get("message")
                .and_then(|v| v.as_str())
                .unwrap_or("Error")
                .to_string(),
        ),
        None => (200, "OK".to_string()),
    }
}

/// `jsonrpc_dispatch()`: the HTTP request's body is a JSON-RPC document; the answer goes
/// back as the HTTP reply (status and reason from the error, if any). An invalid document
/// gets no reply (-1), as in Kamailio.
fn dispatch(c: &mut Ctx) -> i64 {
    let doc = c.msg.body().clone();
    let (code, reason, body) = match rpc::handle(c.core, &doc) {
        Some(reply) => {
            let (code, reason) = reply_status(&reply);
            (
                code,
                reason,
                rpc::json::format(&reply, c.core.m.jsonrpcs.pretty),
            )
        }
        None => {
            // As Kamailio: logged, no reply.
            crate::klog!(
                L_ERR,
                "jsonrpcs",
                "jsonrpc_dispatch: invalid json doc [{}]",
                String::from_utf8_lossy(&doc)
            );
            return -1;
        }
    };
    super::xhttp::send_reply(
        c,
        code,
        reason.as_bytes(),
        b"application/json",
        body.as_bytes(),
    )
}

fn parse_jsonrpl_name(name: &str) -> Result<PvParam, String> {
    match name {
        "code" => Ok(PvParam::Int(0)),
        "text" => Ok(PvParam::Int(1)),
        "body" => Ok(PvParam::Int(2)),
        other => Err(format!("unknown $jsonrpl key '{other}'")),
    }
}

fn pv_jsonrpl(_: &mut Ctx, spec: &PvSpec) -> Value {
    LAST.with(|l| {
        let l = l.borrow();
        match spec.param {
            PvParam::Int(0) => Value::Int(l.code),
            PvParam::Int(1) => Value::from(l.text.as_str()),
            PvParam::Int(2) => Value::from(l.body.as_str()),
            _ => Value::Null,
        }
    })
}

// ---------------------------------------------------------------- transports

type Threads = Vec<std::thread::JoinHandle<()>>;

fn start(core: &'static Core) -> Threads {
    let s = &core.m.jsonrpcs;
    let mut threads = Vec::new();
    if let Some(path) = s.fifo.clone()
        && let Err(e) = fifo::start(core, &path, &mut threads)
    {
        crate::klog!(
            L_ERR,
            "jsonrpcs",
            "cannot serve the FIFO {}: {e} (RPC over FIFO disabled)",
            path.display()
        );
    }
    if let Some(addr) = s.dgram.clone()
        && let Err(e) = dgram::start(core, &addr, &mut threads)
    {
        crate::klog!(
            L_ERR,
            "jsonrpcs",
            "cannot serve the datagram socket {addr:?}: {e} (RPC over datagram disabled)"
        );
    }
    threads
}

/// Runs one request document and renders the reply text.
fn answer(core: &'static Core, doc: &serde_json::Value) -> String {
    let reply = rpc::handle_value(core, doc);
    rpc::json::format(&reply, core.m.jsonrpcs.pretty)
}

fn stopping(core: &Core) -> bool {
    core.shutdown.load(Ordering::Relaxed)
}

fn set_mode(path: &Path, mode: u32) {
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

mod fifo {
    use super::*;
    use std::ffi::CString;
    use std::io::{Read, Write};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

    pub fn start(core: &'static Core, path: &Path, threads: &mut Threads) -> Result<(), String> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_fifo() {
                return Err("exists and is not a FIFO".into());
            }
            let _ = std::fs::remove_file(path);
        }
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: `c` is a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        set_mode(path, core.m.jsonrpcs.fifo_mode);
        // Opened read-write so the FIFO never reports end-of-file when writers go away;
        // non-blocking so the thread notices shutdown.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| e.to_string())?;
        let owned = path.to_path_buf();
        threads.push(
            std::thread::Builder::new()
                .name("jsonrpcs-fifo".into())
                .spawn(move || serve(core, file, &owned))
                .map_err(|e| e.to_string())?,
        );
        crate::klog!(L_INFO, "jsonrpcs", "serving RPC on FIFO {}", path.display());
        Ok(())
    }

    fn serve(core: &'static Core, mut file: std::fs::File, path: &Path) {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8192];
        while !stopping(core) {
            match file.read(&mut chunk) {
                Ok(0) => std::thread::sleep(Duration::from_millis(50)),
                Ok(n) => {
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    drain(core, &mut buf);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    crate::klog!(L_ERR, "jsonrpcs", "FIFO read failed: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        let _ = std::fs::remove_file(path);
    }

    /// Runs every complete document in `buf`, keeping an incomplete tail.
    fn drain(core: &'static Core, buf: &mut Vec<u8>) {
        loop {
            let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
            match it.next() {
                Some(Ok(doc)) => {
                    let used = it.byte_offset();
                    buf.drain(..used);
                    reply(core, &doc);
                }
                Some(Err(e)) if e.is_eof() => return,
                Some(Err(e)) => {
                    crate::klog!(L_ERR, "jsonrpcs", "FIFO: bad JSON document dropped: {e}");
                    buf.clear();
                    return;
                }
                None => {
                    buf.clear();
                    return;
                }
            }
        }
    }

    fn reply(core: &'static Core, doc: &serde_json::Value) {
        let text = answer(core, doc);
        let Some(name) = doc.get("reply_name").and_then(|v| v.as_str()) else {
            crate::klog!(
                L_ERR,
                "jsonrpcs",
                "FIFO request without reply_name: no reply sent"
            );
            return;
        };
        // The reply FIFO must be a plain name inside fifo_reply_dir.
        if name.contains('/') || name.is_empty() || name == ".." {
            crate::klog!(L_ERR, "jsonrpcs", "FIFO: invalid reply_name '{name}'");
            return;
        }
        let path = core.m.jsonrpcs.fifo_reply_dir.join(name);
        // The client may open its end a little later: retry briefly (bounded).
        for _ in 0..40 {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
            {
                Ok(mut f) => {
                    let mut data = text.into_bytes();
                    data.push(b'\n');
                    if let Err(e) = write_all_blocking(&mut f, &data) {
                        crate::klog!(L_ERR, "jsonrpcs", "FIFO reply write failed: {e}");
                    }
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(25)),
            }
        }
        crate::klog!(
            L_ERR,
            "jsonrpcs",
            "cannot open reply FIFO {}: no reader",
            path.display()
        );
    }

    fn write_all_blocking(f: &mut std::fs::File, mut data: &[u8]) -> std::io::Result<()> {
        let mut tries = 0;
        while !data.is_empty() {
            match f.write(data) {
                Ok(n) => data = data.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 200 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

mod dgram {
    use super::*;
    use std::net::UdpSocket;
    use std::os::unix::net::UnixDatagram;

    pub fn start(
        core: &'static Core,
        addr: &DgramAddr,
        threads: &mut Threads,
    ) -> Result<(), String> {
        let workers = core.m.jsonrpcs.dgram_workers;
        match addr {
            DgramAddr::Unix(path) => {
                if path.exists() {
                    let _ = std::fs::remove_file(path);
                }
                let sock = UnixDatagram::bind(path).map_err(|e| e.to_string())?;
                set_mode(path, core.m.jsonrpcs.dgram_mode);
                sock.set_read_timeout(Some(Duration::from_millis(200)))
                    .map_err(|e| e.to_string())?;
                sock.set_write_timeout(Some(core.m.jsonrpcs.dgram_timeout))
                    .map_err(|e| e.to_string())?;
                for w in 0..workers {
                    let s = sock.try_clone().map_err(|e| e.to_string())?;
                    let path = path.clone();
                    threads.push(spawn(w, move || serve_unix(core, s, &path, w == 0))?);
                }
                crate::klog!(L_INFO, "jsonrpcs", "serving RPC on {}", path.display());
            }
            DgramAddr::Udp(hostport) => {
                let sock = UdpSocket::bind(hostport.as_str()).map_err(|e| e.to_string())?;
                sock.set_read_timeout(Some(Duration::from_millis(200)))
                    .map_err(|e| e.to_string())?;
                for w in 0..workers {
                    let s = sock.try_clone().map_err(|e| e.to_string())?;
                    threads.push(spawn(w, move || serve_udp(core, s))?);
                }
                crate::klog!(L_INFO, "jsonrpcs", "serving RPC on udp:{hostport}");
            }
        }
        Ok(())
    }

    fn spawn(
        w: usize,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<std::thread::JoinHandle<()>, String> {
        std::thread::Builder::new()
            .name(format!("jsonrpcs-dgram-{w}"))
            .spawn(f)
            .map_err(|e| e.to_string())
    }

    fn request(core: &'static Core, data: &[u8]) -> Option<String> {
        match serde_json::from_slice::<serde_json::Value>(data) {
            Ok(doc) => Some(answer(core, &doc)),
            Err(e) => {
                crate::klog!(
                    L_ERR,
                    "jsonrpcs",
                    "datagram: bad JSON document dropped: {e}"
                );
                None
            }
        }
    }

    fn serve_unix(core: &'static Core, sock: UnixDatagram, path: &Path, owner: bool) {
        let mut buf = vec![0u8; 65536];
        while !stopping(core) {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(_) => continue,
            };
            let Some(text) = request(core, buf.get(..n).unwrap_or_default()) else {
                continue;
            };
            match from.as_pathname() {
                Some(p) => {
                    if let Err(e) = sock.send_to(text.as_bytes(), p) {
                        crate::klog!(L_ERR, "jsonrpcs", "datagram reply failed: {e}");
                    }
                }
                None => crate::klog!(
                    L_ERR,
                    "jsonrpcs",
                    "datagram request from an unbound socket: no reply possible"
                ),
            }
        }
        if owner {
            let _ = std::fs::remove_file(path);
        }
    }

    fn serve_udp(core: &'static Core, sock: UdpSocket) {
        let mut buf = vec![0u8; 65536];
        while !stopping(core) {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(_) => continue,
            };
            if let Some(text) = request(core, buf.get(..n).unwrap_or_default())
                && let Err(e) = sock.send_to(text.as_bytes(), from)
            {
                crate::klog!(L_ERR, "jsonrpcs", "datagram reply failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names() {
        let run = Path::new("/run/kamailio");
        assert_eq!(
            dgram_addr(run, "kamailio_rpc.sock"),
            DgramAddr::Unix(PathBuf::from("/run/kamailio/kamailio_rpc.sock"))
        );
        assert_eq!(
            dgram_addr(run, "unix:/tmp/x.sock"),
            DgramAddr::Unix(PathBuf::from("/tmp/x.sock"))
        );
        assert_eq!(
            dgram_addr(run, "udp:127.0.0.1:8090"),
            DgramAddr::Udp("127.0.0.1:8090".into())
        );
        assert!(parse_jsonrpl_name("body").is_ok());
        assert!(parse_jsonrpl_name("nope").is_err());
    }
}
