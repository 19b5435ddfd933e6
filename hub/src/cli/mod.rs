//! The `yimen` command line. Each subcommand lives in its own module with a `run` function.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod catalog;
mod check;
mod demo;
mod due;
mod map;
mod replay;
mod route;
mod serve;

/// Tokio's blocking pool of a node: 32 threads. Local exchange folders hold one through each
/// write's fsyncs; with the default of 512, 64 deliveries in flight to one folder kept about 100
/// threads alive, each with allocator pages of its own (about 40 MiB more RSS under five-target
/// load), for no more throughput than 8 threads gave. 32 leaves room for a folder that hangs
/// (it holds at most its system's `max_in_flight`, 16 by default); 64 cost 106 MiB draining a
/// million queued deliveries, against 92 MiB with 32.
const BLOCKING_THREADS: u16 = 32;

/// Yimen (一门): the integration hub behind a one-stop government service hall.
#[derive(Debug, Parser)]
#[command(name = "yimen", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the mapping files are; defaults to the repository's `mappings/`.
#[derive(Debug, Clone, clap::Args)]
pub struct MappingsArg {
    /// Folder holding systems/, codes/, routes.toml and calendar/.
    #[arg(long, env = "YIMEN_MAPPINGS", default_value_os_t = default_mappings_dir())]
    pub mappings: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Loads and validates every mapping file and runs every golden example.
    Check(check::Args),
    /// Prints the line-system catalogue.
    Catalog(catalog::Args),
    /// Prints the line systems a case routes to.
    Route(route::Args),
    /// Prints the document a case renders to for one line system.
    Map(map::Args),
    /// Prints the day a time limit of N working days from DATE falls due.
    Due(due::Args),
    /// Runs a node: HTTP API, intake and dispatcher.
    Serve(serve::Args),
    /// Puts dead deliveries back in the queue through a node's API.
    Replay(replay::Args),
    /// Runs the hub with the whole mock fleet on this machine and submits the sample cases.
    Demo(demo::Args),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Catalog(args) => catalog::run(args),
        Command::Route(args) => route::run(args),
        Command::Map(args) => map::run(args),
        Command::Due(args) => due::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("yimen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository's `mappings/` folder when run from a checkout, else `./mappings`.
pub fn default_mappings_dir() -> PathBuf {
    let repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../mappings"));
    if repo.join("systems").is_dir() {
        repo
    } else {
        PathBuf::from("mappings")
    }
}
