//! Database access for modules (auth_db, usrloc, acc, permissions, htable).
//!
//! Modules talk to a [`Db`] handle built from a Kamailio `db_url`. SQLite is the embedded
//! default (`sqlite:////abs/path.db`; like Kamailio, three slashes make the path relative to
//! the working directory). Tables are created on demand with Kamailio's table and column
//! names. Other drivers (PostgreSQL, MySQL) implement the same [`Db`] trait; until they exist,
//! their URLs are refused with a clear error at start-up.

pub mod schema;

use std::sync::{Arc, Mutex};

/// A column value.
#[derive(Clone, Debug, PartialEq)]
pub enum DbVal {
    Null,
    Int(i64),
    Double(f64),
    Str(String),
}

impl DbVal {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            DbVal::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            DbVal::Int(i) => Some(*i),
            DbVal::Double(d) => Some(*d as i64),
            DbVal::Str(s) => s.trim().parse().ok(),
            DbVal::Null => None,
        }
    }

    /// Text form (numbers printed), empty for NULL.
    pub fn to_text(&self) -> String {
        match self {
            DbVal::Null => String::new(),
            DbVal::Int(i) => i.to_string(),
            DbVal::Double(d) => d.to_string(),
            DbVal::Str(s) => s.clone(),
        }
    }
}

impl From<&str> for DbVal {
    fn from(s: &str) -> Self {
        DbVal::Str(s.to_string())
    }
}
impl From<String> for DbVal {
    fn from(s: String) -> Self {
        DbVal::Str(s)
    }
}
impl From<i64> for DbVal {
    fn from(i: i64) -> Self {
        DbVal::Int(i)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
        }
    }
}

/// `column op value` in a WHERE clause.
#[derive(Clone, Debug)]
pub struct Cond<'a> {
    pub col: &'a str,
    pub op: Op,
    pub val: DbVal,
}

impl<'a> Cond<'a> {
    pub fn eq(col: &'a str, val: impl Into<DbVal>) -> Cond<'a> {
        Cond {
            col,
            op: Op::Eq,
            val: val.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL '{0}' (ksr ships the sqlite driver)")]
    Unsupported(String),
    #[error("bad database URL '{0}'")]
    BadUrl(String),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("unknown table '{0}'")]
    UnknownTable(String),
    #[error("database connection lock poisoned")]
    Poisoned,
}

/// Operations modules need. Identifiers (tables, columns) come from configuration or code,
/// never from SIP messages; values are always bound parameters.
pub trait Db: Send {
    /// Makes sure `table` exists (with `extra` text columns) and returns nothing on success.
    fn ensure_table(&mut self, table: &str, extra: &[&str]) -> Result<(), DbError>;
    fn select(
        &mut self,
        table: &str,
        cols: &[&str],
        conds: &[Cond<'_>],
        order_by: Option<&str>,
    ) -> Result<Vec<Vec<DbVal>>, DbError>;
    fn insert(&mut self, table: &str, cols: &[&str], vals: &[DbVal]) -> Result<(), DbError>;
    /// Insert or replace on unique-key conflict.
    fn replace(&mut self, table: &str, cols: &[&str], vals: &[DbVal]) -> Result<(), DbError>;
    fn update(
        &mut self,
        table: &str,
        conds: &[Cond<'_>],
        cols: &[&str],
        vals: &[DbVal],
    ) -> Result<usize, DbError>;
    fn delete(&mut self, table: &str, conds: &[Cond<'_>]) -> Result<usize, DbError>;
    /// Raw SQL from the configuration (sqlops' `sql_query`): the script writer owns the text.
    fn raw_query(&mut self, sql: &str) -> Result<RawResult, DbError>;
    /// Rows changed by the last INSERT/UPDATE/DELETE (`$sqlrows`).
    fn affected_rows(&self) -> i64;
}

/// A value of a raw query's result, typed as Kamailio's database layer types it (what
/// sqlops and friends then turn into script values).
#[derive(Clone, Debug, PartialEq)]
pub enum RawVal {
    Null,
    /// DB1_INT (32-bit in Kamailio's driver) and DB1_DATETIME (a Unix time).
    Int(i64),
    /// DB1_BIGINT.
    BigInt(i64),
    /// DB1_STR/DB1_STRING/DB1_BLOB.
    Str(Vec<u8>),
    /// DB1_DOUBLE, which script variables cannot hold.
    Double(f64),
}

/// The rows of a raw query, with the column names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawResult {
    pub cols: Vec<String>,
    pub rows: Vec<Vec<RawVal>>,
}

/// A database shared by the workers of the process.
pub type DbHandle = Arc<Mutex<Box<dyn Db>>>;

/// Runs `f` with the database locked.
pub fn with<T>(
    db: &DbHandle,
    f: impl FnOnce(&mut dyn Db) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let mut g = db.lock().map_err(|_| DbError::Poisoned)?;
    f(g.as_mut())
}

/// The file path a `sqlite://` URL names, resolved like Kamailio's db_sqlite: the part after
/// the host section (`sqlite://[host]/PATH`), relative to `workdir` unless absolute.
pub fn sqlite_path(url: &str, workdir: &std::path::Path) -> Result<std::path::PathBuf, DbError> {
    let rest = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| DbError::Unsupported(url.to_string()))?;
    let slash = rest
        .find('/')
        .ok_or_else(|| DbError::BadUrl(url.to_string()))?;
    let path = &rest[slash + 1..];
    if path.is_empty() {
        return Err(DbError::BadUrl(url.to_string()));
    }
    let p = std::path::Path::new(path);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        workdir.join(p)
    })
}

/// Opens the database a `db_url` names.
pub fn open(url: &str, workdir: &std::path::Path) -> Result<DbHandle, DbError> {
    let path = sqlite_path(url, workdir)?;
    let db = Sqlite::open(&path)?;
    Ok(Arc::new(Mutex::new(Box::new(db))))
}

/// Opens the database a `db_url` names, reusing the connection another module of this process
/// already opened for the same file (usrloc and auth_db usually share one `DBURL`).
pub fn open_shared(url: &str, workdir: &std::path::Path) -> Result<DbHandle, DbError> {
    static OPEN: Mutex<Vec<(std::path::PathBuf, DbHandle)>> = Mutex::new(Vec::new());
    let path = sqlite_path(url, workdir)?;
    let mut open = OPEN.lock().map_err(|_| DbError::Poisoned)?;
    if let Some((_, h)) = open.iter().find(|(p, _)| *p == path) {
        return Ok(h.clone());
    }
    let h: DbHandle = Arc::new(Mutex::new(Box::new(Sqlite::open(&path)?)));
    open.push((path, h.clone()));
    Ok(h)
}

pub struct Sqlite {
    conn: rusqlite::Connection,
    ensured: std::collections::HashSet<String>,
}

impl Sqlite {
    pub fn open(path: &std::path::Path) -> Result<Sqlite, DbError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL lets Kamailio tools read while ksr writes.
        let _ = conn.pragma_update(None, "journal_mode", "WAL");
        Ok(Sqlite {
            conn,
            ensured: Default::default(),
        })
    }

    pub fn open_in_memory() -> Result<Sqlite, DbError> {
        Ok(Sqlite {
            conn: rusqlite::Connection::open_in_memory()?,
            ensured: Default::default(),
        })
    }

    fn existing_columns(&self, table: &str) -> Result<Vec<String>, DbError> {
        let mut st = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?;
        let cols = st
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(cols)
    }

    fn ensure_version_table(&mut self) -> Result<(), DbError> {
        if self.ensured.contains("version") {
            return Ok(());
        }
        if let Some(t) = schema::table("version") {
            self.conn.execute(&t.create_sql(&[]), [])?;
        }
        self.ensured.insert("version".into());
        Ok(())
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn where_clause(conds: &[Cond<'_>], first_param: usize) -> String {
    if conds.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = conds
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} {} ?{}", quote_ident(c.col), c.op.sql(), first_param + i))
        .collect();
    format!(" WHERE {}", parts.join(" AND "))
}

fn to_sql(v: &DbVal) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        DbVal::Null => V::Null,
        DbVal::Int(i) => V::Integer(*i),
        DbVal::Double(d) => V::Real(*d),
        DbVal::Str(s) => V::Text(s.clone()),
    }
}

fn from_sql(v: rusqlite::types::ValueRef<'_>) -> DbVal {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => DbVal::Null,
        V::Integer(i) => DbVal::Int(i),
        V::Real(d) => DbVal::Double(d),
        V::Text(t) | V::Blob(t) => DbVal::Str(String::from_utf8_lossy(t).into_owned()),
    }
}

/// The column type Kamailio's db_sqlite gives a declared type (a loose substring match, as
/// SQLite's own affinity rules).
fn decltype_kind(decl: &str) -> ColKind {
    let up = decl.to_ascii_uppercase();
    // The first recognised 3- or 4-letter run wins, scanning left to right.
    let b = up.as_bytes();
    for end in 3..=b.len() {
        if b.get(end - 3..end) == Some(b"INT".as_slice()) {
            return ColKind::Int;
        }
        if end >= 4 {
            match b.get(end - 4..end) {
                Some(b"SERI") => return ColKind::Int,
                Some(b"BIGI") => return ColKind::BigInt,
                Some(b"CHAR") | Some(b"CLOB") | Some(b"TEXT") | Some(b"BLOB") => {
                    return ColKind::Str;
                }
                Some(b"REAL") | Some(b"FLOA") | Some(b"DOUB") => return ColKind::Double,
                Some(b"TIME") | Some(b"DATE") => return ColKind::DateTime,
                _ => {}
            }
        }
    }
    ColKind::Int
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ColKind {
    Int,
    BigInt,
    Str,
    Double,
    DateTime,
}

impl Sqlite {
    fn run_raw(&mut self, sql: &str) -> Result<RawResult, DbError> {
        let mut st = self.conn.prepare(sql)?;
        let n = st.column_count();
        let cols: Vec<String> = st.column_names().map(|c| c.to_string()).collect();
        let decl: Vec<Option<ColKind>> = st
            .columns()
            .map(|c| c.decl_type().map(decltype_kind))
            .collect();
        let mut kinds: Vec<ColKind> = Vec::new();
        let mut rows = Vec::new();
        let mut q = st.query([])?;
        while let Some(r) = q.next()? {
            if kinds.is_empty() {
                // Like Kamailio's driver: the declared type, else the first row's value type.
                for i in 0..n {
                    let k = match decl.get(i).copied().flatten() {
                        Some(k) => k,
                        None => match r.get_ref(i)?.data_type() {
                            rusqlite::types::Type::Integer => ColKind::Int,
                            rusqlite::types::Type::Real => ColKind::Double,
                            _ => ColKind::Str,
                        },
                    };
                    kinds.push(k);
                }
            }
            let mut row = Vec::with_capacity(n);
            for (i, k) in kinds.iter().enumerate() {
                use rusqlite::types::ValueRef;
                let v = r.get_ref(i)?;
                let num = |v: ValueRef<'_>| match v {
                    ValueRef::Integer(x) => x,
                    ValueRef::Real(f) => f as i64,
                    ValueRef::Text(t) | ValueRef::Blob(t) => std::str::from_utf8(t)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                        .map_or(0, |f| f as i64),
                    ValueRef::Null => 0,
                };
                let text = |v: ValueRef<'_>| match v {
                    ValueRef::Integer(x) => x.to_string().into_bytes(),
                    ValueRef::Real(f) => f.to_string().into_bytes(),
                    ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
                    ValueRef::Null => Vec::new(),
                };
                row.push(match (v, k) {
                    (ValueRef::Null, _) => RawVal::Null,
                    // sqlite3_column_int: the low 32 bits.
                    (v, ColKind::Int) => RawVal::Int(num(v) as i32 as i64),
                    (v, ColKind::BigInt) => RawVal::BigInt(num(v)),
                    (v, ColKind::Str) => RawVal::Str(text(v)),
                    (v, ColKind::Double) => RawVal::Double(match v {
                        ValueRef::Real(f) => f,
                        v => num(v) as f64,
                    }),
                    (v, ColKind::DateTime) => {
                        let julian = match v {
                            ValueRef::Real(f) => f,
                            ValueRef::Integer(x) => x as f64,
                            v => std::str::from_utf8(&text(v))
                                .ok()
                                .and_then(|s| s.trim().parse().ok())
                                .unwrap_or(0.0),
                        };
                        RawVal::Int(time_of(&DbVal::Double(julian)).unwrap_or(0))
                    }
                });
            }
            rows.push(row);
        }
        Ok(RawResult { cols, rows })
    }
}

impl Db for Sqlite {
    fn raw_query(&mut self, sql: &str) -> Result<RawResult, DbError> {
        self.run_raw(sql)
    }

    fn affected_rows(&self) -> i64 {
        self.conn.changes() as i64
    }

    fn ensure_table(&mut self, table: &str, extra: &[&str]) -> Result<(), DbError> {
        let key = format!("{table}|{}", extra.join(","));
        if self.ensured.contains(&key) {
            return Ok(());
        }
        let def = schema::table(table).ok_or_else(|| DbError::UnknownTable(table.into()))?;
        self.ensure_version_table()?;
        self.conn.execute(&def.create_sql(extra), [])?;
        let have = self.existing_columns(table)?;
        for e in extra {
            if !have.iter().any(|c| c == e) {
                self.conn.execute(
                    &format!(
                        "ALTER TABLE {} ADD COLUMN {} VARCHAR(128) DEFAULT '' NOT NULL",
                        quote_ident(table),
                        quote_ident(e)
                    ),
                    [],
                )?;
            }
        }
        for idx in def.indexes {
            self.conn.execute(idx, [])?;
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO version (table_name, table_version) VALUES (?1, ?2)",
            rusqlite::params![def.name, def.version],
        )?;
        self.ensured.insert(key);
        Ok(())
    }

    fn select(
        &mut self,
        table: &str,
        cols: &[&str],
        conds: &[Cond<'_>],
        order_by: Option<&str>,
    ) -> Result<Vec<Vec<DbVal>>, DbError> {
        let cols_sql: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
        let mut sql = format!(
            "SELECT {} FROM {}{}",
            cols_sql.join(", "),
            quote_ident(table),
            where_clause(conds, 1)
        );
        if let Some(o) = order_by {
            sql.push_str(&format!(" ORDER BY {}", quote_ident(o)));
        }
        let mut st = self.conn.prepare_cached(&sql)?;
        let params: Vec<rusqlite::types::Value> = conds.iter().map(|c| to_sql(&c.val)).collect();
        let n = cols.len();
        let rows = st.query_map(rusqlite::params_from_iter(params), |r| {
            (0..n)
                .map(|i| r.get_ref(i).map(from_sql))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn insert(&mut self, table: &str, cols: &[&str], vals: &[DbVal]) -> Result<(), DbError> {
        insert_with(&self.conn, "INSERT", table, cols, vals)
    }

    fn replace(&mut self, table: &str, cols: &[&str], vals: &[DbVal]) -> Result<(), DbError> {
        insert_with(&self.conn, "INSERT OR REPLACE", table, cols, vals)
    }

    fn update(
        &mut self,
        table: &str,
        conds: &[Cond<'_>],
        cols: &[&str],
        vals: &[DbVal],
    ) -> Result<usize, DbError> {
        let sets: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", quote_ident(c), i + 1))
            .collect();
        let sql = format!(
            "UPDATE {} SET {}{}",
            quote_ident(table),
            sets.join(", "),
            where_clause(conds, cols.len() + 1)
        );
        let params: Vec<rusqlite::types::Value> = vals
            .iter()
            .map(to_sql)
            .chain(conds.iter().map(|c| to_sql(&c.val)))
            .collect();
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(params))?)
    }

    fn delete(&mut self, table: &str, conds: &[Cond<'_>]) -> Result<usize, DbError> {
        let sql = format!(
            "DELETE FROM {}{}",
            quote_ident(table),
            where_clause(conds, 1)
        );
        let params: Vec<rusqlite::types::Value> = conds.iter().map(|c| to_sql(&c.val)).collect();
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(params))?)
    }
}

fn insert_with(
    conn: &rusqlite::Connection,
    verb: &str,
    table: &str,
    cols: &[&str],
    vals: &[DbVal],
) -> Result<(), DbError> {
    let names: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "{verb} INTO {} ({}) VALUES ({})",
        quote_ident(table),
        names.join(", "),
        marks.join(", ")
    );
    let params: Vec<rusqlite::types::Value> = vals.iter().map(to_sql).collect();
    conn.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(params))?;
    Ok(())
}

/// Kamailio's text form of a timestamp column: local time `YYYY-MM-DD HH:MM:SS`.
pub fn format_time(unix: i64) -> String {
    let t = unix as libc::time_t;
    // SAFETY: localtime_r writes into the provided struct; both pointers are valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return "1970-01-01 00:00:00".into();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// A Unix time as the Julian day number Kamailio's db_sqlite stores in DATETIME columns
/// (its formula, half-second shift included, so both read each other's rows the same).
pub fn julian(unix: i64) -> f64 {
    (unix as f64 - 0.5) / 86400.0 + 2_440_587.5
}

/// Kamailio's reading of a Julian day (`86400 * (d - epoch) + 0.5`, truncated), made
/// robust to the rounding error of the value [`julian`] wrote: nearest integer, ties down.
fn from_julian(d: f64) -> i64 {
    ((d - 2_440_587.5) * 86400.0 + 0.5 - 1e-6).round() as i64
}

/// A DATETIME column value for writing: [`julian`] as a REAL.
pub fn time_value(unix: i64) -> DbVal {
    DbVal::Double(julian(unix))
}

/// A DATETIME column value back to Unix time: Kamailio's Julian day numbers, integers
/// (Unix time) or text in [`format_time`]'s form.
pub fn time_of(v: &DbVal) -> Option<i64> {
    match v {
        DbVal::Double(d) => Some(from_julian(*d)),
        DbVal::Int(i) => Some(*i),
        DbVal::Str(s) => parse_time(s).or_else(|| s.trim().parse::<f64>().ok().map(from_julian)),
        DbVal::Null => None,
    }
}

/// Parses [`format_time`]'s form back to a Unix time (local time).
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i32> {
        std::str::from_utf8(b.get(r)?).ok()?.parse().ok()
    };
    // SAFETY: zeroed tm is a valid initial value; mktime only reads/normalizes it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = num(0..4)? - 1900;
    tm.tm_mon = num(5..7)? - 1;
    tm.tm_mday = num(8..10)?;
    tm.tm_hour = num(11..13)?;
    tm.tm_min = num(14..16)?;
    tm.tm_sec = num(17..19)?;
    tm.tm_isdst = -1;
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_as_kamailio_stores_them() {
        // A value Kamailio 5.6's db_sqlite wrote for 2026-11-22 22:14:40 UTC.
        let k = DbVal::Double(2461367.42684606);
        let t = time_of(&k).unwrap();
        assert!((t - 1795385680).abs() <= 1, "{t}");
        assert_eq!(time_of(&time_value(t)), Some(t));
        assert_eq!(time_of(&DbVal::Int(5)), Some(5));
        assert_eq!(time_of(&DbVal::Null), None);
    }

    #[test]
    fn urls_resolve_like_kamailio() {
        let wd = std::path::Path::new("/w");
        assert_eq!(
            sqlite_path("sqlite:////var/k.db", wd).unwrap(),
            std::path::PathBuf::from("/var/k.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///k.db", wd).unwrap(),
            std::path::PathBuf::from("/w/k.db")
        );
        assert!(matches!(
            sqlite_path("mysql://u:p@h/db", wd),
            Err(DbError::Unsupported(_))
        ));
        assert!(sqlite_path("sqlite://", wd).is_err());
    }

    #[test]
    fn crud_with_on_demand_schema_and_extra_columns() {
        let mut db = Sqlite::open_in_memory().unwrap();
        db.ensure_table("acc", &["src_user"]).unwrap();
        db.insert(
            "acc",
            &["method", "callid", "sip_code", "time", "src_user"],
            &[
                "INVITE".into(),
                "c1".into(),
                "200".into(),
                "t".into(),
                "alice".into(),
            ],
        )
        .unwrap();
        let rows = db
            .select(
                "acc",
                &["src_user", "sip_code"],
                &[Cond::eq("callid", "c1")],
                None,
            )
            .unwrap();
        assert_eq!(rows, vec![vec![DbVal::from("alice"), DbVal::from("200")]]);
        db.ensure_table("acc", &["src_user", "dst_user"]).unwrap();
        let n = db
            .update(
                "acc",
                &[Cond::eq("callid", "c1")],
                &["dst_user"],
                &["bob".into()],
            )
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(db.delete("acc", &[Cond::eq("callid", "c1")]).unwrap(), 1);
        let v = db
            .select(
                "version",
                &["table_version"],
                &[Cond::eq("table_name", "acc")],
                None,
            )
            .unwrap();
        assert_eq!(v, vec![vec![DbVal::Int(5)]]);
        assert!(matches!(
            db.ensure_table("nope", &[]),
            Err(DbError::UnknownTable(_))
        ));
    }

    #[test]
    fn time_round_trip() {
        let t = 1_700_000_000;
        assert_eq!(parse_time(&format_time(t)), Some(t));
        assert_eq!(time_of(&DbVal::Double(julian(t))), Some(t));
        assert_eq!(time_of(&DbVal::Str(format_time(t))), Some(t));
        assert_eq!(
            time_of(&DbVal::Str("2461367.5".into())),
            Some(1_795_392_000)
        );
        assert_eq!(julian(0), 2_440_587.5 - 0.5 / 86400.0);
        for t in [0, 1, 1_795_385_680, 2_000_000_001] {
            assert_eq!(time_of(&time_value(t)), Some(t));
        }
        assert_eq!(parse_time("garbage"), None);
    }
}
