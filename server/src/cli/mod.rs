//! Command-line interface. Each subcommand lives in its own file.
//!
//! Exit codes: 0 success, 1 internal failure, 2 bad input (unreadable or malformed dump, bad
//! arguments). Errors are printed as one line on stderr.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod analyze;
mod blocks;
mod crash_text;
mod forge;
mod inspect;
mod pool;
mod pool_at;
mod pool_common;
mod poolfind_text;
mod poolused_text;
mod serve;
mod symbols;
mod tokens;
mod trend;
mod trend_svg;
mod trend_text;
mod vm_text;

/// `+HH:MM` to minutes east of UTC (the trend's `--utc-offset`; the systems API's `utc_offset`).
pub(crate) use trend::parse_offset as parse_utc_offset;

#[derive(Parser)]
#[command(
    name = "pooltriage",
    version,
    about = "Find the driver that leaks kernel pool, from a Windows crash dump"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what is in a kernel dump: format, bugcheck, kernel, debugger data block, modules.
    Inspect(inspect::InspectArgs),
    /// Write a synthetic kernel dump that follows a real kernel's layouts, with FILE.truth.json.
    Forge(forge::ForgeArgs),
    /// Symbol files: `symbols fetch` gets a PDB or image from the symbol path.
    Symbols(symbols::SymbolsArgs),
    /// Pool usage per tag (!poolused), the pool summary (!vm), quota charges, tags -> drivers.
    Pool(pool::PoolArgs),
    /// Every pool block found in the dump (!poolfind): address, size, tag, type, allocated.
    Blocks(blocks::BlocksArgs),
    /// The pool block holding an address (!pool), its owner and call site, the pointers to it.
    PoolAt(pool_at::PoolAtArgs),
    /// The answer: which driver is eating which pool, and where in its code it allocates.
    Analyze(analyze::AnalyzeArgs),
    /// Is pool growing? Dumps, poolmon/poolsnap logs and typeperf CSVs of one machine over time.
    Trend(trend::TrendArgs),
    /// The HTTP service: upload API, durable job queue and workers (docs/api.md).
    Serve(Box<crate::config::ServeArgs>),
    /// API tokens of the service: `tokens create --tenant T --role R`, `tokens list`, `tokens revoke ID`.
    Tokens(tokens::TokensArgs),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Forge(args) => forge::run(&args),
        Command::Symbols(args) => symbols::run(&args),
        Command::Pool(args) => pool::run(&args),
        Command::Blocks(args) => blocks::run(&args),
        Command::PoolAt(args) => pool_at::run(&args),
        Command::Analyze(args) => analyze::run(&args),
        Command::Trend(args) => trend::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Tokens(args) => tokens::run(&args),
    }
}
