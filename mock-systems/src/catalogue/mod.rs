//! The system list, read leniently from the mapping files (`systems/<level>/<id>.toml`).
//!
//! Only the `[system]`, `[adapter]`, `[document]` and `[status]` tables are read; every other key
//! is ignored, so the mock never shares a type with the hub. Secrets are resolved at load time.
//! Loading reports every file's problem, not the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::secret::{Secret, SecretRef};

mod raw;
use raw::{RawFile, RawFileKind, RawJump, RawRest, RawSoap};

/// Adapter kinds this mock serves; an unknown kind's error lists them.
pub const KNOWN_KINDS: [&str; 4] = ["rest", "soap", "file", "jump"];

/// Why the catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The `systems` folder is missing or unreadable.
    #[error("cannot read mappings folder {path}: {source}")]
    Folder {
        /// The folder looked at.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// One or more files had problems; each line names the file.
    #[error("invalid system files:\n{}", .0.join("\n"))]
    Files(Vec<String>),
}

/// Every system of the catalogue, in id order.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// The systems, sorted by id.
    pub systems: Vec<SystemSpec>,
}

/// One line system as the mock serves it.
#[derive(Debug, Clone)]
pub struct SystemSpec {
    /// System id, e.g. `L02`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Charset of the documents it exchanges (`[document] charset`).
    pub charset: String,
    /// Raw status codes by hub state (inverse of `[status]`; the smallest code wins).
    pub codes: BTreeMap<String, String>,
    /// The kind and its settings.
    pub kind: KindSpec,
}

/// A kind's settings, with secrets resolved.
#[derive(Debug, Clone)]
pub enum KindSpec {
    /// `rest`
    Rest(RestSpec),
    /// `soap`
    Soap(SoapSpec),
    /// `file`
    File(FileSpec),
    /// `jump`
    Jump(JumpSpec),
}

impl KindSpec {
    /// The kind's name as in the mapping file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rest(_) => "rest",
            Self::Soap(_) => "soap",
            Self::File(_) => "file",
            Self::Jump(_) => "jump",
        }
    }
}

/// Authentication a rest system demands.
#[derive(Debug, Clone)]
pub enum RestAuth {
    /// No check.
    None,
    /// A header carrying the secret.
    ApiKey {
        /// Header name.
        header: String,
    },
    /// Client credentials at `token_path`, then `Authorization: Bearer`.
    Token {
        /// Token endpoint path.
        token_path: String,
        /// Expected client id, when configured.
        client_id: Option<String>,
    },
    /// `X-Timestamp` + `X-Signature` HMAC-SHA256.
    Hmac,
}

/// Settings of a rest system.
#[derive(Debug, Clone)]
pub struct RestSpec {
    /// Deliver path.
    pub deliver_path: String,
    /// Lookup path prefix.
    pub lookup_path: String,
    /// Batched status path.
    pub status_path: String,
    /// Header carrying the idempotency key.
    pub idempotency_header: String,
    /// JSON pointer of the receipt number in answers.
    pub receipt_pointer: String,
    /// JSON pointer of the status code in answers.
    pub status_pointer: String,
    /// Whether status changes are pushed to the hub.
    pub callback: bool,
    /// Unauthenticated health endpoint, when configured.
    pub health_path: Option<String>,
    /// Static headers the client sends (recorded as headers of interest).
    pub headers: Vec<String>,
    /// Auth mode.
    pub auth: RestAuth,
    /// The system secret (auth and callback signing), when configured.
    pub secret: Option<Secret>,
}

/// Settings of a soap system.
#[derive(Debug, Clone)]
pub struct SoapSpec {
    /// Service path.
    pub path: String,
    /// `1.1` or `1.2`.
    pub version: String,
    /// Service namespace; SOAPAction = namespace + method.
    pub namespace: String,
    /// Submit operation.
    pub submit_method: String,
    /// Status query operation.
    pub query_method: String,
    /// Lookup operation.
    pub lookup_method: String,
    /// Shared-secret parameter name.
    pub secret_param: String,
    /// Document parameter name.
    pub doc_param: String,
    /// Idempotency key parameter name.
    pub key_param: String,
    /// Parameter of QueryStatus holding comma-separated receipt numbers.
    pub receipts_param: String,
    /// The shared secret.
    pub secret: Option<Secret>,
    /// WS-Security UsernameToken (username, password), when configured.
    pub ws_security: Option<(String, Secret)>,
}

/// Settings of a file system.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Outbox folder, relative to `<files>/<id>`.
    pub outbox: String,
    /// Inbox folder for receipts, relative to `<files>/<id>`.
    pub inbox: String,
    /// Encoding of receipt files.
    pub receipt_charset: String,
    /// SM4 key (16 bytes) when packages are `sm4-zip`.
    pub sm4_key: Option<[u8; 16]>,
}

/// Settings of a jump system.
#[derive(Debug, Clone)]
pub struct JumpSpec {
    /// Entry path the clerk's browser arrives at.
    pub entry_path: String,
    /// `hmac-sha256` or `hmac-sm3`.
    pub algorithm: String,
    /// The system key.
    pub key: Secret,
}

/// Fallback raw codes for a system whose file has no `[status]` table.
const DEFAULT_CODES: [(&str, &str); 7] = [
    ("00", "received"),
    ("01", "accepted"),
    ("02", "in_review"),
    ("03", "supplement_required"),
    ("09", "approved"),
    ("10", "rejected"),
    ("11", "not_accepted"),
];

impl Catalogue {
    /// Loads every `systems/<level>/<id>.toml` under `mappings_dir`.
    pub fn load(mappings_dir: &Path) -> Result<Self, CatalogueError> {
        let systems_dir = mappings_dir.join("systems");
        let folder_err = |source| CatalogueError::Folder {
            path: systems_dir.clone(),
            source,
        };
        let mut files = Vec::new();
        for level in std::fs::read_dir(&systems_dir).map_err(folder_err)? {
            let level = level.map_err(folder_err)?.path();
            if !level.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&level).map_err(folder_err)? {
                let path = entry.map_err(folder_err)?.path();
                if path.extension().is_some_and(|e| e == "toml") {
                    files.push(path);
                }
            }
        }
        files.sort();
        let mut systems = Vec::new();
        let mut errors = Vec::new();
        for path in files {
            match load_file(&path, mappings_dir) {
                Ok(spec) => systems.push(spec),
                Err(message) => errors.push(format!("{}: {message}", path.display())),
            }
        }
        systems.sort_by(|a, b| a.id.cmp(&b.id));
        for pair in systems.windows(2) {
            if pair[0].id == pair[1].id {
                errors.push(format!("system id {} appears twice", pair[0].id));
            }
        }
        if errors.is_empty() {
            Ok(Self { systems })
        } else {
            Err(CatalogueError::Files(errors))
        }
    }
}

fn settings<T: DeserializeOwned>(table: toml::Table, kind: &str) -> Result<T, String> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|err| format!("[adapter.settings] of kind {kind}: {err}"))
}

fn load_file(path: &Path, mappings_dir: &Path) -> Result<SystemSpec, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("unreadable: {err}"))?;
    let raw: RawFile = toml::from_str(&text).map_err(|err| err.to_string())?;
    let resolve = |r: &SecretRef| r.resolve(mappings_dir);
    let mut charset = raw.document.charset.unwrap_or_else(|| "utf-8".to_owned());
    let kind = match raw.adapter.kind.as_str() {
        "rest" => KindSpec::Rest(rest_spec(settings(raw.adapter.settings, "rest")?, resolve)?),
        "soap" => {
            let s: RawSoap = settings(raw.adapter.settings, "soap")?;
            let version = match &s.version {
                toml::Value::String(v) => v.clone(),
                toml::Value::Float(v) => format!("{v:.1}"),
                other => {
                    return Err(format!(
                        "soap version must be \"1.1\" or \"1.2\", not {other}"
                    ));
                }
            };
            if version != "1.1" && version != "1.2" {
                return Err(format!(
                    "soap version must be \"1.1\" or \"1.2\", not {version}"
                ));
            }
            if let Some(envelope_charset) = &s.charset {
                charset.clone_from(envelope_charset);
            }
            KindSpec::Soap(SoapSpec {
                path: s.path,
                version,
                namespace: s.namespace,
                submit_method: s.submit_method,
                query_method: s.query_method,
                lookup_method: s.lookup_method,
                secret_param: s.secret_param,
                doc_param: s.doc_param,
                key_param: s.key_param,
                receipts_param: s.receipts_param,
                secret: s.secret.as_ref().map(resolve).transpose()?,
                ws_security: match s.ws_security {
                    Some(ws) => Some((ws.username, resolve(&ws.password)?)),
                    None => None,
                },
            })
        }
        "file" => {
            let s: RawFileKind = settings(raw.adapter.settings, "file")?;
            let sm4_key = match s.package.as_str() {
                "plain" => None,
                "sm4-zip" => {
                    let r = s
                        .package_key
                        .as_ref()
                        .ok_or("package sm4-zip needs package_key")?;
                    let hex_key = resolve(r)?;
                    let bytes = hex::decode(hex_key.expose().trim())
                        .map_err(|_| "package_key is not hex".to_owned())?;
                    Some(
                        <[u8; 16]>::try_from(bytes.as_slice())
                            .map_err(|_| "package_key must be 16 bytes (32 hex digits)")?,
                    )
                }
                other => return Err(format!("unknown package {other:?} (known: plain, sm4-zip)")),
            };
            KindSpec::File(FileSpec {
                outbox: s.outbox,
                inbox: s.inbox,
                receipt_charset: s.receipt_charset,
                sm4_key,
            })
        }
        "jump" => {
            let s: RawJump = settings(raw.adapter.settings, "jump")?;
            if s.algorithm != "hmac-sha256" && s.algorithm != "hmac-sm3" {
                return Err(format!(
                    "unknown jump algorithm {:?} (known: hmac-sha256, hmac-sm3)",
                    s.algorithm
                ));
            }
            KindSpec::Jump(JumpSpec {
                entry_path: s.entry_path,
                algorithm: s.algorithm,
                key: resolve(&s.key)?,
            })
        }
        other => {
            return Err(format!(
                "unknown adapter kind {other:?} (known: {})",
                KNOWN_KINDS.join(", ")
            ));
        }
    };
    let mut codes = BTreeMap::new();
    let table: Vec<(String, String)> = if raw.status.is_empty() {
        DEFAULT_CODES
            .iter()
            .map(|(c, s)| ((*c).to_owned(), (*s).to_owned()))
            .collect()
    } else {
        raw.status.into_iter().collect()
    };
    for (code, state) in table {
        codes.entry(state).or_insert(code);
    }
    Ok(SystemSpec {
        id: raw.system.id,
        name: raw.system.name,
        charset,
        codes,
        kind,
    })
}

fn rest_spec(
    s: RawRest,
    resolve: impl Fn(&SecretRef) -> Result<Secret, String>,
) -> Result<RestSpec, String> {
    let (auth, secret) = match s.auth {
        None => (RestAuth::None, None),
        Some(a) => {
            let secret = a.secret.as_ref().map(&resolve).transpose()?;
            let auth = match a.mode.as_str() {
                "none" => RestAuth::None,
                "api_key" => RestAuth::ApiKey { header: a.header },
                "token" => RestAuth::Token {
                    token_path: a.token_path,
                    client_id: a.client_id,
                },
                "hmac" => RestAuth::Hmac,
                other => {
                    return Err(format!(
                        "unknown auth mode {other:?} (known: none, api_key, token, hmac)"
                    ));
                }
            };
            if !matches!(auth, RestAuth::None) && secret.is_none() {
                return Err(format!("auth mode {} needs a secret", a.mode));
            }
            (auth, secret)
        }
    };
    Ok(RestSpec {
        deliver_path: s.deliver_path,
        lookup_path: s.lookup_path,
        status_path: s.status_path,
        idempotency_header: s.idempotency_header,
        receipt_pointer: s.receipt_pointer,
        status_pointer: s.status_pointer,
        callback: s.callback,
        health_path: s.health_path,
        headers: s.headers.into_keys().collect(),
        auth,
        secret,
    })
}
