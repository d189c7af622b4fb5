//! The SIP runtime: message model, transports, workers, transactions and modules.

pub mod config;
pub mod db;
pub mod log;
pub mod socket;
pub mod transport;
