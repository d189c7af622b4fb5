//! Kamailio's `registrar` module: `save()` stores the contacts of a REGISTER in usrloc and
//! answers it, `lookup()` turns a request's R-URI into the registered contacts (R-URI, `$du`
//! from received/Path, more contacts as branches), `registered()` and `unregister()`.

pub mod regpv;

use super::core::actions::{arg_bytes, arg_int};
use super::usrloc::{ALL_METHODS, Contact, FL_MEM, Q_UNSPECIFIED, Record, UsrlocState, now};
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::ctx::{Branch, Ctx};
use crate::log::{L_ERR, L_INFO, L_WARN};
use crate::sip::scan::{Param, trim_lws};
use crate::sip::uri::Uri;
use crate::sip::{HdrKind, Method, NameAddr};
use bytes::Bytes;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "registrar",
    params: &[
        ParamDef::int("default_expires"),
        ParamDef::int("default_expires_range"),
        ParamDef::int("expires_range"),
        ParamDef::int("min_expires"),
        ParamDef::int("min_expires_mode"),
        ParamDef::int("max_expires"),
        ParamDef::int("default_q"),
        ParamDef::str("realm_prefix"),
        ParamDef::int("append_branches"),
        ParamDef::int("case_sensitive"),
        ParamDef::str("received_avp"),
        ParamDef::str("received_param"),
        ParamDef::int("max_contacts"),
        ParamDef::int("retry_after"),
        ParamDef::int("method_filtering"),
        ParamDef::int("use_path"),
        ParamDef::int("path_mode"),
        ParamDef::int("path_use_received"),
        ParamDef::int("path_check_local"),
        ParamDef::int("gruu_enabled"),
        ParamDef::int("outbound_mode"),
        ParamDef::int("regid_mode"),
        ParamDef::int("contact_max_size"),
        ParamDef::int("use_expired_contacts"),
        ParamDef::int("sock_flag"),
        ParamDef::str("sock_hdr_name"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// save() flags.
const SAVE_MEM: i64 = 0x01;
const SAVE_NORPL: i64 = 0x02;
const SAVE_REPL: i64 = 0x04;
const SAVE_NOVARIATION: i64 = 0x08;
const SAVE_PREPRPL: i64 = 0x10;

pub struct RegistrarState {
    pub default_expires: i64,
    pub default_expires_range: i64,
    pub expires_range: i64,
    pub min_expires: i64,
    pub min_expires_mode: bool,
    pub max_expires: i64,
    pub default_q: i32,
    pub realm_prefix: String,
    pub append_branches: bool,
    pub case_sensitive: bool,
    /// Name of the AVP holding the received URI (`$avp(NAME)` -> `NAME`).
    pub received_avp: Option<Bytes>,
    pub received_param: String,
    pub max_contacts: i64,
    pub retry_after: i64,
    pub method_filtering: bool,
    pub use_path: bool,
    pub path_mode: i64,
    pub path_use_received: bool,
    pub path_check_local: bool,
    pub contact_max_size: usize,
    pub use_expired_contacts: bool,
    /// Message flag telling save() to take the socket from `sock_hdr_name` (-1: off).
    pub sock_flag: i32,
    pub sock_hdr_name: String,
}

impl Default for RegistrarState {
    fn default() -> Self {
        RegistrarState {
            default_expires: 3600,
            default_expires_range: 0,
            expires_range: 0,
            min_expires: 60,
            min_expires_mode: false,
            max_expires: 0,
            default_q: Q_UNSPECIFIED,
            realm_prefix: String::new(),
            append_branches: true,
            case_sensitive: false,
            received_avp: None,
            received_param: "received".into(),
            max_contacts: 0,
            retry_after: 0,
            method_filtering: false,
            use_path: false,
            path_mode: 2,
            path_use_received: false,
            path_check_local: false,
            contact_max_size: 512,
            use_expired_contacts: false,
            sock_flag: -1,
            sock_hdr_name: String::new(),
        }
    }
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    if !ictx.loaded.contains(&"usrloc") {
        return Err("the registrar module needs the usrloc module".into());
    }
    let p = ictx.params;
    let st = &mut ictx.states.registrar;
    st.default_expires = p.int("default_expires", 3600).max(0);
    st.default_expires_range = p.int("default_expires_range", 0).clamp(0, 100);
    st.expires_range = p.int("expires_range", 0).clamp(0, 100);
    st.min_expires = p.int("min_expires", 60).max(0);
    st.min_expires_mode = p.int("min_expires_mode", 0) != 0;
    st.max_expires = p.int("max_expires", 0).max(0);
    let q = p.int("default_q", Q_UNSPECIFIED as i64);
    st.default_q = if (0..=1000).contains(&q) {
        q as i32
    } else {
        Q_UNSPECIFIED
    };
    st.realm_prefix = p.str_or("realm_prefix", "");
    st.append_branches = p.int("append_branches", 1) != 0;
    st.case_sensitive = p.int("case_sensitive", 0) != 0;
    if let Some(a) = p.str("received_avp").filter(|s| !s.is_empty()) {
        st.received_avp = Some(avp_name(&a).ok_or(format!("bad received_avp '{a}'"))?);
    }
    st.received_param = p.str_or("received_param", "received");
    st.max_contacts = p.int("max_contacts", 0).max(0);
    st.retry_after = p.int("retry_after", 0).max(0);
    st.method_filtering = p.int("method_filtering", 0) != 0;
    st.use_path = p.int("use_path", 0) != 0;
    st.path_mode = p.int("path_mode", 2);
    st.path_use_received = p.int("path_use_received", 0) != 0;
    st.path_check_local = p.int("path_check_local", 0) != 0;
    st.contact_max_size = p.int("contact_max_size", 512).max(1) as usize;
    st.use_expired_contacts = p.int("use_expired_contacts", 0) != 0;
    st.sock_flag = p.int("sock_flag", -1) as i32;
    st.sock_hdr_name = p.str_or("sock_hdr_name", "");
    if p.int("gruu_enabled", 0) != 0 {
        crate::klog!(
            L_WARN,
            "registrar",
            "gruu_enabled: GRUU is not supported by ksr, contacts are saved without GRUUs"
        );
    }
    if p.int("outbound_mode", 0) != 0 {
        return Err("outbound_mode other than 0 is not supported".into());
    }
    Ok(())
}

/// `$avp(NAME)` / `$avp(s:NAME)` / `NAME` -> the AVP name ksr stores.
fn avp_name(spec: &str) -> Option<Bytes> {
    let s = spec.trim();
    let inner = s
        .strip_prefix("$avp(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(s);
    let inner = inner.strip_prefix("s:").unwrap_or(inner);
    let name = if let Some(i) = inner.strip_prefix("i:") {
        format!("#{}", i.trim().parse::<i64>().ok()?)
    } else {
        inner.to_string()
    };
    (!name.is_empty()).then(|| Bytes::from(name))
}

const ALL_ROUTES_REQ_FAIL_REPLY: RouteMask = RouteMask(1 | 2 | 4 | 8 | 16);
const REQ_FAIL: RouteMask = RouteMask(1 | 2);

fn register(r: &mut Registrar<'_>) {
    r.kemi("registrar", "save", &[S, I], RetType::Int, |c, a| {
        Value::Int(save(c, &arg_bytes(a, 0), arg_int(a, 1), None) as i64)
    })
    .native("save", ALL_ROUTES_REQ_FAIL_REPLY);
    r.native("save", &[S], ALL_ROUTES_REQ_FAIL_REPLY, |c, a| {
        Value::Int(save(c, &arg_bytes(a, 0), 0, None) as i64)
    });
    r.kemi("registrar", "save_uri", &[S, I, S], RetType::Int, |c, a| {
        let uri = arg_bytes(a, 2);
        Value::Int(save(c, &arg_bytes(a, 0), arg_int(a, 1), Some(&uri)) as i64)
    })
    .native("save", ALL_ROUTES_REQ_FAIL_REPLY);

    r.kemi("registrar", "lookup", &[S], RetType::Int, |c, a| {
        Value::Int(lookup(c, &arg_bytes(a, 0), None, false) as i64)
    })
    .native("lookup", REQ_FAIL);
    r.kemi("registrar", "lookup_uri", &[S, S], RetType::Int, |c, a| {
        let uri = arg_bytes(a, 1);
        Value::Int(lookup(c, &arg_bytes(a, 0), Some(&uri), false) as i64)
    })
    .native("lookup", REQ_FAIL);
    r.native("lookup_to_dset", &[S], REQ_FAIL, |c, a| {
        Value::Int(lookup(c, &arg_bytes(a, 0), None, true) as i64)
    });
    r.kemi(
        "registrar",
        "lookup_to_dset",
        &[S, S],
        RetType::Int,
        |c, a| {
            let uri = arg_bytes(a, 1);
            let uri = (!uri.is_empty()).then_some(uri);
            Value::Int(lookup(c, &arg_bytes(a, 0), uri.as_ref(), true) as i64)
        },
    )
    .native("lookup_to_dset", REQ_FAIL);

    r.hooks.request_pre.push(|_| {
        PENDING.with(|p| *p.borrow_mut() = None);
        Q_OVERRIDE.with(|o| o.set(None));
    });
    r.kemi(
        "registrar",
        "lookup_xavp",
        &[S, S, S, S],
        RetType::Int,
        |c, a| {
            let table = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
            Value::Int(regpv::lookup_xavp(
                c,
                &table,
                &arg_bytes(a, 1),
                &arg_bytes(a, 2),
                &arg_bytes(a, 3),
            ) as i64)
        },
    )
    .native("lookup_xavp", RouteMask::ANY);
    r.kemi("registrar", "set_q_override", &[S], RetType::Int, |_, a| {
        Value::Int(set_q_override(&arg_bytes(a, 0)) as i64)
    });
    r.kemi("registrar", "add_sock_hdr", &[S], RetType::Int, |c, a| {
        Value::Int(add_sock_hdr(c, &arg_bytes(a, 0)) as i64)
    })
    .native("add_sock_hdr", RouteMask::REQUEST);
    r.kemi(
        "registrar",
        "reg_from_user",
        &[S, S, I],
        RetType::Int,
        |c, a| {
            Value::Int(reg_from_user(c, &arg_bytes(a, 0), &arg_bytes(a, 1), arg_int(a, 2)) as i64)
        },
    )
    .native("reg_from_user", RouteMask::ANY);
    r.kemi("registrar", "reg_send_reply", &[], RetType::Int, |c, _| {
        Value::Int(reg_send_reply(c) as i64)
    })
    .native("reg_send_reply", REQ_FAIL);
    r.kemi(
        "registrar",
        "lookup_branches",
        &[S],
        RetType::Int,
        |c, a| Value::Int(lookup_branches(c, &arg_bytes(a, 0)) as i64),
    )
    .native("lookup_branches", REQ_FAIL);
    r.kemi(
        "registrar",
        "reg_fetch_contacts",
        &[S, S, S],
        RetType::Int,
        |c, a| {
            let table = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
            let profile = String::from_utf8_lossy(&arg_bytes(a, 2)).into_owned();
            Value::Int(regpv::fetch(c, &table, &arg_bytes(a, 1), &profile) as i64)
        },
    )
    .native("reg_fetch_contacts", REQ_FAIL);
    r.kemi(
        "registrar",
        "reg_free_contacts",
        &[S],
        RetType::Int,
        |_, a| Value::Int(regpv::free(&String::from_utf8_lossy(&arg_bytes(a, 0))) as i64),
    )
    .native("reg_free_contacts", REQ_FAIL);
    r.kemi("registrar", "ulc_rget", &[S, S], RetType::Xval, |_, a| {
        regpv::get(
            &String::from_utf8_lossy(&arg_bytes(a, 0)),
            &String::from_utf8_lossy(&arg_bytes(a, 1)),
            0,
        )
    });
    r.kemi(
        "registrar",
        "ulc_cget",
        &[S, S, I],
        RetType::Xval,
        |_, a| {
            regpv::get(
                &String::from_utf8_lossy(&arg_bytes(a, 0)),
                &String::from_utf8_lossy(&arg_bytes(a, 1)),
                arg_int(a, 2),
            )
        },
    );
    r.pvs.add(vm::pv::PvClass {
        name: "ulc",
        get: regpv::pv_get,
        set: None,
        parse_name: Some(regpv::parse_name as fn(&str) -> Result<vm::pv::PvParam, String>),
        name_required: true,
        takes_index: true,
    });

    r.kemi("registrar", "registered", &[S], RetType::Int, |c, a| {
        Value::Int(registered(c, &arg_bytes(a, 0), None) as i64)
    })
    .native("registered", RouteMask::ANY);
    r.kemi(
        "registrar",
        "registered_uri",
        &[S, S],
        RetType::Int,
        |c, a| {
            let uri = arg_bytes(a, 1);
            Value::Int(registered(c, &arg_bytes(a, 0), Some(&uri)) as i64)
        },
    )
    .native("registered", RouteMask::ANY);
    // The match flags select xavp_cfg fields; without xavp_cfg (not supported) they match
    // nothing more, as in Kamailio.
    r.kemi(
        "registrar",
        "registered_flags",
        &[S, S, I],
        RetType::Int,
        |c, a| {
            let uri = arg_bytes(a, 1);
            Value::Int(registered(c, &arg_bytes(a, 0), Some(&uri)) as i64)
        },
    )
    .native("registered", RouteMask::ANY);
    r.kemi(
        "registrar",
        "registered_action",
        &[S, S, I, I],
        RetType::Int,
        |c, a| {
            let uri = arg_bytes(a, 1);
            Value::Int(registered(c, &arg_bytes(a, 0), Some(&uri)) as i64)
        },
    )
    .native("registered", RouteMask::ANY);

    r.kemi("registrar", "unregister", &[S, S], RetType::Int, |c, a| {
        Value::Int(unregister(c, &arg_bytes(a, 0), &arg_bytes(a, 1), b"") as i64)
    })
    .native("unregister", RouteMask::ANY);
    r.kemi(
        "registrar",
        "unregister_ruid",
        &[S, S, S],
        RetType::Int,
        |c, a| {
            Value::Int(unregister(c, &arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2)) as i64)
        },
    )
    .native("unregister", RouteMask::ANY);
}

/// Why a REGISTER is refused (Kamailio's rerrno), with its reply code and P-Registrar-Error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegError {
    UlDelR,
    UlGetR,
    InvCseq,
    UlInsC,
    UlUpdC,
    ToUser,
    AorLen,
    AorParse,
    InvExp,
    InvQ,
    Parse,
    ToMiss,
    CidMiss,
    CsMiss,
    ParseExp,
    ParseCont,
    StarExp,
    StarCont,
    TooMany,
    ContactLen,
    CallidLen,
    ParsePath,
    PathUnsup,
    ObReqd,
    InvRegid,
    LowExp,
}

impl RegError {
    pub fn code(self) -> u16 {
        use RegError::*;
        match self {
            UlDelR | UlGetR | UlInsC | UlUpdC | AorLen => 500,
            TooMany => 503,
            PathUnsup | ObReqd => 420,
            LowExp => 423,
            _ => 400,
        }
    }

    pub fn reason(self) -> &'static str {
        match self.code() {
            500 => "Server Internal Error",
            503 => "Service Unavailable",
            420 => "Bad Extension",
            423 => "Interval Too Brief",
            _ => "Bad Request",
        }
    }

    pub fn info(self) -> &'static str {
        use RegError::*;
        match self {
            UlDelR => "usrloc_record_delete failed",
            UlGetR => "usrloc_record_get failed",
            InvCseq => "Invalid CSeq number",
            UlInsC => "usrloc_contact_insert failed",
            UlUpdC => "usrloc_contact_update failed",
            ToUser => "No username in To URI",
            AorLen => "Address Of Record too long",
            AorParse => "Error while parsing AOR",
            InvExp => "Invalid expires param in contact",
            InvQ => "Invalid q param in contact",
            Parse => "Message parse error",
            ToMiss => "To header not found",
            CidMiss => "Call-ID header not found",
            CsMiss => "CSeq header not found",
            ParseExp => "Expires parse error",
            ParseCont => "Contact parse error",
            StarExp => "* used in contact and expires is not zero",
            StarCont => "* used in contact and more than 1 contact",
            TooMany => "Too many registered contacts",
            ContactLen => "Contact/received too long",
            CallidLen => "Callid too long",
            ParsePath => "Path parse error",
            PathUnsup => "No support for found Path indicated",
            ObReqd => "No support for Outbound on server",
            InvRegid => "Invalid Reg-Id number",
            LowExp => "Interval too brief",
        }
    }
}

const MAX_AOR_LEN: usize = 256;
const CALLID_MAX: usize = 255;
const UA_MAX: usize = 255;

/// The address of record of a URI: `user` (or `user@host` with usrloc `use_domain`),
/// unescaped, lower-cased unless `case_sensitive` (the host always).
pub fn extract_aor(uri: &[u8], use_domain: bool, rs: &RegistrarState) -> Result<String, RegError> {
    let u = Uri::parse_bytes(trim_lws(uri)).map_err(|_| RegError::AorParse)?;
    if u.user.len() + u.host.len() + 1 > MAX_AOR_LEN || uri.len() > 1024 {
        return Err(RegError::AorLen);
    }
    let user = unescape(&u.user).ok_or(RegError::AorParse)?;
    let user = if rs.case_sensitive {
        user
    } else {
        user.to_ascii_lowercase()
    };
    if !use_domain {
        return Ok(user);
    }
    let mut host = String::from_utf8_lossy(&u.host).to_ascii_lowercase();
    if !rs.realm_prefix.is_empty()
        && host.len() > rs.realm_prefix.len()
        && host.starts_with(&rs.realm_prefix.to_ascii_lowercase())
    {
        host = host[rs.realm_prefix.len()..].to_string();
    }
    Ok(if user.is_empty() {
        host
    } else {
        format!("{user}@{host}")
    })
}

fn unescape(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// A q value (`0`, `0.5`, `1.000` ...) as thousandths.
pub fn parse_q(s: &[u8]) -> Option<i32> {
    let s = std::str::from_utf8(trim_lws(s)).ok()?;
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 3 {
        return None;
    }
    let ip: i32 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut fp: i32 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..3 {
        fp *= 10;
    }
    let q = ip.checked_mul(1000)?.checked_add(fp)?;
    (0..=1000).contains(&q).then_some(q)
}

/// Kamailio's text form of a q value (`q2str`).
pub fn q_text(q: i32) -> String {
    if q == Q_UNSPECIFIED {
        return String::new();
    }
    if q >= 1000 {
        return "1".into();
    }
    if q <= 0 {
        return "0".into();
    }
    let mut s = String::from("0.");
    let mut q = q;
    s.push((b'0' + (q / 100) as u8) as char);
    q %= 100;
    if q != 0 {
        s.push((b'0' + (q / 10) as u8) as char);
        q %= 10;
        if q != 0 {
            s.push((b'0' + q as u8) as char);
        }
    }
    s
}

fn cheap_rand() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn randomize(e: i64, range: i64) -> i64 {
    if range <= 0 || e <= 0 {
        return e;
    }
    let min = e - e * range / 100;
    min + ((cheap_rand() % 100) as i64) * (e - min) / 100
}

/// Expires of one contact, in seconds (0 = remove), from its `expires` parameter, the
/// Expires header or `default_expires`, bounded by `min_expires`/`max_expires`.
pub fn contact_expires(
    rs: &RegistrarState,
    param: Option<&[u8]>,
    hdr: Option<u32>,
    novariation: bool,
) -> Result<i64, RegError> {
    let (mut e, range) = match param.filter(|p| !p.is_empty()) {
        Some(p) => match crate::sip::scan::parse_u32(trim_lws(p)) {
            Some(v) => (v as i64, rs.expires_range),
            None => (rs.default_expires, rs.default_expires_range),
        },
        None => match hdr {
            Some(v) => (v as i64, rs.expires_range),
            None => (rs.default_expires, rs.default_expires_range),
        },
    };
    if e != 0 {
        if e < rs.min_expires {
            if rs.min_expires_mode {
                return Err(RegError::LowExp);
            }
            e = rs.min_expires;
        }
        if !novariation {
            e = randomize(e, range).max(rs.min_expires);
        }
        if rs.max_expires > 0 && e > rs.max_expires {
            e = rs.max_expires;
        }
    }
    Ok(e)
}

fn param_of<'a>(params: &'a [Param], name: &[u8]) -> Option<&'a [u8]> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref().unwrap_or(b""))
}

fn unquote(v: &[u8]) -> &[u8] {
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Method bits of an Allow-like list (`INVITE, ACK, BYE`).
fn methods_mask(list: &[u8]) -> u32 {
    let mut m = 0;
    for part in list.split(|b| *b == b',') {
        let t = trim_lws(part);
        if !t.is_empty() {
            m |= Method::parse(t).bit();
        }
    }
    m
}

fn has_option_tag(c: &Ctx, kind: HdrKind, tag: &[u8]) -> bool {
    c.msg.headers_of(kind).any(|h| {
        h.value
            .split(|b| *b == b',')
            .any(|t| trim_lws(t).eq_ignore_ascii_case(tag))
    })
}

/// Everything about the REGISTER that is the same for all its contacts.
struct MsgInfo {
    callid: String,
    cseq: i32,
    sock: String,
    tcpconn_id: i64,
    user_agent: String,
    received: String,
    path: String,
    cflags: u32,
    flags: u32,
    allow: u32,
    expires_hdr: Option<u32>,
}

fn msg_info(
    c: &Ctx,
    rs: &RegistrarState,
    ul: &UsrlocState,
    mem: bool,
) -> Result<MsgInfo, RegError> {
    let callid = c.msg.callid().ok_or(RegError::CidMiss)?;
    let callid = trim_lws(callid);
    if callid.len() > CALLID_MAX {
        return Err(RegError::CallidLen);
    }
    let cseq = c.msg.cseq().map_err(|_| RegError::CsMiss)?.number;
    if c.msg.header(HdrKind::CSeq).is_none() {
        return Err(RegError::CsMiss);
    }
    let sock = sock_from_header(c, rs).unwrap_or_else(|| {
        c.core
            .listeners
            .get(c.rcv.listener)
            .map(|l| l.sock_str())
            .unwrap_or_default()
    });
    let tcpconn_id = match c.rcv.conn {
        Some(id) => id as i64,
        None => -1,
    };
    let user_agent = match c.msg.user_agent() {
        Some(ua) if !ua.is_empty() && ua.len() < UA_MAX => lossy(ua),
        _ => "n/a".into(),
    };
    let mut cflags = c.bflags as u32;
    let mut received = String::new();
    let mut path = String::new();
    if rs.use_path {
        let mut parts = Vec::new();
        for h in c.msg.headers_of(HdrKind::Path) {
            parts.push(lossy(&h.value));
        }
        path = parts.join(",");
        if !path.is_empty() {
            let first =
                crate::sip::nameaddr::parse_list(&Bytes::from(path.clone()), path.as_bytes())
                    .map_err(|_| RegError::ParsePath)?;
            if rs.path_use_received
                && let Some(rcv) = first
                    .first()
                    .and_then(|na| na.uri.param(b"received").and_then(|p| p.value.clone()))
            {
                received = lossy(unquote(&rcv));
                if ul.nat_bflag >= 0 {
                    cflags |= 1 << ul.nat_bflag;
                }
            }
        }
    }
    if received.is_empty()
        && let Some(name) = &rs.received_avp
        && let Some((_, v)) = c.avps.iter().find(|(n, _)| n == name)
    {
        received = lossy(&crate::modules::pv::util::value_bytes(v));
    }
    let allow = match c.msg.header(HdrKind::Allow) {
        Some(_) => c
            .msg
            .headers_of(HdrKind::Allow)
            .fold(0, |m, h| m | methods_mask(&h.value)),
        None => ALL_METHODS,
    };
    let expires_hdr = c.msg.expires().map_err(|_| RegError::ParseExp)?;
    Ok(MsgInfo {
        callid: lossy(callid),
        cseq: cseq as i32,
        sock,
        tcpconn_id,
        user_agent,
        received,
        path,
        cflags,
        flags: if mem { FL_MEM } else { 0 },
        allow,
        expires_hdr,
    })
}

/// With `sock_flag` set on the message, the local socket named in the `sock_hdr_name`
/// header (e.g. added by `add_sock_hdr()` on a front proxy).
fn sock_from_header(c: &Ctx, rs: &RegistrarState) -> Option<String> {
    if rs.sock_flag < 0 || rs.sock_hdr_name.is_empty() || c.flags & (1u64 << rs.sock_flag) == 0 {
        return None;
    }
    let h = c.msg.header_named(rs.sock_hdr_name.as_bytes())?;
    let v = String::from_utf8_lossy(trim_lws(&h.value)).to_ascii_lowercase();
    let l = c.core.listeners.iter().find(|l| l.sock_str() == v);
    if l.is_none() {
        crate::klog!(L_ERR, "registrar", "non-local socket <{v}>");
    }
    l.map(|l| l.sock_str())
}

thread_local! {
    /// `set_q_override()` for the current request (cleared for every new one).
    static Q_OVERRIDE: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

/// `set_q_override(q)`: the q value save() gives every contact of this request.
pub fn set_q_override(q: &[u8]) -> i32 {
    match parse_q(q) {
        Some(v) => {
            Q_OVERRIDE.with(|o| o.set(Some(v)));
            1
        }
        None => {
            crate::klog!(L_ERR, "registrar", "Invalid q value");
            -1
        }
    }
}

/// `add_sock_hdr(name)`: a header naming the receiving socket, for a registrar behind this
/// proxy (its `sock_hdr_name`).
pub fn add_sock_hdr(c: &mut Ctx, name: &[u8]) -> i32 {
    if name.is_empty() {
        crate::klog!(L_ERR, "registrar", "invalid header name parameter");
        return -1;
    }
    let Some(l) = c.core.listeners.get(c.rcv.listener) else {
        return -1;
    };
    let line = format!("{}: {}\r\n", String::from_utf8_lossy(name), l.sock_str());
    c.msg.append_header(Bytes::from(line));
    1
}

/// `reg_from_user(table, uri, mode)`: 1 when a binding of the AoR was made from this
/// request's source address (received URI, else the contact; mode 1 also the port, 2 also
/// the transport), -1 otherwise.
pub fn reg_from_user(c: &mut Ctx, table: &[u8], uri: &[u8], mode: i64) -> i32 {
    let ul = &c.core.m.usrloc;
    let rs = &c.core.m.registrar;
    let Ok(aor) = extract_aor(uri, ul.use_domain, rs) else {
        crate::klog!(L_ERR, "registrar", "failed to extract Address Of Record");
        return -1;
    };
    let d = ul.domain(&String::from_utf8_lossy(table));
    let Ok(Some(rec)) = ul.get(&d, &aor) else {
        return -1;
    };
    for ct in &rec.contacts {
        let text = if ct.received.is_empty() {
            &ct.c
        } else {
            &ct.received
        };
        let Ok(u) = Uri::parse_bytes(text.as_bytes()) else {
            crate::klog!(L_ERR, "registrar", "failed to parse uri [{text}]");
            return -1;
        };
        let Ok(ip) = String::from_utf8_lossy(u.host_unbracketed()).parse::<std::net::IpAddr>()
        else {
            continue;
        };
        if ip != c.rcv.src.ip() {
            continue;
        }
        if mode & 1 != 0 && u.port.unwrap_or(0) != c.rcv.src.port() {
            continue;
        }
        if mode & 2 != 0 {
            let t = u.transport().unwrap_or_default();
            if !t.eq_ignore_ascii_case(&c.rcv.proto.to_string()) {
                continue;
            }
        }
        return 1;
    }
    -1
}

/// One Contact of the REGISTER, with its computed expires (absolute, 0 = remove).
struct NewContact {
    uri: String,
    expires: i64,
    q: i32,
    methods: u32,
    instance: String,
    reg_id: u32,
}

fn new_contacts(
    list: &[NameAddr],
    mi: &MsgInfo,
    rs: &RegistrarState,
    novariation: bool,
    t: i64,
) -> Result<Vec<NewContact>, RegError> {
    let mut out = Vec::with_capacity(list.len());
    for na in list {
        let e = contact_expires(
            rs,
            param_of(&na.params, b"expires"),
            mi.expires_hdr,
            novariation,
        )?;
        let q = match (Q_OVERRIDE.with(|o| o.get()), param_of(&na.params, b"q")) {
            (Some(q), _) => q,
            (None, Some(v)) if !v.is_empty() => parse_q(v).ok_or(RegError::InvQ)?,
            _ => rs.default_q,
        };
        let methods = match param_of(&na.params, b"methods") {
            Some(v) if !v.is_empty() => methods_mask(unquote(v)),
            _ => mi.allow,
        };
        let instance = param_of(&na.params, b"+sip.instance")
            .map(|v| lossy(unquote(v)))
            .unwrap_or_default();
        let reg_id = match param_of(&na.params, b"reg-id") {
            Some(v) => crate::sip::scan::parse_u32(trim_lws(v)).ok_or(RegError::InvRegid)?,
            None => 0,
        };
        out.push(NewContact {
            uri: lossy(&na.uri_raw),
            expires: if e == 0 { 0 } else { e + t },
            q,
            methods,
            instance,
            reg_id,
        });
    }
    Ok(out)
}

/// How a contact of the REGISTER matches the stored ones (usrloc's get_ucontact).
enum Match {
    Found(usize),
    NotFound,
    /// Same Call-ID with a lower CSeq (or an equal one too late to be a retransmission).
    BadCseq,
    /// Same Call-ID and CSeq shortly after: a retransmission, skip it.
    Retrans,
}

fn find_contact(
    rec: &Record,
    nc: &NewContact,
    mi: &MsgInfo,
    ul: &UsrlocState,
    t: i64,
    cseq: i32,
) -> Match {
    let pos = rec.contacts.iter().position(|c| {
        if !nc.instance.is_empty() {
            c.instance == nc.instance && c.reg_id == nc.reg_id
        } else {
            c.c == nc.uri
        }
    });
    let Some(i) = pos else {
        return Match::NotFound;
    };
    let c = &rec.contacts[i];
    if c.callid == mi.callid {
        if cseq < c.cseq {
            return Match::BadCseq;
        }
        if cseq == c.cseq {
            return if c.last_modified + ul.cseq_delay > t {
                Match::Retrans
            } else {
                Match::BadCseq
            };
        }
    }
    Match::Found(i)
}

fn fill(c: &mut Contact, nc: &NewContact, mi: &MsgInfo, t: i64) {
    c.c = nc.uri.clone();
    c.expires = nc.expires;
    c.q = nc.q;
    c.callid = mi.callid.clone();
    c.cseq = mi.cseq;
    c.flags = mi.flags;
    c.cflags = mi.cflags;
    c.user_agent = mi.user_agent.clone();
    c.sock = mi.sock.clone();
    c.methods = nc.methods;
    c.instance = nc.instance.clone();
    c.reg_id = nc.reg_id;
    c.received = mi.received.clone();
    c.path = mi.path.clone();
    c.tcpconn_id = mi.tcpconn_id;
    c.last_modified = t;
}

/// Applies the REGISTER's contacts to the record; returns Kamailio's add_contacts code
/// (1 inserted, 2 updated, 3 deleted, 0 nothing changed).
fn apply(
    rec: &mut Record,
    ncs: &[NewContact],
    mi: &MsgInfo,
    ul: &UsrlocState,
    rs: &RegistrarState,
    replace: bool,
    t: i64,
) -> Result<i32, RegError> {
    let desc = ul.desc_time_order;
    if rec.contacts.is_empty() {
        // A new record: every contact with expires > 0, at most max_contacts.
        let mut num = 0;
        for nc in ncs {
            if nc.expires == 0 {
                continue;
            }
            if rs.max_contacts > 0 && num >= rs.max_contacts {
                return Err(RegError::TooMany);
            }
            num += 1;
            // The same address twice in one REGISTER: the first one stays (as in Kamailio).
            if rec.contacts.iter().any(|c| {
                if nc.instance.is_empty() {
                    c.c == nc.uri
                } else {
                    c.instance == nc.instance && c.reg_id == nc.reg_id
                }
            }) {
                continue;
            } else {
                let mut c = Contact {
                    ruid: ul.new_ruid(),
                    ..Contact::default()
                };
                fill(&mut c, nc, mi, t);
                rec.insert(c, desc);
            }
        }
        return Ok(1);
    }
    if !replace && rs.max_contacts > 0 {
        let mut num = rec.contacts.iter().filter(|c| c.valid(t)).count() as i64;
        for nc in ncs {
            match find_contact(rec, nc, mi, ul, t, mi.cseq) {
                Match::BadCseq => return Err(RegError::InvCseq),
                Match::Retrans => {}
                Match::NotFound => {
                    if nc.expires != 0 {
                        num += 1;
                    }
                }
                Match::Found(_) => {
                    if nc.expires == 0 {
                        num -= 1;
                    }
                }
            }
        }
        if num > rs.max_contacts {
            crate::klog!(
                L_INFO,
                "registrar",
                "too many contacts for AOR <{}> (n:{num} max:{})",
                rec.aor,
                rs.max_contacts
            );
            return Err(RegError::TooMany);
        }
    }
    let mut rc = 0;
    for nc in ncs {
        let mut updated = false;
        match find_contact(rec, nc, mi, ul, t, mi.cseq) {
            Match::BadCseq => return Err(RegError::InvCseq),
            Match::Retrans => {
                if nc.expires != 0 && replace {
                    break;
                }
                continue;
            }
            Match::NotFound => {
                if nc.expires == 0 {
                    continue;
                }
                let mut c = Contact {
                    ruid: ul.new_ruid(),
                    ..Contact::default()
                };
                fill(&mut c, nc, mi, t);
                if replace {
                    rec.contacts.clear();
                    updated = true;
                }
                rec.insert(c, desc);
                rc = 1;
            }
            Match::Found(i) => {
                if nc.expires == 0 {
                    rec.contacts.remove(i);
                    rc = 3;
                } else {
                    let ruid = rec.contacts[i].ruid.clone();
                    if replace {
                        rec.contacts.retain(|c| c.ruid == ruid);
                        updated = true;
                    }
                    let Some(i) = rec.contacts.iter().position(|c| c.ruid == ruid) else {
                        return Err(RegError::UlUpdC);
                    };
                    // A new Call-ID for a known instance replaces its other bindings.
                    if !nc.instance.is_empty() && rec.contacts[i].callid != mi.callid {
                        let inst = rec.contacts[i].instance.clone();
                        rec.contacts
                            .retain(|c| c.ruid == ruid || c.instance != inst);
                        updated = true;
                    }
                    let Some(i) = rec.contacts.iter().position(|c| c.ruid == ruid) else {
                        return Err(RegError::UlUpdC);
                    };
                    let old_q = rec.contacts[i].q;
                    fill(&mut rec.contacts[i], nc, mi, t);
                    if old_q != nc.q || ul.desc_time_order {
                        rec.reposition(i, desc);
                    }
                    rc = 2;
                }
            }
        }
        if updated {
            break;
        }
    }
    Ok(rc)
}

/// The Contact header of a 200 OK: every valid contact with its remaining expires.
fn contact_header(rec: Option<&Record>, rs: &RegistrarState, t: i64) -> Option<Bytes> {
    let rec = rec?;
    let mut out = String::new();
    for c in rec.contacts.iter().filter(|c| c.valid(t)) {
        out.push_str(if out.is_empty() { "Contact: " } else { ", " });
        out.push('<');
        out.push_str(&c.c);
        out.push('>');
        let q = q_text(c.q);
        if !q.is_empty() {
            out.push_str(";q=");
            out.push_str(&q);
        }
        out.push_str(";expires=");
        let left = if c.expires == 0 { 0 } else { c.expires - t };
        out.push_str(&(left as i32).to_string());
        if !rs.received_param.is_empty() && !c.received.is_empty() {
            out.push_str(&format!(";{}=\"{}\"", rs.received_param, c.received));
        }
        if !c.instance.is_empty() {
            out.push_str(&format!(";+sip.instance=\"{}\"", c.instance));
        }
        if c.reg_id > 0 {
            out.push_str(&format!(";reg-id={}", c.reg_id));
        }
    }
    if out.is_empty() {
        return None;
    }
    out.push_str("\r\n");
    Some(Bytes::from(out))
}

/// What `save()` with flag 0x02 would have answered, for `reg_send_reply()` (per worker,
/// cleared for every new request).
type PendingReply = (Option<RegError>, Option<Bytes>, String);

thread_local! {
    static PENDING: std::cell::RefCell<Option<PendingReply>> = const { std::cell::RefCell::new(None) };
}

fn keep_reply(err: Option<RegError>, contacts: Option<Bytes>, path: String) {
    PENDING.with(|p| *p.borrow_mut() = Some((err, contacts, path)));
}

/// `reg_send_reply()`: sends the reply a `save(..., 0x02)` of this request prepared; 1 sent,
/// -1 when there is none or sending failed.
pub fn reg_send_reply(c: &mut Ctx) -> i32 {
    let Some((err, contacts, path)) = PENDING.with(|p| p.borrow_mut().take()) else {
        crate::klog!(
            L_ERR,
            "registrar",
            "reg_send_reply: no save() result to answer with"
        );
        return -1;
    };
    if send_reply(c, err, contacts, &path, true) < 0 {
        -1
    } else {
        1
    }
}

/// Sends the registrar's reply: 200 with the contacts, or the error's code with
/// P-Registrar-Error (and Min-Expires / Unsupported / Retry-After as the error asks).
fn send_reply(
    c: &mut Ctx,
    err: Option<RegError>,
    contacts: Option<Bytes>,
    path: &str,
    send: bool,
) -> i32 {
    let rs = &c.core.m.registrar;
    if let Some(h) = contacts {
        c.reply_hdrs.push(h);
    }
    let mut err = err;
    // Path is echoed when the UA supports it; path_mode 2 refuses a REGISTER whose UA does
    // not (its contacts are saved all the same, as in Kamailio).
    if err.is_none() && rs.use_path && !path.is_empty() && rs.path_mode != 0 {
        if has_option_tag(c, HdrKind::Supported, b"path") {
            c.reply_hdrs.push(Bytes::from(format!("Path: {path}\r\n")));
        } else if rs.path_mode == 2 {
            err = Some(RegError::PathUnsup);
            c.reply_hdrs
                .push(Bytes::from_static(b"Unsupported: path\r\n"));
            c.reply_hdrs.push(Bytes::from(format!("Path: {path}\r\n")));
        }
    }
    let (code, reason) = match err {
        None => (200, "OK"),
        Some(e) => {
            match e {
                RegError::ObReqd => c
                    .reply_hdrs
                    .push(Bytes::from_static(b"Unsupported: outbound\r\n")),
                RegError::LowExp => c
                    .reply_hdrs
                    .push(Bytes::from(format!("Min-Expires: {}\r\n", rs.min_expires))),
                _ => {}
            }
            c.reply_hdrs
                .push(Bytes::from(format!("P-Registrar-Error: {}\r\n", e.info())));
            if e.code() >= 500 && rs.retry_after > 0 {
                c.reply_hdrs
                    .push(Bytes::from(format!("Retry-After: {}\r\n", rs.retry_after)));
            }
            (e.code(), e.reason())
        }
    };
    if !send {
        return 1;
    }
    crate::modules::sl::freply(c, code, reason.as_bytes())
}

/// `save(table, flags, uri)`: 1 inserted, 2 updated, 3 deleted/star, 4 no contacts (just the
/// bindings listed); -1 error (reply sent), -2 too many contacts.
pub fn save(c: &mut Ctx, table: &[u8], flags: i64, uri: Option<&Bytes>) -> i32 {
    let ul = &c.core.m.usrloc;
    let rs = &c.core.m.registrar;
    if flags & !0x1f != 0 {
        crate::klog!(L_ERR, "registrar", "bad save flags {flags}");
        return -1;
    }
    let send = flags & SAVE_NORPL == 0 && c.msg.is_request();
    // Flag 0x10 with 0x02: the reply headers are prepared for the script's own reply.
    let prepare = !send && flags & SAVE_PREPRPL != 0;
    let t = now();
    let fail = |c: &mut Ctx, e: RegError, contacts: Option<Bytes>| -> i32 {
        crate::klog!(L_INFO, "registrar", "REGISTER refused: {}", e.info());
        if send {
            send_reply(c, Some(e), contacts, "", true);
        } else {
            keep_reply(Some(e), contacts, String::new());
        }
        if e == RegError::TooMany { -2 } else { -1 }
    };
    let aor_src = match uri.filter(|u| !u.is_empty()) {
        Some(u) => u.clone(),
        None => match c.msg.to() {
            Ok(to) => to.uri_raw.clone(),
            Err(_) => {
                crate::klog!(L_ERR, "registrar", "failed to extract Address Of Record");
                return -1;
            }
        },
    };
    let aor = match extract_aor(&aor_src, ul.use_domain, rs) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return fail(c, RegError::ToUser, None),
        Err(_) => {
            crate::klog!(L_ERR, "registrar", "failed to extract Address Of Record");
            return -1;
        }
    };
    // Contacts: a star, a list, or none.
    let contacts = match c.msg.contacts() {
        Ok(x) => x.cloned(),
        Err(crate::sip::msg::HdrError::Bad(_, "'*' with other contacts")) => {
            return fail(c, RegError::StarCont, None);
        }
        Err(_) => return fail(c, RegError::ParseCont, None),
    };
    if has_option_tag(c, HdrKind::Require, b"outbound") {
        return fail(c, RegError::ObReqd, None);
    }
    let mi = match msg_info(c, rs, ul, flags & SAVE_MEM != 0) {
        Ok(m) => m,
        Err(e) => return fail(c, e, None),
    };
    let d = ul.domain(&String::from_utf8_lossy(table));
    let result: Result<(i32, Option<Record>), (RegError, Option<Record>)> = match contacts {
        Some(crate::sip::msg::Contacts::Star) => {
            if mi.expires_hdr != Some(0) {
                return fail(c, RegError::StarExp, None);
            }
            match ul.update(&d, &aor, |r| r.contacts.clear()) {
                Ok(()) => Ok((3, None)),
                Err(_) => Err((RegError::UlDelR, ul.get(&d, &aor).ok().flatten())),
            }
        }
        None => match ul.get(&d, &aor) {
            Ok(r) => Ok((4, r)),
            Err(_) => Err((RegError::UlGetR, None)),
        },
        Some(crate::sip::msg::Contacts::List(list)) => {
            if list.iter().any(|na| na.uri_raw.len() > rs.contact_max_size)
                || mi.received.len() > 255
            {
                return fail(c, RegError::ContactLen, None);
            }
            let ncs = match new_contacts(&list, &mi, rs, flags & SAVE_NOVARIATION != 0, t) {
                Ok(n) => n,
                Err(e) => {
                    // Kamailio finds a bad contact while updating an existing record and
                    // then answers with the record's contacts.
                    let rec = ul.get(&d, &aor).ok().flatten();
                    let hdr = contact_header(rec.as_ref(), rs, t);
                    return fail(c, e, hdr);
                }
            };
            let replace = flags & SAVE_REPL != 0;
            let r = ul.update(&d, &aor, |rec| {
                let fresh = rec.contacts.is_empty();
                let before = rec.contacts.clone();
                let res = apply(rec, &ncs, &mi, ul, rs, replace, t);
                if res.is_err() && fresh {
                    // A new record is not kept half-made.
                    rec.contacts = before;
                }
                (res, rec.clone(), fresh)
            });
            match r {
                Ok((Ok(rc), rec, _)) => Ok((if rc == 0 { 1 } else { rc }, Some(rec))),
                Ok((Err(e), rec, fresh)) => Err((e, (!fresh).then_some(rec))),
                Err(_) => Err((RegError::UlInsC, None)),
            }
        }
    };
    match result {
        Ok((rc, rec)) => {
            let hdr = contact_header(rec.as_ref(), rs, t);
            let path = mi.path.clone();
            if send || prepare {
                if send_reply(c, None, hdr, &path, send) < 0 {
                    return -1;
                }
            } else {
                keep_reply(None, hdr, path);
            }
            rc
        }
        Err((e, rec)) => {
            let hdr = contact_header(rec.as_ref(), rs, t);
            fail(c, e, hdr)
        }
    }
}

fn listener_of(c: &Ctx, sock: &str) -> Option<usize> {
    if sock.is_empty() {
        return None;
    }
    c.core
        .listeners
        .iter()
        .position(|l| l.sock_str().eq_ignore_ascii_case(sock))
}

/// First URI of a Path vector, and the vector from the hop it names (after skipping a
/// first hop that is this proxy when `path_check_local`).
fn path_dst(c: &Ctx, path: &str, check_local: bool) -> Option<(Bytes, String)> {
    let b = Bytes::from(path.to_string());
    let list = crate::sip::nameaddr::parse_list(&b, &b).ok()?;
    let first = list.first()?;
    if check_local
        && c.core
            .is_myself(first.uri.host_unbracketed(), first.uri.port, None)
    {
        let rest = list.get(1)?;
        let vec = list[1..]
            .iter()
            .map(|n| lossy(&n.raw))
            .collect::<Vec<_>>()
            .join(",");
        return Some((rest.uri_raw.clone(), vec));
    }
    Some((first.uri_raw.clone(), path.to_string()))
}

fn allowed(c: &Ctx, rs: &RegistrarState, ct: &Contact) -> bool {
    !rs.method_filtering || c.msg.method().bit() & ct.methods != 0
}

/// `lookup(table[, uri])`: 1 found (R-URI, `$du`, branches set), -1 not found, -2 found but
/// no contact allows the method, -3 error.
pub fn lookup(c: &mut Ctx, table: &[u8], uri: Option<&Bytes>, to_dset: bool) -> i32 {
    let ul = &c.core.m.usrloc;
    let rs = &c.core.m.registrar;
    let src = match uri {
        Some(u) => u.clone(),
        None => match c.msg.ruri() {
            Some(u) => u.clone(),
            None => return -3,
        },
    };
    let aor = match extract_aor(&src, ul.use_domain, rs) {
        Ok(a) => a,
        Err(_) => {
            crate::klog!(L_ERR, "registrar", "failed to extract address of record");
            return -3;
        }
    };
    let d = ul.domain(&String::from_utf8_lossy(table));
    let rec = match ul.get(&d, &aor) {
        Ok(Some(r)) => r,
        Ok(None) => return -1,
        Err(e) => {
            crate::klog!(L_ERR, "registrar", "usrloc lookup failed: {e}");
            return -1;
        }
    };
    let t = now();
    let usable = |ct: &Contact| ct.valid(t) || rs.use_expired_contacts;
    let mut ret = -1;
    let mut first = None;
    for (i, ct) in rec.contacts.iter().enumerate() {
        if !usable(ct) {
            continue;
        }
        if allowed(c, rs, ct) {
            first = Some(i);
            break;
        }
        ret = -2;
    }
    let Some(first) = first else {
        return ret;
    };
    let mut next = first;
    if !to_dset {
        let ct = &rec.contacts[first];
        c.msg.set_ruri(Bytes::from(ct.c.clone()));
        c.dst_uri = None;
        c.path_vec = None;
        if !ct.path.is_empty() {
            match path_dst(c, &ct.path, rs.path_check_local) {
                Some((dst, vec)) => {
                    c.path_vec = Some(Bytes::from(vec));
                    c.dst_uri = Some(dst);
                }
                None => {
                    crate::klog!(L_ERR, "registrar", "failed to get dst_uri for Path");
                    return -3;
                }
            }
        } else if !ct.received.is_empty() {
            c.dst_uri = Some(Bytes::from(ct.received.clone()));
        }
        c.ruri_q = ct.q;
        c.bflags |= ct.cflags as u64;
        if let Some(l) = listener_of(c, &ct.sock) {
            c.force_socket = Some(l);
        }
        next = first + 1;
    }
    if to_dset || rs.append_branches {
        for ct in rec.contacts.iter().skip(next) {
            if !usable(ct) || !allowed(c, rs, ct) {
                continue;
            }
            let (dst, path) = if ct.path.is_empty() {
                (
                    (!ct.received.is_empty()).then(|| Bytes::from(ct.received.clone())),
                    None,
                )
            } else {
                match path_dst(c, &ct.path, rs.path_check_local) {
                    Some((d, v)) => (Some(d), Some(Bytes::from(v))),
                    None => continue,
                }
            };
            let force_socket = listener_of(c, &ct.sock);
            c.branches.push(Branch {
                uri: Bytes::from(ct.c.clone()),
                dst_uri: dst,
                path,
                q: ct.q,
                flags: ct.cflags as u64,
                force_socket,
                instance: (!ct.instance.is_empty()).then(|| Bytes::from(ct.instance.clone())),
                ruid: Some(Bytes::from(ct.ruid.clone())),
                location_ua: Some(Bytes::from(ct.user_agent.clone())),
            });
        }
    }
    1
}

/// `lookup_branches(table)`: lookup for the R-URI and for every clean branch (no `$du`,
/// path, socket or flags), each found branch taking its first contact's attributes.
/// 1 when any was found, else the last lookup's code.
pub fn lookup_branches(c: &mut Ctx, table: &[u8]) -> i32 {
    let n = c.branches.len();
    let mut ret = lookup(c, table, None, false);
    if n == 0 {
        return ret;
    }
    let mut found = ret > 0;
    let saved_uri = c
        .msg
        .ruri_rewritten()
        .then(|| c.msg.ruri().cloned())
        .flatten();
    let saved = (
        c.dst_uri.take(),
        c.path_vec.take(),
        c.ruri_q,
        c.force_socket.take(),
        c.bflags,
    );
    for i in 0..n {
        let Some(b) = c.branches.get(i) else { break };
        if b.uri.is_empty()
            || b.dst_uri.is_some()
            || b.path.is_some()
            || b.force_socket.is_some()
            || b.flags != 0
        {
            continue;
        }
        c.msg.set_ruri(b.uri.clone());
        c.dst_uri = None;
        c.path_vec = None;
        c.ruri_q = Q_UNSPECIFIED;
        c.force_socket = None;
        c.bflags = 0;
        ret = lookup(c, table, None, false);
        if ret > 0 {
            found = true;
            let uri = c.msg.ruri().cloned().unwrap_or_default();
            let (dst, path, q, sock, flags) = (
                c.dst_uri.clone(),
                c.path_vec.clone(),
                c.ruri_q,
                c.force_socket,
                c.bflags,
            );
            if let Some(b) = c.branches.get_mut(i) {
                b.uri = uri;
                b.dst_uri = dst;
                b.path = path;
                b.q = q;
                b.force_socket = sock;
                b.flags = flags;
            }
        }
    }
    match saved_uri {
        Some(u) => c.msg.set_ruri(u),
        None => c.msg.reset_ruri(),
    }
    c.dst_uri = saved.0;
    c.path_vec = saved.1;
    c.ruri_q = saved.2;
    c.force_socket = saved.3;
    c.bflags = saved.4;
    if found { 1 } else { ret }
}

/// `registered(table[, uri])`: 1 when the AoR has a valid contact, -1 otherwise.
pub fn registered(c: &mut Ctx, table: &[u8], uri: Option<&Bytes>) -> i32 {
    let ul = &c.core.m.usrloc;
    let rs = &c.core.m.registrar;
    let src = match uri.filter(|u| !u.is_empty()) {
        Some(u) => u.clone(),
        None if c.msg.is_reply() => match c.msg.to() {
            Ok(to) => to.uri_raw.clone(),
            Err(_) => return -1,
        },
        None => match c.msg.ruri() {
            Some(u) => u.clone(),
            None => return -1,
        },
    };
    let Ok(aor) = extract_aor(&src, ul.use_domain, rs) else {
        crate::klog!(L_ERR, "registrar", "failed to extract address of record");
        return -1;
    };
    let d = ul.domain(&String::from_utf8_lossy(table));
    let t = now();
    match ul.get(&d, &aor) {
        Ok(Some(r))
            if r.contacts
                .iter()
                .any(|ct| ct.valid(t) || rs.use_expired_contacts) =>
        {
            1
        }
        Ok(_) => -1,
        Err(e) => {
            crate::klog!(L_ERR, "registrar", "failed to query usrloc: {e}");
            -1
        }
    }
}

/// `unregister(table, uri[, ruid])`: 1 removed, -1 bad AoR, -2 removal failed, -3 not found
/// (with a ruid).
pub fn unregister(c: &mut Ctx, table: &[u8], uri: &[u8], ruid: &[u8]) -> i32 {
    let ul = &c.core.m.usrloc;
    let rs = &c.core.m.registrar;
    let d = ul.domain(&String::from_utf8_lossy(table));
    let ruid = String::from_utf8_lossy(ruid).into_owned();
    if !ruid.is_empty() && uri.is_empty() {
        return match ul.delete_by_ruid(&d, &ruid) {
            Ok(true) => 1,
            Ok(false) => -3,
            Err(_) => -2,
        };
    }
    let src = if uri.is_empty() {
        match c.msg.to() {
            Ok(to) => to.uri_raw.clone(),
            Err(_) => return -1,
        }
    } else {
        Bytes::copy_from_slice(uri)
    };
    let Ok(aor) = extract_aor(&src, ul.use_domain, rs) else {
        crate::klog!(L_ERR, "registrar", "failed to extract Address Of Record");
        return -1;
    };
    if ruid.is_empty() {
        return match ul.update(&d, &aor, |r| r.contacts.clear()) {
            Ok(()) => 1,
            Err(_) => -2,
        };
    }
    let found = ul.update(&d, &aor, |r| {
        let n = r.contacts.len();
        r.contacts.retain(|ct| ct.ruid != ruid);
        n != r.contacts.len()
    });
    match found {
        Ok(true) => 1,
        Ok(false) => -3,
        Err(_) => -2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_parse_and_print_like_kamailio() {
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"1"), Some(1000));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        assert_eq!(parse_q(b"0.025"), Some(25));
        assert_eq!(parse_q(b".7"), Some(700));
        assert_eq!(parse_q(b"1.5"), None);
        assert_eq!(parse_q(b"0.1234"), None);
        assert_eq!(parse_q(b"x"), None);
        assert_eq!(parse_q(b""), None);
        assert_eq!(q_text(500), "0.5");
        assert_eq!(q_text(1000), "1");
        assert_eq!(q_text(0), "0");
        assert_eq!(q_text(25), "0.025");
        assert_eq!(q_text(120), "0.12");
        assert_eq!(q_text(Q_UNSPECIFIED), "");
    }

    #[test]
    fn expires_come_from_param_header_or_default_within_bounds() {
        let rs = RegistrarState {
            max_expires: 3600,
            ..RegistrarState::default()
        };
        assert_eq!(contact_expires(&rs, Some(b"120"), Some(600), true), Ok(120));
        assert_eq!(contact_expires(&rs, None, Some(600), true), Ok(600));
        assert_eq!(contact_expires(&rs, None, None, true), Ok(3600));
        assert_eq!(contact_expires(&rs, Some(b"0"), Some(600), true), Ok(0));
        assert_eq!(contact_expires(&rs, None, Some(0), true), Ok(0));
        // bad parameter: the default
        assert_eq!(
            contact_expires(&rs, Some(b"abc"), Some(600), true),
            Ok(3600)
        );
        // bounded
        assert_eq!(contact_expires(&rs, Some(b"10"), None, true), Ok(60));
        assert_eq!(contact_expires(&rs, Some(b"7200"), None, true), Ok(3600));
        let strict = RegistrarState {
            min_expires_mode: true,
            ..RegistrarState::default()
        };
        assert_eq!(
            contact_expires(&strict, Some(b"10"), None, true),
            Err(RegError::LowExp)
        );
        let ranged = RegistrarState {
            expires_range: 30,
            min_expires: 0,
            ..RegistrarState::default()
        };
        for _ in 0..20 {
            let e = contact_expires(&ranged, Some(b"1000"), None, false).unwrap();
            assert!((700..=1000).contains(&e), "{e}");
        }
    }

    #[test]
    fn aor_extraction() {
        let rs = RegistrarState::default();
        assert_eq!(
            extract_aor(b"sip:Alice@Example.COM;transport=udp", true, &rs).unwrap(),
            "alice@example.com"
        );
        assert_eq!(
            extract_aor(b"sip:Alice@Example.COM", false, &rs).unwrap(),
            "alice"
        );
        assert_eq!(extract_aor(b"sip:a%40b@h", true, &rs).unwrap(), "a@b@h");
        let cs = RegistrarState {
            case_sensitive: true,
            realm_prefix: "sip.".into(),
            ..RegistrarState::default()
        };
        assert_eq!(
            extract_aor(b"sip:Alice@SIP.example.com", true, &cs).unwrap(),
            "Alice@example.com"
        );
        assert!(extract_aor(b"garbage", true, &rs).is_err());
        assert_eq!(
            avp_name("$avp(RECEIVED)").as_deref(),
            Some(&b"RECEIVED"[..])
        );
        assert_eq!(avp_name("$avp(s:rcv)").as_deref(), Some(&b"rcv"[..]));
        assert_eq!(avp_name("$avp(i:42)").as_deref(), Some(&b"#42"[..]));
    }

    #[test]
    fn error_codes_and_infos_match_kamailio() {
        assert_eq!(RegError::TooMany.code(), 503);
        assert_eq!(RegError::LowExp.code(), 423);
        assert_eq!(RegError::LowExp.reason(), "Interval Too Brief");
        assert_eq!(RegError::InvCseq.code(), 400);
        assert_eq!(RegError::UlInsC.code(), 500);
        assert_eq!(RegError::PathUnsup.code(), 420);
        assert_eq!(
            RegError::StarExp.info(),
            "* used in contact and expires is not zero"
        );
    }
}
