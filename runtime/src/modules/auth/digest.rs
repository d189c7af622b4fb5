//! Digest computations (RFC 2617, RFC 7616): HA1, session HA1, response.

use crate::sip::Credentials;
use md5::{Digest, Md5};
use sha2::Sha256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Alg {
    pub fn parse(s: &[u8]) -> Option<Alg> {
        match s.to_ascii_uppercase().as_slice() {
            b"" | b"MD5" => Some(Alg::Md5),
            b"MD5-SESS" => Some(Alg::Md5Sess),
            b"SHA-256" => Some(Alg::Sha256),
            b"SHA-256-SESS" => Some(Alg::Sha256Sess),
            _ => None,
        }
    }

    /// The algorithm of a credentials header (MD5 when absent); None when unsupported.
    pub fn of(c: &Credentials) -> Option<Alg> {
        Alg::parse(c.algorithm.as_deref().unwrap_or(b""))
    }

    pub fn is_sess(self) -> bool {
        matches!(self, Alg::Md5Sess | Alg::Sha256Sess)
    }

    /// Lowercase hex hash of the concatenated parts.
    pub fn hash_hex(self, parts: &[&[u8]]) -> String {
        match self {
            Alg::Md5 | Alg::Md5Sess => md5_hex(parts),
            Alg::Sha256 | Alg::Sha256Sess => {
                let mut h = Sha256::new();
                for p in parts {
                    h.update(p);
                }
                hex(&h.finalize())
            }
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

pub fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    hex(&h.finalize())
}

/// HA1 = H(username:realm:password).
pub fn ha1(alg: Alg, user: &[u8], realm: &[u8], password: &[u8]) -> String {
    alg.hash_hex(&[user, b":", realm, b":", password])
}

/// For -sess algorithms HA1 becomes H(HA1:nonce:cnonce); unchanged otherwise.
pub fn session_ha1(alg: Alg, ha1: &str, c: &Credentials) -> String {
    if !alg.is_sess() {
        return ha1.to_string();
    }
    alg.hash_hex(&[
        ha1.as_bytes(),
        b":",
        c.nonce.as_deref().unwrap_or(b""),
        b":",
        c.cnonce.as_deref().unwrap_or(b""),
    ])
}

/// The expected `response` for credentials `c`: with qop,
/// H(HA1:nonce:nc:cnonce:qop:HA2), else H(HA1:nonce:HA2); HA2 = H(method:uri[:H(body)]).
pub fn response(
    alg: Alg,
    ha1: &str,
    c: &Credentials,
    method: &[u8],
    body_hash: Option<&str>,
) -> String {
    let uri = c.uri.as_deref().unwrap_or(b"");
    let ha2 = match body_hash {
        Some(bh) => alg.hash_hex(&[method, b":", uri, b":", bh.as_bytes()]),
        None => alg.hash_hex(&[method, b":", uri]),
    };
    let nonce = c.nonce.as_deref().unwrap_or(b"");
    match c.qop.as_deref() {
        Some(q) if !q.is_empty() => alg.hash_hex(&[
            ha1.as_bytes(),
            b":",
            nonce,
            b":",
            c.nc.as_deref().unwrap_or(b""),
            b":",
            c.cnonce.as_deref().unwrap_or(b""),
            b":",
            q,
            b":",
            ha2.as_bytes(),
        ]),
        _ => alg.hash_hex(&[ha1.as_bytes(), b":", nonce, b":", ha2.as_bytes()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cred(s: &'static [u8]) -> Credentials {
        let b = Bytes::from_static(s);
        Credentials::parse_in(&b, &b).unwrap()
    }

    #[test]
    fn rfc2617_example() {
        // RFC 2617 section 3.5 (Mufasa / "Circle Of Life").
        let c = cred(
            b"Digest username=\"Mufasa\", realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        );
        let h = ha1(
            Alg::Md5,
            b"Mufasa",
            b"testrealm@host.com",
            b"Circle Of Life",
        );
        assert_eq!(h, "939e7578ed9e3c518a452acee763bce9");
        assert_eq!(
            response(Alg::Md5, &h, &c, b"GET", None),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn rfc7616_examples_md5_and_sha256() {
        // RFC 7616 section 3.9.1 (Mufasa / "Circle of Life").
        let c = cred(
            b"Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, response=\"8ca523f5e9506fed4657c9700eebdbec\"",
        );
        let h = ha1(
            Alg::Md5,
            b"Mufasa",
            b"http-auth@example.org",
            b"Circle of Life",
        );
        assert_eq!(
            response(Alg::Md5, &h, &c, b"GET", None),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let c = cred(
            b"Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\"",
        );
        let alg = Alg::of(&c).unwrap();
        assert_eq!(alg, Alg::Sha256);
        let h = ha1(alg, b"Mufasa", b"http-auth@example.org", b"Circle of Life");
        assert_eq!(
            response(alg, &h, &c, b"GET", None),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn no_qop_and_sess_and_unknown_algorithm() {
        let c = cred(
            b"Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"x\"",
        );
        let h = ha1(Alg::Md5, b"bob", b"r", b"pw");
        let ha2 = md5_hex(&[b"REGISTER:sip:r"]);
        assert_eq!(
            response(Alg::Md5, &h, &c, b"REGISTER", None),
            md5_hex(&[format!("{h}:n:{ha2}").as_bytes()])
        );
        let c = cred(
            b"Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", cnonce=\"cn\", algorithm=MD5-sess, response=\"x\"",
        );
        assert_eq!(
            session_ha1(Alg::Md5Sess, &h, &c),
            md5_hex(&[format!("{h}:n:cn").as_bytes()])
        );
        let c = cred(b"Digest username=\"bob\", algorithm=SHA-512-256");
        assert_eq!(Alg::of(&c), None);
    }
}
