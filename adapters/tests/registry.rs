//! The registry reads the `[adapter]` table of mapping files strictly and locates every problem.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use url::Url;
use yimen_adapters::registry::BuiltinKind;
use yimen_adapters::settings::Limits;
use yimen_adapters::{
    Adapter, AdapterKind, AdapterRegistry, BuildError, Health, SettingsSource, SystemContext,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixtures")
}

fn fixture(name: &str) -> (PathBuf, String) {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

fn context() -> SystemContext {
    SystemContext {
        system_id: "L01".to_owned(),
        base_url: Url::parse("http://127.0.0.1:9/L01").unwrap(),
        files_dir: std::env::temp_dir(),
        secrets_root: fixtures(),
    }
}

#[test]
fn builtin_registry_knows_every_builtin_kind() {
    let registry = AdapterRegistry::builtin();
    assert_eq!(registry.known_kinds(), ["file", "jump", "rest", "soap"]);
    assert_eq!(BuiltinKind::ALL.len(), registry.known_kinds().len());
}

#[tokio::test]
async fn a_valid_file_validates_and_builds() {
    let (path, text) = fixture("valid-rest.toml");
    let source = SettingsSource {
        path: &path,
        text: &text,
    };
    let registry = AdapterRegistry::builtin();
    assert_eq!(registry.validate(source), []);
    let adapter = registry.build(&context(), source).unwrap();
    assert_eq!(adapter.kind(), "rest");
    assert!(adapter.as_deliver().is_some());
    assert!(adapter.as_status().is_some());
    let limits = AdapterRegistry::limits(source).unwrap();
    assert_eq!(limits.request_timeout_ms, 10_000);
    assert_eq!(
        limits.connect_timeout_ms,
        Limits::default().connect_timeout_ms
    );
}

#[test]
fn an_unknown_key_is_located() {
    let (path, text) = fixture("unknown-key.toml");
    let errors = AdapterRegistry::builtin().validate(SettingsSource {
        path: &path,
        text: &text,
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = &errors[0];
    assert_eq!((error.line, error.column), (7, 1), "{error}");
    assert!(error.message.contains("delivr_path"), "{error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:7:1: ", path.display()))
    );
}

#[test]
fn a_wrong_type_is_located_at_the_value() {
    let (path, text) = fixture("wrong-type.toml");
    let errors = AdapterRegistry::builtin().validate(SettingsSource {
        path: &path,
        text: &text,
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].column), (6, 22), "{}", errors[0]);
    assert!(errors[0].message.contains("expected u64"), "{}", errors[0]);
}

#[test]
fn an_unknown_kind_lists_the_known_ones() {
    let (path, text) = fixture("unknown-kind.toml");
    let source = SettingsSource {
        path: &path,
        text: &text,
    };
    let registry = AdapterRegistry::builtin();
    let errors = registry.validate(source);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].column), (4, 1));
    assert!(
        errors[0]
            .message
            .contains("known kinds: file, jump, rest, soap"),
        "{}",
        errors[0]
    );
    match registry.build(&context(), source) {
        Err(BuildError::UnknownKind { kind, known }) => {
            assert_eq!(kind, "carrier-pigeon");
            assert_eq!(known, ["file", "jump", "rest", "soap"]);
        }
        other => panic!("expected an unknown kind, got {other:?}"),
    }
}

#[test]
fn every_invalid_value_is_reported_at_once() {
    let (path, text) = fixture("invalid-values.toml");
    let errors = AdapterRegistry::builtin().validate(SettingsSource {
        path: &path,
        text: &text,
    });
    let found: Vec<(usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.message.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            (6, "adapter.limits.max_in_flight"),
            (8, "adapter.settings.deliver_path"),
            (9, "adapter.settings.status_batch"),
            (10, "adapter.settings.auth.token_path"),
            (10, "adapter.settings.auth.secret"),
        ],
        "{errors:?}"
    );
}

#[test]
fn a_missing_secret_fails_the_build_naming_where_it_looked() {
    let (path, text) = fixture("valid-rest.toml");
    let text = text.replace("l01.key", "absent.key");
    let error = AdapterRegistry::builtin()
        .build(
            &context(),
            SettingsSource {
                path: &path,
                text: &text,
            },
        )
        .unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("system L01: "), "{message}");
    assert!(message.contains("absent.key"), "{message}");
    assert!(!message.contains("l01-dev-key"), "{message}");
}

/// A kind defined outside the crate's built-ins.
#[derive(Debug)]
struct EchoKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoSettings {
    greeting: String,
}

#[derive(Debug)]
struct EchoAdapter;

#[async_trait::async_trait]
impl Adapter for EchoAdapter {
    fn kind(&self) -> &'static str {
        "echo"
    }
    async fn health(&self) -> Health {
        Health::Unknown
    }
}

impl AdapterKind for EchoKind {
    const NAME: &'static str = "echo";
    type Settings = EchoSettings;

    fn validate(settings: &EchoSettings) -> Vec<(String, String)> {
        if settings.greeting.is_empty() {
            vec![("greeting".to_owned(), "must not be empty".to_owned())]
        } else {
            Vec::new()
        }
    }

    fn build(
        _ctx: &SystemContext,
        _limits: &Limits,
        _settings: EchoSettings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Ok(Arc::new(EchoAdapter))
    }
}

#[tokio::test]
async fn an_integrator_kind_registers_and_builds() {
    let mut registry = AdapterRegistry::builtin();
    registry.register_kind::<EchoKind>();
    assert_eq!(
        registry.known_kinds(),
        ["echo", "file", "jump", "rest", "soap"]
    );
    let path = PathBuf::from("L99.toml");
    let text = "[adapter]\nkind = \"echo\"\n[adapter.settings]\ngreeting = \"\"\n";
    let errors = registry.validate(SettingsSource { path: &path, text });
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "L99.toml:4:1: adapter.settings.greeting: must not be empty"
    );
    let text = text.replace("\"\"", "\"hello\"");
    let adapter = registry
        .build(
            &context(),
            SettingsSource {
                path: &path,
                text: &text,
            },
        )
        .unwrap();
    assert_eq!(adapter.kind(), "echo");
    assert_eq!(adapter.health().await, Health::Unknown);
}
