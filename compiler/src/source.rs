//! Source files and turning byte spans into `file:line:col`.

use crate::ast::{FileId, Span};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<str>,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl SourceFile {
    fn new(path: PathBuf, text: Arc<str>) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (columns count bytes, like Kamailio).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(l) => l,
            Err(l) => l.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        (line + 1, offset.saturating_sub(start) + 1)
    }
}

/// Every file read while processing a configuration (the main file and its includes).
#[derive(Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file from text; returns its id.
    pub fn add(&mut self, path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> FileId {
        self.files.push(SourceFile::new(path.into(), text.into()));
        (self.files.len() - 1) as FileId
    }

    /// Reads and adds a file. Invalid UTF-8 is replaced (cfg files are text).
    pub fn load(&mut self, path: &Path) -> std::io::Result<FileId> {
        let bytes = std::fs::read(path)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(self.add(path.to_path_buf(), text))
    }

    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id as usize)
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (i as FileId, f))
    }

    pub fn path(&self, id: FileId) -> String {
        self.file(id)
            .map(|f| f.path.display().to_string())
            .unwrap_or_else(|| "<unknown>".into())
    }

    /// `(line, col)` of the start of `span`.
    pub fn line_col(&self, span: Span) -> (usize, usize) {
        self.file(span.file)
            .map(|f| f.line_col(span.lo as usize))
            .unwrap_or((0, 0))
    }

    /// The source text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        self.file(span.file)
            .and_then(|f| f.text.get(span.lo as usize..span.hi as usize))
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let mut sm = SourceMap::new();
        let f = sm.add("a.cfg", "ab\ncd\n\nx");
        assert_eq!(sm.line_col(Span::new(f, 0, 1)), (1, 1));
        assert_eq!(sm.line_col(Span::new(f, 4, 5)), (2, 2));
        assert_eq!(sm.line_col(Span::new(f, 7, 8)), (4, 1));
        assert_eq!(sm.snippet(Span::new(f, 3, 5)), "cd");
    }
}
