//! The execution core shared by every routing engine.
//!
//! * [`value`]: the dynamic value every routing engine passes around.
//! * [`route`]: route kinds and the Kamailio route-type bit masks.
//! * [`ksr`]: the KSR function table — one indexed registry of module exports that the
//!   native VM and every KEMI engine call by integer index.
//! * [`bytecode`], [`program`], [`interp`], [`image`]: the compiled native program, its
//!   register interpreter and its on-disk form.
//!
//! The crate is generic over the host context `C` (the runtime's per-worker message
//! context), so it does not depend on the SIP runtime.

pub mod bytecode;
pub mod image;
pub mod interp;
pub mod ksr;
pub mod program;
pub mod route;
pub mod value;

pub use ksr::{Export, ExportSig, KsrFn, KsrTable, ParamHint, ParamType, RetType};
pub use route::{RouteKind, RouteMask};
pub use value::Value;
pub mod host;
pub mod pv;
pub mod transform;

pub use host::Host;
