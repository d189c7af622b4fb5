//! Which format strings Kamailio 5.6.3 accepts (it was started with `xlog("TEXT")` for each,
//! see `tests/oracle/pv_oracle.py check` and `syntax_cases.txt`) against ksr's
//! `pv::parse_format`, over a registry shaped like Kamailio's for the classes used.

use bytes::Bytes;
use std::sync::Arc;
use vm::pv::{self, Format, PvClass, PvParam, PvParser, PvRegistry, PvSpec, parse_dynamic_name};
use vm::value::Value;

/// Accepted by ksr although Kamailio 5.6.3 refuses them, or the reverse, and why.
const KNOWN: &[(&str, &str)] = &[
    (
        "$(hdr(Via)[+])",
        "the iterator index [+] is not supported by ksr",
    ),
    (
        "$(var(x){s.sha1})",
        "ksr implements transformations added after Kamailio 5.6",
    ),
    ("$(var(x){s.intv})", "after 5.6"),
    ("$(var(x){s.crc32})", "after 5.6"),
    ("$(var(x){s.sha3})", "after 5.6"),
    ("$(var(x){s.escape.crlf})", "after 5.6"),
    ("$(var(x){s.charat,1})", "after 5.6"),
    ("$(var(x){s.rmhdws})", "after 5.6"),
    ("$(var(x){s.selectsw,1})", "after 5.6"),
    ("$(var(x){val.n0})", "after 5.6"),
    ("$(var(x){num.fdigit})", "after 5.6"),
    ("$(var(x){uri.rmparam,a})", "after 5.6"),
];

struct Ctx;

impl vm::Host for Ctx {
    fn ksr_table(&self) -> &'static vm::ksr::KsrTable<Self> {
        unreachable!("not used by parsing")
    }
    fn pv_registry(&self) -> &'static PvRegistry<Self> {
        unreachable!("not used by parsing")
    }
}

fn get(_: &mut Ctx, _: &PvSpec) -> Value {
    Value::Null
}

fn plain(s: &str) -> Result<PvParam, String> {
    Ok(PvParam::Str(Bytes::copy_from_slice(s.as_bytes())))
}

fn dynamic(s: &str, p: &dyn PvParser) -> Result<PvParam, String> {
    parse_dynamic_name(s, p).map_err(|e| e.to_string())
}

fn sht(s: &str, p: &dyn PvParser) -> Result<PvParam, String> {
    let (t, k) = s.split_once("=>").ok_or("expected table=>key")?;
    let f: Format = p.parse_format(k).map_err(|e| e.to_string())?;
    Ok(PvParam::Custom(Arc::new((t.to_string(), f))))
}

fn registry() -> PvRegistry<Ctx> {
    let mut r = PvRegistry::new();
    for name in [
        "ru", "rU", "rd", "fu", "ci", "?", "rc", "retcode", "null", "si",
    ] {
        r.add(PvClass {
            name,
            get,
            set: None,
            parse_name: None,
            name_required: false,
            takes_index: false,
        });
    }
    // (name, takes an index, dynamic name parser)
    let named: [(&'static str, bool, Option<vm::pv::PvParseDynNameFn>); 5] = [
        ("var", false, None),
        ("avp", true, Some(dynamic)),
        ("hdr", true, Some(dynamic)),
        ("xavp", false, None),
        ("sht", false, Some(sht)),
    ];
    for (name, takes_index, dynp) in named {
        let id = r.add(PvClass {
            name,
            get,
            set: None,
            parse_name: Some(plain),
            name_required: true,
            takes_index,
        });
        if let Some(f) = dynp {
            r.set_dyn_name_parser(id, f);
        }
    }
    r
}

#[test]
fn format_syntax_matches_kamailio() {
    let data = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oracle/syntax.json"
    ))
    .expect("syntax.json");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&data).expect("json");
    assert!(rows.len() > 100);
    let reg = registry();
    let mut diffs = Vec::new();
    for r in &rows {
        let text = r["text"].as_str().unwrap_or("");
        let want = r["kamailio_accepts"].as_bool().unwrap_or(false);
        let got = pv::parse_format(text, &reg);
        let known = KNOWN.iter().any(|(t, _)| *t == text);
        if got.is_ok() == want {
            assert!(!known, "{text} is listed as a known difference but matches");
            continue;
        }
        if !known {
            diffs.push(format!(
                "{text:?}: kamailio {} ksr {}",
                if want { "accepts" } else { "refuses" },
                match &got {
                    Ok(_) => "accepts".to_string(),
                    Err(e) => format!("refuses ({e})"),
                }
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
