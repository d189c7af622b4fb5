//! UDP: bound sockets, the blocking receive loop of a worker, and sends.

use super::{Listener, Proto, Received};
use bytes::Bytes;
use std::io;
use std::net::UdpSocket;
use std::time::Duration;

/// Largest datagram we accept (Kamailio's BUF_SIZE).
pub const MAX_DATAGRAM: usize = 65535;

/// Binds a UDP listener.
pub fn bind(listener: &Listener) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(listener.addr)?;
    Ok(sock)
}

/// Receives datagrams on `sock` and hands each to `handle` until `stop` returns true.
/// The receive buffer is reused; each message is copied once into its own `Bytes`, which the
/// parsed message then slices without further copies.
pub fn recv_loop(
    sock: &UdpSocket,
    listener: &Listener,
    stop: &dyn Fn() -> bool,
    handle: &mut dyn FnMut(Received),
) -> io::Result<()> {
    // A timeout lets the loop notice a shutdown request.
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let local = sock.local_addr()?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop() {
        match sock.recv_from(&mut buf) {
            Ok((n, src)) => {
                let Some(data) = buf.get(..n) else { continue };
                // Kamailio ignores tiny datagrams such as CRLF keepalives.
                if n < 4 || data.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                handle(Received {
                    data: Bytes::copy_from_slice(data),
                    src,
                    local,
                    proto: Proto::Udp,
                    listener: listener.id,
                    conn: None,
                });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            // ICMP port unreachable from an earlier send shows up here on Linux.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn receives_and_skips_keepalives() {
        let l = Listener {
            id: 3,
            proto: Proto::Udp,
            addr: "127.0.0.1:0".parse().unwrap(),
            advertise: None,
            name: None,
        };
        let sock = bind(&l).unwrap();
        let addr = sock.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"\r\n\r\n", addr).unwrap();
        client.send_to(b"OPTIONS x", addr).unwrap();
        let stop = AtomicBool::new(false);
        let mut got = Vec::new();
        recv_loop(&sock, &l, &|| stop.load(Ordering::Relaxed), &mut |r| {
            got.push(r);
            stop.store(true, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].data[..], b"OPTIONS x");
        assert_eq!(got[0].listener, 3);
        assert_eq!(got[0].src, client.local_addr().unwrap());
    }
}
