//! The SIP runtime: message model, transports, workers, transactions and modules.
