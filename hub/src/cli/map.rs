//! `yimen map SYSTEM_ID CASE.json`: the document a case renders to for one line system — the
//! text before encoding, or with `--raw` the encoded bytes exactly as they would be sent.

use std::path::PathBuf;
use std::process::ExitCode;

use super::MappingsArg;
use super::route::{load, read_case, write_stdout};

/// Arguments of `yimen map`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The line system's id, such as `L03`.
    pub system: String,
    /// The unified case, as JSON.
    pub case: PathBuf,
    /// Writes the body encoded in the system's charset instead of the text.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub mappings: MappingsArg,
}

/// Prints the rendered document.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(case) = read_case(&args.case)? else {
        return Ok(ExitCode::FAILURE);
    };
    let catalog = load(&args.mappings.mappings)?;
    let rendered = catalog.render(&args.system, &case)?;
    let bytes = if args.raw {
        &rendered.body
    } else {
        rendered.text.as_bytes()
    };
    write_stdout(bytes)?;
    Ok(ExitCode::SUCCESS)
}
