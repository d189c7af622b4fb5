//! Kamailio's `textopsx` module: applying recorded changes to the message, changing a
//! reply's status, removing the body, keeping only some headers, shell-style matching, and
//! the header-value functions (`hfvalue.rs`) and the header/body-line iterators
//! (`iter.rs`). Not implemented (not registered): `msg_changed_route`.

pub mod hfvalue;
pub mod iter;

use super::core::actions::arg_bytes;
use super::{ModuleDef, Registrar};
use crate::ctx::Ctx;
use crate::log::L_ERR;
use crate::sip::HdrKind;
use bytes::Bytes;
use vm::ksr::{ParamHint, ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteKind, RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "textopsx",
    params: &[],
    register,
    init: None,
    notice: None,
};

fn register_iterators(r: &mut Registrar<'_>) {
    use vm::pv::PvClass;
    let any = RouteMask::ANY;
    macro_rules! one {
        ($name:literal, $f:path) => {
            r.kemi("textopsx", $name, &[S], RetType::Int, |c, a| {
                Value::Int($f(c, &arg_bytes(a, 0)))
            })
            .native($name, any);
        };
    }
    one!("hf_iterator_start", iter::hf_start);
    one!("hf_iterator_next", iter::hf_next);
    one!("hf_iterator_prev", iter::hf_prev);
    one!("hf_iterator_end", iter::hf_end);
    one!("hf_iterator_rm", iter::hf_rm);
    one!("bl_iterator_start", iter::bl_start);
    one!("bl_iterator_next", iter::bl_next);
    one!("bl_iterator_end", iter::bl_end);
    one!("bl_iterator_rm", iter::bl_rm);
    r.kemi(
        "textopsx",
        "hf_iterator_append",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(iter::hf_add(c, &arg_bytes(a, 0), &arg_bytes(a, 1), true)),
    )
    .native("hf_iterator_append", any);
    r.kemi(
        "textopsx",
        "hf_iterator_insert",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(iter::hf_add(c, &arg_bytes(a, 0), &arg_bytes(a, 1), false)),
    )
    .native("hf_iterator_insert", any);
    r.kemi(
        "textopsx",
        "bl_iterator_append",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(iter::bl_add(c, &arg_bytes(a, 0), &arg_bytes(a, 1), true)),
    )
    .native("bl_iterator_append", any);
    r.kemi(
        "textopsx",
        "bl_iterator_insert",
        &[S, S],
        RetType::Int,
        |c, a| Value::Int(iter::bl_add(c, &arg_bytes(a, 0), &arg_bytes(a, 1), false)),
    )
    .native("bl_iterator_insert", any);
    r.kemi(
        "textopsx",
        "hf_iterator_hname",
        &[S],
        RetType::Xval,
        |c, a| iter::hf_value(c, &arg_bytes(a, 0), false),
    );
    r.kemi(
        "textopsx",
        "hf_iterator_hbody",
        &[S],
        RetType::Xval,
        |c, a| iter::hf_value(c, &arg_bytes(a, 0), true),
    );
    r.kemi(
        "textopsx",
        "bl_iterator_value",
        &[S],
        RetType::Xval,
        |c, a| iter::bl_value(c, &arg_bytes(a, 0)),
    );
    for (name, get) in [
        ("hfitname", iter::pv_hfitname as vm::pv::PvGetFn<Ctx>),
        ("hfitbody", iter::pv_hfitbody),
        ("blitval", iter::pv_blitval),
    ] {
        r.pvs.add(PvClass {
            name,
            get,
            set: None,
            parse_name: Some(iter::parse_name),
            name_required: true,
            takes_index: false,
        });
    }
}

fn register(r: &mut Registrar<'_>) {
    register_hf_values(r);
    register_iterators(r);
    let req_reply = RouteMask(1 | 4 | 128);
    r.kemi("textopsx", "msg_set_buffer", &[S], RetType::Int, |c, a| {
        Value::Int(msg_set_buffer(c, &arg_bytes(a, 0)))
    })
    .native("msg_set_buffer", req_reply);
    r.kemi(
        "textopsx",
        "msg_apply_changes",
        &[],
        RetType::Int,
        |c, _| Value::Int(msg_apply_changes(c)),
    )
    .native("msg_apply_changes", req_reply);
    r.kemi(
        "textopsx",
        "change_reply_status",
        &[I, S],
        RetType::Int,
        |c, a| {
            let code = a.first().and_then(Value::as_int).unwrap_or(0);
            Value::Int(change_reply_status(c, code, Some(arg_bytes(a, 1))))
        },
    )
    .native("change_reply_status", RouteMask::ONREPLY);
    r.kemi(
        "textopsx",
        "change_reply_status_code",
        &[I],
        RetType::Int,
        |c, a| {
            let code = a.first().and_then(Value::as_int).unwrap_or(0);
            Value::Int(change_reply_status(c, code, None))
        },
    )
    .native("change_reply_status_code", RouteMask::ONREPLY);
    r.kemi("textopsx", "remove_body", &[], RetType::Int, |c, _| {
        if !c.msg.current_body().is_empty() {
            c.msg.set_body(Bytes::new());
        }
        Value::Int(1)
    })
    .native("remove_body", RouteMask::ANY);
    r.kemi("textopsx", "keep_hf", &[], RetType::Int, |c, _| {
        Value::Int(keep_hf(c, None))
    })
    .native("keep_hf", RouteMask::ANY);
    r.kemi("textopsx", "keep_hf_re", &[S], RetType::Int, |c, a| {
        let p = arg_bytes(a, 0);
        if p.is_empty() {
            return Value::Int(keep_hf(c, None));
        }
        match super::textops::regex(&p) {
            Some(re) => Value::Int(keep_hf(c, Some(&re))),
            None => Value::Int(-1),
        }
    })
    .native("keep_hf", RouteMask::ANY)
    .hints(&[ParamHint::Regex]);
    // KEMI gives 0 on a match (Kamailio's return value), the cfg function 1.
    r.kemi("textopsx", "fnmatch", &[S, S], RetType::Int, |_, a| {
        Value::Int(if fnmatch(&arg_bytes(a, 0), &arg_bytes(a, 1), b"") {
            0
        } else {
            -1
        })
    });
    r.kemi(
        "textopsx",
        "fnmatch_ex",
        &[S, S, S],
        RetType::Int,
        |_, a| {
            Value::Int(
                if fnmatch(&arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2)) {
                    0
                } else {
                    -1
                },
            )
        },
    );
    r.native("fnmatch", &[S, S], RouteMask::ANY, |_, a| {
        Value::Int(if fnmatch(&arg_bytes(a, 0), &arg_bytes(a, 1), b"") {
            1
        } else {
            -1
        })
    });
    r.native("fnmatch", &[S, S, S], RouteMask::ANY, |_, a| {
        Value::Int(
            if fnmatch(&arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2)) {
                1
            } else {
                -1
            },
        )
    });
}

fn register_hf_values(r: &mut Registrar<'_>) {
    use hfvalue::IncExc;
    let m = RouteMask(1 | 2 | 4 | 8 | 128);
    r.kemi(
        "textopsx",
        "append_hf_value",
        &[S, S],
        RetType::Int,
        |c, a| {
            Value::Int(hfvalue::append_hf_value(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
            ))
        },
    )
    .native("append_hf_value", m);
    r.kemi(
        "textopsx",
        "insert_hf_value",
        &[S, S],
        RetType::Int,
        |c, a| {
            Value::Int(hfvalue::insert_hf_value(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
            ))
        },
    )
    .native("insert_hf_value", m);
    r.kemi(
        "textopsx",
        "include_hf_value",
        &[S, S],
        RetType::Int,
        |c, a| {
            Value::Int(hfvalue::incexc_hf_value(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                IncExc::Include,
            ))
        },
    )
    .native("include_hf_value", m);
    r.kemi(
        "textopsx",
        "exclude_hf_value",
        &[S, S],
        RetType::Int,
        |c, a| {
            Value::Int(hfvalue::incexc_hf_value(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                IncExc::Exclude,
            ))
        },
    )
    .native("exclude_hf_value", m);
    r.kemi(
        "textopsx",
        "hf_value_exists",
        &[S, S],
        RetType::Int,
        |c, a| {
            Value::Int(hfvalue::incexc_hf_value(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                IncExc::Exists,
            ))
        },
    )
    .native("hf_value_exists", m);
    r.kemi("textopsx", "remove_hf_value", &[S], RetType::Int, |c, a| {
        Value::Int(hfvalue::remove_assign(
            c,
            &arg_bytes(a, 0),
            None,
            false,
            true,
        ))
    })
    .native("remove_hf_value", m);
    r.native("remove_hf_value2", &[S], m, |c, a| {
        Value::Int(hfvalue::remove_assign(
            c,
            &arg_bytes(a, 0),
            None,
            true,
            true,
        ))
    });
    // KEMI passes an empty value as none at all (Kamailio's ki_modify_hf).
    r.kemi(
        "textopsx",
        "remove_hf_value2",
        &[S, S],
        RetType::Int,
        |c, a| {
            let v = arg_bytes(a, 1);
            let v = (!v.is_empty()).then_some(&v[..]);
            Value::Int(hfvalue::remove_assign(c, &arg_bytes(a, 0), v, true, true))
        },
    );
    r.native("assign_hf_value", &[S, S], m, |c, a| {
        let v = arg_bytes(a, 1);
        Value::Int(hfvalue::remove_assign(
            c,
            &arg_bytes(a, 0),
            Some(&v),
            false,
            false,
        ))
    });
    r.kemi(
        "textopsx",
        "assign_hf_value",
        &[S, S],
        RetType::Int,
        |c, a| {
            let v = arg_bytes(a, 1);
            let v = (!v.is_empty()).then_some(&v[..]);
            Value::Int(hfvalue::remove_assign(c, &arg_bytes(a, 0), v, false, false))
        },
    );
    r.native("assign_hf_value2", &[S, S], m, |c, a| {
        let v = arg_bytes(a, 1);
        Value::Int(hfvalue::remove_assign(
            c,
            &arg_bytes(a, 0),
            Some(&v),
            true,
            false,
        ))
    });
    r.kemi(
        "textopsx",
        "assign_hf_value2",
        &[S, S],
        RetType::Int,
        |c, a| {
            let v = arg_bytes(a, 1);
            let v = (!v.is_empty()).then_some(&v[..]);
            Value::Int(hfvalue::remove_assign(c, &arg_bytes(a, 0), v, true, false))
        },
    );
}

/// Replaces the whole message with `data` and parses it again (`$du`, flags and the
/// receive information stay). A message that does not parse ends the script (0), like
/// Kamailio, which has freed the old one by then.
fn msg_set_buffer(c: &mut Ctx, data: &[u8]) -> i64 {
    if c.msg.is_request() && c.route != RouteKind::Request {
        crate::klog!(
            L_ERR,
            "textopsx",
            "invalid usage - not in request route or a reply"
        );
        return -1;
    }
    if data.is_empty() {
        crate::klog!(L_ERR, "textopsx", "invalid buffer parameter");
        return -1;
    }
    if data.len() >= 65535 {
        crate::klog!(
            L_ERR,
            "textopsx",
            "new buffer is too large ({})",
            data.len()
        );
        return -1;
    }
    let parsed = crate::sip::SipMsg::parse_with(
        Bytes::copy_from_slice(data),
        &crate::sip::Limits::default(),
        false,
    );
    let m = match parsed {
        Ok(m) => m,
        Err(e) => {
            crate::klog!(L_ERR, "textopsx", "parsing new sip message failed: {e}");
            return 0;
        }
    };
    if m.from().is_err() || m.to().is_err() || m.callid().is_none() || m.cseq().is_err() {
        crate::klog!(
            L_ERR,
            "textopsx",
            "parsing main headers of new sip message failed"
        );
        return 0;
    }
    c.msg = m;
    1
}

fn msg_apply_changes(c: &mut Ctx) -> i64 {
    if c.msg.is_request() && c.route != RouteKind::Request {
        crate::klog!(
            L_ERR,
            "textopsx",
            "invalid usage - not in request route or a reply"
        );
        return -1;
    }
    match c.msg.apply_changes() {
        Ok(()) => 1,
        Err(e) => {
            crate::klog!(L_ERR, "textopsx", "couldn't update msg buffer content: {e}");
            -1
        }
    }
}

fn change_reply_status(c: &mut Ctx, code: i64, reason: Option<Bytes>) -> i64 {
    let Some(cur) = c.msg.status() else {
        return -1;
    };
    let reason = match reason {
        Some(r) if r.is_empty() => {
            crate::klog!(L_ERR, "textopsx", "invalid reason parameter");
            return -1;
        }
        Some(r) => r,
        None => c.msg.reason().cloned().unwrap_or_default(),
    };
    if !(100..=699).contains(&code) {
        crate::klog!(L_ERR, "textopsx", "wrong status code: {code}");
        return -1;
    }
    let cur = i64::from(cur);
    if (code < 300 || cur < 300) && code / 100 != cur / 100 {
        crate::klog!(
            L_ERR,
            "textopsx",
            "the class of provisional or positive final replies cannot be changed"
        );
        return -1;
    }
    if c.msg.set_reply_status(code as u16, reason) {
        1
    } else {
        -1
    }
}

/// Removes every header except the ones a SIP message needs and those whose name matches
/// `re`. Kamailio 5.6 returns -1 even when it worked; so does this.
fn keep_hf(c: &mut Ctx, re: Option<&regex::bytes::Regex>) -> i64 {
    let idx: Vec<usize> = c
        .msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            !matches!(
                h.kind,
                HdrKind::From
                    | HdrKind::To
                    | HdrKind::CallId
                    | HdrKind::CSeq
                    | HdrKind::Via
                    | HdrKind::Contact
                    | HdrKind::ContentLength
                    | HdrKind::ContentType
                    | HdrKind::Route
                    | HdrKind::RecordRoute
                    | HdrKind::MaxForwards
            )
        })
        .filter(|(_, h)| re.is_none_or(|re| !re.is_match(&h.name)))
        .map(|(i, _)| i)
        .collect();
    for i in idx {
        c.msg.remove_header(i);
    }
    -1
}

/// fnmatch(3) without flags. Kamailio documents `i` for case-insensitive matching, but its
/// 5.6 builds compile without FNM_CASEFOLD, so the flag has no effect there (the oracle
/// shows it); it has none here either.
fn fnmatch(val: &[u8], pat: &[u8], _flags: &[u8]) -> bool {
    let (Ok(v), Ok(p)) = (
        std::ffi::CString::new(val.to_vec()),
        std::ffi::CString::new(pat.to_vec()),
    ) else {
        return false;
    };
    let f = 0;
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    unsafe { libc::fnmatch(p.as_ptr(), v.as_ptr(), f) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_patterns() {
        assert!(fnmatch(b"alice", b"al*", b""));
        assert!(!fnmatch(b"Alice", b"al*", b""));
        assert!(!fnmatch(b"Alice", b"al*", b"i"));
        assert!(fnmatch(b"a1", b"a[0-9]", b""));
        assert!(!fnmatch(b"a\0b", b"a*", b""));
    }
}
