//! Reading, writing and printing pseudo-variables.

use super::{Format, FormatPart, PV_MARKER_CLASS, PvError, PvIndex, PvParam, PvSpec, TransParam};
use crate::host::Host;
use crate::value::Value;
use bytes::Bytes;

/// Transformations take at most this many parameters; their evaluated values live on the
/// stack.
const MAX_TRANS_PARAMS: usize = 4;

/// Reads a pseudo-variable: the class getter, then the transformation chain. A failed
/// transformation reads as null.
pub fn get<C: Host>(ctx: &mut C, spec: &PvSpec) -> Value {
    try_get(ctx, spec).unwrap_or(Value::Null)
}

/// Like [`get`], but tells a failed transformation (`None`) apart from a null value.
/// Kamailio's `pv_printf` prints nothing at all for the former and `<null>` for the latter.
pub fn try_get<C: Host>(ctx: &mut C, spec: &PvSpec) -> Option<Value> {
    let v = if spec.class == PV_MARKER_CLASS {
        Value::from_static("$")
    } else {
        let class = ctx.pv_registry().class(spec.class)?;
        (class.get)(ctx, spec)
    };
    if spec.trans.is_empty() {
        return Some(v);
    }
    apply_transforms(ctx, spec, v)
}

fn apply_transforms<C: Host>(ctx: &mut C, spec: &PvSpec, mut v: Value) -> Option<Value> {
    for t in spec.trans.iter() {
        let eval = |ctx: &mut C, p: &TransParam| match p {
            TransParam::Value(c) => c.clone(),
            TransParam::Pv(s) => get(ctx, s),
        };
        if t.params.len() <= MAX_TRANS_PARAMS {
            let mut args: [Value; MAX_TRANS_PARAMS] = Default::default();
            for (slot, p) in args.iter_mut().zip(t.params.iter()) {
                *slot = eval(ctx, p);
            }
            v = (t.func)(&v, args.get(..t.params.len()).unwrap_or(&[]))?;
        } else {
            // Only a substitution with many pseudo-variables in its replacement gets here.
            let args: Vec<Value> = t.params.iter().map(|p| eval(ctx, p)).collect();
            v = (t.func)(&v, &args)?;
        }
    }
    Some(v)
}

/// Writes a pseudo-variable. Transformations in the spec are ignored, as in Kamailio (which
/// hands the name and index to the class setter and never looks at them).
pub fn set<C: Host>(ctx: &mut C, spec: &PvSpec, v: &Value) -> Result<(), PvError> {
    if spec.class == PV_MARKER_CLASS {
        return Err(PvError::ReadOnly);
    }
    let class = ctx.pv_registry().class(spec.class).ok_or_else(|| {
        PvError::Failed(format!("unknown pseudo-variable class in {}", spec.text))
    })?;
    match class.set {
        Some(f) => f(ctx, spec, v),
        None => Err(PvError::ReadOnly),
    }
}

/// Appends a value as Kamailio prints it: null as `<null>`.
pub fn push_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"<null>"),
        Value::Int(i) => push_int(out, *i),
        Value::Str(s) => out.extend_from_slice(s),
    }
}

/// Appends the decimal text of `i` without allocating.
pub(crate) fn push_int(out: &mut Vec<u8>, i: i64) {
    let mut buf = [0u8; 20];
    let mut k = buf.len();
    let mut n = i.unsigned_abs();
    loop {
        k -= 1;
        if let Some(slot) = buf.get_mut(k) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || k == 0 {
            break;
        }
    }
    if i < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(buf.get(k..).unwrap_or(&[]));
}

/// Prints a format string into `out` like Kamailio's `pv_printf`: literal text as is, null
/// values as `<null>`, nothing for a pseudo-variable whose transformation failed.
pub fn format_into<C: Host>(ctx: &mut C, f: &Format, out: &mut Vec<u8>) {
    for part in &f.parts {
        match part {
            FormatPart::Lit(b) => out.extend_from_slice(b),
            FormatPart::Pv(s) => {
                if let Some(v) = try_get(ctx, s) {
                    push_value(out, &v);
                }
            }
        }
    }
}

/// Prints a format string. A format that is one literal or one string-valued
/// pseudo-variable costs no copy.
pub fn format<C: Host>(ctx: &mut C, f: &Format) -> Bytes {
    match f.parts.as_slice() {
        [] => Bytes::new(),
        [FormatPart::Lit(b)] => b.clone(),
        [FormatPart::Pv(s)] => match try_get(ctx, s) {
            Some(Value::Str(b)) => b,
            Some(v) => {
                let mut out = Vec::new();
                push_value(&mut out, &v);
                Bytes::from(out)
            }
            None => Bytes::new(),
        },
        _ => {
            let mut out = Vec::with_capacity(64);
            format_into(ctx, f, &mut out);
            Bytes::from(out)
        }
    }
}

fn value_bytes(v: Value) -> Option<Bytes> {
    match v {
        Value::Null => None,
        Value::Str(b) => Some(b),
        Value::Int(i) => {
            let mut out = Vec::new();
            push_int(&mut out, i);
            Some(Bytes::from(out))
        }
    }
}

/// The text of an inner name, evaluating dynamic names for this message. Like Kamailio's
/// `pv_get_spec_name`, a dynamic name that is null or empty gives `None`.
pub fn param_bytes<C: Host>(ctx: &mut C, p: &PvParam) -> Option<Bytes> {
    match p {
        PvParam::Str(s) => Some(s.clone()),
        PvParam::Int(i) => value_bytes(Value::Int(*i)),
        PvParam::Spec(spec) => value_bytes(get(ctx, spec)).filter(|b| !b.is_empty()),
        PvParam::Format(f) => Some(format(ctx, f)),
        PvParam::None | PvParam::Slot(_) | PvParam::Custom(_) => None,
    }
}

/// The value of an inner name, keeping integers as integers (`$avp(i:3)`, or `$avp($var(n))`
/// when `$var(n)` holds a number). Null and empty dynamic names give `None`.
pub fn param_value<C: Host>(ctx: &mut C, p: &PvParam) -> Option<Value> {
    match p {
        PvParam::Str(s) => Some(Value::Str(s.clone())),
        PvParam::Int(i) => Some(Value::Int(*i)),
        PvParam::Spec(spec) => match get(ctx, spec) {
            Value::Null => None,
            Value::Str(b) if b.is_empty() => None,
            v => Some(v),
        },
        PvParam::Format(f) => Some(Value::Str(format(ctx, f))),
        PvParam::None | PvParam::Slot(_) | PvParam::Custom(_) => None,
    }
}

/// An `[index]` after evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolvedIndex {
    /// No index was written.
    None,
    /// `[n]`; negative counts from the end (`-1` is the last).
    At(i32),
    /// `[*]`.
    All,
}

/// Evaluates the index of `spec`. A dynamic index must read as an integer (Kamailio refuses
/// strings there); otherwise this is `None`.
pub fn index_of<C: Host>(ctx: &mut C, spec: &PvSpec) -> Option<ResolvedIndex> {
    match &spec.index {
        PvIndex::None => Some(ResolvedIndex::None),
        PvIndex::Int(i) => Some(ResolvedIndex::At(*i)),
        PvIndex::All => Some(ResolvedIndex::All),
        PvIndex::Dyn(s) => match get(ctx, s) {
            Value::Int(i) => i32::try_from(i).ok().map(ResolvedIndex::At),
            _ => None,
        },
    }
}

/// The position in a list of `len` items that index `idx` designates: `0..len` from the
/// start, `-1..=-len` from the end. `None` when out of range.
pub fn position(idx: i32, len: usize) -> Option<usize> {
    if idx >= 0 {
        let i = idx as usize;
        (i < len).then_some(i)
    } else {
        let back = idx.unsigned_abs() as usize;
        len.checked_sub(back)
    }
}
