//! `ksr rpc`: sends one JSON-RPC command to a running server over the jsonrpcs module's
//! datagram socket or FIFO (like `kamcmd`/`kamctl rpc`) and prints the reply.

use anyhow::{Context, bail};
use clap::Args;
use runtime::modules::jsonrpcs::{DEFAULT_RUN_DIR, DgramAddr, dgram_addr};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct RpcArgs {
    /// The server's datagram socket: a Unix socket path (`unix:` optional) or
    /// `udp:HOST:PORT`. Default: from `--config`, else /run/kamailio/kamailio_rpc.sock.
    #[arg(short = 's', long = "socket")]
    socket: Option<String>,
    /// Use the server's FIFO file instead of its datagram socket.
    #[arg(long)]
    fifo: Option<PathBuf>,
    /// Read the socket (or FIFO) the server uses from its configuration file.
    #[arg(short = 'f', long = "config")]
    config: Option<PathBuf>,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Command, e.g. `core.uptime`, `stats.get_statistics`.
    method: String,
    /// Parameters: numbers are sent as integers; `s:TEXT` forces a string, `i:N` an integer.
    params: Vec<String>,
}

/// Where to send the request.
enum Target {
    Dgram(DgramAddr),
    Fifo(PathBuf),
}

pub fn rpc(a: RpcArgs) -> anyhow::Result<ExitCode> {
    let target = target(&a)?;
    let params: Vec<Json> = a.params.iter().map(|p| param(p)).collect();
    let mut req =
        serde_json::json!({"jsonrpc": "2.0", "method": a.method, "id": std::process::id()});
    if !params.is_empty() {
        req["params"] = Json::Array(params);
    }
    let timeout = Duration::from_secs(a.timeout.max(1));
    let reply = match target {
        Target::Dgram(addr) => dgram(&addr, &req, timeout)?,
        Target::Fifo(path) => fifo(&path, &mut req, timeout)?,
    };
    println!("{}", reply.trim_end());
    let failed = serde_json::from_str::<Json>(&reply)
        .map(|v| v.get("error").is_some())
        .unwrap_or(true);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn param(p: &str) -> Json {
    if let Some(s) = p.strip_prefix("s:") {
        return Json::from(s);
    }
    let num = p.strip_prefix("i:").unwrap_or(p);
    match num.parse::<i64>() {
        Ok(i) => Json::from(i),
        Err(_) => Json::from(p),
    }
}

fn target(a: &RpcArgs) -> anyhow::Result<Target> {
    if let Some(f) = &a.fifo {
        return Ok(Target::Fifo(f.clone()));
    }
    if let Some(s) = &a.socket {
        return Ok(Target::Dgram(dgram_addr(Path::new(DEFAULT_RUN_DIR), s)));
    }
    if let Some(cfg) = &a.config {
        return from_config(cfg);
    }
    Ok(Target::Dgram(DgramAddr::Unix(
        Path::new(DEFAULT_RUN_DIR).join("kamailio_rpc.sock"),
    )))
}

/// The transport a configuration's jsonrpcs serves (datagram preferred).
fn from_config(cfg: &Path) -> anyhow::Result<Target> {
    let r = compiler::frontend::parse_file(cfg, &Default::default())
        .with_context(|| format!("cannot read {}", cfg.display()))?;
    let Some(config) = r.config.as_ref().filter(|_| !r.has_errors()) else {
        bail!(
            "{}: configuration has errors (see `ksr check`)",
            cfg.display()
        );
    };
    let (setup, _) = runtime::Setup::from_config_partial(config);
    let Some((_, params)) = setup.modules.iter().find(|(m, _)| m.name == "jsonrpcs") else {
        bail!("{} does not load jsonrpcs", cfg.display());
    };
    let run_dir = PathBuf::from(setup.cfg.run_dir.as_deref().unwrap_or(DEFAULT_RUN_DIR));
    let transport = params.int("transport", 6);
    let on = |bit: i64| transport == 0 || transport & bit != 0;
    if on(4) {
        let s = params.str_or("dgram_socket", "kamailio_rpc.sock");
        return Ok(Target::Dgram(dgram_addr(&run_dir, &s)));
    }
    if on(2) {
        let f = params.str_or("fifo_name", "kamailio_rpc.fifo");
        let p = Path::new(&f);
        return Ok(Target::Fifo(if p.is_absolute() {
            p.to_path_buf()
        } else {
            run_dir.join(p)
        }));
    }
    bail!(
        "{}: jsonrpcs serves neither a FIFO nor a datagram socket",
        cfg.display()
    )
}

fn dgram(addr: &DgramAddr, req: &Json, timeout: Duration) -> anyhow::Result<String> {
    let body = serde_json::to_vec(req)?;
    let mut buf = vec![0u8; 1 << 20];
    match addr {
        DgramAddr::Unix(path) => {
            let me = std::env::temp_dir().join(format!("ksr_rpc_{}.sock", std::process::id()));
            let _ = std::fs::remove_file(&me);
            let sock = std::os::unix::net::UnixDatagram::bind(&me)
                .with_context(|| format!("cannot bind {}", me.display()))?;
            let res = (|| {
                sock.set_read_timeout(Some(timeout))?;
                sock.send_to(&body, path)
                    .with_context(|| format!("cannot reach {}", path.display()))?;
                let n = sock
                    .recv(&mut buf)
                    .context("no reply from the server (timeout)")?;
                Ok(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned())
            })();
            let _ = std::fs::remove_file(&me);
            res
        }
        DgramAddr::Udp(hostport) => {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
            sock.set_read_timeout(Some(timeout))?;
            sock.send_to(&body, hostport.as_str())
                .with_context(|| format!("cannot reach udp:{hostport}"))?;
            let n = sock
                .recv(&mut buf)
                .context("no reply from the server (timeout)")?;
            Ok(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned())
        }
    }
}

/// FIFO transport: the reply comes back on a FIFO we create in /tmp (the server's
/// `fifo_reply_dir` default), named in the request's `reply_name`.
fn fifo(path: &Path, req: &mut Json, timeout: Duration) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    use std::os::unix::ffi::OsStrExt;
    let name = format!("ksr_rpc_reply_{}", std::process::id());
    let reply_path = PathBuf::from("/tmp").join(&name);
    let _ = std::fs::remove_file(&reply_path);
    let c = std::ffi::CString::new(reply_path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        bail!(
            "cannot create {}: {}",
            reply_path.display(),
            std::io::Error::last_os_error()
        );
    }
    req["reply_name"] = Json::from(name);
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        f.write_all(&serde_json::to_vec(req)?)?;
        f.write_all(b"\n")?;
        drop(f);
        // Read in a thread so a silent server cannot hang us past the timeout.
        let (tx, rx) = std::sync::mpsc::channel();
        let rp = reply_path.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let r = std::fs::File::open(&rp).and_then(|mut f| f.read_to_string(&mut s));
            let _ = tx.send(r.map(|_| s));
        });
        match rx.recv_timeout(timeout) {
            Ok(r) => Ok(r?),
            Err(_) => bail!("no reply from the server (timeout)"),
        }
    })();
    let _ = std::fs::remove_file(&reply_path);
    res
}
