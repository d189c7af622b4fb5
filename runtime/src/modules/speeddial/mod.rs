//! Kamailio's `speeddial` module: per-user short numbers looked up in a database table, the
//! R-URI user (the short number) of a request from the owner replaced by the stored URI.

use super::core::actions::arg_bytes;
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::db::{self, Cond, DbHandle, DbVal};
use crate::log::L_ERR;
use bytes::Bytes;
use vm::ksr::{ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "speeddial",
    params: &[
        ParamDef::str("db_url"),
        ParamDef::str("user_column"),
        ParamDef::str("domain_column"),
        ParamDef::str("sd_user_column"),
        ParamDef::str("sd_domain_column"),
        ParamDef::str("new_uri_column"),
        ParamDef::int("use_domain"),
        ParamDef::str("domain_prefix"),
    ],
    register,
    init: Some(init),
    notice: None,
};

#[derive(Default)]
pub struct SpeeddialState {
    pub db: Option<DbHandle>,
    pub user_col: String,
    pub domain_col: String,
    pub sd_user_col: String,
    pub sd_domain_col: String,
    pub new_uri_col: String,
    /// 0: users only; 1: the owner's domain too; 2: the short number's domain too.
    pub use_domain: i64,
    pub domain_prefix: String,
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.speeddial;
    st.user_col = p.str_or("user_column", "username");
    st.domain_col = p.str_or("domain_column", "domain");
    st.sd_user_col = p.str_or("sd_user_column", "sd_username");
    st.sd_domain_col = p.str_or("sd_domain_column", "sd_domain");
    st.new_uri_col = p.str_or("new_uri_column", "new_uri");
    st.use_domain = p.int("use_domain", 0);
    st.domain_prefix = p.str("domain_prefix").unwrap_or_default();
    let Some(url) = p.str("db_url").filter(|s| !s.is_empty()) else {
        return Err("speeddial: db_url is not set (ksr ships the sqlite driver)".into());
    };
    st.db = Some(db::open_shared(&url, ictx.workdir).map_err(|e| format!("speeddial: {e}"))?);
    Ok(())
}

fn register(r: &mut Registrar<'_>) {
    r.kemi("speeddial", "lookup", &[S], RetType::Int, ki_lookup)
        .native("sd_lookup", RouteMask::REQUEST);
    r.kemi(
        "speeddial",
        "lookup_owner",
        &[S, S],
        RetType::Int,
        ki_lookup_owner,
    )
    .native("sd_lookup", RouteMask::REQUEST);
}

// The host without `domain_prefix` (ignoring case; only when the host is longer).
use crate::sip::scan::strip_prefix_icase as strip_prefix;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lookup_owner(c: &mut Ctx, table: &[u8], owner: &[u8]) -> Value {
    if table.is_empty() {
        crate::klog!(L_ERR, "speeddial", "invalid table parameter");
        return Value::Int(-1);
    }
    let (ouser, ohost) = if !owner.is_empty() {
        match crate::sip::Uri::parse(&Bytes::copy_from_slice(owner)) {
            Ok(u) => (u.user, u.host),
            Err(_) => {
                crate::klog!(L_ERR, "speeddial", "bad owner SIP address!");
                return Value::Int(-1);
            }
        }
    } else {
        match c.msg.from() {
            Ok(f) => (f.uri.user.clone(), f.uri.host.clone()),
            Err(_) => {
                crate::klog!(L_ERR, "speeddial", "failed to parse FROM header");
                return Value::Int(-1);
            }
        }
    };
    let (ruser, rhost) = match c.msg.parsed_ruri() {
        Ok(u) => (u.user.clone(), u.host.clone()),
        Err(_) => {
            crate::klog!(L_ERR, "speeddial", "failed to parsing Request-URI");
            return Value::Int(-1);
        }
    };
    let st = &c.core.m.speeddial;
    let Some(h) = st.db.as_ref() else {
        return Value::Int(-1);
    };
    let pre = st.domain_prefix.as_bytes();
    let mut conds = vec![Cond::eq(st.user_col.as_str(), lossy(&ouser))];
    if st.use_domain >= 1 {
        conds.push(Cond::eq(
            st.domain_col.as_str(),
            lossy(strip_prefix(&ohost, pre)),
        ));
    }
    conds.push(Cond::eq(st.sd_user_col.as_str(), lossy(&ruser)));
    if st.use_domain >= 2 {
        conds.push(Cond::eq(
            st.sd_domain_col.as_str(),
            lossy(strip_prefix(&rhost, pre)),
        ));
    }
    let table = lossy(table);
    let cols = [st.new_uri_col.as_str()];
    let rows = db::with(h, |d| {
        if db::schema::table(&table).is_some() {
            let _ = d.ensure_table(&table, &[]);
        }
        d.select(&table, &cols, &conds, None)
    });
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            crate::klog!(L_ERR, "speeddial", "failed to query database: {e}");
            return Value::Int(-1);
        }
    };
    let uri = match rows.first().and_then(|r| r.first()) {
        None | Some(DbVal::Null) => return Value::Int(-1),
        Some(DbVal::Str(s)) => s.clone(),
        Some(v) => v.to_text(),
    };
    let uri = if uri.starts_with("sip:") {
        uri
    } else {
        format!("sip:{uri}")
    };
    c.msg.set_ruri(Bytes::from(uri));
    Value::Int(1)
}

fn ki_lookup(c: &mut Ctx, a: &[Value]) -> Value {
    lookup_owner(c, &arg_bytes(a, 0), b"")
}

fn ki_lookup_owner(c: &mut Ctx, a: &[Value]) -> Value {
    lookup_owner(c, &arg_bytes(a, 0), &arg_bytes(a, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix() {
        assert_eq!(strip_prefix(b"sip.example.com", b"SIP."), b"example.com");
        assert_eq!(strip_prefix(b"sip.", b"sip."), b"sip.");
        assert_eq!(strip_prefix(b"example.com", b""), b"example.com");
    }
}
