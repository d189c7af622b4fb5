//! kamailio.cfg compiler: preprocessor, lexer, parser, AST, diagnostics, checks, IR, lowering.
pub mod ast;
pub mod check;
pub mod codegen;
pub mod core_params;
pub mod diag;
pub mod frontend;
pub mod ir;
pub mod lexer;
pub mod lower;
pub mod parser;
pub mod preprocess;
pub mod pretty;
pub mod report;
pub mod source;
pub mod token;

pub use check::{Catalog, ModuleCatalog, ParamKind};

/// Checks, lowers, optimizes and generates code for `config`: the program, or every
/// error (warnings are dropped; [`compile_with_warnings`] keeps them).
pub fn compile<C>(
    config: &ast::Config,
    cat: &Catalog<'_, C>,
) -> Result<vm::program::Program, Vec<diag::Diagnostic>> {
    match compile_with_warnings(config, cat) {
        (Some(p), _) => Ok(p),
        (None, d) => Err(d.into_iter().filter(|d| d.is_error()).collect()),
    }
}

/// Like [`compile`], returning the warnings too (and the program only when there are no
/// errors).
pub fn compile_with_warnings<C>(
    config: &ast::Config,
    cat: &Catalog<'_, C>,
) -> (Option<vm::program::Program>, Vec<diag::Diagnostic>) {
    let (module, diags) = compile_ir(config, cat);
    if diags.iter().any(|d| d.is_error()) {
        return (None, diags);
    }
    match codegen::generate(&module) {
        Ok(p) => (Some(p), diags),
        Err(mut e) => {
            e.extend(diags);
            (None, e)
        }
    }
}

/// The optimized IR of `config` (what `ksr compile --emit ir` prints) with every
/// diagnostic.
pub fn compile_ir<C>(
    config: &ast::Config,
    cat: &Catalog<'_, C>,
) -> (ir::Module, Vec<diag::Diagnostic>) {
    let mut diags = check::rules(config, cat);
    let (mut module, lowered) = lower::lower(config, cat);
    diags.extend(lowered);
    let diags = check::normalize(diags);
    ir::opt::optimize(&mut module);
    (module, diags)
}
