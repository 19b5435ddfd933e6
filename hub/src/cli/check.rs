//! `yimen check`: loads every mapping file, validates each system's adapter settings, runs every
//! golden example, and prints every problem as `file:line:column: message` (on stderr) with a
//! summary line on stdout. Exit code 1 on any problem.

use std::process::ExitCode;

use yimen_adapters::AdapterRegistry;
use yimen_adapters::registry::SettingsSource;
use yimen_mappings::catalog::Catalog;

use super::MappingsArg;

/// Arguments of `yimen check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub mappings: MappingsArg,
}

/// Runs the check; the exit code says whether anything is wrong.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = &args.mappings.mappings;
    let catalog = match Catalog::load(dir) {
        Ok(catalog) => catalog,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{error}");
            }
            println!(
                "{}: catalogue did not load: {} {}",
                dir.display(),
                errors.0.len(),
                plural(errors.0.len(), "problem")
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let registry = AdapterRegistry::builtin();
    let mut problems: Vec<String> = Vec::new();
    for system in catalog.systems() {
        let source = SettingsSource {
            path: &system.path,
            text: &system.source,
        };
        problems.extend(registry.validate(source).iter().map(ToString::to_string));
    }
    problems.extend(catalog.run_examples().iter().map(ToString::to_string));
    for problem in &problems {
        eprintln!("{problem}");
    }
    let systems = catalog.systems().count();
    let routes = catalog.routes().len();
    let examples = catalog.example_count();
    let verdict = if problems.is_empty() {
        "ok".to_owned()
    } else {
        format!("{} {}", problems.len(), plural(problems.len(), "problem"))
    };
    println!(
        "{systems} {}, {routes} {}, {examples} {}: {verdict}",
        plural(systems, "system"),
        plural(routes, "route"),
        plural(examples, "example")
    );
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}
