//! `ul.*` RPC commands, with the JSON shape Kamailio's jsonrpcs gives them.

use super::{Contact, Record, UsrlocState, aor_hash, now};
use crate::core::Core;
use crate::rpc::{RpcError, RpcRegistry};
use serde_json::{Value as Json, json};

pub fn register(r: &mut RpcRegistry) {
    r.add(
        "ul.dump",
        "Dump the location tables (\"brief\" for AoRs only).",
        dump,
    );
    r.add("ul.lookup", "Look up an AoR: table, AoR.", lookup);
    r.add("ul.rm", "Remove an AoR: table, AoR.", rm);
    r.add(
        "ul.flush",
        "Flush the write-back cache to the database.",
        flush,
    );
}

const NOT_SET: &str = "[not set]";

fn or_not_set(s: &str) -> &str {
    if s.is_empty() { NOT_SET } else { s }
}

pub fn contact_json(c: &Contact, t: i64) -> Json {
    let expires = if c.expires == 0 {
        json!("permanent")
    } else if c.expires <= t {
        json!("expired")
    } else {
        json!(c.expires - t)
    };
    let q = if c.q == super::Q_UNSPECIFIED {
        -0.001
    } else {
        c.q as f64 / 1000.0
    };
    json!({
        "Contact": {
            "Address": c.c,
            "Expires": expires,
            "Q": q,
            "Call-ID": c.callid,
            "CSeq": c.cseq,
            "User-Agent": or_not_set(&c.user_agent),
            "Received": or_not_set(&c.received),
            "Path": or_not_set(&c.path),
            "State": c.state.name(),
            "Flags": c.flags,
            "CFlags": c.cflags,
            "Socket": or_not_set(&c.sock),
            "Methods": c.methods,
            "Ruid": or_not_set(&c.ruid),
            "Instance": or_not_set(&c.instance),
            "Reg-Id": c.reg_id,
            "Server-Id": c.server_id,
            "Tcpconn-Id": c.tcpconn_id,
            "Keepalive": c.keepalive,
            "Last-Keepalive": 0,
            "KA-Roundtrip": 0,
            "Last-Modified": c.last_modified,
        }
    })
}

fn record_json(r: &Record, t: i64) -> Json {
    let contacts: Vec<Json> = r.contacts.iter().map(|c| contact_json(c, t)).collect();
    json!({
        "Info": {
            "AoR": r.aor,
            "HashID": aor_hash(&r.aor),
            "Contacts": contacts,
        }
    })
}

fn str_param(p: &[Json], i: usize) -> Option<&str> {
    p.get(i).and_then(Json::as_str)
}

fn state(core: &'static Core) -> &'static UsrlocState {
    &core.m.usrloc
}

fn dump(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let brief = str_param(p, 0) == Some("brief");
    let st = state(core);
    let t = now();
    let mut domains = Vec::new();
    for d in st.domains() {
        let recs = st.snapshot(&d);
        let aors: Vec<Json> = recs
            .iter()
            .map(|r| {
                if brief {
                    json!({ "AoR": r.aor })
                } else {
                    record_json(r, t)
                }
            })
            .collect();
        domains.push(json!({
            "Domain": {
                "Domain": d.name,
                "Size": 1u64 << st.hash_size,
                "AoRs": aors,
            }
        }));
    }
    Ok(json!({ "Domains": domains }))
}

fn table_and_aor(core: &'static Core, p: &[Json]) -> Result<(String, String), RpcError> {
    let (Some(table), Some(aor)) = (str_param(p, 0), str_param(p, 1)) else {
        return Err(RpcError::new(
            500,
            "Not enough parameters (table and AOR to lookup)",
        ));
    };
    if !state(core).domains().iter().any(|d| d.name == table) {
        return Err(RpcError::new(500, "Domain table not found"));
    }
    let st = state(core);
    if st.use_domain && !aor.contains('@') {
        return Err(RpcError::new(500, "Domain missing in AOR"));
    }
    Ok((table.to_string(), aor.to_string()))
}

fn lookup(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let (table, aor) = table_and_aor(core, p)?;
    let st = state(core);
    let d = st.domain(&table);
    let rec = st
        .get(&d, &aor)
        .map_err(|e| RpcError::new(500, e.to_string()))?;
    let t = now();
    let contacts: Vec<Json> = rec
        .iter()
        .flat_map(|r| r.contacts.iter())
        .filter(|c| c.valid(t))
        .map(|c| contact_json(c, t))
        .collect();
    if contacts.is_empty() {
        return Err(RpcError::new(404, "AOR not found in location table"));
    }
    Ok(json!({ "AoR": aor, "Contacts": contacts }))
}

fn rm(core: &'static Core, p: &[Json]) -> Result<Json, RpcError> {
    let (table, aor) = table_and_aor(core, p)?;
    let st = state(core);
    let d = st.domain(&table);
    st.update(&d, &aor, |r| r.contacts.clear())
        .map_err(|_| RpcError::new(500, "Failed to delete AOR"))?;
    Ok(Json::Null)
}

fn flush(core: &'static Core, _: &[Json]) -> Result<Json, RpcError> {
    state(core).timer(true);
    Ok(Json::Null)
}
