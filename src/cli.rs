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
    /// List every KSR export (the functions KEMI scripts and native configs call).
    Api(ApiArgs),
    /// Run a corpus of SIP messages through configs offline and compare engines.
    Bench(BenchArgs),
    /// Compile a cfg ahead of time into an image that `ksr run -f IMAGE` starts from.
    Compile(CompileArgs),
    /// Send an RPC command to a running server (jsonrpcs datagram socket or FIFO).
    Rpc(crate::rpc_client::RpcArgs),
    /// Manage the subscriber table (auth_db) like `kamctl add/rm/show`.
    Subscriber(SubscriberArgs),
}

#[derive(Args)]
struct SubscriberArgs {
    /// Database URL (`sqlite:////abs/path.sqlite`), as the cfg's DBURL.
    #[arg(long = "db-url", env = "KSR_DB_URL", global = true)]
    db_url: Option<String>,
    #[command(subcommand)]
    op: SubscriberOp,
}

#[derive(Subcommand)]
enum SubscriberOp {
    /// Add or replace USER@DOMAIN with PASSWORD (password, ha1 and ha1b columns).
    Add { aor: String, password: String },
    /// Remove USER@DOMAIN.
    Rm { aor: String },
    /// List the subscribers.
    List,
}

#[derive(Args)]
struct CompileArgs {
    #[command(flatten)]
    cfg: CfgArgs,
    /// Output image.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Print the compiled program: `ir` is the optimized IR, `asm` the bytecode listing.
    #[arg(long, value_enum)]
    emit: Option<Emit>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Emit {
    Ir,
    Asm,
}

#[derive(Args)]
struct BenchArgs {
    /// Configurations to run (each with its own `cfgengine`); repeat to compare.
    #[arg(short = 'f', long = "file", required = true)]
    files: Vec<PathBuf>,
    /// Define NAME[=VALUE] for every file.
    #[arg(short = 'A', long = "define", value_name = "NAME[=VALUE]")]
    defines: Vec<String>,
    /// Directory of `.sip` messages (`{port}` is replaced by the first listener's port).
    #[arg(long, default_value = "benches/corpus")]
    corpus: PathBuf,
    /// Passes over the corpus.
    #[arg(short = 'n', long, default_value_t = 2000)]
    iterations: u32,
    /// Also print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Worker threads feeding the corpus at once, each with its own context and engine
    /// instance over the one core (shows lock and GIL contention). Each does `-n` passes.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: u32,
}

#[derive(Args)]
struct ApiArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: ApiFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ApiFormat {
    Text,
    Json,
    Markdown,
    /// Lua stubs for editor completion.
    Lua,
    /// Python stub (`KSR.pyi`) for editor completion and type checkers.
    Pyi,
    /// TypeScript declarations (`ksr.d.ts`) for JavaScript editors.
    Dts,
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
        Cmd::Api(a) => api(a),
        Cmd::Bench(a) => bench(a),
        Cmd::Compile(a) => compile_image(a),
        Cmd::Rpc(a) => crate::rpc_client::rpc(a),
        Cmd::Subscriber(a) => subscriber(a),
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
    let mut engine_error = None;
    if !a.syntax_only
        && !r.has_errors()
        && let Some(cfg) = &r.config
    {
        // Go on with whatever did load, so every problem is reported in one run; the
        // compiler's checks report modparam problems themselves (with the module catalog).
        let (setup, setup_errors) = runtime::Setup::from_config_partial(cfg);
        let setup_ok = setup_errors.is_empty();
        diags.extend(
            setup_errors
                .into_iter()
                .filter(|e| e.kind != runtime::SetupErrorKind::ModParam)
                .map(|e| Diagnostic::error(e.span, e.message)),
        );
        let modules = runtime::catalog::SetupCatalog::new(&setup);
        let catalog = compiler::Catalog::new(&setup.table, &setup.pvs)
            .with_modules(&modules)
            .with_sources(&r.sources);
        let (program, compiled) = compiler::compile_with_warnings(cfg, &catalog);
        diags.extend(compiled);
        // A KEMI config: load the script as a worker would, so a syntax error or a
        // missing entry point is reported now rather than at the first message.
        if let Some(program) = program
            && setup_ok
            && setup
                .cfg
                .cfgengine
                .as_deref()
                .is_some_and(|e| e != "native")
        {
            engine_error = match engine_factory(&setup, program) {
                Err(e) => Some(e),
                Ok(f) => runtime::offline::Harness::new(setup, f.as_ref()).err(),
            };
        }
    }
    diags.sort_by_key(|d| (d.span.file, d.span.lo));
    let mut errors = report(&r, &diags, a.one_line);
    if let Some(e) = engine_error {
        eprintln!("ERROR: {e}");
        errors += 1;
    }
    if errors > 0 {
        eprintln!("ERROR: bad config file ({errors} errors)");
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("config file ok, exiting...");
    Ok(ExitCode::SUCCESS)
}

/// Reads, checks and compiles a cfg: the setup and the program, or the errors printed.
fn load(cfg: &CfgArgs) -> anyhow::Result<Option<(runtime::Setup, vm::program::Program)>> {
    Ok(load_with_config(cfg)?.map(|(s, p, _)| (s, p)))
}

/// [`load`], also returning the syntax tree.
#[allow(clippy::type_complexity)]
fn load_with_config(
    cfg: &CfgArgs,
) -> anyhow::Result<Option<(runtime::Setup, vm::program::Program, compiler::ast::Config)>> {
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
    // The same module hints as `ksr check` ("exported by module X, which is not loaded").
    let modules = runtime::catalog::SetupCatalog::new(&setup);
    let catalog = compiler::Catalog::new(&setup.table, &setup.pvs)
        .with_modules(&modules)
        .with_sources(&r.sources);
    match compiler::compile(config, &catalog) {
        Ok(p) => Ok(Some((setup, p, config.clone()))),
        Err(d) => {
            report(&r, &d, false);
            Ok(None)
        }
    }
}

fn run_server(a: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = if is_image(&a.cfg.file) {
        load_image(&a.cfg.file)?
    } else {
        load(&a.cfg)?
    };
    let Some((mut setup, program)) = loaded else {
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
    let native = runtime::native::NativeFactory {
        program: std::sync::Arc::new(program),
    };
    let kemi: Result<std::sync::Arc<dyn runtime::engine::EngineFactory>, String> = match engine
        .as_str()
    {
        "native" | "" => return Ok(std::sync::Arc::new(native)),
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
        "python" => {
            let params = setup
                .modules
                .iter()
                .find(|(m, _)| m.name == "app_python3")
                .map(|(_, p)| p)
                .ok_or("cfgengine \"python\" needs loadmodule \"app_python3.so\" and modparam(\"app_python3\", \"load\", \"/path/script.py\")")?;
            Ok(std::sync::Arc::new(engines::python::PythonFactory {
                opts: engines::python::PythonOptions::from_params(params),
            }))
        }
        "jsdt" => {
            let script = setup
                .modules
                .iter()
                .find(|(m, _)| m.name == "app_jsdt")
                .and_then(|(_, p)| p.str("load"))
                .ok_or("cfgengine \"jsdt\" needs loadmodule \"app_jsdt.so\" and modparam(\"app_jsdt\", \"load\", \"/path/script.js\")")?;
            Ok(std::sync::Arc::new(engines::js::JsFactory {
                script: PathBuf::from(script),
            }))
        }
        other => return Err(format!("cfgengine \"{other}\" is not available in ksr yet")),
    };
    let kemi = kemi?;
    // The cfg's native event_route blocks stay available beside the script (hybrid configs).
    Ok(std::sync::Arc::new(runtime::native::HybridFactory {
        kemi,
        native,
    }))
}

/// Every module ksr ships, loaded, to list their exports.
fn all_modules_setup() -> anyhow::Result<runtime::Setup> {
    use compiler::ast::{Config, Item, ItemKind, Span};
    let items = runtime::modules::MODULES
        .iter()
        .map(|m| Item {
            kind: ItemKind::LoadModule {
                path: format!("{}.so", m.name).into(),
                opts: None,
                expand: false,
            },
            span: Span::default(),
        })
        .collect();
    runtime::Setup::from_config(&Config { items }).map_err(|e| {
        anyhow::anyhow!(
            "cannot load the modules: {:?}",
            e.first().map(|x| &x.message)
        )
    })
}

fn api(a: ApiArgs) -> anyhow::Result<ExitCode> {
    let setup = all_modules_setup()?;
    let mut rows: Vec<ApiRow> = Vec::new();
    for (_, e) in setup.table.exports() {
        if !e.sig.kemi {
            continue;
        }
        let params = e
            .sig
            .params
            .iter()
            .map(|p| match p {
                vm::ParamType::Int => "int",
                vm::ParamType::Str => "str",
            })
            .collect();
        let ret = match e.sig.ret {
            vm::RetType::None => "none",
            vm::RetType::Int => "int",
            vm::RetType::Bool => "bool",
            vm::RetType::Str => "str",
            vm::RetType::Xval => "xval",
        };
        rows.push((
            e.sig.module.clone(),
            e.sig.name.clone(),
            params,
            ret,
            e.sig.owner.clone(),
        ));
    }
    rows.sort();
    let path = |m: &str, n: &str| {
        if m.is_empty() {
            format!("KSR.{n}")
        } else {
            format!("KSR.{m}.{n}")
        }
    };
    match a.format {
        ApiFormat::Text => {
            for (m, n, p, r, _) in &rows {
                println!("{r} {}({})", path(m, n), p.join(", "));
            }
        }
        ApiFormat::Markdown => {
            println!("| function | parameters | returns | cfg module |\n|---|---|---|---|");
            for (m, n, p, r, o) in &rows {
                println!("| `{}` | {} | {r} | {o} |", path(m, n), p.join(", "));
            }
        }
        ApiFormat::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|(m, n, p, r, o)| {
                    serde_json::json!({"module": m, "name": n, "params": p, "ret": r, "owner": o})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ApiFormat::Lua => {
            println!(
                "-- KSR API stubs generated by `ksr api --format lua` (for editor completion)."
            );
            println!("KSR = KSR or {{}}");
            let mut seen = std::collections::BTreeSet::new();
            for (m, _, _, _, _) in &rows {
                if !m.is_empty() && seen.insert(m.clone()) {
                    println!("KSR.{m} = KSR.{m} or {{}}");
                }
            }
            for (m, n, p, r, _) in &rows {
                let args: Vec<String> = (0..p.len()).map(|i| format!("p{i}")).collect();
                for (i, t) in p.iter().enumerate() {
                    println!(
                        "---@param p{i} {}",
                        if *t == "int" { "integer" } else { "string" }
                    );
                }
                let lr = match *r {
                    "int" => "integer",
                    "bool" => "boolean",
                    "str" => "string|nil",
                    "xval" => "any",
                    _ => "nil",
                };
                println!(
                    "---@return {lr}\nfunction {}({}) end",
                    path(m, n),
                    args.join(", ")
                );
            }
        }
        ApiFormat::Pyi => print!("{}", pyi_stub(&rows)),
        ApiFormat::Dts => print!("{}", dts_stub(&rows)),
    }
    Ok(ExitCode::SUCCESS)
}

/// One KSR export for the stub generators: (module, name, params, ret, owner).
type ApiRow = (String, String, Vec<&'static str>, &'static str, String);

/// Python's reserved words: such names cannot be written as attributes in a stub (scripts
/// reach them with `getattr(KSR, "async")`, as Kamailio's README says).
const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// JavaScript's reserved words, which cannot name a declared function or namespace.
const JS_RESERVED: &[&str] = &[
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "let",
    "static",
    "implements",
    "interface",
    "package",
    "private",
    "protected",
    "public",
    "await",
];

/// Groups the rows by KSR sub-module ("" first).
fn by_module(rows: &[ApiRow]) -> std::collections::BTreeMap<&str, Vec<&ApiRow>> {
    let mut m: std::collections::BTreeMap<&str, Vec<&ApiRow>> = Default::default();
    for r in rows {
        m.entry(r.0.as_str()).or_default().push(r);
    }
    m
}

/// `KSR.pyi`: the module's functions, one class per sub-module with static methods and a
/// module attribute of that class, `KSR.x` included.
fn pyi_stub(rows: &[ApiRow]) -> String {
    use std::fmt::Write;
    let py_ty = |t: &str| if t == "int" { "int" } else { "str" };
    let py_ret = |r: &str| match r {
        "int" => "int",
        "bool" => "bool",
        "str" => "Optional[str]",
        "xval" => "Union[int, str, None]",
        _ => "None",
    };
    let sig = |n: &str, p: &[&str], r: &str| {
        let args: Vec<String> = p
            .iter()
            .enumerate()
            .map(|(i, t)| format!("p{i}: {}", py_ty(t)))
            .collect();
        format!("def {n}({}) -> {}: ...", args.join(", "), py_ret(r))
    };
    let mut out = String::from(
        "# KSR stub generated by `ksr api --format pyi` (save as KSR.pyi for editors and type checkers).\nfrom typing import NoReturn, Optional, Union\n\n",
    );
    let mods = by_module(rows);
    for (m, fns) in &mods {
        if m.is_empty() {
            for (_, n, p, r, _) in fns.iter().copied() {
                if !PY_KEYWORDS.contains(&n.as_str()) {
                    let _ = writeln!(out, "{}", sig(n, p, r));
                }
            }
            out.push('\n');
            continue;
        }
        if PY_KEYWORDS.contains(m) {
            let _ = writeln!(
                out,
                "# KSR.{m}: a Python keyword, reach it with getattr(KSR, \"{m}\")\n"
            );
            continue;
        }
        let _ = writeln!(out, "class _{m}:");
        for (_, n, p, r, _) in fns.iter().copied() {
            if PY_KEYWORDS.contains(&n.as_str()) {
                continue;
            }
            let _ = writeln!(out, "    @staticmethod\n    {}", sig(n, p, r));
        }
        let _ = writeln!(out, "\n{m}: _{m}\n");
    }
    out.push_str(
        "class _x:\n    @staticmethod\n    def exit() -> NoReturn: ...\n    @staticmethod\n    def drop() -> NoReturn: ...\n    @staticmethod\n    def modf(name: str, *args: str) -> int: ...\n\nx: _x\n",
    );
    out
}

/// `ksr.d.ts`: a `KSR` namespace with one nested namespace per sub-module, `KSR.x` included.
fn dts_stub(rows: &[ApiRow]) -> String {
    use std::fmt::Write;
    let ts_ty = |t: &str| if t == "int" { "number" } else { "string" };
    let ts_ret = |r: &str| match r {
        "int" => "number",
        "bool" => "boolean",
        "str" => "string | undefined",
        "xval" => "number | string | undefined",
        _ => "void",
    };
    let sig = |n: &str, p: &[&str], r: &str| {
        let args: Vec<String> = p
            .iter()
            .enumerate()
            .map(|(i, t)| format!("p{i}: {}", ts_ty(t)))
            .collect();
        format!("function {n}({}): {};", args.join(", "), ts_ret(r))
    };
    let mut out = String::from(
        "// KSR declarations generated by `ksr api --format dts` (save as ksr.d.ts for editors).\ndeclare namespace KSR {\n",
    );
    for (m, fns) in &by_module(rows) {
        let indent = if m.is_empty() { "    " } else { "        " };
        if !m.is_empty() {
            if JS_RESERVED.contains(m) {
                let _ = writeln!(
                    out,
                    "    // KSR.{m}: a reserved word, reach it with KSR[\"{m}\"]"
                );
                continue;
            }
            let _ = writeln!(out, "    namespace {m} {{");
        }
        for (_, n, p, r, _) in fns.iter().copied() {
            if !JS_RESERVED.contains(&n.as_str()) {
                let _ = writeln!(out, "{indent}{}", sig(n, p, r));
            }
        }
        if !m.is_empty() {
            out.push_str("    }\n");
        }
    }
    out.push_str(
        "    namespace x {\n        function exit(): never;\n        function drop(): never;\n        function modf(name: string, ...args: string[]): number;\n    }\n}\n",
    );
    out
}

fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let mut corpus: Vec<(String, String)> = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&a.corpus)
        .with_context(|| format!("cannot read corpus {}", a.corpus.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "sip"))
        .collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        corpus.push((
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read_to_string(e.path())?,
        ));
    }
    if corpus.is_empty() {
        anyhow::bail!("no .sip messages in {}", a.corpus.display());
    }
    runtime::log::set_level(-3);
    let mut results = Vec::new();
    for file in &a.files {
        let cfg = CfgArgs {
            file: file.clone(),
            defines: a.defines.clone(),
        };
        let Some((setup, program)) = load(&cfg)? else {
            anyhow::bail!("{}: bad config", file.display());
        };
        let engine = setup
            .cfg
            .cfgengine
            .clone()
            .unwrap_or_else(|| "native".into());
        let factory = engine_factory(&setup, program).map_err(|e| anyhow::anyhow!(e))?;
        let mut h = runtime::offline::Harness::new(setup, factory.as_ref())
            .map_err(|e| anyhow::anyhow!(e))?;
        let port = h
            .core
            .listeners
            .first()
            .map(|l| l.addr.port())
            .unwrap_or(5060);
        let msgs: Vec<bytes::Bytes> = corpus
            .iter()
            .map(|(_, t)| bytes::Bytes::from(t.replace("{port}", &port.to_string())))
            .collect();
        let src: std::net::SocketAddr = "127.0.0.1:5999".parse()?;
        let (mut samples, total) = if a.workers <= 1 {
            let sink = h.recorder();
            bench_worker(&mut h.ctx, &msgs, src, a.iterations, &sink)
        } else {
            bench_parallel(&h, &factory, &msgs, src, a.iterations, a.workers)?
        };
        samples.sort_by(|x, y| x.total_cmp(y));
        let n = samples.len().max(1);
        let pct = |p: f64| {
            samples
                .get(((n as f64 * p) as usize).min(n - 1))
                .copied()
                .unwrap_or(0.0)
        };
        let avg = samples.iter().sum::<f64>() / n as f64;
        results.push(serde_json::json!({
            "config": file.display().to_string(),
            "engine": engine,
            "workers": a.workers.max(1),
            "messages": n,
            "avg_us": avg,
            "min_us": samples.first().copied().unwrap_or(0.0),
            "max_us": samples.last().copied().unwrap_or(0.0),
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
            "per_second": n as f64 / total,
        }));
    }
    println!(
        "{:<8} {:>3} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}  config",
        "engine", "w", "avg µs", "min µs", "max µs", "p50 µs", "p99 µs", "msgs/s"
    );
    for r in &results {
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        println!(
            "{:<8} {:>3} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>12.0}  {}",
            r["engine"].as_str().unwrap_or(""),
            r["workers"].as_u64().unwrap_or(1),
            f("avg_us"),
            f("min_us"),
            f("max_us"),
            f("p50_us"),
            f("p99_us"),
            f("per_second"),
            r["config"].as_str().unwrap_or("")
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Feeds the corpus `iterations` times through one worker context (after one warm-up pass):
/// per-message times in µs and the wall time in seconds.
fn bench_worker(
    ctx: &mut runtime::ctx::Ctx,
    msgs: &[bytes::Bytes],
    src: std::net::SocketAddr,
    iterations: u32,
    sink: &runtime::transport::RecordingSender,
) -> (Vec<f64>, f64) {
    for m in msgs {
        runtime::offline::feed_ctx(ctx, m.clone(), src);
    }
    sink.take();
    let mut samples: Vec<f64> = Vec::with_capacity(msgs.len() * iterations as usize);
    let started = std::time::Instant::now();
    for i in 0..iterations {
        for m in msgs {
            let t = std::time::Instant::now();
            runtime::offline::feed_ctx(ctx, m.clone(), src);
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        if i % 64 == 0 {
            sink.take();
        }
    }
    (samples, started.elapsed().as_secs_f64())
}

/// `workers` threads, each with its own context and engine over the harness's core, feeding
/// the corpus at once: all their samples, and the wall time from the common start to the
/// last one finishing.
fn bench_parallel(
    h: &runtime::offline::Harness,
    factory: &std::sync::Arc<dyn runtime::engine::EngineFactory>,
    msgs: &[bytes::Bytes],
    src: std::net::SocketAddr,
    iterations: u32,
    workers: u32,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let core = h.core;
    let sink = h.recorder();
    let start = std::sync::Arc::new(std::sync::Barrier::new(workers as usize + 1));
    let mut threads = Vec::new();
    for w in 0..workers {
        let (factory, msgs, sink, start) = (
            std::sync::Arc::clone(factory),
            msgs.to_vec(),
            std::sync::Arc::clone(&sink),
            std::sync::Arc::clone(&start),
        );
        threads.push(std::thread::spawn(move || {
            let ctx = runtime::offline::worker_ctx(core, factory.as_ref(), w as i32 + 2);
            start.wait();
            let mut ctx = ctx?;
            Ok::<_, String>(bench_worker(&mut ctx, &msgs, src, iterations, &sink))
        }));
    }
    start.wait();
    let began = std::time::Instant::now();
    let mut all = Vec::new();
    for t in threads {
        let (s, _) = t
            .join()
            .map_err(|_| anyhow::anyhow!("bench worker panicked"))?
            .map_err(|e| anyhow::anyhow!(e))?;
        all.extend(s);
    }
    Ok((all, began.elapsed().as_secs_f64()))
}

fn is_image(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"KSRC"
}

/// The cfg text of everything but the routing blocks (parameters, modules, modparams).
fn params_text(config: &compiler::ast::Config) -> String {
    let items = config
        .items
        .iter()
        .filter(|i| !matches!(i.kind, compiler::ast::ItemKind::Route(_)))
        .cloned()
        .collect();
    compiler::pretty::print(&compiler::ast::Config { items })
}

fn compile_image(a: CompileArgs) -> anyhow::Result<ExitCode> {
    let Some((setup, program, config)) = load_with_config(&a.cfg)? else {
        return Ok(ExitCode::FAILURE);
    };
    let config = &config;
    match a.emit {
        Some(Emit::Asm) => print!("{}", program.disassemble()),
        Some(Emit::Ir) => {
            let cat = compiler::Catalog::new(&setup.table, &setup.pvs);
            print!("{}", compiler::compile_ir(config, &cat).0);
        }
        None => {}
    }
    let Some(output) = &a.output else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut program = program;
    program.params = params_text(config).into_bytes();
    let bytes = vm::image::write(&program);
    std::fs::write(output, &bytes).with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "{}: {} instructions, {} routes, {} bytes",
        output.display(),
        program.code.len(),
        program.routes.len(),
        bytes.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Starts from an image: the parameters' cfg text sets up the modules, the program is
/// loaded against their exports (refused when one is missing or different).
fn load_image(
    path: &std::path::Path,
) -> anyhow::Result<Option<(runtime::Setup, vm::program::Program)>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let params =
        vm::image::params_cfg(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let r =
        compiler::frontend::parse_str(&path.display().to_string(), &params, &Options::default());
    let Some(config) = r.config.as_ref().filter(|_| !r.has_errors()) else {
        report(&r, &r.diagnostics, false);
        return Ok(None);
    };
    let setup = runtime::Setup::from_config(config).map_err(|e| {
        anyhow::anyhow!(
            "{}: {}",
            path.display(),
            e.first().map(|x| x.message.clone()).unwrap_or_default()
        )
    })?;
    let program = vm::image::load(&bytes, &setup.table, &setup.pvs)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some((setup, program)))
}

fn subscriber(a: SubscriberArgs) -> anyhow::Result<ExitCode> {
    use runtime::modules::auth_db::subscriber as sub;
    let url = a
        .db_url
        .context("no database: give --db-url sqlite:////path/to/db (or set KSR_DB_URL)")?;
    let cwd = std::env::current_dir().context("current directory")?;
    let path = runtime::db::sqlite_path(&url, &cwd)?;
    let mut db = runtime::db::Sqlite::open(&path)?;
    let split = |aor: &str| -> anyhow::Result<(String, String)> {
        let aor = aor.strip_prefix("sip:").unwrap_or(aor);
        match aor.split_once('@') {
            Some((u, d)) if !u.is_empty() && !d.is_empty() => Ok((u.to_string(), d.to_string())),
            _ => anyhow::bail!("expected USER@DOMAIN, got '{aor}'"),
        }
    };
    match a.op {
        SubscriberOp::Add { aor, password } => {
            let (u, d) = split(&aor)?;
            if password.is_empty() {
                anyhow::bail!("empty password");
            }
            sub::add(&mut db, &u, &d, &password)?;
            println!("added {u}@{d}");
        }
        SubscriberOp::Rm { aor } => {
            let (u, d) = split(&aor)?;
            if !sub::remove(&mut db, &u, &d)? {
                eprintln!("{u}@{d} is not a subscriber");
                return Ok(ExitCode::FAILURE);
            }
            println!("removed {u}@{d}");
        }
        SubscriberOp::List => {
            for (u, d, h) in sub::list(&mut db)? {
                println!("{u}@{d}\t{h}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
