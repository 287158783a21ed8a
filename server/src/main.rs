//! `pooltriage`: one binary, one subcommand per job.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
