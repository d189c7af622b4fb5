//! Program images: a compiled [`Program`] written to bytes and loaded back in another
//! process without re-parsing the cfg.
//!
//! An image holds the bytecode and every table, with what depends on the running binary
//! kept by name: KSR functions by native name and full signature (resolved to this
//! process's table indices at load), pseudo-variables and format strings as text (parsed
//! again against this process's registry), regexes as patterns (compiled again). Loading
//! checks the magic, the format version, the length and a CRC-32 of the payload, decodes
//! with bounds checks, and validates every instruction against the tables and its route's
//! frame, so a corrupt or hostile image is refused with an error rather than run.
//!
//! Layout: `b"KSRCimg\x01"`, version (u32), flags (u32, 0), payload length (u64),
//! CRC-32 of the payload (u32), reserved (u32), then the payload: the runtime's parameter
//! blob first (so [`params`] can read it before the modules exist), then the program.
//! Integers are little-endian; strings and byte strings are a u32 length and the bytes.

use crate::bytecode::Insn;
use crate::ksr::{ExportSig, KsrTable, ParamHint, ParamType, RetType};
use crate::program::{
    CallKind, CallSite, FORMAT_VERSION, Import, IntSwitch, IpNet, Program, RegexEntry, RouteInfo,
    RouteSite, StrSwitch, parse_format, parse_pv, posix_regex, resolve_import,
};
use crate::pv::PvRegistry;
use crate::route::RouteKind;
use crate::value::Value;
use bytes::Bytes;

const MAGIC: &[u8; 8] = b"KSRCimg\x01";
const HEADER: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("not a ksr program image (bad magic)")]
    BadMagic,
    #[error("image format version {found}, this ksr reads version {expected}: recompile the cfg")]
    WrongVersion { found: u32, expected: u32 },
    #[error("image is truncated: {0}")]
    Truncated(String),
    #[error("image checksum mismatch: the file is corrupt")]
    Checksum,
    #[error("corrupt image: {0}")]
    Corrupt(String),
    #[error(
        "the image needs function {name} ({sig}), which this ksr does not provide (is its module loaded?)"
    )]
    MissingFunction { name: String, sig: String },
    #[error("the image uses pseudo-variable {text}, which this ksr cannot parse: {msg}")]
    BadPv { text: String, msg: String },
    #[error("the image has format string \"{text}\", which this ksr cannot parse: {msg}")]
    BadFormat { text: String, msg: String },
    #[error("the image has regular expression \"{pattern}\", which this ksr cannot compile: {msg}")]
    BadRegex { pattern: String, msg: String },
}

// ---------------------------------------------------------------- CRC-32 (IEEE)

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC: [u32; 256] = crc_table();

/// CRC-32 as in zlib/PNG.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        let idx = ((c ^ b as u32) & 0xff) as usize;
        c = CRC.get(idx).copied().unwrap_or(0) ^ (c >> 8);
    }
    !c
}

// ---------------------------------------------------------------- writing

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

fn kind_code(k: RouteKind) -> u8 {
    match k {
        RouteKind::Request => 0,
        RouteKind::Failure => 1,
        RouteKind::TmOnReply => 2,
        RouteKind::Branch => 3,
        RouteKind::OnSend => 4,
        RouteKind::CoreOnReply => 5,
        RouteKind::BranchFailure => 6,
        RouteKind::Event => 7,
    }
}

fn kind_of(c: u8) -> Option<RouteKind> {
    Some(match c {
        0 => RouteKind::Request,
        1 => RouteKind::Failure,
        2 => RouteKind::TmOnReply,
        3 => RouteKind::Branch,
        4 => RouteKind::OnSend,
        5 => RouteKind::CoreOnReply,
        6 => RouteKind::BranchFailure,
        7 => RouteKind::Event,
        _ => return None,
    })
}

fn write_sig(w: &mut W, s: &ExportSig) {
    w.str(&s.owner);
    w.str(&s.module);
    w.str(&s.name);
    w.len(s.params.len());
    for p in &s.params {
        w.u8(match p {
            ParamType::Int => 0,
            ParamType::Str => 1,
        });
    }
    w.len(s.hints.len());
    for h in &s.hints {
        match h {
            ParamHint::Plain => w.u8(0),
            ParamHint::Route(k) => {
                w.u8(1);
                w.u8(kind_code(*k));
            }
            ParamHint::Regex => w.u8(2),
            ParamHint::Flag => w.u8(3),
            ParamHint::BranchFlag => w.u8(4),
            ParamHint::PvName => w.u8(5),
            ParamHint::Subst => w.u8(6),
            ParamHint::PvList => w.u8(7),
            ParamHint::LeadingPv => w.u8(8),
            ParamHint::PvOrLiteral => w.u8(9),
        }
    }
    w.u8(match s.ret {
        RetType::None => 0,
        RetType::Int => 1,
        RetType::Bool => 2,
        RetType::Str => 3,
        RetType::Xval => 4,
    });
    w.u8(s.kemi as u8);
}

/// Serializes a program.
pub fn write(p: &Program) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(
        p.code.len() * 12 + p.params.len() + 1024,
    ));
    w.bytes(&p.params);
    w.len(p.code.len());
    for i in &p.code {
        w.0.extend_from_slice(&i.encode());
    }
    w.len(p.lines.len());
    for l in &p.lines {
        w.u32(*l);
    }
    w.len(p.consts.len());
    for c in &p.consts {
        match c {
            Value::Null => w.u8(0),
            Value::Int(i) => {
                w.u8(1);
                w.i64(*i);
            }
            Value::Str(s) => {
                w.u8(2);
                w.bytes(s);
            }
        }
    }
    w.len(p.pvs.len());
    for s in &p.pvs {
        w.str(&s.text);
    }
    w.len(p.formats.len());
    for f in &p.formats {
        w.str(&f.text);
    }
    w.len(p.regexes.len());
    for r in &p.regexes {
        w.bytes(&r.pattern);
        w.u8(r.icase as u8);
    }
    w.len(p.nets.len());
    for n in &p.nets {
        match n.addr {
            std::net::IpAddr::V4(a) => {
                w.u8(4);
                w.0.extend_from_slice(&a.octets());
            }
            std::net::IpAddr::V6(a) => {
                w.u8(6);
                w.0.extend_from_slice(&a.octets());
            }
        }
        w.u8(n.prefix);
    }
    w.len(p.imports.len());
    for i in &p.imports {
        w.str(&i.native);
        w.u8(i.arity);
        write_sig(&mut w, &i.sig);
    }
    w.len(p.calls.len());
    for c in &p.calls {
        w.u32(c.import);
        w.u16(c.args);
        w.u8(c.argc);
        w.u8(c.kind as u8);
        w.u16(c.conv);
    }
    w.len(p.route_sites.len());
    for s in &p.route_sites {
        w.u32(s.target);
        w.u16(s.nest);
        w.u8(s.in_expr as u8);
    }
    w.len(p.int_switches.len());
    for t in &p.int_switches {
        w.u32(t.default);
        let cases = t.cases();
        w.len(cases.len());
        for (v, to) in cases {
            w.i32(v);
            w.u32(to);
        }
    }
    w.len(p.str_switches.len());
    for t in &p.str_switches {
        w.u32(t.default);
        w.len(t.cases.len());
        for (v, to) in &t.cases {
            w.bytes(v);
            w.u32(*to);
        }
    }
    w.len(p.routes.len());
    for r in &p.routes {
        w.u8(kind_code(r.kind));
        match &r.name {
            Some(n) => {
                w.u8(1);
                w.str(n);
            }
            None => w.u8(0),
        }
        w.u32(r.entry);
        w.u32(r.end);
        w.u16(r.regs);
    }
    let payload = w.0;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

// ---------------------------------------------------------------- reading

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ImageError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or_else(|| ImageError::Corrupt(format!("{what}: length overflow")))?;
        let s = self
            .b
            .get(self.at..end)
            .ok_or_else(|| ImageError::Truncated(format!("{what} at byte {}", self.at)))?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, ImageError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }
    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ImageError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u16(&mut self, what: &str) -> Result<u16, ImageError> {
        Ok(u16::from_le_bytes(self.arr(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, ImageError> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn i32(&mut self, what: &str) -> Result<i32, ImageError> {
        Ok(i32::from_le_bytes(self.arr(what)?))
    }
    fn i64(&mut self, what: &str) -> Result<i64, ImageError> {
        Ok(i64::from_le_bytes(self.arr(what)?))
    }
    /// A count of items of at least `min` bytes each (so a corrupt count cannot make us
    /// allocate more than the image holds).
    fn count(&mut self, min: usize, what: &str) -> Result<usize, ImageError> {
        let n = self.u32(what)? as usize;
        let left = self.b.len().saturating_sub(self.at);
        if n.saturating_mul(min.max(1)) > left {
            return Err(ImageError::Truncated(format!(
                "{what}: {n} entries but {left} bytes left"
            )));
        }
        Ok(n)
    }
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], ImageError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn string(&mut self, what: &str) -> Result<String, ImageError> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| ImageError::Corrupt(format!("{what}: not UTF-8")))
    }
}

fn corrupt(msg: impl Into<String>) -> ImageError {
    ImageError::Corrupt(msg.into())
}

fn read_sig(r: &mut R<'_>) -> Result<ExportSig, ImageError> {
    let owner = r.string("import owner")?;
    let module = r.string("import module")?;
    let name = r.string("import name")?;
    let n = r.count(1, "import params")?;
    let mut params = Vec::with_capacity(n);
    for _ in 0..n {
        params.push(match r.u8("param type")? {
            0 => ParamType::Int,
            1 => ParamType::Str,
            x => return Err(corrupt(format!("parameter type {x}"))),
        });
    }
    let n = r.count(1, "import hints")?;
    let mut hints = Vec::with_capacity(n);
    for _ in 0..n {
        hints.push(match r.u8("hint")? {
            0 => ParamHint::Plain,
            1 => ParamHint::Route(
                kind_of(r.u8("hint route kind")?).ok_or_else(|| corrupt("hint route kind"))?,
            ),
            2 => ParamHint::Regex,
            3 => ParamHint::Flag,
            4 => ParamHint::BranchFlag,
            5 => ParamHint::PvName,
            6 => ParamHint::Subst,
            7 => ParamHint::PvList,
            8 => ParamHint::LeadingPv,
            9 => ParamHint::PvOrLiteral,
            x => return Err(corrupt(format!("parameter hint {x}"))),
        });
    }
    let ret = match r.u8("return type")? {
        0 => RetType::None,
        1 => RetType::Int,
        2 => RetType::Bool,
        3 => RetType::Str,
        4 => RetType::Xval,
        x => return Err(corrupt(format!("return type {x}"))),
    };
    let kemi = r.u8("kemi flag")? != 0;
    Ok(ExportSig {
        owner,
        module,
        name,
        params,
        hints,
        ret,
        kemi,
    })
}

fn sig_text(s: &ExportSig) -> String {
    let params: Vec<&str> = s
        .params
        .iter()
        .map(|p| match p {
            ParamType::Int => "int",
            ParamType::Str => "str",
        })
        .collect();
    format!(
        "module {}, KSR.{}({}) -> {:?}",
        s.owner,
        s.kemi_path(),
        params.join(", "),
        s.ret
    )
}

/// Checks magic, version, length and checksum; returns the payload.
fn checked_payload(bytes: &[u8]) -> Result<&[u8], ImageError> {
    let head = bytes
        .get(..HEADER)
        .ok_or_else(|| ImageError::Truncated(format!("{} bytes, no header", bytes.len())))?;
    if head.get(..8) != Some(&MAGIC[..]) {
        return Err(ImageError::BadMagic);
    }
    let mut h = R { b: head, at: 8 };
    let version = h.u32("version")?;
    if version != FORMAT_VERSION {
        return Err(ImageError::WrongVersion {
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let flags = h.u32("flags")?;
    let len = u64::from_le_bytes(h.arr("length")?);
    let crc = h.u32("checksum")?;
    let reserved = h.u32("reserved")?;
    if flags != 0 || reserved != 0 {
        return Err(corrupt(format!(
            "unknown header flags {flags:#x}/{reserved:#x}"
        )));
    }
    let payload = bytes.get(HEADER..).unwrap_or(&[]);
    if (payload.len() as u64) < len {
        return Err(ImageError::Truncated(format!(
            "payload of {} bytes, header says {len}",
            payload.len()
        )));
    }
    if payload.len() as u64 > len {
        return Err(corrupt(format!(
            "{} bytes after the payload",
            payload.len() as u64 - len
        )));
    }
    if crc32(payload) != crc {
        return Err(ImageError::Checksum);
    }
    Ok(payload)
}

/// The runtime's parameter blob of a checked image, without loading the program (the
/// runtime needs it to set up the modules the program's imports resolve against).
pub fn params(bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
    let payload = checked_payload(bytes)?;
    let mut r = R { b: payload, at: 0 };
    Ok(r.bytes("parameters")?.to_vec())
}

/// [`params`] as text (the runtime stores the cfg text of its parameters).
pub fn params_cfg(bytes: &[u8]) -> Result<String, ImageError> {
    String::from_utf8(params(bytes)?).map_err(|_| corrupt("parameters are not UTF-8 text"))
}

/// Loads an image: checks it, resolves its imports against `table`, parses its
/// pseudo-variables and formats against `pvs`, compiles its regexes, validates it.
pub fn load<C>(
    bytes: &[u8],
    table: &KsrTable<C>,
    pvs: &PvRegistry<C>,
) -> Result<Program, ImageError> {
    let payload = checked_payload(bytes)?;
    let mut r = R { b: payload, at: 0 };
    let mut p = Program {
        params: r.bytes("parameters")?.to_vec(),
        ..Program::default()
    };
    let n = r.count(8, "code")?;
    for _ in 0..n {
        let raw: [u8; 8] = r.arr("instruction")?;
        p.code
            .push(Insn::decode(raw).ok_or_else(|| corrupt(format!("bad instruction {raw:?}")))?);
    }
    let n = r.count(4, "lines")?;
    for _ in 0..n {
        p.lines.push(r.u32("line")?);
    }
    let n = r.count(1, "constants")?;
    for _ in 0..n {
        p.consts.push(match r.u8("constant tag")? {
            0 => Value::Null,
            1 => Value::Int(r.i64("int constant")?),
            2 => Value::Str(Bytes::copy_from_slice(r.bytes("string constant")?)),
            x => return Err(corrupt(format!("constant tag {x}"))),
        });
    }
    let n = r.count(4, "pseudo-variables")?;
    for _ in 0..n {
        let text = r.string("pseudo-variable")?;
        let spec = parse_pv(&text, pvs).map_err(|msg| ImageError::BadPv {
            text: text.clone(),
            msg,
        })?;
        p.pvs.push(spec);
    }
    let n = r.count(4, "formats")?;
    for _ in 0..n {
        let text = r.string("format")?;
        let f = parse_format(&text, pvs).map_err(|msg| ImageError::BadFormat {
            text: text.clone(),
            msg,
        })?;
        p.formats.push(f);
    }
    let n = r.count(5, "regexes")?;
    for _ in 0..n {
        let pattern = Bytes::copy_from_slice(r.bytes("regex")?);
        let icase = r.u8("regex flags")? != 0;
        let re = posix_regex(&pattern, icase).map_err(|msg| ImageError::BadRegex {
            pattern: String::from_utf8_lossy(&pattern).into_owned(),
            msg,
        })?;
        p.regexes.push(RegexEntry { pattern, icase, re });
    }
    let n = r.count(6, "networks")?;
    for _ in 0..n {
        let addr: std::net::IpAddr = match r.u8("address family")? {
            4 => std::net::Ipv4Addr::from(r.arr::<4>("IPv4 address")?).into(),
            6 => std::net::Ipv6Addr::from(r.arr::<16>("IPv6 address")?).into(),
            x => return Err(corrupt(format!("address family {x}"))),
        };
        let prefix = r.u8("prefix")?;
        if prefix > if addr.is_ipv4() { 32 } else { 128 } {
            return Err(corrupt(format!("prefix /{prefix}")));
        }
        p.nets.push(IpNet { addr, prefix });
    }
    let n = r.count(20, "imports")?;
    for _ in 0..n {
        let native = r.string("import native name")?;
        let arity = r.u8("import arity")?;
        let sig = read_sig(&mut r)?;
        let mut imp = Import {
            native,
            arity,
            sig,
            export: 0,
        };
        imp.export = resolve_import(table, &imp).ok_or_else(|| ImageError::MissingFunction {
            name: if imp.native.is_empty() {
                imp.sig.kemi_path()
            } else {
                format!("{}/{}", imp.native, imp.arity)
            },
            sig: sig_text(&imp.sig),
        })?;
        p.imports.push(imp);
    }
    let n = r.count(10, "call sites")?;
    for _ in 0..n {
        let import = r.u32("call import")?;
        let args = r.u16("call args")?;
        let argc = r.u8("call argc")?;
        let kind = CallKind::from_u8(r.u8("call kind")?).ok_or_else(|| corrupt("call kind"))?;
        let conv = r.u16("call conversions")?;
        p.calls.push(CallSite {
            import,
            args,
            argc,
            kind,
            conv,
        });
    }
    let n = r.count(7, "route sites")?;
    for _ in 0..n {
        p.route_sites.push(RouteSite {
            target: r.u32("route target")?,
            nest: r.u16("route nest")?,
            in_expr: r.u8("route in-expr")? != 0,
        });
    }
    let n = r.count(8, "int switches")?;
    for _ in 0..n {
        let default = r.u32("switch default")?;
        let k = r.count(8, "switch cases")?;
        let mut cases = Vec::with_capacity(k);
        for _ in 0..k {
            cases.push((r.i32("case value")?, r.u32("case target")?));
        }
        p.int_switches.push(IntSwitch::build(cases, default));
    }
    let n = r.count(8, "string switches")?;
    for _ in 0..n {
        let default = r.u32("switch default")?;
        let k = r.count(8, "switch cases")?;
        let mut cases = Vec::with_capacity(k);
        for _ in 0..k {
            let v = Bytes::copy_from_slice(r.bytes("case label")?);
            cases.push((v, r.u32("case target")?));
        }
        p.str_switches.push(StrSwitch::new(cases, default));
    }
    let n = r.count(12, "routes")?;
    for _ in 0..n {
        let kind = kind_of(r.u8("route kind")?).ok_or_else(|| corrupt("route kind"))?;
        let name = match r.u8("route name flag")? {
            0 => None,
            1 => Some(r.string("route name")?),
            x => return Err(corrupt(format!("route name flag {x}"))),
        };
        p.routes.push(RouteInfo {
            kind,
            name,
            entry: r.u32("route entry")?,
            end: r.u32("route end")?,
            regs: r.u16("route registers")?,
        });
    }
    if r.at != payload.len() {
        return Err(corrupt(format!(
            "{} unread bytes at the end",
            payload.len() - r.at
        )));
    }
    validate(&p)?;
    p.index_routes();
    Ok(p)
}

/// Checks that every instruction only refers to what exists: registers inside its route's
/// frame, table indices, jump targets inside its route, failure jumps after fallible
/// instructions, and that no route can run past its end.
pub fn validate(p: &Program) -> Result<(), ImageError> {
    if p.lines.len() != p.code.len() {
        return Err(corrupt("line table does not match the code"));
    }
    let mut covered = vec![false; p.code.len()];
    for (ri, r) in p.routes.iter().enumerate() {
        let (s, e) = (r.entry as usize, r.end as usize);
        if s >= e || e > p.code.len() {
            return Err(corrupt(format!("route {ri} has bad code range {s}..{e}")));
        }
        if r.regs == 0 {
            return Err(corrupt(format!("route {ri} has no registers")));
        }
        for (ip, c) in covered.iter_mut().enumerate().take(e).skip(s) {
            if std::mem::replace(c, true) {
                return Err(corrupt(format!("instruction {ip} belongs to two routes")));
            }
        }
        let regs = r.regs;
        let in_route = |to: u32| (to as usize) >= s && (to as usize) < e;
        for ip in s..e {
            let Some(insn) = p.code.get(ip) else {
                return Err(corrupt("code range"));
            };
            let (rs, n) = insn.regs();
            if rs.iter().take(n).any(|&x| x >= regs) {
                return Err(corrupt(format!(
                    "instruction {ip} uses a register outside its frame"
                )));
            }
            if let Some(to) = insn.target()
                && !in_route(to)
            {
                return Err(corrupt(format!("instruction {ip} jumps outside its route")));
            }
            let bad = |what: &str| corrupt(format!("instruction {ip} refers to a missing {what}"));
            match *insn {
                Insn::LoadK { k, .. } if k as usize >= p.consts.len() => {
                    return Err(bad("constant"));
                }
                Insn::Pv { pv, .. } | Insn::SetPv { pv, .. } | Insn::SetPvAll { pv, .. }
                    if pv as usize >= p.pvs.len() =>
                {
                    return Err(bad("pseudo-variable"));
                }
                Insn::Fmt { f, .. } if f as usize >= p.formats.len() => {
                    return Err(bad("format"));
                }
                Insn::Match { re, .. } if re as usize >= p.regexes.len() => {
                    return Err(bad("regex"));
                }
                Insn::IpMatch { net, .. } if net as usize >= p.nets.len() => {
                    return Err(bad("network"));
                }
                Insn::SwitchInt { t, .. } => {
                    let tab = p
                        .int_switches
                        .get(t as usize)
                        .ok_or_else(|| bad("switch table"))?;
                    if !in_route(tab.default)
                        || tab.dense.iter().any(|&x| x != u32::MAX && !in_route(x))
                        || tab.sparse.iter().any(|&(_, x)| !in_route(x))
                    {
                        return Err(corrupt(format!("switch at {ip} jumps outside its route")));
                    }
                }
                Insn::SwitchStr { t, .. } => {
                    let tab = p
                        .str_switches
                        .get(t as usize)
                        .ok_or_else(|| bad("switch table"))?;
                    if !in_route(tab.default) || tab.cases.iter().any(|(_, x)| !in_route(*x)) {
                        return Err(corrupt(format!("switch at {ip} jumps outside its route")));
                    }
                }
                Insn::Call { site, .. } => {
                    let cs = p.calls.get(site as usize).ok_or_else(|| bad("call site"))?;
                    let imp = p
                        .imports
                        .get(cs.import as usize)
                        .ok_or_else(|| bad("import"))?;
                    if cs.args as usize + cs.argc as usize > regs as usize {
                        return Err(corrupt(format!(
                            "call at {ip} passes registers outside its frame"
                        )));
                    }
                    if cs.argc as usize != imp.sig.params.len() {
                        return Err(corrupt(format!(
                            "call at {ip} passes {} arguments to {} ({} parameters)",
                            cs.argc,
                            imp.sig.name,
                            imp.sig.params.len()
                        )));
                    }
                }
                Insn::Route { site, .. } => {
                    let rs = p
                        .route_sites
                        .get(site as usize)
                        .ok_or_else(|| bad("route site"))?;
                    if rs.target as usize >= p.routes.len() {
                        return Err(bad("route"));
                    }
                }
                Insn::RouteDyn { site, .. } => {
                    let rs = p
                        .route_sites
                        .get(site as usize)
                        .ok_or_else(|| bad("route site"))?;
                    if rs.target >= regs as u32 {
                        return Err(corrupt(format!(
                            "instruction {ip} uses a register outside its frame"
                        )));
                    }
                }
                _ => {}
            }
            if insn.has_fail_jump()
                && (ip + 1 >= e || !matches!(p.code.get(ip + 1), Some(Insn::Jmp { .. })))
            {
                return Err(corrupt(format!("instruction {ip} has no failure jump")));
            }
        }
        let last = p.code.get(e - 1);
        if !matches!(
            last,
            Some(
                Insn::Jmp { .. }
                    | Insn::Ret { .. }
                    | Insn::Leave { .. }
                    | Insn::Exit { .. }
                    | Insn::Drop { .. }
                    | Insn::SwitchInt { .. }
                    | Insn::SwitchStr { .. }
            )
        ) {
            return Err(corrupt(format!("route {ri} can run past its end")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytecode::BinOp;
    use crate::program::FmtPart;

    struct Ctx;
    impl crate::Host for Ctx {
        fn ksr_table(&self) -> &'static KsrTable<Self> {
            static T: std::sync::OnceLock<KsrTable<Ctx>> = std::sync::OnceLock::new();
            T.get_or_init(table)
        }
        fn pv_registry(&self) -> &'static PvRegistry<Self> {
            static R: std::sync::OnceLock<PvRegistry<Ctx>> = std::sync::OnceLock::new();
            R.get_or_init(PvRegistry::new)
        }
    }

    fn sig(name: &str) -> ExportSig {
        ExportSig {
            owner: "m".into(),
            module: "m".into(),
            name: name.into(),
            params: vec![ParamType::Int],
            hints: vec![ParamHint::Flag],
            ret: RetType::Int,
            kemi: true,
        }
    }

    fn table() -> KsrTable<Ctx> {
        let mut t = KsrTable::new();
        let i = t.add(sig("f"), |_, a| {
            Value::Int(a.first().and_then(Value::as_int).unwrap_or(0) * 2)
        });
        t.add_native("f", 1, i, crate::RouteMask::ANY);
        t
    }

    /// `route { $x = f(21) + 1 ... }` built by hand.
    fn program() -> Program {
        let t = table();
        let mut p = Program {
            code: vec![
                Insn::LoadI { d: 1, i: 21 },
                Insn::Call { d: 0, site: 0 },
                Insn::LoadK { d: 2, k: 0 },
                Insn::Bin {
                    op: BinOp::IAdd,
                    d: 0,
                    a: 0,
                    b: 2,
                },
                Insn::Div { d: 0, a: 0, b: 2 },
                Insn::Jmp { to: 6 },
                Insn::Leave { s: 0 },
            ],
            lines: vec![1, 1, 2, 2, 3, 3, 4],
            consts: vec![Value::Int(1), Value::from("s"), Value::Null],
            nets: vec![IpNet {
                addr: "10.0.0.0"
                    .parse()
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
                prefix: 8,
            }],
            imports: vec![Import {
                native: "f".into(),
                arity: 1,
                sig: sig("f"),
                export: t.native("f", 1).map(|a| a.export).unwrap_or(0),
            }],
            calls: vec![CallSite {
                import: 0,
                args: 1,
                argc: 1,
                kind: CallKind::Module,
                conv: 0,
            }],
            int_switches: vec![IntSwitch::build(vec![(1, 2), (9, 3)], 6)],
            str_switches: vec![StrSwitch::new(vec![(Bytes::from_static(b"a"), 4)], 6)],
            routes: vec![RouteInfo {
                kind: RouteKind::Request,
                name: None,
                entry: 0,
                end: 7,
                regs: 3,
            }],
            params: b"opaque".to_vec(),
            ..Program::default()
        };
        p.formats.push(crate::program::FormatEntry {
            text: "lit".into(),
            parts: vec![FmtPart::Lit(Bytes::from_static(b"lit"))],
        });
        p.index_routes();
        p
    }

    fn reg() -> PvRegistry<Ctx> {
        PvRegistry::new()
    }

    #[test]
    fn round_trip_keeps_everything() {
        let p = program();
        let img = write(&p);
        let q = load(&img, &table(), &reg()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.code, p.code);
        assert_eq!(q.lines, p.lines);
        assert_eq!(q.consts, p.consts);
        assert_eq!(q.nets, p.nets);
        assert_eq!(q.imports, p.imports);
        assert_eq!(q.calls, p.calls);
        assert_eq!(q.int_switches, p.int_switches);
        assert_eq!(q.str_switches, p.str_switches);
        assert_eq!(q.routes, p.routes);
        assert_eq!(q.params, p.params);
        assert_eq!(params(&img).ok(), Some(b"opaque".to_vec()));
        assert_eq!(params_cfg(&img).ok().as_deref(), Some("opaque"));
        assert_eq!(q.formats.len(), 1);
        // And it runs: f(21) * ... = 42 + 1 = 43, / 1.
        let mut rc = 0;
        let out = crate::interp::run(
            &q,
            &mut Ctx,
            0,
            &Default::default(),
            &mut crate::interp::Stack::new(),
            &mut rc,
        );
        assert_eq!(out.code, 43);
        assert_eq!(rc, 42);
    }

    #[test]
    fn corruption_is_refused_never_run() {
        let img = write(&program());
        let t = table();
        let r = reg();
        // Every truncation.
        for n in 0..img.len() {
            assert!(
                load(img.get(..n).unwrap_or(&[]), &t, &r).is_err(),
                "truncated to {n}"
            );
        }
        // Every single-byte change (the checksum or the header check catches it).
        for i in 0..img.len() {
            let mut bad = img.clone();
            if let Some(b) = bad.get_mut(i) {
                *b ^= 0x5a;
            }
            assert!(load(&bad, &t, &r).is_err(), "byte {i} flipped");
        }
        let mut bad = img.clone();
        bad.push(0);
        assert!(matches!(load(&bad, &t, &r), Err(ImageError::Corrupt(_))));
        let mut v2 = img.clone();
        if let Some(b) = v2.get_mut(8) {
            *b = 2;
        }
        assert!(matches!(
            load(&v2, &t, &r),
            Err(ImageError::WrongVersion { found: 2, .. })
        ));
        assert!(matches!(
            load(b"nonsense-and-more-nonsense-bytes!!", &t, &r),
            Err(ImageError::BadMagic)
        ));
    }

    #[test]
    fn a_valid_checksum_does_not_make_bad_code_acceptable() {
        // Rewrite the payload with a register outside the frame, with a correct CRC.
        let mut p = program();
        p.code[0] = Insn::LoadI { d: 9, i: 1 };
        let img = write(&p);
        assert!(matches!(
            load(&img, &table(), &reg()),
            Err(ImageError::Corrupt(m)) if m.contains("register")
        ));
        let mut p = program();
        p.code[5] = Insn::Jmp { to: 99 };
        assert!(matches!(
            load(&write(&p), &table(), &reg()),
            Err(ImageError::Corrupt(_))
        ));
        let mut p = program();
        p.code[6] = Insn::Rc { d: 0 };
        assert!(
            matches!(load(&write(&p), &table(), &reg()), Err(ImageError::Corrupt(m)) if m.contains("past its end"))
        );
    }

    #[test]
    fn missing_or_changed_functions_are_named() {
        let img = write(&program());
        let empty: KsrTable<Ctx> = KsrTable::new();
        match load(&img, &empty, &reg()) {
            Err(ImageError::MissingFunction { name, sig }) => {
                assert_eq!(name, "f/1");
                assert!(sig.contains("KSR.m.f(int)"), "{sig}");
            }
            other => panic!("{other:?}"),
        }
        // Same name, different signature: refused too.
        let mut t: KsrTable<Ctx> = KsrTable::new();
        let mut s = sig("f");
        s.params = vec![ParamType::Str];
        let i = t.add(s, |_, _| Value::Int(1));
        t.add_native("f", 1, i, crate::RouteMask::ANY);
        assert!(matches!(
            load(&img, &t, &reg()),
            Err(ImageError::MissingFunction { .. })
        ));
    }

    #[test]
    fn crc_matches_the_standard() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
