//! The SIP message: zero-copy parse of the received bytes, lazily parsed typed headers, and
//! recorded changes applied once when the message is serialized.

use super::auth::Credentials;
use super::hdr::{HdrKind, kind_of, same_name};
use super::method::Method;
use super::nameaddr::{NameAddr, parse_list};
use super::scan::{eq_ic, is_token, parse_u32, parse_u64, slice_of, trim_lws};
use super::uri::{Uri, UriError};
use super::via::{Via, parse_via_value};
use bytes::Bytes;
use std::cell::OnceCell;

/// Limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_size: usize,
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 65535,
            max_headers: 512,
        }
    }
}

/// Why a message could not be parsed. The text is fit for a `400` reason or a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("message too large")]
    TooLarge,
    #[error("bad first line")]
    BadFirstLine,
    #[error("bad request method")]
    BadMethod,
    #[error("bad SIP version")]
    BadVersion,
    #[error("bad status code")]
    BadStatus,
    #[error("header line without ':'")]
    NoColon,
    #[error("bad header name")]
    BadHeaderName,
    #[error("too many headers")]
    TooManyHeaders,
    #[error("end of headers not found")]
    NoEndOfHeaders,
    #[error("bad Content-Length")]
    BadContentLength,
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    #[error("body shorter than Content-Length")]
    BodyTooShort,
}

/// A header that is missing or does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HdrError {
    #[error("missing {0:?} header")]
    Missing(HdrKind),
    #[error("bad {0:?} header: {1}")]
    Bad(HdrKind, &'static str),
    #[error("duplicate {0:?} header")]
    Duplicate(HdrKind),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstLine {
    Request {
        method: Method,
        method_raw: Bytes,
        uri: Bytes,
        version: Bytes,
    },
    Reply {
        version: Bytes,
        code: u16,
        reason: Bytes,
    },
}

/// One header line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: HdrKind,
    pub name: Bytes,
    /// The value, trimmed; folded continuation lines stay inside it.
    pub value: Bytes,
    /// Absolute offsets: start of the line, start of the value, end of the line (after its
    /// line ending).
    pub start: usize,
    pub value_start: usize,
    pub end: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    pub number: u32,
    pub method: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *`.
    Star,
    List(Vec<NameAddr>),
}

/// A change recorded against the original buffer (Kamailio's "lump").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// Offsets in the original buffer; `start == end` for an insertion.
    pub start: usize,
    pub end: usize,
    pub data: Bytes,
    /// Among edits at the same offset, lower goes first; then insertion order.
    pub order: u8,
    seq: u32,
}

/// Order of edits at one offset: insertions recorded by scripts, then the Via added when a
/// request is forwarded (so a Record-Route added by `record_route()` comes before it).
pub const ORDER_SCRIPT: u8 = 10;
pub const ORDER_VIA: u8 = 20;

impl Edit {
    pub fn insert(at: usize, data: Bytes, order: u8) -> Edit {
        Edit {
            start: at,
            end: at,
            data,
            order,
            seq: u32::MAX,
        }
    }

    /// An insertion that sorts as if recorded at `seq` (an edit whose text is only known when
    /// the message is sent, placed where the script asked for it).
    pub fn insert_at_seq(at: usize, data: Bytes, order: u8, seq: u32) -> Edit {
        Edit {
            start: at,
            end: at,
            data,
            order,
            seq,
        }
    }

    pub fn replace(start: usize, end: usize, data: Bytes) -> Edit {
        Edit {
            start,
            end,
            data,
            order: ORDER_SCRIPT,
            seq: u32::MAX,
        }
    }
}

#[derive(Clone, Default)]
struct Cache {
    ruri: OnceCell<Result<Uri, UriError>>,
    from: OnceCell<Result<NameAddr, HdrError>>,
    to: OnceCell<Result<NameAddr, HdrError>>,
    vias: OnceCell<Result<Vec<Via>, HdrError>>,
    cseq: OnceCell<Result<CSeq, HdrError>>,
    contacts: OnceCell<Result<Option<Contacts>, HdrError>>,
    routes: OnceCell<Result<Vec<NameAddr>, HdrError>>,
    record_routes: OnceCell<Result<Vec<NameAddr>, HdrError>>,
    max_forwards: OnceCell<Result<Option<u32>, HdrError>>,
    expires: OnceCell<Result<Option<u32>, HdrError>>,
}

/// The bytes of the faked message (one static buffer, so it can be recognised).
static FAKED_RAW: &[u8] = b"OPTIONS sip:you@kamailio.org SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\nFrom: <sip:you@kamailio.org>;tag=123\r\nTo: <sip:you@kamailio.org>\r\nCall-ID: 123\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

#[derive(Clone)]
pub struct SipMsg {
    buf: Bytes,
    first: FirstLine,
    /// Offset where the headers start (after the first line's line ending).
    first_end: usize,
    headers: Vec<Header>,
    /// Offset of the empty line that ends the headers.
    hdr_end: usize,
    body: Bytes,
    cache: Cache,
    new_uri: Option<Bytes>,
    new_uri_parsed: OnceCell<Result<Uri, UriError>>,
    edits: Vec<Edit>,
    edit_seq: u32,
    new_body: Option<Bytes>,
    /// The reply's status line was changed (`change_reply_status`): serialize from `first`.
    status_changed: bool,
}

impl std::fmt::Debug for SipMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipMsg")
            .field("first", &self.first)
            .field("headers", &self.headers.len())
            .field("body", &self.body.len())
            .finish()
    }
}

/// Finds the end of the line starting at `from`: (end of content, start of next line).
fn line_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = buf.get(from..)?;
    let nl = memchr::memchr(b'\n', rest)?;
    let end = if nl > 0 && rest[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((from + end, from + nl + 1))
}

impl SipMsg {
    pub fn parse(buf: Bytes) -> Result<SipMsg, ParseError> {
        SipMsg::parse_with(buf, &Limits::default(), true)
    }

    /// Parses `buf`. With `datagram`, a body shorter than Content-Length is an error and a
    /// longer one is cut to Content-Length (RFC 3261 §18.3); on streams the framing layer
    /// already cut the message.
    pub fn parse_with(buf: Bytes, limits: &Limits, datagram: bool) -> Result<SipMsg, ParseError> {
        if buf.len() > limits.max_size {
            return Err(ParseError::TooLarge);
        }
        // Leading CRLFs before a message are allowed (RFC 3261 §7.5).
        let mut start = 0;
        while let Some(b) = buf.get(start)
            && (*b == b'\r' || *b == b'\n')
        {
            start += 1;
        }
        if start >= buf.len() {
            return Err(ParseError::Empty);
        }
        let (fl_end, mut pos) = line_end(&buf, start).ok_or(ParseError::NoEndOfHeaders)?;
        let first = parse_first_line(&buf, &buf[start..fl_end])?;
        let first_end = pos;
        let mut headers: Vec<Header> = Vec::with_capacity(16);
        let hdr_end;
        loop {
            let (content_end, next) = line_end(&buf, pos).ok_or(ParseError::NoEndOfHeaders)?;
            if content_end == pos {
                hdr_end = pos;
                pos = next;
                break;
            }
            let first_byte = buf[pos];
            if first_byte == b' ' || first_byte == b'\t' {
                // Folded continuation of the previous header.
                let Some(h) = headers.last_mut() else {
                    return Err(ParseError::BadHeaderName);
                };
                h.end = next;
                h.value = slice_of(&buf, trim_lws(&buf[h.value_start..content_end]));
                pos = next;
                continue;
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            let line = &buf[pos..content_end];
            let colon = memchr::memchr(b':', line).ok_or(ParseError::NoColon)?;
            let name = trim_lws(&line[..colon]);
            if name.is_empty() || !name.iter().all(|b| is_token(*b)) {
                return Err(ParseError::BadHeaderName);
            }
            let value_start = pos + colon + 1;
            let value = trim_lws(&buf[value_start..content_end]);
            headers.push(Header {
                kind: kind_of(name),
                name: slice_of(&buf, name),
                value: slice_of(&buf, value),
                start: pos,
                value_start,
                end: next,
            });
            pos = next;
        }
        // Content-Length: all occurrences must agree.
        let mut cl: Option<u64> = None;
        for h in headers.iter().filter(|h| h.kind == HdrKind::ContentLength) {
            let v = parse_u64(&h.value).ok_or(ParseError::BadContentLength)?;
            if cl.is_some_and(|c| c != v) {
                return Err(ParseError::ConflictingContentLength);
            }
            cl = Some(v);
        }
        let avail = buf.len().saturating_sub(pos);
        let body_len = match cl {
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| ParseError::BadContentLength)?;
                if n > avail {
                    if datagram {
                        return Err(ParseError::BodyTooShort);
                    }
                    avail
                } else {
                    n
                }
            }
            None => avail,
        };
        let body = buf.slice(pos..pos + body_len);
        Ok(SipMsg {
            buf,
            first,
            first_end,
            headers,
            hdr_end,
            body,
            cache: Cache::default(),
            new_uri: None,
            new_uri_parsed: OnceCell::new(),
            edits: Vec::new(),
            edit_seq: 0,
            new_body: None,
            status_changed: false,
        })
    }

    /// The faked message Kamailio uses for routes that run without a SIP message
    /// (event routes, timer routes).
    pub fn faked() -> SipMsg {
        let raw = Bytes::from_static(FAKED_RAW);
        match SipMsg::parse(raw) {
            Ok(m) => m,
            // The literal above always parses; keep a total fallback anyway.
            Err(_) => SipMsg {
                buf: Bytes::new(),
                first: FirstLine::Request {
                    method: Method::Options,
                    method_raw: Bytes::from_static(b"OPTIONS"),
                    uri: Bytes::from_static(b"sip:you@kamailio.org"),
                    version: Bytes::from_static(b"SIP/2.0"),
                },
                first_end: 0,
                headers: Vec::new(),
                hdr_end: 0,
                body: Bytes::new(),
                cache: Cache::default(),
                new_uri: None,
                new_uri_parsed: OnceCell::new(),
                edits: Vec::new(),
                edit_seq: 0,
                new_body: None,
                status_changed: false,
            },
        }
    }

    /// True for the message built by [`SipMsg::faked`] (corex `is_faked_msg()`).
    pub fn is_faked(&self) -> bool {
        std::ptr::eq(self.buf.as_ptr(), FAKED_RAW.as_ptr())
    }

    // ---- start line ----

    pub fn buf(&self) -> &Bytes {
        &self.buf
    }

    pub fn first_line(&self) -> &FirstLine {
        &self.first
    }

    pub fn is_request(&self) -> bool {
        matches!(self.first, FirstLine::Request { .. })
    }

    pub fn is_reply(&self) -> bool {
        !self.is_request()
    }

    /// The request method (`Method::Other` for replies; use [`SipMsg::cseq`] there).
    pub fn method(&self) -> Method {
        match &self.first {
            FirstLine::Request { method, .. } => *method,
            FirstLine::Reply { .. } => match self.cseq() {
                Ok(c) => Method::parse(&c.method),
                Err(_) => Method::Other,
            },
        }
    }

    /// The method as written (for replies: the CSeq method, like Kamailio's `$rm`).
    pub fn method_raw(&self) -> Bytes {
        match &self.first {
            FirstLine::Request { method_raw, .. } => method_raw.clone(),
            FirstLine::Reply { .. } => self.cseq().map(|c| c.method.clone()).unwrap_or_default(),
        }
    }

    pub fn version(&self) -> &Bytes {
        match &self.first {
            FirstLine::Request { version, .. } | FirstLine::Reply { version, .. } => version,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.first {
            FirstLine::Reply { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn reason(&self) -> Option<&Bytes> {
        match &self.first {
            FirstLine::Reply { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The Request-URI as received.
    pub fn ruri_orig(&self) -> Option<&Bytes> {
        match &self.first {
            FirstLine::Request { uri, .. } => Some(uri),
            _ => None,
        }
    }

    /// The current Request-URI (after rewrites).
    pub fn ruri(&self) -> Option<&Bytes> {
        self.new_uri.as_ref().or_else(|| self.ruri_orig())
    }

    /// The current Request-URI, parsed.
    pub fn parsed_ruri(&self) -> Result<&Uri, UriError> {
        let r = if self.new_uri.is_some() {
            self.new_uri_parsed.get_or_init(|| match &self.new_uri {
                Some(u) => Uri::parse(u),
                None => Err(UriError::NoScheme),
            })
        } else {
            self.cache.ruri.get_or_init(|| match self.ruri_orig() {
                Some(u) => Uri::parse(u),
                None => Err(UriError::NoScheme),
            })
        };
        r.as_ref().map_err(|e| *e)
    }

    /// The Request-URI as received, parsed.
    pub fn parsed_ruri_orig(&self) -> Result<&Uri, UriError> {
        self.cache
            .ruri
            .get_or_init(|| match self.ruri_orig() {
                Some(u) => Uri::parse(u),
                None => Err(UriError::NoScheme),
            })
            .as_ref()
            .map_err(|e| *e)
    }

    /// Rewrites the Request-URI (visible at once, like Kamailio's `new_uri`).
    pub fn set_ruri(&mut self, uri: Bytes) {
        self.new_uri = Some(uri);
        self.new_uri_parsed = OnceCell::new();
    }

    /// Drops the rewrite (`revert_uri`).
    pub fn reset_ruri(&mut self) {
        self.new_uri = None;
        self.new_uri_parsed = OnceCell::new();
    }

    pub fn ruri_rewritten(&self) -> bool {
        self.new_uri.is_some()
    }

    // ---- headers ----

    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    pub fn header(&self, kind: HdrKind) -> Option<&Header> {
        self.headers.iter().find(|h| h.kind == kind)
    }

    pub fn headers_of(&self, kind: HdrKind) -> impl Iterator<Item = &Header> {
        self.headers.iter().filter(move |h| h.kind == kind)
    }

    /// Headers with this name (long or compact form, any case).
    pub fn headers_named<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a Header> + 'a {
        let kind = kind_of(name);
        self.headers.iter().filter(move |h| {
            if kind == HdrKind::Other {
                eq_ic(&h.name, name)
            } else {
                h.kind == kind
            }
        })
    }

    pub fn header_named<'a>(&'a self, name: &'a [u8]) -> Option<&'a Header> {
        self.headers_named(name).next()
    }

    fn single(&self, kind: HdrKind) -> Result<&Header, HdrError> {
        let mut it = self.headers_of(kind);
        let h = it.next().ok_or(HdrError::Missing(kind))?;
        if it.next().is_some() {
            return Err(HdrError::Duplicate(kind));
        }
        Ok(h)
    }

    fn name_addr(&self, kind: HdrKind) -> Result<NameAddr, HdrError> {
        let h = self.single(kind)?;
        NameAddr::parse_in(&self.buf, &h.value).map_err(|e| {
            HdrError::Bad(
                kind,
                match e {
                    super::nameaddr::NameAddrError::Quote => "unterminated quote",
                    super::nameaddr::NameAddrError::Angle => "missing '>'",
                    super::nameaddr::NameAddrError::Uri(_) => "bad URI",
                    _ => "bad value",
                },
            )
        })
    }

    pub fn from(&self) -> Result<&NameAddr, HdrError> {
        self.cache
            .from
            .get_or_init(|| self.name_addr(HdrKind::From))
            .as_ref()
            .map_err(|e| *e)
    }

    pub fn to(&self) -> Result<&NameAddr, HdrError> {
        self.cache
            .to
            .get_or_init(|| self.name_addr(HdrKind::To))
            .as_ref()
            .map_err(|e| *e)
    }

    pub fn callid(&self) -> Option<&Bytes> {
        self.header(HdrKind::CallId).map(|h| &h.value)
    }

    pub fn cseq(&self) -> Result<&CSeq, HdrError> {
        self.cache
            .cseq
            .get_or_init(|| {
                let h = self.single(HdrKind::CSeq)?;
                let v: &[u8] = &h.value;
                let sp = v
                    .iter()
                    .position(|b| super::scan::is_lws(*b))
                    .ok_or(HdrError::Bad(HdrKind::CSeq, "no method"))?;
                let number =
                    parse_u32(&v[..sp]).ok_or(HdrError::Bad(HdrKind::CSeq, "bad number"))?;
                let method = trim_lws(&v[sp..]);
                if method.is_empty() || !method.iter().all(|b| is_token(*b)) {
                    return Err(HdrError::Bad(HdrKind::CSeq, "bad method"));
                }
                Ok(CSeq {
                    number,
                    method: slice_of(&self.buf, method),
                })
            })
            .as_ref()
            .map_err(|e| *e)
    }

    /// Every via-parm of every Via header, top first.
    pub fn vias(&self) -> Result<&[Via], HdrError> {
        self.cache
            .vias
            .get_or_init(|| {
                let mut out = Vec::new();
                for (i, h) in self.headers.iter().enumerate() {
                    if h.kind != HdrKind::Via {
                        continue;
                    }
                    let off = self.offset_of(&h.value).unwrap_or(h.value_start);
                    let vs = parse_via_value(&self.buf, &h.value, off, i)
                        .map_err(|_| HdrError::Bad(HdrKind::Via, "bad via"))?;
                    out.extend(vs);
                }
                if out.is_empty() {
                    return Err(HdrError::Missing(HdrKind::Via));
                }
                Ok(out)
            })
            .as_deref()
            .map_err(|e| *e)
    }

    pub fn via1(&self) -> Result<&Via, HdrError> {
        self.vias()?.first().ok_or(HdrError::Missing(HdrKind::Via))
    }

    pub fn via2(&self) -> Option<&Via> {
        self.vias().ok()?.get(1)
    }

    /// All Contact values (`None` when there is no Contact header).
    pub fn contacts(&self) -> Result<Option<&Contacts>, HdrError> {
        self.cache
            .contacts
            .get_or_init(|| {
                let mut list = Vec::new();
                let mut star = false;
                let mut any = false;
                for h in self.headers_of(HdrKind::Contact) {
                    any = true;
                    if trim_lws(&h.value) == b"*" {
                        star = true;
                        continue;
                    }
                    list.extend(
                        parse_list(&self.buf, &h.value)
                            .map_err(|_| HdrError::Bad(HdrKind::Contact, "bad contact"))?,
                    );
                }
                if !any {
                    return Ok(None);
                }
                if star {
                    if !list.is_empty() {
                        return Err(HdrError::Bad(HdrKind::Contact, "'*' with other contacts"));
                    }
                    return Ok(Some(Contacts::Star));
                }
                Ok(Some(Contacts::List(list)))
            })
            .as_ref()
            .map(|o| o.as_ref())
            .map_err(|e| *e)
    }

    fn addr_list(&self, kind: HdrKind) -> Result<Vec<NameAddr>, HdrError> {
        let mut out = Vec::new();
        for h in self.headers_of(kind) {
            out.extend(
                parse_list(&self.buf, &h.value).map_err(|_| HdrError::Bad(kind, "bad value"))?,
            );
        }
        Ok(out)
    }

    /// Every Route value, in order.
    pub fn routes(&self) -> Result<&[NameAddr], HdrError> {
        self.cache
            .routes
            .get_or_init(|| self.addr_list(HdrKind::Route))
            .as_deref()
            .map_err(|e| *e)
    }

    pub fn record_routes(&self) -> Result<&[NameAddr], HdrError> {
        self.cache
            .record_routes
            .get_or_init(|| self.addr_list(HdrKind::RecordRoute))
            .as_deref()
            .map_err(|e| *e)
    }

    fn number_header(&self, kind: HdrKind, max: u64) -> Result<Option<u32>, HdrError> {
        let Some(h) = self.header(kind) else {
            return Ok(None);
        };
        match parse_u64(&h.value) {
            Some(v) if v <= max => Ok(Some(v as u32)),
            _ => Err(HdrError::Bad(kind, "bad number")),
        }
    }

    /// Max-Forwards (0..=255 is Kamailio's accepted range).
    pub fn max_forwards(&self) -> Result<Option<u32>, HdrError> {
        *self
            .cache
            .max_forwards
            .get_or_init(|| self.number_header(HdrKind::MaxForwards, 255))
    }

    /// The Expires header value.
    pub fn expires(&self) -> Result<Option<u32>, HdrError> {
        *self
            .cache
            .expires
            .get_or_init(|| self.number_header(HdrKind::Expires, u32::MAX as u64))
    }

    pub fn content_length(&self) -> Option<usize> {
        self.header(HdrKind::ContentLength)
            .and_then(|h| parse_u64(&h.value))
            .and_then(|v| usize::try_from(v).ok())
    }

    pub fn content_type(&self) -> Option<&Bytes> {
        self.header(HdrKind::ContentType).map(|h| &h.value)
    }

    pub fn user_agent(&self) -> Option<&Bytes> {
        self.header(HdrKind::UserAgent).map(|h| &h.value)
    }

    /// Digest credentials in headers of `kind` (Authorization or Proxy-Authorization).
    pub fn credentials(&self, kind: HdrKind) -> Vec<(usize, Credentials)> {
        self.headers
            .iter()
            .enumerate()
            .filter(|(_, h)| h.kind == kind)
            .filter_map(|(i, h)| {
                Credentials::parse_in(&self.buf, &h.value)
                    .ok()
                    .map(|c| (i, c))
            })
            .collect()
    }

    /// The original body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as it will be sent (after `set_body`).
    pub fn current_body(&self) -> &Bytes {
        self.new_body.as_ref().unwrap_or(&self.body)
    }

    /// Absolute offset of a slice of this message's buffer (from the typed accessors).
    pub fn offset_of(&self, part: &[u8]) -> Option<usize> {
        let b = self.buf.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        (p >= b && p + part.len() <= b + self.buf.len()).then(|| p - b)
    }

    /// Offset where headers start (right after the first line).
    pub fn headers_start(&self) -> usize {
        self.first_end
    }

    /// Offset of the empty line that ends the headers (where appended headers go).
    pub fn headers_end(&self) -> usize {
        self.hdr_end
    }

    /// Parses every header a proxy relies on and reports the first problem (used by sanity
    /// checks and to decide a `400`).
    pub fn validate(&self) -> Result<(), HdrError> {
        if !self.version().eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(HdrError::Bad(HdrKind::Other, "unsupported SIP version"));
        }
        self.vias()?;
        self.from()?;
        self.to()?;
        self.cseq()?;
        if self.callid().is_none() {
            return Err(HdrError::Missing(HdrKind::CallId));
        }
        for k in [HdrKind::CallId, HdrKind::MaxForwards] {
            if self.headers_of(k).nth(1).is_some() {
                return Err(HdrError::Duplicate(k));
            }
        }
        self.max_forwards()?;
        self.expires()?;
        self.contacts()?;
        self.routes()?;
        self.record_routes()?;
        if let FirstLine::Request { method_raw, .. } = &self.first {
            self.parsed_ruri_orig()
                .map_err(|_| HdrError::Bad(HdrKind::Other, "bad Request-URI"))?;
            if self.cseq()?.method != *method_raw {
                return Err(HdrError::Bad(
                    HdrKind::CSeq,
                    "method differs from the request's",
                ));
            }
        }
        Ok(())
    }

    // ---- changes ----

    /// Records an edit; it shows only when the message is serialized.
    /// The sequence number the next recorded edit gets.
    pub fn next_edit_seq(&self) -> u32 {
        self.edit_seq
    }

    pub fn add_edit(&mut self, mut e: Edit) {
        e.seq = self.edit_seq;
        self.edit_seq = self.edit_seq.wrapping_add(1);
        self.edits.push(e);
    }

    pub fn edits(&self) -> &[Edit] {
        &self.edits
    }

    /// Removes header `idx` (index into [`SipMsg::headers`]).
    pub fn remove_header(&mut self, idx: usize) -> bool {
        let Some(h) = self.headers.get(idx) else {
            return false;
        };
        let (s, e) = (h.start, h.end);
        if self
            .edits
            .iter()
            .any(|x| x.start == s && x.end == e && x.data.is_empty())
        {
            return true;
        }
        self.add_edit(Edit::replace(s, e, Bytes::new()));
        true
    }

    /// Appends a raw header line (must end with CRLF) after the last header.
    pub fn append_header(&mut self, line: Bytes) {
        let at = self.hdr_end;
        self.add_edit(Edit::insert(at, line, ORDER_SCRIPT));
    }

    /// Inserts a raw header line before the first header.
    pub fn insert_header_first(&mut self, line: Bytes) {
        let at = self.first_end;
        self.add_edit(Edit::insert(at, line, ORDER_SCRIPT));
    }

    /// Inserts a raw header line after header `idx`.
    pub fn insert_header_after(&mut self, idx: usize, line: Bytes) -> bool {
        let Some(h) = self.headers.get(idx) else {
            return false;
        };
        let at = h.end;
        self.add_edit(Edit::insert(at, line, ORDER_SCRIPT));
        true
    }

    /// Inserts a raw header line before header `idx`.
    pub fn insert_header_before(&mut self, idx: usize, line: Bytes) -> bool {
        let Some(h) = self.headers.get(idx) else {
            return false;
        };
        let at = h.start;
        self.add_edit(Edit::insert(at, line, ORDER_SCRIPT));
        true
    }

    /// Replaces the body; Content-Length is fixed when serializing.
    pub fn set_body(&mut self, body: Bytes) {
        self.new_body = Some(body);
    }

    /// Changes a reply's status code and reason (textopsx `change_reply_status`); false for
    /// requests.
    pub fn set_reply_status(&mut self, new_code: u16, new_reason: Bytes) -> bool {
        match &mut self.first {
            FirstLine::Reply { code, reason, .. } => {
                *code = new_code;
                *reason = new_reason;
                self.status_changed = true;
                true
            }
            FirstLine::Request { .. } => false,
        }
    }

    /// True when edits or a new body/R-URI are pending.
    pub fn is_modified(&self) -> bool {
        !self.edits.is_empty()
            || self.new_body.is_some()
            || self.new_uri.is_some()
            || self.status_changed
    }

    /// Forgets the recorded edits `f` selects (rr's `remove_record_route`).
    pub fn remove_edits_where(&mut self, f: impl Fn(&Edit) -> bool) {
        self.edits.retain(|e| !f(e));
    }

    /// Forgets every recorded change (not the R-URI rewrite).
    pub fn clear_edits(&mut self) {
        self.edits.clear();
        self.new_body = None;
    }

    /// Builds the message as it would be sent: new R-URI, recorded edits plus `extra`
    /// (e.g. the Via a proxy adds), new body with a fixed Content-Length.
    pub fn serialize(&self, extra: &[Edit]) -> Vec<u8> {
        self.serialize_with_uri(self.ruri(), extra)
    }

    /// Like [`SipMsg::serialize`] with an explicit Request-URI (per-branch URIs of tm).
    pub fn serialize_with_uri(&self, uri: Option<&Bytes>, extra: &[Edit]) -> Vec<u8> {
        let body = self.current_body();
        let mut edits: Vec<&Edit> = self.edits.iter().chain(extra.iter()).collect();
        // Content-Length must match the body that goes out.
        let cl_fix;
        let body_changed = self.new_body.is_some();
        if body_changed {
            let len = Bytes::from(body.len().to_string());
            cl_fix = match self.header(HdrKind::ContentLength) {
                Some(h) => {
                    let vs = self.offset_of(&h.value).unwrap_or(h.value_start);
                    Edit::replace(vs, vs + h.value.len(), len)
                }
                None => Edit::insert(
                    self.hdr_end,
                    Bytes::from(format!("Content-Length: {}\r\n", body.len())),
                    u8::MAX,
                ),
            };
            edits.push(&cl_fix);
        }
        edits.sort_by_key(|e| (e.start, e.start != e.end, e.order, e.seq));
        let mut out = Vec::with_capacity(self.buf.len() + 256);
        match (&self.first, uri) {
            (
                FirstLine::Request {
                    method_raw,
                    version,
                    ..
                },
                Some(u),
            ) => {
                out.extend_from_slice(method_raw);
                out.push(b' ');
                out.extend_from_slice(u);
                out.push(b' ');
                out.extend_from_slice(version);
                out.extend_from_slice(b"\r\n");
            }
            (
                FirstLine::Reply {
                    version,
                    code,
                    reason,
                },
                _,
            ) if self.status_changed => {
                out.extend_from_slice(version);
                out.push(b' ');
                out.extend_from_slice(code.to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(reason);
                out.extend_from_slice(b"\r\n");
            }
            _ => out.extend_from_slice(self.buf.get(..self.first_end).unwrap_or(&[])),
        }
        let mut pos = self.first_end;
        let limit = self.hdr_end;
        for e in edits {
            if e.start > limit || e.end > limit {
                continue;
            }
            if e.start < pos {
                // Starts inside bytes an earlier edit already removed or replaced: as
                // Kamailio fixes overlapping lumps, it moves to where that edit ended
                // (removing only what lies beyond) and its new text still goes out.
                out.extend_from_slice(&e.data);
                pos = pos.max(e.end);
                continue;
            }
            out.extend_from_slice(&self.buf[pos..e.start]);
            out.extend_from_slice(&e.data);
            pos = e.end.max(e.start);
        }
        out.extend_from_slice(self.buf.get(pos..limit).unwrap_or(&[]));
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    /// Applies the recorded changes to the message itself and re-parses it (textopsx
    /// `msg_apply_changes`). The R-URI rewrite becomes the received R-URI.
    pub fn apply_changes(&mut self) -> Result<(), ParseError> {
        let data = self.serialize(&[]);
        let m = SipMsg::parse_with(Bytes::from(data), &Limits::default(), false)?;
        *self = m;
        Ok(())
    }

    /// Same header name check used by textops functions.
    pub fn header_name_is(h: &Header, name: &[u8]) -> bool {
        same_name(&h.name, name)
    }
}

fn parse_first_line(buf: &Bytes, line: &[u8]) -> Result<FirstLine, ParseError> {
    let line = trim_lws(line);
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Reply: SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', line).ok_or(ParseError::BadFirstLine)?;
        let version = &line[..sp];
        let rest = &line[sp + 1..];
        let code_end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        let code_txt = &rest[..code_end];
        if code_txt.len() != 3 {
            return Err(ParseError::BadStatus);
        }
        let code = parse_u32(code_txt)
            .filter(|c| (100..=699).contains(c))
            .ok_or(ParseError::BadStatus)? as u16;
        let reason = rest.get(code_end + 1..).unwrap_or(&[]);
        return Ok(FirstLine::Reply {
            version: slice_of(buf, version),
            code,
            reason: slice_of(buf, reason),
        });
    }
    let sp = memchr::memchr(b' ', line).ok_or(ParseError::BadFirstLine)?;
    let method = &line[..sp];
    if method.is_empty() || !method.iter().all(|b| is_token(*b)) {
        return Err(ParseError::BadMethod);
    }
    let last_sp = memchr::memrchr(b' ', line).ok_or(ParseError::BadFirstLine)?;
    if last_sp <= sp {
        return Err(ParseError::BadFirstLine);
    }
    let version = &line[last_sp + 1..];
    // HTTP requests parse too (as in Kamailio): the core hands them to xhttp or drops them.
    let sip = version.len() >= 5 && version[..4].eq_ignore_ascii_case(b"SIP/");
    let http = version.len() >= 6 && version[..5].eq_ignore_ascii_case(b"HTTP/");
    if !sip && !http {
        return Err(ParseError::BadVersion);
    }
    let uri = trim_lws(&line[sp + 1..last_sp]);
    if uri.is_empty() || uri.iter().any(|b| *b == b' ' || *b == b'\t') {
        return Err(ParseError::BadFirstLine);
    }
    Ok(FirstLine::Request {
        method: Method::parse(method),
        method_raw: slice_of(buf, method),
        uri: slice_of(buf, uri),
        version: slice_of(buf, version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com:5062;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n\
v: SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK2, SIP/2.0/UDP 10.0.0.2\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>;expires=60\r\n\
Subject: a\r\n folded\r\n\
Content-Type: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\n";

    fn msg(b: &'static [u8]) -> SipMsg {
        SipMsg::parse(Bytes::from_static(b)).unwrap()
    }

    #[test]
    fn parses_request() {
        let m = msg(INVITE);
        assert!(m.is_request());
        assert_eq!(m.method(), Method::Invite);
        let u = m.parsed_ruri().unwrap();
        assert_eq!(u.user, "bob");
        assert_eq!(u.port, Some(5062));
        assert_eq!(m.vias().unwrap().len(), 3);
        assert_eq!(m.via1().unwrap().host, "pc33.atlanta.example.com");
        assert_eq!(m.via2().unwrap().port, Some(5070));
        assert_eq!(m.from().unwrap().tag().unwrap(), "1928301774");
        assert!(m.to().unwrap().tag().is_none());
        assert_eq!(m.cseq().unwrap().number, 314159);
        assert_eq!(m.max_forwards().unwrap(), Some(70));
        assert_eq!(m.body(), &Bytes::from_static(b"v=0\r"));
        assert_eq!(m.header_named(b"subject").unwrap().value, "a\r\n folded");
        match m.contacts().unwrap() {
            Some(Contacts::List(l)) => assert_eq!(
                l[0].param(b"expires").unwrap().value.as_deref(),
                Some(&b"60"[..])
            ),
            other => panic!("{other:?}"),
        }
        assert!(m.validate().is_ok());
        // Via offsets point into the buffer.
        let v1 = m.via1().unwrap();
        assert_eq!(&m.buf()[v1.start..v1.end], &v1.raw[..]);
    }

    #[test]
    fn parses_reply() {
        let m = msg(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.reason().unwrap(), "Ringing");
        assert_eq!(m.method(), Method::Invite);
        let n = msg(b"SIP/2.0 100 \r\n\r\n");
        assert_eq!(n.reason().unwrap(), "");
    }

    #[test]
    fn rejects() {
        for (bad, why) in [
            (
                &b"INVITE sip:a@b SIP/2.0\r\nVia x\r\n\r\n"[..],
                ParseError::NoColon,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n",
                ParseError::NoEndOfHeaders,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\nl: 10\r\n\r\nabc",
                ParseError::BodyTooShort,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n",
                ParseError::BadContentLength,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab",
                ParseError::ConflictingContentLength,
            ),
            (b"SIP/2.0 4294967301 Big\r\n\r\n", ParseError::BadStatus),
            (
                b"INVITE sip:a@b; lr SIP/2.0\r\n\r\n",
                ParseError::BadFirstLine,
            ),
            (b"\r\n\r\n", ParseError::Empty),
            (b"INVITE\r\n\r\n", ParseError::BadFirstLine),
        ] {
            assert_eq!(
                SipMsg::parse(Bytes::from_static(bad)).unwrap_err(),
                why,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn body_longer_than_content_length_is_cut() {
        let m = msg(b"REGISTER sip:a SIP/2.0\r\nl: 0\r\n\r\nINVITE junk");
        assert!(m.body().is_empty());
    }

    #[test]
    fn edits_apply_at_serialization_only() {
        let mut m = msg(INVITE);
        let subj = m
            .headers()
            .iter()
            .position(|h| h.kind == HdrKind::Subject)
            .unwrap();
        m.remove_header(subj);
        m.append_header(Bytes::from_static(b"X-A: 1\r\n"));
        m.insert_header_first(Bytes::from_static(b"Record-Route: <sip:p;lr>\r\n"));
        m.set_ruri(Bytes::from_static(b"sip:bob@10.0.0.9"));
        assert!(
            m.header_named(b"Subject").is_some(),
            "reads still see the original"
        );
        assert_eq!(m.parsed_ruri().unwrap().host, "10.0.0.9");
        let via = Edit::insert(
            m.headers_start(),
            Bytes::from_static(b"Via: SIP/2.0/UDP me;branch=z9hG4bKme\r\n"),
            ORDER_VIA,
        );
        let out = m.serialize(&[via]);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(
            "INVITE sip:bob@10.0.0.9 SIP/2.0\r\nRecord-Route: <sip:p;lr>\r\nVia: SIP/2.0/UDP me;"
        ));
        assert!(!text.contains("Subject"));
        assert!(text.contains("X-A: 1\r\n\r\nv=0\r"));
        let re = SipMsg::parse(Bytes::from(out)).unwrap();
        assert_eq!(re.vias().unwrap().len(), 4);
    }

    #[test]
    fn body_change_fixes_content_length() {
        let mut m = msg(INVITE);
        m.set_body(Bytes::from_static(b"v=0\r\no=x\r\n"));
        let out = m.serialize(&[]);
        let re = SipMsg::parse(Bytes::from(out)).unwrap();
        assert_eq!(re.content_length(), Some(10));
        assert_eq!(re.body(), &Bytes::from_static(b"v=0\r\no=x\r\n"));
        let mut n = msg(b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n");
        n.set_body(Bytes::from_static(b"hi"));
        let re = SipMsg::parse(Bytes::from(n.serialize(&[]))).unwrap();
        assert_eq!(re.body(), &Bytes::from_static(b"hi"));
    }

    #[test]
    fn apply_changes_reparses() {
        let mut m = msg(INVITE);
        m.append_header(Bytes::from_static(b"X-B: 2\r\n"));
        m.apply_changes().unwrap();
        assert_eq!(m.header_named(b"x-b").unwrap().value, "2");
        assert!(!m.is_modified());
    }
}
