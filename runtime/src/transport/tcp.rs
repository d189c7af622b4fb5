//! TCP: accepting, framing messages by Content-Length, and a connection registry so replies
//! and in-dialog requests reuse open connections.
//!
//! Each connection has one reader thread; complete messages are handed to `dispatch`, which
//! queues them for the TCP workers. Writers lock the connection's stream, so a worker never
//! waits for a reader.

use super::{Destination, Listener, Proto, Received, SendError, SentInfo};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Limits applied to every connection.
#[derive(Clone, Debug)]
pub struct TcpLimits {
    /// Largest message (headers + body) accepted.
    pub max_msg: usize,
    pub max_connections: usize,
    /// Close a connection idle this long (`tcp_connection_lifetime`).
    pub idle: Duration,
    /// Drop a connection that leaves a message half-sent this long (`tcp_msg_read_timeout`).
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    /// Accept messages without Content-Length (`tcp_accept_no_cl`), taking the body as empty.
    pub accept_no_cl: bool,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_msg: 65535,
            max_connections: 2048,
            idle: Duration::from_secs(120),
            read_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            accept_no_cl: false,
        }
    }
}

/// Result of looking for one message at the start of a stream buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// `n` bytes of CRLF keep-alive to skip; `ping` when it was a double CRLF that asks for
    /// a single CRLF pong (RFC 5626).
    KeepAlive { len: usize, ping: bool },
    /// A complete message of `len` bytes.
    Message(usize),
    /// The stream cannot be framed (the connection must be closed).
    Invalid(&'static str),
}

/// Finds the first message in `buf`.
pub fn frame(buf: &[u8], limits: &TcpLimits) -> Frame {
    let ws = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if ws > 0 {
        let ping = buf.starts_with(b"\r\n\r\n");
        if ws == buf.len() && !ping {
            return Frame::Incomplete;
        }
        return Frame::KeepAlive {
            len: if ping { 4 } else { ws },
            ping,
        };
    }
    let Some((hdr_end, body_start)) = find_headers_end(buf) else {
        if buf.len() > limits.max_msg {
            return Frame::Invalid("message headers too large");
        }
        return Frame::Incomplete;
    };
    let body_len = match content_length(&buf[..hdr_end]) {
        Ok(Some(n)) => n,
        Ok(None) if limits.accept_no_cl => 0,
        Ok(None) => return Frame::Invalid("missing Content-Length on a stream transport"),
        Err(e) => return Frame::Invalid(e),
    };
    let total = match body_start.checked_add(body_len) {
        Some(t) if t <= limits.max_msg => t,
        _ => return Frame::Invalid("message too large"),
    };
    if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
    }
}

/// Offset of the end of the header block and of the body start.
fn find_headers_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i + 2, i + 4));
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| (i + 1, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The value of the first Content-Length (or `l`) header in a header block.
fn content_length(headers: &[u8]) -> Result<Option<usize>, &'static str> {
    for line in headers.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = line[colon + 1..].trim_ascii();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return Err("bad Content-Length");
            }
            return std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .map(Some)
                .ok_or("bad Content-Length");
        }
    }
    Ok(None)
}

pub struct TcpConn {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub listener: usize,
    stream: Mutex<TcpStream>,
    closed: AtomicBool,
}

impl TcpConn {
    fn write_all(&self, data: &[u8]) -> io::Result<()> {
        let mut s = self
            .stream
            .lock()
            .map_err(|_| io::Error::other("connection lock poisoned"))?;
        s.write_all(data)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Ok(s) = self.stream.lock() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

type Dispatch = Box<dyn Fn(Received) + Send + Sync>;

/// All TCP connections of the process.
pub struct TcpManager {
    listeners: Vec<Listener>,
    limits: TcpLimits,
    conns: Mutex<HashMap<u64, Arc<TcpConn>>>,
    by_peer: Mutex<HashMap<SocketAddr, u64>>,
    next_id: AtomicU64,
    dispatch: Dispatch,
    stopping: AtomicBool,
}

impl TcpManager {
    pub fn new(listeners: Vec<Listener>, limits: TcpLimits, dispatch: Dispatch) -> Arc<Self> {
        Arc::new(TcpManager {
            listeners,
            limits,
            conns: Mutex::new(HashMap::new()),
            by_peer: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            dispatch,
            stopping: AtomicBool::new(false),
        })
    }

    /// Starts accepting on `sock` for listener `listener`.
    pub fn serve(self: &Arc<Self>, listener: usize, sock: TcpListener) -> io::Result<()> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("tcp-accept-{listener}"))
            .spawn(move || {
                for stream in sock.incoming() {
                    if me.stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    match stream {
                        Ok(s) => {
                            if let Err(e) = me.adopt(s, listener) {
                                crate::klog!(crate::log::L_ERR, "core", "tcp: accept failed: {e}");
                            }
                        }
                        Err(e) => {
                            crate::klog!(crate::log::L_ERR, "core", "tcp: accept error: {e}");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })?;
        Ok(())
    }

    fn lock_conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<TcpConn>>> {
        match self.conns.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn lock_peers(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, u64>> {
        match self.by_peer.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Registers a connected stream and starts its reader.
    fn adopt(self: &Arc<Self>, stream: TcpStream, listener: usize) -> io::Result<Arc<TcpConn>> {
        if self.lock_conns().len() >= self.limits.max_connections {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(io::Error::other("too many TCP connections"));
        }
        let _ = stream.set_nodelay(true);
        stream.set_write_timeout(Some(self.limits.send_timeout))?;
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let reader = stream.try_clone()?;
        let conn = Arc::new(TcpConn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            local,
            listener,
            stream: Mutex::new(stream),
            closed: AtomicBool::new(false),
        });
        self.lock_conns().insert(conn.id, Arc::clone(&conn));
        self.lock_peers().insert(peer, conn.id);
        let me = Arc::clone(self);
        let c = Arc::clone(&conn);
        std::thread::Builder::new()
            .name(format!("tcp-conn-{}", conn.id))
            .spawn(move || {
                me.read_loop(&c, reader);
                me.forget(&c);
            })?;
        Ok(conn)
    }

    fn forget(&self, conn: &TcpConn) {
        conn.close();
        self.lock_conns().remove(&conn.id);
        let mut peers = self.lock_peers();
        if peers.get(&conn.peer) == Some(&conn.id) {
            peers.remove(&conn.peer);
        }
    }

    fn read_loop(&self, conn: &TcpConn, mut stream: TcpStream) {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        let mut partial_since: Option<Instant> = None;
        let tick = self
            .limits
            .read_timeout
            .min(self.limits.idle)
            .min(Duration::from_secs(1));
        let _ = stream.set_read_timeout(Some(tick.max(Duration::from_millis(100))));
        let mut last_data = Instant::now();
        loop {
            if conn.closed.load(Ordering::Relaxed) || self.stopping.load(Ordering::Relaxed) {
                return;
            }
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    last_data = Instant::now();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let now = Instant::now();
                    if buf.is_empty() && now.duration_since(last_data) >= self.limits.idle {
                        return;
                    }
                    if let Some(t) = partial_since
                        && now.duration_since(t) >= self.limits.read_timeout
                    {
                        crate::klog!(
                            crate::log::L_WARN,
                            "core",
                            "tcp: incomplete message from {} timed out",
                            conn.peer
                        );
                        return;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            loop {
                match frame(&buf, &self.limits) {
                    Frame::Incomplete => {
                        partial_since = if buf.is_empty() {
                            None
                        } else {
                            partial_since.or(Some(Instant::now()))
                        };
                        break;
                    }
                    Frame::KeepAlive { len, ping } => {
                        buf.drain(..len);
                        if ping {
                            let _ = conn.write_all(b"\r\n");
                        }
                    }
                    Frame::Message(len) => {
                        let data = Bytes::copy_from_slice(&buf[..len]);
                        buf.drain(..len);
                        partial_since = None;
                        (self.dispatch)(Received {
                            data,
                            src: conn.peer,
                            local: conn.local,
                            proto: Proto::Tcp,
                            listener: conn.listener,
                            conn: Some(conn.id),
                        });
                    }
                    Frame::Invalid(why) => {
                        crate::klog!(
                            crate::log::L_ERR,
                            "core",
                            "tcp: closing connection from {}: {why}",
                            conn.peer
                        );
                        return;
                    }
                }
            }
        }
    }

    /// Finds an open connection for `dst`: by id first, then by peer address.
    fn find(&self, dst: &Destination) -> Option<Arc<TcpConn>> {
        let conns = self.lock_conns();
        if let Some(c) = dst.conn.and_then(|id| conns.get(&id))
            && !c.closed.load(Ordering::Relaxed)
        {
            return Some(Arc::clone(c));
        }
        let id = *self.lock_peers().get(&dst.addr)?;
        conns
            .get(&id)
            .filter(|c| !c.closed.load(Ordering::Relaxed))
            .cloned()
    }

    pub fn send(self: &Arc<Self>, dst: &Destination, data: &[u8]) -> Result<SentInfo, SendError> {
        let conn = match self.find(dst) {
            Some(c) => c,
            None if dst.no_connect => return Err(SendError::NoConnection(dst.addr)),
            None => {
                let listener = super::choose_listener(&self.listeners, dst)
                    .ok_or(SendError::NoSocket(dst.proto, dst.addr))?;
                let stream = TcpStream::connect_timeout(&dst.addr, self.limits.connect_timeout)
                    .map_err(|e| SendError::Io(dst.addr, e))?;
                self.adopt(stream, listener)
                    .map_err(|e| SendError::Io(dst.addr, e))?
            }
        };
        let res = conn.write_all(data);
        if res.is_err() || dst.close_after {
            self.forget(&conn);
        }
        res.map_err(|e| SendError::Io(dst.addr, e))?;
        Ok(SentInfo {
            listener: conn.listener,
            local: conn.local,
            conn: Some(conn.id),
        })
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.lock_conns().len()
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let conns: Vec<_> = self.lock_conns().values().cloned().collect();
        for c in conns {
            c.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_by_content_length() {
        let l = TcpLimits::default();
        let m = b"MESSAGE sip:a SIP/2.0\r\nl: 3\r\n\r\nabcNEXT";
        assert_eq!(frame(m, &l), Frame::Message(m.len() - 4));
        assert_eq!(frame(&m[..20], &l), Frame::Incomplete);
        let short = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(frame(short, &l), Frame::Incomplete);
        assert_eq!(
            frame(b"X\r\nContent-Length: -1\r\n\r\n", &l),
            Frame::Invalid("bad Content-Length")
        );
        assert!(matches!(frame(b"X\r\nA: b\r\n\r\n", &l), Frame::Invalid(_)));
        let lax = TcpLimits {
            accept_no_cl: true,
            ..TcpLimits::default()
        };
        assert_eq!(frame(b"X\r\nA: b\r\n\r\n", &lax), Frame::Message(11));
        assert_eq!(
            frame(b"\r\n\r\nX", &l),
            Frame::KeepAlive { len: 4, ping: true }
        );
        assert_eq!(frame(b"\r\n", &l), Frame::Incomplete);
        let huge = TcpLimits {
            max_msg: 40,
            ..TcpLimits::default()
        };
        assert_eq!(
            frame(b"X\r\nContent-Length: 100\r\n\r\n", &huge),
            Frame::Invalid("message too large")
        );
    }

    #[test]
    fn round_trip_over_loopback_reuses_the_connection() {
        let (tx, rx) = std::sync::mpsc::channel::<Received>();
        let tx = Mutex::new(tx);
        let sock = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let listener = Listener {
            id: 0,
            proto: Proto::Tcp,
            addr,
            advertise: None,
            name: None,
        };
        let mgr = TcpManager::new(
            vec![listener],
            TcpLimits::default(),
            Box::new(move |r| {
                let _ = tx.lock().unwrap().send(r);
            }),
        );
        mgr.serve(0, sock).unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        client
            .write_all(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(got.data.starts_with(b"OPTIONS"));
        // Reply on the same connection.
        let mut dst = Destination::new(Proto::Tcp, got.src);
        dst.conn = got.conn;
        dst.no_connect = true;
        mgr.send(&dst, b"SIP/2.0 200 OK\r\n\r\n").unwrap();
        let mut reply = [0u8; 18];
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"SIP/2.0 200 OK\r\n\r\n");
        assert_eq!(mgr.connections(), 1);
        mgr.stop();
    }
}
