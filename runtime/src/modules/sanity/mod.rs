//! Kamailio's `sanity` module: RFC conformance checks on requests, answering with the same
//! error replies Kamailio sends.

use super::core::actions::arg_int;
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::sip::{Contacts, HdrKind, Method, Scheme, Uri};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use vm::ksr::{ParamType::Int as I, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "sanity",
    params: &[
        ParamDef::int("default_checks"),
        ParamDef::int("uri_checks"),
        ParamDef::str("proxy_require"),
        ParamDef::int("autodrop"),
        ParamDef::int("noreply"),
    ],
    register,
    init: Some(init),
    notice: None,
};

pub struct SanityState {
    pub default_checks: AtomicI64,
    pub uri_checks: AtomicI64,
    pub autodrop: AtomicI64,
    pub noreply: AtomicI64,
    pub proxy_require: RwLock<Vec<String>>,
}

impl Default for SanityState {
    fn default() -> Self {
        SanityState {
            default_checks: AtomicI64::new(3047),
            uri_checks: AtomicI64::new(7),
            autodrop: AtomicI64::new(1),
            noreply: AtomicI64::new(0),
            proxy_require: RwLock::new(Vec::new()),
        }
    }
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let s = &ictx.states.sanity;
    s.default_checks
        .store(ictx.params.int("default_checks", 3047), Relaxed);
    s.uri_checks
        .store(ictx.params.int("uri_checks", 7), Relaxed);
    s.autodrop.store(ictx.params.int("autodrop", 1), Relaxed);
    s.noreply.store(ictx.params.int("noreply", 0), Relaxed);
    if let Some(list) = ictx.params.str("proxy_require")
        && let Ok(mut g) = s.proxy_require.write()
    {
        *g = list
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
    }
    Ok(())
}

/// Request and reply routes, as Kamailio allows.
const REQ: RouteMask = RouteMask(1 | 4 | 128);

fn register(r: &mut Registrar<'_>) {
    r.native("sanity_check", &[], REQ, |c, _| {
        let d = c.core.m.sanity.default_checks.load(Relaxed);
        let u = c.core.m.sanity.uri_checks.load(Relaxed);
        run(c, d, u)
    });
    r.kemi("sanity", "sanity_check", &[I, I], RetType::Int, |c, a| {
        run(c, arg_int(a, 0), arg_int(a, 1))
    })
    .native("sanity_check", REQ);
    r.native("sanity_check", &[I], REQ, |c, a| {
        let u = c.core.m.sanity.uri_checks.load(Relaxed);
        run(c, arg_int(a, 0), u)
    });
    r.kemi(
        "sanity",
        "sanity_check_defaults",
        &[],
        RetType::Int,
        |c, _| {
            let d = c.core.m.sanity.default_checks.load(Relaxed);
            let u = c.core.m.sanity.uri_checks.load(Relaxed);
            run(c, d, u)
        },
    );
    r.kemi("sanity", "sanity_reply", &[], RetType::Int, |c, _| {
        Value::Int(sanity_reply(c))
    })
    .native("sanity_reply", REQ);
}

thread_local! {
    /// The reply a failed check prepared under `noreply`, tagged with the message it was for
    /// (its start instant), for `sanity_reply()`.
    static PENDING: std::cell::Cell<Option<(std::time::Instant, u16, &'static str)>> =
        const { std::cell::Cell::new(None) };
}

/// `sanity_reply()`: with `noreply` set, sends the reply the last failed check of this
/// message prepared (500 Server Sanity Failure when there is none); 1, -1 when sending fails.
fn sanity_reply(c: &mut Ctx) -> i64 {
    if !c.msg.is_request()
        || c.msg.method() == Method::Ack
        || c.core.m.sanity.noreply.load(Relaxed) == 0
    {
        return 1;
    }
    let (code, reason) = match PENDING.with(|p| p.get()) {
        Some((at, code, reason)) if at == c.started => (code, reason),
        _ => {
            crate::klog!(
                crate::log::L_INFO,
                "sanity",
                "no sanity reply info set - sending 500"
            );
            (500, "Server Sanity Failure")
        }
    };
    if crate::modules::sl::send(c, code, reason.as_bytes()) < 0 {
        -1
    } else {
        1
    }
}

/// A failed check: the reply to send, if any.
struct Fail(Option<(u16, &'static str)>);

fn run(c: &mut Ctx, checks: i64, uri_checks: i64) -> Value {
    let res = if c.msg.is_request() {
        check_request(c, checks, uri_checks)
    } else {
        Ok(())
    };
    match res {
        Ok(()) => Value::Int(1),
        Err(Fail(reply)) => {
            if let Some((code, reason)) = reply
                && c.msg.method() != Method::Ack
            {
                if c.core.m.sanity.noreply.load(Relaxed) == 0 {
                    crate::modules::sl::send(c, code, reason.as_bytes());
                } else {
                    PENDING.with(|p| p.set(Some((c.started, code, reason))));
                }
            }
            if c.core.m.sanity.autodrop.load(Relaxed) != 0 {
                Value::Int(0)
            } else {
                Value::Int(-1)
            }
        }
    }
}

fn fail(code: u16, reason: &'static str) -> Result<(), Fail> {
    Err(Fail(Some((code, reason))))
}

fn check_request(c: &Ctx, checks: i64, uri_checks: i64) -> Result<(), Fail> {
    let m = &c.msg;
    if checks & 1 != 0 && !m.version().eq_ignore_ascii_case(b"SIP/2.0") {
        return fail(505, "Version Not Supported (R-URI)");
    }
    if checks & 2 != 0 {
        match m.parsed_ruri() {
            Err(_) => return fail(400, "Bad Request URI"),
            Ok(u) if u.scheme == Scheme::Other => {
                return fail(416, "Unsupported URI Scheme in Request URI");
            }
            _ => {}
        }
    }
    if checks & 4 != 0 {
        for k in [HdrKind::From, HdrKind::To, HdrKind::CallId, HdrKind::CSeq] {
            let n = m.headers_of(k).count();
            if n != 1 {
                // Missing or duplicated: Kamailio fails without a reply.
                return Err(Fail(None));
            }
        }
        if m.via1().is_err() {
            return Err(Fail(None));
        }
    }
    // CSeq number and method are checked separately, each on its own token.
    let cseq = m.header(HdrKind::CSeq).map(|h| {
        let mut it = h
            .value
            .split(|b| *b == b' ' || *b == b'\t')
            .filter(|t| !t.is_empty());
        (it.next().map(<[u8]>::to_vec), it.next().map(<[u8]>::to_vec))
    });
    if checks & 32 != 0 {
        match &cseq {
            Some((_, Some(meth))) if meth[..] == m.method_raw()[..] => {}
            Some((_, Some(_))) => {
                return fail(400, "CSeq method does not match request method");
            }
            _ => return fail(400, "Missing method in CSeq header"),
        }
    }
    if checks & 64 != 0 {
        match &cseq {
            Some((Some(n), _)) if crate::sip::scan::parse_u32(n).is_some() => {}
            Some((Some(_), _)) => return fail(400, "CSeq number is illegal"),
            _ => return fail(400, "Missing number in CSeq header"),
        }
    }
    if checks & 128 != 0
        && let Some(h) = m.header(HdrKind::ContentLength)
    {
        match crate::sip::scan::parse_u64(&h.value) {
            Some(n) if n as usize == m.body().len() => {}
            Some(_) => return fail(400, "Content-Length mis-match"),
            None => return fail(400, "Content-Length Failure"),
        }
    }
    if checks & 256 != 0 && m.header(HdrKind::Expires).is_some() && m.expires().is_err() {
        return fail(400, "Expires value is illegal");
    }
    if checks & 512 != 0 {
        let supported = c
            .core
            .m
            .sanity
            .proxy_require
            .read()
            .map(|g| g.clone())
            .unwrap_or_default();
        for h in m.headers_of(HdrKind::ProxyRequire) {
            for ext in h.value.split(|b| *b == b',') {
                let ext = String::from_utf8_lossy(crate::sip::scan::trim_lws(ext)).into_owned();
                if !ext.is_empty() && !supported.iter().any(|s| s.eq_ignore_ascii_case(&ext)) {
                    return fail(420, "Bad Proxy Require Extension");
                }
            }
        }
    }
    if checks & 1024 != 0 {
        if uri_checks & 1 != 0 && m.parsed_ruri().is_err() {
            return fail(400, "Bad Request URI");
        }
        if uri_checks & 2 != 0 && m.from().is_err() {
            return fail(400, "Invalid From Header");
        }
        if uri_checks & 4 != 0 && m.to().is_err() {
            return fail(400, "Invalid To Header");
        }
        if uri_checks & 8 != 0 {
            match m.contacts() {
                Err(_) => return fail(400, "Bad Contact Header"),
                Ok(Some(Contacts::List(l)))
                    if l.iter().any(|na| Uri::parse(&na.uri_raw).is_err()) =>
                {
                    return fail(400, "Bad Contact URI");
                }
                _ => {}
            }
        }
    }
    if checks & 2048 != 0 {
        for k in [HdrKind::Authorization, HdrKind::ProxyAuthorization] {
            for h in m.headers_of(k) {
                let Ok(cr) = crate::sip::Credentials::parse_in(m.buf(), &h.value) else {
                    return fail(400, "Bad Auth Credentials");
                };
                if !cr.is_digest() {
                    return fail(400, "Bad Auth Credentials");
                }
                if cr.username.as_ref().is_none_or(|u| u.is_empty()) {
                    return fail(400, "Auth Empty User");
                }
                if cr.nonce.as_ref().is_none_or(|u| u.is_empty()) {
                    return fail(400, "Auth Empty Nonce");
                }
                if cr.response.as_ref().is_none_or(|u| u.is_empty()) {
                    return fail(400, "Auth Empty Response");
                }
            }
        }
    }
    if checks & 4096 != 0 {
        if let Ok(f) = m.from()
            && f.params
                .iter()
                .filter(|p| p.name.eq_ignore_ascii_case(b"tag"))
                .count()
                > 1
        {
            return fail(400, "Many From Tag Params");
        }
        if let Ok(t) = m.to()
            && t.params
                .iter()
                .filter(|p| p.name.eq_ignore_ascii_case(b"tag"))
                .count()
                > 1
        {
            return fail(400, "Many To Tag Params");
        }
    }
    if checks & 16384 != 0 && m.via1().map(|v| v.host.is_empty()).unwrap_or(true) {
        return Err(Fail(None));
    }
    Ok(())
}
