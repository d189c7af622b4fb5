//! Helpers for end-to-end tests: start a server process on a free loopback port, talk SIP
//! over UDP, stop the process by its pid whatever happens.

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free UDP port on 127.0.0.1 (also checked free for TCP).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(a) = u.local_addr() else { continue };
        let p = a.port();
        drop(u);
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port");
}

/// A server process that is killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub name: &'static str,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on the pid we started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ksr run` on `cfg` with `-A PORT=<port>` and extra defines.
pub fn start_ksr(cfg: &Path, defines: &[&str]) -> Server {
    start_ksr_env(cfg, defines, &[])
}

/// [`start_ksr`] with extra environment variables.
#[allow(dead_code)]
pub fn start_ksr_env(cfg: &Path, defines: &[&str], env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let dir = tempdir("ksr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ksr"));
    cmd.arg("run")
        .arg("-f")
        .arg(cfg)
        .arg("-A")
        .arg(format!("PORT={port}"));
    for d in defines {
        cmd.arg("-A").arg(d);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let log = std::fs::File::create(dir.join("ksr.log")).expect("log file");
    cmd.current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    let child = cmd.spawn().expect("start ksr");
    let s = Server {
        child,
        port,
        name: "ksr",
        dir,
    };
    wait_ready(&s);
    s
}

pub fn kamailio_available() -> bool {
    Path::new("/usr/sbin/kamailio").exists()
}

/// Starts Kamailio (the oracle) on `cfg` the same way.
pub fn start_kamailio(cfg: &Path, defines: &[&str]) -> Server {
    let port = free_port();
    let dir = tempdir("kamailio");
    let mut cmd = Command::new("/usr/sbin/kamailio");
    cmd.arg("-f")
        .arg(cfg)
        .args([
            "-L",
            "/usr/lib/x86_64-linux-gnu/kamailio/modules",
            "-E",
            "-DD",
        ])
        .arg("-Y")
        .arg(&dir)
        .arg("-w")
        .arg(&dir)
        .arg("-P")
        .arg(dir.join("k.pid"))
        .arg("-A")
        .arg(format!("PORT={port}"));
    for d in defines {
        cmd.arg("-A").arg(d);
    }
    let log = std::fs::File::create(dir.join("kamailio.log")).expect("log file");
    cmd.stdout(Stdio::null()).stderr(Stdio::from(log));
    let child = cmd.spawn().expect("start kamailio");
    let s = Server {
        child,
        port,
        name: "kamailio",
        dir,
    };
    wait_ready(&s);
    s
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ksr-e2e-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Waits (bounded) until the server answers an OPTIONS.
fn wait_ready(s: &Server) {
    let sock = client();
    for i in 0..100 {
        let msg = request(
            "OPTIONS",
            &format!("sip:ping@127.0.0.1:{}", s.port),
            &sock,
            &format!("ready-{i}"),
            "",
        );
        let _ = sock.send_to(msg.as_bytes(), ("127.0.0.1", s.port));
        if recv(&sock, 100).is_some() {
            return;
        }
    }
    let log = std::fs::read_to_string(s.dir.join(format!("{}.log", s.name))).unwrap_or_default();
    panic!("{} did not answer on port {}:\n{log}", s.name, s.port);
}

pub fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind client")
}

/// A request from `sock` (Via/From/To/Call-ID/CSeq filled in).
pub fn request(method: &str, ruri: &str, sock: &UdpSocket, callid: &str, extra: &str) -> String {
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{callid};rport\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: {callid}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

pub fn recv(sock: &UdpSocket, ms: u64) -> Option<String> {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(ms)));
    let mut buf = vec![0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// Sends `msg` to the server and returns the first message that comes back.
pub fn exchange(s: &Server, sock: &UdpSocket, msg: &str) -> Option<String> {
    sock.send_to(msg.as_bytes(), ("127.0.0.1", s.port)).ok()?;
    recv(sock, 2000)
}

pub fn status_line(m: &str) -> &str {
    m.split("\r\n").next().unwrap_or("")
}

pub fn header<'a>(m: &'a str, name: &str) -> Option<&'a str> {
    m.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Runs `ksr rpc -s SOCK METHOD PARAMS...` (jsonrpcs' datagram socket) and returns the reply
/// document without its `id`; text that is not JSON comes back as a JSON string.
pub fn rpc_dgram(sock: &Path, method: &str, params: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .arg("rpc")
        .arg("-s")
        .arg(sock)
        .arg(method)
        .args(params)
        .output()
        .expect("run ksr rpc");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| serde_json::Value::String(text.into_owned()));
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
    }
    v
}

/// Fails with every differing line when what Kamailio did (`want`) and what ksr did (`got`)
/// are not the same, line for line.
pub fn assert_same_lines(want: &[String], got: &[String]) {
    for l in got {
        eprintln!("{l}");
    }
    let diffs: Vec<String> = want
        .iter()
        .zip(got)
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("  kamailio: {w}\n  ksr:      {g}"))
        .collect();
    assert!(
        diffs.is_empty() && want.len() == got.len(),
        "differences ({} vs {} lines):\n{}",
        want.len(),
        got.len(),
        diffs.join("\n")
    );
}
