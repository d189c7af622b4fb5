//! The front-end entry points: a cfg file (or text) to an AST, with every diagnostic.

use crate::ast::Config;
use crate::diag::Diagnostic;
use crate::preprocess::{self, Compat, Options};
use crate::source::SourceMap;
use std::path::Path;

pub struct ParseResult {
    /// The configuration (items with syntax errors left out). `None` when the file could not
    /// be read at all.
    pub config: Option<Config>,
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    pub compat: Compat,
    /// The define table after preprocessing.
    pub defines: Vec<(String, Option<String>)>,
}

impl ParseResult {
    pub fn has_errors(&self) -> bool {
        self.config.is_none() || self.diagnostics.iter().any(|d| d.is_error())
    }
}

/// Preprocesses and parses the file at `path`.
pub fn parse_file(path: &Path, opts: &Options) -> Result<ParseResult, std::io::Error> {
    let mut sources = SourceMap::new();
    let id = sources.load(path)?;
    Ok(run(sources, id, opts))
}

/// Preprocesses and parses `text` as if it were the file `name`.
pub fn parse_str(name: &str, text: &str, opts: &Options) -> ParseResult {
    let mut sources = SourceMap::new();
    let id = sources.add(name, text.to_string());
    run(sources, id, opts)
}

fn run(mut sources: SourceMap, id: crate::ast::FileId, opts: &Options) -> ParseResult {
    let (out, mut diagnostics) = preprocess::preprocess(&mut sources, id, opts);
    let (config, parse_diags) = crate::parser::parse_tokens(out.tokens);
    diagnostics.extend(parse_diags);
    diagnostics.sort_by_key(|d| (d.span.file, d.span.lo));
    ParseResult {
        config: Some(config),
        sources,
        diagnostics,
        compat: out.compat,
        defines: out.defines,
    }
}
