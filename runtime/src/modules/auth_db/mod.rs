//! Kamailio's `auth_db` module: digest authentication against the `subscriber` table
//! (`www_authenticate`, `proxy_authenticate`, `auth_check`, `is_subscriber`), with HA1
//! computed from the plain `password` column (`calculate_ha1`) or read from `ha1`/`ha1b`,
//! and `load_credentials` copying subscriber columns into AVPs.

pub mod subscriber;

use super::auth::digest::{self, Alg};
use super::auth::{
    AUTH_ERROR, AUTH_OK, AUTH_USER_UNKNOWN, check_identity, check_response, pre_auth,
};
use super::core::actions::{arg_bytes, arg_int};
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::db::{self, Cond, DbHandle, DbVal};
use crate::log::L_ERR;
use crate::sip::{Method, Uri};
use bytes::Bytes;
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "auth_db",
    params: &[
        ParamDef::str("db_url"),
        ParamDef::str("user_column"),
        ParamDef::str("domain_column"),
        ParamDef::str("password_column"),
        ParamDef::str("password_column_2"),
        ParamDef::any("calculate_ha1"),
        ParamDef::any("use_domain"),
        ParamDef::str("load_credentials"),
        ParamDef::int("version_table"),
        ParamDef::int("force_generate_avps"),
    ],
    register,
    init: Some(init),
    notice: None,
};

#[derive(Default)]
pub struct AuthDbState {
    db: Option<DbHandle>,
    user_column: String,
    domain_column: String,
    password_column: String,
    password_column_2: String,
    calculate_ha1: bool,
    use_domain: bool,
    /// (AVP name, column) pairs.
    load_credentials: Vec<(Bytes, String)>,
    force_generate_avps: bool,
}

/// Kamailio accepts `yes`/`no`/`1`/`0` for boolean parameters.
fn flag(p: &super::ModParams, name: &str) -> bool {
    match p.get(name) {
        Some(Value::Int(i)) => *i != 0,
        Some(Value::Str(s)) => matches!(
            String::from_utf8_lossy(s)
                .trim()
                .to_ascii_lowercase()
                .as_str(),
            "1" | "yes" | "true" | "on" | "enable"
        ),
        _ => false,
    }
}

/// `$avp(i:1)=rpid;email_address` -> [("#1", "rpid"), ("email_address", "email_address")].
fn parse_load_credentials(s: &str) -> Result<Vec<(Bytes, String)>, String> {
    let mut out = Vec::new();
    for item in s.split(';').map(str::trim).filter(|x| !x.is_empty()) {
        let (avp, col) = match item.split_once('=') {
            Some((a, c)) => (a.trim(), c.trim()),
            None => (item, item),
        };
        if col.is_empty() || !col.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad load_credentials column '{col}'"));
        }
        let inner = avp
            .strip_prefix("$avp(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(avp);
        let name = if let Some(i) = inner.strip_prefix("i:") {
            format!(
                "#{}",
                i.parse::<i64>()
                    .map_err(|_| format!("bad load_credentials AVP '{avp}'"))?
            )
        } else {
            inner.strip_prefix("s:").unwrap_or(inner).to_string()
        };
        out.push((Bytes::from(name), col.to_string()));
    }
    Ok(out)
}

fn init(ictx: &mut InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.auth_db;
    st.user_column = p.str_or("user_column", "username");
    st.domain_column = p.str_or("domain_column", "domain");
    st.password_column = p.str_or("password_column", "ha1");
    st.password_column_2 = p.str_or("password_column_2", "ha1b");
    st.calculate_ha1 = flag(p, "calculate_ha1");
    st.use_domain = flag(p, "use_domain");
    st.force_generate_avps = p.int("force_generate_avps", 0) != 0;
    st.load_credentials = parse_load_credentials(&p.str_or("load_credentials", ""))?;
    let url = p
        .str("db_url")
        .unwrap_or_else(|| "mysql://kamailio:kamailiorw@localhost/kamailio".to_string());
    st.db = Some(db::open_shared(&url, ictx.workdir).map_err(|e| e.to_string())?);
    if !ictx.loaded.contains(&"auth") {
        return Err("the auth_db module needs the auth module".into());
    }
    Ok(())
}

/// A subscriber's HA1 source and extra columns.
struct Subscriber {
    secret: String,
    extra: Vec<DbVal>,
}

/// Looks up `user` (and `domain` with use_domain) in `table`: Ok(None) when unknown.
fn fetch(
    st: &AuthDbState,
    table: &str,
    user: &[u8],
    domain: &[u8],
    column: &str,
) -> Result<Option<Subscriber>, db::DbError> {
    let Some(h) = &st.db else {
        return Ok(None);
    };
    let mut cols: Vec<&str> = vec![column];
    cols.extend(st.load_credentials.iter().map(|(_, c)| c.as_str()));
    let u = String::from_utf8_lossy(user).into_owned();
    let d = String::from_utf8_lossy(domain).into_owned();
    let mut conds = vec![Cond::eq(&st.user_column, u)];
    if st.use_domain {
        conds.push(Cond::eq(&st.domain_column, d));
    }
    let rows = db::with(h, |db| {
        if db::schema::table(table).is_some() {
            db.ensure_table(table, &[])?;
        }
        db.select(table, &cols, &conds, None)
    })?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let mut it = row.into_iter();
    let secret = it.next().map(|v| v.to_text()).unwrap_or_default();
    Ok(Some(Subscriber {
        secret,
        extra: it.collect(),
    }))
}

fn generate_avps(c: &mut Ctx, sub: &Subscriber) {
    let names: Vec<Bytes> = c
        .core
        .m
        .auth_db
        .load_credentials
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    for (name, v) in names.into_iter().zip(sub.extra.iter()) {
        let val = match v {
            DbVal::Null => continue,
            DbVal::Int(i) => Value::Int(*i),
            other => Value::Str(Bytes::from(other.to_text())),
        };
        c.avps.insert(0, (name, val));
    }
}

/// www/proxy authentication against `table`; Kamailio's auth_db return codes.
pub fn authenticate(c: &mut Ctx, realm: &[u8], table: &[u8], proxy: bool, method: &[u8]) -> i32 {
    authenticate_cred(c, realm, table, proxy, method).0
}

/// [`authenticate`], also giving the credentials it checked.
fn authenticate_cred(
    c: &mut Ctx,
    realm: &[u8],
    table: &[u8],
    proxy: bool,
    method: &[u8],
) -> (i32, Option<crate::sip::Credentials>) {
    let (idx, cred) = match pre_auth(c, realm, proxy) {
        Ok(x) => x,
        Err(r) => return (r, None),
    };
    let r = verify(c, idx, &cred, realm, table, method);
    (r, Some(cred))
}

fn verify(
    c: &mut Ctx,
    idx: usize,
    cred: &crate::sip::Credentials,
    realm: &[u8],
    table: &[u8],
    method: &[u8],
) -> i32 {
    let Some(alg) = Alg::of(cred) else {
        crate::klog!(L_ERR, "auth_db", "unsupported digest algorithm");
        return AUTH_ERROR;
    };
    // HA1 and the subscriber's domain use the realm without auth's realm_prefix.
    let realm = super::auth::strip_realm(&c.core.m.auth, realm);
    let st = &c.core.m.auth_db;
    if !st.calculate_ha1 && alg.is_sess() {
        crate::klog!(
            L_ERR,
            "auth_db",
            "precomputed HA1 values are not supported with *-sess digest algorithms"
        );
        return AUTH_ERROR;
    }
    let whole = cred.username.clone().unwrap_or_default();
    let (user, udom) = cred.user_and_domain();
    let domain = match &udom {
        Some(d) if !d.is_empty() => d.clone(),
        _ => Bytes::copy_from_slice(realm),
    };
    let column = if st.calculate_ha1 {
        st.password_column.as_str()
    } else if udom.is_some() {
        st.password_column_2.as_str()
    } else {
        st.password_column.as_str()
    };
    let table = String::from_utf8_lossy(table).into_owned();
    let sub = match fetch(st, &table, &user, &domain, column) {
        Ok(Some(s)) => s,
        Ok(None) => return AUTH_USER_UNKNOWN,
        Err(e) => {
            crate::klog!(L_ERR, "auth_db", "failed to query the database: {e}");
            return AUTH_ERROR;
        }
    };
    if st.force_generate_avps {
        generate_avps(c, &sub);
    }
    let ha1 = if st.calculate_ha1 {
        digest::ha1(alg, &whole, realm, sub.secret.as_bytes())
    } else {
        sub.secret.trim().to_ascii_lowercase()
    };
    let ha1 = digest::session_ha1(alg, &ha1, cred);
    let r = check_response(c, idx, cred, method, &ha1);
    if r == AUTH_OK && !c.core.m.auth_db.force_generate_avps {
        generate_avps(c, &sub);
    }
    r
}

/// `auth_check(realm, table, flags)`.
pub fn auth_check(c: &mut Ctx, realm: &[u8], table: &[u8], flags: i64) -> i32 {
    if matches!(c.msg.method(), Method::Ack | Method::Cancel) {
        return AUTH_OK;
    }
    if realm.is_empty() {
        crate::klog!(L_ERR, "auth_db", "invalid realm parameter - empty value");
        return AUTH_ERROR;
    }
    if table.is_empty() {
        crate::klog!(L_ERR, "auth_db", "invalid table parameter - empty value");
        return AUTH_ERROR;
    }
    let proxy = c.msg.method() != Method::Register;
    let m = c.msg.method_raw();
    let (ret, cred) = authenticate_cred(c, realm, table, proxy, &m);
    if ret != AUTH_OK || flags & 1 == 0 {
        return ret;
    }
    match cred {
        Some(cr) => check_identity(c, &cr, flags, c.core.m.auth_db.use_domain),
        // ACK/CANCEL/PRACK pass without credentials.
        None => ret,
    }
}

/// `is_subscriber(uri, table, flags)`: 1 found, -2 not found, -1 error. (Kamailio 5.6 fails
/// its query with -1 when `load_credentials` is empty and flag 2 is not given; ksr answers
/// 1 for an existing subscriber then.)
pub fn is_subscriber(c: &mut Ctx, uri: &[u8], table: &[u8], flags: i64) -> i32 {
    let Ok(u) = Uri::parse_bytes(uri) else {
        crate::klog!(L_ERR, "auth_db", "invalid uri parameter");
        return -1;
    };
    let st = &c.core.m.auth_db;
    let Some(h) = &st.db else {
        return -1;
    };
    let mut cols: Vec<&str> = vec![st.user_column.as_str()];
    cols.extend(st.load_credentials.iter().map(|(_, c)| c.as_str()));
    let mut conds = vec![Cond::eq(
        &st.user_column,
        String::from_utf8_lossy(&u.user).into_owned(),
    )];
    if flags & 1 != 0 {
        conds.push(Cond::eq(
            &st.domain_column,
            String::from_utf8_lossy(&u.host).into_owned(),
        ));
    }
    let table = String::from_utf8_lossy(table).into_owned();
    let rows = match db::with(h, |db| db.select(&table, &cols, &conds, None)) {
        Ok(r) => r,
        Err(e) => {
            crate::klog!(L_ERR, "auth_db", "failed to query the database: {e}");
            return -1;
        }
    };
    let Some(row) = rows.into_iter().next() else {
        return -2;
    };
    if flags & 2 == 0 {
        let sub = Subscriber {
            secret: String::new(),
            extra: row.into_iter().skip(1).collect(),
        };
        generate_avps(c, &sub);
    }
    1
}

fn register(r: &mut Registrar<'_>) {
    let req = RouteMask::REQUEST;
    r.kemi("auth_db", "auth_check", &[S, S, I], RetType::Int, |c, a| {
        Value::Int(auth_check(c, &arg_bytes(a, 0), &arg_bytes(a, 1), arg_int(a, 2)) as i64)
    })
    .native("auth_check", req);
    r.kemi(
        "auth_db",
        "is_subscriber",
        &[S, S, I],
        RetType::Int,
        |c, a| {
            Value::Int(is_subscriber(c, &arg_bytes(a, 0), &arg_bytes(a, 1), arg_int(a, 2)) as i64)
        },
    )
    .native("is_subscriber", RouteMask::ANY);
    r.kemi(
        "auth_db",
        "www_authenticate",
        &[S, S],
        RetType::Int,
        |c, a| {
            let m = c.msg.method_raw();
            Value::Int(authenticate(c, &arg_bytes(a, 0), &arg_bytes(a, 1), false, &m) as i64)
        },
    )
    .native("www_authenticate", req)
    .native("www_authorize", req);
    r.kemi(
        "auth_db",
        "www_authenticate_method",
        &[S, S, S],
        RetType::Int,
        |c, a| {
            let m = arg_bytes(a, 2);
            Value::Int(authenticate(c, &arg_bytes(a, 0), &arg_bytes(a, 1), false, &m) as i64)
        },
    )
    .native("www_authenticate", req);
    r.native("proxy_authenticate", &[S, S], req, |c, a| {
        let m = c.msg.method_raw();
        Value::Int(authenticate(c, &arg_bytes(a, 0), &arg_bytes(a, 1), true, &m) as i64)
    })
    .native("proxy_authorize", req);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_credentials_syntax() {
        let v = parse_load_credentials("$avp(i:123)=rpid;email_address; $avp(s:x)=y").unwrap();
        assert_eq!(
            v,
            vec![
                (Bytes::from("#123"), "rpid".to_string()),
                (Bytes::from("email_address"), "email_address".to_string()),
                (Bytes::from("x"), "y".to_string()),
            ]
        );
        assert!(parse_load_credentials("").unwrap().is_empty());
        assert!(parse_load_credentials("a=b;c").is_ok());
        assert!(parse_load_credentials("$avp(i:x)=c").is_err());
        assert!(parse_load_credentials("a=b c").is_err());
    }
}
