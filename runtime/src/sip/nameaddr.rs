//! `name-addr` / `addr-spec` with header parameters: From, To, Contact, Route, ...

use super::scan::{Param, find_param, parse_params, quoted_end, slice_of, split_top, trim_lws};
use super::uri::{Uri, UriError};
use bytes::Bytes;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The whole value (one element of a comma list).
    pub raw: Bytes,
    /// Display name as written (quotes kept), empty when absent.
    pub display: Bytes,
    /// The URI text (inside `<>` when angle brackets are used).
    pub uri_raw: Bytes,
    pub uri: Uri,
    /// Header parameters after the URI (`;tag=`, `;expires=`, `;q=`).
    pub params: Vec<Param>,
    /// The parameter text after the URI, without the leading `;`.
    pub params_raw: Bytes,
    /// True when written with `<...>`.
    pub angle: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameAddrError {
    #[error("unterminated quoted display name")]
    Quote,
    #[error("missing '>'")]
    Angle,
    #[error("empty address")]
    Empty,
    #[error("bad URI: {0}")]
    Uri(#[from] UriError),
    #[error("bad parameters")]
    Params,
    #[error("unexpected text after '>'")]
    Trailing,
    #[error("bad display name")]
    Display,
    #[error("whitespace inside '<>'")]
    SpaceInAngles,
    #[error("URI with headers or commas must be inside '<>'")]
    NeedsAngles,
}

impl NameAddr {
    /// Parses one name-addr; `s` must be a slice of `base` for zero-copy results.
    pub fn parse_in(base: &Bytes, s: &[u8]) -> Result<NameAddr, NameAddrError> {
        let s = trim_lws(s);
        if s.is_empty() {
            return Err(NameAddrError::Empty);
        }
        let raw = slice_of(base, s);
        let mut i = 0;
        let mut display: &[u8] = &[];
        if s.first() == Some(&b'"') {
            let end = quoted_end(s).ok_or(NameAddrError::Quote)?;
            display = &s[..end];
            i = end;
        }
        let rest = &s[i..];
        let lt = memchr::memchr(b'<', rest);
        if let Some(lt) = lt {
            if display.is_empty() {
                display = trim_lws(&rest[..lt]);
                // An unquoted display name is a sequence of tokens (RFC 3261 §25.1).
                if !display
                    .iter()
                    .all(|b| super::scan::is_token(*b) || super::scan::is_lws(*b))
                {
                    return Err(NameAddrError::Display);
                }
            } else if !trim_lws(&rest[..lt]).is_empty() {
                return Err(NameAddrError::Trailing);
            }
            let after = &rest[lt + 1..];
            let gt = memchr::memchr(b'>', after).ok_or(NameAddrError::Angle)?;
            let uri_text = &after[..gt];
            if trim_lws(uri_text).len() != uri_text.len() {
                return Err(NameAddrError::SpaceInAngles);
            }
            let tail = trim_lws(&after[gt + 1..]);
            if !tail.is_empty() && tail.first() != Some(&b';') {
                return Err(NameAddrError::Trailing);
            }
            let uri_raw = slice_of(base, uri_text);
            let uri = Uri::parse(&uri_raw)?;
            let params = parse_params(base, tail).map_err(|_| NameAddrError::Params)?;
            let params_raw = slice_of(base, tail.strip_prefix(b";").unwrap_or(tail));
            return Ok(NameAddr {
                raw,
                display: slice_of(base, display),
                uri_raw,
                uri,
                params,
                params_raw,
                angle: true,
            });
        }
        if !display.is_empty() {
            return Err(NameAddrError::Angle);
        }
        // addr-spec: parameters after the first ';' belong to the header, not the URI.
        let (uri_text, tail) = match memchr::memchr(b';', rest) {
            Some(sc) => (&rest[..sc], &rest[sc..]),
            None => (rest, &[][..]),
        };
        let uri_text = trim_lws(uri_text);
        if uri_text.iter().any(|b| matches!(*b, b'?' | b',')) {
            return Err(NameAddrError::NeedsAngles);
        }
        let uri_raw = slice_of(base, uri_text);
        let uri = Uri::parse(&uri_raw)?;
        let params = parse_params(base, tail).map_err(|_| NameAddrError::Params)?;
        Ok(NameAddr {
            raw,
            display: Bytes::new(),
            uri_raw,
            uri,
            params,
            params_raw: slice_of(base, tail.strip_prefix(b";").unwrap_or(tail)),
            angle: false,
        })
    }

    pub fn parse(s: &Bytes) -> Result<NameAddr, NameAddrError> {
        NameAddr::parse_in(s, s)
    }

    pub fn parse_bytes(s: &[u8]) -> Result<NameAddr, NameAddrError> {
        NameAddr::parse(&Bytes::copy_from_slice(s))
    }

    pub fn param(&self, name: &[u8]) -> Option<&Param> {
        find_param(&self.params, name)
    }

    /// Value of `;tag=`.
    pub fn tag(&self) -> Option<&Bytes> {
        self.param(b"tag").and_then(|p| p.value.as_ref())
    }

    /// Display name without surrounding quotes.
    pub fn display_unquoted(&self) -> &[u8] {
        let d: &[u8] = &self.display;
        d.strip_prefix(b"\"")
            .and_then(|x| x.strip_suffix(b"\""))
            .unwrap_or(d)
    }
}

/// Parses a comma-separated list of name-addrs (Contact, Route, Record-Route values).
pub fn parse_list(base: &Bytes, s: &[u8]) -> Result<Vec<NameAddr>, NameAddrError> {
    split_top(s, b',')
        .into_iter()
        .map(|r| NameAddr::parse_in(base, &s[r]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let a = NameAddr::parse_bytes(br#""Bob \"B\"" <sip:bob@b.com;transport=tcp>;tag=a6c85cf"#)
            .unwrap();
        assert_eq!(a.display_unquoted(), br#"Bob \"B\""#);
        assert_eq!(a.uri.host, "b.com");
        assert_eq!(a.tag().map(|t| &t[..]), Some(&b"a6c85cf"[..]));
        assert!(a.angle);
        let b = NameAddr::parse_bytes(b"sip:alice@a.com;tag=1928").unwrap();
        assert_eq!(b.uri.raw, "sip:alice@a.com");
        assert!(b.uri.params.is_empty());
        assert_eq!(b.tag().map(|t| &t[..]), Some(&b"1928"[..]));
        let c = NameAddr::parse_bytes(b"Anonymous<sip:c@d>").unwrap();
        assert_eq!(c.display, "Anonymous");
        assert!(NameAddr::parse_bytes(br#""unterminated <sip:a@b>"#).is_err());
        assert!(NameAddr::parse_bytes(b"<sip:a@b").is_err());
        assert!(NameAddr::parse_bytes(b"").is_err());
        let base = Bytes::from_static(b"<sip:a@b;lr>, \"x,y\" <sip:c@d>;q=0.5");
        let l = parse_list(&base, &base).unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].uri.is_loose());
        assert_eq!(
            l[1].param(b"q").unwrap().value.as_deref(),
            Some(&b"0.5"[..])
        );
    }
}
