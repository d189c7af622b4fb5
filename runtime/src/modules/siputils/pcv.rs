//! siputils' P-Charging-Vector handling (RFC 7315): `sip_p_charging_vector(flags)` and
//! `$pcv(all|value|genaddr|orig|term)`.

use super::super::core::actions::arg_bytes;
use crate::ctx::Ctx;
use bytes::Bytes;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use vm::ksr::ParamType::Str as S;
use vm::pv::{PvClass, PvParam, PvSpec};
use vm::{RouteMask, Value};

const NAME: &str = "P-Charging-Vector";

/// The vector of the current message, parsed from its header or generated.
#[derive(Clone, Default)]
struct Pcv {
    /// `$pcv(all)`: the header value, or the whole generated header line (as Kamailio).
    all: Bytes,
    value: Option<Bytes>,
    genaddr: Option<Bytes>,
    orig: Option<Bytes>,
    term: Option<Bytes>,
}

thread_local! {
    /// The vector `sip_p_charging_vector` produced, tagged with its message (start instant).
    static CURRENT: RefCell<Option<(std::time::Instant, Pcv)>> = const { RefCell::new(None) };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A parameter's value after `name=`, up to a space, `;`, `,` or line end.
fn param(body: &[u8], name: &[u8]) -> Option<Bytes> {
    let at = memchr::memmem::find(body, name)? + name.len();
    let rest = &body[at..];
    let end = rest
        .iter()
        .position(|c| matches!(c, b' ' | b';' | b',' | b'\r' | b'\n' | 0))
        .unwrap_or(rest.len());
    Some(Bytes::copy_from_slice(&rest[..end]))
}

fn parse(body: &[u8]) -> Option<Pcv> {
    let value = param(body, b"icid-value=")?;
    Some(Pcv {
        all: Bytes::copy_from_slice(body),
        value: Some(value),
        genaddr: param(body, b"icid-generated-at="),
        orig: param(body, b"orig-ioi="),
        term: param(body, b"term-ioi="),
    })
}

/// Index and parsed value of the first P-Charging-Vector header with an icid-value.
fn header(c: &Ctx) -> Option<(usize, Pcv)> {
    c.msg
        .headers()
        .iter()
        .enumerate()
        .filter(|(_, h)| h.name.trim_ascii().eq_ignore_ascii_case(NAME.as_bytes()))
        .find_map(|(i, h)| parse(h.value.trim_ascii()).map(|p| (i, p)))
}

/// A new icid-value: `IVS`, the address, process id, a time byte and a counter, in hex (the
/// layout Kamailio uses).
fn generate(c: &Ctx) -> String {
    let mut id = [0u8; 16];
    id[..3].copy_from_slice(b"IVS");
    if let std::net::IpAddr::V4(v4) = c.rcv.local.ip() {
        id[3..7].copy_from_slice(&v4.octets());
    }
    id[7..11].copy_from_slice(&std::process::id().to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    id[11] = (now & 0xff) as u8;
    id[12..16].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    id.iter().map(|b| format!("{b:02X}")).collect()
}

/// `sip_p_charging_vector(flags)`: `r` removes the vector, `g` adds one when the request has
/// none, `f` replaces it. 1, or -2 when no address is known to generate one.
fn handle(c: &mut Ctx, flags: &[u8]) -> i64 {
    let has = |x: u8| flags.iter().any(|f| f.eq_ignore_ascii_case(&x));
    let (remove, force) = (has(b'r'), has(b'f'));
    let generate_new = has(b'g') || force;
    let found = header(c);
    let mut state = found.as_ref().map(|(_, p)| p.clone());
    if let Some((idx, _)) = &found
        && (remove || force)
    {
        c.msg.remove_header(*idx);
        state = None;
    }
    if force || (generate_new && found.is_none()) {
        let addr = c.rcv.local.ip().to_string();
        let value = generate(c);
        let line = format!("{NAME}: icid-value={value}; icid-generated-at={addr}\r\n");
        c.msg.append_header(Bytes::from(line.clone()));
        state = Some(Pcv {
            all: Bytes::from(line),
            value: Some(Bytes::from(value)),
            genaddr: Some(Bytes::from(addr)),
            orig: None,
            term: None,
        });
    }
    let started = c.started;
    CURRENT.with(|s| *s.borrow_mut() = state.map(|p| (started, p)));
    1
}

fn parse_pcv_name(s: &str) -> Result<PvParam, String> {
    let n = match s.trim() {
        "all" => 1,
        "genaddr" => 2,
        "value" => 3,
        "orig" => 4,
        "term" => 5,
        o => return Err(format!("unknown pcv name {o}")),
    };
    Ok(PvParam::Int(n))
}

fn pv_pcv(c: &mut Ctx, spec: &PvSpec) -> Value {
    let mine = CURRENT.with(|s| {
        s.borrow()
            .as_ref()
            .filter(|(at, _)| *at == c.started)
            .map(|(_, p)| p.clone())
    });
    let Some(p) = mine.or_else(|| header(c).map(|(_, p)| p)) else {
        return Value::Null;
    };
    let v = match spec.param {
        PvParam::Int(2) => p.genaddr,
        PvParam::Int(3) => p.value,
        PvParam::Int(4) => p.orig,
        PvParam::Int(5) => p.term,
        _ => Some(p.all),
    };
    v.filter(|b| !b.is_empty()).map_or(Value::Null, Value::Str)
}

pub fn register(r: &mut super::super::Registrar<'_>) {
    r.pvs.add(PvClass {
        name: "pcv",
        get: pv_pcv,
        set: None,
        parse_name: Some(parse_pcv_name),
        name_required: true,
        takes_index: false,
    });
    // Kamailio has no KEMI export for it.
    r.native("sip_p_charging_vector", &[S], RouteMask::ANY, |c, a| {
        Value::Int(handle(c, &arg_bytes(a, 0)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_parameters() {
        let p = parse(b"icid-value=AB12; icid-generated-at=1.2.3.4; orig-ioi=home1.net").unwrap();
        assert_eq!(p.value.as_deref(), Some(&b"AB12"[..]));
        assert_eq!(p.genaddr.as_deref(), Some(&b"1.2.3.4"[..]));
        assert_eq!(p.orig.as_deref(), Some(&b"home1.net"[..]));
        assert!(p.term.is_none());
        assert!(parse(b"orig-ioi=x").is_none());
    }
}
