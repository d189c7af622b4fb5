//! The allow/deny files of `allow_routing` and `allow_register`: lines
//! `FROM-EXPRESSIONS : TO-EXPRESSIONS [EXCEPT ...]` of POSIX extended, case-insensitive
//! regular expressions (or `ALL`), parsed the way Kamailio's permissions module reads them.
//! A line that does not parse (or whose regex does not compile) is skipped.

use std::path::Path;

/// `None` for `ALL`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub left: Option<Vec<String>>,
    pub left_exceptions: Vec<String>,
    pub right: Option<Vec<String>>,
    pub right_exceptions: Vec<String>,
}

const EXPRESSION_LENGTH: usize = 256;
const LINE_LENGTH: usize = 500;

/// Extended, case-insensitive POSIX regex search (`None`: does not compile).
pub fn posix_ere_icase(pattern: &str, subject: &str) -> Option<bool> {
    let p = std::ffi::CString::new(pattern).ok()?;
    let s = std::ffi::CString::new(subject).ok()?;
    // SAFETY: regex_t is plain data initialised by regcomp and freed once after success.
    unsafe {
        let mut re: libc::regex_t = std::mem::zeroed();
        if libc::regcomp(
            &mut re,
            p.as_ptr(),
            libc::REG_EXTENDED | libc::REG_NOSUB | libc::REG_ICASE,
        ) != 0
        {
            return None;
        }
        let r = libc::regexec(&re, s.as_ptr(), 0, std::ptr::null_mut(), 0);
        libc::regfree(&mut re);
        Some(r == 0)
    }
}

fn compiles(p: &str) -> bool {
    posix_ere_icase(p, "").is_some()
}

fn expression_list(s: &[u8]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut quoted = false;
    let mut i = 0usize;
    loop {
        let c = s.get(i).copied().unwrap_or(0);
        if c == b'"' {
            quoted = !quoted;
        }
        if (c == b',' && !quoted) || c == 0 {
            while start < s.len() && (s[start] == b' ' || s[start] == b'\t') {
                start += 1;
            }
            if s.get(start) == Some(&b'"') {
                start += 1;
            }
            let mut j = i as isize - 1;
            while j > 0 && (s[j as usize] == b' ' || s[j as usize] == b'\t') {
                j -= 1;
            }
            if j > 0 && s[j as usize] == b'"' {
                j -= 1;
            }
            if (start as isize) > j {
                return None;
            }
            let word = &s[start..=(j as usize)];
            if word.len() + 1 > EXPRESSION_LENGTH {
                return None;
            }
            let w = String::from_utf8_lossy(word).into_owned();
            if !compiles(&w) {
                return None;
            }
            out.push(w);
            start = i + 1;
        }
        if c == 0 {
            break;
        }
        i += 1;
    }
    Some(out)
}

fn expression(s: &[u8]) -> Option<(Option<Vec<String>>, Vec<String>)> {
    if s.len() >= LINE_LENGTH {
        return None;
    }
    let (main, exc) = match memchr::memmem::find(s, b" EXCEPT ") {
        Some(p) => (&s[..p], expression_list(&s[p + 8..])?),
        None => (s, Vec::new()),
    };
    let mut a = 0;
    while a < main.len() && main[a].is_ascii_whitespace() {
        a += 1;
    }
    let mut b = main.len();
    while b > a && main[b - 1].is_ascii_whitespace() {
        b -= 1;
    }
    let main = &main[a..b];
    if main == b"ALL" {
        return Some((None, exc));
    }
    Some((Some(expression_list(main)?), exc))
}

/// One line of a rules file; `None` for blank lines, comments and lines that do not parse.
pub fn parse_line(line: &[u8]) -> Option<Rule> {
    let mut quoted = false;
    let mut colon: Option<usize> = None;
    let mut eval = false;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                quoted = !quoted;
                eval = true;
            }
            b':' => {
                if !quoted {
                    colon = Some(i);
                }
                eval = true;
            }
            b'#' if !quoted => break,
            b'\n' | 0 => break,
            b' ' | b'\t' => {}
            _ => eval = true,
        }
        i += 1;
    }
    if !eval {
        return None;
    }
    let colon = colon.filter(|c| *c > 0 && c + 1 < i)?;
    let (left, left_exceptions) = expression(&line[..colon])?;
    let (right, right_exceptions) = expression(&line[colon + 1..i])?;
    Some(Rule {
        left,
        left_exceptions,
        right,
        right_exceptions,
    })
}

/// The rules of a file (empty when it does not exist).
pub fn parse_file(path: &Path) -> Vec<Rule> {
    let Ok(data) = std::fs::read(path) else {
        crate::klog!(
            crate::log::L_INFO,
            "permissions",
            "file not found: {}",
            path.display()
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for raw in data.split_inclusive(|c| *c == b'\n') {
        // fgets reads at most LINE_LENGTH-1 bytes at a time.
        for chunk in raw.chunks(LINE_LENGTH - 1) {
            if let Some(r) = parse_line(chunk) {
                out.push(r);
            }
        }
    }
    out
}

fn any_match(list: &[String], v: &str) -> bool {
    list.iter().any(|p| posix_ere_icase(p, v) == Some(true))
}

/// True when a rule matches `left` and `right`.
pub fn search(rules: &[Rule], left: &str, right: &str) -> bool {
    rules.iter().any(|r| {
        r.left.as_ref().is_none_or(|l| any_match(l, left))
            && !any_match(&r.left_exceptions, left)
            && r.right.as_ref().is_none_or(|l| any_match(l, right))
            && !any_match(&r.right_exceptions, right)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let r = parse_line(b"ALL : \"^sip:.*@gw\\.example$\", \"^sip:911@\" # comment\n").unwrap();
        assert!(r.left.is_none());
        assert_eq!(r.right.as_ref().unwrap().len(), 2);
        let r = parse_line(b"\"^sip:a@\" EXCEPT \"^sip:ab\" : ALL EXCEPT \"^sip:x\"").unwrap();
        // An unquoted ':' on the right moves the separator, as in Kamailio.
        assert!(parse_line(b"ALL : ^sip:x").unwrap().left.is_some());
        assert_eq!(r.left_exceptions, vec!["^sip:ab".to_string()]);
        assert_eq!(r.right_exceptions, vec!["^sip:x".to_string()]);
        assert!(parse_line(b"# only a comment").is_none());
        assert!(parse_line(b"   \n").is_none());
        assert!(parse_line(b"no colon here").is_none());
        assert!(parse_line(b"a(: b").is_none(), "bad regex drops the line");
        assert!(parse_line(b": b").is_none());
        assert!(search(
            &[parse_line(b"ALL : \"^SIP:911@\"").unwrap()],
            "x",
            "sip:911@h"
        ));
        assert!(!search(
            &[parse_line(b"ALL EXCEPT alice : ALL").unwrap()],
            "sip:alice@h",
            "y"
        ));
        for bad in [&b"\""[..], b":", b"::", b"\",\":\",\"", b"a,,b : c"] {
            let _ = parse_line(bad);
        }
    }
}
