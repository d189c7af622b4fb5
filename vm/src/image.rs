//! Ahead-of-time images (`ksr compile`): a checked program saved to a file that `ksr run`
//! starts from without compiling the routing again.
//!
//! Layout: `KSRC` magic, format version (u32 LE), body length (u64 LE), MD5 of the body (16
//! bytes), body (JSON).
//! The body holds the bytecode, constants, route table, pseudo-variables, format strings and
//! regexes as text (re-parsed against this binary's registry when loaded), the KSR functions
//! the program calls by name and full signature (resolved to this binary's table indices),
//! and the global/module parameters as cfg text. A corrupt, truncated or incompatible image
//! is refused with an error that says why.

use crate::ksr::{ExportSig, KsrTable};
use crate::program::{CallSite, IpNet, Op, Program, RouteInfo};
use crate::pv::{FormatPart, PvRegistry};
use crate::value::Value;
use md5::Digest;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"KSRC";
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("not a ksr image (bad magic)")]
    Magic,
    #[error("image is truncated")]
    Truncated,
    #[error("image format version {0} is not supported by this ksr (expects {VERSION})")]
    Version(u32),
    #[error("image is corrupt (checksum mismatch)")]
    Checksum,
    #[error("image is corrupt: {0}")]
    Body(String),
    #[error("image needs {0}, which this ksr does not provide")]
    MissingFunction(String),
    #[error("image refers to {0}, which does not parse here: {1}")]
    BadReference(String, String),
}

#[derive(Serialize, Deserialize)]
enum ImgValue {
    Null,
    Int(i64),
    Str(Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct ImgCall {
    sig: ExportSig,
    /// Native spelling for exports KEMI does not see.
    native: Option<(String, u8)>,
    args: u16,
    argc: u8,
}

#[derive(Serialize, Deserialize)]
struct Body {
    params_cfg: String,
    code: Vec<Op>,
    consts: Vec<ImgValue>,
    pvs: Vec<String>,
    formats: Vec<String>,
    regexes: Vec<String>,
    nets: Vec<IpNet>,
    calls: Vec<ImgCall>,
    routes: Vec<RouteInfo>,
    lines: Vec<u32>,
}

/// Serializes `prog` with the cfg text of its global and module parameters.
pub fn write<C>(
    prog: &Program,
    table: &KsrTable<C>,
    params_cfg: &str,
) -> Result<Vec<u8>, ImageError> {
    let mut calls = Vec::with_capacity(prog.calls.len());
    for c in &prog.calls {
        let e = table
            .get(c.export)
            .ok_or_else(|| ImageError::Body(format!("call to unknown export {}", c.export)))?;
        let native = if e.sig.kemi {
            None
        } else {
            table
                .natives()
                .find(|a| a.export == c.export)
                .map(|a| (a.name.clone(), a.arity))
        };
        calls.push(ImgCall {
            sig: e.sig.clone(),
            native,
            args: c.args,
            argc: c.argc,
        });
    }
    let body = Body {
        params_cfg: params_cfg.to_string(),
        code: prog.code.clone(),
        consts: prog
            .consts
            .iter()
            .map(|v| match v {
                Value::Null => ImgValue::Null,
                Value::Int(i) => ImgValue::Int(*i),
                Value::Str(s) => ImgValue::Str(s.to_vec()),
            })
            .collect(),
        pvs: prog.pvs.iter().map(|p| p.text.to_string()).collect(),
        formats: prog
            .formats
            .iter()
            .map(|f| {
                let mut t = Vec::new();
                for p in &f.parts {
                    match p {
                        FormatPart::Lit(b) => t.extend_from_slice(b),
                        FormatPart::Pv(s) => t.extend_from_slice(s.text.as_bytes()),
                    }
                }
                String::from_utf8_lossy(&t).into_owned()
            })
            .collect(),
        regexes: prog
            .regexes
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        nets: prog.nets.clone(),
        calls,
        routes: prog.routes.clone(),
        lines: prog.lines.clone(),
    };
    let json = serde_json::to_vec(&body).map_err(|e| ImageError::Body(e.to_string()))?;
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&md5::Md5::digest(&json));
    out.extend_from_slice(&json);
    Ok(out)
}

/// Checks the envelope and returns the parameters' cfg text, without resolving anything
/// (the caller registers the modules it names first).
pub fn params_cfg(bytes: &[u8]) -> Result<String, ImageError> {
    Ok(body(bytes)?.params_cfg)
}

fn body(bytes: &[u8]) -> Result<Body, ImageError> {
    if bytes.len() < 4 {
        return Err(ImageError::Truncated);
    }
    if bytes.get(..4) != Some(&MAGIC[..]) {
        return Err(ImageError::Magic);
    }
    let ver = bytes
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or(ImageError::Truncated)?;
    if ver != VERSION {
        return Err(ImageError::Version(ver));
    }
    let len = bytes
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or(ImageError::Truncated)?;
    let sum = bytes.get(16..32).ok_or(ImageError::Truncated)?;
    let json = bytes.get(32..).ok_or(ImageError::Truncated)?;
    if (json.len() as u64) < len {
        return Err(ImageError::Truncated);
    }
    if json.len() as u64 != len || md5::Md5::digest(json).as_slice() != sum {
        return Err(ImageError::Checksum);
    }
    serde_json::from_slice(json).map_err(|e| ImageError::Body(e.to_string()))
}

/// Loads an image against this binary's KSR table and pseudo-variable registry.
pub fn load<C>(
    bytes: &[u8],
    table: &KsrTable<C>,
    pvs: &PvRegistry<C>,
) -> Result<Program, ImageError> {
    let b = body(bytes)?;
    let mut calls = Vec::with_capacity(b.calls.len());
    for c in &b.calls {
        let idx = match &c.native {
            None => table.kemi(&c.sig.module, &c.sig.name),
            Some((n, a)) => table.native(n, *a).map(|x| x.export),
        };
        let what = || {
            format!(
                "{}{} ({} module)",
                c.sig.kemi_path(),
                match &c.native {
                    Some((n, a)) => format!(" / {n}/{a}"),
                    None => String::new(),
                },
                c.sig.owner
            )
        };
        let idx = idx.ok_or_else(|| ImageError::MissingFunction(what()))?;
        let same = table.get(idx).is_some_and(|e| {
            e.sig.params == c.sig.params && e.sig.ret == c.sig.ret && e.sig.owner == c.sig.owner
        });
        if !same {
            return Err(ImageError::MissingFunction(format!(
                "{} with this signature",
                what()
            )));
        }
        calls.push(CallSite {
            export: idx,
            args: c.args,
            argc: c.argc,
        });
    }
    let mut prog = Program {
        code: b.code,
        consts: b
            .consts
            .into_iter()
            .map(|v| match v {
                ImgValue::Null => Value::Null,
                ImgValue::Int(i) => Value::Int(i),
                ImgValue::Str(s) => Value::Str(s.into()),
            })
            .collect(),
        nets: b.nets,
        calls,
        routes: b.routes,
        lines: b.lines,
        ..Program::default()
    };
    for t in &b.pvs {
        prog.pvs.push(
            crate::pv::parse_spec(t, pvs)
                .map_err(|e| ImageError::BadReference(t.clone(), e.message))?,
        );
    }
    for t in &b.formats {
        prog.formats.push(
            crate::pv::parse_format(t, pvs)
                .map_err(|e| ImageError::BadReference(t.clone(), e.message))?,
        );
    }
    for t in &b.regexes {
        prog.regexes.push(
            regex::RegexBuilder::new(t)
                .case_insensitive(true)
                .build()
                .map_err(|e| ImageError::BadReference(t.clone(), e.to_string()))?,
        );
    }
    check_indices(&prog)?;
    Ok(prog)
}

/// Every table index an instruction uses must exist: a consistent checksum with a body
/// written by another build must not make the interpreter read out of bounds.
fn check_indices(p: &Program) -> Result<(), ImageError> {
    let bad = |what: &str| Err(ImageError::Body(format!("bad {what} reference")));
    for op in &p.code {
        let ok = match *op {
            Op::Const { k, .. } => (k as usize) < p.consts.len(),
            Op::Pv { pv, .. } | Op::SetPv { pv, .. } => (pv as usize) < p.pvs.len(),
            Op::Fmt { f, .. } => (f as usize) < p.formats.len(),
            Op::Call { site, .. } => (site as usize) < p.calls.len(),
            Op::Route { route, .. } => (route as usize) < p.routes.len(),
            Op::Match { re, .. } => (re as usize) < p.regexes.len(),
            Op::IpMatch { net, .. } => (net as usize) < p.nets.len(),
            Op::Jmp { to } | Op::JmpFalse { to, .. } | Op::JmpTrue { to, .. } => {
                (to as usize) <= p.code.len()
            }
            Op::LoopGuard { to, .. } => (to as usize) <= p.code.len(),
            _ => true,
        };
        if !ok {
            return bad("instruction");
        }
    }
    if p.routes.iter().any(|r| r.entry as usize > p.code.len()) {
        return bad("route");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ksr::{ParamHint, ParamType, RetType};
    use crate::program::RouteInfo;
    use crate::route::{RouteKind, RouteMask};

    fn table(with_f: bool) -> KsrTable<()> {
        let mut t = KsrTable::new();
        let sig = |name: &str| ExportSig {
            owner: "m".into(),
            module: "m".into(),
            name: name.into(),
            params: vec![ParamType::Int],
            hints: vec![ParamHint::Plain],
            ret: RetType::Int,
            kemi: true,
        };
        t.add(sig("other"), |_, _| Value::Int(1));
        if with_f {
            let i = t.add(sig("f"), |_, a| a[0].clone());
            t.add_native("m_f", 1, i, RouteMask::ANY);
        }
        t
    }

    fn prog(t: &KsrTable<()>) -> Program {
        Program {
            code: vec![
                Op::Const { d: 0, k: 0 },
                Op::Call { d: 1, site: 0 },
                Op::Return { s: 1 },
            ],
            consts: vec![Value::Int(7)],
            calls: vec![CallSite {
                export: t.kemi("m", "f").unwrap(),
                args: 0,
                argc: 1,
            }],
            routes: vec![RouteInfo {
                kind: RouteKind::Request,
                name: None,
                entry: 0,
                regs: 2,
            }],
            ..Program::default()
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let t = table(true);
        let pvs: PvRegistry<()> = PvRegistry::new();
        let img = write(&prog(&t), &t, "loadmodule \"m\"\n").unwrap();
        assert_eq!(params_cfg(&img).unwrap(), "loadmodule \"m\"\n");
        let p = load(&img, &t, &pvs).unwrap();
        assert_eq!(p.code, prog(&t).code);
        assert_eq!(p.consts, vec![Value::Int(7)]);
        // The call is resolved by name in another binary's table, whatever its index.
        let mut t2 = KsrTable::<()>::new();
        t2.add(
            ExportSig {
                owner: "x".into(),
                module: "x".into(),
                name: "pad".into(),
                params: vec![],
                hints: vec![],
                ret: RetType::Int,
                kemi: true,
            },
            |_, _| Value::Int(0),
        );
        for (_, e) in t.exports() {
            t2.add(e.sig.clone(), e.func);
        }
        let p2 = load(&img, &t2, &pvs).unwrap();
        assert_eq!(p2.calls[0].export, t2.kemi("m", "f").unwrap());
        // A binary without the function refuses the image.
        assert!(matches!(
            load(&img, &table(false), &pvs),
            Err(ImageError::MissingFunction(_))
        ));
        // Truncation, corruption, bad magic, other versions.
        assert_eq!(
            load(&img[..img.len() - 5], &t, &pvs).err(),
            Some(ImageError::Truncated)
        );
        assert_eq!(
            load(&img[..10], &t, &pvs).err(),
            Some(ImageError::Truncated)
        );
        let mut bad = img.clone();
        let n = bad.len() - 3;
        bad[n] ^= 0x20;
        assert_eq!(load(&bad, &t, &pvs).err(), Some(ImageError::Checksum));
        assert_eq!(
            load(b"ELF\x7f....", &t, &pvs).err(),
            Some(ImageError::Magic)
        );
        let mut v2 = img.clone();
        v2[4] = 2;
        assert_eq!(load(&v2, &t, &pvs).err(), Some(ImageError::Version(2)));
    }
}
