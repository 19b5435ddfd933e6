//! `yimen route CASE.json`: the line systems a case goes to, one per line with its name.
//! An invalid case prints every problem with its JSON path on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use yimen_mappings::case::{Case, parse_case};
use yimen_mappings::catalog::Catalog;

use super::MappingsArg;

/// Arguments of `yimen route`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The unified case, as JSON.
    pub case: PathBuf,
    #[command(flatten)]
    pub mappings: MappingsArg,
}

/// Prints the targets of a case.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(case) = read_case(&args.case)? else {
        return Ok(ExitCode::FAILURE);
    };
    let catalog = load(&args.mappings.mappings)?;
    let targets = catalog.route(&case)?;
    let mut out = String::new();
    for id in targets {
        let name = catalog.system(&id).map_or("", |s| s.name.as_str());
        out.push_str(&format!("{id}\t{name}\n"));
    }
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a closed pipe (`yimen catalog | head`) is not an error.
pub(super) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// Reads and validates a case file; prints every problem and returns `None` when invalid.
pub(super) fn read_case(path: &Path) -> anyhow::Result<Option<Case>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    match parse_case(&bytes) {
        Ok(case) => Ok(Some(case)),
        Err(problems) => {
            for problem in &problems {
                eprintln!("{}: {problem}", path.display());
            }
            let count = problems.len();
            let noun = if count == 1 { "problem" } else { "problems" };
            eprintln!("yimen: {}: invalid case: {count} {noun}", path.display());
            Ok(None)
        }
    }
}

/// Loads the catalogue, turning load errors into one error listing them all.
pub(super) fn load(dir: &Path) -> anyhow::Result<Catalog> {
    Catalog::load(dir)
        .map_err(|errors| anyhow::anyhow!("catalogue did not load (run `yimen check`):\n{errors}"))
}
