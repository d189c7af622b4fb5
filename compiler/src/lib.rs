//! kamailio.cfg compiler: preprocessor, lexer, parser, AST, diagnostics, checks, IR, lowering.
pub mod ast;
pub mod diag;
