//! Via headers (RFC 3261 §20.42, RFC 3581 rport).

use super::scan::{Param, find_param, parse_params, parse_u32, slice_of, split_top, trim_lws};
use super::uri::split_hostport;
use bytes::Bytes;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// This via-parm as written.
    pub raw: Bytes,
    /// `SIP`.
    pub protocol: Bytes,
    /// `2.0`.
    pub version: Bytes,
    /// `UDP`, `TCP`, `TLS`, `SCTP`, `WS`... as written.
    pub transport: Bytes,
    /// sent-by host (IPv6 with brackets).
    pub host: Bytes,
    pub port: Option<u16>,
    pub params: Vec<Param>,
    /// Index of the header line this via-parm is in.
    pub header: usize,
    /// Absolute offsets of this via-parm in the message buffer (where to add `;received=`).
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViaError {
    #[error("bad Via protocol")]
    Protocol,
    #[error("bad Via sent-by")]
    SentBy,
    #[error("bad Via parameters")]
    Params,
    #[error("empty Via")]
    Empty,
}

impl Via {
    pub fn param(&self, name: &[u8]) -> Option<&Param> {
        find_param(&self.params, name)
    }

    pub fn branch(&self) -> Option<&Bytes> {
        self.param(b"branch").and_then(|p| p.value.as_ref())
    }

    pub fn received(&self) -> Option<&Bytes> {
        self.param(b"received").and_then(|p| p.value.as_ref())
    }

    /// `Some(None)` for a bare `;rport`, `Some(Some(v))` for `;rport=v`.
    pub fn rport(&self) -> Option<Option<&Bytes>> {
        self.param(b"rport").map(|p| p.value.as_ref())
    }

    pub fn host_unbracketed(&self) -> &[u8] {
        let h: &[u8] = &self.host;
        h.strip_prefix(b"[")
            .and_then(|x| x.strip_suffix(b"]"))
            .unwrap_or(h)
    }
}

/// Parses every via-parm of one Via header value. `value_off` is the absolute offset of
/// `value` within `base`.
pub fn parse_via_value(
    base: &Bytes,
    value: &[u8],
    value_off: usize,
    header: usize,
) -> Result<Vec<Via>, ViaError> {
    let mut out = Vec::new();
    for r in split_top(value, b',') {
        let part = &value[r.clone()];
        let trimmed = trim_lws(part);
        if trimmed.is_empty() {
            return Err(ViaError::Empty);
        }
        let lead = part.len() - part.trim_ascii_start().len();
        let start = value_off + r.start + lead;
        out.push(parse_one(base, trimmed, start, header)?);
    }
    Ok(out)
}

fn parse_one(base: &Bytes, s: &[u8], start: usize, header: usize) -> Result<Via, ViaError> {
    // sent-protocol: name / version / transport, LWS allowed around '/'.
    let mut fields: [&[u8]; 3] = [&[]; 3];
    let mut rest = s;
    for (i, f) in fields.iter_mut().enumerate() {
        let r = trim_lws(rest);
        let end = if i < 2 {
            memchr::memchr(b'/', r).ok_or(ViaError::Protocol)?
        } else {
            r.iter()
                .position(|b| super::scan::is_lws(*b))
                .ok_or(ViaError::SentBy)?
        };
        *f = trim_lws(&r[..end]);
        if f.is_empty() || !f.iter().all(|b| super::scan::is_token(*b)) {
            return Err(ViaError::Protocol);
        }
        rest = if i < 2 { &r[end + 1..] } else { &r[end..] };
    }
    let rest = trim_lws(rest);
    // Strip a trailing comment "(...)".
    let rest = match memchr::memchr(b'(', rest) {
        Some(p) => trim_lws(&rest[..p]),
        None => rest,
    };
    let (sentby, params) = match memchr::memchr(b';', rest) {
        Some(i) => (trim_lws(&rest[..i]), &rest[i..]),
        None => (rest, &[][..]),
    };
    let (host, port) = split_hostport(sentby).map_err(|_| ViaError::SentBy)?;
    let host = trim_lws(host);
    if host.is_empty()
        || !host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(b))
    {
        return Err(ViaError::SentBy);
    }
    let port = match port {
        Some(p) => Some(
            parse_u32(trim_lws(p))
                .filter(|n| *n <= 65535)
                .ok_or(ViaError::SentBy)? as u16,
        ),
        None => None,
    };
    let params = parse_params(base, params).map_err(|_| ViaError::Params)?;
    Ok(Via {
        raw: slice_of(base, s),
        protocol: slice_of(base, fields[0]),
        version: slice_of(base, fields[1]),
        transport: slice_of(base, fields[2]),
        host: slice_of(base, host),
        port,
        params,
        header,
        start,
        end: start + s.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_params() {
        let base = Bytes::from_static(
            b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport, SIP / 2.0 / TCP [::1];received=1.2.3.4",
        );
        let v = parse_via_value(&base, &base, 100, 3).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "UDP");
        assert_eq!(v[0].host, "10.0.0.1");
        assert_eq!(v[0].port, Some(5060));
        assert_eq!(v[0].branch().map(|b| &b[..]), Some(&b"z9hG4bK1"[..]));
        assert_eq!(v[0].rport(), Some(None));
        assert_eq!(v[0].start, 100);
        assert_eq!(v[0].end, 100 + 47);
        assert_eq!(v[1].transport, "TCP");
        assert_eq!(v[1].host, "[::1]");
        assert_eq!(v[1].port, None);
        assert_eq!(v[1].received().map(|b| &b[..]), Some(&b"1.2.3.4"[..]));
        assert_eq!(v[1].header, 3);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b"SIP/2.0/UDP"[..],
            b"SIP/2.0 10.0.0.1",
            b"SIP/2.0/UDP host;;",
            b"SIP/2.0/UDP host:99999",
            b"",
        ] {
            let base = Bytes::copy_from_slice(bad);
            assert!(parse_via_value(&base, &base, 0, 0).is_err(), "{bad:?}");
        }
    }
}
