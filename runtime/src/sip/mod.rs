//! The SIP message model: a zero-copy parser with lazily parsed typed headers, and recorded
//! changes applied once when the message is sent.
//!
//! Parsing a received message only splits the start line and indexes header lines (name and
//! value ranges, known header kinds incl. compact forms). Typed values — URIs, name-addrs,
//! Via lists, CSeq, digest credentials — are parsed on first access and cached; they refer to
//! the original buffer (`Bytes` slices), so nothing is copied.

pub mod auth;
pub mod hdr;
pub mod method;
pub mod msg;
pub mod nameaddr;
pub mod reply;
pub mod scan;
pub mod uri;
pub mod via;

pub use auth::Credentials;
pub use hdr::{HdrKind, kind_of};
pub use method::Method;
pub use msg::{CSeq, Contacts, Edit, FirstLine, HdrError, Header, Limits, ParseError, SipMsg};
pub use nameaddr::NameAddr;
pub use uri::{Scheme, Uri, UriError};
pub use via::Via;
