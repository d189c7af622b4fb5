//! A small SDP reader for the NAT modules: sessions (`v=`), their media (`m=`) and the
//! connection addresses that apply to each, with offsets into the body so callers can
//! record precise edits.

use std::net::IpAddr;

/// Address family of a `c=` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pf {
    V4,
    V6,
}

/// An address found after `IP4`/`IP6` in a line; offsets are relative to the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    pub pf: Pf,
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Media {
    /// Offset of the `m=` line start and of the end of this media section (start of the
    /// next `m=` or `v=` line, or the end of the body).
    pub start: usize,
    pub end: usize,
    /// Port of the `m=` line and where it is.
    pub port: Option<(u32, usize, usize)>,
    pub c: Option<Addr>,
}

#[derive(Clone, Debug, Default)]
pub struct Session {
    pub c: Option<Addr>,
    pub media: Vec<Media>,
}

/// Lines of `body` as (start, end-without-line-ending).
pub fn lines(body: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let start = pos;
        let nl = memchr::memchr(b'\n', &body[pos..]).map(|i| pos + i);
        let (end, next) = match nl {
            Some(n) => (n, n + 1),
            None => (body.len(), body.len()),
        };
        let end = if end > start && body[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        pos = next;
        Some((start, end))
    })
}

/// The address after the `IP4`/`IP6` token of a line (`c=IN IP4 a`, `o=... IN IP4 a`,
/// `a=rtcp:p IN IP4 a`), offsets relative to the line's buffer.
pub fn line_addr(body: &[u8], start: usize, end: usize) -> Option<Addr> {
    let line = body.get(start..end)?;
    let mut toks = tokens(line);
    while let Some((s, e)) = toks.next() {
        let pf = match &line[s..e] {
            b"IP4" => Pf::V4,
            b"IP6" => Pf::V6,
            _ => continue,
        };
        let (s2, e2) = toks.next()?;
        return Some(Addr {
            pf,
            start: start + s2,
            end: start + e2,
        });
    }
    None
}

fn tokens(line: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < line.len() && (line[pos] == b' ' || line[pos] == b'\t') {
            pos += 1;
        }
        if pos >= line.len() {
            return None;
        }
        let s = pos;
        while pos < line.len() && line[pos] != b' ' && line[pos] != b'\t' {
            pos += 1;
        }
        Some((s, pos))
    })
}

/// Parses the sessions of an SDP body. Never fails: what is not understood is skipped.
pub fn parse(body: &[u8]) -> Vec<Session> {
    let mut out: Vec<Session> = Vec::new();
    for (s, e) in lines(body) {
        let line = &body[s..e];
        if line.starts_with(b"v=") || out.is_empty() {
            out.push(Session::default());
        }
        let Some(sess) = out.last_mut() else { continue };
        if line.starts_with(b"m=") {
            if let Some(m) = sess.media.last_mut() {
                m.end = s;
            }
            let mut toks = tokens(&line[2..]);
            toks.next();
            let port = toks.next().and_then(|(ps, pe)| {
                let txt = &line[2 + ps..2 + pe];
                let digits = txt.split(|c| *c == b'/').next().unwrap_or(txt);
                std::str::from_utf8(digits)
                    .ok()?
                    .parse::<u32>()
                    .ok()
                    .map(|p| (p, s + 2 + ps, s + 2 + ps + digits.len()))
            });
            sess.media.push(Media {
                start: s,
                end: body.len(),
                port,
                c: None,
            });
        } else if line.starts_with(b"c=") {
            let a = line_addr(body, s, e);
            match sess.media.last_mut() {
                Some(m) => m.c = a,
                None => sess.c = a,
            }
        } else if line.starts_with(b"v=")
            && let Some(prev) = out.len().checked_sub(2).and_then(|i| out.get_mut(i))
            && let Some(m) = prev.media.last_mut()
        {
            m.end = s;
        }
    }
    out
}

/// True for `0.0.0.0` and the IPv6 unspecified address written with zeros and colons.
pub fn is_null_addr(txt: &[u8], pf: Pf) -> bool {
    match pf {
        Pf::V6 => txt.iter().all(|c| *c == b'0' || *c == b':'),
        Pf::V4 => txt == b"0.0.0.0",
    }
}

/// Parses an address text as Kamailio's str2ip/str2ip6 would.
pub fn ip_of(txt: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(txt).ok()?;
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// End of the body without its trailing CR/LF characters (where Kamailio anchors
/// additions).
pub fn trimmed_end(body: &[u8]) -> usize {
    let mut e = body.len();
    while e > 0 && (body[e - 1] == b'\r' || body[e - 1] == b'\n') {
        e -= 1;
    }
    e
}

/// Applies (start, end, data) edits, relative to `body`, in the order given for equal
/// offsets; overlapping edits after the first are ignored.
pub fn apply(body: &[u8], edits: &mut [(usize, usize, Vec<u8>)]) -> Vec<u8> {
    edits.sort_by_key(|e| (e.0, e.0 != e.1));
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut pos = 0;
    for (s, e, d) in edits.iter() {
        if *s < pos || *e > body.len() || s > e {
            continue;
        }
        out.extend_from_slice(&body[pos..*s]);
        out.extend_from_slice(d);
        pos = *e;
    }
    out.extend_from_slice(&body[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &[u8] = b"v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4 10.0.0.1\r\nm=video 5000/2 RTP/AVP 31\r\nc=IN IP6 ::1\r\n";

    #[test]
    fn sessions_media_and_addresses() {
        let s = parse(SDP);
        assert_eq!(s.len(), 1);
        let c = s[0].c.as_ref().unwrap();
        assert_eq!(&SDP[c.start..c.end], b"10.0.0.1");
        assert_eq!(s[0].media.len(), 2);
        let m0 = &s[0].media[0];
        assert_eq!(m0.port.unwrap().0, 4000);
        assert!(m0.c.is_none());
        assert_eq!(&SDP[m0.end..m0.end + 7], b"m=video");
        let m1 = &s[0].media[1];
        assert_eq!(m1.port.unwrap().0, 5000);
        assert_eq!(m1.c.as_ref().unwrap().pf, Pf::V6);
        assert_eq!(m1.end, SDP.len());
    }

    #[test]
    fn garbage_never_panics() {
        for b in [
            &b""[..],
            b"m=",
            b"c=IN IP4",
            b"v=0\nm=audio x\nv=0\n",
            b"\r\n\r\n",
        ] {
            let _ = parse(b);
            let _ = trimmed_end(b);
        }
        assert!(is_null_addr(b"0.0.0.0", Pf::V4));
        assert!(is_null_addr(b"::", Pf::V6));
        let mut e = vec![(3, 3, b"X".to_vec()), (0, 1, b"Y".to_vec())];
        assert_eq!(apply(b"abcd", &mut e), b"YbcXd");
    }
}
