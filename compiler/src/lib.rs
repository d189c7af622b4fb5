//! kamailio.cfg compiler: preprocessor, lexer, parser, AST, diagnostics, checks, IR, lowering.
pub mod ast;
pub mod diag;
pub mod lexer;
pub mod source;
pub mod preprocess;
pub mod token;
