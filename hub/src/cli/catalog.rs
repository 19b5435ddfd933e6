//! `yimen catalog`: the line-system catalogue as a table, or as JSON with `--json`.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use yimen_mappings::catalog::{Catalog, Level};

use super::MappingsArg;
use super::route::write_stdout;

/// Arguments of `yimen catalog`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Prints one JSON array of `{id, name, owner, level, kind}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub mappings: MappingsArg,
}

#[derive(Debug, Serialize)]
struct Entry<'a> {
    id: &'a str,
    name: &'a str,
    owner: &'a str,
    level: Level,
    kind: &'a str,
}

/// Prints the catalogue.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::load(&args.mappings.mappings).map_err(|errors| {
        anyhow::anyhow!("catalogue did not load (run `yimen check`):\n{errors}")
    })?;
    let entries: Vec<Entry<'_>> = catalog
        .systems()
        .map(|s| Entry {
            id: &s.id,
            name: &s.name,
            owner: &s.owner,
            level: s.level,
            kind: &s.kind,
        })
        .collect();
    if args.json {
        let mut json = serde_json::to_string(&entries).context("catalogue as JSON")?;
        json.push('\n');
        write_stdout(json.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let id_width = entries
        .iter()
        .map(|e| e.id.chars().count())
        .max()
        .unwrap_or(2)
        .max(2);
    let mut out = format!(
        "{:id_width$}  {:10}  {:6}  {}\n",
        "ID", "LEVEL", "KIND", "NAME (OWNER)"
    );
    for e in &entries {
        out.push_str(&format!(
            "{:id_width$}  {:10}  {:6}  {} ({})\n",
            e.id,
            e.level.as_str(),
            e.kind,
            e.name,
            e.owner
        ));
    }
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
