//! The adapter registry: the one explicit list of built-in kinds, plus kinds an integrator
//! registers from their own crate with [`AdapterRegistry::register_kind`].
//!
//! A mapping file's adapter section has this shape; settings are parsed strictly (unknown keys are
//! errors with file, line and column):
//!
//! ```toml
//! [adapter]
//! kind = "rest"                 # a registered kind
//! [adapter.limits]              # optional, see settings::Limits
//! request_timeout_ms = 10000
//! [adapter.settings]            # the kind's own settings (its `AdapterKind::Settings`)
//! deliver_path = "/cases"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::adapter::{Adapter, SystemContext};
use crate::settings::Limits;

/// A settings problem, located in its mapping file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct SettingsError {
    /// The mapping file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Why an adapter could not be built from valid settings (I/O at build time: secrets, folders).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The settings did not parse or validate.
    #[error("invalid adapter settings: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Settings(Vec<SettingsError>),
    /// The kind is not registered.
    #[error("unknown adapter kind {kind:?}; known kinds: {}", known.join(", "))]
    UnknownKind {
        /// The kind asked for.
        kind: String,
        /// Every registered kind.
        known: Vec<String>,
    },
    /// Something the adapter needs at build time is missing (secret, folder, key).
    #[error("system {system}: {message}")]
    Environment {
        /// The line system.
        system: String,
        /// What is missing.
        message: String,
    },
}

/// The adapter section of one mapping file, as text with its origin (for located errors).
#[derive(Debug, Clone, Copy)]
pub struct SettingsSource<'a> {
    /// The mapping file's path, for error messages.
    pub path: &'a Path,
    /// The mapping file's whole text.
    pub text: &'a str,
}

/// A typed adapter kind. Implement this for a new kind; register it with
/// [`AdapterRegistry::register_kind`].
pub trait AdapterKind: Send + Sync + 'static {
    /// Registry name, as written in `[adapter] kind = "…"`.
    const NAME: &'static str;
    /// The kind's own settings table, parsed strictly (`#[serde(deny_unknown_fields)]`).
    type Settings: DeserializeOwned + Send + 'static;

    /// Checks settings without I/O; returns every problem found as (key path relative to
    /// `[adapter.settings]`, e.g. `auth.secret`, and message).
    fn validate(settings: &Self::Settings) -> Vec<(String, String)> {
        let _ = settings;
        Vec::new()
    }

    /// Builds an adapter for one line system (I/O allowed: secrets, folders).
    fn build(
        ctx: &SystemContext,
        limits: &Limits,
        settings: Self::Settings,
    ) -> Result<Arc<dyn Adapter>, BuildError>;
}

/// The erased form of an [`AdapterKind`] the registry stores.
pub trait AdapterFactory: Send + Sync {
    /// Registry name.
    fn kind(&self) -> &'static str;
    /// Parses and checks the adapter section, reporting every problem with file:line:column.
    fn validate(&self, source: SettingsSource<'_>) -> Vec<SettingsError>;
    /// Builds the adapter for one system.
    fn build(
        &self,
        ctx: &SystemContext,
        source: SettingsSource<'_>,
    ) -> Result<Arc<dyn Adapter>, BuildError>;
}

#[derive(Deserialize)]
struct MappingFile<S> {
    adapter: AdapterSection<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterSection<S> {
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    limits: Limits,
    settings: S,
}

#[derive(Deserialize)]
struct KindOnly {
    adapter: KindOnlySection,
}

#[derive(Deserialize)]
struct KindOnlySection {
    kind: String,
}

struct KindFactory<K>(PhantomData<fn() -> K>);

impl<K: AdapterKind> KindFactory<K> {
    fn parse(source: SettingsSource<'_>) -> Result<(Limits, K::Settings), Vec<SettingsError>> {
        let parsed: MappingFile<K::Settings> =
            toml::from_str(source.text).map_err(|e| vec![toml_error(source, &e)])?;
        let limit_problems = parsed.adapter.limits.validate().into_iter();
        let setting_problems = K::validate(&parsed.adapter.settings).into_iter();
        let located: Vec<SettingsError> = limit_problems
            .map(|(key, message)| locate_key(source, &format!("adapter.limits.{key}"), message))
            .chain(setting_problems.map(|(key, message)| {
                locate_key(source, &format!("adapter.settings.{key}"), message)
            }))
            .collect();
        if !located.is_empty() {
            return Err(located);
        }
        Ok((parsed.adapter.limits, parsed.adapter.settings))
    }
}

/// Parses and validates the `[adapter]` table of a mapping file for kind `K` (no I/O): its limits
/// and typed settings, or every problem located in the file.
pub fn parse_settings<K: AdapterKind>(
    source: SettingsSource<'_>,
) -> Result<(Limits, K::Settings), Vec<SettingsError>> {
    KindFactory::<K>::parse(source)
}

impl<K: AdapterKind> AdapterFactory for KindFactory<K> {
    fn kind(&self) -> &'static str {
        K::NAME
    }

    fn validate(&self, source: SettingsSource<'_>) -> Vec<SettingsError> {
        match Self::parse(source) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    }

    fn build(
        &self,
        ctx: &SystemContext,
        source: SettingsSource<'_>,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        let (limits, settings) = Self::parse(source).map_err(BuildError::Settings)?;
        K::build(ctx, &limits, settings)
    }
}

/// The built-in kinds. Adding one means adding a variant here; the match below is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinKind {
    /// JSON (or XML) over HTTP.
    Rest,
    /// SOAP 1.1 / 1.2 web services.
    Soap,
    /// File exchange through local folders or SFTP (前置机).
    File,
    /// Dedicated-line jump (专线跳转).
    Jump,
}

impl BuiltinKind {
    /// Every built-in kind.
    pub const ALL: [BuiltinKind; 4] = [Self::Rest, Self::Soap, Self::File, Self::Jump];

    fn factory(self) -> Box<dyn AdapterFactory> {
        match self {
            Self::Rest => Box::new(KindFactory::<crate::rest::RestKind>(PhantomData)),
            Self::Soap => Box::new(KindFactory::<crate::soap::SoapKind>(PhantomData)),
            Self::File => Box::new(KindFactory::<crate::file::FileKind>(PhantomData)),
            Self::Jump => Box::new(KindFactory::<crate::jump::JumpKind>(PhantomData)),
        }
    }
}

/// Every adapter kind the hub can build, by name.
pub struct AdapterRegistry {
    factories: BTreeMap<&'static str, Box<dyn AdapterFactory>>,
}

impl fmt::Debug for AdapterRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterRegistry")
            .field("kinds", &self.known_kinds())
            .finish()
    }
}

impl Default for AdapterRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl AdapterRegistry {
    /// A registry with the built-in kinds.
    pub fn builtin() -> Self {
        let mut registry = Self {
            factories: BTreeMap::new(),
        };
        for kind in BuiltinKind::ALL {
            registry.register(kind.factory());
        }
        registry
    }

    /// Registers a typed kind (an integrator's, from their own crate).
    pub fn register_kind<K: AdapterKind>(&mut self) -> &mut Self {
        self.register(Box::new(KindFactory::<K>(PhantomData)))
    }

    /// Registers an erased factory; a later registration of the same name replaces the earlier.
    pub fn register(&mut self, factory: Box<dyn AdapterFactory>) -> &mut Self {
        self.factories.insert(factory.kind(), factory);
        self
    }

    /// Names of every registered kind, sorted.
    pub fn known_kinds(&self) -> Vec<String> {
        self.factories.keys().map(|k| (*k).to_owned()).collect()
    }

    /// The factory for a kind, or an error listing the known kinds.
    pub fn factory(&self, kind: &str) -> Result<&dyn AdapterFactory, BuildError> {
        self.factories
            .get(kind)
            .map(|f| f.as_ref())
            .ok_or_else(|| BuildError::UnknownKind {
                kind: kind.to_owned(),
                known: self.known_kinds(),
            })
    }

    /// Validates the adapter section of a mapping file (no I/O), reporting every problem.
    pub fn validate(&self, source: SettingsSource<'_>) -> Vec<SettingsError> {
        let kind = match toml::from_str::<KindOnly>(source.text) {
            Ok(k) => k.adapter.kind,
            Err(e) => return vec![toml_error(source, &e)],
        };
        match self.factory(&kind) {
            Ok(factory) => factory.validate(source),
            Err(e) => vec![locate_key(source, "adapter.kind", e.to_string())],
        }
    }

    /// Builds the adapter a mapping file asks for.
    pub fn build(
        &self,
        ctx: &SystemContext,
        source: SettingsSource<'_>,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        let kind = toml::from_str::<KindOnly>(source.text)
            .map_err(|e| BuildError::Settings(vec![toml_error(source, &e)]))?
            .adapter
            .kind;
        self.factory(&kind)?.build(ctx, source)
    }

    /// The limits a mapping file sets (defaults where absent).
    pub fn limits(source: SettingsSource<'_>) -> Result<Limits, SettingsError> {
        #[derive(Deserialize)]
        struct F {
            adapter: S,
        }
        #[derive(Deserialize)]
        struct S {
            #[serde(default)]
            limits: Limits,
        }
        toml::from_str::<F>(source.text)
            .map(|f| f.adapter.limits)
            .map_err(|e| toml_error(source, &e))
    }
}

/// Turns a byte offset into a 1-based (line, column in characters).
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

fn toml_error(source: SettingsSource<'_>, error: &toml::de::Error) -> SettingsError {
    let (line, column) = error
        .span()
        .map(|s| line_column(source.text, s.start))
        .unwrap_or((1, 1));
    SettingsError {
        file: source.path.to_path_buf(),
        line,
        column,
        message: error.message().trim_end().to_owned(),
    }
}

/// Locates a dotted key such as `adapter.settings.deliver_path` in the file's text; a key the
/// file lacks is located at its deepest present parent.
fn locate_key(source: SettingsSource<'_>, key: &str, message: String) -> SettingsError {
    let offset = toml::de::DeTable::parse(source.text)
        .ok()
        .and_then(|table| {
            let mut current = table.get_ref();
            let mut span = None;
            for part in key.split('.') {
                let Some((k, v)) = current.get_key_value(part) else {
                    break;
                };
                span = Some(k.span());
                match v.get_ref() {
                    toml::de::DeValue::Table(t) => current = t,
                    _ => break,
                }
            }
            span.map(|s| s.start)
        })
        .unwrap_or(0);
    let (line, column) = line_column(source.text, offset);
    SettingsError {
        file: source.path.to_path_buf(),
        line,
        column,
        message: format!("{key}: {message}"),
    }
}
