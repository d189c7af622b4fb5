//! Kamailio's `alias_db` module: user aliases looked up in a database table on every call
//! (no caching), turning an alias into the user's SIP URI (or, reversed, a URI into its
//! aliases) in the R-URI (`alias_db_lookup`) or in a variable (`alias_db_find`).

use super::core::actions::{append_branch, arg_bytes};
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::db::{self, Cond, DbHandle, DbVal};
use crate::log::L_ERR;
use bytes::Bytes;
use vm::ksr::{ParamHint, ParamType::Str as S, RetType};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "alias_db",
    params: &[
        ParamDef::str("db_url"),
        ParamDef::str("user_column"),
        ParamDef::str("domain_column"),
        ParamDef::str("alias_user_column"),
        ParamDef::str("alias_domain_column"),
        ParamDef::int("use_domain"),
        ParamDef::str("domain_prefix"),
        ParamDef::int("append_branches"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// Use the domain part in the query.
const FL_DOMAIN: u32 = 1;
/// URI to alias instead of alias to URI.
const FL_REVERSE: u32 = 2;

#[derive(Default)]
pub struct AliasDbState {
    pub db: Option<DbHandle>,
    pub user_col: String,
    pub domain_col: String,
    pub alias_user_col: String,
    pub alias_domain_col: String,
    pub use_domain: bool,
    pub domain_prefix: String,
    pub append_branches: bool,
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let p = ictx.params;
    let st = &mut ictx.states.alias_db;
    st.user_col = p.str_or("user_column", "username");
    st.domain_col = p.str_or("domain_column", "domain");
    st.alias_user_col = p.str_or("alias_user_column", "alias_username");
    st.alias_domain_col = p.str_or("alias_domain_column", "alias_domain");
    st.use_domain = p.int("use_domain", 0) != 0;
    st.domain_prefix = p.str("domain_prefix").unwrap_or_default();
    st.append_branches = p.int("append_branches", 0) != 0;
    let Some(url) = p.str("db_url").filter(|s| !s.is_empty()) else {
        return Err("alias_db: db_url is not set (ksr ships the sqlite driver)".into());
    };
    st.db = Some(db::open_shared(&url, ictx.workdir).map_err(|e| format!("alias_db: {e}"))?);
    Ok(())
}

fn register(r: &mut Registrar<'_>) {
    let lookup_routes = RouteMask::REQUEST.union(RouteMask::FAILURE);
    r.kemi("alias_db", "lookup", &[S], RetType::Int, ki_lookup)
        .native("alias_db_lookup", lookup_routes);
    r.kemi("alias_db", "lookup_ex", &[S, S], RetType::Int, ki_lookup_ex);
    r.native("alias_db_lookup", &[S, S], lookup_routes, native_lookup2)
        .hints(&[ParamHint::Plain, ParamHint::Plain]);
    let find_routes = RouteMask::REQUEST
        .union(RouteMask::FAILURE)
        .union(RouteMask::ONREPLY)
        .union(RouteMask::BRANCH)
        .union(RouteMask::LOCAL);
    r.native("alias_db_find", &[S, S, S], find_routes, native_find3)
        .hints(&[ParamHint::Plain, ParamHint::PvName, ParamHint::PvName]);
    r.native("alias_db_find", &[S, S, S, S], find_routes, native_find4)
        .hints(&[
            ParamHint::Plain,
            ParamHint::PvName,
            ParamHint::PvName,
            ParamHint::Plain,
        ]);
}

fn default_flags(c: &Ctx) -> u32 {
    if c.core.m.alias_db.use_domain {
        FL_DOMAIN
    } else {
        0
    }
}

/// Applies a flags string (`d`, `r`, `u`, either case) over the defaults; `None` for an
/// unknown letter when `strict` (the native cfg refuses it), otherwise it is skipped.
fn parse_flags(base: u32, s: &[u8], strict: bool) -> Option<u32> {
    let mut f = base;
    for ch in s {
        match ch.to_ascii_lowercase() {
            b'd' => f &= !FL_DOMAIN,
            b'r' => f |= FL_REVERSE,
            b'u' => f |= FL_DOMAIN,
            other => {
                crate::klog!(
                    L_ERR,
                    "alias_db",
                    "unsupported flag '{}'",
                    char::from(other)
                );
                if strict {
                    return None;
                }
            }
        }
    }
    Some(f)
}

/// The URIs the table maps `user`/`host` to (`sip:user@domain` each), or `None` when the
/// query fails or finds nothing.
fn query(c: &Ctx, table: &str, user: &[u8], host: &[u8], flags: u32) -> Option<Vec<Bytes>> {
    let st = &c.core.m.alias_db;
    let h = st.db.as_ref()?;
    let (keys, cols) = if flags & FL_REVERSE != 0 {
        (
            [st.user_col.as_str(), st.domain_col.as_str()],
            [st.alias_user_col.as_str(), st.alias_domain_col.as_str()],
        )
    } else {
        (
            [st.alias_user_col.as_str(), st.alias_domain_col.as_str()],
            [st.user_col.as_str(), st.domain_col.as_str()],
        )
    };
    let mut conds = vec![Cond::eq(
        keys[0],
        String::from_utf8_lossy(user).into_owned(),
    )];
    if flags & FL_DOMAIN != 0 {
        let dom = crate::sip::scan::strip_prefix_icase(host, st.domain_prefix.as_bytes());
        conds.push(Cond::eq(keys[1], String::from_utf8_lossy(dom).into_owned()));
    }
    let rows = db::with(h, |d| {
        if db::schema::table(table).is_some() {
            let _ = d.ensure_table(table, &[]);
        }
        d.select(table, &cols, &conds, None)
    });
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            crate::klog!(L_ERR, "alias_db", "failed to query database: {e}");
            return None;
        }
    };
    match rows.first().and_then(|r| r.first()) {
        None | Some(DbVal::Null) => return None,
        _ => {}
    }
    let text = |v: Option<&DbVal>| match v {
        Some(DbVal::Str(s)) => s.clone(),
        Some(DbVal::Int(i)) => i.to_string(),
        Some(v) => v.to_text(),
        None => String::new(),
    };
    Some(
        rows.iter()
            .map(|r| Bytes::from(format!("sip:{}@{}", text(r.first()), text(r.get(1)))))
            .collect(),
    )
}

fn lookup(c: &mut Ctx, table: &[u8], flags: u32) -> Value {
    let (user, host) = match c.msg.parsed_ruri() {
        Ok(u) => (u.user.clone(), u.host.clone()),
        Err(_) => return Value::Int(-1),
    };
    let table = String::from_utf8_lossy(table).into_owned();
    let Some(uris) = query(c, &table, &user, &host, flags) else {
        return Value::Int(-1);
    };
    let append = c.core.m.alias_db.append_branches;
    for (i, u) in uris.into_iter().enumerate() {
        if i == 0 {
            c.msg.set_ruri(u);
        } else if append {
            // Kamailio appends alias branches with the lowest q (0).
            if append_branch(c, Some(u), Some(0)) != Value::Int(1) {
                crate::klog!(L_ERR, "alias_db", "error while appending branches");
                return Value::Int(-1);
            }
        }
    }
    Value::Int(1)
}

fn ki_lookup(c: &mut Ctx, a: &[Value]) -> Value {
    let f = default_flags(c);
    lookup(c, &arg_bytes(a, 0), f)
}

fn ki_lookup_ex(c: &mut Ctx, a: &[Value]) -> Value {
    let f = parse_flags(default_flags(c), &arg_bytes(a, 1), false).unwrap_or(0);
    lookup(c, &arg_bytes(a, 0), f)
}

fn native_lookup2(c: &mut Ctx, a: &[Value]) -> Value {
    let Some(f) = parse_flags(default_flags(c), &arg_bytes(a, 1), true) else {
        return Value::Int(-1);
    };
    lookup(c, &arg_bytes(a, 0), f)
}

fn find(c: &mut Ctx, a: &[Value], flags: u32) -> Value {
    let reg = vm::Host::pv_registry(c);
    let input = String::from_utf8_lossy(&arg_bytes(a, 1)).into_owned();
    let output = String::from_utf8_lossy(&arg_bytes(a, 2)).into_owned();
    let (Ok(ins), Ok(outs)) = (
        vm::pv::parse_spec(&input, reg),
        vm::pv::parse_spec(&output, reg),
    ) else {
        return Value::Int(-1);
    };
    if !(output.starts_with("$avp(") || output.starts_with("$var(")) {
        crate::klog!(L_ERR, "alias_db", "PV {output} cannot be written");
        return Value::Int(-1);
    }
    let Value::Str(uri) = vm::pv::get(c, &ins) else {
        crate::klog!(L_ERR, "alias_db", "PV vals is not string");
        return Value::Int(-1);
    };
    let Ok(u) = crate::sip::Uri::parse(&uri) else {
        crate::klog!(L_ERR, "alias_db", "failed to parse uri");
        return Value::Int(-1);
    };
    let table = String::from_utf8_lossy(&arg_bytes(a, 0)).into_owned();
    let Some(uris) = query(c, &table, &u.user, &u.host, flags) else {
        return Value::Int(-1);
    };
    let append = c.core.m.alias_db.append_branches;
    for (i, u) in uris.into_iter().enumerate() {
        if i > 0 && !append {
            continue;
        }
        if vm::pv::set(c, &outs, &Value::Str(u)).is_err() {
            crate::klog!(L_ERR, "alias_db", "setting PV AVP failed");
            return Value::Int(-1);
        }
    }
    Value::Int(1)
}

fn native_find3(c: &mut Ctx, a: &[Value]) -> Value {
    let f = default_flags(c);
    find(c, a, f)
}

fn native_find4(c: &mut Ctx, a: &[Value]) -> Value {
    let Some(f) = parse_flags(default_flags(c), &arg_bytes(a, 3), true) else {
        return Value::Int(-1);
    };
    find(c, a, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(parse_flags(0, b"rd", true), Some(FL_REVERSE));
        assert_eq!(parse_flags(FL_DOMAIN, b"D", true), Some(0));
        assert_eq!(parse_flags(0, b"u", true), Some(FL_DOMAIN));
        assert_eq!(parse_flags(0, b"x", true), None);
        assert_eq!(parse_flags(0, b"xr", false), Some(FL_REVERSE));
    }
}
