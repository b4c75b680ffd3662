//! `envhub`: the envhub server for hosts, and a client for any envhub
//! server. See `envhub --help`.

use std::process::ExitCode;

use clap::Parser;
use envhub_host::{client, Args, Command};

fn main() -> ExitCode {
    match Args::parse().serve_flags() {
        Ok(cli) => {
            envhub_host::init_logging();
            envhub_host::run(cli)
        }
        Err(Command::Send(args)) => client::send(&args),
        Err(Command::Latest(args)) => client::latest(&args),
        Err(Command::Stats(args)) => client::stats(&args),
        // serve_flags() returns every way of serving as Ok.
        Err(Command::Serve(cli)) => {
            envhub_host::init_logging();
            envhub_host::run(cli)
        }
    }
}
