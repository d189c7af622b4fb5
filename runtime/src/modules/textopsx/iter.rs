//! textopsx iterators over header fields (`hf_iterator_*`, `$hfitname`, `$hfitbody`) and
//! body lines (`bl_iterator_*`, `$blitval`): up to four named iterators of each kind per
//! worker, as Kamailio keeps them per process. An iterator left over from an earlier message
//! starts again from nothing (Kamailio would read freed memory).

use crate::ctx::Ctx;
use crate::log::L_ERR;
use bytes::Bytes;
use std::cell::RefCell;
use std::time::Instant;
use vm::Value;
use vm::pv::{PvParam, PvSpec};

const MAX_ITERATORS: usize = 4;
const MAX_NAME: usize = 32;

#[derive(Clone, Debug)]
struct HfIt {
    name: Bytes,
    msg: Option<Instant>,
    it: Option<usize>,
    prev: Option<usize>,
    eoh: bool,
}

#[derive(Clone, Debug)]
struct BlIt {
    name: Bytes,
    msg: Option<Instant>,
    /// The line: start and length (with its `\n`) in the received body.
    it: Option<(usize, usize)>,
    started: bool,
    eob: bool,
}

#[derive(Default)]
struct BodyEdits {
    msg: Option<Instant>,
    edits: Vec<(usize, usize, Vec<u8>)>,
}

thread_local! {
    static HF: RefCell<Vec<HfIt>> = const { RefCell::new(Vec::new()) };
    static BL: RefCell<Vec<BlIt>> = const { RefCell::new(Vec::new()) };
    static BODY: RefCell<BodyEdits> = RefCell::new(BodyEdits::default());
}

fn not_available(name: &[u8]) {
    crate::klog!(
        L_ERR,
        "textopsx",
        "iterator not available [{}]",
        String::from_utf8_lossy(name)
    );
}

/// The current header of iterator `name` in this message.
fn hf_current(c: &Ctx, name: &[u8]) -> Option<usize> {
    HF.with(|v| {
        v.borrow()
            .iter()
            .find(|i| i.name == name)
            .filter(|i| i.msg == Some(c.started))
            .and_then(|i| i.it)
    })
}

pub fn hf_start(c: &mut Ctx, name: &[u8]) -> i64 {
    let ok = HF.with(|v| {
        let mut v = v.borrow_mut();
        let idx = match v.iter().position(|i| i.name == name) {
            Some(i) => i,
            None => {
                if v.len() >= MAX_ITERATORS {
                    crate::klog!(
                        L_ERR,
                        "textopsx",
                        "no iterator available - max number is {MAX_ITERATORS}"
                    );
                    return false;
                }
                if name.len() >= MAX_NAME {
                    crate::klog!(
                        L_ERR,
                        "textopsx",
                        "iterator name is too big [{}] (max {MAX_NAME})",
                        String::from_utf8_lossy(name)
                    );
                    return false;
                }
                v.push(HfIt {
                    name: Bytes::copy_from_slice(name),
                    msg: None,
                    it: None,
                    prev: None,
                    eoh: false,
                });
                v.len() - 1
            }
        };
        let i = &mut v[idx];
        i.msg = Some(c.started);
        i.it = None;
        i.prev = None;
        i.eoh = false;
        true
    });
    if !ok {
        return -1;
    }
    if c.msg.headers().is_empty() {
        crate::klog!(
            L_ERR,
            "textopsx",
            "no headers for iterator [{}]",
            String::from_utf8_lossy(name)
        );
        return -1;
    }
    1
}

fn with_hf<T>(c: &Ctx, name: &[u8], f: impl FnOnce(&mut HfIt) -> T) -> Option<T> {
    HF.with(|v| {
        let mut v = v.borrow_mut();
        let i = v.iter_mut().find(|i| i.name == name)?;
        if i.msg != Some(c.started) {
            i.msg = Some(c.started);
            i.it = None;
            i.prev = None;
            i.eoh = false;
        }
        Some(f(i))
    })
}

pub fn hf_next(c: &mut Ctx, name: &[u8]) -> i64 {
    let n = c.msg.headers().len();
    match with_hf(c, name, |i| {
        if i.eoh {
            return -1;
        }
        let next = match i.it {
            None => 0,
            Some(cur) => {
                i.prev = Some(cur);
                cur + 1
            }
        };
        if next >= n {
            i.it = None;
            i.eoh = true;
            return -1;
        }
        i.it = Some(next);
        1
    }) {
        Some(r) => r,
        None => {
            not_available(name);
            -1
        }
    }
}

pub fn hf_prev(c: &mut Ctx, name: &[u8]) -> i64 {
    let n = c.msg.headers().len();
    let r = with_hf(c, name, |i| {
        if i.eoh {
            return Some(-1);
        }
        let prev = i.prev?;
        if Some(prev) != i.it {
            i.it = Some(prev);
            return Some(1);
        }
        let cur = i.it?;
        for h in 0..n {
            if h + 1 < n {
                if h + 2 < n {
                    if cur == h + 2 {
                        i.it = Some(h + 1);
                        i.prev = Some(h);
                        return Some(1);
                    }
                } else if cur == h + 1 {
                    i.it = Some(h);
                    i.prev = None;
                    return Some(1);
                }
            }
        }
        None
    });
    match r {
        None => {
            not_available(name);
            -1
        }
        Some(Some(v)) => v,
        // Back before the first header: start again.
        Some(None) => hf_start(c, name),
    }
}

pub fn hf_end(c: &mut Ctx, name: &[u8]) -> i64 {
    match with_hf(c, name, |i| {
        i.it = None;
        i.eoh = false;
    }) {
        Some(()) => 1,
        None => {
            not_available(name);
            -1
        }
    }
}

fn hf_known(name: &[u8]) -> bool {
    let known = HF.with(|v| v.borrow().iter().any(|i| i.name == name));
    if !known {
        not_available(name);
    }
    known
}

pub fn hf_rm(c: &mut Ctx, name: &[u8]) -> i64 {
    if !hf_known(name) {
        return -1;
    }
    match hf_current(c, name) {
        Some(h) if c.msg.remove_header(h) => 1,
        _ => -1,
    }
}

pub fn hf_add(c: &mut Ctx, name: &[u8], text: &[u8], after: bool) -> i64 {
    if !hf_known(name) {
        return -1;
    }
    let Some(h) = hf_current(c, name) else {
        return -1;
    };
    let line = Bytes::copy_from_slice(text);
    let ok = if after {
        c.msg.insert_header_after(h, line)
    } else {
        c.msg.insert_header_before(h, line)
    };
    if ok { 1 } else { -1 }
}

/// Name (`body == false`) or value of the current header.
pub fn hf_value(c: &mut Ctx, name: &[u8], body: bool) -> Value {
    let known = HF.with(|v| v.borrow().iter().any(|i| i.name == name));
    if !known {
        not_available(name);
        return Value::Null;
    }
    match hf_current(c, name).and_then(|h| c.msg.headers().get(h)) {
        Some(h) => Value::Str(if body {
            h.value.clone()
        } else {
            h.name.clone()
        }),
        None => Value::Null,
    }
}

// ---------------------------------------------------------------- body lines

pub fn bl_start(c: &mut Ctx, name: &[u8]) -> i64 {
    let ok = BL.with(|v| {
        let mut v = v.borrow_mut();
        let idx = match v.iter().position(|i| i.name == name) {
            Some(i) => i,
            None => {
                if v.len() >= MAX_ITERATORS {
                    crate::klog!(
                        L_ERR,
                        "textopsx",
                        "no iterator available - max number is {MAX_ITERATORS}"
                    );
                    return false;
                }
                if name.len() >= MAX_NAME {
                    crate::klog!(
                        L_ERR,
                        "textopsx",
                        "iterator name is too big [{}] (max {MAX_NAME})",
                        String::from_utf8_lossy(name)
                    );
                    return false;
                }
                v.push(BlIt {
                    name: Bytes::copy_from_slice(name),
                    msg: None,
                    it: None,
                    started: false,
                    eob: false,
                });
                v.len() - 1
            }
        };
        let i = &mut v[idx];
        i.msg = Some(c.started);
        i.it = None;
        i.started = true;
        i.eob = false;
        true
    });
    if !ok {
        return -1;
    }
    if c.msg.body().is_empty() {
        return -1;
    }
    1
}

fn with_bl<T>(c: &Ctx, name: &[u8], f: impl FnOnce(&mut BlIt) -> T) -> Option<T> {
    BL.with(|v| {
        let mut v = v.borrow_mut();
        let i = v.iter_mut().find(|i| i.name == name)?;
        if i.msg != Some(c.started) {
            i.msg = Some(c.started);
            i.it = None;
            i.started = false;
            i.eob = false;
        }
        Some(f(i))
    })
}

pub fn bl_next(c: &mut Ctx, name: &[u8]) -> i64 {
    let body = c.msg.body().clone();
    match with_bl(c, name, |i| {
        if i.eob || !i.started {
            return -1;
        }
        let p = i.it.map(|(s, l)| s + l).unwrap_or(0);
        if p >= body.len() {
            i.it = None;
            i.eob = true;
            return -1;
        }
        let end = memchr::memchr(b'\n', &body[p..])
            .map(|x| p + x + 1)
            .unwrap_or(body.len());
        i.it = Some((p, end - p));
        1
    }) {
        Some(r) => r,
        None => {
            not_available(name);
            -1
        }
    }
}

pub fn bl_end(c: &mut Ctx, name: &[u8]) -> i64 {
    match with_bl(c, name, |i| {
        i.it = None;
        i.started = false;
        i.eob = false;
    }) {
        Some(()) => 1,
        None => {
            not_available(name);
            -1
        }
    }
}

fn bl_current(c: &Ctx, name: &[u8]) -> Option<Option<(usize, usize)>> {
    let r = with_bl(c, name, |i| i.it.filter(|(_, l)| *l > 0));
    if r.is_none() {
        not_available(name);
    }
    r
}

/// Records an edit of the received body and sets the body they produce together.
fn body_edit(c: &mut Ctx, start: usize, end: usize, data: Vec<u8>) {
    let orig = c.msg.body().clone();
    let nb = BODY.with(|b| {
        let mut b = b.borrow_mut();
        if b.msg != Some(c.started) {
            b.msg = Some(c.started);
            b.edits.clear();
        }
        b.edits.push((start, end, data));
        let mut e = b.edits.clone();
        crate::modules::nathelper::sdp::apply(&orig, &mut e)
    });
    c.msg.set_body(Bytes::from(nb));
}

pub fn bl_rm(c: &mut Ctx, name: &[u8]) -> i64 {
    match bl_current(c, name) {
        Some(Some((s, l))) => {
            body_edit(c, s, s + l, Vec::new());
            1
        }
        _ => -1,
    }
}

pub fn bl_add(c: &mut Ctx, name: &[u8], text: &[u8], after: bool) -> i64 {
    match bl_current(c, name) {
        Some(Some((s, l))) => {
            let at = if after { s + l } else { s };
            body_edit(c, at, at, text.to_vec());
            1
        }
        _ => -1,
    }
}

pub fn bl_value(c: &mut Ctx, name: &[u8]) -> Value {
    match bl_current(c, name) {
        Some(Some((s, l))) => Value::Str(c.msg.body().slice(s..(s + l).min(c.msg.body().len()))),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------- pseudo-variables

pub fn parse_name(s: &str) -> Result<PvParam, String> {
    if s.is_empty() {
        return Err("empty iterator name".into());
    }
    Ok(PvParam::Str(Bytes::copy_from_slice(s.as_bytes())))
}

fn pv_name(spec: &PvSpec) -> Bytes {
    match &spec.param {
        PvParam::Str(s) => s.clone(),
        _ => Bytes::new(),
    }
}

pub fn pv_hfitname(c: &mut Ctx, spec: &PvSpec) -> Value {
    hf_value(c, &pv_name(spec), false)
}

pub fn pv_hfitbody(c: &mut Ctx, spec: &PvSpec) -> Value {
    hf_value(c, &pv_name(spec), true)
}

pub fn pv_blitval(c: &mut Ctx, spec: &PvSpec) -> Value {
    bl_value(c, &pv_name(spec))
}
