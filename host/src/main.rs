//! `envhub`: the envhub server for hosts. See `envhub --help`.

use std::process::ExitCode;

use clap::Parser;
use envhub_host::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    envhub_host::init_logging();
    envhub_host::run(cli)
}
