//! The conformance suite (`yimen_adapters::conformance`) run against the `file` kind: over SFTP
//! with a real OpenSSH server per scenario, and over a local folder (where a folder cannot hang,
//! be unreachable or refuse, those scenarios do not apply).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use support::sshd::{Sshd, free_port, keygen, public_line};
use tempfile::TempDir;
use yimen_adapters::conformance::{
    ArrangeError, Arranged, ReceivedKeys, Scenario, Subject, run_all,
};
use yimen_adapters::file::{FileKind, Manifest};
use yimen_adapters::settings::Limits;
use yimen_adapters::{AdapterKind, SystemContext};

const SM4_KEY: &str = "8899aabbccddeeff0011223344556677";

/// Reads the idempotency keys of the manifests in an outbox, oldest first.
struct Manifests(PathBuf);

#[async_trait]
impl ReceivedKeys for Manifests {
    async fn received_keys(&self) -> Vec<String> {
        let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest.json"))
            .map(|e| {
                let manifest: Manifest =
                    serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
                (
                    e.metadata().unwrap().modified().unwrap(),
                    manifest.idempotency_key,
                )
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, key)| key).collect()
    }
}

fn build(
    ctx: &SystemContext,
    limits: &Limits,
    settings: &str,
) -> Result<Arc<dyn yimen_adapters::Adapter>, ArrangeError> {
    let settings = toml::from_str(settings).map_err(|e| ArrangeError::Failed(e.to_string()))?;
    FileKind::build(ctx, limits, settings).map_err(|e| ArrangeError::Failed(e.to_string()))
}

fn context(files_dir: &Path, secrets: &Path) -> SystemContext {
    std::fs::write(secrets.join("package.sm4"), SM4_KEY).unwrap();
    support::ctx("L99", files_dir, secrets)
}

/// The `file` kind over SFTP.
struct SftpSubject {
    keys: TempDir,
}

impl SftpSubject {
    fn new() -> Self {
        let keys = tempfile::tempdir().unwrap();
        keygen(&keys.path().join("client"));
        keygen(&keys.path().join("stranger_host"));
        Self { keys }
    }

    fn settings(&self, port: u16, host_key: &str, key_file: &Path) -> String {
        format!(
            "transport = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"{}\"\n\
             private_key = {{ file = \"{}\" }}\nknown_host_key = \"{host_key}\"\n\
             package = \"sm4-zip\"\npackage_key = {{ file = \"package.sm4\" }}\n",
            whoami(),
            key_file.display()
        )
    }
}

fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[async_trait]
impl Subject for SftpSubject {
    async fn arrange(&self, scenario: Scenario, limits: &Limits) -> Result<Arranged, ArrangeError> {
        let client_key = self.keys.path().join("client");
        let stranger = public_line(&self.keys.path().join("stranger_host.pub"));
        let secrets = tempfile::tempdir().unwrap();
        let ctx = context(&secrets.path().join("unused"), secrets.path());
        let (settings, guard, outbox): (String, Box<dyn std::any::Any + Send + Sync>, PathBuf) =
            match scenario {
                Scenario::Accepts | Scenario::FailsTransiently | Scenario::Refuses => {
                    let sshd = Sshd::start_with(Some(&client_key)).await;
                    let outbox = sshd.root.join("outbox");
                    let pinned = if scenario == Scenario::Refuses {
                        stranger
                    } else {
                        sshd.host_key.clone()
                    };
                    if scenario == Scenario::FailsTransiently {
                        // The outbox path is taken by a file: every upload fails on the server.
                        std::fs::write(&outbox, b"in the way").unwrap();
                    }
                    (
                        self.settings(sshd.port, &pinned, &client_key),
                        Box::new(sshd),
                        outbox,
                    )
                }
                Scenario::Unreachable => {
                    let port = free_port();
                    (
                        self.settings(port, &stranger, &client_key),
                        Box::new(()),
                        secrets.path().join("none"),
                    )
                }
                Scenario::Hangs => {
                    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    let port = listener.local_addr().unwrap().port();
                    (
                        self.settings(port, &stranger, &client_key),
                        Box::new(listener),
                        secrets.path().join("none"),
                    )
                }
            };
        let adapter = build(&ctx, limits, &settings)?;
        Ok(Arranged {
            adapter,
            guard: Box::new((guard, secrets)),
            keys: Box::new(Manifests(outbox)),
        })
    }

    fn secrets(&self) -> Vec<String> {
        let key = std::fs::read_to_string(self.keys.path().join("client")).unwrap();
        let mut secrets: Vec<String> = key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned)
            .collect();
        secrets.push(key);
        secrets.push(SM4_KEY.to_owned());
        secrets
    }
}

/// The `file` kind over a local folder.
struct LocalSubject;

#[async_trait]
impl Subject for LocalSubject {
    async fn arrange(&self, scenario: Scenario, limits: &Limits) -> Result<Arranged, ArrangeError> {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        let ctx = context(&files, dir.path());
        let settings = "transport = \"local\"\npackage = \"sm4-zip\"\npackage_key = { file = \"package.sm4\" }\n";
        let adapter = build(&ctx, limits, settings)?;
        match scenario {
            Scenario::Accepts => {}
            Scenario::FailsTransiently => {
                std::fs::remove_dir(files.join("outbox")).unwrap();
                std::fs::write(files.join("outbox"), b"in the way").unwrap();
            }
            other => {
                return Err(ArrangeError::NotApplicable(format!(
                    "a local folder is never {other:?}"
                )));
            }
        }
        Ok(Arranged {
            adapter,
            keys: Box::new(Manifests(files.join("outbox"))),
            guard: Box::new(dir),
        })
    }

    fn secrets(&self) -> Vec<String> {
        vec![SM4_KEY.to_owned()]
    }
}

#[tokio::test]
async fn the_file_kind_over_sftp_conforms() {
    run_all(&SftpSubject::new()).await.unwrap();
}

#[tokio::test]
async fn the_file_kind_over_local_folders_conforms() {
    run_all(&LocalSubject).await.unwrap();
}
