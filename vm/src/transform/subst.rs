//! Kamailio substitution expressions `/re/replacement/flags` (its `subst_parser` and
//! `subst_run`), used by `{re.subst,...}` and usable by textops-style functions.
//!
//! * The first character is the separator (anything but `\`); a separator preceded by `\`
//!   does not end the regular expression.
//! * Replacement escapes: `\0`..`\9` (groups, `\0` the whole match), `\n`, `\r`, `\t`, `\\`,
//!   `\$`, `\u` (the request URI, i.e. `$ru`); any other escaped character stands for
//!   itself. An unescaped `$` starts a pseudo-variable, evaluated per use.
//! * Flags: `i` (ignore case), `g` (all matches), `s` (`.` matches newlines and `^`/`$` only
//!   match at the ends; by default they match at line boundaries, POSIX `REG_NEWLINE`).
//! * An empty match is an error, as in Kamailio.
//!
//! The regular expression is POSIX extended syntax, compiled with the `regex` crate on
//! bytes. The one semantic difference: POSIX picks the longest of alternatives starting at
//! the same position (`a|ab` on `ab` matches `ab`), the `regex` crate the first one.

use crate::pv::{PvParser, PvSpec};
use crate::value::Value;
use ahash::AHashMap;
use bytes::Bytes;
use regex::bytes::Regex;
use std::cell::RefCell;
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug)]
enum Token {
    Lit(Vec<u8>),
    Group(usize),
    /// Index into the pseudo-variables of the replacement.
    Pv(usize),
}

/// A compiled substitution.
#[derive(Debug)]
pub struct SubstExpr {
    regex: Regex,
    tokens: Vec<Token>,
    pvs: Vec<PvSpec>,
    global: bool,
}

/// Why applying a substitution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    #[error("the regular expression matched an empty string")]
    EmptyMatch,
}

/// Parses `/re/repl/flags`. Pseudo-variables in the replacement need a `parser`; without
/// one they are an error.
pub fn parse_subst_expr(expr: &str, parser: Option<&dyn PvParser>) -> Result<SubstExpr, String> {
    SubstExpr::parse(expr, parser)
}

impl SubstExpr {
    pub fn parse(expr: &str, parser: Option<&dyn PvParser>) -> Result<SubstExpr, String> {
        let b = expr.as_bytes();
        if b.len() < 3 {
            return Err(format!("substitution too short: {expr}"));
        }
        let sep = *b.first().ok_or("empty substitution")?;
        if sep == b'\\' {
            return Err(format!("invalid separator '\\' in {expr}"));
        }
        let mut p = 1;
        while p < b.len() && !(b.get(p) == Some(&sep) && b.get(p - 1) != Some(&b'\\')) {
            p += 1;
        }
        if p >= b.len() {
            return Err(format!("no separator found in {expr}"));
        }
        let re_text = expr.get(1..p).unwrap_or("");
        if b.len() < p + 2 {
            return Err(format!("substitution too short: {expr}"));
        }
        let mut tokens = Vec::new();
        let mut pvs = Vec::new();
        let mut lit = Vec::new();
        let mut i = p + 1;
        let mut closed = false;
        while let Some(&c) = b.get(i) {
            if c == b'\\' {
                let Some(&n) = b.get(i + 1) else {
                    // A trailing backslash escapes nothing; the separator is then missing.
                    break;
                };
                match n {
                    b'0'..=b'9' => {
                        flush(&mut tokens, &mut lit);
                        tokens.push(Token::Group((n - b'0') as usize));
                    }
                    b'n' => lit.push(b'\n'),
                    b'r' => lit.push(b'\r'),
                    b't' => lit.push(b'\t'),
                    b'u' => {
                        let parser = parser.ok_or("\\u needs the request URI")?;
                        let (spec, _) =
                            parser.parse_spec_prefix("$ru").map_err(|e| e.to_string())?;
                        flush(&mut tokens, &mut lit);
                        tokens.push(Token::Pv(pvs.len()));
                        pvs.push(spec);
                    }
                    other => lit.push(other),
                }
                i += 2;
            } else if c == b'$' {
                let parser = parser.ok_or("pseudo-variables need a parser")?;
                let rest = expr.get(i..).unwrap_or("");
                let (spec, used) = parser
                    .parse_spec_prefix(rest)
                    .map_err(|e| format!("bad pseudo-variable in replacement: {e}"))?;
                flush(&mut tokens, &mut lit);
                tokens.push(Token::Pv(pvs.len()));
                pvs.push(spec);
                i += used.max(1);
            } else if c == sep {
                closed = true;
                i += 1;
                break;
            } else {
                lit.push(c);
                i += 1;
            }
        }
        if !closed {
            return Err(format!("missing separator in {expr}"));
        }
        flush(&mut tokens, &mut lit);
        let (mut icase, mut dotall, mut global) = (false, false, false);
        for &f in b.get(i..).unwrap_or(&[]) {
            match f {
                b'i' => icase = true,
                b's' => dotall = true,
                b'g' => global = true,
                _ => return Err(format!("unknown flag '{}' in {expr}", f as char)),
            }
        }
        let mut pat = String::from("(?");
        if icase {
            pat.push('i');
        }
        pat.push_str(if dotall { "s-u)" } else { "m-u)" });
        pat.push_str(re_text);
        let regex =
            Regex::new(&pat).map_err(|e| format!("bad regular expression '{re_text}': {e}"))?;
        Ok(SubstExpr {
            regex,
            tokens,
            pvs,
            global,
        })
    }

    /// The pseudo-variables of the replacement, in the order their values must be passed to
    /// [`SubstExpr::apply`].
    pub fn replacement_pvs(&self) -> impl Iterator<Item = &PvSpec> {
        self.pvs.iter()
    }

    /// True with the `g` flag.
    pub fn is_global(&self) -> bool {
        self.global
    }

    /// Runs the substitution on `input` (up to its first NUL byte, like Kamailio), with the
    /// values of the replacement's pseudo-variables. `Ok(None)` when nothing matched.
    pub fn apply(&self, input: &[u8], pv_values: &[Value]) -> Result<Option<Vec<u8>>, SubstError> {
        let input = match memchr::memchr(0, input) {
            Some(n) => input.get(..n).unwrap_or(input),
            None => input,
        };
        let mut out = Vec::new();
        let mut last = 0usize;
        let mut pos = 0usize;
        let mut matched = false;
        while pos <= input.len() {
            let Some(caps) = self.regex.captures_at(input, pos) else {
                break;
            };
            let Some(m) = caps.get(0) else { break };
            if m.start() == m.end() {
                return Err(SubstError::EmptyMatch);
            }
            if !matched {
                out.reserve(input.len() + 16);
            }
            matched = true;
            out.extend_from_slice(input.get(last..m.start()).unwrap_or(&[]));
            for t in &self.tokens {
                match t {
                    Token::Lit(l) => out.extend_from_slice(l),
                    Token::Group(g) => {
                        if let Some(gm) = caps.get(*g) {
                            out.extend_from_slice(gm.as_bytes());
                        }
                    }
                    Token::Pv(k) => match pv_values.get(*k) {
                        Some(Value::Str(s)) => out.extend_from_slice(s),
                        Some(Value::Int(n)) => out.extend_from_slice(n.to_string().as_bytes()),
                        Some(Value::Null) | None => {}
                    },
                }
            }
            last = m.end();
            pos = m.end();
            if !self.global {
                break;
            }
        }
        if !matched {
            return Ok(None);
        }
        out.extend_from_slice(input.get(last..).unwrap_or(&[]));
        Ok(Some(out))
    }
}

fn flush(tokens: &mut Vec<Token>, lit: &mut Vec<u8>) {
    if !lit.is_empty() {
        tokens.push(Token::Lit(std::mem::take(lit)));
    }
}

/// Expressions compiled while parsing configurations, shared by all threads. Bounded so
/// that run-time parsing of ever-new texts cannot grow it without limit.
static STATIC_EXPRS: RwLock<Option<AHashMap<Box<str>, Arc<SubstExpr>>>> = RwLock::new(None);
const STATIC_EXPRS_MAX: usize = 4096;

thread_local! {
    /// Expressions that arrived through a pseudo-variable, per thread, bounded.
    static DYN_EXPRS: RefCell<AHashMap<Bytes, Option<Arc<SubstExpr>>>> = RefCell::new(AHashMap::new());
}
const DYN_EXPRS_MAX: usize = 256;

/// Keeps an expression compiled at parse time for `re_subst`.
pub(crate) fn remember(expr: &str, compiled: SubstExpr) {
    let Ok(mut g) = STATIC_EXPRS.write() else {
        return;
    };
    let map = g.get_or_insert_with(AHashMap::new);
    if map.len() < STATIC_EXPRS_MAX || map.contains_key(expr) {
        map.insert(expr.into(), Arc::new(compiled));
    }
}

fn lookup(expr: &Bytes) -> Option<Arc<SubstExpr>> {
    if let Ok(text) = std::str::from_utf8(expr)
        && let Ok(g) = STATIC_EXPRS.read()
        && let Some(e) = g.as_ref().and_then(|m| m.get(text))
    {
        return Some(e.clone());
    }
    DYN_EXPRS.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(e) = c.get(expr) {
            return e.clone();
        }
        let compiled = std::str::from_utf8(expr)
            .ok()
            .and_then(|t| SubstExpr::parse(t, None).ok())
            .map(Arc::new);
        if c.len() >= DYN_EXPRS_MAX {
            c.clear();
        }
        c.insert(expr.clone(), compiled.clone());
        compiled
    })
}

/// `{re.subst,/re/repl/flags}`: the value with the substitution applied; unchanged when
/// nothing matches. Parameters: the expression, then the values of the replacement's
/// pseudo-variables.
pub fn re_subst(v: &Value, args: &[Value]) -> Option<Value> {
    let input = super::nonempty_text(v)?;
    let expr = super::str_arg(args, 0)?;
    let se = lookup(&expr)?;
    match se.apply(&input, args.get(1..).unwrap_or(&[])) {
        Ok(Some(out)) => Some(Value::Str(Bytes::from(out))),
        Ok(None) => Some(v.clone()),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expr: &str, input: &str) -> Option<String> {
        let se = SubstExpr::parse(expr, None).unwrap();
        se.apply(input.as_bytes(), &[])
            .ok()?
            .map(|o| String::from_utf8_lossy(&o).into_owned())
    }

    #[test]
    fn substitutions() {
        assert_eq!(run("/a/b/", "banana").as_deref(), Some("bbnana"));
        assert_eq!(run("/a/b/g", "banana").as_deref(), Some("bbnbnb"));
        assert_eq!(run("/A/b/gi", "bAnana").as_deref(), Some("bbnbnb"));
        assert_eq!(
            run("/(.*)@(.*)/\\2:\\1/", "user@host").as_deref(),
            Some("host:user")
        );
        assert_eq!(run("/x/y/", "banana"), None);
        assert_eq!(run("#/#\\##g", "a/b/c").as_deref(), Some("a#b#c"));
        assert_eq!(run("/^b/X/g", "ab\nbc").as_deref(), Some("ab\nXc"));
        assert_eq!(run("/^b/X/gs", "ab\nbc"), None);
        assert_eq!(run("/a\\/b/c/", "xa/by").as_deref(), Some("xcy"));
        assert_eq!(run("/n/\\n\\t\\$/", "n").as_deref(), Some("\n\t$"));
        let se = SubstExpr::parse("/x*/y/", None).unwrap();
        assert_eq!(se.apply(b"abc", &[]), Err(SubstError::EmptyMatch));
        assert!(SubstExpr::parse("/a/b", None).is_err());
        assert!(SubstExpr::parse("/a/b/q", None).is_err());
        assert!(SubstExpr::parse("\\a\\b\\", None).is_err());
        assert!(SubstExpr::parse("/(/b/", None).is_err());
        assert!(SubstExpr::parse("/a/$var(x)/", None).is_err());
    }

    #[test]
    fn transformation_uses_dynamic_expressions() {
        let v = Value::from("banana");
        assert_eq!(
            re_subst(&v, &[Value::from("/n/N/g")]),
            Some(Value::from("baNaNa"))
        );
        assert_eq!(re_subst(&v, &[Value::from("/q/N/g")]), Some(v.clone()));
        assert_eq!(re_subst(&v, &[Value::from("/q/N")]), None);
        assert_eq!(re_subst(&Value::from(""), &[Value::from("/a/b/")]), None);
    }
}
