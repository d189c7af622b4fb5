//! Managing the `subscriber` table like `kamctl add/rm/show`: the plain password and both
//! precomputed HA1 forms (`ha1` = MD5(user:domain:password), `ha1b` =
//! MD5(user@domain:domain:password)).

use crate::db::{Cond, Db, DbError, DbVal};
use crate::modules::auth::digest::{Alg, ha1};

pub const TABLE: &str = "subscriber";

/// Adds (or replaces) `user@domain` with `password`.
pub fn add(db: &mut dyn Db, user: &str, domain: &str, password: &str) -> Result<(), DbError> {
    db.ensure_table(TABLE, &[])?;
    let h = ha1(
        Alg::Md5,
        user.as_bytes(),
        domain.as_bytes(),
        password.as_bytes(),
    );
    let hb = ha1(
        Alg::Md5,
        format!("{user}@{domain}").as_bytes(),
        domain.as_bytes(),
        password.as_bytes(),
    );
    db.replace(
        TABLE,
        &["username", "domain", "password", "ha1", "ha1b"],
        &[
            DbVal::from(user),
            DbVal::from(domain),
            DbVal::from(password),
            DbVal::from(h),
            DbVal::from(hb),
        ],
    )
}

/// Removes `user@domain`; returns whether it existed.
pub fn remove(db: &mut dyn Db, user: &str, domain: &str) -> Result<bool, DbError> {
    db.ensure_table(TABLE, &[])?;
    let n = db.delete(
        TABLE,
        &[Cond::eq("username", user), Cond::eq("domain", domain)],
    )?;
    Ok(n > 0)
}

/// Every subscriber as (username, domain, ha1).
pub fn list(db: &mut dyn Db) -> Result<Vec<(String, String, String)>, DbError> {
    db.ensure_table(TABLE, &[])?;
    let rows = db.select(TABLE, &["username", "domain", "ha1"], &[], Some("username"))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let g = |i: usize| r.get(i).map(DbVal::to_text).unwrap_or_default();
            (g(0), g(1), g(2))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Sqlite;

    #[test]
    fn add_list_remove_like_kamctl() {
        let mut db = Sqlite::open_in_memory().unwrap();
        add(&mut db, "alice", "example.com", "secret").unwrap();
        add(&mut db, "alice", "example.com", "secret2").unwrap();
        let l = list(&mut db).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(
            l[0].2,
            crate::modules::auth::digest::md5_hex(&[b"alice:example.com:secret2"])
        );
        let hb = db
            .select(
                "subscriber",
                &["ha1b"],
                &[Cond::eq("username", "alice")],
                None,
            )
            .unwrap();
        assert_eq!(
            hb[0][0].to_text(),
            crate::modules::auth::digest::md5_hex(&[b"alice@example.com:example.com:secret2"])
        );
        assert!(remove(&mut db, "alice", "example.com").unwrap());
        assert!(!remove(&mut db, "alice", "example.com").unwrap());
        assert!(list(&mut db).unwrap().is_empty());
    }
}
