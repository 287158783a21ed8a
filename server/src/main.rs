//! `pooltriage`: one binary, one subcommand per job.

mod auth;
mod cli;
mod config;
mod db;
mod http;
mod jobs;
mod retention;
mod storage;
mod systems;
mod vendor_symbols;
mod webhooks;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
