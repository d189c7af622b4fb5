//! Core actions and the `KSR.*` core functions: flags, R-URI rewriting, branches,
//! forwarding, logging, method/protocol tests, `myself` checks.

use crate::ctx::{Branch, Ctx};
use crate::forward;
use crate::log::{self, L_DBG, L_ERR};
use crate::modules::Registrar;
use crate::sip::{Method, Uri};
use crate::transport::Proto;
use bytes::Bytes;
use vm::ksr::{ParamHint, ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

const MAX_FLAG: i64 = 63;

pub fn b(v: bool) -> Value {
    Value::Int(if v { 1 } else { -1 })
}

pub fn arg_int(args: &[Value], i: usize) -> i64 {
    args.get(i).and_then(Value::as_int).unwrap_or(0)
}

pub fn arg_bytes(args: &[Value], i: usize) -> Bytes {
    match args.get(i) {
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Int(n)) => Bytes::from(n.to_string()),
        _ => Bytes::new(),
    }
}

fn flag_ok(f: i64) -> bool {
    if (0..=MAX_FLAG).contains(&f) {
        true
    } else {
        crate::klog!(L_ERR, "core", "invalid flag {f} (valid: 0..{MAX_FLAG})");
        false
    }
}

const REQ_FAIL_BRANCH: RouteMask = RouteMask(1 | 2 | 8);

pub fn register(r: &mut Registrar<'_>) {
    use ParamHint::Flag;
    // ---- logging
    r.kemi("", "dbg", &[S], RetType::None, |c, a| {
        klog_kemi(c, a, log::L_DBG)
    });
    r.kemi("", "info", &[S], RetType::None, |c, a| {
        klog_kemi(c, a, log::L_INFO)
    });
    r.kemi("", "notice", &[S], RetType::None, |c, a| {
        klog_kemi(c, a, log::L_NOTICE)
    });
    r.kemi("", "warn", &[S], RetType::None, |c, a| {
        klog_kemi(c, a, log::L_WARN)
    });
    r.kemi("", "err", &[S], RetType::None, |c, a| {
        klog_kemi(c, a, log::L_ERR)
    });
    r.kemi("", "crit", &[S], RetType::None, |c, a| {
        klog_kemi(c, a, log::L_CRIT)
    });
    r.kemi("", "log", &[S, S], RetType::None, kemi_log);
    r.native("log", &[S], RouteMask::ANY, |c, a| {
        log_text(c, log::L_DBG, &arg_bytes(a, 0));
        Value::Int(1)
    });
    r.native("log", &[I, S], RouteMask::ANY, |c, a| {
        log_text(c, arg_int(a, 0) as i32, &arg_bytes(a, 1));
        Value::Int(1)
    });
    r.kemi("", "get_debug", &[], RetType::Int, |_, _| {
        Value::Int(log::level() as i64)
    });
    r.kemi("", "set_drop", &[], RetType::None, |c, _| {
        c.drop = true;
        Value::Int(0)
    });

    // ---- flags
    r.kemi("", "setflag", &[I], RetType::Bool, setflag)
        .native("setflag", RouteMask::ANY)
        .hints(&[Flag]);
    r.kemi("", "resetflag", &[I], RetType::Bool, resetflag)
        .native("resetflag", RouteMask::ANY)
        .hints(&[Flag]);
    r.kemi("", "isflagset", &[I], RetType::Bool, isflagset)
        .native("isflagset", RouteMask::ANY)
        .hints(&[Flag]);
    r.kemi("", "setbflag", &[I], RetType::Bool, |c, a| {
        bflag_op(c, 0, arg_int(a, 0), 1)
    })
    .native("setbflag", RouteMask::ANY)
    .hints(&[ParamHint::BranchFlag]);
    r.kemi("", "resetbflag", &[I], RetType::Bool, |c, a| {
        bflag_op(c, 0, arg_int(a, 0), 0)
    })
    .native("resetbflag", RouteMask::ANY)
    .hints(&[ParamHint::BranchFlag]);
    r.kemi("", "isbflagset", &[I], RetType::Bool, |c, a| {
        bflag_op(c, 0, arg_int(a, 0), 2)
    })
    .native("isbflagset", RouteMask::ANY)
    .hints(&[ParamHint::BranchFlag]);
    r.kemi("", "setbiflag", &[I, I], RetType::Bool, |c, a| {
        bflag_op(c, arg_int(a, 1), arg_int(a, 0), 1)
    });
    r.kemi("", "resetbiflag", &[I, I], RetType::Bool, |c, a| {
        bflag_op(c, arg_int(a, 1), arg_int(a, 0), 0)
    });
    r.kemi("", "isbiflagset", &[I, I], RetType::Bool, |c, a| {
        bflag_op(c, arg_int(a, 1), arg_int(a, 0), 2)
    });
    // Native two-argument forms take (branch, flag).
    r.native("setbflag", &[I, I], RouteMask::ANY, |c, a| {
        bflag_op(c, arg_int(a, 0), arg_int(a, 1), 1)
    });
    r.native("resetbflag", &[I, I], RouteMask::ANY, |c, a| {
        bflag_op(c, arg_int(a, 0), arg_int(a, 1), 0)
    });
    r.native("isbflagset", &[I, I], RouteMask::ANY, |c, a| {
        bflag_op(c, arg_int(a, 0), arg_int(a, 1), 2)
    });
    r.kemi("", "setsflag", &[I], RetType::Bool, |c, a| {
        sflag_op(c, arg_int(a, 0), 1)
    })
    .native("setsflag", RouteMask::ANY);
    r.kemi("", "resetsflag", &[I], RetType::Bool, |c, a| {
        sflag_op(c, arg_int(a, 0), 0)
    })
    .native("resetsflag", RouteMask::ANY);
    r.kemi("", "issflagset", &[I], RetType::Bool, |c, a| {
        sflag_op(c, arg_int(a, 0), 2)
    })
    .native("issflagset", RouteMask::ANY);

    // ---- R-URI and destination
    r.kemi("", "seturi", &[S], RetType::Bool, seturi)
        .native("seturi", REQ_FAIL_BRANCH);
    r.native("rewriteuri", &[S], REQ_FAIL_BRANCH, seturi);
    r.kemi("", "setuser", &[S], RetType::Bool, |c, a| {
        rewrite(c, |p, v| p.user = v, &arg_bytes(a, 0))
    })
    .native("setuser", REQ_FAIL_BRANCH);
    r.native("rewriteuser", &[S], REQ_FAIL_BRANCH, |c, a| {
        rewrite(c, |p, v| p.user = v, &arg_bytes(a, 0))
    });
    r.kemi("", "sethost", &[S], RetType::Bool, sethost)
        .native("sethost", REQ_FAIL_BRANCH);
    r.native("rewritehost", &[S], REQ_FAIL_BRANCH, sethost);
    r.native("sethostport", &[S], REQ_FAIL_BRANCH, sethostport);
    r.native("rewritehostport", &[S], REQ_FAIL_BRANCH, sethostport);
    r.native("setport", &[S], REQ_FAIL_BRANCH, |c, a| {
        rewrite(c, |p, v| p.port = v, &arg_bytes(a, 0))
    });
    r.native("rewriteport", &[S], REQ_FAIL_BRANCH, |c, a| {
        rewrite(c, |p, v| p.port = v, &arg_bytes(a, 0))
    });
    r.native("setuserpass", &[S], REQ_FAIL_BRANCH, setuserpass);
    r.native("rewriteuserpass", &[S], REQ_FAIL_BRANCH, setuserpass);
    r.native("prefix", &[S], REQ_FAIL_BRANCH, prefix);
    r.native("strip", &[I], REQ_FAIL_BRANCH, strip);
    r.native("strip_tail", &[I], REQ_FAIL_BRANCH, strip_tail);
    r.native("revert_uri", &[], REQ_FAIL_BRANCH, |c, _| {
        c.msg.reset_ruri();
        Value::Int(1)
    });
    r.kemi("", "setdsturi", &[S], RetType::Bool, setdsturi)
        .native("setdsturi", REQ_FAIL_BRANCH);
    r.kemi("", "resetdsturi", &[], RetType::Bool, |c, _| {
        c.dst_uri = None;
        Value::Int(1)
    })
    .native("resetdsturi", REQ_FAIL_BRANCH);
    r.kemi("", "isdsturiset", &[], RetType::Bool, |c, _| {
        b(c.dst_uri.is_some())
    })
    .native("isdsturiset", REQ_FAIL_BRANCH);

    // ---- branches
    r.native("append_branch", &[], RouteMask(1 | 2), |c, _| {
        append_branch(c, None, None)
    });
    r.native("append_branch", &[S], RouteMask(1 | 2), |c, a| {
        append_branch(c, Some(arg_bytes(a, 0)), None)
    });
    r.native("append_branch", &[S, S], RouteMask(1 | 2), |c, a| {
        let q = crate::modules::core::parse_q(&arg_bytes(a, 1));
        append_branch(c, Some(arg_bytes(a, 0)), q)
    });
    r.native("remove_branch", &[I], RouteMask::ANY, |c, a| {
        let i = arg_int(a, 0);
        if i >= 0 && (i as usize) < c.branches.len() {
            c.branches.remove(i as usize);
            Value::Int(1)
        } else {
            Value::Int(-1)
        }
    });
    r.native("clear_branches", &[], RouteMask::ANY, |c, _| {
        c.branches.clear();
        Value::Int(1)
    });

    // ---- transport options
    r.kemi("", "force_rport", &[], RetType::Bool, |c, _| {
        c.opts.force_rport = true;
        Value::Int(1)
    })
    .native("force_rport", RouteMask::ANY);
    r.native("add_rport", &[], RouteMask::ANY, |c, _| {
        c.opts.force_rport = true;
        Value::Int(1)
    });
    r.kemi("", "add_local_rport", &[], RetType::Bool, |c, _| {
        c.opts.local_rport = true;
        Value::Int(1)
    })
    .native("add_local_rport", RouteMask::ANY);
    r.kemi("", "set_advertised_address", &[S], RetType::Int, |c, a| {
        c.opts.advertised_address = Some(arg_bytes(a, 0));
        Value::Int(1)
    })
    .native("set_advertised_address", RouteMask::ANY);
    r.kemi(
        "",
        "set_advertised_port",
        &[S],
        RetType::Int,
        |c, a| match std::str::from_utf8(&arg_bytes(a, 0))
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            Some(p) => {
                c.opts.advertised_port = Some(p);
                Value::Int(1)
            }
            None => Value::Int(-1),
        },
    )
    .native("set_advertised_port", RouteMask::ANY);
    r.native("force_send_socket", &[S], RouteMask::ANY, |c, a| {
        let spec = arg_bytes(a, 0);
        match crate::modules::core::find_socket(c.core, &String::from_utf8_lossy(&spec)) {
            Some(i) => {
                c.force_socket = Some(i);
                Value::Int(1)
            }
            None => {
                crate::klog!(
                    log::L_WARN,
                    "core",
                    "force_send_socket: no socket '{}'",
                    String::from_utf8_lossy(&spec)
                );
                Value::Int(1)
            }
        }
    });
    r.kemi("", "set_forward_close", &[], RetType::Bool, |c, _| {
        c.send_flags.forward_close = true;
        Value::Int(1)
    })
    .native("set_forward_close", RouteMask::ANY);
    r.kemi("", "set_forward_no_connect", &[], RetType::Bool, |c, _| {
        c.send_flags.forward_no_connect = true;
        Value::Int(1)
    })
    .native("set_forward_no_connect", RouteMask::ANY);
    r.kemi("", "set_reply_close", &[], RetType::Bool, |c, _| {
        c.send_flags.reply_close = true;
        Value::Int(1)
    })
    .native("set_reply_close", RouteMask::ANY);
    r.kemi("", "set_reply_no_connect", &[], RetType::Bool, |c, _| {
        c.send_flags.reply_no_connect = true;
        Value::Int(1)
    })
    .native("set_reply_no_connect", RouteMask::ANY);

    // ---- forwarding
    const FWD: RouteMask = RouteMask(1 | 2 | 4 | 8 | 128);
    r.kemi("", "forward", &[], RetType::Int, |c, _| {
        Value::Int(forward::forward_action(c, None, None, None) as i64)
    })
    .native("forward", FWD);
    r.kemi("", "forward_uri", &[S], RetType::Int, |c, a| {
        let u = arg_bytes(a, 0);
        Value::Int(forward::forward_action(c, Some(&u), None, None) as i64)
    });
    for (name, proto) in [
        ("forward", None),
        ("forward_udp", Some(Proto::Udp)),
        ("forward_tcp", Some(Proto::Tcp)),
        ("forward_tls", Some(Proto::Tls)),
    ] {
        let f1: vm::KsrFn<Ctx> = match proto {
            None => |c, a| fwd_to(c, a, None),
            Some(Proto::Udp) => |c, a| fwd_to(c, a, Some(Proto::Udp)),
            Some(Proto::Tcp) => |c, a| fwd_to(c, a, Some(Proto::Tcp)),
            Some(_) => |c, a| fwd_to(c, a, Some(Proto::Tls)),
        };
        r.native(name, &[S], FWD, f1);
        r.native(name, &[S, I], FWD, f1);
        if proto.is_some() {
            let f0: vm::KsrFn<Ctx> = match proto {
                Some(Proto::Udp) => |c, _| {
                    Value::Int(forward::forward_action(c, None, None, Some(Proto::Udp)) as i64)
                },
                Some(Proto::Tcp) => |c, _| {
                    Value::Int(forward::forward_action(c, None, None, Some(Proto::Tcp)) as i64)
                },
                _ => |c, _| {
                    Value::Int(forward::forward_action(c, None, None, Some(Proto::Tls)) as i64)
                },
            };
            r.native(name, &[], FWD, f0);
        }
    }

    // ---- message tests
    r.kemi("", "is_method", &[S], RetType::Bool, |c, a| {
        b(is_method_list(c, &arg_bytes(a, 0)))
    });
    r.kemi("", "is_method_in", &[S], RetType::Bool, is_method_in);
    for (name, m) in [
        ("is_INVITE", Method::Invite),
        ("is_ACK", Method::Ack),
        ("is_BYE", Method::Bye),
        ("is_CANCEL", Method::Cancel),
        ("is_REGISTER", Method::Register),
        ("is_OPTIONS", Method::Options),
        ("is_SUBSCRIBE", Method::Subscribe),
        ("is_PUBLISH", Method::Publish),
        ("is_NOTIFY", Method::Notify),
        ("is_REFER", Method::Refer),
        ("is_INFO", Method::Info),
        ("is_UPDATE", Method::Update),
        ("is_PRACK", Method::Prack),
        ("is_MESSAGE", Method::Message),
        ("is_KDMQ", Method::Kdmq),
        ("is_GET", Method::Get),
        ("is_POST", Method::Post),
        ("is_PUT", Method::Put),
        ("is_DELETE", Method::Delete),
    ] {
        let f: vm::KsrFn<Ctx> = method_test_fn(m);
        r.kemi("", name, &[], RetType::Bool, f);
    }
    r.kemi("", "is_UDP", &[], RetType::Bool, |c, _| {
        b(c.rcv.proto == Proto::Udp)
    });
    r.kemi("", "is_TCP", &[], RetType::Bool, |c, _| {
        b(c.rcv.proto == Proto::Tcp)
    });
    r.kemi("", "is_TLS", &[], RetType::Bool, |c, _| {
        b(c.rcv.proto == Proto::Tls)
    });
    r.kemi("", "is_SCTP", &[], RetType::Bool, |c, _| {
        b(c.rcv.proto == Proto::Sctp)
    });
    r.kemi("", "is_WS", &[], RetType::Bool, |c, _| {
        b(c.rcv.proto == Proto::Ws)
    });
    r.kemi("", "is_WSS", &[], RetType::Bool, |c, _| {
        b(c.rcv.proto == Proto::Wss)
    });
    r.kemi("", "is_WSX", &[], RetType::Bool, |c, _| {
        b(matches!(c.rcv.proto, Proto::Ws | Proto::Wss))
    });
    r.kemi("", "is_TCPX", &[], RetType::Bool, |c, _| {
        b(matches!(
            c.rcv.proto,
            Proto::Tcp | Proto::Tls | Proto::Ws | Proto::Wss
        ))
    });
    r.kemi("", "is_proto", &[S], RetType::Bool, is_proto);
    r.kemi("", "is_IPv4", &[], RetType::Bool, |c, _| {
        b(c.rcv.src.is_ipv4())
    });
    r.kemi("", "is_IPv6", &[], RetType::Bool, |c, _| {
        b(c.rcv.src.is_ipv6())
    });
    r.kemi("", "is_src_port", &[I], RetType::Bool, |c, a| {
        b(c.rcv.src.port() as i64 == arg_int(a, 0))
    });
    r.kemi("", "is_dst_port", &[I], RetType::Bool, |c, a| {
        b(c.rcv.local.port() as i64 == arg_int(a, 0))
    });
    r.native("len_gt", &[I], RouteMask::ANY, |c, a| {
        b(c.msg.buf().len() as i64 > arg_int(a, 0))
    });

    // ---- myself
    r.kemi("", "is_myself", &[S], RetType::Bool, |c, a| {
        b(uri_is_myself(c, &arg_bytes(a, 0)))
    });
    r.kemi("", "is_myself_ruri", &[], RetType::Bool, |c, _| {
        b(c.msg.is_request() && c.msg.ruri().cloned().is_some_and(|u| uri_is_myself(c, &u)))
    });
    r.kemi("", "is_myself_duri", &[], RetType::Bool, |c, _| {
        b(c.dst_uri.clone().is_some_and(|u| uri_is_myself(c, &u)))
    });
    r.kemi("", "is_myself_nhuri", &[], RetType::Bool, |c, _| {
        let u = c.dst_uri.clone().or_else(|| c.msg.ruri().cloned());
        b(u.is_some_and(|u| uri_is_myself(c, &u)))
    });
    r.kemi("", "is_myself_furi", &[], RetType::Bool, |c, _| {
        let u = c.msg.from().ok().map(|f| f.uri_raw.clone());
        b(u.is_some_and(|u| uri_is_myself(c, &u)))
    });
    r.kemi("", "is_myself_turi", &[], RetType::Bool, |c, _| {
        let u = c.msg.to().ok().map(|f| f.uri_raw.clone());
        b(u.is_some_and(|u| uri_is_myself(c, &u)))
    });
    r.kemi("", "is_myself_suri", &[], RetType::Bool, |c, _| {
        let ip = c.rcv.src.ip();
        b(myself_ip(c, ip))
    });
    r.kemi("", "is_myself_srcip", &[], RetType::Bool, |c, _| {
        let ip = c.rcv.src.ip();
        b(myself_ip(c, ip))
    });
    // Used by the compiler for native `uri == myself`, `from_uri == myself`, `to_uri ==
    // myself`: unlike the KEMI functions (any port), Kamailio's cfg takes a URI without a port
    // as port 5060 (5061 over TLS).
    r.native("is_myself_ruri_port", &[], RouteMask::ANY, |c, _| {
        b(c.msg.is_request()
            && c.msg
                .ruri()
                .cloned()
                .is_some_and(|u| uri_is_myself_cfg(c, &u)))
    });
    r.native("is_myself_furi_port", &[], RouteMask::ANY, |c, _| {
        let u = c.msg.from().ok().map(|f| f.uri_raw.clone());
        b(u.is_some_and(|u| uri_is_myself_cfg(c, &u)))
    });
    r.native("is_myself_turi_port", &[], RouteMask::ANY, |c, _| {
        let u = c.msg.to().ok().map(|f| f.uri_raw.clone());
        b(u.is_some_and(|u| uri_is_myself_cfg(c, &u)))
    });
    // Used by the compiler for `dst_ip == myself`.
    r.native("is_myself_dstip", &[], RouteMask::ANY, |c, _| {
        let ip = c.rcv.local.ip();
        b(myself_ip(c, ip))
    });
}

fn myself_ip(c: &Ctx, ip: std::net::IpAddr) -> bool {
    match c.core.myself.read() {
        Ok(m) => m.check_ip(ip),
        Err(p) => p.into_inner().check_ip(ip),
    }
}

/// `uri == myself`: host and port (and transport) of the URI match one of our sockets or
/// aliases.
pub fn uri_is_myself(c: &Ctx, uri: &Bytes) -> bool {
    // As Kamailio's `is_myself`: a `sip:`/`sips:` URI is matched by host, port (any port
    // when it has none) and transport; any other string is taken whole as a host name or
    // address (`KSR.is_myself(KSR.pv.get("$si"))`).
    if uri.len() > 4 && (uri.starts_with(b"sip:") || uri.starts_with(b"sips:")) {
        return match Uri::parse(uri) {
            Ok(u) => {
                let proto = u.transport().and_then(|t| Proto::parse(&t));
                match u.port {
                    Some(p) if p != 0 => c.core.is_myself(u.host_unbracketed(), Some(p), proto),
                    _ => c.core.is_myself_any_port(u.host_unbracketed(), proto),
                }
            }
            Err(_) => false,
        };
    }
    let host = uri
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(uri);
    c.core.is_myself_any_port(host, None)
}

/// The URI is ours by host and port (5060 when it has none), as rr's checks of Route
/// entries and of the R-URI ask.
/// Kamailio's cfg `uri == myself` (`GET_URI_PORT`): a URI without a port is port 5060, or 5061
/// over TLS (`sips:` or `;transport=tls`); any transport matches.
pub fn uri_is_myself_cfg(c: &Ctx, uri: &Bytes) -> bool {
    match Uri::parse(uri) {
        Ok(u) => {
            let tls = uri.starts_with(b"sips:")
                || u.transport().is_some_and(|t| t.eq_ignore_ascii_case("tls"));
            let port = match u.port {
                Some(p) if p != 0 => p,
                _ if tls => 5061,
                _ => 5060,
            };
            c.core.is_myself(u.host_unbracketed(), Some(port), None)
        }
        Err(_) => false,
    }
}

pub fn uri_is_myself_default_port(c: &Ctx, uri: &Bytes) -> bool {
    match Uri::parse(uri) {
        Ok(u) => {
            let proto = u.transport().and_then(|t| Proto::parse(&t));
            c.core.is_myself(u.host_unbracketed(), u.port, proto)
        }
        Err(_) => false,
    }
}

fn method_test_fn(m: Method) -> vm::KsrFn<Ctx> {
    macro_rules! f {
        ($m:expr) => {
            |c: &mut Ctx, _: &[Value]| b(current_method(c) == $m)
        };
    }
    match m {
        Method::Invite => f!(Method::Invite),
        Method::Ack => f!(Method::Ack),
        Method::Bye => f!(Method::Bye),
        Method::Cancel => f!(Method::Cancel),
        Method::Register => f!(Method::Register),
        Method::Options => f!(Method::Options),
        Method::Subscribe => f!(Method::Subscribe),
        Method::Publish => f!(Method::Publish),
        Method::Notify => f!(Method::Notify),
        Method::Refer => f!(Method::Refer),
        Method::Info => f!(Method::Info),
        Method::Update => f!(Method::Update),
        Method::Prack => f!(Method::Prack),
        Method::Message => f!(Method::Message),
        Method::Kdmq => f!(Method::Kdmq),
        Method::Get => f!(Method::Get),
        Method::Post => f!(Method::Post),
        Method::Put => f!(Method::Put),
        Method::Delete => f!(Method::Delete),
        Method::Other => f!(Method::Other),
    }
}

/// The method of a request, or of the CSeq of a reply (Kamailio's `is_method` on replies).
pub fn current_method(c: &Ctx) -> Method {
    if c.msg.is_request() {
        c.msg.method()
    } else {
        c.msg
            .cseq()
            .map(|s| Method::parse(&s.method))
            .unwrap_or(Method::Other)
    }
}

/// `is_method("INVITE|BYE")`: known methods compare by id, others by name
/// (case-insensitive).
pub fn is_method_list(c: &Ctx, list: &[u8]) -> bool {
    let cur = current_method(c);
    let cur_raw = if c.msg.is_request() {
        c.msg.method_raw()
    } else {
        c.msg.cseq().map(|s| s.method.clone()).unwrap_or_default()
    };
    list.split(|b| *b == b'|').any(|m| {
        let m = crate::sip::scan::trim_lws(m);
        let pm = Method::parse(m);
        if pm == Method::Other {
            cur == Method::Other && cur_raw.eq_ignore_ascii_case(m)
        } else {
            pm == cur
        }
    })
}

fn is_method_in(c: &mut Ctx, a: &[Value]) -> Value {
    let cur = current_method(c);
    let letters = arg_bytes(a, 0);
    b(letters
        .iter()
        .filter_map(|l| Method::from_letter(*l))
        .any(|m| m == cur))
}

fn is_proto(c: &mut Ctx, a: &[Value]) -> Value {
    let p = c.rcv.proto;
    let letters = arg_bytes(a, 0);
    b(letters.iter().any(|l| match l.to_ascii_lowercase() {
        b'e' => p == Proto::Udp,
        b't' => p == Proto::Tcp,
        b's' => p == Proto::Tls,
        b'c' => p == Proto::Sctp,
        b'w' => p == Proto::Ws,
        b'y' => p == Proto::Wss,
        _ => false,
    }))
}

fn klog_kemi(c: &mut Ctx, a: &[Value], level: i32) -> Value {
    log_text(c, level, &arg_bytes(a, 0));
    Value::Int(0)
}

fn kemi_log(c: &mut Ctx, a: &[Value]) -> Value {
    let level = log::parse_level(&String::from_utf8_lossy(&arg_bytes(a, 0))).unwrap_or(L_DBG);
    log_text(c, level, &arg_bytes(a, 1));
    Value::Int(0)
}

pub fn log_text(c: &Ctx, level: i32, text: &[u8]) {
    if !log::enabled(level) {
        return;
    }
    let _ = c;
    log::emit(level, "core", &String::from_utf8_lossy(text));
}

fn setflag(c: &mut Ctx, a: &[Value]) -> Value {
    let f = arg_int(a, 0);
    if !flag_ok(f) {
        return Value::Int(-1);
    }
    c.flags |= 1u64 << f;
    Value::Int(1)
}

fn resetflag(c: &mut Ctx, a: &[Value]) -> Value {
    let f = arg_int(a, 0);
    if !flag_ok(f) {
        return Value::Int(-1);
    }
    c.flags &= !(1u64 << f);
    Value::Int(1)
}

fn isflagset(c: &mut Ctx, a: &[Value]) -> Value {
    let f = arg_int(a, 0);
    if !flag_ok(f) {
        return Value::Int(-1);
    }
    b(c.flags & (1u64 << f) != 0)
}

/// op: 0 reset, 1 set, 2 test. Branch 0 is the R-URI branch.
fn bflag_op(c: &mut Ctx, branch: i64, flag: i64, op: u8) -> Value {
    if !flag_ok(flag) {
        return Value::Int(-1);
    }
    let word = if branch == 0 {
        &mut c.bflags
    } else {
        match c.branches.get_mut((branch - 1).max(0) as usize) {
            Some(br) if branch > 0 => &mut br.flags,
            _ => return Value::Int(-1),
        }
    };
    let bit = 1u64 << flag;
    match op {
        0 => *word &= !bit,
        1 => *word |= bit,
        _ => return b(*word & bit != 0),
    }
    Value::Int(1)
}

fn sflag_op(c: &mut Ctx, flag: i64, op: u8) -> Value {
    if !flag_ok(flag) {
        return Value::Int(-1);
    }
    let bit = 1u64 << flag;
    match op {
        0 => c.sflags &= !bit,
        1 => c.sflags |= bit,
        _ => return b(c.sflags & bit != 0),
    }
    Value::Int(1)
}

fn seturi(c: &mut Ctx, a: &[Value]) -> Value {
    let u = arg_bytes(a, 0);
    if !c.msg.is_request() || Uri::parse(&u).is_err() {
        crate::klog!(
            L_ERR,
            "core",
            "seturi: invalid uri '{}'",
            String::from_utf8_lossy(&u)
        );
        return Value::Int(-1);
    }
    c.msg.set_ruri(u);
    c.ruri_q = -1;
    Value::Int(1)
}

/// Rebuilds the R-URI with one part changed.
fn rewrite(
    c: &mut Ctx,
    f: impl for<'a> FnOnce(&mut crate::sip::uri::UriParts<'a>, &'a [u8]),
    value: &Bytes,
) -> Value {
    if !c.msg.is_request() {
        return Value::Int(-1);
    }
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        crate::klog!(L_ERR, "core", "bad R-URI, cannot rewrite it");
        return Value::Int(-1);
    };
    let mut p = u.parts();
    f(&mut p, value);
    let nu = Uri::build(&p);
    if Uri::parse(&nu).is_err() {
        return Value::Int(-1);
    }
    c.msg.set_ruri(nu);
    Value::Int(1)
}

fn sethost(c: &mut Ctx, a: &[Value]) -> Value {
    let h = arg_bytes(a, 0);
    if h.is_empty() {
        return Value::Int(-1);
    }
    rewrite(c, |p, v| p.host = v, &h)
}

fn sethostport(c: &mut Ctx, a: &[Value]) -> Value {
    let hp = arg_bytes(a, 0);
    let Ok((h, port)) = crate::sip::uri::split_hostport(&hp) else {
        return Value::Int(-1);
    };
    let h = Bytes::copy_from_slice(h);
    let port = Bytes::copy_from_slice(port.unwrap_or(b""));
    if !c.msg.is_request() {
        return Value::Int(-1);
    }
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return Value::Int(-1);
    };
    let mut p = u.parts();
    p.host = &h;
    p.port = &port;
    c.msg.set_ruri(Uri::build(&p));
    Value::Int(1)
}

fn setuserpass(c: &mut Ctx, a: &[Value]) -> Value {
    let up = arg_bytes(a, 0);
    let (user, pass) = match up.iter().position(|b| *b == b':') {
        Some(i) => (up.slice(..i), Some(up.slice(i + 1..))),
        None => (up.clone(), None),
    };
    if !c.msg.is_request() {
        return Value::Int(-1);
    }
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return Value::Int(-1);
    };
    let mut p = u.parts();
    p.user = &user;
    p.password = pass.as_deref();
    c.msg.set_ruri(Uri::build(&p));
    Value::Int(1)
}

fn prefix(c: &mut Ctx, a: &[Value]) -> Value {
    let pre = arg_bytes(a, 0);
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return Value::Int(-1);
    };
    let mut user = pre.to_vec();
    user.extend_from_slice(&u.user);
    rewrite(c, |p, v| p.user = v, &Bytes::from(user))
}

fn strip(c: &mut Ctx, a: &[Value]) -> Value {
    let n = arg_int(a, 0).max(0) as usize;
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return Value::Int(-1);
    };
    if n > u.user.len() {
        crate::klog!(L_ERR, "core", "strip: too many characters to strip");
        return Value::Int(-1);
    }
    let user = u.user.slice(n..);
    rewrite(c, |p, v| p.user = v, &user)
}

fn strip_tail(c: &mut Ctx, a: &[Value]) -> Value {
    let n = arg_int(a, 0).max(0) as usize;
    let Ok(u) = c.msg.parsed_ruri().cloned() else {
        return Value::Int(-1);
    };
    if n > u.user.len() {
        crate::klog!(L_ERR, "core", "strip_tail: too many characters to strip");
        return Value::Int(-1);
    }
    let user = u.user.slice(..u.user.len() - n);
    rewrite(c, |p, v| p.user = v, &user)
}

fn setdsturi(c: &mut Ctx, a: &[Value]) -> Value {
    let u = arg_bytes(a, 0);
    if Uri::parse(&u).is_err() {
        return Value::Int(-1);
    }
    c.dst_uri = Some(u);
    Value::Int(1)
}

/// `append_branch([uri[, q]])`: a new branch from the given URI, or from the current R-URI
/// with its `$du`, path, q and branch flags.
pub fn append_branch(c: &mut Ctx, uri: Option<Bytes>, q: Option<i32>) -> Value {
    if c.branches.len() + 1 >= c.core.cfg.max_branches.max(1) as usize {
        crate::klog!(
            L_ERR,
            "core",
            "append_branch: max number of branches exceeded"
        );
        return Value::Int(-1);
    }
    let br = match uri {
        Some(u) if !u.is_empty() => {
            if Uri::parse(&u).is_err() {
                return Value::Int(-1);
            }
            Branch {
                uri: u,
                q: q.unwrap_or(-1),
                ..Branch::default()
            }
        }
        _ => {
            let Some(u) = c.msg.ruri().cloned() else {
                return Value::Int(-1);
            };
            Branch {
                uri: u,
                dst_uri: c.dst_uri.clone(),
                path: c.path_vec.clone(),
                q: q.unwrap_or(c.ruri_q),
                flags: c.bflags,
                force_socket: c.force_socket,
                ..Branch::default()
            }
        }
    };
    c.branches.push(br);
    Value::Int(1)
}

fn fwd_to(c: &mut Ctx, a: &[Value], proto: Option<Proto>) -> Value {
    let host = arg_bytes(a, 0);
    let port = a
        .get(1)
        .and_then(Value::as_int)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0);
    Value::Int(forward::forward_action(c, Some(&host), port, proto) as i64)
}
