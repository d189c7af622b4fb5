//! Kamailio's `acc` module: accounting of requests and transactions to the log and to the
//! database (`acc` and `missed_calls` tables), with `log_extra`/`db_extra` pseudo-variables.
//!
//! `acc_log_request`/`acc_db_request`/`acc_request` account the current request at once.
//! Transactions are accounted through the transaction layer, which calls
//! [`on_response_out`] when a final reply goes upstream and [`on_failure`] before a
//! failure route runs, with the transaction's request in the context: as in Kamailio, an
//! answered transaction is accounted when the acc flag is set, a failed one only with the
//! failed-transaction flag, and a failed INVITE is reported once as a missed call when the
//! missed-call flag is set (the flag is then cleared, so a serial-forking failure route
//! does not report it again).

use super::core::actions::arg_bytes;
use super::{InitCtx, ModuleDef, ParamDef, Registrar};
use crate::ctx::Ctx;
use crate::db::{self, DbHandle, DbVal};
use crate::log::L_ERR;
use bytes::Bytes;
use std::cell::RefCell;
use vm::RouteMask;
use vm::Value;
use vm::ksr::{ParamType::Str as S, RetType};
use vm::pv::PvSpec;

pub static MODULE: ModuleDef = ModuleDef {
    name: "acc",
    params: &[
        ParamDef::int("early_media"),
        ParamDef::int("failed_transaction_flag"),
        ParamDef::str("failed_filter"),
        ParamDef::int("report_ack"),
        ParamDef::int("report_cancels"),
        ParamDef::int("detect_direction"),
        ParamDef::int("acc_prepare_flag"),
        ParamDef::int("acc_prepare_always"),
        ParamDef::int("acc_extra_nullable"),
        ParamDef::str("multi_leg_info"),
        ParamDef::int("log_flag"),
        ParamDef::int("log_missed_flag"),
        ParamDef::int("log_level"),
        ParamDef::str("log_facility"),
        ParamDef::str("log_extra"),
        ParamDef::int("db_flag"),
        ParamDef::int("db_missed_flag"),
        ParamDef::str("db_table_acc"),
        ParamDef::str("db_table_missed_calls"),
        ParamDef::str("db_url"),
        ParamDef::str("acc_method_column"),
        ParamDef::str("acc_from_tag_column"),
        ParamDef::str("acc_to_tag_column"),
        ParamDef::str("acc_callid_column"),
        ParamDef::str("acc_sip_code_column"),
        ParamDef::str("acc_sip_reason_column"),
        ParamDef::str("acc_time_column"),
        ParamDef::str("db_extra"),
        ParamDef::int("db_insert_mode"),
        ParamDef::int("cdr_enable"),
        ParamDef::int("time_mode"),
        ParamDef::int("reason_from_hf"),
        ParamDef::int("clone_msg"),
        ParamDef::int("acc_extra_size"),
        ParamDef::int("cdr_extra_size"),
    ],
    register,
    init: Some(init),
    notice: None,
};

/// The module's settings, read at start-up.
#[derive(Default)]
pub struct AccState {
    on: bool,
    log_flag: Option<u32>,
    log_missed_flag: Option<u32>,
    failed_flag: Option<u32>,
    db_flag: Option<u32>,
    db_missed_flag: Option<u32>,
    failed_filter: Vec<u16>,
    early_media: bool,
    report_cancels: bool,
    log_level: i32,
    /// `log_extra` / `db_extra` as (name, pseudo-variable text); parsed per worker.
    log_extra: Vec<(String, String)>,
    db_extra: Vec<(String, String)>,
    db: Option<DbHandle>,
    table_acc: String,
    table_missed: String,
    /// method, from_tag, to_tag, callid, sip_code, sip_reason, time.
    columns: [String; 7],
}

fn flag(p: &super::ModParams, name: &str) -> Result<Option<u32>, String> {
    match p.int(name, -1) {
        -1 => Ok(None),
        f @ 0..=31 => Ok(Some(f as u32)),
        f => Err(format!("{name}: flag {f} out of range (0..31)")),
    }
}

/// Splits `name=$pv;name2=$pv2` (semicolons inside parentheses or braces belong to the
/// pseudo-variable).
pub fn parse_extra(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut push = |part: &str| -> Result<(), String> {
        let part = part.trim();
        if part.is_empty() {
            return Ok(());
        }
        let (name, pv) = part
            .split_once('=')
            .ok_or_else(|| format!("extra '{part}' is not name=$pv"))?;
        let (name, pv) = (name.trim(), pv.trim());
        if name.is_empty() || !pv.starts_with('$') {
            return Err(format!("extra '{part}' is not name=$pv"));
        }
        out.push((name.to_string(), pv.to_string()));
        Ok(())
    };
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => depth -= 1,
            b';' if depth <= 0 => {
                push(text.get(start..i).unwrap_or_default())?;
                start = i + 1;
            }
            _ => {}
        }
    }
    push(text.get(start..).unwrap_or_default())?;
    Ok(out)
}

fn init(i: &mut InitCtx<'_>) -> Result<(), String> {
    let p = i.params;
    for (name, ok) in [
        ("report_ack", 0),
        ("detect_direction", 0),
        ("cdr_enable", 0),
        ("time_mode", 0),
        ("reason_from_hf", 0),
    ] {
        if p.int(name, 0) != ok {
            return Err(format!(
                "parameter {name} other than {ok} is not supported yet"
            ));
        }
    }
    if p.get("multi_leg_info").is_some() {
        return Err("parameter multi_leg_info is not supported yet".into());
    }
    let mut s = AccState {
        on: true,
        log_flag: flag(p, "log_flag")?,
        log_missed_flag: flag(p, "log_missed_flag")?,
        failed_flag: flag(p, "failed_transaction_flag")?,
        db_flag: flag(p, "db_flag")?,
        db_missed_flag: flag(p, "db_missed_flag")?,
        failed_filter: Vec::new(),
        early_media: p.int("early_media", 0) != 0,
        report_cancels: p.int("report_cancels", 0) != 0,
        log_level: p.int("log_level", 1) as i32,
        log_extra: parse_extra(&p.str_or("log_extra", ""))?,
        db_extra: parse_extra(&p.str_or("db_extra", ""))?,
        db: None,
        table_acc: p.str_or("db_table_acc", "acc"),
        table_missed: p.str_or("db_table_missed_calls", "missed_calls"),
        columns: [
            p.str_or("acc_method_column", "method"),
            p.str_or("acc_from_tag_column", "from_tag"),
            p.str_or("acc_to_tag_column", "to_tag"),
            p.str_or("acc_callid_column", "callid"),
            p.str_or("acc_sip_code_column", "sip_code"),
            p.str_or("acc_sip_reason_column", "sip_reason"),
            p.str_or("acc_time_column", "time"),
        ],
    };
    for c in p.str_or("failed_filter", "").split(',') {
        let c = c.trim();
        if !c.is_empty() {
            s.failed_filter.push(
                c.parse()
                    .map_err(|_| format!("failed_filter: bad code '{c}'"))?,
            );
        }
    }
    for (_, pv) in s.log_extra.iter().chain(&s.db_extra) {
        vm::pv::parse_spec(pv, i.pvs).map_err(|e| format!("extra {pv}: {e}"))?;
    }
    if let Some(url) = p.str("db_url") {
        let h = db::open(&url, i.workdir).map_err(|e| e.to_string())?;
        let extra: Vec<&str> = s.db_extra.iter().map(|(n, _)| n.as_str()).collect();
        db::with(&h, |d| {
            d.ensure_table(&s.table_acc, &extra)?;
            d.ensure_table(&s.table_missed, &extra)
        })
        .map_err(|e| e.to_string())?;
        s.db = Some(h);
    }
    i.states.acc = s;
    Ok(())
}

fn register(r: &mut Registrar<'_>) {
    r.kemi("acc", "acc_log_request", &[S], RetType::Int, |c, a| {
        Value::Int(request(c, &arg_bytes(a, 0), None, true, false))
    })
    .native("acc_log_request", RouteMask::ANY);
    r.kemi("acc", "acc_db_request", &[S, S], RetType::Int, |c, a| {
        let table = arg_bytes(a, 1);
        Value::Int(request(c, &arg_bytes(a, 0), Some(&table), false, true))
    })
    .native("acc_db_request", RouteMask::ANY);
    r.kemi("acc", "acc_request", &[S, S], RetType::Int, |c, a| {
        let table = arg_bytes(a, 1);
        Value::Int(request(c, &arg_bytes(a, 0), Some(&table), true, true))
    })
    .native("acc_request", RouteMask::ANY);
}

// ---------------------------------------------------------------- records

/// What is reported besides the request's own fields.
struct Env<'a> {
    /// `ACC: request accounted: ` and friends.
    text: &'a str,
    code: Option<u16>,
    reason: &'a [u8],
    /// To tag of the reply (the request's own when it has one).
    to_tag: Option<&'a [u8]>,
}

/// Splits an accounting comment: `"403 Forbidden"` is code 403 and reason "Forbidden";
/// text without a leading code is all reason.
fn parse_comment(c: &[u8]) -> (Option<u16>, &[u8]) {
    match c {
        [a, b, d, rest @ ..] if a.is_ascii_digit() && b.is_ascii_digit() && d.is_ascii_digit() => {
            let code = (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (d - b'0') as u16;
            let start = rest
                .iter()
                .position(|x| !x.is_ascii_whitespace())
                .unwrap_or(rest.len());
            (Some(code), rest.get(start..).unwrap_or_default())
        }
        _ => (None, c),
    }
}

fn request(c: &mut Ctx, comment: &[u8], table: Option<&[u8]>, log: bool, to_db: bool) -> i64 {
    if !c.msg.is_request() {
        crate::klog!(L_ERR, "acc", "accounting needs a request");
        return -1;
    }
    let (code, reason) = parse_comment(comment);
    let env = Env {
        text: "ACC: request accounted: ",
        code,
        reason,
        to_tag: None,
    };
    let mut ok = true;
    if log {
        log_record(c, &env);
    }
    if to_db {
        let table = String::from_utf8_lossy(table.unwrap_or(b"acc")).into_owned();
        ok = db_record(c, &env, &table);
    }
    if ok { 1 } else { -1 }
}

/// Extra fields with their parsed pseudo-variables.
type Extras = Vec<(String, PvSpec)>;

thread_local! {
    /// This worker's parsed `log_extra` and `db_extra`.
    static EXTRAS: RefCell<Option<(Extras, Extras)>> = const { RefCell::new(None) };
}

/// The values of `log_extra` (db = false) or `db_extra` (db = true) for the current message.
fn extras(c: &mut Ctx, db: bool) -> Vec<(String, Value)> {
    let s = &c.core.m.acc;
    let specs = EXTRAS.with(|e| {
        let mut e = e.borrow_mut();
        if e.is_none() {
            let parse = |list: &[(String, String)]| {
                list.iter()
                    .filter_map(|(n, pv)| {
                        vm::pv::parse_spec(pv, c.core.pvs)
                            .ok()
                            .map(|spec| (n.clone(), spec))
                    })
                    .collect::<Vec<_>>()
            };
            *e = Some((parse(&s.log_extra), parse(&s.db_extra)));
        }
        e.as_ref()
            .map(|(l, d)| if db { d.clone() } else { l.clone() })
            .unwrap_or_default()
    });
    specs
        .into_iter()
        .map(|(n, spec)| (n, vm::pv::get(c, &spec)))
        .collect()
}

/// The request's core fields: method (from CSeq), from tag, to tag, Call-ID.
fn core_fields(c: &Ctx, env: &Env<'_>) -> (Bytes, Option<Bytes>, Option<Bytes>, Option<Bytes>) {
    let method = c
        .msg
        .cseq()
        .map(|x| x.method.clone())
        .unwrap_or_else(|_| Bytes::new());
    let from_tag = c.msg.from().ok().and_then(|f| f.tag().cloned());
    let to_tag = c
        .msg
        .to()
        .ok()
        .and_then(|t| t.tag().cloned())
        .or_else(|| env.to_tag.map(Bytes::copy_from_slice));
    let callid = c.msg.callid().cloned();
    (method, from_tag, to_tag, callid)
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn log_record(c: &mut Ctx, env: &Env<'_>) {
    let level = c.core.m.acc.log_level;
    if !crate::log::enabled(level) {
        return;
    }
    let (method, from_tag, to_tag, callid) = core_fields(c, env);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut line = format!(
        "{}timestamp={now};method={};from_tag={};to_tag={};call_id={};code={};reason={}",
        env.text,
        text(&method),
        text(from_tag.as_deref().unwrap_or_default()),
        text(to_tag.as_deref().unwrap_or_default()),
        text(callid.as_deref().unwrap_or_default()),
        env.code.map(|x| x.to_string()).unwrap_or_default(),
        text(env.reason),
    );
    for (name, v) in extras(c, false) {
        line.push(';');
        line.push_str(&name);
        line.push('=');
        if let Value::Str(s) = &v {
            line.push_str(&text(s));
        } else if let Value::Int(i) = v {
            line.push_str(&i.to_string());
        }
    }
    crate::log::emit(level, "acc", &line);
}

fn db_record(c: &mut Ctx, env: &Env<'_>, table: &str) -> bool {
    let Some(h) = c.core.m.acc.db.clone() else {
        crate::klog!(
            L_ERR,
            "acc",
            "no db_url set: cannot account to the database"
        );
        return false;
    };
    let (method, from_tag, to_tag, callid) = core_fields(c, env);
    let s = &c.core.m.acc;
    let mut cols: Vec<String> = s.columns.to_vec();
    let opt = |b: Option<Bytes>| b.map_or(DbVal::Null, |b| DbVal::Str(text(&b).into_owned()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut vals = vec![
        DbVal::Str(text(&method).into_owned()),
        opt(from_tag),
        opt(to_tag),
        opt(callid),
        env.code.map_or(DbVal::Int(0), |x| DbVal::Int(x as i64)),
        DbVal::Str(text(env.reason).into_owned()),
        db::time_value(now),
    ];
    for (name, v) in extras(c, true) {
        cols.push(name);
        vals.push(match v {
            Value::Str(s) => DbVal::Str(text(&s).into_owned()),
            Value::Int(i) => DbVal::Int(i),
            // Kamailio 5.6 stores NULL for an unset value whatever acc_extra_nullable says.
            Value::Null => DbVal::Null,
        });
    }
    let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    match db::with(&h, |d| d.insert(table, &col_refs, &vals)) {
        Ok(()) => true,
        Err(e) => {
            crate::klog!(
                L_ERR,
                "acc",
                "failed to insert into database table {table}: {e}"
            );
            false
        }
    }
}

// ---------------------------------------------------------------- transactions

/// A final reply of a transaction, as the transaction layer reports it.
pub struct ReplyInfo<'a> {
    pub code: u16,
    pub reason: &'a [u8],
    /// To tag of the reply (or of the locally generated one).
    pub to_tag: Option<&'a [u8]>,
    /// R-URI of the branch the reply belongs to: reported as the request's R-URI.
    pub branch_uri: Option<&'a Bytes>,
    /// The reply carries a body (for `early_media`).
    pub has_body: bool,
}

fn flag_set(c: &Ctx, f: Option<u32>) -> bool {
    f.is_some_and(|f| c.flags & (1u64 << f) != 0)
}

fn skip_cancel(c: &Ctx) -> bool {
    c.msg.method() == crate::sip::Method::Cancel && !c.core.m.acc.report_cancels
}

/// Runs `f` with the R-URI of the reply's branch in place.
fn with_branch_uri(c: &mut Ctx, r: &ReplyInfo<'_>, f: impl FnOnce(&mut Ctx)) {
    let Some(uri) = r.branch_uri else {
        f(c);
        return;
    };
    let saved = c
        .msg
        .ruri_rewritten()
        .then(|| c.msg.ruri().cloned())
        .flatten();
    c.msg.set_ruri(uri.clone());
    f(c);
    match saved {
        Some(u) => c.msg.set_ruri(u),
        None => c.msg.reset_ruri(),
    }
}

/// A failed INVITE is about to run its failure route (Kamailio's TMCB_ON_FAILURE): report
/// the missed call once.
pub fn on_failure(c: &mut Ctx, r: &ReplyInfo<'_>) {
    if !c.core.m.acc.on || c.msg.method() != crate::sip::Method::Invite || skip_cancel(c) {
        return;
    }
    missed(c, r);
}

fn missed(c: &mut Ctx, r: &ReplyInfo<'_>) {
    let s = &c.core.m.acc;
    let (log_f, db_f) = (s.log_missed_flag, s.db_missed_flag);
    let (do_log, do_db) = (flag_set(c, log_f), flag_set(c, db_f));
    if !do_log && !do_db {
        return;
    }
    let table = s.table_missed.clone();
    let reason = reply_reason(r);
    with_branch_uri(c, r, |c| {
        let env = Env {
            text: "ACC: call missed: ",
            code: Some(r.code),
            reason: &reason,
            to_tag: r.to_tag,
        };
        if do_log {
            log_record(c, &env);
        }
        if do_db {
            db_record(c, &env, &table);
        }
    });
    // Reported on the first failure only.
    for f in [log_f, db_f].into_iter().flatten() {
        if flag_set(c, Some(f)) {
            c.flags &= !(1u64 << f);
        }
    }
}

/// The reason to report: the reply's (`reason_from_hf` is refused at start-up).
fn reply_reason(r: &ReplyInfo<'_>) -> Vec<u8> {
    r.reason.to_vec()
}

/// A final (or, with `early_media`, a provisional with body) reply went upstream
/// (Kamailio's TMCB_RESPONSE_OUT).
pub fn on_response_out(c: &mut Ctx, r: &ReplyInfo<'_>) {
    let s = &c.core.m.acc;
    if !s.on || skip_cancel(c) {
        return;
    }
    if c.msg.method() == crate::sip::Method::Invite && r.code >= 300 {
        missed(c, r);
    }
    let s = &c.core.m.acc;
    let account = if r.code >= 300 {
        flag_set(c, s.failed_flag) && !s.failed_filter.contains(&r.code)
    } else {
        (flag_set(c, s.log_flag) || flag_set(c, s.db_flag))
            && (r.code >= 200 || (s.early_media && r.has_body))
    };
    if !account {
        return;
    }
    let (do_log, do_db) = (flag_set(c, s.log_flag), flag_set(c, s.db_flag));
    let table = s.table_acc.clone();
    let reason = reply_reason(r);
    with_branch_uri(c, r, |c| {
        let env = Env {
            text: "ACC: transaction answered: ",
            code: Some(r.code),
            reason: &reason,
            to_tag: r.to_tag,
        };
        if do_log {
            log_record(c, &env);
        }
        if do_db {
            db_record(c, &env, &table);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_extras() {
        assert_eq!(
            parse_comment(b"403 Forbidden Stuff"),
            (Some(403), &b"Forbidden Stuff"[..])
        );
        assert_eq!(parse_comment(b"some comment"), (None, &b"some comment"[..]));
        assert_eq!(parse_comment(b"40"), (None, &b"40"[..]));
        assert_eq!(
            parse_extra("src_user=$fU;src_ip=$si; ua=$hdr(User-Agent)").unwrap(),
            vec![
                ("src_user".into(), "$fU".into()),
                ("src_ip".into(), "$si".into()),
                ("ua".into(), "$hdr(User-Agent)".into())
            ]
        );
        assert!(parse_extra("x").is_err());
        assert!(parse_extra("").unwrap().is_empty());
    }
}
