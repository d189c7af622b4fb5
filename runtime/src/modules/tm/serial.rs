//! Serial forking by q value (Kamailio's `t_load_contacts` / `t_next_contacts`): the
//! destination set (R-URI branch and the appended branches, e.g. from `lookup`) is moved into
//! the `contacts_avp` XAVP sorted by q, and each `t_next_contacts` takes the highest-q group
//! back as R-URI plus branches — one group per attempt, so a failure_route can try the next
//! group.
//!
//! The XAVP has Kamailio's layout (fields `uri`, `dst_uri`, `path`, `sock`, `flags`, `q_flag`,
//! `instance`, `ruid`, `ua`) and order: highest q first, and `q_flag` marking the last entry
//! of each q group.

use crate::ctx::{Branch, Ctx};
use crate::log::L_ERR;
use crate::modules::pv::xavp::{XVal, XavpList};
use bytes::Bytes;
use vm::Value;

/// One destination of the set.
#[derive(Clone, Debug)]
struct Contact {
    uri: Bytes,
    dst_uri: Option<Bytes>,
    path: Option<Bytes>,
    sock: Option<usize>,
    flags: u64,
    q: i32,
    instance: Option<Bytes>,
    ruid: Option<Bytes>,
    ua: Option<Bytes>,
}

fn names(c: &Ctx) -> Option<(Bytes, Option<Bytes>)> {
    let s = &c.core.m.tm.cfg;
    s.contacts_avp
        .clone()
        .map(|a| (a, s.contact_flows_avp.clone()))
}

/// `t_load_contacts()`: 1 when loaded or nothing to do, -1 on error.
pub fn load_contacts(c: &mut Ctx) -> i32 {
    let Some((avp, _)) = names(c) else {
        crate::klog!(
            L_ERR,
            "tm",
            "t_load_contacts: feature disabled - set the contacts_avp parameter"
        );
        return -1;
    };
    let ruri_new = c.msg.ruri_rewritten();
    if c.branches.is_empty() && !ruri_new {
        return 1;
    }
    if c.branches.is_empty() {
        // Only the R-URI: nothing to order.
        return 1;
    }
    let mut set = Vec::with_capacity(c.branches.len() + 1);
    if ruri_new {
        let Some(uri) = c.msg.ruri().cloned() else {
            crate::klog!(L_ERR, "tm", "t_load_contacts: no Request-URI");
            return -1;
        };
        set.push(Contact {
            uri,
            dst_uri: c.dst_uri.clone(),
            path: c.path_vec.clone(),
            sock: c.force_socket,
            flags: c.bflags,
            q: c.ruri_q,
            instance: None,
            ruid: None,
            ua: None,
        });
    }
    for b in &c.branches {
        set.push(Contact {
            uri: b.uri.clone(),
            dst_uri: b.dst_uri.clone(),
            path: b.path.clone(),
            sock: b.force_socket,
            flags: b.flags,
            q: b.q,
            instance: b.instance.clone(),
            ruid: b.ruid.clone(),
            ua: b.location_ua.clone(),
        });
    }
    // Increasing q, stable: the last of a group of equal q becomes the R-URI of its attempt.
    set.sort_by_key(|x| x.q);
    let mut flags = vec![0i64; set.len()];
    for i in 1..set.len() {
        if set[i - 1].q < set[i].q {
            flags[i] = 1;
        }
    }
    for (ct, q_flag) in set.iter().zip(flags) {
        let mut rec = XavpList::default();
        let mut put = |name: &'static str, v: Value| {
            rec.add(Bytes::from_static(name.as_bytes()), XVal::Val(v));
        };
        put("uri", Value::Str(ct.uri.clone()));
        if let Some(d) = &ct.dst_uri {
            put("dst_uri", Value::Str(d.clone()));
        }
        if let Some(p) = &ct.path {
            put("path", Value::Str(p.clone()));
        }
        if let Some(l) = ct.sock.and_then(|i| c.core.listeners.get(i)) {
            put("sock", Value::Str(Bytes::from(l.sock_str())));
        }
        put("flags", Value::Int(ct.flags as i64));
        put("q_flag", Value::Int(q_flag));
        if let Some(v) = &ct.instance {
            put("instance", Value::Str(v.clone()));
        }
        if let Some(v) = &ct.ruid {
            put("ruid", Value::Str(v.clone()));
        }
        if let Some(v) = &ct.ua {
            put("ua", Value::Str(v.clone()));
        }
        c.xavps.add(avp.clone(), XVal::List(rec));
    }
    c.branches.clear();
    1
}

fn field(rec: &XavpList, name: &str) -> Option<Value> {
    match rec.get(name.as_bytes(), 0) {
        Some(XVal::Val(v)) => Some(v.clone()),
        _ => None,
    }
}

fn bytes_field(rec: &XavpList, name: &str) -> Option<Bytes> {
    match field(rec, name)? {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

fn contact_of(c: &Ctx, rec: &XavpList) -> Option<Contact> {
    let sock = match bytes_field(rec, "sock") {
        Some(s) => Some(crate::modules::core::find_socket(
            c.core,
            &String::from_utf8_lossy(&s),
        )?),
        None => None,
    };
    Some(Contact {
        uri: bytes_field(rec, "uri")?,
        dst_uri: bytes_field(rec, "dst_uri"),
        path: bytes_field(rec, "path"),
        sock,
        flags: field(rec, "flags").and_then(|v| v.as_int()).unwrap_or(0) as u64,
        q: -1,
        instance: bytes_field(rec, "instance"),
        ruid: bytes_field(rec, "ruid"),
        ua: bytes_field(rec, "ua"),
    })
}

/// `t_next_contacts()`: 1 when a group was loaded, -2 when there is none left, -1 on error.
pub fn next_contacts(c: &mut Ctx) -> i32 {
    let Some((avp, flows)) = names(c) else {
        crate::klog!(
            L_ERR,
            "tm",
            "t_next_contacts: feature disabled - set the contacts_avp parameter"
        );
        return -1;
    };
    // The highest-q group: entries up to and including the first with q_flag set.
    let mut group = Vec::new();
    loop {
        let Some(XVal::List(rec)) = c.xavps.get(&avp, 0).cloned() else {
            break;
        };
        c.xavps.remove(&avp, Some(0));
        let last = field(&rec, "q_flag").and_then(|v| v.as_int()).unwrap_or(0) != 0;
        match contact_of(c, &rec) {
            Some(ct) => group.push(ct),
            None => {
                crate::klog!(L_ERR, "tm", "t_next_contacts: bad contacts_avp entry");
                return -1;
            }
        }
        if last {
            break;
        }
    }
    let Some((first, rest)) = group.split_first() else {
        return -2;
    };
    c.msg.set_ruri(first.uri.clone());
    c.dst_uri = first.dst_uri.clone();
    c.path_vec = first.path.clone();
    c.force_socket = first.sock;
    c.bflags = first.flags;
    // One branch per +sip.instance; the others wait in contact_flows_avp.
    let mut seen: Vec<Bytes> = first.instance.iter().cloned().collect();
    if let Some(f) = &flows {
        while c.xavps.get(f, 0).is_some() {
            c.xavps.remove(f, Some(0));
        }
    }
    for ct in rest {
        if let Some(i) = &ct.instance {
            if seen.contains(i) {
                if let Some(f) = &flows {
                    let mut rec = XavpList::default();
                    rec.add(
                        Bytes::from_static(b"uri"),
                        XVal::Val(Value::Str(ct.uri.clone())),
                    );
                    rec.add(
                        Bytes::from_static(b"instance"),
                        XVal::Val(Value::Str(i.clone())),
                    );
                    c.xavps.push_back(f.clone(), XVal::List(rec));
                }
                continue;
            }
            seen.push(i.clone());
        }
        c.branches.push(Branch {
            uri: ct.uri.clone(),
            dst_uri: ct.dst_uri.clone(),
            path: ct.path.clone(),
            q: -1,
            flags: ct.flags,
            force_socket: ct.sock,
            instance: ct.instance.clone(),
            ruid: ct.ruid.clone(),
            location_ua: ct.ua.clone(),
        });
    }
    1
}
