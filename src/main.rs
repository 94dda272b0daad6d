//! `espo`: the command-line tool of the espo IPsec offload gateway.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("espo: error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
