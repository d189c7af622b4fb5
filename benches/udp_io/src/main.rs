//! UDP I/O models for SIP workers, measured side by side: N threads blocking on one socket
//! (what ksr and Kamailio do) against a tokio multi-thread runtime with N workers and tasks
//! awaiting the same socket. Each server answers every datagram with a 400-byte reply after
//! a fixed amount of "routing" work; closed-loop clients (each waits for its reply before
//! sending again) load it for a few seconds. Prints replies/s and server CPU µs per message
//! (from the server threads' /proc times, so the clients' CPU is not counted).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Settings from the environment: WORKERS (2), CLIENTS (8), SECONDS (4), WORK (2000
/// xorshift rounds of simulated routing per message, about a stateless route's cost).
fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

static WORKERS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| env("WORKERS", 2) as usize);
static CLIENTS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| env("CLIENTS", 8) as usize);
static SECONDS: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| env("SECONDS", 4));
static WORK_ITERS: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| env("WORK", 2000));

fn work(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..*WORK_ITERS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// CPU seconds of this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let hz = 100.0;
    let mut total = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let p = t.path();
            let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            if !comm.trim().starts_with(prefix) {
                continue;
            }
            if let Ok(stat) = std::fs::read_to_string(p.join("stat"))
                && let Some(rest) = stat.rsplit_once(')').map(|x| x.1)
            {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                total += (ut + st) / hz;
            }
        }
    }
    total
}

fn clients(addr: SocketAddr, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> Vec<std::thread::JoinHandle<()>> {
    (0..*CLIENTS)
        .map(|i| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::Builder::new()
                .name(format!("client-{i}"))
                .spawn(move || {
                    let s = UdpSocket::bind("127.0.0.1:0").expect("client");
                    s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
                    let msg = [b'x'; 500];
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        let _ = s.send_to(&msg, addr);
                        if s.recv(&mut buf).is_ok() {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .expect("spawn")
        })
        .collect()
}

fn measure(name: &str, prefix: &str, addr: SocketAddr, stop_server: impl FnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    // Warm up, then measure.
    let cs = clients(addr, stop.clone(), done.clone());
    std::thread::sleep(Duration::from_millis(500));
    let (n0, c0, t0) = (done.load(Ordering::Relaxed), thread_cpu(prefix), Instant::now());
    std::thread::sleep(Duration::from_secs(*SECONDS));
    let (n1, c1, t1) = (done.load(Ordering::Relaxed), thread_cpu(prefix), Instant::now());
    stop.store(true, Ordering::Relaxed);
    for c in cs {
        let _ = c.join();
    }
    stop_server();
    let n = (n1 - n0) as f64;
    println!(
        "{name:<28} {:>10.0} msgs/s {:>8.2} µs CPU/msg",
        n / (t1 - t0).as_secs_f64(),
        (c1 - c0) * 1e6 / n.max(1.0)
    );
}

fn blocking() {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind"));
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let addr = sock.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let servers: Vec<_> = (0..*WORKERS)
        .map(|i| {
            let (sock, stop) = (sock.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("srv-{i}"))
                .spawn(move || {
                    let mut buf = [0u8; 65536];
                    let reply = [b'r'; 400];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((n, from)) = sock.recv_from(&mut buf) {
                            std::hint::black_box(work(n as u64));
                            let _ = sock.send_to(&reply, from);
                        }
                    }
                })
                .expect("spawn")
        })
        .collect();
    measure("blocking threads", "srv-", addr, move || {
        stop.store(true, Ordering::Relaxed);
        for s in servers {
            let _ = s.join();
        }
    });
}

fn tokio_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(*WORKERS)
        .thread_name("tok-worker")
        .enable_io()
        .build()
        .expect("runtime");
    let sock = rt
        .block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = sock.local_addr().expect("addr");
    let sock = Arc::new(sock);
    for _ in 0..*WORKERS {
        let sock = sock.clone();
        rt.spawn(async move {
            let mut buf = [0u8; 65536];
            let reply = [b'r'; 400];
            loop {
                if let Ok((n, from)) = sock.recv_from(&mut buf).await {
                    std::hint::black_box(work(n as u64));
                    let _ = sock.send_to(&reply, from).await;
                }
            }
        });
    }
    measure("tokio multi-thread", "tok-worker", addr, move || {
        rt.shutdown_timeout(Duration::from_millis(100));
    });
}

fn main() {
    println!(
        "{} server threads, {} closed-loop clients, {} s each, {} work rounds per message",
        *WORKERS, *CLIENTS, *SECONDS, *WORK_ITERS
    );
    for _ in 0..2 {
        blocking();
        tokio_server();
    }
}
