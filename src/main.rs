//! `ksr`: run Kamailio routing logic (native cfg or KEMI scripts).

mod cli;
mod rpc_client;
mod signals;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ksr: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
