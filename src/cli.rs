//! Command line: argument parsing and the sub-commands.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use compiler::diag::Diagnostic;
use compiler::frontend::{ParseResult, parse_file};
use compiler::preprocess::Options;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ksr",
    version,
    about = "SIP routing server running Kamailio routing logic"
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a configuration like `kamailio -c`: syntax, modules, parameters, names.
    Check(CheckArgs),
    /// Run the SIP server on a configuration.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    cfg: CfgArgs,
    /// Log level (overrides `debug=` of the cfg), Kamailio numbering: -5..3.
    #[arg(long)]
    debug: Option<i32>,
}

/// Options shared by every command that reads a cfg.
#[derive(Args, Clone)]
pub struct CfgArgs {
    /// The configuration file.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "/etc/kamailio/kamailio.cfg"
    )]
    pub file: PathBuf,
    /// Define NAME (or NAME=VALUE) before reading the file, like `kamailio -A`.
    #[arg(short = 'A', long = "define", value_name = "NAME[=VALUE]")]
    pub defines: Vec<String>,
}

impl CfgArgs {
    pub fn options(&self) -> Options {
        Options {
            defines: self
                .defines
                .iter()
                .map(|d| match d.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (d.clone(), None),
                })
                .collect(),
        }
    }
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    cfg: CfgArgs,
    /// Stop after parsing: no module or name resolution (for tooling, and for configs that
    /// load modules ksr does not ship).
    #[arg(long)]
    syntax_only: bool,
    /// Print the preprocessed configuration (like `kamailio --cfg-print`).
    #[arg(long)]
    cfg_print: bool,
    /// Only print the Kamailio-style one-line messages.
    #[arg(long)]
    one_line: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Check(a) => check(a),
        Cmd::Run(a) => run_server(a),
    }
}

/// Prints diagnostics in both forms; returns the number of errors.
pub fn report(r: &ParseResult, diags: &[Diagnostic], one_line_only: bool) -> usize {
    let color = std::io::stderr().is_terminal();
    if !one_line_only && !diags.is_empty() {
        eprint!("{}", compiler::report::render(&r.sources, diags, color));
    }
    for d in diags {
        eprintln!("{}", compiler::report::one_line(&r.sources, d));
    }
    diags.iter().filter(|d| d.is_error()).count()
}

fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let r = parse_file(&a.cfg.file, &a.cfg.options())
        .with_context(|| format!("cannot read {}", a.cfg.file.display()))?;
    let mut diags = r.diagnostics.clone();
    if a.cfg_print
        && let Some(c) = &r.config
    {
        print!("{}", compiler::pretty::print(c));
    }
    if !a.syntax_only
        && !r.has_errors()
        && let Some(cfg) = &r.config
        && let Err(errs) = runtime::Setup::from_config(cfg)
    {
        diags.extend(
            errs.into_iter()
                .map(|e| Diagnostic::error(e.span, e.message)),
        );
    } else if !a.syntax_only
        && !r.has_errors()
        && let Some(cfg) = &r.config
        && let Ok(setup) = runtime::Setup::from_config(cfg)
        && let Err(errs) = compiler::lower::compile(cfg, &setup.table, &setup.pvs)
    {
        diags.extend(errs);
    }
    diags.sort_by_key(|d| (d.span.file, d.span.lo));
    let errors = report(&r, &diags, a.one_line);
    if errors > 0 {
        eprintln!("ERROR: bad config file ({errors} errors)");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("config file ok, exiting...");
    Ok(ExitCode::SUCCESS)
}

/// Reads, checks and compiles a cfg: the setup and the program, or the errors printed.
fn load(cfg: &CfgArgs) -> anyhow::Result<Option<(runtime::Setup, vm::program::Program)>> {
    let r = parse_file(&cfg.file, &cfg.options())
        .with_context(|| format!("cannot read {}", cfg.file.display()))?;
    let Some(config) = r.config.as_ref().filter(|_| !r.has_errors()) else {
        report(&r, &r.diagnostics, false);
        return Ok(None);
    };
    let setup = match runtime::Setup::from_config(config) {
        Ok(s) => s,
        Err(errs) => {
            let d: Vec<Diagnostic> = errs
                .into_iter()
                .map(|e| Diagnostic::error(e.span, e.message))
                .collect();
            report(&r, &d, false);
            return Ok(None);
        }
    };
    match compiler::lower::compile(config, &setup.table, &setup.pvs) {
        Ok(p) => Ok(Some((setup, p))),
        Err(d) => {
            report(&r, &d, false);
            Ok(None)
        }
    }
}

fn run_server(a: RunArgs) -> anyhow::Result<ExitCode> {
    let Some((mut setup, program)) = load(&a.cfg)? else {
        eprintln!("ERROR: bad config file");
        return Ok(ExitCode::FAILURE);
    };
    if let Some(d) = a.debug {
        setup.cfg.debug = d;
    }
    let factory = match engine_factory(&setup, program) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let signals = crate::signals::block_termination();
    let workdir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let server = match runtime::server::Server::start(setup, factory, workdir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    crate::signals::wait(&signals);
    server.stop();
    Ok(ExitCode::SUCCESS)
}

/// The routing engine `cfgengine` selects: the native VM, or a KEMI engine with the script
/// its module's `load` parameter names.
fn engine_factory(
    setup: &runtime::Setup,
    program: vm::program::Program,
) -> Result<std::sync::Arc<dyn runtime::engine::EngineFactory>, String> {
    let engine = setup
        .cfg
        .cfgengine
        .clone()
        .unwrap_or_else(|| "native".into());
    match engine.as_str() {
        "native" | "" => Ok(std::sync::Arc::new(runtime::native::NativeFactory {
            program: std::sync::Arc::new(program),
        })),
        "lua" => {
            let script = setup
                .modules
                .iter()
                .find(|(m, _)| m.name == "app_lua")
                .and_then(|(_, p)| p.str("load"))
                .ok_or("cfgengine \"lua\" needs loadmodule \"app_lua.so\" and modparam(\"app_lua\", \"load\", \"/path/script.lua\")")?;
            Ok(std::sync::Arc::new(engines::lua::LuaFactory {
                script: PathBuf::from(script),
            }))
        }
        other => Err(format!("cfgengine \"{other}\" is not available in ksr yet")),
    }
}
