//! `yimen`: the hub's command-line entry point. All work happens in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    yimen_hub::cli::main()
}
