//! Kamailio's `auth` module: digest authentication (RFC 2617 / RFC 7616) without a
//! credentials store of its own: challenges (`www_challenge`, `proxy_challenge`,
//! `auth_challenge`), nonces protected by a secret with an expiry, response checking for
//! MD5/SHA-256 (and their -sess forms), `consume_credentials`, `has_credentials` and the
//! `pv_*` functions that take the password from a variable. `auth_db` builds on it.

pub mod digest;

use super::core::actions::{arg_bytes, arg_int};
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::log::{L_DBG, L_ERR};
use crate::sip::{Credentials, HdrKind, Method};
use bytes::Bytes;
use digest::Alg;
use std::cell::Cell;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "auth",
    params: &[
        ParamDef::str("secret"),
        ParamDef::int("nonce_expire"),
        ParamDef::int("nonce_auth_max_drift"),
        ParamDef::int("auth_checks_register"),
        ParamDef::int("auth_checks_no_dlg"),
        ParamDef::int("auth_checks_in_dlg"),
        ParamDef::str("qop"),
        ParamDef::str("realm_prefix"),
        ParamDef::int("use_domain"),
        ParamDef::str("algorithm"),
        ParamDef::int("force_stateless_reply"),
        ParamDef::str("challenge_avp"),
        ParamDef::int("nonce_count"),
        ParamDef::int("one_time_nonce"),
        ParamDef::int("nid_pool_no"),
        ParamDef::int("nc_array_size"),
        ParamDef::int("nc_array_order"),
        ParamDef::int("otn_in_flight_no"),
        ParamDef::int("otn_in_flight_order"),
        ParamDef::any("add_authinfo_hdr"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// Results of the authentication functions (auth_db's `auth_cfg_result_t`).
pub const AUTH_OK: i32 = 1;
pub const AUTH_ERROR: i32 = -1;
pub const AUTH_INVALID_PASSWORD: i32 = -2;
pub const AUTH_USER_UNKNOWN: i32 = -3;
pub const AUTH_NONCE_STALE: i32 = -4;
pub const AUTH_NO_CREDENTIALS: i32 = -5;
pub const AUTH_NONCE_REUSED: i32 = -6;
pub const AUTH_USER_MISMATCH: i32 = -8;

pub struct AuthState {
    secret1: Vec<u8>,
    secret2: Vec<u8>,
    pub nonce_expire: i64,
    pub max_drift: i64,
    pub checks_register: u32,
    pub checks_no_dlg: u32,
    pub checks_in_dlg: u32,
    pub realm_prefix: String,
    pub use_domain: bool,
    /// `algorithm` parameter: put in challenges (empty: none, MD5 assumed).
    pub algorithm: String,
    pub challenge_avp: Bytes,
    /// nonce_count / one_time_nonce state (None when both are off).
    pub replay: Option<Replay>,
    pub add_authinfo_hdr: bool,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            secret1: random_secret(),
            secret2: random_secret(),
            nonce_expire: 300,
            max_drift: 3,
            checks_register: 0,
            checks_no_dlg: 0,
            checks_in_dlg: 0,
            realm_prefix: String::new(),
            use_domain: false,
            algorithm: String::new(),
            challenge_avp: Bytes::from_static(b"digest_challenge"),
            replay: None,
            add_authinfo_hdr: false,
        }
    }
}

/// 16 random bytes as hex (from the OS; falls back to time and address entropy).
pub fn random_secret() -> Vec<u8> {
    let mut buf = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf.copy_from_slice(&t.to_le_bytes());
        let a = &buf as *const _ as usize;
        buf[0] ^= a as u8;
    }
    digest::hex(&buf).into_bytes()
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.auth;
    st.nonce_expire = p.int("nonce_expire", 300).max(1);
    st.max_drift = p.int("nonce_auth_max_drift", 3).max(0);
    st.checks_register = p.int("auth_checks_register", 0) as u32;
    st.checks_no_dlg = p.int("auth_checks_no_dlg", 0) as u32;
    st.checks_in_dlg = p.int("auth_checks_in_dlg", 0) as u32;
    st.realm_prefix = p.str_or("realm_prefix", "");
    st.use_domain = p.int("use_domain", 0) != 0;
    let alg = p.str_or("algorithm", "");
    if !alg.is_empty() && Alg::parse(alg.as_bytes()).is_none() {
        return Err(format!("unsupported algorithm '{alg}' (MD5 or SHA-256)"));
    }
    st.algorithm = alg;
    match p.str_or("qop", "auth").as_str() {
        "" | "auth" | "auth-int" => {}
        q => return Err(format!("unsupported qop '{q}'")),
    }
    if let Some(a) = p.str("challenge_avp") {
        let inner = a
            .trim()
            .strip_prefix("$avp(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(a.trim());
        st.challenge_avp = Bytes::from(inner.strip_prefix("s:").unwrap_or(inner).to_string());
    }
    st.add_authinfo_hdr = match p.get("add_authinfo_hdr") {
        Some(Value::Int(i)) => *i != 0,
        Some(Value::Str(v)) => matches!(
            String::from_utf8_lossy(v)
                .trim()
                .to_ascii_lowercase()
                .as_str(),
            "1" | "yes" | "true" | "on"
        ),
        _ => false,
    };
    let nc = p.int("nonce_count", 0) != 0;
    let otn = p.int("one_time_nonce", 0) != 0;
    if nc || otn {
        // Sizes are powers of two (rounded down), given directly or as the power.
        let order = |size: &str, ord: &str| -> u32 {
            match p.get(size) {
                Some(_) => (p.int(size, 1 << 20).clamp(1, 1 << 26) as u64).ilog2(),
                None => p.int(ord, 20).clamp(0, 26) as u32,
            }
        };
        st.replay = Some(Replay::new(
            order("nc_array_size", "nc_array_order"),
            order("otn_in_flight_no", "otn_in_flight_order").max(5),
            nc,
            otn,
        ));
    }
    if let Some(s) = p.str("secret").filter(|s| !s.is_empty()) {
        // With extra checks the two halves protect the two parts of the nonce.
        let b = s.into_bytes();
        if st.checks_register | st.checks_no_dlg | st.checks_in_dlg != 0 && b.len() >= 2 {
            let (a, c) = b.split_at(b.len() / 2);
            st.secret1 = a.to_vec();
            st.secret2 = c.to_vec();
        } else {
            st.secret1 = b.clone();
            st.secret2 = b;
        }
    }
    Ok(())
}

thread_local! {
    /// `auth_algorithm()`: this worker's algorithm for challenges from now on (Kamailio sets
    /// it for its process the same way).
    static ALGORITHM: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// The credentials header the last successful check used, tied to the message buffer
    /// it belongs to (so a stale mark never leaks into the next message).
    static AUTHORIZED: Cell<(usize, usize)> = const { Cell::new((0, usize::MAX)) };
}

fn msg_key(c: &Ctx) -> usize {
    c.msg.buf().as_ptr() as usize
}

fn mark_authorized(c: &Ctx, idx: usize) {
    AUTHORIZED.with(|a| a.set((msg_key(c), idx)));
}

fn authorized_header(c: &Ctx) -> Option<usize> {
    let (k, i) = AUTHORIZED.with(|a| a.get());
    (k == msg_key(c) && i != usize::MAX).then_some(i)
}

fn now() -> i64 {
    crate::modules::usrloc::now()
}

/// The realm without `realm_prefix`.
pub fn strip_realm<'a>(st: &AuthState, realm: &'a [u8]) -> &'a [u8] {
    crate::sip::scan::strip_prefix_icase(realm, st.realm_prefix.as_bytes())
}

/// The integrity checks (auth_checks_*) that apply to this request.
fn checks_for(c: &Ctx, st: &AuthState) -> u32 {
    if c.msg.method() == Method::Register {
        st.checks_register
    } else if c.msg.to().ok().and_then(|t| t.tag()).is_some() {
        st.checks_in_dlg
    } else {
        st.checks_no_dlg
    }
}

/// What the extra nonce checks hash: R-URI, Call-ID, From tag, source IP as selected.
fn extra_material(c: &Ctx, checks: u32) -> Vec<u8> {
    let mut m = Vec::new();
    if checks & 1 != 0 {
        m.extend_from_slice(c.msg.ruri_orig().map(|b| &b[..]).unwrap_or(b""));
    }
    m.push(0);
    if checks & 2 != 0 {
        m.extend_from_slice(c.msg.callid().map(|b| &b[..]).unwrap_or(b""));
    }
    m.push(0);
    if checks & 4 != 0
        && let Ok(f) = c.msg.from()
        && let Some(t) = f.tag()
    {
        m.extend_from_slice(t);
    }
    m.push(0);
    if checks & 8 != 0 {
        m.extend_from_slice(c.rcv.src.ip().to_string().as_bytes());
    }
    m
}

/// A new nonce: creation and expiry times (hex), with nonce_count/one_time_nonce a nonce
/// id, then an MD5 over them with the secret; with extra checks, a second MD5 over the
/// selected message parts with the second secret.
pub fn new_nonce(c: &Ctx) -> String {
    let st = &c.core.m.auth;
    let t = now() as u32;
    let exp = t.wrapping_add(st.nonce_expire as u32);
    let mut head = format!("{t:08x}{exp:08x}");
    if let Some(nid) = st.replay.as_ref().map(|r| r.new_id()) {
        head.push_str(&format!("{nid:08x}"));
    }
    let mut s = head.clone();
    s.push_str(&digest::md5_hex(&[&st.secret1, head.as_bytes()]));
    let checks = checks_for(c, st);
    if checks != 0 {
        s.push_str(&digest::md5_hex(&[
            &st.secret2,
            head.as_bytes(),
            &extra_material(c, checks),
        ]));
    }
    s
}

/// Nonce check result.
#[derive(Debug, PartialEq, Eq)]
pub enum NonceCheck {
    Ok,
    /// Not made by this server (or damaged).
    Invalid,
    /// Expired, from the future beyond the drift, made for another message, or its replay
    /// state was overwritten.
    Stale,
    /// nonce_count / one_time_nonce: used before.
    Reused,
}

/// Replay protection state shared by the workers: the last nc seen per nonce id
/// (nonce_count) and a used bit per nonce id (one_time_nonce), in rings of 2^k entries.
pub struct Replay {
    next: std::sync::atomic::AtomicU32,
    nc: Option<Vec<std::sync::atomic::AtomicU8>>,
    otn: Option<Vec<std::sync::atomic::AtomicU32>>,
}

impl Replay {
    fn new(nc_order: u32, otn_order: u32, nc: bool, otn: bool) -> Replay {
        use std::sync::atomic::{AtomicU8, AtomicU32};
        Replay {
            next: AtomicU32::new(1),
            nc: nc.then(|| (0..1usize << nc_order).map(|_| AtomicU8::new(0)).collect()),
            otn: otn.then(|| {
                (0..(1usize << otn_order).div_ceil(32))
                    .map(|_| AtomicU32::new(0))
                    .collect()
            }),
        }
    }

    /// A fresh nonce id, its slots reset.
    fn new_id(&self) -> u32 {
        use std::sync::atomic::Ordering::Relaxed;
        let id = self.next.fetch_add(1, Relaxed);
        if let Some(nc) = &self.nc {
            nc[id as usize & (nc.len() - 1)].store(0, Relaxed);
        }
        if let Some(otn) = &self.otn {
            let bits = otn.len() * 32;
            let i = id as usize & (bits - 1);
            otn[i / 32].fetch_and(!(1 << (i % 32)), Relaxed);
        }
        id
    }

    /// Still tracked: fewer than `size` ids were handed out after it.
    fn tracked(&self, id: u32, size: usize) -> bool {
        let next = self.next.load(std::sync::atomic::Ordering::Relaxed);
        (next.wrapping_sub(id) as usize) <= size && next != id
    }

    /// nonce_count: `nc` must be above the last one seen for this id (1..=255); a replayed
    /// nc makes the nonce stale (the UA recomputes with a fresh one), as in Kamailio.
    fn check_nc(&self, id: u32, nc: u32) -> Option<NonceCheck> {
        use std::sync::atomic::Ordering::Relaxed;
        let arr = self.nc.as_ref()?;
        if !self.tracked(id, arr.len()) || nc > 255 {
            return Some(NonceCheck::Stale);
        }
        let slot = &arr[id as usize & (arr.len() - 1)];
        let mut cur = slot.load(Relaxed);
        loop {
            if nc as u8 <= cur {
                return Some(NonceCheck::Stale);
            }
            match slot.compare_exchange(cur, nc as u8, Relaxed, Relaxed) {
                Ok(_) => return Some(NonceCheck::Ok),
                Err(v) => cur = v,
            }
        }
    }

    /// one_time_nonce: the id may be used once.
    fn check_otn(&self, id: u32) -> Option<NonceCheck> {
        use std::sync::atomic::Ordering::Relaxed;
        let arr = self.otn.as_ref()?;
        let bits = arr.len() * 32;
        if !self.tracked(id, bits) {
            return Some(NonceCheck::Stale);
        }
        let i = id as usize & (bits - 1);
        let old = arr[i / 32].fetch_or(1 << (i % 32), Relaxed);
        Some(if old & (1 << (i % 32)) != 0 {
            NonceCheck::Reused
        } else {
            NonceCheck::Ok
        })
    }
}

/// Checks a nonce (and, with nonce_count/one_time_nonce, records its use): `nc` is the
/// credentials' nonce count when qop was used.
pub fn check_nonce(c: &Ctx, nonce: &[u8], nc: Option<&[u8]>) -> NonceCheck {
    let st = &c.core.m.auth;
    let checks = checks_for(c, st);
    let head_len = if st.replay.is_some() { 24 } else { 16 };
    let base = head_len + 32;
    if nonce.len() != base && nonce.len() != base + 32 {
        return NonceCheck::Invalid;
    }
    let Some(head) = nonce.get(..head_len) else {
        return NonceCheck::Invalid;
    };
    let mac = digest::md5_hex(&[&st.secret1, head]);
    if nonce.get(head_len..base) != Some(mac.as_bytes()) {
        return NonceCheck::Invalid;
    }
    let parse = |r: std::ops::Range<usize>| {
        std::str::from_utf8(head.get(r)?)
            .ok()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
    };
    let (Some(since), Some(exp)) = (parse(0..8), parse(8..16)) else {
        return NonceCheck::Invalid;
    };
    let t = now();
    if (exp as i64) < t || since as i64 > t + st.max_drift {
        return NonceCheck::Stale;
    }
    if let Some(r) = &st.replay {
        let Some(id) = parse(16..24) else {
            return NonceCheck::Invalid;
        };
        // A response with nc (8 hex digits) is checked by nonce_count only.
        if let Some(v) = nc {
            let Some(n) = std::str::from_utf8(v)
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
            else {
                return NonceCheck::Invalid;
            };
            if let Some(res) = r.check_nc(id, n) {
                return res;
            }
        }
        if let Some(res) = r.check_otn(id)
            && res != NonceCheck::Ok
        {
            return res;
        }
    }
    if nonce.len() != if checks != 0 { base + 32 } else { base } {
        return NonceCheck::Stale;
    }
    if checks != 0 {
        let extra = digest::md5_hex(&[&st.secret2, head, &extra_material(c, checks)]);
        if nonce.get(base..base + 32) != Some(extra.as_bytes()) {
            return NonceCheck::Stale;
        }
    }
    NonceCheck::Ok
}

/// The header kind credentials of a challenge type travel in.
fn cred_kind(proxy: bool) -> HdrKind {
    if proxy {
        HdrKind::ProxyAuthorization
    } else {
        HdrKind::Authorization
    }
}

/// Finds credentials for `realm`, checks they are complete and the nonce is ours and
/// fresh. `Ok` carries the header index and the credentials to verify; `Err` the result
/// code to return (AUTH_OK for ACK/CANCEL/PRACK, which cannot be challenged).
pub fn pre_auth(c: &Ctx, realm: &[u8], proxy: bool) -> Result<(usize, Credentials), i32> {
    let st = &c.core.m.auth;
    if matches!(c.msg.method(), Method::Ack | Method::Cancel | Method::Prack) {
        return Err(AUTH_OK);
    }
    let realm = strip_realm(st, realm);
    let kind = cred_kind(proxy);
    let mut found = None;
    for (i, h) in c.msg.headers().iter().enumerate() {
        if h.kind != kind {
            continue;
        }
        let cred = match Credentials::parse_in(c.msg.buf(), &h.value) {
            Ok(cr) => cr,
            Err(e) => {
                crate::klog!(L_ERR, "auth", "bad credentials: {e}");
                return Err(AUTH_ERROR);
            }
        };
        let r = cred.realm.as_deref().unwrap_or(b"");
        if strip_realm(st, r) == realm {
            found = Some((i, cred));
            break;
        }
    }
    let Some((idx, cred)) = found else {
        return Err(AUTH_NO_CREDENTIALS);
    };
    if !cred.is_digest()
        || cred.username.as_ref().is_none_or(|u| u.is_empty())
        || cred.nonce.is_none()
        || cred.uri.is_none()
        || cred.response.is_none()
        || (cred.qop.is_some() && (cred.cnonce.is_none() || cred.nc.is_none()))
    {
        crate::klog!(L_ERR, "auth", "credentials are not filled properly");
        return Err(AUTH_ERROR);
    }
    let nc = cred.qop.as_ref().and(cred.nc.as_deref());
    match check_nonce(c, cred.nonce.as_deref().unwrap_or(b""), nc) {
        NonceCheck::Ok => {}
        NonceCheck::Stale => return Err(AUTH_NONCE_STALE),
        NonceCheck::Reused => return Err(AUTH_NONCE_REUSED),
        NonceCheck::Invalid => {
            crate::klog!(L_DBG, "auth", "invalid nonce value received");
            return Err(AUTH_ERROR);
        }
    }
    Ok((idx, cred))
}

/// Verifies the response of `cred` for `method` with the given HA1 (already -sess adjusted
/// by [`digest::session_ha1`] when needed). Marks the header authorized on success.
pub fn check_response(
    c: &mut Ctx,
    idx: usize,
    cred: &Credentials,
    method: &[u8],
    ha1: &str,
) -> i32 {
    let Some(alg) = Alg::of(cred) else {
        return AUTH_ERROR;
    };
    let body_hash = if cred.qop.as_deref() == Some(b"auth-int") {
        Some(alg.hash_hex(&[c.msg.current_body()]))
    } else {
        None
    };
    let expected = digest::response(alg, ha1, cred, method, body_hash.as_deref());
    let got = cred.response.as_deref().unwrap_or(b"");
    if got.len() == expected.len() && got.eq_ignore_ascii_case(expected.as_bytes()) {
        mark_authorized(c, idx);
        if c.core.m.auth.add_authinfo_hdr {
            add_authinfo(c, alg, cred, ha1);
        }
        AUTH_OK
    } else {
        AUTH_INVALID_PASSWORD
    }
}

/// `add_authinfo_hdr`: Authentication-Info for the reply, proving the server knows the
/// secret (rspauth: the response with an empty method) and giving the next nonce (a new one
/// with one_time_nonce, else the current one).
fn add_authinfo(c: &mut Ctx, alg: Alg, cred: &Credentials, ha1: &str) {
    let body_hash = (cred.qop.as_deref() == Some(b"auth-int")).then(|| alg.hash_hex(&[b""]));
    let rspauth = digest::response(alg, ha1, cred, b"", body_hash.as_deref());
    let otn = c
        .core
        .m
        .auth
        .replay
        .as_ref()
        .is_some_and(|r| r.otn.is_some());
    let next = if otn {
        new_nonce(c)
    } else {
        String::from_utf8_lossy(cred.nonce.as_deref().unwrap_or(b"")).into_owned()
    };
    let f = |v: &Option<Bytes>| String::from_utf8_lossy(v.as_deref().unwrap_or(b"")).into_owned();
    c.reply_hdrs.push(Bytes::from(format!(
        "Authentication-Info: nextnonce=\"{next}\", qop={}, rspauth=\"{rspauth}\", cnonce=\"{}\", nc={}\r\n",
        f(&cred.qop),
        f(&cred.cnonce),
        f(&cred.nc)
    )));
}

/// The challenge header line (`WWW-Authenticate: ...` or `Proxy-Authenticate: ...`).
pub fn challenge_header(c: &Ctx, realm: &[u8], flags: i64, proxy: bool) -> String {
    let alg = ALGORITHM.with(|a| a.borrow().clone());
    let alg = alg.unwrap_or_else(|| c.core.m.auth.algorithm.clone());
    build_challenge(c, realm, flags, proxy, &new_nonce(c), &alg)
}

fn build_challenge(
    c: &Ctx,
    realm: &[u8],
    flags: i64,
    proxy: bool,
    nonce: &str,
    alg: &str,
) -> String {
    let realm = strip_realm(&c.core.m.auth, realm);
    let mut h = String::with_capacity(160);
    h.push_str(if proxy {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    });
    h.push_str(": Digest realm=\"");
    h.push_str(&String::from_utf8_lossy(realm));
    h.push_str("\", nonce=\"");
    h.push_str(nonce);
    h.push('"');
    if flags & 2 != 0 {
        h.push_str(", qop=\"auth-int\"");
    } else if flags & 1 != 0 {
        h.push_str(", qop=\"auth\"");
    }
    if flags & 16 != 0 {
        h.push_str(", stale=true");
    }
    if !alg.is_empty() {
        h.push_str(", algorithm=");
        h.push_str(alg);
    }
    h.push_str("\r\n");
    h
}

fn alg_name(a: Alg) -> &'static str {
    match a {
        Alg::Md5 => "MD5",
        Alg::Md5Sess => "MD5-sess",
        Alg::Sha256 => "SHA-256",
        Alg::Sha256Sess => "SHA-256-sess",
    }
}

/// `www_challenge(realm, flags, algorithms)` and friends: one challenge header per listed
/// algorithm (comma separated), all with the same nonce. An empty list is the 2-parameter
/// form; a bad one returns -2 (and a 500 unless flags has 4).
pub fn challenge_algs(c: &mut Ctx, realm: &[u8], flags: i64, proxy: bool, algs: &[u8]) -> i32 {
    if trim_bytes(algs).is_empty() {
        return challenge(c, realm, flags, proxy);
    }
    if !c.msg.is_request() {
        return -1;
    }
    let mut names = Vec::new();
    for tok in algs.split(|b| *b == b',') {
        match Alg::parse(trim_bytes(tok)) {
            Some(a) if !trim_bytes(tok).is_empty() => names.push(alg_name(a)),
            _ => {
                crate::klog!(
                    L_ERR,
                    "auth",
                    "unsupported challenge algorithm: {}",
                    String::from_utf8_lossy(tok)
                );
                if flags & 4 == 0
                    && crate::modules::sl::freply(c, 500, b"Internal Server Error") < 0
                {
                    return -4;
                }
                return -2;
            }
        }
    }
    let realm = if realm.is_empty() {
        default_realm(c)
    } else {
        Bytes::copy_from_slice(realm)
    };
    let nonce = new_nonce(c);
    for a in names {
        let h = build_challenge(c, &realm, flags, proxy, &nonce, a);
        c.reply_hdrs.push(Bytes::from(h));
    }
    let (code, reason): (u16, &[u8]) = if proxy {
        (407, b"Proxy Authentication Required")
    } else {
        (401, b"Unauthorized")
    };
    if crate::modules::sl::freply(c, code, reason) < 0 {
        return -3;
    }
    1
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    crate::sip::scan::trim_lws(b)
}

/// Realm to use when the script gives an empty one: the To host for REGISTER, else From.
fn default_realm(c: &Ctx) -> Bytes {
    let na = if c.msg.method() == Method::Register {
        c.msg.to()
    } else {
        c.msg.from()
    };
    na.map(|n| n.uri.host.clone()).unwrap_or_default()
}

/// Sends a 401/407 with a challenge; 1 sent, -2 challenge failed, -3 reply failed.
pub fn challenge(c: &mut Ctx, realm: &[u8], flags: i64, proxy: bool) -> i32 {
    if !c.msg.is_request() {
        return -1;
    }
    let realm = if realm.is_empty() {
        default_realm(c)
    } else {
        Bytes::copy_from_slice(realm)
    };
    let hdr = challenge_header(c, &realm, flags, proxy);
    c.reply_hdrs.push(Bytes::from(hdr));
    let (code, reason): (u16, &[u8]) = if proxy {
        (407, b"Proxy Authentication Required")
    } else {
        (401, b"Unauthorized")
    };
    if crate::modules::sl::freply(c, code, reason) < 0 {
        return -3;
    }
    1
}

/// The From/To/R-URI identity checks of `auth_check` (flags bit 1, bit 2 skips them for
/// requests that may be anonymous); `use_domain` also compares hosts.
pub fn check_identity(c: &Ctx, cred: &Credentials, flags: i64, use_domain: bool) -> i32 {
    if flags & 1 == 0 {
        return AUTH_OK;
    }
    let (user, _) = cred.user_and_domain();
    let (Ok(from), m) = (c.msg.from(), c.msg.method()) else {
        return AUTH_ERROR;
    };
    let reg_or_pub = matches!(m, Method::Register | Method::Publish);
    let to = if reg_or_pub {
        match c.msg.to() {
            Ok(t) => Some(t),
            Err(_) => return AUTH_ERROR,
        }
    } else {
        None
    };
    let skip = flags & 2 != 0
        && matches!(
            m,
            Method::Invite | Method::Bye | Method::Prack | Method::Update | Method::Message
        );
    if !skip {
        let u = to.map(|t| &t.uri).unwrap_or(&from.uri);
        if u.user != user {
            return AUTH_USER_MISMATCH;
        }
    }
    if let Some(to) = to {
        if from.uri.user != to.uri.user {
            return AUTH_USER_MISMATCH;
        }
        if use_domain && from.uri.host != to.uri.host {
            return AUTH_USER_MISMATCH;
        }
        if m == Method::Publish {
            let Ok(r) = c.msg.parsed_ruri() else {
                return AUTH_ERROR;
            };
            if from.uri.user != r.user || (use_domain && from.uri.host != r.host) {
                return AUTH_USER_MISMATCH;
            }
        }
    }
    AUTH_OK
}

/// `pv_www_authenticate` / `pv_proxy_authenticate`: the password (or HA1 with flags bit 1)
/// comes from the script.
pub fn pv_authenticate(
    c: &mut Ctx,
    realm: &[u8],
    passwd: &[u8],
    flags: i64,
    proxy: bool,
    method: &[u8],
) -> i32 {
    let ret = match pre_auth(c, realm, proxy) {
        Err(r) => r,
        Ok((idx, cred)) => match Alg::of(&cred) {
            None => AUTH_ERROR,
            Some(alg) => {
                let ha1 = if flags & 1 != 0 {
                    String::from_utf8_lossy(passwd).into_owned()
                } else {
                    let user = cred.username.clone().unwrap_or_default();
                    alg.hash_hex(&[
                        &user,
                        b":",
                        strip_realm(&c.core.m.auth, realm),
                        b":",
                        passwd,
                    ])
                };
                let ha1 = digest::session_ha1(alg, &ha1, &cred);
                check_response(c, idx, &cred, method, &ha1)
            }
        },
    };
    if ret < 0 && flags & 14 != 0 {
        let qflags = if flags & 4 != 0 {
            2
        } else if flags & 2 != 0 {
            1
        } else {
            0
        } | (flags & 16);
        let hdr = challenge_header(c, realm, qflags, proxy);
        let name = c.core.m.auth.challenge_avp.clone();
        let v = hdr.trim_end_matches("\r\n").to_string();
        c.avps.insert(0, (name, Value::Str(Bytes::from(v))));
    }
    ret
}

fn register(r: &mut Registrar<'_>) {
    // A new request has no authorized credentials yet.
    r.hooks
        .request_pre
        .push(|_| AUTHORIZED.with(|a| a.set((0, usize::MAX))));
    let req = RouteMask::REQUEST;
    let chall_routes = RouteMask(1 | 2 | 4 | 8);
    r.kemi("auth", "consume_credentials", &[], RetType::Int, |c, _| {
        Value::Int(consume_credentials(c) as i64)
    })
    .native("consume_credentials", req);
    r.kemi("auth", "has_credentials", &[S], RetType::Int, |c, a| {
        Value::Int(has_credentials(c, &arg_bytes(a, 0)) as i64)
    })
    .native("has_credentials", req);
    r.kemi("auth", "www_challenge", &[S, I], RetType::Int, |c, a| {
        Value::Int(challenge(c, &arg_bytes(a, 0), arg_int(a, 1), false) as i64)
    })
    .native("www_challenge", chall_routes);
    r.kemi("auth", "proxy_challenge", &[S, I], RetType::Int, |c, a| {
        Value::Int(challenge(c, &arg_bytes(a, 0), arg_int(a, 1), true) as i64)
    })
    .native("proxy_challenge", chall_routes);
    r.kemi("auth", "auth_challenge", &[S, I], RetType::Int, |c, a| {
        let proxy = c.msg.method() != Method::Register;
        Value::Int(challenge(c, &arg_bytes(a, 0), arg_int(a, 1), proxy) as i64)
    })
    .native("auth_challenge", chall_routes);
    r.kemi(
        "auth",
        "pv_www_authenticate",
        &[S, S, I],
        RetType::Int,
        |c, a| {
            let m = c.msg.method_raw();
            Value::Int(pv_authenticate(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                arg_int(a, 2),
                false,
                &m,
            ) as i64)
        },
    )
    .native("pv_www_authenticate", req)
    .native("pv_www_authorize", req);
    r.kemi(
        "auth",
        "pv_www_authenticate_method",
        &[S, S, I, S],
        RetType::Int,
        |c, a| {
            let m = arg_bytes(a, 3);
            Value::Int(pv_authenticate(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                arg_int(a, 2),
                false,
                &m,
            ) as i64)
        },
    )
    .native("pv_www_authenticate", req);
    r.kemi(
        "auth",
        "pv_proxy_authenticate",
        &[S, S, I],
        RetType::Int,
        |c, a| {
            let m = c.msg.method_raw();
            Value::Int(pv_authenticate(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                arg_int(a, 2),
                true,
                &m,
            ) as i64)
        },
    )
    .native("pv_proxy_authenticate", req)
    .native("pv_proxy_authorize", req);
    r.native("www_challenge", &[S, I, S], chall_routes, |c, a| {
        Value::Int(
            challenge_algs(c, &arg_bytes(a, 0), arg_int(a, 1), false, &arg_bytes(a, 2)) as i64,
        )
    });
    r.native("proxy_challenge", &[S, I, S], chall_routes, |c, a| {
        Value::Int(
            challenge_algs(c, &arg_bytes(a, 0), arg_int(a, 1), true, &arg_bytes(a, 2)) as i64,
        )
    });
    r.native("auth_challenge", &[S, I, S], chall_routes, |c, a| {
        let proxy = c.msg.method() != Method::Register;
        Value::Int(
            challenge_algs(c, &arg_bytes(a, 0), arg_int(a, 1), proxy, &arg_bytes(a, 2)) as i64,
        )
    });
    r.kemi("auth", "auth_algorithm", &[S], RetType::Int, |_, a| {
        Value::Int(auth_algorithm(&arg_bytes(a, 0)) as i64)
    })
    .native("auth_algorithm", req);
    r.kemi(
        "auth",
        "auth_get_www_authenticate",
        &[S, I, S],
        RetType::Int,
        |c, a| {
            let dest = arg_bytes(a, 2);
            Value::Int(get_www_authenticate(c, &arg_bytes(a, 0), arg_int(a, 1), &dest) as i64)
        },
    )
    .native("auth_get_www_authenticate", req)
    .hints(&[
        vm::ksr::ParamHint::Plain,
        vm::ksr::ParamHint::Plain,
        vm::ksr::ParamHint::PvName,
    ]);
    r.kemi(
        "auth",
        "pv_auth_check",
        &[S, S, I, I],
        RetType::Int,
        |c, a| {
            Value::Int(pv_auth_check(
                c,
                &arg_bytes(a, 0),
                &arg_bytes(a, 1),
                arg_int(a, 2),
                arg_int(a, 3),
            ) as i64)
        },
    )
    .native("pv_auth_check", req);
}

/// `auth_algorithm(alg)`: MD5 or SHA-256 for the challenges of this worker; 1, or -1 when
/// unsupported.
pub fn auth_algorithm(alg: &[u8]) -> i32 {
    match Alg::parse(alg) {
        Some(Alg::Md5) | Some(Alg::Sha256) => {
            let name = String::from_utf8_lossy(alg).to_ascii_uppercase();
            ALGORITHM.with(|a| *a.borrow_mut() = Some(name));
            1
        }
        _ => {
            crate::klog!(
                L_ERR,
                "auth",
                "unsupported algorithm {}",
                String::from_utf8_lossy(alg)
            );
            -1
        }
    }
}

/// `auth_get_www_authenticate(realm, flags, pvdest)`: the challenge header (with its
/// CRLF) into a variable instead of a reply.
pub fn get_www_authenticate(c: &mut Ctx, realm: &[u8], flags: i64, dest: &Bytes) -> i32 {
    let realm = if realm.is_empty() {
        default_realm(c)
    } else {
        Bytes::copy_from_slice(realm)
    };
    let hdr = challenge_header(c, &realm, flags, false);
    let Some(spec) = crate::modules::core::pvapi::spec(c, dest) else {
        return -1;
    };
    match vm::pv::set(c, &spec, &Value::Str(Bytes::from(hdr))) {
        Ok(()) => 1,
        Err(e) => {
            crate::klog!(L_ERR, "auth", "cannot set {}: {e}", spec.text);
            -1
        }
    }
}

fn pv_auth_check(c: &mut Ctx, realm: &[u8], passwd: &[u8], flags: i64, checks: i64) -> i32 {
    if matches!(c.msg.method(), Method::Ack | Method::Cancel) {
        return AUTH_OK;
    }
    let proxy = c.msg.method() != Method::Register;
    let m = c.msg.method_raw();
    let ret = pv_authenticate(c, realm, passwd, flags, proxy, &m);
    if ret != AUTH_OK {
        return ret;
    }
    let Some(idx) = authorized_header(c) else {
        return ret;
    };
    let Some(h) = c.msg.headers().get(idx) else {
        return ret;
    };
    match Credentials::parse_in(c.msg.buf(), &h.value) {
        Ok(cred) => check_identity(c, &cred, checks, c.core.m.auth.use_domain),
        Err(_) => AUTH_ERROR,
    }
}

/// The user part of the username in the credentials a successful check of this request
/// used (siputils' `is_user`); `None` when nothing was authorized.
pub fn authorized_username(c: &Ctx) -> Option<Bytes> {
    let idx = authorized_header(c)?;
    let h = c.msg.headers().get(idx)?;
    let cred = Credentials::parse_in(c.msg.buf(), &h.value).ok()?;
    let user = cred.username.unwrap_or_default();
    Some(match memchr::memchr(b'@', &user) {
        Some(at) => user.slice(..at),
        None => user,
    })
}

/// Removes the credentials header a successful check used: 1, or -1 when there is none.
pub fn consume_credentials(c: &mut Ctx) -> i32 {
    let Some(idx) = authorized_header(c) else {
        crate::klog!(
            L_ERR,
            "auth",
            "no authorized credentials found (error in scripts)"
        );
        return -1;
    };
    if c.msg.remove_header(idx) { 1 } else { -1 }
}

/// 1 when the request has digest credentials for `realm`, -1 otherwise.
pub fn has_credentials(c: &Ctx, realm: &[u8]) -> i32 {
    let st = &c.core.m.auth;
    let realm = strip_realm(st, realm);
    for kind in [HdrKind::Authorization, HdrKind::ProxyAuthorization] {
        for (_, cred) in c.msg.credentials(kind) {
            if strip_realm(st, cred.realm.as_deref().unwrap_or(b"")) == realm {
                return 1;
            }
        }
    }
    -1
}
