//! The `trusted` table: source IP, transport, From and R-URI patterns (POSIX basic regular
//! expressions, as Kamailio compiles them) and a tag; `allow_trusted`. With `db_mode=1` the
//! table is cached (highest priority first); with `db_mode=0` it is queried for every call
//! (rows by ascending priority, as Kamailio's query orders them).

use crate::ctx::Ctx;
use crate::db::{self, Cond, DbHandle, DbVal};
use crate::log::L_ERR;
use crate::transport::Proto;
use bytes::Bytes;
use vm::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct TrustedEntry {
    pub src_ip: String,
    /// The proto column as written (`any`, `udp`, ...).
    pub proto: String,
    pub from_pattern: Option<String>,
    pub ruri_pattern: Option<String>,
    pub tag: Option<String>,
    pub priority: i64,
}

#[derive(Clone, Debug)]
pub struct TrustedCols {
    pub table: String,
    pub source: String,
    pub proto: String,
    pub from: String,
    pub ruri: String,
    pub tag: String,
    pub priority: String,
}

impl Default for TrustedCols {
    fn default() -> Self {
        TrustedCols {
            table: "trusted".into(),
            source: "src_ip".into(),
            proto: "proto".into(),
            from: "from_pattern".into(),
            ruri: "ruri_pattern".into(),
            tag: "tag".into(),
            priority: "priority".into(),
        }
    }
}

fn opt_text(v: &DbVal) -> Option<String> {
    match v {
        DbVal::Null => None,
        other => Some(other.to_text()),
    }
}

/// Rows for `src_ip` (all rows when `None`), in the table's order or by ascending priority.
pub fn query(
    h: &DbHandle,
    cols: &TrustedCols,
    src_ip: Option<&str>,
) -> Result<Vec<TrustedEntry>, db::DbError> {
    let conds: Vec<Cond<'_>> = match src_ip {
        Some(ip) => vec![Cond::eq(&cols.source, DbVal::Str(ip.to_string()))],
        None => Vec::new(),
    };
    let rows = db::with(h, |d| {
        if cols.table == "trusted" {
            d.ensure_table("trusted", &[])?;
        }
        d.select(
            &cols.table,
            &[
                &cols.source,
                &cols.proto,
                &cols.from,
                &cols.ruri,
                &cols.tag,
                &cols.priority,
            ],
            &conds,
            src_ip.map(|_| cols.priority.as_str()),
        )
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let [ip, proto, from, ruri, tag, prio] = &r[..] else {
                return None;
            };
            Some(TrustedEntry {
                src_ip: opt_text(ip)?,
                proto: opt_text(proto)?,
                from_pattern: opt_text(from),
                ruri_pattern: opt_text(ruri),
                tag: opt_text(tag),
                priority: prio.as_int().unwrap_or(0),
            })
        })
        .collect())
}

/// The cached form: `none` rows dropped, unknown protocols refused, highest priority first
/// (equal priorities keep the table order).
pub fn cache(mut rows: Vec<TrustedEntry>) -> Result<Vec<TrustedEntry>, String> {
    rows.retain(|e| !e.proto.eq_ignore_ascii_case("none"));
    for e in &rows {
        if !e.proto.eq_ignore_ascii_case("any") && Proto::parse(&e.proto).is_none() {
            return Err(format!(
                "unknown protocol '{}' in the trusted table",
                e.proto
            ));
        }
    }
    rows.sort_by_key(|e| std::cmp::Reverse(e.priority));
    Ok(rows)
}

/// POSIX basic regular expression search, as Kamailio's `regcomp(REG_NOSUB)`/`regexec`.
/// `None` when the pattern does not compile.
pub fn posix_bre_match(pattern: &str, subject: &str) -> Option<bool> {
    let p = std::ffi::CString::new(pattern).ok()?;
    let s = std::ffi::CString::new(subject).ok()?;
    // SAFETY: regex_t is plain data initialised by regcomp; it is freed exactly once below,
    // and only after a successful regcomp.
    unsafe {
        let mut re: libc::regex_t = std::mem::zeroed();
        if libc::regcomp(&mut re, p.as_ptr(), libc::REG_NOSUB) != 0 {
            return None;
        }
        let r = libc::regexec(&re, s.as_ptr(), 0, std::ptr::null_mut(), 0);
        libc::regfree(&mut re);
        Some(r == 0)
    }
}

/// Kamailio's allow_trusted: the number of matching rows (1 unless `peer_tag_mode`), -1 for
/// none. `proto` is `None` for "any".
pub fn allow(c: &mut Ctx, src_ip: &str, proto: Option<Proto>, from_uri: &str) -> i64 {
    let st = &c.core.m.permissions;
    let cached = st.trusted_cached;
    let rows: Vec<TrustedEntry> = if cached {
        match st.trusted.read() {
            Ok(g) => g.iter().filter(|e| e.src_ip == src_ip).cloned().collect(),
            Err(_) => return -1,
        }
    } else {
        let Some(h) = st.db.as_ref() else {
            crate::klog!(L_ERR, "permissions", "no connection to database");
            return -1;
        };
        match query(h, &st.trusted_cols, Some(src_ip)) {
            Ok(r) => r,
            Err(e) => {
                crate::klog!(L_ERR, "permissions", "failed to query database: {e}");
                return -1;
            }
        }
    };
    if !st.trusted_loaded {
        crate::klog!(
            L_ERR,
            "permissions",
            "the trusted table is not loaded (load_backends)"
        );
        return -1;
    }
    let ruri = c.msg.ruri_orig().cloned().unwrap_or_default();
    let ruri = String::from_utf8_lossy(&ruri).into_owned();
    let tag_avp = st.tag_avp.clone();
    let all = st.tag_mode_all;
    let mut count = 0;
    for e in rows {
        let proto_ok = match proto {
            None => true,
            Some(p) => {
                e.proto.eq_ignore_ascii_case("any") || e.proto.eq_ignore_ascii_case(p.as_str())
            }
        };
        if !proto_ok {
            continue;
        }
        if let Some(pat) = &e.from_pattern {
            match posix_bre_match(pat, from_uri) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    crate::klog!(L_ERR, "permissions", "invalid regular expression");
                    continue;
                }
            }
        }
        if let Some(pat) = &e.ruri_pattern {
            match posix_bre_match(pat, &ruri) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    crate::klog!(L_ERR, "permissions", "invalid regular expression");
                    continue;
                }
            }
        }
        if let (Some(name), Some(t)) = (&tag_avp, &e.tag) {
            c.avps
                .insert(0, (name.clone(), Value::Str(Bytes::from(t.clone()))));
        }
        if !all {
            return 1;
        }
        count += 1;
    }
    if count == 0 { -1 } else { count }
}

/// The protocol argument of `allow_trusted(ip, proto)`: `Some(None)` for `any`, `None` for
/// an unknown one.
pub fn proto_arg(p: &[u8]) -> Option<Option<Proto>> {
    let s = std::str::from_utf8(p).ok()?;
    if s.eq_ignore_ascii_case("any") {
        return Some(None);
    }
    Proto::parse(s).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_regexes() {
        assert_eq!(
            posix_bre_match("^sip:.*@example\\.com$", "sip:a@example.com"),
            Some(true)
        );
        // In a basic expression '+' is a literal.
        assert_eq!(posix_bre_match("a+", "aa"), Some(false));
        assert_eq!(posix_bre_match("a+", "a+"), Some(true));
        assert_eq!(posix_bre_match("a\\{2\\}", "xaay"), Some(true));
        assert_eq!(posix_bre_match("\\(", "x"), None);
    }

    #[test]
    fn cache_order_and_protocols() {
        let e = |ip: &str, proto: &str, prio: i64| TrustedEntry {
            src_ip: ip.into(),
            proto: proto.into(),
            from_pattern: None,
            ruri_pattern: None,
            tag: Some(format!("{ip}-{prio}")),
            priority: prio,
        };
        let c = cache(vec![
            e("a", "udp", 1),
            e("a", "any", 5),
            e("b", "none", 9),
            e("a", "TCP", 1),
        ])
        .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].priority, 5);
        assert_eq!(c[1].proto, "udp");
        assert!(cache(vec![e("a", "xyz", 0)]).is_err());
        assert_eq!(proto_arg(b"ANY"), Some(None));
        assert_eq!(proto_arg(b"tls"), Some(Some(Proto::Tls)));
        assert!(proto_arg(b"x").is_none());
    }
}
