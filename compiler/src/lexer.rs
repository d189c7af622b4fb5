//! The logos lexer: one source file's text into raw tokens with byte spans.
//!
//! This level knows Kamailio's lexical forms — comments (`#`, `//`, nested `/* */`), both
//! string kinds with their escapes, numbers in every base, IPv6 literals, pseudo-variable
//! tokens with balanced parentheses, AVP and select syntax — and recognises preprocessor
//! directive lines (`#!define ...`, `!!ifdef ...`) as single tokens. Keywords, define
//! substitution and directives themselves are handled by the preprocessor.

use logos::{Lexer, Logos};

/// A lexical error, with the byte range it covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LexError {
    #[default]
    Invalid,
    UnterminatedString,
    UnterminatedComment,
    BadNumber,
    BadPv(&'static str),
    BadEscape,
}

impl std::fmt::Display for LexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LexError::Invalid => f.write_str("invalid character"),
            LexError::UnterminatedString => f.write_str("unterminated string"),
            LexError::UnterminatedComment => f.write_str("unterminated comment (missing */)"),
            LexError::BadNumber => f.write_str("invalid number"),
            LexError::BadPv(why) => write!(f, "invalid pseudo-variable: {why}"),
            LexError::BadEscape => f.write_str("invalid escape sequence"),
        }
    }
}

/// A preprocessor line: `#!name rest-of-line` (continuation lines joined for defines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectiveTok {
    /// Directive word (`define`, `ifdef`, `KAMAILIO`...).
    pub name: String,
    /// Text after the name, up to the end of the (logical) line.
    pub rest: String,
    /// Byte offset of `rest` in the file.
    pub rest_offset: usize,
}

/// Raw tokens of one file.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(error = LexError)]
#[logos(skip r"[ \t\r\n\x0c]+")]
pub enum RawTok {
    #[token("#", hash_comment_or_directive)]
    #[token("//", slash_comment_or_directive)]
    #[token("!!", bang_directive)]
    #[token("/*", block_comment)]
    Directive(DirectiveTok),

    /// `!!` that is not a directive: two negations.
    DoubleNot,

    #[token("\"", dq_string)]
    DqStr(Vec<u8>),
    #[token("'", sq_string)]
    SqStr(Vec<u8>),

    #[regex(r"[0-9]+", dec_or_oct)]
    #[regex(r"0x[0-9a-fA-F]+", hex, priority = 10)]
    #[regex(r"[01]+b", bin, priority = 10)]
    Int(i64),

    /// An alphanumeric word starting with a digit (`3gppnetwork` in host names).
    #[regex(r"[0-9]+[a-zA-Z_][a-zA-Z0-9_]*", |l| l.slice().to_string())]
    NumId(String),

    #[regex(
        r"([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}(:[0-9a-fA-F]{1,4}){1,7}|:(:[0-9a-fA-F]{1,4}){1,7}|([0-9a-fA-F]{1,4}:){1,7}:|::",
        |l| l.slice().to_string(),
        priority = 5
    )]
    Ipv6(String),

    #[regex(r"[a-zA-Z_][a-zA-Z0-9_]*", |l| l.slice().to_string())]
    Ident(String),

    /// `msg:len`, `uri:host`, `uri:port`.
    #[token("msg:len", |_| "msg:len".to_string())]
    #[token("uri:host", |_| "uri:host".to_string())]
    #[token("uri:port", |_| "uri:port".to_string())]
    ColonWord(String),

    #[regex(r"\([ \t]*int[ \t]*\)")]
    IntCast,
    #[regex(r"\([ \t]*str[ \t]*\)")]
    StrCast,

    /// `$...` pseudo-variable (the whole token text).
    #[token("$", pv_token)]
    Pv(String),
    /// `%name` / `%f.name` AVP attribute syntax.
    #[token("%", attr_token)]
    Attr(String),
    /// `@a.b[1].c` select.
    #[token("@", select_token)]
    Select(String),

    #[token("==")]
    EqEq,
    #[token("!=")]
    Ne,
    #[token("=~")]
    Match,
    #[token(":=")]
    ColonEq,
    #[token("+=")]
    PlusEq,
    #[token("=")]
    Eq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("!")]
    Bang,
    #[token("~")]
    Tilde,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("&")]
    Amp,
    #[token("|")]
    Pipe,
    #[token("^")]
    Caret,
    #[token("<<")]
    Shl,
    #[token(">>")]
    Shr,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token(".")]
    Dot,
}

/// Known `#!` directive and header words.
pub const DIRECTIVES: &[&str] = &[
    "define",
    "def",
    "trydefine",
    "trydef",
    "redefine",
    "redef",
    "undefine",
    "undef",
    "tryundefine",
    "tryundef",
    "ifdef",
    "ifndef",
    "ifexp",
    "else",
    "endif",
    "defexp",
    "defexps",
    "defenv",
    "defenvs",
    "trydefenv",
    "trydefenvs",
    "subst",
    "substdef",
    "substdefs",
    "include_file",
    "import_file",
    "KAMAILIO",
    "OPENSER",
    "SER",
    "MAXCOMPAT",
    "ALL",
];

/// Directives whose value may continue on the next line with a trailing `\`.
fn continues(name: &str) -> bool {
    matches!(
        name,
        "define" | "def" | "trydefine" | "trydef" | "redefine" | "redef"
    )
}

/// Reads the directive after a `#!`/`!!`/`//!` prefix whose end is at the current position.
/// Returns `None` when the word is not a directive.
fn read_directive(lex: &mut Lexer<'_, RawTok>) -> Option<DirectiveTok> {
    let rem = lex.remainder();
    let word_len = rem
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let name = &rem[..word_len];
    if !DIRECTIVES.contains(&name) {
        return None;
    }
    let name = name.to_string();
    let base = lex.span().end + word_len;
    let after = &rem[word_len..];
    // Logical line: up to '\n', joining `\`-newline continuations for defines.
    let mut rest = String::new();
    let mut consumed = 0;
    let bytes = after.as_bytes();
    loop {
        let line_end = memchr::memchr(b'\n', &bytes[consumed..])
            .map(|i| consumed + i)
            .unwrap_or(bytes.len());
        let mut line = &after[consumed..line_end];
        let cont = continues(&name) && line.trim_end_matches('\r').ends_with('\\');
        if cont {
            line = line.trim_end_matches('\r');
            line = &line[..line.len() - 1];
            rest.push_str(line);
            rest.push('\n');
            consumed = (line_end + 1).min(bytes.len());
            if line_end >= bytes.len() {
                break;
            }
            continue;
        }
        rest.push_str(line.trim_end_matches('\r'));
        consumed = line_end;
        break;
    }
    lex.bump(word_len + consumed);
    Some(DirectiveTok {
        name,
        rest,
        rest_offset: base,
    })
}

fn skip_line(lex: &mut Lexer<'_, RawTok>) {
    let rem = lex.remainder().as_bytes();
    let n = memchr::memchr(b'\n', rem).unwrap_or(rem.len());
    lex.bump(n);
}

fn hash_comment_or_directive(
    lex: &mut Lexer<'_, RawTok>,
) -> logos::FilterResult<DirectiveTok, LexError> {
    if let Some(rest) = lex.remainder().strip_prefix('!') {
        let _ = rest;
        lex.bump(1);
        if let Some(d) = read_directive(lex) {
            return logos::FilterResult::Emit(d);
        }
        // `#!` followed by anything else is a comment for Kamailio; keep the word so the
        // preprocessor can warn about a likely typo (`#!defin`).
        let word: String = lex
            .remainder()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        skip_line(lex);
        if word.is_empty() {
            return logos::FilterResult::Skip;
        }
        return logos::FilterResult::Emit(DirectiveTok {
            name: format!("!{word}"),
            rest: String::new(),
            rest_offset: lex.span().end,
        });
    }
    skip_line(lex);
    logos::FilterResult::Skip
}

fn slash_comment_or_directive(
    lex: &mut Lexer<'_, RawTok>,
) -> logos::FilterResult<DirectiveTok, LexError> {
    if lex.remainder().starts_with('!') {
        lex.bump(1);
        if let Some(d) = read_directive(lex)
            && matches!(
                d.name.as_str(),
                "KAMAILIO" | "OPENSER" | "SER" | "MAXCOMPAT" | "ALL"
            )
        {
            return logos::FilterResult::Emit(d);
        }
    }
    skip_line(lex);
    logos::FilterResult::Skip
}

fn bang_directive(lex: &mut Lexer<'_, RawTok>) -> logos::FilterResult<DirectiveTok, LexError> {
    match read_directive(lex) {
        Some(d) => logos::FilterResult::Emit(d),
        // Not a directive: signal two negations through a sentinel directive name.
        None => logos::FilterResult::Emit(DirectiveTok {
            name: "!!".into(),
            rest: String::new(),
            rest_offset: lex.span().end,
        }),
    }
}

fn block_comment(lex: &mut Lexer<'_, RawTok>) -> logos::FilterResult<DirectiveTok, LexError> {
    let rem = lex.remainder().as_bytes();
    let mut depth = 1usize;
    let mut i = 0;
    while i + 1 < rem.len() {
        if rem[i] == b'/' && rem[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if rem[i] == b'*' && rem[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                lex.bump(i);
                return logos::FilterResult::Skip;
            }
        } else {
            i += 1;
        }
    }
    lex.bump(rem.len());
    logos::FilterResult::Error(LexError::UnterminatedComment)
}

fn dq_string(lex: &mut Lexer<'_, RawTok>) -> Result<Vec<u8>, LexError> {
    let rem = lex.remainder().as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = rem.get(i) {
        match b {
            b'"' => {
                lex.bump(i + 1);
                return Ok(out);
            }
            b'\\' => {
                let Some(&e) = rem.get(i + 1) else { break };
                i += 2;
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b't' => out.push(b'\t'),
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'\n' => {}
                    b'\r' if rem.get(i) == Some(&b'\n') => i += 1,
                    b'x' => {
                        let digits = rem[i..]
                            .iter()
                            .take(2)
                            .take_while(|c| c.is_ascii_hexdigit())
                            .count();
                        if digits == 0 {
                            out.extend_from_slice(b"\\x");
                        } else {
                            let s = std::str::from_utf8(&rem[i..i + digits]).unwrap_or("0");
                            out.push(u8::from_str_radix(s, 16).unwrap_or(0));
                            i += digits;
                        }
                    }
                    b'0'..=b'7' if rem.get(i).is_some_and(|c| (b'0'..=b'7').contains(c)) => {
                        // Octal takes two or three digits (Kamailio's lexer); a single
                        // digit, e.g. a subst back-reference "\1", stays as written.
                        let start = i - 1;
                        let digits = rem[start..]
                            .iter()
                            .take(3)
                            .take_while(|c| (b'0'..=b'7').contains(*c))
                            .count();
                        let s = std::str::from_utf8(&rem[start..start + digits]).unwrap_or("0");
                        out.push(u32::from_str_radix(s, 8).unwrap_or(0) as u8);
                        i = start + digits;
                    }
                    // Any other escaped character is kept as is, backslash included
                    // (Kamailio keeps unknown escapes, e.g. regex "\." stays "\.").
                    other => {
                        out.push(b'\\');
                        out.push(other);
                    }
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    lex.bump(rem.len());
    Err(LexError::UnterminatedString)
}

fn sq_string(lex: &mut Lexer<'_, RawTok>) -> Result<Vec<u8>, LexError> {
    let rem = lex.remainder().as_bytes();
    match memchr::memchr(b'\'', rem) {
        Some(end) => {
            let v = rem[..end].to_vec();
            lex.bump(end + 1);
            Ok(v)
        }
        None => {
            lex.bump(rem.len());
            Err(LexError::UnterminatedString)
        }
    }
}

fn dec_or_oct(lex: &mut Lexer<'_, RawTok>) -> Result<i64, LexError> {
    let s = lex.slice();
    let v = if s.len() > 1 && s.starts_with('0') {
        i64::from_str_radix(&s[1..], 8).map_err(|_| LexError::BadNumber)?
    } else {
        s.parse::<i64>().map_err(|_| LexError::BadNumber)?
    };
    Ok(v)
}

fn hex(lex: &mut Lexer<'_, RawTok>) -> Result<i64, LexError> {
    i64::from_str_radix(&lex.slice()[2..], 16).map_err(|_| LexError::BadNumber)
}

fn bin(lex: &mut Lexer<'_, RawTok>) -> Result<i64, LexError> {
    let s = lex.slice();
    i64::from_str_radix(&s[..s.len() - 1], 2).map_err(|_| LexError::BadNumber)
}

fn is_id_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_id(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Length of a balanced `(...)` group starting at `s[0] == '('`.
fn balanced(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'\n' if depth > 0 && i > 4096 => return None,
            _ => {}
        }
    }
    None
}

/// `$(...)`, `$name`, `$name(...)`, `$?`. The token text includes the `$`.
fn pv_token(lex: &mut Lexer<'_, RawTok>) -> Result<String, LexError> {
    let rem = lex.remainder().as_bytes();
    let len = match rem.first() {
        Some(b'(') => balanced(rem).ok_or(LexError::BadPv("unbalanced parentheses"))?,
        Some(b'?') => 1,
        Some(&c) if is_id_start(c) => {
            let mut n = rem.iter().take_while(|b| is_id(**b)).count();
            // AVP class prefix `$f.name` (MAXCOMPAT) stays in one token.
            if rem.get(n) == Some(&b'.')
                && matches!(
                    &rem[..n],
                    b"f" | b"t" | b"fr" | b"tr" | b"fu" | b"tu" | b"fd" | b"td" | b"g"
                )
                && rem.get(n + 1).is_some_and(|b| is_id_start(*b))
            {
                n += 1 + rem[n + 1..].iter().take_while(|b| is_id(**b)).count();
            } else if rem.get(n) == Some(&b'(') {
                n += balanced(&rem[n..]).ok_or(LexError::BadPv("unbalanced parentheses"))?;
            }
            n
        }
        _ => return Err(LexError::BadPv("expected a name after '$'")),
    };
    lex.bump(len);
    Ok(lex.slice().to_string())
}

/// `%name`, `%f.name`, `%name[1]`.
fn attr_token(lex: &mut Lexer<'_, RawTok>) -> Result<String, LexError> {
    let rem = lex.remainder().as_bytes();
    let mut n = rem.iter().take_while(|b| is_id(**b) || **b == b'.').count();
    if n == 0 {
        return Err(LexError::Invalid);
    }
    if rem.get(n) == Some(&b'[')
        && let Some(close) = rem[n..].iter().position(|b| *b == b']')
    {
        n += close + 1;
    }
    lex.bump(n);
    Ok(lex.slice().to_string())
}

/// `@ruri.user`, `@via[1].branch`, `@hf_value["X"]`.
fn select_token(lex: &mut Lexer<'_, RawTok>) -> Result<String, LexError> {
    let rem = lex.remainder().as_bytes();
    let mut i = 0;
    loop {
        let n = rem[i..].iter().take_while(|b| is_id(**b)).count();
        if n == 0 {
            return Err(LexError::Invalid);
        }
        i += n;
        while rem.get(i) == Some(&b'[') {
            let close = rem[i..]
                .iter()
                .position(|b| *b == b']')
                .ok_or(LexError::Invalid)?;
            i += close + 1;
        }
        if rem.get(i) == Some(&b'.') && rem.get(i + 1).is_some_and(|b| is_id(*b)) {
            i += 1;
            continue;
        }
        break;
    }
    lex.bump(i);
    Ok(lex.slice().to_string())
}

/// Lexes a whole text into tokens with byte ranges; errors are returned in place.
pub fn lex(text: &str) -> Vec<(Result<RawTok, LexError>, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut lx = RawTok::lexer(text);
    while let Some(t) = lx.next() {
        let span = lx.span();
        let t = match t {
            Ok(RawTok::Directive(d)) if d.name == "!!" => Ok(RawTok::DoubleNot),
            other => other,
        };
        out.push((t, span));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<RawTok> {
        lex(s).into_iter().map(|(t, _)| t.unwrap()).collect()
    }

    #[test]
    fn comments_and_directives() {
        let t = toks("# c\n#!define X 1\n// c2\n/* a /* nested */ b */ y #!KAMAILIO\n");
        assert_eq!(t.len(), 3, "{t:?}");
        match &t[0] {
            RawTok::Directive(d) => {
                assert_eq!(d.name, "define");
                assert_eq!(d.rest, " X 1");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(t[1], RawTok::Ident("y".into()));
        let t = toks("#!define A 1 \\\n 2\nz");
        match &t[0] {
            RawTok::Directive(d) => assert_eq!(d.rest, " A 1 \n 2"),
            other => panic!("{other:?}"),
        }
        assert_eq!(t[1], RawTok::Ident("z".into()));
        assert_eq!(toks("!!ifdef X\n!!x").len(), 3);
    }

    #[test]
    fn strings_and_numbers() {
        let t = toks(r#""a\tb\"c\x41\101\." 'raw\n' 0x1F 017 101b 42"#);
        assert_eq!(t[0], RawTok::DqStr(b"a\tb\"cAA\\.".to_vec()));
        assert_eq!(t[1], RawTok::SqStr(b"raw\\n".to_vec()));
        assert_eq!(
            &t[2..],
            &[
                RawTok::Int(31),
                RawTok::Int(15),
                RawTok::Int(5),
                RawTok::Int(42)
            ]
        );
        assert!(matches!(
            lex("\"abc")[0].0,
            Err(LexError::UnterminatedString)
        ));
        assert!(matches!(
            lex("/* x")[0].0,
            Err(LexError::UnterminatedComment)
        ));
    }

    #[test]
    fn pseudo_variables() {
        let t = toks("$ru $var(x) $(hdr(Via)[0]{s.len}) $? $f.name $sht(a=>$si) $avp(s:x)");
        let names: Vec<String> = t
            .iter()
            .map(|t| match t {
                RawTok::Pv(s) => s.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "$ru",
                "$var(x)",
                "$(hdr(Via)[0]{s.len})",
                "$?",
                "$f.name",
                "$sht(a=>$si)",
                "$avp(s:x)"
            ]
        );
        assert!(lex("$(a").iter().any(|(t, _)| t.is_err()));
    }

    #[test]
    fn operators_and_ipv6() {
        let t = toks("a==b =~ := (int) ( str ) :: fe80::1 msg:len");
        assert_eq!(t[1], RawTok::EqEq);
        assert_eq!(t[3], RawTok::Match);
        assert_eq!(t[4], RawTok::ColonEq);
        assert_eq!(t[5], RawTok::IntCast);
        assert_eq!(t[6], RawTok::StrCast);
        assert_eq!(t[7], RawTok::Ipv6("::".into()));
        assert_eq!(t[8], RawTok::Ipv6("fe80::1".into()));
        assert_eq!(t[9], RawTok::ColonWord("msg:len".into()));
    }
}
