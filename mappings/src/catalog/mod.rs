//! The line-system catalogue: every mapping file, code table and route, loaded and checked.
//!
//! Layout of a catalogue folder: `systems/<level>/<id>.toml` (one per line system),
//! `codes/<name>.toml` (shared code tables), `routes.toml`. [`Catalog::load`] parses everything
//! strictly and reports every problem of every file as `file:line:column: message`; a catalogue
//! that loads is immutable and can render any case for any of its systems. Golden examples are
//! run by [`Catalog::run_examples`], not at load.
//!
//! Invariants: system ids are unique and equal their file stems; every route target exists;
//! every field's case paths exist in the case schema (see [`paths`]).

mod compile;
mod error;
mod examples;
mod files;
mod options;
pub mod paths;
pub(crate) mod raw;
mod system;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::case::Case;
use crate::charset::Charset;
use crate::mapping::{Mapping, Shape};
use crate::render::{self, RenderError, Rendered};
use crate::route::{RouteError, Routes};

pub use crate::status::CaseState;
pub(crate) use error::SourceFile;
pub use error::{LoadError, LoadErrors};
pub use examples::ExampleFailure;

/// Government level of a line system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 国家级.
    National,
    /// 省级.
    Provincial,
    /// 市级.
    City,
    /// 区级.
    District,
}

impl Level {
    /// The level's name as written in files and folder names.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::National => "national",
            Level::Provincial => "provincial",
            Level::City => "city",
            Level::District => "district",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One golden example of a mapping file.
#[derive(Debug, Clone)]
pub struct Example {
    /// The example's name.
    pub name: String,
    /// The case file, resolved against the mapping file's folder.
    pub case: PathBuf,
    /// What rendering must give.
    pub expect: Expectation,
    /// Where the example is written (1-based line and column of its `case` key).
    pub line: usize,
    /// Column of the example's `case` value.
    pub column: usize,
}

/// The outcome a golden example expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// This exact document text.
    Text(String),
    /// A render error whose message contains this.
    Error(String),
}

/// One line system: identity, adapter kind, mapping, status codes and examples.
#[derive(Debug, Clone)]
pub struct SystemSpec {
    /// Catalogue id such as `L03`; equals the file stem.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Owning department.
    pub owner: String,
    /// Government level.
    pub level: Level,
    /// Adapter kind (`rest`, `soap`, `file`, `jump`, or an integrator's own).
    pub kind: String,
    /// Mapping version, stored with every rendered payload.
    pub version: String,
    /// Hall kinds that reach the system, such as `legal_person:district`.
    pub serves: Vec<String>,
    /// The mapping file.
    pub path: PathBuf,
    /// The mapping file's whole text (yimen-adapters parses `[adapter]` from it).
    pub source: String,
    /// Raw status code → hub state.
    pub status_map: BTreeMap<String, CaseState>,
    /// Golden examples.
    pub examples: Vec<Example>,
    pub(crate) mapping: Mapping,
}

impl SystemSpec {
    /// The hub state a raw status code means, if the mapping knows the code.
    pub fn map_status(&self, raw: &str) -> Option<CaseState> {
        self.status_map
            .get(raw)
            .or_else(|| self.status_map.get(raw.trim()))
            .copied()
    }

    /// The document shape the system takes.
    pub fn shape(&self) -> Shape {
        self.mapping.document.shape
    }

    /// The charset of rendered bodies.
    pub fn charset(&self) -> Charset {
        self.mapping.document.charset
    }

    /// Renders a case with this system's mapping.
    pub fn render(&self, case: &Case) -> Result<Rendered, RenderError> {
        render::render(self, case)
    }
}

/// The loaded, validated catalogue. Immutable; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Catalog {
    dir: PathBuf,
    systems: BTreeMap<String, SystemSpec>,
    routes: Routes,
    code_tables: usize,
}

impl Catalog {
    /// Loads `systems/**.toml`, `codes/*.toml` and `routes.toml` under `dir`, reporting every
    /// problem of every file.
    pub fn load(dir: &Path) -> Result<Catalog, LoadErrors> {
        let loaded = files::load_dir(dir);
        if !loaded.errors.is_empty() {
            return Err(LoadErrors(loaded.errors));
        }
        tracing::debug!(
            dir = %dir.display(),
            systems = loaded.systems.len(),
            routes = loaded.routes.len(),
            "catalogue loaded"
        );
        Ok(Catalog {
            dir: dir.to_path_buf(),
            systems: loaded.systems,
            routes: loaded.routes,
            code_tables: loaded.code_tables,
        })
    }

    /// The folder the catalogue was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every system, sorted by id.
    pub fn systems(&self) -> impl Iterator<Item = &SystemSpec> {
        self.systems.values()
    }

    /// One system by id.
    pub fn system(&self, id: &str) -> Option<&SystemSpec> {
        self.systems.get(id)
    }

    /// The routing table.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// How many shared code tables were loaded.
    pub fn code_table_count(&self) -> usize {
        self.code_tables
    }

    /// Renders a case for one system.
    pub fn render(&self, system_id: &str, case: &Case) -> Result<Rendered, RenderError> {
        self.system(system_id)
            .ok_or_else(|| RenderError::UnknownSystem(system_id.to_owned()))?
            .render(case)
    }

    /// The ids of the systems a case goes to, in route order without repeats.
    pub fn route(&self, case: &Case) -> Result<Vec<String>, RouteError> {
        self.routes.route(case)
    }

    /// Runs every golden example of every system; empty when all render exactly.
    pub fn run_examples(&self) -> Vec<ExampleFailure> {
        self.systems.values().flat_map(examples::run).collect()
    }

    /// How many golden examples the catalogue holds.
    pub fn example_count(&self) -> usize {
        self.systems.values().map(|s| s.examples.len()).sum()
    }
}

/// The case schema as JSON, the source of valid case paths.
pub(crate) fn case_schema_value() -> serde_json::Value {
    crate::case::case_schema()
}
