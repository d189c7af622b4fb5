//! siputils: header-name comparison, GRUU test, Date freshness, the authorized user check and
//! Remote-Party-ID (`rpid_avp`) helpers.

use super::super::core::actions::{arg_bytes, arg_int};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::sip::{HdrKind, Uri, kind_of};
use bytes::Bytes;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

/// The Remote-Party-ID parameters, read once at start-up.
#[derive(Default)]
pub struct Rpid {
    /// The AVP holding the party's URI (`rpid_avp`); empty disables the functions.
    pub avp: String,
    pub prefix: String,
    pub suffix: String,
    /// `contact_flds_separator`'s first character (`*` by default), for
    /// `encode_contact`/`decode_contact`.
    pub separator: u8,
}

pub fn init(p: &super::super::ModParams) -> Result<Rpid, String> {
    let avp = p.str_or("rpid_avp", "$avp(s:rpid)");
    if !avp.is_empty() && !avp.starts_with("$avp(") {
        return Err(format!("malformed or non AVP {avp} AVP definition"));
    }
    Ok(Rpid {
        avp,
        prefix: p.str_or("rpid_prefix", ""),
        suffix: p.str_or(
            "rpid_suffix",
            ";party=calling;id-type=subscriber;screen=yes",
        ),
        separator: p
            .str_or("contact_flds_separator", "*")
            .bytes()
            .next()
            .unwrap_or(b'*'),
    })
}

pub fn register(r: &mut super::super::Registrar<'_>) {
    r.kemi("siputils", "cmp_hdr_name", &[S, S], RetType::Int, |_, a| {
        Value::Int(cmp_hdr_name(&arg_bytes(a, 0), &arg_bytes(a, 1)))
    })
    .native("cmp_hdr_name", RouteMask::ANY);
    r.kemi("siputils", "is_gruu", &[], RetType::Int, |c, _| {
        let ruri = c.msg.ruri().cloned().unwrap_or_default();
        Value::Int(is_gruu(&ruri))
    })
    .native("is_gruu", RouteMask::ANY);
    // Kamailio's KEMI has only the R-URI form.
    r.native("is_gruu", &[S], RouteMask::ANY, |_, a| {
        Value::Int(is_gruu(&arg_bytes(a, 0)))
    });
    r.kemi("siputils", "hdr_date_check", &[I], RetType::Int, |c, a| {
        Value::Int(hdr_date_check(c, arg_int(a, 0)))
    })
    .native("hdr_date_check", RouteMask::ANY);
    r.kemi("siputils", "is_user", &[S], RetType::Int, |c, a| {
        let want = arg_bytes(a, 0);
        Value::Int(match super::super::auth::authorized_username(c) {
            None => {
                crate::klog!(
                    L_ERR,
                    "siputils",
                    "no authorized credentials found (error in scripts)"
                );
                -1
            }
            Some(u) if !u.is_empty() && u == want => 1,
            Some(_) => -1,
        })
    })
    .native("is_user", RouteMask(1 | 2 | 8));
    let rpid_routes = RouteMask(1 | 2 | 8);
    r.native("append_rpid_hf", &[], rpid_routes, |c, _| {
        let st = &c.core.m.siputils.rpid;
        let (p, s) = (st.prefix.clone(), st.suffix.clone());
        Value::Int(append_rpid(c, p.as_bytes(), s.as_bytes()))
    });
    // The RPID functions have no KEMI exports in Kamailio.
    r.native("append_rpid_hf", &[S, S], rpid_routes, |c, a| {
        Value::Int(append_rpid(c, &arg_bytes(a, 0), &arg_bytes(a, 1)))
    });
    r.native("is_rpid_user_e164", &[], RouteMask::REQUEST, |c, _| {
        Value::Int(is_rpid_user_e164(c))
    });
    let req_reply = RouteMask(1 | 4 | 128);
    r.kemi(
        "siputils",
        "contact_param_encode",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(contact_param_encode(c, &arg_bytes(a, 0), &arg_bytes(a, 1))),
    )
    .native("contact_param_encode", req_reply);
    r.kemi(
        "siputils",
        "contact_param_decode",
        &[S],
        RetType::Int,
        |c, a| Value::Int(contact_param_edit(c, &arg_bytes(a, 0), true)),
    )
    .native("contact_param_decode", req_reply);
    r.kemi(
        "siputils",
        "contact_param_rm",
        &[S],
        RetType::Int,
        |c, a| Value::Int(contact_param_edit(c, &arg_bytes(a, 0), false)),
    )
    .native("contact_param_rm", req_reply);
    r.kemi(
        "siputils",
        "contact_param_decode_ruri",
        &[S],
        RetType::Int,
        |c, a| Value::Int(contact_param_decode_ruri(c, &arg_bytes(a, 0))),
    )
    .native("contact_param_decode_ruri", RouteMask::REQUEST);
    r.kemi(
        "siputils",
        "encode_contact",
        &[S, S],
        RetType::Int,
        |c, a| {
            let (p, h) = (arg_bytes(a, 0), arg_bytes(a, 1));
            Value::Int(recode_contacts(c, Some((&p, &h))))
        },
    )
    .native("encode_contact", req_reply);
    r.kemi("siputils", "decode_contact", &[], RetType::Int, |c, _| {
        Value::Int(decode_contact(c))
    })
    .native("decode_contact", RouteMask::REQUEST);
    r.kemi(
        "siputils",
        "decode_contact_header",
        &[],
        RetType::Int,
        |c, _| Value::Int(recode_contacts(c, None)),
    )
    .native("decode_contact_header", RouteMask(1 | 2 | 4 | 128));
}

// ---------------------------------------------------------------- encode_contact

/// Kamailio's `encode_uri`: `sip:user:pass@ip:port;transport=p` becomes
/// `sip:PREFIX*user*pass*ip*port*p@PUBLIC` (other URI parameters are lost, as there).
fn encode_uri(uri: &[u8], prefix: &[u8], public: &[u8], sep: u8) -> Result<Vec<u8>, i64> {
    if uri.len() <= 1 {
        return Err(-1);
    }
    let colon = memchr::memchr(b':', uri).ok_or(-25)?;
    if colon < 3 {
        return Err(-26);
    }
    let u = Uri::parse_bytes(&uri[colon - 3..]).map_err(|_| -30)?;
    let mut out = Vec::with_capacity(uri.len() + prefix.len() + public.len() + 8);
    out.extend_from_slice(&uri[..colon + 1]);
    out.extend_from_slice(prefix);
    let proto = u
        .param(b"transport")
        .and_then(|p| p.value.clone())
        .unwrap_or_default();
    for part in [
        &u.user[..],
        u.password.as_deref().unwrap_or(b""),
        &u.host[..],
        &u.port_raw[..],
        &proto[..],
    ] {
        out.push(sep);
        out.extend_from_slice(part);
    }
    out.push(b'@');
    out.extend_from_slice(public);
    Ok(out)
}

/// Kamailio's `decode_uri`, the reverse of [`encode_uri`]; what follows the public address
/// (`;params`, `>`) is kept.
fn decode_uri(uri: &[u8], sep: u8) -> Result<Vec<u8>, i64> {
    if uri.is_empty() {
        return Err(-1);
    }
    let first = memchr::memchr(b':', uri).ok_or(-22)? + 1;
    let at = memchr::memchr(b'@', &uri[first..]).ok_or(-23)? + first;
    let fields: Vec<&[u8]> = uri[first..at].split(|c| *c == sep).collect();
    if fields.len() > 6 {
        return Err(-24);
    }
    let [_, user, pass, ip, port, proto] = fields[..] else {
        return Err(-26);
    };
    if ip.is_empty() {
        return Err(-2);
    }
    if !pass.is_empty() && user.is_empty() {
        return Err(-3);
    }
    let second = uri[at..]
        .iter()
        .position(|c| *c == b';' || *c == b'>')
        .map_or(uri.len(), |p| at + p);
    let mut out = Vec::with_capacity(uri.len());
    out.extend_from_slice(&uri[..first]);
    if !user.is_empty() {
        out.extend_from_slice(user);
        out.push(if pass.is_empty() { b'@' } else { b':' });
    }
    if !pass.is_empty() {
        out.extend_from_slice(pass);
        out.push(b'@');
    }
    out.extend_from_slice(ip);
    if !port.is_empty() {
        out.push(b':');
        out.extend_from_slice(port);
    }
    if !proto.is_empty() {
        out.extend_from_slice(b";transport=");
        out.extend_from_slice(proto);
    }
    out.extend_from_slice(&uri[second..]);
    Ok(out)
}

/// `encode_contact(prefix, public)` (`Some`) / `decode_contact_header()` (`None`): every URI
/// of the first Contact header rewritten.
fn recode_contacts(c: &mut Ctx, encode: Option<(&[u8], &[u8])>) -> i64 {
    let Some(first) = c.msg.header(HdrKind::Contact).map(|h| h.value.clone()) else {
        crate::klog!(L_ERR, "siputils", "no Contact header present");
        return -1;
    };
    let Ok(list) = crate::sip::nameaddr::parse_list(c.msg.buf(), &first) else {
        crate::klog!(L_ERR, "siputils", "contact parsing failed");
        return -4;
    };
    let sep = c.core.m.siputils.rpid.separator;
    let mut edits = Vec::new();
    for n in list {
        let Some(s) = c.msg.offset_of(&n.uri_raw) else {
            continue;
        };
        let new = match encode {
            Some((prefix, public)) => encode_uri(&n.uri_raw, prefix, public, sep),
            None => decode_uri(&n.uri_raw, sep),
        };
        match new {
            Ok(v) => edits.push(crate::sip::Edit::replace(
                s,
                s + n.uri_raw.len(),
                Bytes::from(v),
            )),
            Err(rc) => {
                crate::klog!(
                    L_ERR,
                    "siputils",
                    "failed coding contact [{}] - return code {rc}",
                    String::from_utf8_lossy(&n.uri_raw)
                );
                return rc;
            }
        }
    }
    for e in edits {
        c.msg.add_edit(e);
    }
    1
}

/// `decode_contact()`: the R-URI decoded back from `encode_contact`'s form.
fn decode_contact(c: &mut Ctx) -> i64 {
    let Some(raw) = c.msg.ruri().cloned() else {
        return -1;
    };
    match decode_uri(&raw, c.core.m.siputils.rpid.separator) {
        Ok(v) => {
            c.msg.set_ruri(Bytes::from(v));
            1
        }
        Err(rc) => {
            crate::klog!(
                L_ERR,
                "siputils",
                "failed decoding contact [{}] - return code {rc}",
                String::from_utf8_lossy(&raw)
            );
            rc
        }
    }
}

// ---------------------------------------------------------------- contact_param_*

/// Base64url of `uri` without its `=` padding (as Kamailio strips it).
fn b64url(uri: &[u8]) -> String {
    use base64::Engine as _;
    let mut s = base64::engine::general_purpose::URL_SAFE.encode(uri);
    while s.ends_with('=') {
        s.pop();
    }
    s
}

/// Decodes a parameter value written by `contact_param_encode` (padding restored).
fn b64url_decode(v: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let mut padded = v.to_vec();
    while !padded.len().is_multiple_of(4) {
        padded.push(b'=');
    }
    base64::engine::general_purpose::URL_SAFE
        .decode(&padded)
        .ok()
        .filter(|d| !d.is_empty())
}

/// The `;name[=value]` span (from its `;`) of URI parameter `name` in `raw`, and its value.
fn uri_param_span(raw: &[u8], uri: &Uri, name: &[u8]) -> Option<(usize, usize, Bytes)> {
    // The host is a slice of the same buffer when the URI was parsed from it.
    let (r0, h0) = (raw.as_ptr() as usize, uri.host.as_ptr() as usize);
    let host_at = if h0 >= r0 && h0 + uri.host.len() <= r0 + raw.len() {
        h0 - r0
    } else {
        memchr::memmem::find(raw, &uri.host)?
    };
    let rest_at = host_at + uri.host.len();
    let rest = raw.get(rest_at..)?;
    let end = memchr::memchr(b'?', rest).unwrap_or(rest.len());
    let mut i = 0;
    while i < end {
        if rest[i] != b';' {
            i += 1;
            continue;
        }
        let ps = i + 1;
        let pe = memchr::memchr(b';', &rest[ps..end]).map_or(end, |x| ps + x);
        let p = &rest[ps..pe];
        let (pname, val) = match memchr::memchr(b'=', p) {
            Some(eq) => (&p[..eq], &p[eq + 1..]),
            None => (p, &[][..]),
        };
        if pname.trim_ascii().eq_ignore_ascii_case(name) {
            let v = Bytes::copy_from_slice(val.trim_ascii());
            return Some((rest_at + i, rest_at + pe, v));
        }
        i = pe;
    }
    None
}

/// `contact_param_encode(pname, saddr)`: each URI of the first Contact header becomes
/// `saddr;pname=<base64url of the URI>` (in `<>` when it was not).
fn contact_param_encode(c: &mut Ctx, pname: &[u8], saddr: &[u8]) -> i64 {
    let Some(first) = c.msg.header(HdrKind::Contact).map(|h| h.value.clone()) else {
        return 1;
    };
    let Ok(list) = crate::sip::nameaddr::parse_list(c.msg.buf(), &first) else {
        crate::klog!(L_ERR, "siputils", "contact parsing failed");
        return -4;
    };
    let buf = c.msg.buf().clone();
    let mut edits = Vec::new();
    for n in list {
        if n.uri_raw.len() <= 4 {
            continue;
        }
        let Some(s) = c.msg.offset_of(&n.uri_raw) else {
            continue;
        };
        let bracketed = s > 0 && buf.get(s - 1) == Some(&b'<');
        let mut out = Vec::with_capacity(saddr.len() + pname.len() + n.uri_raw.len() * 2);
        if !bracketed {
            out.push(b'<');
        }
        out.extend_from_slice(saddr);
        out.push(b';');
        out.extend_from_slice(pname);
        out.push(b'=');
        out.extend_from_slice(b64url(&n.uri_raw).as_bytes());
        if !bracketed {
            out.push(b'>');
        }
        edits.push(crate::sip::Edit::replace(
            s,
            s + n.uri_raw.len(),
            Bytes::from(out),
        ));
    }
    for e in edits {
        c.msg.add_edit(e);
    }
    1
}

/// `contact_param_decode(pname)` (`decode`) / `contact_param_rm(pname)`: over every Contact
/// URI, replace the URI by the one encoded in its `pname` parameter, or remove the parameter.
fn contact_param_edit(c: &mut Ctx, pname: &[u8], decode: bool) -> i64 {
    let list = match c.msg.contacts() {
        Ok(Some(crate::sip::Contacts::List(l))) => l.clone(),
        Ok(_) => return 1,
        Err(_) => {
            crate::klog!(L_ERR, "siputils", "contact parsing failed");
            return 1;
        }
    };
    let mut edits = Vec::new();
    for n in list {
        if n.uri_raw.len() < 4 {
            continue;
        }
        let Some(s) = c.msg.offset_of(&n.uri_raw) else {
            continue;
        };
        let Some((ps, pe, val)) = uri_param_span(&n.uri_raw, &n.uri, pname) else {
            continue;
        };
        if decode {
            if val.is_empty() {
                continue;
            }
            let Some(uri) = b64url_decode(&val) else {
                crate::klog!(
                    L_ERR,
                    "siputils",
                    "failed to decode contact uri [{}]",
                    String::from_utf8_lossy(&n.uri_raw)
                );
                return -1;
            };
            edits.push(crate::sip::Edit::replace(
                s,
                s + n.uri_raw.len(),
                Bytes::from(uri),
            ));
        } else {
            edits.push(crate::sip::Edit::replace(s + ps, s + pe, Bytes::new()));
        }
    }
    for e in edits {
        c.msg.add_edit(e);
    }
    1
}

/// `contact_param_decode_ruri(pname)`: the R-URI becomes the URI encoded in its `pname`
/// parameter (1 also when there is none).
fn contact_param_decode_ruri(c: &mut Ctx, pname: &[u8]) -> i64 {
    let Some(raw) = c.msg.ruri().cloned() else {
        crate::klog!(L_ERR, "siputils", "r-uri not found");
        return -1;
    };
    let Ok(uri) = Uri::parse(&raw) else {
        crate::klog!(
            L_ERR,
            "siputils",
            "failed to parse r-uri [{}]",
            String::from_utf8_lossy(&raw)
        );
        return -1;
    };
    let Some((_, _, val)) = uri_param_span(&raw, &uri, pname).filter(|p| !p.2.is_empty()) else {
        return 1;
    };
    match b64url_decode(&val) {
        Some(new) => {
            c.msg.set_ruri(Bytes::from(new));
            1
        }
        None => {
            crate::klog!(
                L_ERR,
                "siputils",
                "failed to decode uri [{}]",
                String::from_utf8_lossy(&raw)
            );
            -1
        }
    }
}

/// Kamailio's `cmp_hdrname_str`: names of known headers compare by type (so `f` equals
/// `From`), other names case-insensitively. 1 equal, -1 / -2 the first sorts after / before.
fn cmp_hdr_name(a: &[u8], b: &[u8]) -> i64 {
    let a = a.trim_ascii_end();
    let b = b.trim_ascii_end();
    let (ka, kb) = (kind_of(a), kind_of(b));
    let ord = if ka != HdrKind::Other || kb != HdrKind::Other {
        if ka == kb {
            std::cmp::Ordering::Equal
        } else {
            std::cmp::Ordering::Greater
        }
    } else {
        let la = a.iter().map(u8::to_ascii_lowercase);
        let lb = b.iter().map(u8::to_ascii_lowercase);
        // Kamailio compares lengths first.
        a.len().cmp(&b.len()).then_with(|| la.cmp(lb))
    };
    match ord {
        std::cmp::Ordering::Equal => 1,
        std::cmp::Ordering::Greater => -1,
        std::cmp::Ordering::Less => -2,
    }
}

/// `is_gruu([uri])`: 1 a public GRUU (`gr=value`), 2 a temporary one (`gr` alone), -1 none
/// or an unparsable URI.
fn is_gruu(uri: &[u8]) -> i64 {
    let Ok(u) = Uri::parse_bytes(uri) else {
        crate::klog!(
            L_ERR,
            "siputils",
            "parsing of uri '{}' failed",
            String::from_utf8_lossy(uri)
        );
        return -1;
    };
    match u.param(b"gr") {
        Some(p) if p.value.as_ref().is_some_and(|v| !v.is_empty()) => 1,
        Some(_) => 2,
        None => -1,
    }
}

/// `hdr_date_check(tdiff)`: 1 when the Date header is not older than `tdiff` seconds;
/// -1 missing or unparsable, -4 outdated (Kamailio's codes).
fn hdr_date_check(c: &Ctx, tdiff: i64) -> i64 {
    let Some(h) = c.msg.header(HdrKind::Date) else {
        crate::klog!(L_ERR, "siputils", "Date header field is not found");
        return -1;
    };
    let Some(t) = parse_rfc1123(h.value.trim_ascii()) else {
        crate::klog!(L_ERR, "siputils", "failed parsing DATE body");
        return -1;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now > t + tdiff {
        crate::klog!(
            L_ERR,
            "siputils",
            "autdated date header value ({} sec)",
            now - t + tdiff
        );
        return -4;
    }
    1
}

/// A SIP Date value (`Sat, 13 Nov 2010 23:29:00 GMT`, RFC 3261's rfc1123-date) as a Unix
/// time.
fn parse_rfc1123(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    let mut it = s.split_ascii_whitespace();
    let wkday = it.next()?;
    if !matches!(
        wkday,
        "Mon," | "Tue," | "Wed," | "Thu," | "Fri," | "Sat," | "Sun,"
    ) {
        return None;
    }
    let day: i64 = it.next().filter(|d| d.len() == 2)?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mon = it.next()?;
    let month = MONTHS.iter().position(|m| *m == mon)? as i64 + 1;
    let year: i64 = it.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let mut field = |max: i64| -> Option<i64> {
        let v: i64 = hms.next().filter(|f| f.len() == 2)?.parse().ok()?;
        (v <= max).then_some(v)
    };
    let (h, m, sec) = (field(23)?, field(59)?, field(60)?);
    if it.next()? != "GMT" || it.next().is_some() || !(1..=31).contains(&day) {
        return None;
    }
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// The party URI stored in `rpid_avp`, if it is a non-empty string.
fn rpid_value(c: &mut Ctx) -> Option<Bytes> {
    let name = c.core.m.siputils.rpid.avp.clone();
    if name.is_empty() {
        crate::klog!(L_ERR, "siputils", "rpid avp not defined");
        return None;
    }
    match super::more::get_pv(c, name.as_bytes()) {
        Some(Value::Str(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `append_rpid_hf([prefix, suffix])`: `Remote-Party-ID: <prefix><avp><suffix>` after the last
/// header; -1 without a party URI.
fn append_rpid(c: &mut Ctx, prefix: &[u8], suffix: &[u8]) -> i64 {
    let Some(v) = rpid_value(c) else {
        return -1;
    };
    let mut line = Vec::with_capacity(19 + prefix.len() + v.len() + suffix.len());
    line.extend_from_slice(b"Remote-Party-ID: ");
    line.extend_from_slice(prefix);
    line.extend_from_slice(&v);
    line.extend_from_slice(suffix);
    line.extend_from_slice(b"\r\n");
    c.msg.append_header(Bytes::from(line));
    1
}

/// `is_rpid_user_e164()`: the party URI's user is `+` and 2 to 15 digits.
fn is_rpid_user_e164(c: &mut Ctx) -> i64 {
    let Some(v) = rpid_value(c) else {
        return -1;
    };
    let uri = match (memchr::memchr(b'<', &v), memchr::memchr(b'>', &v)) {
        (Some(a), Some(b)) if a < b => v.slice(a + 1..b),
        (Some(_), _) => {
            crate::klog!(L_ERR, "siputils", "failed to parse RPID");
            return -1;
        }
        _ => v,
    };
    let Ok(u) = Uri::parse(&uri) else {
        crate::klog!(L_ERR, "siputils", "failed to parse RPID URI");
        return -1;
    };
    let user: &[u8] = &u.user;
    let e164 = user.len() > 2
        && user.len() < 17
        && user.first() == Some(&b'+')
        && user.iter().skip(1).all(u8::is_ascii_digit);
    if e164 { 1 } else { -1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_compare_like_kamailio() {
        assert_eq!(cmp_hdr_name(b"f", b"From"), 1);
        assert_eq!(cmp_hdr_name(b"X-Foo ", b"x-foo"), 1);
        assert_eq!(cmp_hdr_name(b"To", b"From"), -1);
        assert_eq!(cmp_hdr_name(b"X-A", b"X-B"), -2);
    }

    #[test]
    fn contact_encoding_round_trip() {
        let e = encode_uri(
            b"sip:alice:pw@192.0.2.1:5070;transport=tcp",
            b"enc",
            b"1.2.3.4",
            b'*',
        )
        .unwrap();
        assert_eq!(e, b"sip:enc*alice*pw*192.0.2.1*5070*tcp@1.2.3.4");
        let d = decode_uri(&[&e[..], b";lr"].concat(), b'*').unwrap();
        assert_eq!(d, b"sip:alice:pw@192.0.2.1:5070;transport=tcp;lr");
        assert_eq!(decode_uri(b"sip:a*b@host", b'*'), Err(-26));
        assert_eq!(decode_uri(b"sip:x**pw*h**@host", b'*'), Err(-3));
    }

    #[test]
    fn rfc1123_dates() {
        assert_eq!(parse_rfc1123(b"Thu, 01 Jan 1970 00:00:10 GMT"), Some(10));
        assert_eq!(
            parse_rfc1123(b"Sat, 13 Nov 2010 23:29:00 GMT"),
            Some(1_289_690_940)
        );
        assert_eq!(parse_rfc1123(b"13 Nov 2010 23:29:00 GMT"), None);
        assert_eq!(parse_rfc1123(b"Sat, 13 Nov 2010 23:29:00"), None);
    }
}
