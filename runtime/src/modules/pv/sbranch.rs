//! The static branch (`$sbranch(attr)`, `sbranch_set_ruri()`, `sbranch_append()`,
//! `sbranch_reset()`): one branch record per worker, kept across messages like Kamailio's
//! per-process one, filled field by field and then copied to the R-URI or appended.

use crate::ctx::{Branch, Ctx};
use crate::modules::Registrar;
use bytes::Bytes;
use std::cell::RefCell;
use vm::ksr::RetType;
use vm::pv::{PvClass, PvError, PvParam, PvSpec};
use vm::{RouteMask, Value};

thread_local! {
    /// This worker's static branch; an empty URI means unset. A reset branch has q 0 and no
    /// flags, as Kamailio's zeroed record.
    static SBRANCH: RefCell<Branch> = RefCell::new(zeroed());
}

fn zeroed() -> Branch {
    Branch {
        q: 0,
        ..Branch::default()
    }
}

pub fn register(r: &mut Registrar<'_>) {
    r.pvs.add(PvClass {
        name: "sbranch",
        get,
        set: Some(set),
        parse_name: Some(parse_name),
        name_required: true,
        takes_index: false,
    });
    r.kemi("pvx", "sbranch_set_ruri", &[], RetType::Int, |c, _| {
        set_ruri(c)
    })
    .native("sbranch_set_ruri", RouteMask::ANY);
    r.kemi("pvx", "sbranch_append", &[], RetType::Int, |c, _| append(c))
        .native("sbranch_append", RouteMask::ANY);
    r.kemi("pvx", "sbranch_reset", &[], RetType::Int, |_, _| {
        SBRANCH.with(|b| *b.borrow_mut() = zeroed());
        Value::Int(1)
    })
    .native("sbranch_reset", RouteMask::ANY);
}

// Attribute numbers.
const URI: i64 = 0;
const DST_URI: i64 = 1;
const PATH: i64 = 2;
const Q: i64 = 3;
const SEND_SOCKET: i64 = 4;
const COUNT: i64 = 5;
const FLAGS: i64 = 6;
const RUID: i64 = 7;
const LOCATION_UA: i64 = 8;
const OTCPID: i64 = 9;
const INSTANCE: i64 = 10;

fn parse_name(s: &str) -> Result<PvParam, String> {
    let n = match s.trim() {
        "uri" => URI,
        "dst_uri" => DST_URI,
        "path" => PATH,
        "q" | "Q" => Q,
        "send_socket" => SEND_SOCKET,
        "count" => COUNT,
        "flags" => FLAGS,
        "ruid" => RUID,
        "location_ua" => LOCATION_UA,
        "otcpid" => OTCPID,
        "instance" => INSTANCE,
        o => return Err(format!("unknown PV branch name {o}")),
    };
    Ok(PvParam::Int(n))
}

fn attr(spec: &PvSpec) -> i64 {
    match spec.param {
        PvParam::Int(i) => i,
        _ => URI,
    }
}

fn opt(o: &Option<Bytes>) -> Value {
    match o {
        Some(b) if !b.is_empty() => Value::Str(b.clone()),
        _ => Value::Null,
    }
}

fn get(c: &mut Ctx, spec: &PvSpec) -> Value {
    let a = attr(spec);
    if a == COUNT {
        return Value::Int(c.branches.len() as i64);
    }
    SBRANCH.with(|b| {
        let b = b.borrow();
        if b.uri.is_empty() {
            return Value::Null;
        }
        match a {
            DST_URI => opt(&b.dst_uri),
            PATH => opt(&b.path),
            Q if b.q < 0 => Value::Null,
            Q => Value::Int(b.q as i64),
            SEND_SOCKET => match b.force_socket.and_then(|i| c.core.listeners.get(i)) {
                Some(l) => Value::from(l.sock_str()),
                None => Value::Null,
            },
            FLAGS => Value::Int((b.flags & 0xffff_ffff) as i64),
            RUID => opt(&b.ruid),
            LOCATION_UA => opt(&b.location_ua),
            OTCPID => Value::Int(0),
            INSTANCE => opt(&b.instance),
            _ => Value::Str(b.uri.clone()),
        }
    })
}

fn str_or_clear(v: &Value) -> Result<Option<Bytes>, PvError> {
    match v {
        Value::Null => Ok(None),
        Value::Str(s) if s.is_empty() => Ok(None),
        Value::Str(s) => Ok(Some(s.clone())),
        Value::Int(_) => Err(PvError::BadValue("string value required".into())),
    }
}

fn set(c: &mut Ctx, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    let a = attr(spec);
    let socket = match (a, v) {
        (SEND_SOCKET, Value::Str(s)) if !s.is_empty() => {
            let text = String::from_utf8_lossy(s);
            let found = crate::modules::core::find_socket(c.core, &text);
            if found.is_none() {
                crate::klog!(
                    crate::log::L_WARN,
                    "pv",
                    "no socket found to match [{text}]"
                );
            }
            found
        }
        _ => None,
    };
    SBRANCH.with(|b| {
        let mut b = b.borrow_mut();
        match a {
            DST_URI => b.dst_uri = str_or_clear(v)?,
            PATH => b.path = str_or_clear(v)?,
            Q => {
                b.q = match v {
                    Value::Null => -1,
                    Value::Int(i) => *i as i32,
                    Value::Str(_) => return Err(PvError::BadValue("int value required".into())),
                }
            }
            SEND_SOCKET => {
                str_or_clear(v)?;
                b.force_socket = socket;
            }
            FLAGS => {
                b.flags = match v {
                    Value::Null => 0,
                    Value::Int(i) => (*i as u32) as u64,
                    Value::Str(_) => return Err(PvError::BadValue("int value required".into())),
                }
            }
            OTCPID => {
                if let Value::Str(_) = v {
                    return Err(PvError::BadValue("int value required".into()));
                }
            }
            COUNT | RUID | LOCATION_UA | INSTANCE => {}
            _ => match str_or_clear(v)? {
                None => *b = zeroed(),
                Some(u) => b.uri = u,
            },
        }
        Ok(())
    })
}

/// `sbranch_set_ruri()`: the static branch becomes the R-URI branch (URI, destination,
/// socket, q; its flags are added to the R-URI branch flags).
fn set_ruri(c: &mut Ctx) -> Value {
    let br = SBRANCH.with(|b| b.borrow().clone());
    if br.uri.is_empty() {
        return Value::Int(-1);
    }
    if !c.msg.is_request() {
        return Value::Int(-1);
    }
    c.msg.set_ruri(br.uri.clone());
    c.dst_uri = br.dst_uri.filter(|d| !d.is_empty());
    // Kamailio 5.6 clears the path vector here whatever the static branch holds.
    c.path_vec = None;
    if let Some(s) = br.force_socket {
        c.force_socket = Some(s);
    }
    c.ruri_q = br.q;
    c.bflags |= br.flags;
    Value::Int(1)
}

/// `sbranch_append()`: a new branch from the static branch.
fn append(c: &mut Ctx) -> Value {
    let br = SBRANCH.with(|b| b.borrow().clone());
    if br.uri.is_empty() {
        return Value::Int(-1);
    }
    if c.branches.len() + 1 >= c.core.cfg.max_branches.max(1) as usize {
        crate::klog!(crate::log::L_ERR, "pv", "failed to append static branch");
        return Value::Int(-1);
    }
    let nonempty = |o: Option<Bytes>| o.filter(|b| !b.is_empty());
    c.branches.push(Branch {
        uri: br.uri,
        dst_uri: nonempty(br.dst_uri),
        path: nonempty(br.path),
        q: br.q,
        flags: br.flags,
        force_socket: br.force_socket,
        instance: nonempty(br.instance),
        ruid: nonempty(br.ruid),
        location_ua: nonempty(br.location_ua),
    });
    Value::Int(1)
}
