//! Kamailio's `uac` module, its upstream authentication part: `uac_auth()` in failure_route
//! answers the 401/407 challenge of the picked branch with credentials from the `credential`
//! parameter (or the `auth_*_avp` AVPs) and adds the Authorization header for the next
//! `t_relay()`. The header is byte for byte Kamailio's (the cnonce is its hash of the nonce).
//! Not provided yet (not registered): From/To replacement, `uac_req_send`, registrations.

use super::auth::digest::md5_hex;
use super::core::actions::arg_int;
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::log::{L_ERR, L_INFO};
use crate::sip::HdrKind;
use bytes::Bytes;
use vm::ksr::{ParamType::Int as I, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "uac",
    params: &[
        ParamDef::str("credential").multi(),
        ParamDef::str("auth_realm_avp"),
        ParamDef::str("auth_username_avp"),
        ParamDef::str("auth_password_avp"),
        ParamDef::str("restore_mode"),
    ],
    register,
    init: Some(init),
    notice: None,
};

#[derive(Default)]
pub struct UacState {
    credentials: Vec<Credential>,
    realm_avp: Option<String>,
    user_avp: Option<String>,
    password_avp: Option<String>,
}

#[derive(Clone, Debug)]
struct Credential {
    user: Bytes,
    realm: Bytes,
    password: Bytes,
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    // Like Kamailio, which binds to rr unless From/To restoring is off.
    let restore = ictx
        .params
        .str("restore_mode")
        .unwrap_or_else(|| "auto".into());
    if restore != "none" && !ictx.loaded.contains(&"rr") {
        return Err(
            "uac needs the rr module loaded (or modparam(\"uac\", \"restore_mode\", \"none\"))"
                .into(),
        );
    }
    let mut creds = Vec::new();
    for v in ictx.params.all("credential") {
        let text = v.to_text();
        // user:realm:password (the password may hold ':').
        let mut parts = text.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(u), Some(r), Some(p)) if !u.is_empty() && !p.is_empty() => {
                creds.push(Credential {
                    user: Bytes::from(u.trim().to_string()),
                    realm: Bytes::from(r.trim().to_string()),
                    password: Bytes::from(p.trim().to_string()),
                })
            }
            _ => return Err(format!("credential '{text}': expected user:realm:password")),
        }
    }
    let avp = |n: &str| ictx.params.str(n).filter(|s| !s.is_empty());
    let (realm_avp, user_avp, password_avp) = (
        avp("auth_realm_avp"),
        avp("auth_username_avp"),
        avp("auth_password_avp"),
    );
    for spec in [&realm_avp, &user_avp, &password_avp].into_iter().flatten() {
        vm::pv::parse_spec(spec, ictx.pvs).map_err(|e| format!("uac: bad AVP '{spec}': {e}"))?;
    }
    let st = &mut ictx.states.uac;
    st.credentials = creds;
    st.realm_avp = realm_avp;
    st.user_avp = user_avp;
    st.password_avp = password_avp;
    Ok(())
}

fn register(r: &mut Registrar<'_>) {
    let fail = RouteMask::FAILURE;
    r.kemi("uac", "uac_auth", &[], RetType::Int, |c, _| {
        Value::Int(uac_auth(c, 0))
    })
    .native("uac_auth", fail);
    r.kemi("uac", "uac_auth_mode", &[I], RetType::Int, |c, a| {
        Value::Int(uac_auth(c, arg_int(a, 0)))
    })
    .native("uac_auth", fail);
}

/// A digest challenge (WWW-/Proxy-Authenticate).
#[derive(Default, Debug)]
struct Challenge {
    realm: Bytes,
    nonce: Bytes,
    opaque: Bytes,
    /// The qop value starts with "auth" (Kamailio's test), and the token the response hash
    /// uses: the value up to its first comma (`auth-int` for "auth-int,auth", as Kamailio).
    qop_auth: bool,
    qop_token: Bytes,
    algorithm: Bytes,
}

fn parse_challenge(value: &[u8]) -> Option<Challenge> {
    let v = std::str::from_utf8(value).ok()?.trim();
    let rest = v
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("digest"))
        .map(|_| &v[6..])?;
    let mut ch = Challenge::default();
    for (name, val) in params(rest) {
        let val_b = Bytes::from(val.clone());
        match name.to_ascii_lowercase().as_str() {
            "realm" => ch.realm = val_b,
            "nonce" => ch.nonce = val_b,
            "opaque" => ch.opaque = val_b,
            "qop" => {
                ch.qop_auth = val.starts_with("auth");
                ch.qop_token = Bytes::from(val.split(',').next().unwrap_or("").to_string());
            }
            "algorithm" => {
                // Kamailio 5.6's uac answers MD5 challenges only.
                if !val.eq_ignore_ascii_case("md5") {
                    crate::klog!(L_ERR, "uac", "unsupported algorithm \"{val}\"");
                    return None;
                }
                ch.algorithm = val_b;
            }
            _ => {}
        }
    }
    if ch.algorithm.is_empty() {
        ch.algorithm = Bytes::from_static(b"MD5");
    }
    (!ch.nonce.is_empty()).then_some(ch)
}

/// `name=value` pairs of a digest header, values unquoted.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    // Bounded: every iteration consumes at least one byte.
    while i < b.len() {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b',' | b'\r' | b'\n') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let name = s.get(start..i).unwrap_or("").trim().to_string();
        if i >= b.len() || b[i] == b',' {
            i += 1;
            continue;
        }
        i += 1; // '='
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let vs = i;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            let v = s.get(vs..i.min(b.len())).unwrap_or("").to_string();
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            s.get(vs..i).unwrap_or("").trim().to_string()
        };
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// Kamailio's `get_hash1_raw` (core hash of a string), which uac uses as the cnonce.
fn hash1_raw(s: &[u8]) -> u32 {
    let mut h: u32 = 0;
    let mut chunks = s.chunks_exact(4);
    for c in &mut chunks {
        let v = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        h = h.wrapping_add(v ^ (v >> 3));
    }
    let v = chunks
        .remainder()
        .iter()
        .fold(0u32, |v, b| (v << 8) + *b as u32);
    h = h.wrapping_add(v ^ (v >> 3));
    h.wrapping_add(h >> 11)
        .wrapping_add((h >> 13).wrapping_add(h >> 23))
}

/// The credential for `realm`: the AVPs first (when configured), then the `credential` list.
fn credential(c: &mut Ctx, realm: &Bytes) -> Option<Credential> {
    let st = &c.core.m.uac;
    if let (Some(ra), Some(ua), Some(pa)) = (
        st.realm_avp.clone(),
        st.user_avp.clone(),
        st.password_avp.clone(),
    ) {
        let get = |c: &mut Ctx, spec: &str| -> Option<Bytes> {
            let reg = vm::Host::pv_registry(c);
            let spec = vm::pv::parse_spec(spec, reg).ok()?;
            match vm::pv::get(c, &spec) {
                Value::Str(s) if !s.is_empty() => Some(s),
                Value::Int(i) => Some(Bytes::from(i.to_string())),
                _ => None,
            }
        };
        let avp_realm = get(c, &ra);
        // An empty realm AVP matches whatever realm is asked.
        if avp_realm.as_ref().is_none_or(|r| r == realm)
            && let (Some(user), Some(password)) = (get(c, &ua), get(c, &pa))
        {
            return Some(Credential {
                user,
                realm: realm.clone(),
                password,
            });
        }
    }
    c.core
        .m
        .uac
        .credentials
        .iter()
        .find(|cr| cr.realm == *realm)
        .cloned()
}

/// `uac_auth([mode])`: 1 when the Authorization header was added, -1 otherwise.
fn uac_auth(c: &mut Ctx, mode: i64) -> i64 {
    let Some(t) = c.tm.t.clone() else {
        crate::klog!(L_ERR, "uac", "no current transaction found");
        return -1;
    };
    let Ok(idx) = usize::try_from(c.tm.branch_idx) else {
        crate::klog!(L_ERR, "uac", "no picked branch ({})", c.tm.branch_idx);
        return -1;
    };
    let (code, reply, uri) = {
        let tx = t.lock();
        let Some(b) = tx.branches.get(idx) else {
            return -1;
        };
        (b.code, b.reply.clone(), b.uri.clone())
    };
    let Some(reply) = reply else {
        crate::klog!(L_ERR, "uac", "cannot process a FAKED reply");
        return -1;
    };
    let kind = match code {
        401 => HdrKind::WwwAuthenticate,
        407 => HdrKind::ProxyAuthenticate,
        _ => {
            crate::klog!(L_ERR, "uac", "failed to extract authenticate hdr");
            return -1;
        }
    };
    let Some(ch) = reply
        .headers()
        .iter()
        .filter(|h| h.kind == kind)
        .find_map(|h| parse_challenge(&h.value))
    else {
        crate::klog!(L_ERR, "uac", "failed to extract authenticate hdr");
        return -1;
    };
    let Some(cred) = credential(c, &ch.realm) else {
        crate::klog!(
            L_INFO,
            "uac",
            "no credential for realm \"{}\"",
            String::from_utf8_lossy(&ch.realm)
        );
        return -1;
    };
    let method = c.msg.method_raw();
    let cnonce = hash1_raw(&ch.nonce).to_string();
    // Mode 1: the password is the HA1 already.
    let ha1 = if mode & 1 != 0 {
        String::from_utf8_lossy(&cred.password).into_owned()
    } else {
        md5_hex(&[&cred.user, b":", &cred.realm, b":", &cred.password])
    };
    let ha2 = md5_hex(&[&method, b":", &uri]);
    let response = if ch.qop_auth {
        md5_hex(&[
            ha1.as_bytes(),
            b":",
            &ch.nonce,
            b":00000001:",
            cnonce.as_bytes(),
            b":",
            &ch.qop_token,
            b":",
            ha2.as_bytes(),
        ])
    } else {
        md5_hex(&[ha1.as_bytes(), b":", &ch.nonce, b":", ha2.as_bytes()])
    };
    let mut h = if code == 401 {
        b"Authorization: Digest username=\"".to_vec()
    } else {
        b"Proxy-Authorization: Digest username=\"".to_vec()
    };
    for (text, val) in [
        (&b""[..], &cred.user[..]),
        (b"\", realm=\"", &cred.realm[..]),
        (b"\", nonce=\"", &ch.nonce[..]),
        (b"\", uri=\"", &uri[..]),
    ] {
        h.extend_from_slice(text);
        h.extend_from_slice(val);
    }
    if !ch.opaque.is_empty() {
        h.extend_from_slice(b"\", opaque=\"");
        h.extend_from_slice(&ch.opaque);
    }
    if ch.qop_auth {
        h.extend_from_slice(b"\", qop=auth, nc=00000001, cnonce=\"");
        h.extend_from_slice(cnonce.as_bytes());
    }
    h.extend_from_slice(b"\", response=\"");
    h.extend_from_slice(response.as_bytes());
    h.extend_from_slice(b"\", algorithm=");
    h.extend_from_slice(&ch.algorithm);
    h.extend_from_slice(b"\r\n");
    // The next branch goes to the challenged branch's URI, with the credentials.
    c.msg.set_ruri(uri);
    c.msg.append_header(Bytes::from(h));
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_and_cnonce_as_kamailio() {
        let ch = parse_challenge(
            b"Digest realm=\"a.b\", nonce=\"xyz123\", qop=\"auth,auth-int\", opaque=\"o\"",
        )
        .unwrap();
        assert_eq!(&ch.realm[..], b"a.b");
        assert!(ch.qop_auth);
        assert_eq!(&ch.algorithm[..], b"MD5");
        // Kamailio's get_hash1_raw over 4-byte big-endian words plus the tail.
        assert_eq!(hash1_raw(b""), 0);
        assert_eq!(hash1_raw(b"a"), 97 ^ (97 >> 3));
        assert!(parse_challenge(b"Basic realm=\"x\"").is_none());
    }
}
