//! Transports: listening sockets, receiving, and sending SIP messages.
//!
//! UDP workers block on `recv_from` of a shared socket, the way Kamailio's UDP receiver
//! processes do (one socket, several readers). TCP connections each get a reader thread that
//! frames messages by Content-Length and hands them to the TCP workers through a channel;
//! writes go through the connection registry so replies reuse the connection a request came
//! on. Everything that sends goes through the [`Sender`] trait, so the offline harness and
//! `ksr bench` can swap in a recording transport.

pub mod tcp;
pub mod udp;

use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
    Wss,
}

impl Proto {
    /// Lower-case name as in `$pr` and socket specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
            Proto::Sctp => "sctp",
            Proto::Ws => "ws",
            Proto::Wss => "wss",
        }
    }

    /// Upper-case name as in a Via header (`SIP/2.0/UDP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
            Proto::Sctp => "SCTP",
            Proto::Ws => "WS",
            Proto::Wss => "WSS",
        }
    }

    /// Kamailio's numeric protocol id (`$proto` as int, `KSR.kx.get_protoid`).
    pub fn id(self) -> i64 {
        match self {
            Proto::Udp => 1,
            Proto::Tcp => 2,
            Proto::Tls => 3,
            Proto::Sctp => 4,
            Proto::Ws => 5,
            Proto::Wss => 6,
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            "tls" => Proto::Tls,
            "sctp" => Proto::Sctp,
            "ws" => Proto::Ws,
            "wss" => Proto::Wss,
            _ => return None,
        })
    }

    /// True for connection-oriented transports (framing by Content-Length, replies reuse the
    /// connection).
    pub fn is_stream(self) -> bool {
        !matches!(self, Proto::Udp | Proto::Sctp)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A socket ksr listens on.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Index in the listener list; stable for the process lifetime.
    pub id: usize,
    pub proto: Proto,
    pub addr: SocketAddr,
    /// `advertise host:port`: what goes into Via/Record-Route instead of `addr`.
    pub advertise: Option<(String, u16)>,
    /// `name "..."` of the socket.
    pub name: Option<String>,
}

impl Listener {
    /// Host to put in headers this proxy adds (advertised address if any).
    pub fn host_for_headers(&self) -> String {
        match &self.advertise {
            Some((h, _)) if !h.is_empty() => h.clone(),
            _ => uri_host(self.addr.ip()),
        }
    }

    pub fn port_for_headers(&self) -> u16 {
        match &self.advertise {
            Some((_, p)) if *p != 0 => *p,
            _ => self.addr.port(),
        }
    }

    /// `proto:ip:port` as Kamailio prints sockets (`$Ri`-style, IPv6 in brackets).
    pub fn sock_str(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("{}:{}:{}", self.proto, a.ip(), a.port()),
            SocketAddr::V6(a) => format!("{}:[{}]:{}", self.proto, a.ip(), a.port()),
        }
    }
}

/// One received message with where it came from.
#[derive(Clone, Debug)]
pub struct Received {
    pub data: Bytes,
    pub src: SocketAddr,
    /// The local address it arrived on.
    pub local: SocketAddr,
    pub proto: Proto,
    pub listener: usize,
    /// TCP connection id, for replies over the same connection.
    pub conn: Option<u64>,
}

/// An address as the host part of a SIP URI or Via (IPv6 in brackets).
pub fn uri_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Where to send a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// Send from this listener (forced socket, or the one a request arrived on).
    pub listener: Option<usize>,
    /// Prefer this TCP connection.
    pub conn: Option<u64>,
    /// Do not open a new connection (`set_forward_no_connect`, `set_reply_no_connect`).
    pub no_connect: bool,
    /// Close the connection after sending (`set_forward_close`, `set_reply_close`).
    pub close_after: bool,
}

impl Destination {
    pub fn new(proto: Proto, addr: SocketAddr) -> Destination {
        Destination {
            proto,
            addr,
            listener: None,
            conn: None,
            no_connect: false,
            close_after: false,
        }
    }
}

/// What was actually used to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentInfo {
    pub listener: usize,
    pub local: SocketAddr,
    pub conn: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no listening socket for {0} to {1}")]
    NoSocket(Proto, SocketAddr),
    #[error("protocol {0} is not supported")]
    Unsupported(Proto),
    #[error("no open connection to {0} and connecting is not allowed")]
    NoConnection(SocketAddr),
    #[error("send to {0} failed: {1}")]
    Io(SocketAddr, std::io::Error),
}

/// Anything that can send SIP messages.
pub trait Sender: Send + Sync {
    fn send(&self, dst: &Destination, data: &[u8]) -> Result<SentInfo, SendError>;
    /// The listeners sends may originate from.
    fn listeners(&self) -> &[Listener];
}

/// Picks the listener to send from: the requested one if it fits, else one with the same
/// protocol and address family, preferring a loopback listener for loopback destinations and
/// a non-loopback one otherwise.
pub fn choose_listener(listeners: &[Listener], dst: &Destination) -> Option<usize> {
    let fits = |l: &&Listener| l.proto == dst.proto && l.addr.is_ipv4() == dst.addr.is_ipv4();
    if let Some(l) = dst.listener.and_then(|id| listeners.get(id))
        && fits(&l)
    {
        return Some(l.id);
    }
    let want_loopback = dst.addr.ip().is_loopback();
    listeners
        .iter()
        .filter(fits)
        .find(|l| l.addr.ip().is_loopback() == want_loopback)
        .or_else(|| listeners.iter().find(fits))
        .map(|l| l.id)
}

/// A sender that records instead of sending: the offline harness, tests and `ksr bench`.
pub struct RecordingSender {
    listeners: Vec<Listener>,
    pub sent: Mutex<Vec<(Destination, Bytes)>>,
}

impl RecordingSender {
    pub fn new(listeners: Vec<Listener>) -> RecordingSender {
        RecordingSender {
            listeners,
            sent: Mutex::new(Vec::new()),
        }
    }

    /// Takes what was sent so far.
    pub fn take(&self) -> Vec<(Destination, Bytes)> {
        match self.sent.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }
}

impl Sender for RecordingSender {
    fn send(&self, dst: &Destination, data: &[u8]) -> Result<SentInfo, SendError> {
        let id = choose_listener(&self.listeners, dst)
            .ok_or(SendError::NoSocket(dst.proto, dst.addr))?;
        let local = self.listeners.get(id).map(|l| l.addr).unwrap_or(dst.addr);
        if let Ok(mut g) = self.sent.lock() {
            g.push((dst.clone(), Bytes::copy_from_slice(data)));
        }
        Ok(SentInfo {
            listener: id,
            local,
            conn: dst.conn,
        })
    }

    fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: usize, proto: Proto, addr: &str) -> Listener {
        Listener {
            id,
            proto,
            addr: addr.parse().unwrap(),
            advertise: None,
            name: None,
        }
    }

    #[test]
    fn chooses_listener_by_proto_and_family() {
        let ls = vec![
            l(0, Proto::Udp, "127.0.0.1:5060"),
            l(1, Proto::Tcp, "127.0.0.1:5060"),
            l(2, Proto::Udp, "[::1]:5060"),
        ];
        let d4 = Destination::new(Proto::Udp, "127.0.0.1:5080".parse().unwrap());
        let d6 = Destination::new(Proto::Udp, "[::1]:5080".parse().unwrap());
        let dt = Destination::new(Proto::Tcp, "127.0.0.1:5080".parse().unwrap());
        assert_eq!(choose_listener(&ls, &d4), Some(0));
        assert_eq!(choose_listener(&ls, &d6), Some(2));
        assert_eq!(choose_listener(&ls, &dt), Some(1));
        let mut forced = d4.clone();
        forced.listener = Some(2);
        assert_eq!(
            choose_listener(&ls, &forced),
            Some(0),
            "family mismatch ignored"
        );
    }

    #[test]
    fn recording_sender_records() {
        let s = RecordingSender::new(vec![l(0, Proto::Udp, "127.0.0.1:5060")]);
        let d = Destination::new(Proto::Udp, "127.0.0.1:5080".parse().unwrap());
        let info = s.send(&d, b"x").unwrap();
        assert_eq!(info.listener, 0);
        let sent = s.take();
        assert_eq!(sent.len(), 1);
        assert_eq!(&sent[0].1[..], b"x");
        let tcp = Destination::new(Proto::Tcp, "127.0.0.1:5080".parse().unwrap());
        assert!(s.send(&tcp, b"y").is_err());
    }
}
