//! [`HttpSubject`]: runs the conformance scenarios for any HTTP-speaking kind on real loopback
//! servers (wiremock for answers, a raw listener that never answers for `Hangs`, a closed port
//! for `Unreachable`).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use url::Url;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{ArrangeError, Arranged, PERSONAL_ID, PERSONAL_PHONE, ReceivedKeys, Scenario, Subject};
use crate::adapter::{Adapter, SystemContext};
use crate::registry::{AdapterKind, BuildError, SettingsSource, parse_settings};
use crate::settings::Limits;

type BuildFn = dyn Fn(&SystemContext, &Limits, SettingsSource<'_>) -> Result<Arc<dyn Adapter>, BuildError>
    + Send
    + Sync;

/// Where the line system finds the idempotency key in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation {
    /// In this header.
    Header(&'static str),
    /// As the text of the first element with this name in the (XML) body.
    Element(&'static str),
}

/// An HTTP kind under test, built from a mapping-file text against loopback servers.
pub struct HttpSubject {
    system_id: String,
    mapping: String,
    secrets_root: PathBuf,
    build: Arc<BuildFn>,
    accept: ResponseTemplate,
    fail_transiently: ResponseTemplate,
    refuse: ResponseTemplate,
    key_location: KeyLocation,
    secrets: Vec<String>,
}

impl std::fmt::Debug for HttpSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSubject")
            .field("system_id", &self.system_id)
            .field("key_location", &self.key_location)
            .finish_non_exhaustive()
    }
}

impl HttpSubject {
    /// A subject of kind `K` for system `system_id`, whose `[adapter]` table is in `mapping`.
    /// Defaults: accept = 201 empty, transient failure = 500, refusal = 400 naming personal data,
    /// key in the `Idempotency-Key` header, secrets resolved from the current directory.
    pub fn new<K: AdapterKind>(system_id: &str, mapping: &str) -> Self {
        let build = |ctx: &SystemContext, limits: &Limits, source: SettingsSource<'_>| {
            let (_, settings) = parse_settings::<K>(source).map_err(BuildError::Settings)?;
            K::build(ctx, limits, settings)
        };
        Self {
            system_id: system_id.to_owned(),
            mapping: mapping.to_owned(),
            secrets_root: PathBuf::from("."),
            build: Arc::new(build),
            accept: ResponseTemplate::new(201),
            fail_transiently: ResponseTemplate::new(500),
            refuse: ResponseTemplate::new(400).set_body_string(format!(
                "{{\"message\":\"id {PERSONAL_ID} and phone {PERSONAL_PHONE} do not match\"}}"
            )),
            key_location: KeyLocation::Header("Idempotency-Key"),
            secrets: Vec::new(),
        }
    }

    /// The folder secret files are resolved against.
    pub fn secrets_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.secrets_root = root.into();
        self
    }

    /// The answer of a line system that takes the delivery.
    pub fn accept(mut self, answer: ResponseTemplate) -> Self {
        self.accept = answer;
        self
    }

    /// The answer of a line system failing transiently.
    pub fn fail_transiently(mut self, answer: ResponseTemplate) -> Self {
        self.fail_transiently = answer;
        self
    }

    /// The answer of a line system refusing the document (should name personal data).
    pub fn refuse(mut self, answer: ResponseTemplate) -> Self {
        self.refuse = answer;
        self
    }

    /// Where requests carry the idempotency key.
    pub fn key_at(mut self, location: KeyLocation) -> Self {
        self.key_location = location;
        self
    }

    /// A secret value the settings resolve to; it must never be logged.
    pub fn secret(mut self, value: &str) -> Self {
        self.secrets.push(value.to_owned());
        self
    }

    fn adapter(&self, base: &str, limits: &Limits) -> Result<Arc<dyn Adapter>, ArrangeError> {
        let base_url = Url::parse(&format!("{base}/{}", self.system_id))
            .map_err(|e| ArrangeError::Failed(format!("base url: {e}")))?;
        let ctx = SystemContext {
            system_id: self.system_id.clone(),
            base_url,
            files_dir: std::env::temp_dir(),
            secrets_root: self.secrets_root.clone(),
        };
        let path = PathBuf::from(format!("{}.toml", self.system_id));
        let source = SettingsSource {
            path: &path,
            text: &self.mapping,
        };
        (self.build)(&ctx, limits, source).map_err(|e| ArrangeError::Failed(e.to_string()))
    }
}

#[async_trait]
impl Subject for HttpSubject {
    async fn arrange(&self, scenario: Scenario, limits: &Limits) -> Result<Arranged, ArrangeError> {
        let answer = match scenario {
            Scenario::Accepts => self.accept.clone(),
            Scenario::FailsTransiently => self.fail_transiently.clone(),
            Scenario::Refuses => self.refuse.clone(),
            Scenario::Unreachable => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0")
                    .map_err(|e| ArrangeError::Failed(format!("bind: {e}")))?;
                let address = listener
                    .local_addr()
                    .map_err(|e| ArrangeError::Failed(e.to_string()))?;
                drop(listener);
                return Ok(Arranged {
                    adapter: self.adapter(&format!("http://{address}"), limits)?,
                    guard: Box::new(()),
                    keys: Box::new(NoKeys),
                });
            }
            Scenario::Hangs => {
                let (address, server) = silent_server().await.map_err(ArrangeError::Failed)?;
                return Ok(Arranged {
                    adapter: self.adapter(&format!("http://{address}"), limits)?,
                    guard: Box::new(AbortOnDrop(server)),
                    keys: Box::new(NoKeys),
                });
            }
        };
        let server = Arc::new(MockServer::start().await);
        Mock::given(any()).respond_with(answer).mount(&server).await;
        Ok(Arranged {
            adapter: self.adapter(&server.uri(), limits)?,
            guard: Box::new(server.clone()),
            keys: Box::new(ServerKeys {
                server,
                location: self.key_location,
            }),
        })
    }

    fn secrets(&self) -> Vec<String> {
        self.secrets.clone()
    }
}

/// Accepts connections, reads whatever comes, never answers.
async fn silent_server() -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        let mut held = tokio::task::JoinSet::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            held.spawn(async move {
                let mut buffer = vec![0_u8; 64 * 1024];
                while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
            });
        }
    });
    Ok((address, task))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct NoKeys;

#[async_trait]
impl ReceivedKeys for NoKeys {
    async fn received_keys(&self) -> Vec<String> {
        Vec::new()
    }
}

struct ServerKeys {
    server: Arc<MockServer>,
    location: KeyLocation,
}

#[async_trait]
impl ReceivedKeys for ServerKeys {
    async fn received_keys(&self) -> Vec<String> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter_map(|request| match self.location {
                KeyLocation::Header(name) => request
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                KeyLocation::Element(name) => element_text(request, name),
            })
            .collect()
    }
}

fn element_text(request: &wiremock::Request, name: &str) -> Option<String> {
    let encoding = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::http::charset_param);
    let text = crate::xml::decode(&request.body, encoding).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    let raw = &text[start..end];
    quick_xml::escape::unescape(raw)
        .ok()
        .map(|s| s.into_owned())
}
