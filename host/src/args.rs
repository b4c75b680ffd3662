//! The whole command line of `envhub`: serving (the flags of [`Cli`], with
//! or without the `serve` subcommand) or one of the client subcommands
//! (`send`, `latest`, `stats`; see [`crate::client`]).

use clap::{Parser, Subcommand};

use crate::cli::Cli;
use crate::client::{LatestArgs, SendArgs, StatsArgs};

/// envhub: a gateway for home temperature and humidity sensors.
///
/// With no subcommand, or with `serve`, it is the server: sensors send JSON
/// lines over TCP, envhub validates them, keeps them and answers every line.
/// `send`, `latest` and `stats` are a client for any envhub server. The
/// protocol: docs/PROTOCOL.md in the repository.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "envhub",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  envhub --bind 0.0.0.0:8080                 serve sensors\n  envhub send --to 127.0.0.1:8080 --location kitchen --temp 21.5 --hum 40\n  envhub latest --to 127.0.0.1:8080 --pretty"
)]
pub struct Args {
    /// What to do; serve when absent.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The server's flags, for `envhub [FLAGS]` without a subcommand.
    #[command(flatten)]
    pub serve: Cli,
}

/// A subcommand of `envhub`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Command {
    /// Serve sensors (the same as no subcommand).
    Serve(Cli),
    /// Send one reading (from flags), or every line of stdin (`-`), and
    /// print the replies. Exit status: 0 all ok, 1 an error reply, 2 no
    /// connection or no reply.
    Send(SendArgs),
    /// Print the newest reading of every location, or of one.
    Latest(LatestArgs),
    /// Print the server's counters.
    Stats(StatsArgs),
}

impl Args {
    /// The server's flags when the command line asks to serve; `None` for a
    /// client subcommand.
    pub fn serve_flags(self) -> Result<Cli, Command> {
        match self.command {
            None => Ok(self.serve),
            Some(Command::Serve(cli)) => Ok(cli),
            Some(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Dash;
    use clap::CommandFactory;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("envhub").chain(args.iter().copied()))
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("envhub").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn no_subcommand_serves_with_todays_flags() {
        let flags = [
            "--bind",
            "127.0.0.1:0",
            "--max-clients",
            "3",
            "--idle-timeout",
            "2",
        ];
        assert_eq!(parse(&flags).unwrap().serve_flags(), Ok(cli(&flags)));
        assert_eq!(parse(&[]).unwrap().serve_flags(), Ok(cli(&[])));
        let mut spelled = vec!["serve"];
        spelled.extend(flags);
        assert_eq!(parse(&spelled).unwrap().serve_flags(), Ok(cli(&flags)));
    }

    #[test]
    fn send_from_flags_or_stdin() {
        let args = parse(&[
            "send",
            "--to",
            "[::1]:9",
            "--location",
            "hall",
            "--temp",
            "-3.5",
            "--hum",
            "40",
            "--seq",
            "7",
        ])
        .unwrap();
        let Err(Command::Send(send)) = args.serve_flags() else {
            panic!("not send");
        };
        assert_eq!(send.target.to, "[::1]:9");
        assert_eq!(send.location.as_deref(), Some("hall"));
        assert_eq!(
            (send.temp, send.hum, send.seq),
            (Some(-3.5), Some(40.0), Some(7))
        );
        assert_eq!(send.target.timeout, Duration::from_secs(5));
        assert_eq!(send.stdin, None);

        let Err(Command::Send(send)) = parse(&["send", "-"]).unwrap().serve_flags() else {
            panic!("not send");
        };
        assert_eq!(send.stdin, Some(Dash));
        assert_eq!(send.target.to, "127.0.0.1:8080");
    }

    #[test]
    fn latest_and_stats() {
        let Err(Command::Latest(l)) = parse(&["latest", "--location", "k", "--pretty"])
            .unwrap()
            .serve_flags()
        else {
            panic!("not latest");
        };
        assert_eq!(l.location.as_deref(), Some("k"));
        assert!(l.target.pretty);
        let Err(Command::Stats(s)) = parse(&["stats", "--timeout", "0.5"]).unwrap().serve_flags()
        else {
            panic!("not stats");
        };
        assert_eq!(s.target.timeout, Duration::from_millis(500));
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["send"][..],
            &["send", "--location", "x", "--temp", "1"],
            &["send", "-", "--location", "x"],
            &["send", "x"],
            &["send", "--location", "x", "--temp", "inf", "--hum", "1"],
            &[
                "send",
                "--location",
                "x",
                "--temp",
                "1",
                "--hum",
                "1",
                "--seq",
                "-1",
            ],
            &["stats", "--timeout", "0"],
            &["--bind", "127.0.0.1:0", "send", "-"],
            &["frobnicate"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn help_shows_the_subcommands() {
        Args::command().debug_assert();
        let help = Args::command().render_long_help().to_string();
        for word in [
            "serve",
            "send",
            "latest",
            "stats",
            "--bind",
            "--max-clients",
        ] {
            assert!(help.contains(word), "{word} missing from:\n{help}");
        }
        let mut cmd = Args::command();
        let send = cmd
            .find_subcommand_mut("send")
            .unwrap()
            .render_long_help()
            .to_string();
        for word in [
            "--to",
            "--location",
            "--temp",
            "--hum",
            "--seq",
            "--pretty",
            "stdin",
        ] {
            assert!(send.contains(word), "{word} missing from:\n{send}");
        }
    }
}
