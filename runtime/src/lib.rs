//! The SIP runtime: message model, transports, workers, transactions and modules.

pub mod catalog;
pub mod config;
pub mod core;
pub mod ctx;
pub mod db;
pub mod dns;
pub mod engine;
pub mod forward;
pub mod log;
pub mod modules;
pub mod native;
pub mod offline;
pub mod receive;
pub mod rpc;
pub mod server;
pub mod sip;
pub mod socket;
pub mod stats;
pub mod transport;

pub use crate::core::{Core, Setup, SetupError, SetupErrorKind};
pub use crate::ctx::Ctx;
