//! The preprocessor, with Kamailio's semantics: `#!define` and friends, `#!ifdef`/`#!ifexp`
//! blocks, `include_file`/`import_file`, `#!subst`/`#!substdef`, compatibility headers, and
//! substitution of defined IDs in the body.
//!
//! It drives the lexer file by file and hands the parser one token stream in which every
//! token still points at its original file and offset. Skipped `#!ifdef` regions are scanned
//! for directives only, never lexed (as Kamailio does), so a stray quote in a disabled block
//! does no harm.

use crate::ast::{FileId, MsgField, Span};
use crate::diag::Diagnostic;
use crate::lexer::{DirectiveTok, LexError, RawTok};
use crate::source::SourceMap;
use crate::token::{Tok, keyword};
use bytes::Bytes;
use logos::Logos;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Kamailio's include nesting limit (MAX_INCLUDE_DEPTH).
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// Kamailio's define table size (MAX_DEFINES).
pub const MAX_DEFINES: usize = 512;
const MAX_EXPANSION_DEPTH: usize = 32;

/// Script compatibility mode, set by `#!KAMAILIO`, `#!SER`, `#!MAXCOMPAT`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compat {
    Kamailio,
    Ser,
    #[default]
    Max,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-A NAME[=VALUE]` defines, applied before the file is read.
    pub defines: Vec<(String, Option<String>)>,
}

#[derive(Clone, Debug)]
struct Define {
    value: Option<String>,
}

#[derive(Clone, Debug)]
struct IfFrame {
    /// The enclosing region is active.
    parent_active: bool,
    /// The condition of the `#!if*` was true.
    cond: bool,
    else_seen: bool,
    active: bool,
    span: Span,
}

struct Subst {
    re: regex::Regex,
    repl: String,
    global: bool,
}

pub struct Output {
    pub tokens: Vec<(Tok, Span)>,
    pub compat: Compat,
    /// Final define table (for `--cfg-print` and debugging).
    pub defines: Vec<(String, Option<String>)>,
}

pub struct Preprocessor<'s> {
    sources: &'s mut SourceMap,
    defines: HashMap<String, Define>,
    ifs: Vec<IfFrame>,
    substs: Vec<Subst>,
    out: Vec<(Tok, Span)>,
    diags: Vec<Diagnostic>,
    compat: Compat,
    depth: usize,
    expanding: Vec<String>,
    /// Where the last emitted token came from directly (for string concatenation).
    last_direct_str: Option<(usize, FileId, u32)>,
    /// Collecting a `route[...]` name: index in `out` of the `[`.
    route_name: Option<usize>,
}

/// Runs the preprocessor on `file` (already in `sources`).
pub fn preprocess(
    sources: &mut SourceMap,
    file: FileId,
    opts: &Options,
) -> (Output, Vec<Diagnostic>) {
    let mut pp = Preprocessor {
        sources,
        defines: HashMap::new(),
        ifs: Vec::new(),
        substs: Vec::new(),
        out: Vec::new(),
        diags: Vec::new(),
        compat: Compat::default(),
        depth: 0,
        expanding: Vec::new(),
        last_direct_str: None,
        route_name: None,
    };
    for (k, v) in [
        ("KAMAILIO_5", None),
        ("KAMAILIO_5_6", None),
        ("KAMAILIO_5_6_3", None),
        ("KAMAILIO_VERSION", Some("5006003")),
        ("OS_NAME", Some("\"linux\"")),
    ] {
        pp.defines.insert(
            k.into(),
            Define {
                value: v.map(String::from),
            },
        );
    }
    for (k, v) in &opts.defines {
        pp.defines.insert(k.clone(), Define { value: v.clone() });
    }
    pp.run_file(file);
    for f in std::mem::take(&mut pp.ifs) {
        pp.diags.push(
            Diagnostic::error(f.span, "missing #!endif for this #!ifdef/#!ifndef/#!ifexp")
                .with_note("preprocessor conditionals must be balanced"),
        );
    }
    let mut defines: Vec<(String, Option<String>)> = pp
        .defines
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    defines.sort();
    let out = Output {
        tokens: pp.out,
        compat: pp.compat,
        defines,
    };
    (out, pp.diags)
}

impl Preprocessor<'_> {
    fn active(&self) -> bool {
        self.ifs.last().is_none_or(|f| f.active)
    }

    fn text_of(&self, file: FileId) -> std::sync::Arc<str> {
        self.sources
            .file(file)
            .map(|f| f.text.clone())
            .unwrap_or_else(|| std::sync::Arc::from(""))
    }

    fn run_file(&mut self, file: FileId) {
        let text = self.text_of(file);
        let mut pos = 0usize;
        'outer: while pos < text.len() {
            if !self.active() {
                pos = self.skip(&text, pos, file);
                continue;
            }
            let mut lx = RawTok::lexer(&text[pos..]);
            while let Some(res) = lx.next() {
                let r = lx.span();
                let span = Span::new(file, (pos + r.start) as u32, (pos + r.end) as u32);
                match res {
                    Err(e) => self.lex_error(e, span),
                    Ok(RawTok::Directive(d)) => {
                        self.directive(&d, span, file);
                        if !self.active() {
                            pos += r.end;
                            continue 'outer;
                        }
                    }
                    Ok(RawTok::Ident(name)) if name == "include_file" || name == "import_file" => {
                        match lx.next() {
                            Some(Ok(RawTok::DqStr(p))) | Some(Ok(RawTok::SqStr(p))) => {
                                let r2 = lx.span();
                                let pspan =
                                    Span::new(file, (pos + r.start) as u32, (pos + r2.end) as u32);
                                self.include(&p, name == "include_file", pspan, file);
                            }
                            _ => self.diags.push(Diagnostic::error(
                                span,
                                format!("{name}: the file name must follow as a quoted string"),
                            )),
                        }
                    }
                    Ok(t) => self.emit_raw(t, span, true),
                }
            }
            break;
        }
    }

    fn lex_error(&mut self, e: LexError, span: Span) {
        self.diags.push(Diagnostic::error(span, e.to_string()));
    }

    /// Scans a skipped region for the directives that end or nest it; returns where lexing
    /// resumes.
    fn skip(&mut self, text: &str, mut pos: usize, file: FileId) -> usize {
        let bytes = text.as_bytes();
        while pos < bytes.len() {
            let Some(i) = memchr::memchr2(b'#', b'!', &bytes[pos..]) else {
                return bytes.len();
            };
            let at = pos + i;
            let is_prefix =
                bytes.get(at + 1) == Some(&b'!') && (bytes[at] == b'#' || bytes[at] == b'!');
            if !is_prefix {
                pos = at + 1;
                continue;
            }
            let word_start = at + 2;
            let word_len = bytes[word_start..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            let word = &text[word_start..word_start + word_len];
            let line_end = memchr::memchr(b'\n', &bytes[word_start..])
                .map(|n| word_start + n)
                .unwrap_or(bytes.len());
            if matches!(word, "ifdef" | "ifndef" | "ifexp" | "else" | "endif") {
                let d = DirectiveTok {
                    name: word.to_string(),
                    rest: text[word_start + word_len..line_end]
                        .trim_end_matches('\r')
                        .to_string(),
                    rest_offset: word_start + word_len,
                };
                let span = Span::new(file, at as u32, line_end as u32);
                self.directive(&d, span, file);
                if self.active() {
                    return line_end;
                }
            }
            pos = word_start + word_len.max(1);
        }
        bytes.len()
    }

    fn define(&mut self, name: &str, value: Option<String>, mode: &str, span: Span) {
        let exists = self.defines.contains_key(name);
        match mode {
            "trydef" if exists => return,
            "redef" => {}
            _ if exists => {
                self.diags
                    .push(Diagnostic::error(span, format!("already defined: {name}")));
                return;
            }
            _ => {}
        }
        if !exists && self.defines.len() >= MAX_DEFINES {
            self.diags.push(Diagnostic::error(
                span,
                format!("too many defines (Kamailio's limit is {MAX_DEFINES})"),
            ));
            return;
        }
        self.defines.insert(name.to_string(), Define { value });
    }

    fn directive(&mut self, d: &DirectiveTok, span: Span, file: FileId) {
        let rest = d.rest.trim();
        let active = self.active();
        match d.name.as_str() {
            "ifdef" | "ifndef" | "ifexp" => {
                let cond = if !active {
                    false
                } else if d.name == "ifexp" {
                    match eval_expr(rest, &self.defines) {
                        Ok(v) => v.truthy(),
                        Err(e) => {
                            self.diags
                                .push(Diagnostic::error(span, format!("#!ifexp: {e}")));
                            false
                        }
                    }
                } else {
                    let Some(name) = first_id(rest) else {
                        self.diags.push(Diagnostic::error(
                            span,
                            format!("#!{}: missing identifier", d.name),
                        ));
                        self.ifs.push(IfFrame {
                            parent_active: active,
                            cond: false,
                            else_seen: false,
                            active: false,
                            span,
                        });
                        return;
                    };
                    self.defines.contains_key(name) == (d.name == "ifdef")
                };
                self.ifs.push(IfFrame {
                    parent_active: active,
                    cond,
                    else_seen: false,
                    active: active && cond,
                    span,
                });
            }
            "else" => match self.ifs.last_mut() {
                Some(f) if !f.else_seen => {
                    f.else_seen = true;
                    f.active = f.parent_active && !f.cond;
                }
                Some(_) => self.diags.push(Diagnostic::error(
                    span,
                    "duplicate #!else for the same #!ifdef",
                )),
                None => self.diags.push(Diagnostic::error(
                    span,
                    "#!else without #!ifdef/#!ifndef/#!ifexp",
                )),
            },
            "endif" => {
                if self.ifs.pop().is_none() {
                    self.diags.push(Diagnostic::error(
                        span,
                        "#!endif without #!ifdef/#!ifndef/#!ifexp",
                    ));
                }
            }
            _ if !active => {}
            "define" | "def" | "trydefine" | "trydef" | "redefine" | "redef" => {
                let mode = match d.name.as_str() {
                    "trydefine" | "trydef" => "trydef",
                    "redefine" | "redef" => "redef",
                    _ => "define",
                };
                match first_id(rest) {
                    Some(name) => {
                        let value = rest[name.len()..].trim();
                        let value = (!value.is_empty()).then(|| value.to_string());
                        self.define(name, value, mode, span);
                    }
                    None => self.diags.push(Diagnostic::error(
                        span,
                        format!("#!{}: missing or invalid identifier", d.name),
                    )),
                }
            }
            "undefine" | "undef" | "tryundefine" | "tryundef" => match first_id(rest) {
                Some(name) => {
                    if self.defines.remove(name).is_none() && !d.name.starts_with("try") {
                        // Kamailio ignores undefining an unknown ID; keep quiet too.
                    }
                }
                None => self.diags.push(Diagnostic::error(
                    span,
                    format!("#!{}: missing identifier", d.name),
                )),
            },
            "defexp" | "defexps" => match first_id(rest) {
                Some(name) => {
                    let expr = rest[name.len()..].trim();
                    match eval_expr(expr, &self.defines) {
                        Ok(v) => {
                            let text = v.to_text();
                            let value = if d.name == "defexps" {
                                format!("\"{text}\"")
                            } else {
                                text
                            };
                            self.define(name, Some(value), "define", span);
                        }
                        Err(e) => self
                            .diags
                            .push(Diagnostic::error(span, format!("#!{}: {e}", d.name))),
                    }
                }
                None => self.diags.push(Diagnostic::error(
                    span,
                    format!("#!{}: missing identifier", d.name),
                )),
            },
            "defenv" | "defenvs" | "trydefenv" | "trydefenvs" => {
                let (name, var) = match rest.split_once('=') {
                    Some((n, v)) => (n.trim(), v.trim()),
                    None => (rest, rest),
                };
                if first_id(name) != Some(name) || var.is_empty() {
                    self.diags.push(Diagnostic::error(
                        span,
                        format!("#!{}: expected NAME=ENVVAR or ENVVAR", d.name),
                    ));
                    return;
                }
                match std::env::var(var) {
                    Ok(v) => {
                        let value = if d.name.ends_with('s') {
                            format!("\"{v}\"")
                        } else {
                            v
                        };
                        self.define(name, Some(value), "define", span);
                    }
                    Err(_) if d.name.starts_with("try") => {}
                    Err(_) => self.diags.push(Diagnostic::error(
                        span,
                        format!("#!{}: environment variable {var} is not set", d.name),
                    )),
                }
            }
            "subst" | "substdef" | "substdefs" => {
                let Some(expr) = quoted_arg(rest) else {
                    self.diags.push(Diagnostic::error(
                        span,
                        format!("invalid {} preprocess statement: a quoted \"/regex/replacement/flags\" is expected", d.name),
                    ));
                    return;
                };
                match parse_subst(&expr) {
                    Ok((re, repl, flags)) => {
                        let global = flags.contains('g');
                        let icase = flags.contains('i');
                        let re_text = if icase {
                            format!("(?i){re}")
                        } else {
                            re.clone()
                        };
                        match regex::Regex::new(&re_text) {
                            Ok(rx) => {
                                if d.name != "subst" {
                                    let value = if d.name == "substdefs" {
                                        format!("\"{repl}\"")
                                    } else {
                                        repl.clone()
                                    };
                                    self.define(&re, Some(value), "define", span);
                                }
                                self.substs.push(Subst {
                                    re: rx,
                                    repl: convert_backrefs(&repl),
                                    global,
                                });
                            }
                            Err(e) => self.diags.push(Diagnostic::error(
                                span,
                                format!("bad {} regular expression: {e}", d.name),
                            )),
                        }
                    }
                    Err(e) => self.diags.push(Diagnostic::error(
                        span,
                        format!("bad {} expression: {e}", d.name),
                    )),
                }
            }
            "include_file" | "import_file" => match quoted_arg_bytes(rest) {
                Some(p) => self.include(&p, d.name == "include_file", span, file),
                None => self.diags.push(Diagnostic::error(
                    span,
                    format!("{}: the file name must be a quoted string", d.name),
                )),
            },
            "KAMAILIO" | "OPENSER" => self.compat = Compat::Kamailio,
            "SER" => self.compat = Compat::Ser,
            "MAXCOMPAT" | "ALL" => self.compat = Compat::Max,
            other => {
                let word = other.trim_start_matches('!');
                self.diags.push(
                    Diagnostic::warning(
                        span,
                        format!("unknown preprocessor directive '#!{word}', treated as a comment (as Kamailio does)"),
                    )
                    .with_note(
                            "known directives: define, trydef, redefine, undef, tryundef, ifdef, ifndef, ifexp, else, endif, defexp(s), defenv(s), trydefenv(s), subst, substdef(s), include_file, import_file",
                        ),
                );
            }
        }
    }

    fn include(&mut self, path: &[u8], required: bool, span: Span, from: FileId) {
        if self.depth >= MAX_INCLUDE_DEPTH {
            self.diags.push(Diagnostic::error(
                span,
                format!("too many nested includes (limit {MAX_INCLUDE_DEPTH})"),
            ));
            return;
        }
        let name = String::from_utf8_lossy(path).into_owned();
        if name.is_empty() {
            self.diags
                .push(Diagnostic::error(span, "invalid included file name: empty"));
            return;
        }
        let Some(resolved) = resolve_include(&name, &self.sources.path(from)) else {
            if required {
                self.diags.push(Diagnostic::error(
                    span,
                    format!("cannot open included file: \"{name}\""),
                ));
            }
            return;
        };
        match self.sources.load(&resolved) {
            Ok(id) => {
                self.depth += 1;
                let saved_str = self.last_direct_str.take();
                self.run_file(id);
                self.last_direct_str = saved_str.filter(|_| false);
                self.depth -= 1;
            }
            Err(e) if required => self.diags.push(Diagnostic::error(
                span,
                format!("cannot open included file: \"{name}\": {e}"),
            )),
            Err(_) => {}
        }
    }

    fn apply_substs(&self, s: &[u8]) -> Option<Vec<u8>> {
        if self.substs.is_empty() {
            return None;
        }
        let mut text = String::from_utf8_lossy(s).into_owned();
        let mut changed = false;
        for sub in &self.substs {
            let new = if sub.global {
                sub.re.replace_all(&text, sub.repl.as_str())
            } else {
                sub.re.replace(&text, sub.repl.as_str())
            };
            if let std::borrow::Cow::Owned(n) = new {
                text = n;
                changed = true;
            }
        }
        changed.then(|| text.into_bytes())
    }

    /// Emits a raw token: keywords, define substitution, string concatenation and subst.
    fn emit_raw(&mut self, t: RawTok, span: Span, direct: bool) {
        let tok = match t {
            RawTok::Ident(name) => {
                if let Some(def) = self.defines.get(&name)
                    && !self.expanding.contains(&name)
                {
                    let value = def.value.clone().unwrap_or_default();
                    self.expand(&name, &value, span);
                    return;
                }
                keyword(&name).unwrap_or(Tok::Ident(name))
            }
            RawTok::DqStr(s) => {
                let s = self.apply_substs(&s).unwrap_or(s);
                // Adjacent double-quoted strings separated only by whitespace are one.
                if direct
                    && let Some((idx, file, hi)) = self.last_direct_str
                    && file == span.file
                    && idx + 1 == self.out.len()
                    && self
                        .sources
                        .file(file)
                        .and_then(|f| f.text.get(hi as usize..span.lo as usize))
                        .is_some_and(|between| between.trim().is_empty())
                    && let Some((Tok::Str(prev), pspan)) = self.out.last_mut()
                {
                    let mut v = prev.to_vec();
                    v.extend_from_slice(&s);
                    *prev = Bytes::from(v);
                    pspan.hi = span.hi;
                    self.last_direct_str = Some((idx, file, span.hi));
                    return;
                }
                self.push(Tok::Str(Bytes::from(s)), span);
                if direct {
                    self.last_direct_str = Some((self.out.len() - 1, span.file, span.hi));
                }
                return;
            }
            RawTok::SqStr(s) => Tok::Str(Bytes::from(self.apply_substs(&s).unwrap_or(s))),
            RawTok::Int(i) => Tok::Int(i),
            RawTok::Ipv6(s) => Tok::Ipv6(s),
            RawTok::NumId(s) => Tok::NumId(s),
            RawTok::ColonWord(w) => Tok::Field(match w.as_str() {
                "msg:len" => MsgField::MsgLen,
                "uri:host" => MsgField::UriHost,
                _ => MsgField::UriPort,
            }),
            RawTok::IntCast => Tok::IntCast,
            RawTok::StrCast => Tok::StrCast,
            RawTok::Pv(text) => {
                let text = match self.apply_substs(text.as_bytes()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None => text,
                };
                let is_avp_prefix = text
                    .strip_prefix('$')
                    .and_then(|s| s.split_once('.'))
                    .is_some_and(|(p, _)| {
                        matches!(p, "f" | "t" | "fr" | "tr" | "fu" | "tu" | "fd" | "td" | "g")
                    })
                    && !text.contains('(');
                if self.compat == Compat::Ser || (is_avp_prefix && self.compat == Compat::Max) {
                    Tok::Avp(text)
                } else {
                    Tok::Pv(text)
                }
            }
            RawTok::Attr(s) => Tok::Avp(s),
            RawTok::Select(s) => Tok::Select(s),
            RawTok::Directive(_) => return,
            RawTok::DoubleNot => {
                self.push(Tok::Bang, span);
                Tok::Bang
            }
            RawTok::EqEq => Tok::EqEq,
            RawTok::Ne => Tok::Ne,
            RawTok::Match => Tok::Match,
            RawTok::ColonEq => Tok::ColonEq,
            RawTok::PlusEq => Tok::PlusEq,
            RawTok::Eq => Tok::Eq,
            RawTok::Plus => Tok::Plus,
            RawTok::Minus => Tok::Minus,
            RawTok::Star => Tok::Star,
            RawTok::Slash => Tok::Slash,
            RawTok::Bang => Tok::Bang,
            RawTok::Tilde => Tok::Tilde,
            RawTok::AndAnd => Tok::AndAnd,
            RawTok::OrOr => Tok::OrOr,
            RawTok::Amp => Tok::Amp,
            RawTok::Pipe => Tok::Pipe,
            RawTok::Caret => Tok::Caret,
            RawTok::Shl => Tok::Shl,
            RawTok::Shr => Tok::Shr,
            RawTok::Lt => Tok::Lt,
            RawTok::Gt => Tok::Gt,
            RawTok::Le => Tok::Le,
            RawTok::Ge => Tok::Ge,
            RawTok::LParen => Tok::LParen,
            RawTok::RParen => Tok::RParen,
            RawTok::LBrace => Tok::LBrace,
            RawTok::RBrace => Tok::RBrace,
            RawTok::LBracket => Tok::LBracket,
            RawTok::RBracket => Tok::RBracket,
            RawTok::Comma => Tok::Comma,
            RawTok::Semi => Tok::Semi,
            RawTok::Colon => Tok::Colon,
            RawTok::Dot => Tok::Dot,
        };
        self.push(tok, span);
    }

    /// Appends a final token, collapsing `route[...]` names and noting `loadmodule`s.
    fn push(&mut self, tok: Tok, span: Span) {
        self.last_direct_str = None;
        if let Some(open) = self.route_name {
            if tok != Tok::RBracket {
                self.out.push((tok, span));
                return;
            }
            let parts: Vec<(Tok, Span)> = self.out.drain(open + 1..).collect();
            let open_span = self.out.get(open).map(|(_, s)| *s).unwrap_or(span);
            let direct_text = (open_span.file == span.file
                && parts.iter().all(|(_, s)| s.file == span.file))
            .then(|| {
                self.sources
                    .file(span.file)
                    .and_then(|f| f.text.get(open_span.hi as usize..span.lo as usize))
                    .map(|s| s.trim().to_string())
            })
            .flatten();
            let name =
                direct_text.unwrap_or_else(|| parts.iter().map(|(t, _)| token_text(t)).collect());
            let name_span = match (parts.first(), parts.last()) {
                (Some((_, a)), Some((_, b))) => a.to(*b),
                _ => open_span,
            };
            // A quoted name (`route["x"]`) is the string's value.
            let name = match parts.as_slice() {
                [(Tok::Str(s), _)] => String::from_utf8_lossy(s).into_owned(),
                _ => name,
            };
            let is_event = matches!(
                self.out.get(open.wrapping_sub(1)),
                Some((Tok::RouteKw("event_route"), _))
            );
            let valid = if is_event {
                valid_event_route_name(&name)
            } else {
                matches!(
                    parts.as_slice(),
                    [(Tok::Ident(_) | Tok::Int(_) | Tok::Str(_), _)]
                )
            };
            if !valid {
                let what = if is_event {
                    "bad event route name (expected module:event, e.g. htable:mod-init)"
                } else {
                    "bad route name (expected a name, a number or a quoted string)"
                };
                self.diags
                    .push(Diagnostic::error(name_span, format!("{what}: '{name}'")));
            }
            self.out.push((Tok::RouteName(name), name_span));
            self.out.push((tok, span));
            self.route_name = None;
            return;
        }
        if tok == Tok::LBracket
            && matches!(self.out.last(), Some((Tok::Route | Tok::RouteKw(_), _)))
        {
            self.out.push((tok, span));
            self.route_name = Some(self.out.len() - 1);
            return;
        }
        if let Tok::Str(s) = &tok {
            let prev = self.out.last().map(|(t, _)| t);
            let prev2 = self
                .out
                .len()
                .checked_sub(2)
                .and_then(|i| self.out.get(i))
                .map(|(t, _)| t);
            if matches!(prev, Some(Tok::LoadModule | Tok::LoadModuleX))
                || (matches!(prev, Some(Tok::LParen))
                    && matches!(prev2, Some(Tok::LoadModule | Tok::LoadModuleX)))
            {
                let p = String::from_utf8_lossy(s);
                let base = p.rsplit('/').next().unwrap_or(&p);
                let base = base.strip_suffix(".so").unwrap_or(base);
                let def = format!("MOD_{base}");
                self.defines.entry(def).or_insert(Define { value: None });
            }
        }
        self.out.push((tok, span));
    }

    fn expand(&mut self, name: &str, value: &str, span: Span) {
        if self.expanding.len() >= MAX_EXPANSION_DEPTH {
            self.diags.push(Diagnostic::error(
                span,
                format!("define {name} expands too deeply (recursive define?)"),
            ));
            return;
        }
        self.expanding.push(name.to_string());
        for (res, _) in crate::lexer::lex(value) {
            match res {
                Ok(RawTok::Directive(_)) => {}
                Ok(t) => self.emit_raw(t, span, false),
                Err(e) => self.diags.push(Diagnostic::error(
                    span,
                    format!("in the value of define {name}: {e}"),
                )),
            }
        }
        self.expanding.pop();
    }
}

/// Kamailio's EVENT_RT_NAME: `[a-zA-Z][0-9a-zA-Z-]*(":"[a-zA-Z][0-9a-zA-Z_-]*)+`.
fn valid_event_route_name(name: &str) -> bool {
    let mut parts = name.split(':');
    let first_ok = parts.next().is_some_and(|p| {
        p.starts_with(|c: char| c.is_ascii_alphabetic())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    let mut n = 0;
    let rest_ok = parts.all(|p| {
        n += 1;
        p.starts_with(|c: char| c.is_ascii_alphabetic())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    first_ok && rest_ok && n > 0
}

/// Text of a token for reconstructing names from define expansions.
fn token_text(t: &Tok) -> String {
    match t {
        Tok::Int(i) => i.to_string(),
        Tok::Str(s) => String::from_utf8_lossy(s).into_owned(),
        Tok::Ident(s) | Tok::Pv(s) | Tok::Avp(s) | Tok::Select(s) | Tok::Ipv6(s) => s.clone(),
        Tok::Proto(p) => p.clone(),
        Tok::Minus => "-".into(),
        Tok::Colon => ":".into(),
        Tok::Dot => ".".into(),
        other => other.to_string().trim_matches('\'').to_string(),
    }
}

/// The identifier at the start of `s`.
fn first_id(s: &str) -> Option<&str> {
    let s = s.trim_start();
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let id = &s[..n];
    (n > 0 && !id.as_bytes()[0].is_ascii_digit()).then_some(id)
}

fn quoted_arg_bytes(s: &str) -> Option<Vec<u8>> {
    let toks = crate::lexer::lex(s.trim());
    match toks.as_slice() {
        [(Ok(RawTok::DqStr(v)), _)] | [(Ok(RawTok::SqStr(v)), _)] => Some(v.clone()),
        _ => None,
    }
}

fn quoted_arg(s: &str) -> Option<String> {
    quoted_arg_bytes(s).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Splits Kamailio's `/regex/replacement/flags` (any delimiter, `\` escapes it).
fn parse_subst(s: &str) -> Result<(String, String, String), &'static str> {
    let mut chars = s.chars();
    let delim = chars.next().ok_or("empty expression")?;
    let mut parts = vec![String::new()];
    let mut esc = false;
    for c in chars {
        let Some(cur) = parts.last_mut() else { break };
        if esc {
            if c != delim {
                cur.push('\\');
            }
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == delim {
            parts.push(String::new());
        } else {
            cur.push(c);
        }
    }
    if parts.len() != 3 {
        return Err("expected /regex/replacement/flags");
    }
    if parts[0].is_empty() {
        return Err("empty regular expression");
    }
    Ok((parts[0].clone(), parts[1].clone(), parts[2].clone()))
}

/// `\1` back-references to the regex crate's `${1}`; `$` made literal.
fn convert_backrefs(repl: &str) -> String {
    let mut out = String::new();
    let mut it = repl.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.peek() {
                Some(d) if d.is_ascii_digit() => {
                    out.push_str(&format!("${{{d}}}"));
                    it.next();
                }
                Some(&n) => {
                    out.push(n);
                    it.next();
                }
                None => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

/// Include path resolution like Kamailio: as given (relative to the working directory),
/// then relative to the directory of the including file.
fn resolve_include(name: &str, including: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_file() {
        return Some(p.to_path_buf());
    }
    if p.is_absolute() {
        return None;
    }
    let dir = Path::new(including).parent()?;
    let alt = dir.join(p);
    alt.is_file().then_some(alt)
}

/// Values of `#!ifexp`/`#!defexp` expressions.
#[derive(Clone, Debug, PartialEq)]
enum PVal {
    Num(f64),
    Str(String),
}

impl PVal {
    fn truthy(&self) -> bool {
        match self {
            PVal::Num(n) => *n != 0.0,
            PVal::Str(s) => !s.is_empty(),
        }
    }

    fn num(&self) -> f64 {
        match self {
            PVal::Num(n) => *n,
            PVal::Str(s) => s.trim().parse().unwrap_or(0.0),
        }
    }

    fn to_text(&self) -> String {
        match self {
            PVal::Num(n) => (*n as i64).to_string(),
            PVal::Str(s) => s.clone(),
        }
    }
}

/// A small evaluator for preprocessor expressions: numbers, strings, define names (undefined
/// = 0, defined without value = 1, otherwise its value), `! - + * / %`, comparisons, `&& ||`.
fn eval_expr(s: &str, defines: &HashMap<String, Define>) -> Result<PVal, String> {
    let toks = tokenize_expr(s)?;
    let mut p = ExprParser {
        toks,
        pos: 0,
        defines,
    };
    let v = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected '{}'", p.toks[p.pos]));
    }
    Ok(v)
}

fn tokenize_expr(s: &str) -> Result<Vec<String>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' || c == b'\'' {
            let end = b[i + 1..]
                .iter()
                .position(|x| *x == c)
                .ok_or("unterminated string")?;
            out.push(s[i..i + end + 2].to_string());
            i += end + 2;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            let n = b[i..]
                .iter()
                .take_while(|x| x.is_ascii_alphanumeric() || **x == b'_' || **x == b'.')
                .count();
            out.push(s[i..i + n].to_string());
            i += n;
        } else {
            let two = s.get(i..i + 2).unwrap_or("");
            if ["==", "!=", "<=", ">=", "&&", "||"].contains(&two) {
                out.push(two.to_string());
                i += 2;
            } else if b"()!+-*/%<>".contains(&c) {
                out.push((c as char).to_string());
                i += 1;
            } else {
                return Err(format!("unexpected character '{}'", c as char));
            }
        }
    }
    Ok(out)
}

struct ExprParser<'a> {
    toks: Vec<String>,
    pos: usize,
    defines: &'a HashMap<String, Define>,
}

impl ExprParser<'_> {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(|s| s.as_str())
    }

    fn eat(&mut self, t: &str) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<PVal, String> {
        let mut l = self.and()?;
        while self.eat("||") {
            let r = self.and()?;
            l = PVal::Num((l.truthy() || r.truthy()) as i64 as f64);
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<PVal, String> {
        let mut l = self.cmp()?;
        while self.eat("&&") {
            let r = self.cmp()?;
            l = PVal::Num((l.truthy() && r.truthy()) as i64 as f64);
        }
        Ok(l)
    }

    fn cmp(&mut self) -> Result<PVal, String> {
        let l = self.add()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                let r = self.add()?;
                let ord = match (&l, &r) {
                    (PVal::Str(a), PVal::Str(b)) => a.cmp(b),
                    _ => l
                        .num()
                        .partial_cmp(&r.num())
                        .unwrap_or(std::cmp::Ordering::Equal),
                };
                use std::cmp::Ordering::*;
                let b = match op {
                    "==" => ord == Equal,
                    "!=" => ord != Equal,
                    "<=" => ord != Greater,
                    ">=" => ord != Less,
                    "<" => ord == Less,
                    _ => ord == Greater,
                };
                return Ok(PVal::Num(b as i64 as f64));
            }
        }
        Ok(l)
    }

    fn add(&mut self) -> Result<PVal, String> {
        let mut l = self.mul()?;
        loop {
            if self.eat("+") {
                let r = self.mul()?;
                l = match (&l, &r) {
                    (PVal::Str(a), PVal::Str(b)) => PVal::Str(format!("{a}{b}")),
                    _ => PVal::Num(l.num() + r.num()),
                };
            } else if self.eat("-") {
                let r = self.mul()?;
                l = PVal::Num(l.num() - r.num());
            } else {
                return Ok(l);
            }
        }
    }

    fn mul(&mut self) -> Result<PVal, String> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(o @ ("*" | "/" | "%")) => o.to_string(),
                _ => return Ok(l),
            };
            self.pos += 1;
            let r = self.unary()?;
            let (a, b) = (l.num(), r.num());
            l = PVal::Num(match op.as_str() {
                "*" => a * b,
                "/" if b != 0.0 => a / b,
                "%" if b != 0.0 => a % b,
                _ => return Err("division by zero".into()),
            });
        }
    }

    fn unary(&mut self) -> Result<PVal, String> {
        if self.eat("!") {
            let v = self.unary()?;
            return Ok(PVal::Num((!v.truthy()) as i64 as f64));
        }
        if self.eat("-") {
            let v = self.unary()?;
            return Ok(PVal::Num(-v.num()));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<PVal, String> {
        let Some(t) = self.toks.get(self.pos).cloned() else {
            return Err("unexpected end of expression".into());
        };
        self.pos += 1;
        if t == "(" {
            let v = self.or()?;
            if !self.eat(")") {
                return Err("missing ')'".into());
            }
            return Ok(v);
        }
        if let Some(q) = t.strip_prefix('"').or_else(|| t.strip_prefix('\'')) {
            return Ok(PVal::Str(q[..q.len().saturating_sub(1)].to_string()));
        }
        if let Ok(n) = t.parse::<f64>() {
            return Ok(PVal::Num(n));
        }
        if t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return Ok(match self.defines.get(&t) {
                None => PVal::Num(0.0),
                Some(Define { value: None }) => PVal::Num(1.0),
                Some(Define { value: Some(v) }) => {
                    let v = v.trim();
                    let unq = v
                        .strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')));
                    PVal::Str(unq.unwrap_or(v).to_string())
                }
            });
        }
        Err(format!("unexpected '{t}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, defs: &[(&str, Option<&str>)]) -> (Vec<Tok>, Vec<Diagnostic>) {
        let mut sm = SourceMap::new();
        let f = sm.add("/nonexistent/t.cfg", src.to_string());
        let opts = Options {
            defines: defs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(String::from)))
                .collect(),
        };
        let (out, d) = preprocess(&mut sm, f, &opts);
        (out.tokens.into_iter().map(|(t, _)| t).collect(), d)
    }

    #[test]
    fn defines_and_ifdefs() {
        let (t, d) = run(
            "#!define A 5\n#!ifdef A\nx=A;\n#!else\ny=1;\n#!endif\n#!ifndef B\nz=\"s\" \"t\";\n#!endif\n",
            &[],
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            t,
            vec![
                Tok::Ident("x".into()),
                Tok::Eq,
                Tok::Int(5),
                Tok::Semi,
                Tok::Ident("z".into()),
                Tok::Eq,
                Tok::Str(Bytes::from_static(b"st")),
                Tok::Semi
            ]
        );
    }

    #[test]
    fn skipped_regions_are_not_lexed() {
        let (t, d) = run(
            "#!ifdef NOPE\nit's \"unbalanced\n#!ifdef X\n#!endif\n#!else\nok\n#!endif\n",
            &[],
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(t, vec![Tok::Ident("ok".into())]);
    }

    #[test]
    fn command_line_defines_and_ifexp() {
        let (t, _) = run(
            "#!ifexp A > 3 && B == \"x\"\nyes_branch\n#!endif\n",
            &[("A", Some("5")), ("B", Some("\"x\""))],
        );
        assert_eq!(t, vec![Tok::Ident("yes_branch".into())]);
        let (t, _) = run("#!defexp C A * 2\nC", &[("A", Some("21"))]);
        assert_eq!(t, vec![Tok::Int(42)]);
        let (t, _) = run("#!ifexp KAMAILIO_VERSION >= 5006000\nnew\n#!endif", &[]);
        assert_eq!(t, vec![Tok::Ident("new".into())]);
    }

    #[test]
    fn errors() {
        let (_, d) = run("#!ifdef X\n", &[]);
        assert!(d[0].message.contains("missing #!endif"));
        let (_, d) = run("#!endif\n", &[]);
        assert!(d[0].message.contains("without"));
        let (t, d) = run("#!bogus x\nafter", &[]);
        assert!(d[0].message.contains("unknown preprocessor directive"));
        assert!(!d[0].is_error(), "Kamailio treats it as a comment");
        assert_eq!(t, vec![Tok::Ident("after".into())]);
        let (_, d) = run("include_file \"/no/such/file.cfg\"\n", &[]);
        assert!(d[0].message.contains("cannot open included file"));
        let (_, d) = run("import_file \"/no/such/file.cfg\"\n", &[]);
        assert!(d.is_empty());
        let (_, d) = run("#!define A 1\n#!define A 2\n", &[]);
        assert!(d[0].message.contains("already defined"));
        let (_, d) = run("#!define A A\nA\n", &[]);
        assert!(d.is_empty(), "self-reference stays an identifier");
    }

    #[test]
    fn route_names_and_subst() {
        let (t, _) = run(
            "event_route[tm:branch-failure] route[R-1] route[\"q\"]",
            &[],
        );
        assert_eq!(t[2], Tok::RouteName("tm:branch-failure".into()));
        assert_eq!(t[6], Tok::RouteName("R-1".into()));
        assert_eq!(t[10], Tok::RouteName("q".into()));
        let (t, _) = run(
            "#!subst \"/HOST/example.com/g\"\n\"sip:HOST\" $var(HOST)",
            &[],
        );
        assert_eq!(t[0], Tok::Str(Bytes::from_static(b"sip:example.com")));
        assert_eq!(t[1], Tok::Pv("$var(example.com)".into()));
        let (t, _) = run("#!substdef \"/PORT/5060/\"\nPORT", &[]);
        assert_eq!(t, vec![Tok::Int(5060)]);
        let (t, _) = run("loadmodule \"tm.so\"\n#!ifdef MOD_tm\nloaded\n#!endif", &[]);
        assert_eq!(t.last(), Some(&Tok::Ident("loaded".into())));
    }
}
