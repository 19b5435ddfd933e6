//! What `yimen serve` runs with: where the store is, the catalogue, the API keys, where the line
//! systems live, and the intake and dispatcher knobs.
//!
//! [`ServeConfig`] is plain data; the command line (`cli::serve`) and tests build it. Reading the
//! environment happens only in [`ApiKeys::from_env`] and [`LineEnv::from_env`].
//!
//! Invariants: an API key's secret never appears in `Debug` output or logs; keys are compared
//! in constant time (SHA-256 digests compared with a full XOR fold).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

use crate::dispatch::BreakerConfig;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `YIMEN_API_KEYS` is malformed.
    #[error("YIMEN_API_KEYS entry {index}: {message}")]
    ApiKeys {
        /// 1-based entry number.
        index: usize,
        /// What is wrong (never the secret).
        message: String,
    },
    /// A line-system base URL does not parse.
    #[error("{variable}: not a URL: {message}")]
    LineBase {
        /// The environment variable.
        variable: String,
        /// Why.
        message: String,
    },
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// Embedded SQLite in this folder (`yimen.db`).
    Sqlite(PathBuf),
    /// A shared PostgreSQL database.
    Postgres(String),
}

/// The platform API keys: name → SHA-256 of the secret.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(String, [u8; 32])>,
    scopes: Vec<(String, String)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ApiKeys").field("names", &names).finish()
    }
}

impl ApiKeys {
    /// Parses `name:secret[:scope+scope…][,…]` (e.g. `search` lets a key search cases).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut keys = Self::default();
        for (i, entry) in text.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let index = i + 1;
            let (name, secret) = entry.split_once(':').ok_or_else(|| ConfigError::ApiKeys {
                index,
                message: "expected name:secret".to_owned(),
            })?;
            if name.is_empty() || secret.is_empty() {
                return Err(ConfigError::ApiKeys {
                    index,
                    message: "name and secret must both be non-empty".to_owned(),
                });
            }
            if keys.keys.iter().any(|(n, _)| n == name) {
                return Err(ConfigError::ApiKeys {
                    index,
                    message: format!("key name {name:?} given twice"),
                });
            }
            let (secret, scopes) = secret.split_once(':').unwrap_or((secret, ""));
            keys.insert(name, secret);
            let scopes = scopes.split('+').filter(|s| !s.is_empty());
            keys.scopes
                .extend(scopes.map(|s| (name.to_owned(), s.to_owned())));
        }
        Ok(keys)
    }

    /// Reads `YIMEN_API_KEYS` (no keys when unset: every protected request is then refused).
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("YIMEN_API_KEYS") {
            Ok(text) => Self::parse(&text),
            Err(_) => Ok(Self::default()),
        }
    }

    /// Adds one key.
    pub fn insert(&mut self, name: &str, secret: &str) {
        self.keys
            .push((name.to_owned(), Sha256::digest(secret.as_bytes()).into()));
    }

    /// Whether the named key has `scope`.
    pub fn has_scope(&self, name: &str, scope: &str) -> bool {
        self.scopes.iter().any(|(n, s)| n == name && s == scope)
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the key whose secret this is. Every configured key is compared, each in
    /// constant time, so timing reveals neither the secret nor which key matched.
    pub fn authenticate(&self, presented: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (name, expected) in &self.keys {
            let diff = expected
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// Where the line systems live: `$YIMEN_LINE_BASE/<id>` unless `$YIMEN_LINE_BASE_<ID>` is set;
/// exchange folders under `$YIMEN_FILES_DIR/<id>`.
#[derive(Debug, Clone, Default)]
pub struct LineEnv {
    /// Common base URL; each system lives at `<base>/<id>`.
    pub base: Option<Url>,
    /// Per-system base URLs (full, not joined with the id).
    pub overrides: BTreeMap<String, Url>,
    /// Root of the exchange folders.
    pub files_dir: PathBuf,
}

impl LineEnv {
    /// Reads `YIMEN_LINE_BASE`, `YIMEN_LINE_BASE_<ID>` and `YIMEN_FILES_DIR` (default `./files`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let parse = |variable: &str, value: &str| {
            Url::parse(value).map_err(|e| ConfigError::LineBase {
                variable: variable.to_owned(),
                message: e.to_string(),
            })
        };
        let mut env = Self {
            files_dir: std::env::var_os("YIMEN_FILES_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("files")),
            ..Self::default()
        };
        for (name, value) in std::env::vars() {
            if name == "YIMEN_LINE_BASE" {
                env.base = Some(parse(&name, &value)?);
            } else if let Some(id) = name.strip_prefix("YIMEN_LINE_BASE_") {
                env.overrides.insert(id.to_owned(), parse(&name, &value)?);
            }
        }
        Ok(env)
    }

    /// The base URL of one system, if one is configured.
    pub fn base_url(&self, system_id: &str) -> Option<Url> {
        if let Some(url) = self
            .overrides
            .get(system_id)
            .or_else(|| self.overrides.get(&system_id.to_ascii_uppercase()))
        {
            return Some(url.clone());
        }
        let base = self.base.as_ref()?;
        let joined = format!("{}/{}", base.as_str().trim_end_matches('/'), system_id);
        Url::parse(&joined).ok()
    }

    /// The exchange-folder root of one system.
    pub fn files_dir(&self, system_id: &str) -> PathBuf {
        self.files_dir.join(system_id)
    }
}

/// Intake settings.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Unfinished deliveries past which intake answers 503.
    pub max_backlog: u64,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Largest material file, in bytes.
    pub material_limit: usize,
    /// Longest `Prefer: wait=N` honoured.
    pub max_wait: Duration,
    /// Cases per group-commit transaction at most.
    pub max_batch: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_backlog: 200_000,
            body_limit: 2 * 1024 * 1024,
            material_limit: 64 * 1024 * 1024,
            max_wait: Duration::from_secs(30),
            max_batch: 256,
        }
    }
}

/// Dispatcher settings.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Whether this node runs a dispatcher at all.
    pub enabled: bool,
    /// How often to look for due deliveries when nothing wakes the dispatcher.
    pub poll_interval: Duration,
    /// How long a claim holds a delivery; renewed while sending.
    pub lease: Duration,
    /// Deliveries claimed per round at most.
    pub claim_batch: usize,
    /// Deliveries per system a node claims beyond `max_in_flight`, queued for the next free
    /// slot, so that claims are few and large (each is one write transaction).
    pub claim_ahead: usize,
    /// Wait ceiling for the first retry.
    pub backoff_base: Duration,
    /// Longest wait between attempts.
    pub backoff_cap: Duration,
    /// Circuit-breaker settings for every system.
    pub breaker: BreakerConfig,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(20),
            claim_batch: 256,
            claim_ahead: 256,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(300),
            breaker: BreakerConfig::default(),
        }
    }
}

/// Everything `yimen serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The store.
    pub store: StoreLocation,
    /// Folder for materials (content-addressed files).
    pub data_dir: PathBuf,
    /// The mapping files.
    pub mappings: PathBuf,
    /// This node's name (lease owner).
    pub node_id: String,
    /// Platform API keys.
    pub api_keys: ApiKeys,
    /// Where the line systems live.
    pub lines: LineEnv,
    /// Intake settings.
    pub intake: IntakeConfig,
    /// Dispatcher settings.
    pub dispatch: DispatchConfig,
    /// Status sync, time limits and webhooks (`crate::sync::SyncConfig::from_env`).
    pub sync: crate::sync::SyncConfig,
}

impl ServeConfig {
    /// A configuration with defaults for everything but the store, data folder and mappings.
    pub fn new(store: StoreLocation, data_dir: PathBuf, mappings: PathBuf) -> Self {
        Self {
            store,
            data_dir,
            mappings,
            node_id: default_node_id(),
            api_keys: ApiKeys::default(),
            lines: LineEnv::default(),
            intake: IntakeConfig::default(),
            dispatch: DispatchConfig::default(),
            sync: crate::sync::SyncConfig::default(),
        }
    }
}

/// `<hostname>-<pid>`, unique enough among the nodes sharing one database.
pub fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_parse_and_authenticate() {
        let keys = ApiKeys::parse("platform:s3cret, console:other").unwrap();
        assert_eq!(keys.authenticate("s3cret"), Some("platform"));
        assert_eq!(keys.authenticate("other"), Some("console"));
        assert_eq!(keys.authenticate("s3cre"), None);
        assert_eq!(keys.authenticate(""), None);
        assert!(!format!("{keys:?}").contains("s3cret"));
    }

    #[test]
    fn malformed_api_keys_say_which_entry_without_the_secret() {
        let err = ApiKeys::parse("a:x,justsecret").unwrap_err().to_string();
        assert_eq!(err, "YIMEN_API_KEYS entry 2: expected name:secret");
        let err = ApiKeys::parse("a:x,a:y").unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
        assert!(ApiKeys::parse("").unwrap().is_empty());
    }

    #[test]
    fn line_base_joins_the_id_unless_overridden() {
        let mut env = LineEnv {
            base: Some(Url::parse("http://127.0.0.1:9000/").unwrap()),
            files_dir: PathBuf::from("/srv/files"),
            ..LineEnv::default()
        };
        env.overrides.insert(
            "L02".to_owned(),
            Url::parse("http://10.0.0.2/cods").unwrap(),
        );
        assert_eq!(
            env.base_url("L01").unwrap().as_str(),
            "http://127.0.0.1:9000/L01"
        );
        assert_eq!(
            env.base_url("L02").unwrap().as_str(),
            "http://10.0.0.2/cods"
        );
        assert_eq!(env.files_dir("L05"), PathBuf::from("/srv/files/L05"));
        assert!(LineEnv::default().base_url("L01").is_none());
    }
}
