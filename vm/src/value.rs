//! The dynamic value of the routing languages.
//!
//! Kamailio's script values are either integers or byte strings, plus "null" for unset
//! pseudo-variables. Strings are byte strings (SIP allows non-UTF-8 bytes), kept in
//! [`Bytes`] so that reading a header from the received buffer is a reference-count
//! increment, not a copy.
//!
//! Integers are stored as `i64` so KEMI `long` parameters fit, but the native language
//! does its arithmetic on 32-bit `int` like Kamailio (see the interpreter).

use bytes::Bytes;
use std::fmt;

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub enum Value {
    /// An unset pseudo-variable, `$null`, or a function that returned nothing.
    #[default]
    Null,
    Int(i64),
    Str(Bytes),
}

impl Value {
    /// A string value from static text (no allocation).
    pub const fn from_static(s: &'static str) -> Value {
        Value::Str(Bytes::from_static(s.as_bytes()))
    }

    /// A string value copied from `s`.
    pub fn str(s: impl AsRef<[u8]>) -> Value {
        Value::Str(Bytes::copy_from_slice(s.as_ref()))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a string value as UTF-8 text, replacing invalid sequences.
    pub fn to_text(&self) -> String {
        self.to_string()
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i as i64)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Int(b as i64)
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Str(b)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Bytes::from(s))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::str(s)
    }
}

/// Displays like Kamailio prints values in `xlog`: null as `<null>`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("<null>"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(&String::from_utf8_lossy(s)),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Str(s) => write!(f, "Str({:?})", String::from_utf8_lossy(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_xlog() {
        assert_eq!(Value::Null.to_string(), "<null>");
        assert_eq!(Value::Int(-3).to_string(), "-3");
        assert_eq!(Value::from("a b").to_string(), "a b");
    }
}
