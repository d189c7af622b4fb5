//! A bounded per-worker cache of parsed pseudo-variables and format strings for names that
//! arrive as text at run time (KEMI `KSR.pv.get("$var(x)")`, `KSR.pv.sets(...)`, xlog-like
//! functions called with a format).
//!
//! Kamailio keeps every name it ever parsed (its pv cache only drops `$sht(...)` entries, and
//! only past a limit), which leaks when scripts build names dynamically. This cache holds at
//! most `capacity` entries per kind in two generations: lookups hit the young generation or
//! promote from the old one; when the young one is full it becomes the old one and the
//! previous old one is dropped. Entries used recently therefore survive, the memory bound is
//! hard and every operation is O(1).

use super::parse::{locate_name, parse_format, parse_spec_prefix};
use super::{Format, PvParseError, PvRegistry, PvSpec};
use ahash::AHashMap;
use std::sync::Arc;

struct TwoGen<T> {
    young: AHashMap<Box<str>, Arc<T>>,
    old: AHashMap<Box<str>, Arc<T>>,
    /// Entries per generation.
    half: usize,
}

impl<T> TwoGen<T> {
    fn new(capacity: usize) -> Self {
        TwoGen {
            young: AHashMap::new(),
            old: AHashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    fn get(&mut self, key: &str) -> Option<Arc<T>> {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let (k, v) = self.old.remove_entry(key)?;
        self.insert(k, v.clone());
        Some(v)
    }

    fn insert(&mut self, key: Box<str>, v: Arc<T>) {
        if self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, v);
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }
}

/// Parsed pseudo-variables and formats by their text, bounded. One per worker.
pub struct PvCache {
    specs: TwoGen<PvSpec>,
    formats: TwoGen<Format>,
}

impl Default for PvCache {
    fn default() -> Self {
        PvCache::new(PvCache::DEFAULT_CAPACITY)
    }
}

impl PvCache {
    /// Kamailio's default `pv_cache_limit` is 2048; KEMI scripts use far fewer distinct names.
    pub const DEFAULT_CAPACITY: usize = 2048;

    /// A cache holding at most `capacity` pseudo-variables and `capacity` formats.
    pub fn new(capacity: usize) -> PvCache {
        PvCache {
            specs: TwoGen::new(capacity),
            formats: TwoGen::new(capacity),
        }
    }

    /// The pseudo-variable at the start of `text`, parsed once. Like Kamailio's
    /// `pv_cache_get`, the name is located first and text after it is ignored
    /// (`"$ru garbage"` reads `$ru`).
    pub fn spec<C>(
        &mut self,
        text: &str,
        reg: &PvRegistry<C>,
    ) -> Result<Arc<PvSpec>, PvParseError> {
        let len = locate_name(text)?;
        let key = text.get(..len).unwrap_or(text);
        if let Some(s) = self.specs.get(key) {
            return Ok(s);
        }
        let (spec, _) = parse_spec_prefix(key, reg)?;
        let spec = Arc::new(spec);
        self.specs.insert(key.into(), spec.clone());
        Ok(spec)
    }

    /// The format string `text`, parsed once.
    pub fn format<C>(
        &mut self,
        text: &str,
        reg: &PvRegistry<C>,
    ) -> Result<Arc<Format>, PvParseError> {
        if let Some(f) = self.formats.get(text) {
            return Ok(f);
        }
        let f = Arc::new(parse_format(text, reg)?);
        self.formats.insert(text.into(), f.clone());
        Ok(f)
    }

    /// Number of cached pseudo-variables and formats.
    pub fn len(&self) -> (usize, usize) {
        (self.specs.len(), self.formats.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Drops everything (e.g. after a configuration reload changed the registry).
    pub fn clear(&mut self) {
        self.specs.clear();
        self.formats.clear();
    }
}
