//! Kamailio's `xhttp` module: HTTP requests arriving on the SIP TCP listeners run
//! `event_route[xhttp:request]` (or the KEMI `event_callback`), which answers with
//! `xhttp_reply()` — or `jsonrpc_dispatch()` from jsonrpcs. `$hu` is the request URL.
//!
//! Requests without Content-Length (plain `GET`s) need `tcp_accept_no_cl=yes`, as in
//! Kamailio.

use super::core::actions::{arg_bytes, arg_int};
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::engine::RouteTarget;
use crate::log::{L_DBG, L_ERR};
use crate::transport::Destination;
use bytes::Bytes;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::pv::{PvClass, PvSpec};
use vm::{RouteKind, RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "xhttp",
    params: &[
        ParamDef::str("url_skip"),
        ParamDef::str("url_match"),
        ParamDef::str("event_callback"),
    ],
    register,
    init: Some(init),
    notice: None,
};

#[derive(Default)]
pub struct XhttpState {
    url_skip: Option<regex::bytes::Regex>,
    url_match: Option<regex::bytes::Regex>,
    event_callback: Option<String>,
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let re = |name: &str| -> Result<Option<regex::bytes::Regex>, String> {
        match ictx.params.str(name) {
            Some(p) if !p.is_empty() => regex::bytes::RegexBuilder::new(&p)
                .case_insensitive(true)
                .build()
                .map(Some)
                .map_err(|e| format!("{name}: bad regular expression '{p}': {e}")),
            _ => Ok(None),
        }
    };
    let url_skip = re("url_skip")?;
    let url_match = re("url_match")?;
    let st = &mut ictx.states.xhttp;
    st.url_skip = url_skip;
    st.url_match = url_match;
    st.event_callback = ictx.params.str("event_callback").filter(|s| !s.is_empty());
    Ok(())
}

fn register(r: &mut Registrar<'_>) {
    r.hooks.http_request.push(handle);
    r.pvs.add(PvClass {
        name: "hu",
        get: pv_hu,
        set: None,
        parse_name: None,
        name_required: false,
        takes_index: false,
    });
    r.kemi(
        "xhttp",
        "xhttp_reply",
        &[I, S, S, S],
        RetType::Int,
        |c, a| {
            let code = arg_int(a, 0);
            let (reason, ctype, body) = (arg_bytes(a, 1), arg_bytes(a, 2), arg_bytes(a, 3));
            Value::Int(send_reply(c, code, &reason, &ctype, &body))
        },
    )
    .native(
        "xhttp_reply",
        RouteMask(RouteMask::REQUEST.0 | RouteMask::EVENT.0),
    );
    r.kemi("xhttp", "get_hu", &[], RetType::Xval, |c, _| {
        url(c).map_or(Value::Null, Value::Str)
    });
}

/// The request URL as written (path and query).
fn url(c: &Ctx) -> Option<Bytes> {
    if c.msg.is_request() && c.msg.version().starts_with(b"HTTP/") {
        c.msg.ruri_orig().cloned()
    } else {
        None
    }
}

fn pv_hu(c: &mut Ctx, _: &PvSpec) -> Value {
    url(c).map_or(Value::Null, Value::Str)
}

/// The core's hook for an HTTP request already in `ctx`: true when xhttp took it.
fn handle(c: &mut Ctx) -> bool {
    let st = &c.core.m.xhttp;
    let u = url(c).unwrap_or_default();
    if st.url_skip.as_ref().is_some_and(|re| re.is_match(&u))
        || st.url_match.as_ref().is_some_and(|re| !re.is_match(&u))
    {
        crate::klog!(
            L_DBG,
            "xhttp",
            "URL {} not handled",
            String::from_utf8_lossy(&u)
        );
        return false;
    }
    c.route = RouteKind::Event;
    // The KEMI function named by `event_callback`, else the cfg's event_route (also beside
    // a KEMI script: hybrid configs).
    let out = match st.event_callback.clone() {
        Some(cb) => c.run_route(RouteTarget::Event(&cb)),
        None => c.run_route(RouteTarget::Event("xhttp:request")),
    };
    if out.missing {
        crate::klog!(
            L_ERR,
            "xhttp",
            "no event_route[xhttp:request] to handle the HTTP request"
        );
    }
    true
}

/// Sends an HTTP reply on the connection the request came over, laid out as Kamailio's
/// (its reply carries the request's fake Via as `Sia:`). 1, or -1 when not an HTTP request
/// or the send fails.
pub fn send_reply(c: &mut Ctx, code: i64, reason: &[u8], ctype: &[u8], body: &[u8]) -> i64 {
    if url(c).is_none() {
        crate::klog!(L_ERR, "xhttp", "xhttp_reply: not an HTTP request");
        return -1;
    }
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(c.msg.version());
    out.extend_from_slice(format!(" {code} ").as_bytes());
    out.extend_from_slice(reason);
    let src = c.rcv.src;
    let via_host = crate::transport::uri_host(src.ip());
    out.extend_from_slice(
        format!(
            "\r\nSia: SIP/2.0/{} {via_host}:{}\r\n",
            c.rcv.proto.via_name(),
            src.port()
        )
        .as_bytes(),
    );
    if !ctype.is_empty() {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ctype);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(server) = super::sl::server_header(c) {
        out.extend_from_slice(b"Server: ");
        out.extend_from_slice(&server);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    let mut dst = Destination::new(c.rcv.proto, src);
    dst.listener = Some(c.rcv.listener);
    dst.conn = c.rcv.conn;
    dst.no_connect = true;
    dst.close_after = c.send_flags.reply_close;
    match c.core.sender.send(&dst, &out) {
        Ok(_) => 1,
        Err(e) => {
            crate::klog!(L_ERR, "xhttp", "cannot send the HTTP reply: {e}");
            -1
        }
    }
}
