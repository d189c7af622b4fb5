//! Extended AVPs (`$xavp(root=>field)`): named lists whose values are either plain values
//! or nested lists of fields. New items are prepended, so index 0 is the newest, as in
//! Kamailio.

use bytes::Bytes;
use vm::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum XVal {
    Val(Value),
    List(XavpList),
}

/// An ordered list of named values, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct XavpList {
    items: Vec<(Bytes, XVal)>,
}

impl XavpList {
    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of items named `name`.
    pub fn count(&self, name: &[u8]) -> usize {
        self.items.iter().filter(|(n, _)| n[..] == *name).count()
    }

    /// Resolves a possibly negative index (`-1` = last) to a position among items named
    /// `name`.
    pub fn fix_index(&self, name: &[u8], idx: i32) -> Option<usize> {
        if idx >= 0 {
            return Some(idx as usize);
        }
        let n = self.count(name) as i64 + idx as i64;
        (n >= 0).then_some(n as usize)
    }

    pub fn get(&self, name: &[u8], idx: usize) -> Option<&XVal> {
        self.items
            .iter()
            .filter(|(n, _)| n[..] == *name)
            .nth(idx)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, name: &[u8], idx: usize) -> Option<&mut XVal> {
        self.items
            .iter_mut()
            .filter(|(n, _)| n[..] == *name)
            .nth(idx)
            .map(|(_, v)| v)
    }

    pub fn all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a XVal> + 'a {
        self.items
            .iter()
            .filter(move |(n, _)| n[..] == *name)
            .map(|(_, v)| v)
    }

    /// Prepends a new item.
    pub fn add(&mut self, name: Bytes, v: XVal) {
        self.items.insert(0, (name, v));
    }

    /// Appends an item after every existing one (`xavp_child_seti`-style helpers and
    /// building lists in order).
    pub fn push_back(&mut self, name: Bytes, v: XVal) {
        self.items.push((name, v));
    }

    /// Replaces the value of item `idx` named `name`; false when there is no such item.
    pub fn set(&mut self, name: &[u8], idx: usize, v: XVal) -> bool {
        match self.get_mut(name, idx) {
            Some(slot) => {
                *slot = v;
                true
            }
            None => false,
        }
    }

    /// Removes item `idx` named `name`, or every item named `name` when `idx` is `None`.
    pub fn remove(&mut self, name: &[u8], idx: Option<usize>) {
        match idx {
            None => self.items.retain(|(n, _)| n[..] != *name),
            Some(i) => {
                let pos = self
                    .items
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| n[..] == *name)
                    .nth(i)
                    .map(|(p, _)| p);
                if let Some(p) = pos {
                    self.items.remove(p);
                }
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &XVal)> {
        self.items.iter().map(|(n, v)| (n, v))
    }

    /// Distinct names, in first-seen order.
    pub fn names(&self) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = Vec::new();
        for (n, _) in &self.items {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_negative_index() {
        let mut l = XavpList::default();
        l.add("a".into(), XVal::Val(Value::Int(1)));
        l.add("a".into(), XVal::Val(Value::Int(2)));
        l.add("b".into(), XVal::Val(Value::Int(9)));
        assert_eq!(l.get(b"a", 0), Some(&XVal::Val(Value::Int(2))));
        assert_eq!(l.fix_index(b"a", -1), Some(1));
        assert_eq!(l.fix_index(b"a", -3), None);
        l.remove(b"a", Some(0));
        assert_eq!(l.get(b"a", 0), Some(&XVal::Val(Value::Int(1))));
        l.remove(b"a", None);
        assert_eq!(l.count(b"a"), 0);
        assert_eq!(l.count(b"b"), 1);
    }
}
