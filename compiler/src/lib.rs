//! kamailio.cfg compiler: preprocessor, lexer, parser, AST, diagnostics, checks, IR, lowering.
pub mod ast;
pub mod core_params;
pub mod diag;
pub mod frontend;
pub mod lexer;
pub mod lower;
pub mod parser;
pub mod preprocess;
pub mod pretty;
pub mod report;
pub mod source;
pub mod token;
