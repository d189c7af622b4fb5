//! A compiled native routing program: bytecode, constants, pseudo-variables, format
//! strings, regexes, switch tables, KSR imports and the route table.
//!
//! Everything the interpreter needs is resolved (export indices, parsed pseudo-variables,
//! compiled regexes), and everything an image needs to rebuild it is kept as text or by
//! name (pseudo-variable and format text, regex patterns, imports by name and signature),
//! so [`crate::image`] can write a program and load it into another process.

use crate::bytecode::{Insn, Reg};
use crate::ksr::{ExportSig, KsrTable};
use crate::pv::{PvRegistry, PvSpec};
use crate::route::RouteKind;
use crate::value::Value;
use ahash::AHashMap;
use bytes::Bytes;
use std::fmt::Write as _;

/// Version of the program layout; images of another version are refused.
pub const FORMAT_VERSION: u32 = 1;

/// Index of a route in [`Program::routes`].
pub type RouteId = u32;

/// An IP network for `src_ip == 10.0.0.0/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match (self.addr, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                let p = self.prefix.min(32) as u32;
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                let p = self.prefix.min(128) as u32;
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// One routing block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub kind: RouteKind,
    /// `None` for the main `request_route`, `reply_route`, `onsend_route`.
    pub name: Option<String>,
    /// First instruction.
    pub entry: u32,
    /// One past the last instruction of the route (routes are contiguous).
    pub end: u32,
    /// Registers of a frame of this route.
    pub regs: u16,
}

impl RouteInfo {
    /// `route[NAME]`, `failure_route[NAME]`, `request_route` ...
    pub fn title(&self) -> String {
        match (&self.name, self.kind) {
            (None, RouteKind::Request) => "request_route".into(),
            (None, k) => k.keyword().into(),
            (Some(n), k) => format!("{}[{n}]", k.keyword()),
        }
    }
}

/// How the interpreter treats a function call's return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CallKind {
    /// A module function: its return code becomes `$rc`, and 0 ends the script.
    Module = 0,
    /// A core action (`setflag`, `seturi`, ...): `$rc` is left alone.
    Core = 1,
    /// An implicit call the compiler made for an expression (`uri == myself`).
    Builtin = 2,
}

impl CallKind {
    pub fn from_u8(b: u8) -> Option<CallKind> {
        match b {
            0 => Some(CallKind::Module),
            1 => Some(CallKind::Core),
            2 => Some(CallKind::Builtin),
            _ => None,
        }
    }
}

/// A KSR function the program calls, by native name and signature; `export` is its index
/// in this process's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    /// The native cfg name and arity (`sl_send_reply`/2). Empty for imports found by KEMI
    /// name (`is_myself_ruri`).
    pub native: String,
    pub arity: u8,
    pub sig: ExportSig,
    pub export: u32,
}

/// Conversion of one argument right before a call (2 bits per argument in
/// [`CallSite::conv`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgConv {
    /// Already of the declared type.
    None = 0,
    /// To an integer: numbers (decimal, `0x` hex) convert, anything else fails the call.
    Int = 1,
    /// To a string: integers print in decimal, null is "".
    Str = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSite {
    pub import: u32,
    /// First argument register; arguments are consecutive.
    pub args: Reg,
    pub argc: u8,
    pub kind: CallKind,
    /// [`ArgConv`] of argument `i` in bits `2i..2i+2`.
    pub conv: u16,
}

impl CallSite {
    pub fn conv(&self, i: usize) -> ArgConv {
        match (self.conv >> (2 * i)) & 3 {
            1 => ArgConv::Int,
            2 => ArgConv::Str,
            _ => ArgConv::None,
        }
    }
}

/// A `route(...)` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSite {
    /// The route to run, or for [`Insn::RouteDyn`] the register holding its name.
    pub target: u32,
    /// Action-list nesting of the call inside its route (Kamailio counts every nested
    /// list against `max_recursive_level`).
    pub nest: u16,
    /// Called from inside an expression (`if (route(X))`): Kamailio runs it in a fresh
    /// action context, so the depth count and `$rc` start over.
    pub in_expr: bool,
}

/// Jump table of an integer `switch`: dense part plus sorted sparse cases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntSwitch {
    pub min: i32,
    /// Targets for `min`, `min + 1`, ... (`u32::MAX`: not a case).
    pub dense: Vec<u32>,
    /// Other cases, sorted by value.
    pub sparse: Vec<(i32, u32)>,
    pub default: u32,
}

impl IntSwitch {
    #[inline]
    pub fn lookup(&self, v: i32) -> u32 {
        let off = (v as i64) - (self.min as i64);
        if let Ok(i) = usize::try_from(off)
            && let Some(&t) = self.dense.get(i)
            && t != u32::MAX
        {
            return t;
        }
        match self.sparse.binary_search_by_key(&v, |&(k, _)| k) {
            Ok(i) => self.sparse.get(i).map(|&(_, t)| t).unwrap_or(self.default),
            Err(_) => self.default,
        }
    }

    /// Every case as (value, target).
    pub fn cases(&self) -> Vec<(i32, u32)> {
        let mut v: Vec<(i32, u32)> = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, t)| **t != u32::MAX)
            .map(|(i, t)| (self.min.wrapping_add(i as i32), *t))
            .collect();
        v.extend(self.sparse.iter().copied());
        v.sort_unstable();
        v
    }

    /// Builds the table: dense when the values are close together, sparse otherwise.
    pub fn build(mut cases: Vec<(i32, u32)>, default: u32) -> IntSwitch {
        cases.sort_unstable_by_key(|c| c.0);
        cases.dedup_by_key(|c| c.0);
        let (Some(lo), Some(hi)) = (cases.first().map(|c| c.0), cases.last().map(|c| c.0)) else {
            return IntSwitch {
                min: 0,
                dense: Vec::new(),
                sparse: Vec::new(),
                default,
            };
        };
        let span = (hi as i64 - lo as i64 + 1) as u64;
        // Dense when at least a quarter of the slots are used (and the table stays small).
        if span <= 1024 && span <= 4 * cases.len() as u64 {
            let mut dense = vec![u32::MAX; span as usize];
            for (v, t) in &cases {
                if let Some(slot) = dense.get_mut((*v as i64 - lo as i64) as usize) {
                    *slot = *t;
                }
            }
            IntSwitch {
                min: lo,
                dense,
                sparse: Vec::new(),
                default,
            }
        } else {
            IntSwitch {
                min: 0,
                dense: Vec::new(),
                sparse: cases,
                default,
            }
        }
    }
}

/// Hash dispatch of a string `switch` (exact, case-sensitive byte comparison).
#[derive(Clone, Debug)]
pub struct StrSwitch {
    pub cases: Vec<(Bytes, u32)>,
    pub default: u32,
    map: AHashMap<Bytes, u32>,
}

impl StrSwitch {
    pub fn new(cases: Vec<(Bytes, u32)>, default: u32) -> StrSwitch {
        let mut map = AHashMap::with_capacity(cases.len());
        // The first case with a given label wins, as in a sequential comparison.
        for (k, t) in &cases {
            map.entry(k.clone()).or_insert(*t);
        }
        StrSwitch {
            cases,
            default,
            map,
        }
    }

    #[inline]
    pub fn lookup(&self, s: &[u8]) -> u32 {
        self.map.get(s).copied().unwrap_or(self.default)
    }
}

impl PartialEq for StrSwitch {
    fn eq(&self, other: &Self) -> bool {
        self.cases == other.cases && self.default == other.default
    }
}

/// One piece of a format string.
#[derive(Clone, Debug)]
pub enum FmtPart {
    Lit(Bytes),
    Pv(PvSpec),
    /// `$rc` / `$?` / `$retcode`: the interpreter's last return code.
    Rc,
}

/// A string with embedded pseudo-variables, compiled once (`"$rU@$rd"`).
#[derive(Clone, Debug)]
pub struct FormatEntry {
    pub text: String,
    pub parts: Vec<FmtPart>,
}

impl FormatEntry {
    /// The text when there is nothing to evaluate.
    pub fn as_literal(&self) -> Option<Bytes> {
        match self.parts.as_slice() {
            [] => Some(Bytes::new()),
            [FmtPart::Lit(b)] => Some(b.clone()),
            _ => None,
        }
    }
}

/// A compiled regular expression with its source.
#[derive(Clone, Debug)]
pub struct RegexEntry {
    pub pattern: Bytes,
    /// `=~` matches case-insensitively; `case /"re":` does not.
    pub icase: bool,
    pub re: regex::bytes::Regex,
}

/// A compiled program, ready to run.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub code: Vec<Insn>,
    /// Source line of each instruction (0 when unknown), parallel to `code`.
    pub lines: Vec<u32>,
    pub consts: Vec<Value>,
    pub pvs: Vec<PvSpec>,
    pub formats: Vec<FormatEntry>,
    pub regexes: Vec<RegexEntry>,
    pub nets: Vec<IpNet>,
    pub imports: Vec<Import>,
    pub calls: Vec<CallSite>,
    pub route_sites: Vec<RouteSite>,
    pub int_switches: Vec<IntSwitch>,
    pub str_switches: Vec<StrSwitch>,
    pub routes: Vec<RouteInfo>,
    /// Global and module parameters as the runtime serialized them (opaque here).
    pub params: Vec<u8>,
    /// Routes that are `route[NAME]` sub-routes, by name, for `route($var(x))`.
    pub(crate) sub_routes: AHashMap<Box<[u8]>, RouteId>,
}

impl Program {
    /// Finds a route by kind and name (`None` for the unnamed main blocks).
    pub fn route(&self, kind: RouteKind, name: Option<&str>) -> Option<RouteId> {
        self.routes
            .iter()
            .position(|r| r.kind == kind && r.name.as_deref() == name)
            .map(|i| i as RouteId)
    }

    pub fn route_info(&self, id: RouteId) -> Option<&RouteInfo> {
        self.routes.get(id as usize)
    }

    /// The sub-route `route[name]` (what `route("name")` runs).
    #[inline]
    pub fn sub_route(&self, name: &[u8]) -> Option<RouteId> {
        self.sub_routes.get(name).copied()
    }

    /// Rebuilds the name index; call after changing `routes`.
    pub fn index_routes(&mut self) {
        self.sub_routes.clear();
        for (i, r) in self.routes.iter().enumerate() {
            if r.kind == RouteKind::Request
                && let Some(n) = &r.name
            {
                self.sub_routes
                    .entry(n.as_bytes().into())
                    .or_insert(i as RouteId);
            }
        }
    }

    /// The assembly listing behind `ksr compile --emit asm`.
    pub fn disassemble(&self) -> String {
        let mut out = String::new();
        for (ri, r) in self.routes.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}:                            ; route {ri}, {} registers",
                r.title(),
                r.regs
            );
            for ip in r.entry..r.end {
                let Some(insn) = self.code.get(ip as usize) else {
                    break;
                };
                let line = self.lines.get(ip as usize).copied().unwrap_or(0);
                let mut text = format!("{ip:>6}  {insn}");
                if let Some(c) = self.comment(insn) {
                    let pad = 36usize.saturating_sub(text.len());
                    text.push_str(&" ".repeat(pad));
                    text.push_str("; ");
                    text.push_str(&c);
                }
                if line > 0 {
                    let pad = 72usize.saturating_sub(text.len());
                    text.push_str(&" ".repeat(pad.max(1)));
                    let _ = write!(text, "  # line {line}");
                }
                out.push_str(text.trim_end());
                out.push('\n');
            }
            out.push('\n');
        }
        for (i, t) in self.int_switches.iter().enumerate() {
            let cases: Vec<String> = t
                .cases()
                .iter()
                .map(|(v, to)| format!("{v}=>@{to}"))
                .collect();
            let _ = writeln!(out, "; itab{i}: {} default @{}", cases.join(" "), t.default);
        }
        for (i, t) in self.str_switches.iter().enumerate() {
            let cases: Vec<String> = t
                .cases
                .iter()
                .map(|(v, to)| format!("{:?}=>@{to}", String::from_utf8_lossy(v)))
                .collect();
            let _ = writeln!(out, "; stab{i}: {} default @{}", cases.join(" "), t.default);
        }
        out
    }

    fn comment(&self, insn: &Insn) -> Option<String> {
        Some(match *insn {
            Insn::LoadK { k, .. } => format!("{:?}", self.consts.get(k as usize)?),
            Insn::Pv { pv, .. } | Insn::SetPv { pv, .. } | Insn::SetPvAll { pv, .. } => {
                self.pvs.get(pv as usize)?.text.to_string()
            }
            Insn::Fmt { f, .. } => format!("{:?}", self.formats.get(f as usize)?.text),
            Insn::Match { re, .. } => {
                let r = self.regexes.get(re as usize)?;
                format!(
                    "/{}/{}",
                    String::from_utf8_lossy(&r.pattern),
                    if r.icase { "i" } else { "" }
                )
            }
            Insn::IpMatch { net, .. } => {
                let n = self.nets.get(net as usize)?;
                format!("{}/{}", n.addr, n.prefix)
            }
            Insn::Call { site, .. } => {
                let cs = self.calls.get(site as usize)?;
                let imp = self.imports.get(cs.import as usize)?;
                let name = if imp.native.is_empty() {
                    format!("KSR.{}", imp.sig.kemi_path())
                } else {
                    format!("{} = KSR.{}", imp.native, imp.sig.kemi_path())
                };
                let args = if cs.argc == 0 {
                    String::new()
                } else {
                    format!("r{}..r{}", cs.args, cs.args as usize + cs.argc as usize - 1)
                };
                let kind = match cs.kind {
                    CallKind::Module => "module",
                    CallKind::Core => "core",
                    CallKind::Builtin => "builtin",
                };
                format!("{name}({args}) {kind}")
            }
            Insn::Route { site, .. } => {
                let s = self.route_sites.get(site as usize)?;
                let r = self.routes.get(s.target as usize)?;
                format!("{} nest {}", r.title(), s.nest)
            }
            Insn::RouteDyn { site, .. } => {
                let s = self.route_sites.get(site as usize)?;
                format!("route(r{}) nest {}", s.target, s.nest)
            }
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------- pseudo-variables

/// True for the return-code pseudo-variables the interpreter serves itself.
pub fn is_rc_pv(text: &str) -> bool {
    matches!(text.trim(), "$rc" | "$?" | "$retcode")
}

/// Parses one pseudo-variable. The single place that calls the pseudo-variable parser, so
/// a different parser plugs in here.
pub fn parse_pv<C>(text: &str, reg: &PvRegistry<C>) -> Result<PvSpec, String> {
    crate::pv::parse_spec(text, reg).map_err(|e| e.message)
}

/// Length of a `$rc` / `$?` / `$retcode` token at the start of `rest`, if it is one.
fn rc_token(rest: &str) -> Option<usize> {
    ["$retcode", "$rc", "$?"].iter().find_map(|p| {
        let after = rest.as_bytes().get(p.len()).copied();
        (rest.starts_with(p)
            && !after
                .is_some_and(|a| a.is_ascii_alphanumeric() || a == b'_' || a == b'(' || a == b'.'))
        .then_some(p.len())
    })
}

/// Parses a format string with Kamailio's rules (the pseudo-variable parser's
/// `parse_format`), except that `$rc`, `$?` and `$retcode` read the interpreter's return
/// code rather than a registered class.
pub fn parse_format<C>(text: &str, reg: &PvRegistry<C>) -> Result<FormatEntry, String> {
    // Split at top-level return-code tokens; everything else goes to the real parser.
    let b = text.as_bytes();
    let mut segments: Vec<(&str, bool)> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != b'$' {
            i += 1;
            continue;
        }
        let rest = text.get(i..).unwrap_or("");
        if b.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        if let Some(n) = rc_token(rest) {
            segments.push((text.get(start..i).unwrap_or(""), false));
            segments.push((text.get(i..i + n).unwrap_or(""), true));
            i += n;
            start = i;
            continue;
        }
        // Skip over a whole pseudo-variable so tokens inside it are left alone.
        match crate::pv::parse_spec_prefix(rest, reg) {
            Ok((_, used)) => i += used.max(1),
            Err(_) => i += 1,
        }
    }
    segments.push((text.get(start..).unwrap_or(""), false));
    let mut parts = Vec::new();
    for (seg, is_rc) in segments {
        if is_rc {
            parts.push(FmtPart::Rc);
            continue;
        }
        if seg.is_empty() {
            continue;
        }
        let f = crate::pv::parse_format(seg, reg).map_err(|e| e.message)?;
        for p in f.parts {
            match p {
                crate::pv::FormatPart::Lit(l) => match parts.last_mut() {
                    Some(FmtPart::Lit(prev)) => {
                        let mut v = prev.to_vec();
                        v.extend_from_slice(&l);
                        *prev = Bytes::from(v);
                    }
                    _ => parts.push(FmtPart::Lit(l)),
                },
                crate::pv::FormatPart::Pv(spec) => parts.push(FmtPart::Pv(spec)),
            }
        }
    }
    Ok(FormatEntry {
        text: text.to_string(),
        parts,
    })
}

/// True when `text` is a format string for Kamailio (it contains `$`).
pub fn has_pv(text: &str) -> bool {
    crate::pv::has_pv(text)
}

// ---------------------------------------------------------------- regular expressions

/// Compiles a POSIX extended regular expression the way glibc's `regcomp` with
/// `REG_EXTENDED` (and `REG_ICASE` when `icase`) reads it, into a byte regex with the same
/// meaning: `.` matches any byte including newline, `^`/`$` anchor the whole subject,
/// bracket expressions treat `\` literally, a repetition or `{` with nothing to repeat is
/// an error, stacked repetitions nest (`a+?` is `(a+)?`), an unmatched `)` is literal,
/// and (a glibc quirk under `REG_ICASE`) an escaped lowercase letter that is not a GNU
/// operator never matches. Back-references are refused.
pub fn posix_regex(pattern: &[u8], icase: bool) -> Result<regex::bytes::Regex, String> {
    let translated = posix_to_rust(pattern, icase)?;
    let full = format!("(?s{}-u){translated}", if icase { "i" } else { "" });
    regex::bytes::RegexBuilder::new(&full)
        .unicode(false)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => s.lines().last().unwrap_or("syntax error").to_string(),
            other => other.to_string(),
        })
}

fn push_lit(out: &mut String, c: u8) {
    if c.is_ascii() && !c.is_ascii_control() {
        out.push_str(&regex::escape(&(c as char).to_string()));
    } else {
        let _ = write!(out, "\\x{c:02x}");
    }
}

/// glibc's `RE_DUP_MAX`.
const DUP_MAX: u32 = 0x7fff;

fn posix_to_rust(p: &[u8], icase: bool) -> Result<String, String> {
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut depth = 0usize;
    // Where the last atom starts in `out` (None: nothing to repeat here), and whether a
    // repetition already follows it.
    let mut atom: Option<usize> = None;
    let mut repeated = false;
    let rep = |out: &mut String, atom: Option<usize>, repeated: &mut bool, op: &str| {
        let Some(start) = atom else {
            return Err("invalid preceding regular expression".to_string());
        };
        if *repeated {
            out.insert_str(start, "(?:");
            out.push(')');
        }
        out.push_str(op);
        *repeated = true;
        Ok(())
    };
    while let Some(&c) = p.get(i) {
        match c {
            b'\\' => {
                let Some(&n) = p.get(i + 1) else {
                    return Err("trailing backslash".into());
                };
                let start = out.len();
                match n {
                    b'1'..=b'9' => return Err("back-references are not supported".into()),
                    b'w' | b'W' | b's' | b'S' => {
                        out.push('\\');
                        out.push(n as char);
                    }
                    b'b' | b'B' | b'<' | b'>' | b'`' | b'\'' => {
                        out.push_str(match n {
                            b'b' | b'<' | b'>' => "\\b",
                            b'B' => "\\B",
                            b'`' => "\\A",
                            _ => "\\z",
                        });
                        // Assertions cannot be repeated.
                        i += 2;
                        atom = None;
                        repeated = false;
                        continue;
                    }
                    b'a'..=b'z' if icase => out.push_str("(?:\\b\\B)"),
                    _ => push_lit(&mut out, n),
                }
                i += 2;
                atom = Some(start);
                repeated = false;
            }
            b'[' => {
                let start = out.len();
                i = bracket(p, i, &mut out)?;
                atom = Some(start);
                repeated = false;
            }
            b'{' => {
                let Some((min, max, end)) = interval(p, i) else {
                    return Err("invalid interval".into());
                };
                let hi = match max {
                    Some(Some(m)) => m,
                    Some(None) | None => min,
                };
                if min > DUP_MAX || hi > DUP_MAX || hi < min {
                    return Err("invalid interval".into());
                }
                let op = match max {
                    Some(Some(m)) => format!("{{{min},{m}}}"),
                    Some(None) => format!("{{{min},}}"),
                    None => format!("{{{min}}}"),
                };
                rep(&mut out, atom, &mut repeated, &op)?;
                i = end;
            }
            b'*' | b'+' | b'?' => {
                rep(&mut out, atom, &mut repeated, &(c as char).to_string())?;
                i += 1;
            }
            b'(' => {
                depth += 1;
                out.push('(');
                i += 1;
                atom = None;
                repeated = false;
            }
            b')' if depth > 0 => {
                depth -= 1;
                out.push(')');
                i += 1;
                // The whole group is the atom a following repetition applies to.
                let mut level = 0usize;
                let mut start = out.len() - 1;
                for (k, ch) in out.char_indices().rev() {
                    match ch {
                        ')' if !escaped(&out, k) => level += 1,
                        '(' if !escaped(&out, k) => {
                            level -= 1;
                            if level == 0 {
                                start = k;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                atom = Some(start);
                repeated = false;
            }
            b'|' => {
                out.push('|');
                i += 1;
                atom = None;
                repeated = false;
            }
            b'^' | b'$' => {
                out.push(c as char);
                i += 1;
                atom = None;
                repeated = false;
            }
            b'.' => {
                atom = Some(out.len());
                out.push('.');
                i += 1;
                repeated = false;
            }
            _ => {
                // `)` without an open group is an ordinary character in POSIX EREs.
                atom = Some(out.len());
                push_lit(&mut out, c);
                i += 1;
                repeated = false;
            }
        }
    }
    Ok(out)
}

/// True when the character at byte `k` of `s` is escaped by an odd run of backslashes.
fn escaped(s: &str, k: usize) -> bool {
    let b = s.as_bytes();
    let mut n = 0;
    let mut j = k;
    while j > 0 && b.get(j - 1) == Some(&b'\\') {
        n += 1;
        j -= 1;
    }
    n % 2 == 1
}

/// `{n}`, `{n,}`, `{n,m}`, `{,m}`, `{,}` at `p[i]`: (min, max, end). `max` is `None` for
/// `{n}`, `Some(None)` for an open upper bound.
fn interval(p: &[u8], i: usize) -> Option<(u32, Option<Option<u32>>, usize)> {
    let mut j = i + 1;
    let num = |j: &mut usize| -> Option<u32> {
        let start = *j;
        while p.get(*j).is_some_and(|c| c.is_ascii_digit()) {
            *j += 1;
        }
        if *j == start {
            return None;
        }
        std::str::from_utf8(p.get(start..*j)?).ok()?.parse().ok()
    };
    let min = num(&mut j);
    if p.get(j) == Some(&b'}') {
        return Some((min?, None, j + 1));
    }
    if p.get(j) != Some(&b',') {
        return None;
    }
    j += 1;
    let max = num(&mut j);
    if p.get(j) != Some(&b'}') {
        return None;
    }
    Some((min.unwrap_or(0), Some(max), j + 1))
}

/// A bracket expression starting at `p[i] == '['`; returns the index after its `]`.
fn bracket(p: &[u8], i: usize, out: &mut String) -> Result<usize, String> {
    let mut j = i + 1;
    out.push('[');
    if p.get(j) == Some(&b'^') {
        out.push('^');
        j += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = p.get(j) else {
            return Err("unmatched [".into());
        };
        if c == b']' && !first {
            out.push(']');
            return Ok(j + 1);
        }
        first = false;
        if c == b'[' {
            match p.get(j + 1) {
                Some(b':') => {
                    let end = p
                        .get(j + 2..)
                        .and_then(|rest| rest.windows(2).position(|w| w == b":]"))
                        .ok_or("unmatched [:")?;
                    let name = p.get(j + 2..j + 2 + end).unwrap_or(b"");
                    let name = std::str::from_utf8(name).map_err(|_| "bad class")?;
                    const CLASSES: [&str; 12] = [
                        "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print",
                        "punct", "space", "upper", "xdigit",
                    ];
                    if !CLASSES.contains(&name) {
                        return Err(format!("invalid character class '{name}'"));
                    }
                    let _ = write!(out, "[:{name}:]");
                    j += 2 + end + 2;
                    continue;
                }
                Some(&d @ (b'.' | b'=')) => {
                    // A single-character collating element or equivalence class.
                    match (p.get(j + 2), p.get(j + 3), p.get(j + 4)) {
                        (Some(&ch), Some(&d2), Some(b']')) if d2 == d => {
                            push_lit(out, ch);
                            j += 5;
                            continue;
                        }
                        _ => return Err("unsupported collating element".into()),
                    }
                }
                _ => {}
            }
        }
        match c {
            b'-' => {
                // A range dash, or a literal dash at the start or end of the list.
                let last = p.get(j + 1) == Some(&b']');
                if last || out.ends_with('[') || out.ends_with("[^") {
                    out.push_str("\\-");
                } else {
                    out.push('-');
                }
            }
            _ => push_lit(out, c),
        }
        j += 1;
    }
}

// ---------------------------------------------------------------- integers

/// Kamailio's string to integer conversion in expressions (`rval_get_int`): "" is 0, a
/// decimal number with an optional sign, else `0x` hex, else 0. Out-of-range decimals
/// are 0.
pub fn str_to_int(s: &[u8]) -> i32 {
    parse_int_strict(s).unwrap_or(0)
}

/// Like [`str_to_int`] but `None` when the text is not a number.
pub fn parse_int_strict(s: &[u8]) -> Option<i32> {
    if s.is_empty() {
        return Some(0);
    }
    if let Some(v) = parse_dec(s) {
        return Some(v);
    }
    if s.len() > 2 && s.first() == Some(&b'0') && matches!(s.get(1), Some(b'x') | Some(b'X')) {
        let mut v: u32 = 0;
        for &c in s.get(2..).unwrap_or(b"") {
            let d = (c as char).to_digit(16)?;
            v = v.wrapping_mul(16).wrapping_add(d);
        }
        return Some(v as i32);
    }
    None
}

fn parse_dec(s: &[u8]) -> Option<i32> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
        if v > i32::MAX as i64 + 1 {
            return None;
        }
    }
    let v = if neg { -v } else { v };
    i32::try_from(v).ok()
}

// ---------------------------------------------------------------- resolution

/// Finds the export an import names in `table`: by native alias, then by KEMI path, then
/// by signature; the signature must match exactly.
pub fn resolve_import<C>(table: &KsrTable<C>, imp: &Import) -> Option<u32> {
    let sig_ok = |idx: u32| table.get(idx).is_some_and(|e| e.sig == imp.sig);
    if !imp.native.is_empty()
        && let Some(a) = table.native(&imp.native, imp.arity)
        && sig_ok(a.export)
    {
        return Some(a.export);
    }
    if imp.sig.kemi
        && let Some(i) = table.kemi(&imp.sig.module, &imp.sig.name)
        && sig_ok(i)
    {
        return Some(i);
    }
    table
        .exports()
        .find(|(_, e)| e.sig == imp.sig)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        posix_regex(p.as_bytes(), true)
            .map(|r| r.is_match(s.as_bytes()))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn posix_regexes_mean_what_regcomp_means() {
        assert!(m("^HEL", "Hello"));
        assert!(m("a.b", "a\nb"));
        assert!(m("[\\.]", "\\"));
        assert!(!m("[\\.]", "x"));
        assert!(m("a{2}", "xaay"));
        assert!(m("a{,2}b", "b"));
        assert!(m("a{,}", ""));
        assert!(m("(|a)", ""));
        assert!(m("[]x]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[[:digit:]]+", "42"));
        assert!(m("[[.a.]]", "a"));
        assert!(m("a&&b", "a&&b"));
        assert!(m("a)", "a)"));
        assert!(m("a{1}{2}", "aa"));
        assert!(!m("^a{1}{2}$", "a"));
        // glibc: `a+?` is `(a+)?`, so it matches without any `a`.
        assert!(m("^xa+?$", "x"));
        assert!(m("(ab)+$", "abab"));
        // Escaped lowercase letters never match under REG_ICASE; uppercase ones do.
        assert!(!m("a\\d", "ad"));
        assert!(!m("a\\d", "a1"));
        assert!(m("a\\D", "ad"));
        assert!(m("\\w+", "ab"));
        assert!(m("\\<b", "a b"));
        let cs = posix_regex(b"a\\d", false).unwrap_or_else(|e| panic!("{e}"));
        assert!(cs.is_match(b"ad"));
        for bad in [
            "*a",
            "a|*b",
            "(*a)",
            "x{",
            "{a",
            "a{x}",
            "a{2,1}",
            "a\\",
            "[a",
            "[[:foo:]]",
            "(a)\\1",
            "a(",
            "a{65536}",
        ] {
            assert!(posix_regex(bad.as_bytes(), true).is_err(), "{bad}");
        }
        let cs = posix_regex(b"^opt", false).unwrap_or_else(|e| panic!("{e}"));
        assert!(!cs.is_match(b"OPTIONS"));
    }

    #[test]
    fn string_to_int_like_kamailio() {
        assert_eq!(str_to_int(b""), 0);
        assert_eq!(str_to_int(b"42"), 42);
        assert_eq!(str_to_int(b"-7"), -7);
        assert_eq!(str_to_int(b"+7"), 7);
        assert_eq!(str_to_int(b"0x1A"), 26);
        assert_eq!(str_to_int(b"42abc"), 0);
        assert_eq!(str_to_int(b" 1"), 0);
        assert_eq!(str_to_int(b"2147483648"), 0);
        assert_eq!(str_to_int(b"-2147483648"), i32::MIN);
        assert_eq!(parse_int_strict(b"abc"), None);
    }

    #[test]
    fn int_switch_tables() {
        let t = IntSwitch::build(vec![(1, 10), (2, 20), (4, 40)], 99);
        assert!(!t.dense.is_empty());
        assert_eq!(t.lookup(2), 20);
        assert_eq!(t.lookup(3), 99);
        assert_eq!(t.lookup(i32::MIN), 99);
        let s = IntSwitch::build(vec![(1, 10), (1_000_000, 20), (-5, 30)], 99);
        assert!(s.dense.is_empty());
        assert_eq!(s.lookup(1_000_000), 20);
        assert_eq!(s.lookup(-5), 30);
        assert_eq!(s.lookup(0), 99);
        assert_eq!(s.cases(), vec![(-5, 30), (1, 10), (1_000_000, 20)]);
    }
}
