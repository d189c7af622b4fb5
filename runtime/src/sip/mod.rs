//! PLACEHOLDER until the sipmsg branch lands: the smallest message type the spine needs.
use bytes::Bytes;

#[derive(Clone, Debug)]
pub struct SipMsg {
    buf: Bytes,
}

#[derive(Debug, thiserror::Error)]
#[error("bad message")]
pub struct ParseError;

impl SipMsg {
    pub fn parse(buf: Bytes) -> Result<SipMsg, ParseError> {
        if buf.starts_with(b"SIP/2.0 ") || buf.windows(8).any(|w| w == b" SIP/2.0") {
            Ok(SipMsg { buf })
        } else {
            Err(ParseError)
        }
    }
    pub fn is_request(&self) -> bool {
        !self.buf.starts_with(b"SIP/2.0 ")
    }
    pub fn buf(&self) -> &Bytes {
        &self.buf
    }
}

impl SipMsg {
    /// The faked message Kamailio uses for routes that run without a SIP message.
    pub fn faked() -> SipMsg {
        SipMsg {
            buf: Bytes::from_static(b"OPTIONS sip:you@kamailio.org SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\nFrom: <sip:you@kamailio.org>;tag=123\r\nTo: <sip:you@kamailio.org>\r\nCall-ID: 123\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"),
        }
    }
}
