//! `yimen`: the hub's command-line entry point. All work happens in the library.

use std::process::ExitCode;

/// glibc's allocator spent a fifth of the hub's samples under load (consolidating and
/// unlinking free chunks between the HTTP, JSON and SQLite threads); mimalloc keeps per-thread
/// free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    yimen_hub::cli::main()
}
