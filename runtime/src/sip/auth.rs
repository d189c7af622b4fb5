//! Digest credentials (Authorization / Proxy-Authorization, RFC 2617/7616).

use super::scan::{quoted_end, slice_of, split_top, trim_lws};
use bytes::Bytes;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `Digest` (as written).
    pub scheme: Bytes,
    pub username: Option<Bytes>,
    pub realm: Option<Bytes>,
    pub nonce: Option<Bytes>,
    pub uri: Option<Bytes>,
    pub response: Option<Bytes>,
    pub algorithm: Option<Bytes>,
    pub cnonce: Option<Bytes>,
    pub opaque: Option<Bytes>,
    pub qop: Option<Bytes>,
    pub nc: Option<Bytes>,
    /// Every parameter, values unquoted, in order (for `$adu`-like access to extras).
    pub params: Vec<(Bytes, Bytes)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredError {
    #[error("missing authentication scheme")]
    NoScheme,
    #[error("bad authentication parameter")]
    BadParam,
}

impl Credentials {
    pub fn parse_in(base: &Bytes, s: &[u8]) -> Result<Credentials, CredError> {
        let s = trim_lws(s);
        let sp = s
            .iter()
            .position(|b| super::scan::is_lws(*b))
            .ok_or(CredError::NoScheme)?;
        let mut c = Credentials {
            scheme: slice_of(base, &s[..sp]),
            ..Credentials::default()
        };
        let rest = &s[sp..];
        for r in split_top(rest, b',') {
            let p = trim_lws(&rest[r]);
            if p.is_empty() {
                continue;
            }
            let eq = memchr::memchr(b'=', p).ok_or(CredError::BadParam)?;
            let name = trim_lws(&p[..eq]);
            let mut value = trim_lws(&p[eq + 1..]);
            if value.first() == Some(&b'"') {
                let end = quoted_end(value).ok_or(CredError::BadParam)?;
                value = value.get(1..end - 1).unwrap_or(&[]);
            }
            let v = slice_of(base, value);
            let slot = match name.to_ascii_lowercase().as_slice() {
                b"username" => &mut c.username,
                b"realm" => &mut c.realm,
                b"nonce" => &mut c.nonce,
                b"uri" => &mut c.uri,
                b"response" => &mut c.response,
                b"algorithm" => &mut c.algorithm,
                b"cnonce" => &mut c.cnonce,
                b"opaque" => &mut c.opaque,
                b"qop" => &mut c.qop,
                b"nc" => &mut c.nc,
                _ => {
                    c.params.push((slice_of(base, name), v));
                    continue;
                }
            };
            *slot = Some(v.clone());
            c.params.push((slice_of(base, name), v));
        }
        Ok(c)
    }

    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case(b"digest")
    }

    /// `username` split at `@` like Kamailio's `$au`/`$ad` when the username carries a domain.
    pub fn user_and_domain(&self) -> (Bytes, Option<Bytes>) {
        let u = self.username.clone().unwrap_or_default();
        match memchr::memchr(b'@', &u) {
            Some(at) => (u.slice(..at), Some(u.slice(at + 1..))),
            None => (u, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_digest() {
        let b = Bytes::from_static(
            b"Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"dcd98b\", uri=\"sip:bob@biloxi.com\", response=\"6629fae4\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001, opaque=\"5ccc\"",
        );
        let c = Credentials::parse_in(&b, &b).unwrap();
        assert!(c.is_digest());
        assert_eq!(c.username.as_deref(), Some(&b"bob"[..]));
        assert_eq!(c.realm.as_deref(), Some(&b"biloxi.com"[..]));
        assert_eq!(c.qop.as_deref(), Some(&b"auth"[..]));
        assert_eq!(c.nc.as_deref(), Some(&b"00000001"[..]));
        assert_eq!(c.algorithm.as_deref(), Some(&b"MD5"[..]));
        assert_eq!(c.opaque.as_deref(), Some(&b"5ccc"[..]));
        assert!(Credentials::parse_in(&b, b"Digest").is_err());
        assert!(Credentials::parse_in(&b, b"Digest username=\"x").is_err());
    }
}
