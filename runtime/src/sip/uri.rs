//! SIP/SIPS/TEL URIs (RFC 3261 §19.1, RFC 3966), parsed into zero-copy parts.

use super::scan::{Param, find_param, parse_params, parse_u32, slice_of};
use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Tels,
    /// `urn:`, `http:` and others: only the raw text and scheme are meaningful.
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    pub raw: Bytes,
    pub scheme: Scheme,
    /// The scheme as written (`sip`, `SIP`, `tel` ...).
    pub scheme_raw: Bytes,
    /// User part (for tel: the number). Empty when absent.
    pub user: Bytes,
    pub password: Option<Bytes>,
    /// Host as written; IPv6 references keep their brackets (like Kamailio's `$rd`).
    pub host: Bytes,
    pub port: Option<u16>,
    /// The port text as written (empty when absent).
    pub port_raw: Bytes,
    /// Everything after the first `;` of the host part, without that `;` and the headers.
    pub params_raw: Bytes,
    pub params: Vec<Param>,
    /// Everything after `?`.
    pub headers: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("missing URI scheme")]
    NoScheme,
    #[error("missing host in URI")]
    NoHost,
    #[error("bad host in URI")]
    BadHost,
    #[error("bad port in URI")]
    BadPort,
    #[error("bad URI parameters")]
    BadParams,
    #[error("invalid character in URI")]
    BadChar,
}

impl Uri {
    /// Parses `s`; slices refer to `s` (cheap clones of the same buffer).
    pub fn parse(s: &Bytes) -> Result<Uri, UriError> {
        let raw = s.clone();
        let text: &[u8] = s;
        if text.iter().any(|b| *b <= b' ' || *b == 0x7f) {
            return Err(UriError::BadChar);
        }
        let colon = memchr::memchr(b':', text).ok_or(UriError::NoScheme)?;
        let scheme_raw = &text[..colon];
        if scheme_raw.is_empty()
            || !scheme_raw
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
        {
            return Err(UriError::NoScheme);
        }
        let scheme = match scheme_raw.to_ascii_lowercase().as_slice() {
            b"sip" => Scheme::Sip,
            b"sips" => Scheme::Sips,
            b"tel" => Scheme::Tel,
            b"tels" => Scheme::Tels,
            _ => Scheme::Other,
        };
        let rest = &text[colon + 1..];
        let mut uri = Uri {
            raw: raw.clone(),
            scheme,
            scheme_raw: slice_of(s, scheme_raw),
            user: Bytes::new(),
            password: None,
            host: Bytes::new(),
            port: None,
            port_raw: Bytes::new(),
            params_raw: Bytes::new(),
            params: Vec::new(),
            headers: Bytes::new(),
        };
        match scheme {
            Scheme::Other => return Ok(uri),
            Scheme::Tel | Scheme::Tels => {
                let (num, params) = match memchr::memchr(b';', rest) {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, &[][..]),
                };
                if num.is_empty() {
                    return Err(UriError::NoHost);
                }
                uri.user = slice_of(s, num);
                uri.params_raw = slice_of(s, params);
                uri.params = parse_params(s, params).map_err(|_| UriError::BadParams)?;
                return Ok(uri);
            }
            Scheme::Sip | Scheme::Sips => {}
        }
        // Everything before the first '@' is userinfo, which may itself contain ';', '?'
        // and ':' (RFC 4475 semiuri/intmeth).
        let after_user = match memchr::memchr(b'@', rest) {
            Some(at) => {
                let userinfo = &rest[..at];
                match memchr::memchr(b':', userinfo) {
                    Some(c) => {
                        uri.user = slice_of(s, &userinfo[..c]);
                        uri.password = Some(slice_of(s, &userinfo[c + 1..]));
                    }
                    None => uri.user = slice_of(s, userinfo),
                }
                &rest[at + 1..]
            }
            None => rest,
        };
        let (hostport_params, headers) = match memchr::memchr(b'?', after_user) {
            Some(q) => (&after_user[..q], &after_user[q + 1..]),
            None => (after_user, &[][..]),
        };
        uri.headers = slice_of(s, headers);
        let (hostport, params) = if hostport_params.first() == Some(&b'[') {
            let close = memchr::memchr(b']', hostport_params).ok_or(UriError::BadHost)?;
            match memchr::memchr(b';', &hostport_params[close..]) {
                Some(i) => (&hostport_params[..close + i], &hostport_params[close + i..]),
                None => (hostport_params, &[][..]),
            }
        } else {
            match memchr::memchr(b';', hostport_params) {
                Some(i) => (&hostport_params[..i], &hostport_params[i..]),
                None => (hostport_params, &[][..]),
            }
        };
        let (host, port) = split_hostport(hostport)?;
        if host.is_empty() {
            return Err(UriError::NoHost);
        }
        if !valid_host(host) {
            return Err(UriError::BadHost);
        }
        uri.host = slice_of(s, host);
        if let Some(p) = port {
            let n = parse_u32(p)
                .filter(|n| *n <= 65535)
                .ok_or(UriError::BadPort)?;
            uri.port = Some(n as u16);
            uri.port_raw = slice_of(s, p);
        }
        // `params` still starts with its ';' so that ";;x" is seen as an empty parameter.
        uri.params_raw = slice_of(s, params.strip_prefix(b";").unwrap_or(params));
        uri.params = parse_params(s, params).map_err(|_| UriError::BadParams)?;
        Ok(uri)
    }

    /// Parses any byte string (copied once into a `Bytes`).
    pub fn parse_bytes(s: &[u8]) -> Result<Uri, UriError> {
        Uri::parse(&Bytes::copy_from_slice(s))
    }

    pub fn param(&self, name: &[u8]) -> Option<&Param> {
        find_param(&self.params, name)
    }

    /// Value of `;transport=` in lower case, if any.
    pub fn transport(&self) -> Option<String> {
        self.param(b"transport")
            .and_then(|p| p.value.as_ref())
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
    }

    /// True when the URI has the `;lr` parameter.
    pub fn is_loose(&self) -> bool {
        self.param(b"lr").is_some()
    }

    /// Host without IPv6 brackets.
    pub fn host_unbracketed(&self) -> &[u8] {
        let h: &[u8] = &self.host;
        h.strip_prefix(b"[")
            .and_then(|x| x.strip_suffix(b"]"))
            .unwrap_or(h)
    }

    /// Rebuilds a URI from parts (used by `sethost`, `setport` and friends).
    pub fn build(parts: &UriParts<'_>) -> Bytes {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(parts.scheme);
        out.push(b':');
        if !parts.user.is_empty() {
            out.extend_from_slice(parts.user);
            if let Some(pw) = parts.password {
                out.push(b':');
                out.extend_from_slice(pw);
            }
            out.push(b'@');
        }
        out.extend_from_slice(parts.host);
        if !parts.port.is_empty() {
            out.push(b':');
            out.extend_from_slice(parts.port);
        }
        if !parts.params.is_empty() {
            out.push(b';');
            out.extend_from_slice(parts.params);
        }
        if !parts.headers.is_empty() {
            out.push(b'?');
            out.extend_from_slice(parts.headers);
        }
        Bytes::from(out)
    }

    /// The parts of this URI, ready to change one and [`Uri::build`] again.
    pub fn parts(&self) -> UriParts<'_> {
        UriParts {
            scheme: &self.scheme_raw,
            user: &self.user,
            password: self.password.as_deref(),
            host: &self.host,
            port: &self.port_raw,
            params: &self.params_raw,
            headers: &self.headers,
        }
    }
}

/// Borrowed URI parts for [`Uri::build`].
#[derive(Clone, Copy, Debug)]
pub struct UriParts<'a> {
    pub scheme: &'a [u8],
    pub user: &'a [u8],
    pub password: Option<&'a [u8]>,
    pub host: &'a [u8],
    pub port: &'a [u8],
    pub params: &'a [u8],
    pub headers: &'a [u8],
}

/// Splits `host[:port]`, handling `[v6]:port`.
pub fn split_hostport(s: &[u8]) -> Result<(&[u8], Option<&[u8]>), UriError> {
    if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s).ok_or(UriError::BadHost)?;
        let host = &s[..=close];
        let rest = &s[close + 1..];
        return match rest.split_first() {
            None => Ok((host, None)),
            Some((b':', p)) => Ok((host, Some(p))),
            _ => Err(UriError::BadHost),
        };
    }
    match memchr::memrchr(b':', s) {
        Some(c) => Ok((&s[..c], Some(&s[c + 1..]))),
        None => Ok((s, None)),
    }
}

fn valid_host(h: &[u8]) -> bool {
    if h.first() == Some(&b'[') {
        return h.len() > 2
            && h.last() == Some(&b']')
            && h[1..h.len() - 1]
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.');
    }
    h.iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(*b, b'-' | b'.' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &'static str) -> Uri {
        Uri::parse(&Bytes::from_static(s.as_bytes())).unwrap()
    }

    #[test]
    fn sip_uris() {
        let u = p("sip:bob:pw@biloxi.example.com:5062;transport=udp;lr?Subject=x");
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, "bob");
        assert_eq!(u.password.as_deref(), Some(&b"pw"[..]));
        assert_eq!(u.host, "biloxi.example.com");
        assert_eq!(u.port, Some(5062));
        assert_eq!(u.transport().as_deref(), Some("udp"));
        assert!(u.is_loose());
        assert_eq!(u.headers, "Subject=x");
        assert_eq!(u.params_raw, "transport=udp;lr");
        let v6 = p("sip:a@[2001:db8::10]:5070;maddr=x");
        assert_eq!(v6.host, "[2001:db8::10]");
        assert_eq!(v6.host_unbracketed(), b"2001:db8::10");
        assert_eq!(v6.port, Some(5070));
        let semi = p("sip:user;par=u%40example.net@example.com");
        assert_eq!(semi.user, "user;par=u%40example.net");
        assert_eq!(semi.host, "example.com");
        let nouser = p("sips:example.com");
        assert!(nouser.user.is_empty());
        assert_eq!(nouser.scheme, Scheme::Sips);
    }

    #[test]
    fn tel_and_other() {
        let t = p("tel:+12125551212;phone-context=example.com");
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, "+12125551212");
        assert_eq!(
            t.param(b"phone-context").unwrap().value.as_deref(),
            Some(&b"example.com"[..])
        );
        assert_eq!(p("urn:service:sos").scheme, Scheme::Other);
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "sip:",
            "sip:@",
            "sip:a@b:99999",
            "sip:a@b:x",
            "nocolon",
            "sip:a@[::1",
            "sip:a b@c",
            "sip:a@b;;x",
        ] {
            assert!(Uri::parse_bytes(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn rebuild() {
        let u = p("sip:bob@host:5060;lr");
        let mut parts = u.parts();
        parts.host = b"other";
        parts.port = b"";
        assert_eq!(Uri::build(&parts), "sip:bob@other;lr");
    }
}
