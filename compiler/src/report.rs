//! Rendering diagnostics: span-annotated (codespan-reporting) for people, and Kamailio's
//! one-line `parse error in config file FILE, line L, column C: MESSAGE` form for tools
//! written against `kamailio -c`.

use crate::diag::{Diagnostic, Severity};
use crate::source::SourceMap;
use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;

/// Renders `diags` with source snippets, in colour when `color` is set.
pub fn render(sources: &SourceMap, diags: &[Diagnostic], color: bool) -> String {
    let mut files = SimpleFiles::new();
    let ids: Vec<usize> = sources
        .files()
        .map(|(_, f)| files.add(f.path.display().to_string(), f.text.to_string()))
        .collect();
    let config = term::Config::default();
    let mut out = Vec::new();
    for d in diags {
        let file = ids.get(d.span.file as usize).copied().unwrap_or(0);
        let base = match d.severity {
            Severity::Error => cs::Diagnostic::error(),
            Severity::Warning => cs::Diagnostic::warning(),
        };
        let mut labels = vec![cs::Label::primary(
            file,
            d.span.lo as usize..d.span.hi as usize,
        )];
        for (sp, text) in &d.labels {
            let f = ids.get(sp.file as usize).copied().unwrap_or(0);
            labels.push(cs::Label::secondary(f, sp.lo as usize..sp.hi as usize).with_message(text));
        }
        let diag = base
            .with_message(&d.message)
            .with_labels(labels)
            .with_notes(d.notes.clone());
        if color {
            let mut w = term::termcolor::Ansi::new(&mut out);
            let _ = term::emit(&mut w, &config, &files, &diag);
        } else {
            let mut w = term::termcolor::NoColor::new(&mut out);
            let _ = term::emit(&mut w, &config, &files, &diag);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Kamailio's one-line form of a diagnostic.
pub fn one_line(sources: &SourceMap, d: &Diagnostic) -> String {
    let (line, col) = sources.line_col(d.span);
    let end = crate::ast::Span::new(
        d.span.file,
        d.span.hi.saturating_sub(1).max(d.span.lo),
        d.span.hi,
    );
    let (eline, ecol) = sources.line_col(end);
    let cols = if eline == line && ecol > col {
        format!("column {col}-{ecol}")
    } else {
        format!("column {col}")
    };
    let (level, what) = match d.severity {
        Severity::Error => ("CRITICAL", "parse error"),
        Severity::Warning => ("WARNING", "warning"),
    };
    format!(
        " 0({}) {level}: <core> [ksr]: {what} in config file {}, line {line}, {cols}: {}",
        std::process::id(),
        sources.path(d.span.file),
        d.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Span;

    #[test]
    fn renders_both_forms() {
        let mut sm = SourceMap::new();
        let f = sm.add("k.cfg", "request_route {\n  xlog(\"x\")\n}\n");
        let d = Diagnostic::error(Span::new(f, 27, 28), "syntax error: missing ';'?");
        let pretty = render(&sm, std::slice::from_ref(&d), false);
        assert!(pretty.contains("k.cfg:2:"), "{pretty}");
        assert!(pretty.contains("missing ';'"));
        let line = one_line(&sm, &d);
        assert!(
            line.contains("parse error in config file k.cfg, line 2, column 12: syntax error"),
            "{line}"
        );
    }
}
