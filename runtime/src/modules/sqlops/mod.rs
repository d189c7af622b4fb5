//! Kamailio's `sqlops` module: raw SQL from the routing script over named connections
//! (`sqlcon`), results kept per worker in named containers (`$dbr(res=>...)`), in XAVPs
//! (`sql_xquery`) or in any writable pseudo-variables (`sql_pvquery`).
//!
//! Values are typed as Kamailio's database layer types them (see [`crate::db::RawVal`]):
//! integers and date-times become integers, BIGINT and text become strings, floating point
//! becomes null (script variables hold only integers and strings).

use super::core::actions::{arg_bytes, arg_int};
use super::pv::xavp::{XVal, XavpList};
use super::{ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::db::{DbHandle, RawResult, RawVal};
use crate::log::{L_ERR, L_NOTICE};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use vm::ksr::{ParamType::Int as I, ParamType::Str as S, RetType};
use vm::pv::{PvClass, PvParam, PvSpec};
use vm::{RouteMask, Value};

pub static MODULE: ModuleDef = ModuleDef {
    name: "sqlops",
    params: &[
        ParamDef::str("sqlcon").multi(),
        ParamDef::str("sqlres").multi(),
        ParamDef::int("tr_buf_size"),
        ParamDef::int("connect_mode"),
        ParamDef::int("results_maxsize"),
        ParamDef::int("log_buf_size"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// The named connections, shared by all workers.
#[derive(Default)]
pub struct SqlopsState {
    cons: Vec<Connection>,
    results_maxsize: usize,
}

struct Connection {
    name: Bytes,
    /// `None` when it could not be opened and `connect_mode` is 1.
    db: Option<DbHandle>,
}

impl SqlopsState {
    fn con(&self, name: &[u8]) -> Option<&Connection> {
        self.cons.iter().find(|c| c.name[..] == *name)
    }
}

fn init(ictx: &mut super::InitCtx<'_>) -> Result<(), String> {
    let connect_mode = ictx.params.int("connect_mode", 0);
    let st = &mut ictx.states.sqlops;
    st.results_maxsize = ictx.params.int("results_maxsize", 32).max(1) as usize;
    for v in ictx.params.all("sqlcon") {
        let text = v.to_text();
        let Some((name, url)) = text.split_once("=>") else {
            return Err(format!(
                "sqlcon '{text}': expected connection_name=>database_url"
            ));
        };
        let (name, url) = (name.trim(), url.trim());
        if st.con(name.as_bytes()).is_some() {
            return Err(format!("sqlcon: connection '{name}' defined twice"));
        }
        let db = match crate::db::open_shared(url, ictx.workdir) {
            Ok(h) => Some(h),
            Err(e) if connect_mode == 1 => {
                crate::klog!(L_ERR, "sqlops", "cannot connect '{name}' ({url}): {e}");
                None
            }
            Err(e) => return Err(format!("sqlcon '{name}': {e}")),
        };
        st.cons.push(Connection {
            name: Bytes::copy_from_slice(name.as_bytes()),
            db,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- result containers

/// One result container as a script sees it.
#[derive(Default)]
struct SqlResult {
    cols: Vec<Bytes>,
    rows: Vec<Vec<Value>>,
}

thread_local! {
    /// Result containers of this worker: Kamailio keeps them in each process's private
    /// memory, so a result is reused by later messages of the same worker only.
    static RESULTS: RefCell<HashMap<Bytes, SqlResult>> = RefCell::new(HashMap::new());
}

/// Runs `f` on container `name`, creating it (within `results_maxsize`) if needed.
fn with_result<T>(c: &Ctx, name: &[u8], f: impl FnOnce(&mut SqlResult) -> T) -> Option<T> {
    RESULTS.with(|r| {
        let mut r = r.borrow_mut();
        if !r.contains_key(name) {
            if r.len() >= c.core.m.sqlops.results_maxsize {
                crate::klog!(
                    L_ERR,
                    "sqlops",
                    "too many result containers (results_maxsize {})",
                    c.core.m.sqlops.results_maxsize
                );
                return None;
            }
            r.insert(Bytes::copy_from_slice(name), SqlResult::default());
        }
        r.get_mut(name).map(f)
    })
}

/// Reads container `name` without creating it.
fn read_result<T>(name: &[u8], f: impl FnOnce(&SqlResult) -> T) -> Option<T> {
    RESULTS.with(|r| r.borrow().get(name).map(f))
}

/// A script value for a result cell (`sql_query` / `$dbr`).
fn cell_value(v: &RawVal) -> Value {
    match v {
        RawVal::Null | RawVal::Double(_) => Value::Null,
        RawVal::Int(i) => Value::Int(*i),
        RawVal::BigInt(i) => Value::Str(Bytes::from(i.to_string())),
        RawVal::Str(s) => Value::Str(Bytes::copy_from_slice(s)),
    }
}

/// Runs `sql` on connection `con`: the rows, or -1 (error) / -2 (no usable connection).
fn run(c: &Ctx, con: &[u8], sql: &[u8]) -> Result<RawResult, i64> {
    let Some(conn) = c.core.m.sqlops.con(con) else {
        crate::klog!(
            L_ERR,
            "sqlops",
            "invalid connection [{}]",
            String::from_utf8_lossy(con)
        );
        return Err(-1);
    };
    let Some(db) = &conn.db else {
        crate::klog!(L_ERR, "sqlops", "invalid connection to database");
        return Err(-2);
    };
    let sql = String::from_utf8_lossy(sql);
    match crate::db::with(db, |d| d.raw_query(&sql)) {
        Ok(r) => Ok(r),
        Err(e) => {
            let shown: String = sql.chars().take(128).collect();
            crate::klog!(L_ERR, "sqlops", "cannot do the query [{shown}]: {e}");
            Err(-1)
        }
    }
}

/// `sql_query(con, query[, res])`: 1 rows stored, 2 no rows, 3 rows but no container,
/// -1 error, -2 connection unusable.
fn query(c: &mut Ctx, con: &[u8], sql: &[u8], res: Option<&[u8]>) -> i64 {
    if let Some(name) = res {
        // The container is emptied before the query, as Kamailio does.
        if with_result(c, name, |r| *r = SqlResult::default()).is_none() {
            return -1;
        }
    }
    let out = match run(c, con, sql) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if out.rows.is_empty() || out.cols.is_empty() {
        return 2;
    }
    let Some(name) = res else {
        return 3;
    };
    let stored = with_result(c, name, |r| {
        r.cols = out.cols.iter().map(|s| Bytes::from(s.clone())).collect();
        r.rows = out
            .rows
            .iter()
            .map(|row| row.iter().map(cell_value).collect())
            .collect();
    });
    if stored.is_some() { 1 } else { -1 }
}

/// `sql_xquery(con, query, xavp)`: every row prepended as an XAVP named `xavp` whose fields
/// are the columns (first row at index 0). 1, 2 no rows, -1.
fn xquery(c: &mut Ctx, con: &[u8], sql: &[u8], xavp: &[u8]) -> i64 {
    let out = match run(c, con, sql) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if out.rows.is_empty() || out.cols.is_empty() {
        return 2;
    }
    let name = Bytes::copy_from_slice(xavp);
    for row in out.rows.iter().rev() {
        let mut rec = XavpList::default();
        for (col, v) in out.cols.iter().zip(row) {
            let v = match v {
                RawVal::Null | RawVal::Double(_) => Value::Null,
                RawVal::Int(i) | RawVal::BigInt(i) => Value::Int(*i),
                RawVal::Str(s) => Value::Str(Bytes::copy_from_slice(s)),
            };
            rec.push_back(Bytes::from(col.clone()), XVal::Val(v));
        }
        c.xavps.add(name.clone(), XVal::List(rec));
    }
    1
}

/// `sql_pvquery(con, query, "$pv;$pv...")`: columns into the listed pseudo-variables, last
/// row first (so plain variables end up with the first row, AVPs stack every row). A null
/// never deletes an AVP. 1, 2 no rows, -1.
fn pvquery(c: &mut Ctx, con: &[u8], sql: &[u8], list: &[u8]) -> i64 {
    let reg = vm::Host::pv_registry(c);
    let text = String::from_utf8_lossy(list).into_owned();
    let mut specs: Vec<(PvSpec, bool)> = Vec::new();
    let mut rest = text.as_str();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',', ';', '\n']);
        if rest.is_empty() {
            break;
        }
        match vm::pv::parse_spec_prefix(rest, reg) {
            Ok((spec, used)) if used > 0 => {
                let class = reg.class(spec.class);
                if class.is_none_or(|cl| cl.set.is_none()) {
                    crate::klog!(
                        L_ERR,
                        "sqlops",
                        "result variable [{}] is read-only",
                        specs.len() + 1
                    );
                    return -1;
                }
                let is_avp = class.is_some_and(|cl| cl.name == "avp");
                specs.push((spec, is_avp));
                rest = rest.get(used..).unwrap_or("");
            }
            _ => {
                crate::klog!(L_ERR, "sqlops", "invalid result parameter [{text}]");
                return -1;
            }
        }
    }
    if specs.is_empty() {
        crate::klog!(L_ERR, "sqlops", "invalid result parameter [{text}]");
        return -1;
    }
    let out = match run(c, con, sql) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if out.rows.is_empty() || out.cols.is_empty() {
        return 2;
    }
    for (i, row) in out.rows.iter().enumerate().rev() {
        for (j, v) in row.iter().enumerate() {
            let Some((spec, is_avp)) = specs.get(j) else {
                crate::klog!(L_ERR, "sqlops", "missing pv spec for column {}", j + 1);
                return -1;
            };
            let value = match v {
                RawVal::Null => Value::Null,
                RawVal::Double(_) => {
                    crate::klog!(
                        L_NOTICE,
                        "sqlops",
                        "unknown field type, setting value to null"
                    );
                    Value::Null
                }
                v => cell_value(v),
            };
            if value.is_null() && *is_avp {
                continue;
            }
            if let Err(e) = vm::pv::set(c, spec, &value) {
                crate::klog!(
                    L_ERR,
                    "sqlops",
                    "failed to set column {} (row {i}): {e}",
                    out.cols.get(j).map_or("", String::as_str)
                );
                return -1;
            }
        }
    }
    1
}

/// A cell of a container for the KEMI getters; `None` when out of range or missing.
fn cell(name: &[u8], row: i64, col: i64) -> Option<Value> {
    read_result(name, |r| {
        let row = usize::try_from(row).ok()?;
        let col = usize::try_from(col).ok()?;
        if col >= r.cols.len() {
            return None;
        }
        r.rows.get(row)?.get(col).cloned()
    })
    .flatten()
}

// ---------------------------------------------------------------- pseudo-variables

/// A row or column index in `$dbr(res=>[r,c])`: a number or a pseudo-variable.
enum Index {
    Num(i64),
    Pv(String, OnceLock<Option<vm::pv::Format>>),
}

impl Index {
    fn parse(tok: &str) -> Result<Index, String> {
        let tok = tok.trim();
        if tok.starts_with('$') {
            return Ok(Index::Pv(tok.to_string(), OnceLock::new()));
        }
        tok.parse()
            .map(Index::Num)
            .map_err(|_| format!("invalid index [{tok}]"))
    }

    fn eval(&self, c: &mut Ctx) -> Option<i64> {
        match self {
            Index::Num(n) => Some(*n),
            Index::Pv(text, fmt) => {
                let f = fmt
                    .get_or_init(|| vm::pv::parse_format(text, c.core.pvs).ok())
                    .as_ref()?;
                let v = vm::pv::format(c, f);
                std::str::from_utf8(&v).ok()?.trim().parse().ok()
            }
        }
    }
}

enum DbrKey {
    Rows,
    Cols,
    Cell(Index, Index),
    ColName(Index),
}

struct DbrName {
    res: Bytes,
    key: DbrKey,
}

fn parse_dbr_name(s: &str) -> Result<PvParam, String> {
    let (res, key) = s
        .split_once("=>")
        .ok_or_else(|| format!("invalid name [{s}] (expected result=>key)"))?;
    let res = res.trim();
    let key = key.trim();
    if res.is_empty() || key.is_empty() {
        return Err(format!("invalid name [{s}]"));
    }
    let key = if key == "rows" {
        DbrKey::Rows
    } else if key == "cols" {
        DbrKey::Cols
    } else if let Some(inner) = key.strip_prefix('[').and_then(|k| k.strip_suffix(']')) {
        let (r, c) = inner
            .split_once(',')
            .ok_or_else(|| format!("invalid index in [{s}]"))?;
        DbrKey::Cell(Index::parse(r)?, Index::parse(c)?)
    } else if let Some(inner) = key
        .strip_prefix("colname")
        .map(str::trim_start)
        .and_then(|k| k.strip_prefix('['))
        .and_then(|k| k.strip_suffix(']'))
    {
        DbrKey::ColName(Index::parse(inner)?)
    } else {
        return Err(format!("invalid key [{key}]"));
    };
    Ok(PvParam::Custom(Arc::new(DbrName {
        res: Bytes::copy_from_slice(res.as_bytes()),
        key,
    })))
}

fn pv_dbr(c: &mut Ctx, spec: &PvSpec) -> Value {
    let PvParam::Custom(p) = &spec.param else {
        return Value::Null;
    };
    let Some(n) = p.downcast_ref::<DbrName>() else {
        return Value::Null;
    };
    match &n.key {
        DbrKey::Rows => read_result(&n.res, |r| Value::Int(r.rows.len() as i64)),
        DbrKey::Cols => read_result(&n.res, |r| Value::Int(r.cols.len() as i64)),
        DbrKey::Cell(ri, ci) => {
            let (Some(row), Some(col)) = (ri.eval(c), ci.eval(c)) else {
                return Value::Null;
            };
            cell(&n.res, row, col)
        }
        DbrKey::ColName(ci) => {
            let Some(col) = ci.eval(c) else {
                return Value::Null;
            };
            read_result(&n.res, |r| {
                usize::try_from(col)
                    .ok()
                    .and_then(|i| r.cols.get(i))
                    .map(|name| Value::Str(name.clone()))
            })
            .flatten()
        }
    }
    .unwrap_or(Value::Null)
}

/// `$sqlrows(con)`: rows changed by the last statement on the connection.
fn pv_sqlrows(c: &mut Ctx, spec: &PvSpec) -> Value {
    let PvParam::Str(name) = &spec.param else {
        return Value::Null;
    };
    let Some(db) = c.core.m.sqlops.con(name).and_then(|con| con.db.clone()) else {
        crate::klog!(
            L_ERR,
            "sqlops",
            "invalid connection [{}]",
            String::from_utf8_lossy(name)
        );
        return Value::Null;
    };
    match crate::db::with(&db, |d| Ok(d.affected_rows())) {
        Ok(n) => Value::Int(n),
        Err(_) => Value::Null,
    }
}

// ---------------------------------------------------------------- registration

fn register(r: &mut Registrar<'_>) {
    r.pvs.add(PvClass {
        name: "dbr",
        get: pv_dbr,
        set: None,
        parse_name: Some(parse_dbr_name as fn(&str) -> Result<PvParam, String>),
        name_required: true,
        takes_index: false,
    });
    r.pvs.add(PvClass {
        name: "sqlrows",
        get: pv_sqlrows,
        set: None,
        parse_name: None,
        name_required: true,
        takes_index: false,
    });

    // Native functions: the query (and sql_xquery's XAVP name) arrive formatted.
    r.native("sql_query", &[S, S, S], RouteMask::ANY, |c, a| {
        let res = arg_bytes(a, 2);
        Value::Int(query(c, &arg_bytes(a, 0), &arg_bytes(a, 1), Some(&res)))
    });
    r.native("sql_query", &[S, S], RouteMask::ANY, |c, a| {
        Value::Int(query(c, &arg_bytes(a, 0), &arg_bytes(a, 1), None))
    });
    r.native("sql_xquery", &[S, S, S], RouteMask::ANY, |c, a| {
        Value::Int(xquery(
            c,
            &arg_bytes(a, 0),
            &arg_bytes(a, 1),
            &arg_bytes(a, 2),
        ))
    });
    r.native("sql_result_free", &[S], RouteMask::ANY, |_, a| {
        free(&arg_bytes(a, 0));
        Value::Int(1)
    });
    // sql_pvquery's list names pseudo-variables: it must not be formatted.
    r.kemi("sqlops", "sql_pvquery", &[S, S, S], RetType::Int, |c, a| {
        Value::Int(pvquery(
            c,
            &arg_bytes(a, 0),
            &arg_bytes(a, 1),
            &arg_bytes(a, 2),
        ))
    })
    .native("sql_pvquery", RouteMask::ANY)
    .hints(&[
        vm::ParamHint::Plain,
        vm::ParamHint::Plain,
        vm::ParamHint::PvList,
    ]);

    // KEMI: strings as given; Kamailio's return codes differ from the native ones.
    r.kemi("sqlops", "sql_query", &[S, S, S], RetType::Int, |c, a| {
        let res = arg_bytes(a, 2);
        let rc = query(c, &arg_bytes(a, 0), &arg_bytes(a, 1), Some(&res));
        Value::Int(if rc < 0 { -1 } else { 0 })
    });
    r.kemi("sqlops", "sql_xquery", &[S, S, S], RetType::Int, |c, a| {
        let rc = xquery(c, &arg_bytes(a, 0), &arg_bytes(a, 1), &arg_bytes(a, 2));
        Value::Int(if rc < 0 { -1 } else { 1 })
    });
    r.kemi("sqlops", "sql_result_free", &[S], RetType::Int, |_, a| {
        free(&arg_bytes(a, 0));
        Value::Int(1)
    });
    r.kemi("sqlops", "sql_num_rows", &[S], RetType::Int, |c, a| {
        let name = arg_bytes(a, 0);
        Value::Int(with_result(c, &name, |r| r.rows.len() as i64).unwrap_or(-1))
    });
    r.kemi("sqlops", "sql_num_columns", &[S], RetType::Int, |c, a| {
        let name = arg_bytes(a, 0);
        Value::Int(with_result(c, &name, |r| r.cols.len() as i64).unwrap_or(-1))
    });
    r.kemi("sqlops", "sql_is_null", &[S, I, I], RetType::Int, |c, a| {
        let name = arg_bytes(a, 0);
        let (i, j) = (arg_int(a, 1), arg_int(a, 2));
        let got = with_result(c, &name, |r| {
            let row = usize::try_from(i).ok().and_then(|i| r.rows.get(i))?;
            let j = usize::try_from(j).ok().filter(|j| *j < r.cols.len())?;
            row.get(j).map(Value::is_null)
        })
        .flatten();
        match got {
            Some(true) => Value::Int(1),
            Some(false) => Value::Int(0),
            None => {
                crate::klog!(L_ERR, "sqlops", "index out of bounds [{i},{j}]");
                Value::Int(-1)
            }
        }
    });
    r.kemi(
        "sqlops",
        "sql_result_get",
        &[S, I, I],
        RetType::Xval,
        |_, a| cell(&arg_bytes(a, 0), arg_int(a, 1), arg_int(a, 2)).unwrap_or(Value::Null),
    );
    r.kemi(
        "sqlops",
        "sql_result_gete",
        &[S, I, I],
        RetType::Xval,
        |_, a| match cell(&arg_bytes(a, 0), arg_int(a, 1), arg_int(a, 2)) {
            Some(v) if !v.is_null() => v,
            _ => Value::from(""),
        },
    );
    r.kemi(
        "sqlops",
        "sql_result_getz",
        &[S, I, I],
        RetType::Xval,
        |_, a| match cell(&arg_bytes(a, 0), arg_int(a, 1), arg_int(a, 2)) {
            Some(v) if !v.is_null() => v,
            _ => Value::Int(0),
        },
    );
}

/// Empties a container (it stays defined, as in Kamailio).
fn free(name: &[u8]) {
    RESULTS.with(|r| {
        if let Some(res) = r.borrow_mut().get_mut(name) {
            *res = SqlResult::default();
        }
    });
}
