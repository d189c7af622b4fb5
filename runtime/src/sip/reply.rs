//! Building a reply to a request the way Kamailio's core does (stateless replies from `sl`,
//! local replies from `tm`): copied Via/From/To/Call-ID/CSeq (and Record-Route for 18x/2xx)
//! in their original order, `received`/`rport` on the top Via, a To tag, extra headers,
//! Server and Content-Length.

use super::hdr::HdrKind;
use super::msg::SipMsg;
use std::io::Write as _;
use std::net::SocketAddr;

/// Everything a reply needs besides the request.
#[derive(Clone, Debug, Default)]
pub struct ReplySpec<'a> {
    pub code: u16,
    pub reason: &'a [u8],
    /// To tag to add when the request's To has none (ignored for 100).
    pub to_tag: Option<&'a [u8]>,
    /// Raw header lines (each ending in CRLF) added after CSeq (`append_to_reply`).
    pub extra_headers: &'a [bytes::Bytes],
    /// `Server:` value; `None` for no Server header.
    pub server: Option<&'a [u8]>,
    /// Body and its content type.
    pub body: Option<(&'a [u8], &'a [u8])>,
    /// The request's source (for `received`/`rport`).
    pub src: Option<SocketAddr>,
    /// `force_rport()` was called or `force_rport=yes`.
    pub force_rport: bool,
}

/// IP text for a `received=` parameter (IPv6 without brackets, as Kamailio writes it).
fn ip_text(a: &SocketAddr) -> String {
    a.ip().to_string()
}

/// True when `received=` must be added to the top Via of `req` (Kamailio `received_test`).
pub fn needs_received(req: &SipMsg, src: &SocketAddr) -> bool {
    let Ok(v) = req.via1() else { return false };
    if v.received().is_some() || v.rport().is_some() {
        return true;
    }
    match std::str::from_utf8(v.host_unbracketed())
        .ok()
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
    {
        Some(ip) => ip != src.ip(),
        None => true,
    }
}

/// Span (relative to the via-parm) of parameter `p` of `v`, from its `;` to the end of its
/// value.
fn param_span(req: &SipMsg, v: &super::Via, p: &super::scan::Param) -> Option<(usize, usize)> {
    let raw: &[u8] = &v.raw;
    let name_at = req.offset_of(&p.name)?.checked_sub(v.start)?;
    let end = match &p.value {
        Some(val) => req.offset_of(val)? + val.len() - v.start,
        None => name_at + p.name.len(),
    };
    let semi = raw.get(..name_at)?.iter().rposition(|b| *b == b';')?;
    Some((semi, end.min(raw.len())))
}

/// Where Kamailio inserts new Via parameters of a forwarded request: before the `;` of the
/// first parameter, or after host[:port] when there is none.
fn via_anchor(req: &SipMsg, v: &super::Via) -> usize {
    let raw: &[u8] = &v.raw;
    if let Some((semi, _)) = v.params.first().and_then(|p| param_span(req, v, p)) {
        return semi;
    }
    let Some(h) = req.offset_of(&v.host).and_then(|o| o.checked_sub(v.start)) else {
        return raw.len();
    };
    let mut at = h + v.host.len();
    if raw.get(at) == Some(&b':') {
        at += 1;
        while raw.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
    }
    at.min(raw.len())
}

/// The top Via of a request being forwarded, with `;received=IP` and `;rport=PORT` where
/// Kamailio puts them: `received` right after host:port (an existing one replaced in place),
/// `rport` filled in where it was written (a forced one after `received`). `None` when
/// nothing changes.
/// The top Via and what it needs (`rport`, `received`), or `None` when nothing changes.
fn via1_changes<'a>(
    req: &'a SipMsg,
    src: &SocketAddr,
    force_rport: bool,
) -> Option<(&'a super::Via, bool, bool)> {
    let v = req.via1().ok()?;
    let add_rport = force_rport || v.rport().is_some();
    let add_received = needs_received(req, src);
    (add_rport || add_received).then_some((v, add_rport, add_received))
}

/// Span of the named parameter of `v` (see [`param_span`]).
fn named_param_span(req: &SipMsg, v: &super::Via, name: &[u8]) -> Option<(usize, usize)> {
    v.params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .and_then(|p| param_span(req, v, p))
}

pub fn via1_with_received(req: &SipMsg, src: &SocketAddr, force_rport: bool) -> Option<Vec<u8>> {
    let (v, add_rport, add_received) = via1_changes(req, src, force_rport)?;
    let raw: &[u8] = &v.raw;
    let anchor = via_anchor(req, v);
    let span_of = |name: &[u8]| named_param_span(req, v, name);
    // (start, end, order at the same offset, text)
    let mut edits: Vec<(usize, usize, u8, String)> = Vec::new();
    if add_received {
        let text = format!(";received={}", ip_text(src));
        match span_of(b"received") {
            Some((a, b)) => edits.push((a, b, 0, text)),
            None => edits.push((anchor, anchor, 0, text)),
        }
    }
    if add_rport {
        let text = format!(";rport={}", src.port());
        match span_of(b"rport") {
            Some((a, b)) => edits.push((a, b, 1, text)),
            None => edits.push((anchor, anchor, 1, text)),
        }
    }
    edits.sort_by_key(|e| (e.0, e.2));
    let mut out = Vec::with_capacity(raw.len() + 40);
    let mut pos = 0;
    for (a, b, _, text) in edits {
        if a < pos {
            continue;
        }
        out.extend_from_slice(raw.get(pos..a).unwrap_or(&[]));
        out.extend_from_slice(text.as_bytes());
        pos = b;
    }
    out.extend_from_slice(raw.get(pos..).unwrap_or(&[]));
    Some(out)
}

/// A reply's top Via as Kamailio builds it: `rport` filled in where it was written, and what
/// goes at the end of the Via header line (a forced `rport`, then `received`, after every
/// via-parm of that line, as Kamailio appends them).
fn reply_via1(req: &SipMsg, src: &SocketAddr, force_rport: bool) -> Option<(Vec<u8>, String)> {
    let (v, add_rport, add_received) = via1_changes(req, src, force_rport)?;
    let raw: &[u8] = &v.raw;
    let mut body = raw.to_vec();
    let mut tail = String::new();
    if add_rport {
        let text = format!(";rport={}", src.port());
        match named_param_span(req, v, b"rport") {
            Some((a, b)) => {
                body.clear();
                body.extend_from_slice(raw.get(..a).unwrap_or(&[]));
                body.extend_from_slice(text.as_bytes());
                body.extend_from_slice(raw.get(b..).unwrap_or(&[]));
            }
            None => tail.push_str(&text),
        }
    }
    if add_received {
        tail.push_str(&format!(";received={}", ip_text(src)));
    }
    Some((body, tail))
}

/// Builds the reply bytes.
pub fn build_reply(req: &SipMsg, spec: &ReplySpec<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(req.buf().len() + 128);
    let _ = write!(out, "SIP/2.0 {} ", spec.code);
    out.extend_from_slice(spec.reason);
    out.extend_from_slice(b"\r\n");
    let via1 = spec
        .src
        .as_ref()
        .and_then(|s| reply_via1(req, s, spec.force_rport));
    let via1_hdr = req.via1().ok().map(|v| (v.header, v.start, v.end));
    let buf = req.buf();
    for (i, h) in req.headers().iter().enumerate() {
        let line = buf.get(h.start..h.end).unwrap_or(&[]);
        match h.kind {
            HdrKind::Via => match (&via1, via1_hdr) {
                (Some((new, tail)), Some((hi, vs, ve))) if hi == i => {
                    out.extend_from_slice(buf.get(h.start..vs).unwrap_or(&[]));
                    out.extend_from_slice(new);
                    let rest = buf.get(ve..h.end).unwrap_or(&[]);
                    // The tail goes at the end of the line's value (before its CRLF).
                    let body_end = rest
                        .iter()
                        .rposition(|b| !matches!(b, b'\r' | b'\n'))
                        .map_or(0, |p| p + 1);
                    out.extend_from_slice(&rest[..body_end]);
                    out.extend_from_slice(tail.as_bytes());
                    out.extend_from_slice(&rest[body_end..]);
                }
                _ => out.extend_from_slice(line),
            },
            HdrKind::RecordRoute if (180..300).contains(&spec.code) => out.extend_from_slice(line),
            HdrKind::From | HdrKind::CallId | HdrKind::CSeq => out.extend_from_slice(line),
            HdrKind::To => {
                let has_tag = req.to().is_ok_and(|t| t.tag().is_some());
                match spec.to_tag {
                    Some(tag) if spec.code > 100 && !has_tag => {
                        // Insert ";tag=" at the end of the value (before the line ending).
                        let vend = req
                            .offset_of(&h.value)
                            .map(|o| o + h.value.len())
                            .unwrap_or(h.end);
                        out.extend_from_slice(buf.get(h.start..vend).unwrap_or(&[]));
                        out.extend_from_slice(b";tag=");
                        out.extend_from_slice(tag);
                        out.extend_from_slice(buf.get(vend..h.end).unwrap_or(&[]));
                    }
                    _ => out.extend_from_slice(line),
                }
            }
            _ => {}
        }
        if !line.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    for extra in spec.extra_headers {
        out.extend_from_slice(extra);
    }
    if let Some((ctype, _)) = spec.body
        && !ctype.is_empty()
    {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ctype);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(s) = spec.server {
        out.extend_from_slice(b"Server: ");
        out.extend_from_slice(s);
        out.extend_from_slice(b"\r\n");
    }
    let body = spec.body.map(|(_, b)| b).unwrap_or(&[]);
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const REQ: &[u8] = b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.1.1.1:5099;branch=z9hG4bK-1;rport;x=y\r\n\
Via: SIP/2.0/TCP 10.2.2.2;branch=z9hG4bK-0\r\n\
Record-Route: <sip:10.2.2.2;lr>\r\n\
From: \"A\" <sip:a@127.0.0.1>;tag=1\r\n\
To: <sip:bob@127.0.0.1>\r\n\
Call-ID: abc@1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:a@10.1.1.1>\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn matches_kamailio_layout() {
        let req = SipMsg::parse(Bytes::from_static(REQ)).unwrap();
        let extra = [Bytes::from_static(b"X-Extra: 1\r\n")];
        let spec = ReplySpec {
            code: 404,
            reason: b"Not Here",
            to_tag: Some(b"abc.123"),
            extra_headers: &extra,
            server: Some(b"ksr"),
            src: Some("127.0.0.1:15999".parse().unwrap()),
            ..ReplySpec::default()
        };
        let r = String::from_utf8(build_reply(&req, &spec)).unwrap();
        assert_eq!(
            r,
            "SIP/2.0 404 Not Here\r\n\
Via: SIP/2.0/UDP 10.1.1.1:5099;branch=z9hG4bK-1;rport=15999;x=y;received=127.0.0.1\r\n\
Via: SIP/2.0/TCP 10.2.2.2;branch=z9hG4bK-0\r\n\
From: \"A\" <sip:a@127.0.0.1>;tag=1\r\n\
To: <sip:bob@127.0.0.1>;tag=abc.123\r\n\
Call-ID: abc@1\r\n\
CSeq: 1 INVITE\r\n\
X-Extra: 1\r\n\
Server: ksr\r\n\
Content-Length: 0\r\n\r\n"
        );
        let ok = String::from_utf8(build_reply(
            &req,
            &ReplySpec {
                code: 200,
                reason: b"OK",
                ..ReplySpec::default()
            },
        ))
        .unwrap();
        assert!(ok.contains("Record-Route: <sip:10.2.2.2;lr>\r\nFrom:"));
        assert!(
            ok.contains("To: <sip:bob@127.0.0.1>\r\n"),
            "no tag given, none added"
        );
        let reparsed = SipMsg::parse(Bytes::from(ok.into_bytes())).unwrap();
        assert_eq!(reparsed.status(), Some(200));
    }

    #[test]
    fn received_only_when_needed() {
        let req = SipMsg::parse(Bytes::from_static(
            b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5000;branch=z9hG4bKa\r\n\r\n",
        ))
        .unwrap();
        let same: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(via1_with_received(&req, &same, false).is_none());
        assert_eq!(
            via1_with_received(&req, &same, true).unwrap(),
            b"SIP/2.0/UDP 127.0.0.1:5000;rport=5000;branch=z9hG4bKa",
            "force_rport alone does not add received (Kamailio received_test)"
        );
        let other: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(
            via1_with_received(&req, &other, false).unwrap(),
            b"SIP/2.0/UDP 127.0.0.1:5000;received=10.0.0.1;branch=z9hG4bKa"
        );
        let req = SipMsg::parse(Bytes::from_static(
            b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5060;rport;branch=z9hG4bKz;foo=bar\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(
            via1_with_received(&req, &other, false).unwrap(),
            b"SIP/2.0/UDP 10.1.1.1:5060;received=10.0.0.1;rport=5000;branch=z9hG4bKz;foo=bar"
        );
        let (body, tail) = reply_via1(&req, &other, false).unwrap();
        assert_eq!(
            body,
            b"SIP/2.0/UDP 10.1.1.1:5060;rport=5000;branch=z9hG4bKz;foo=bar"
        );
        assert_eq!(tail, ";received=10.0.0.1");
    }
}
