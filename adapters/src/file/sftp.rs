//! Exchange folders on an SFTP server (`transport = "sftp"`), with a pinned host key.
//!
//! Invariants: the client authenticates with a private key only, and refuses any server whose
//! host key differs from `known_host_key` before sending credentials. Connect, handshake and
//! authentication together are bounded by the connect timeout; each SFTP request by the request
//! timeout. Uploads go to `name.part`, are fsynced when the server offers `fsync@openssh.com`,
//! then renamed. One connection is kept and shared by every operation (SFTP multiplexes requests);
//! it is probed before reuse and dropped on any transport error, so the next operation reconnects.
//! Folders are read on a second SFTP channel of that connection, batch by batch, keeping only
//! the names asked for (see [`SftpFolders::list_where`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::{OpenFlags, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::folders::{Entry, FolderError, Folders, OpenFolders};

/// Longest wait for the liveness probe of a kept connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Parses a pinned host key written as in `known_hosts`: `"<algorithm> <base64> [comment]"`.
pub fn parse_host_key(text: &str) -> Result<PublicKey, String> {
    let mut parts = text.split_whitespace();
    let (Some(algorithm), Some(base64)) = (parts.next(), parts.next()) else {
        return Err("expected \"<algorithm> <base64 key>\" as in known_hosts".to_owned());
    };
    let key = russh::keys::parse_public_key_base64(base64)
        .map_err(|e| format!("host key does not parse: {e}"))?;
    if key.algorithm().as_str() != algorithm {
        return Err(format!(
            "host key says {algorithm:?} but holds a {} key",
            key.algorithm().as_str()
        ));
    }
    Ok(key)
}

/// Connects to one SFTP server with one identity.
#[derive(Clone)]
pub struct SftpConnector {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) username: String,
    pub(crate) key: Arc<PrivateKey>,
    pub(crate) host_key: PublicKey,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) cached: Arc<tokio::sync::Mutex<Option<Arc<SftpFolders>>>>,
}

impl std::fmt::Debug for SftpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpConnector")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Checks the server's host key against the pinned one, remembering a mismatch for the error.
struct PinnedHostKey {
    expected: PublicKey,
    offered: Arc<Mutex<Option<String>>>,
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, Self::Error> {
        if key.key_data() == self.expected.key_data() {
            return Ok(true);
        }
        if let Ok(mut offered) = self.offered.lock() {
            *offered = Some(key.fingerprint(HashAlg::Sha256).to_string());
        }
        Ok(false)
    }
}

impl SftpConnector {
    async fn connect(&self) -> Result<SftpFolders, FolderError> {
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(self.request_timeout.max(Duration::from_secs(1)) * 2),
            // Small request/answer exchanges: Nagle plus delayed ACKs would add ~40 ms to each.
            nodelay: true,
            ..client::Config::default()
        });
        let offered = Arc::new(Mutex::new(None));
        let handler = PinnedHostKey {
            expected: self.host_key.clone(),
            offered: offered.clone(),
        };
        let target = format!("{}:{}", self.host, self.port);
        let mut handle = match client::connect(config, (self.host.as_str(), self.port), handler)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                if let Some(fingerprint) = offered.lock().ok().and_then(|o| o.clone()) {
                    return Err(FolderError::Refused(format!(
                        "sftp {target}: host key {fingerprint} does not match the pinned known_host_key"
                    )));
                }
                return Err(FolderError::Transient(format!(
                    "sftp {target}: connect: {e}"
                )));
            }
        };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| FolderError::Transient(format!("sftp {target}: {e}")))?
            .flatten();
        let auth = handle
            .authenticate_publickey(
                self.username.clone(),
                PrivateKeyWithHashAlg::new(self.key.clone(), hash),
            )
            .await
            .map_err(|e| FolderError::Transient(format!("sftp {target}: authentication: {e}")))?;
        if !auth.success() {
            return Err(FolderError::Refused(format!(
                "sftp {target}: the server refused key authentication for user {:?}",
                self.username
            )));
        }
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| FolderError::Transient(format!("sftp {target}: open channel: {e}")))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| FolderError::Transient(format!("sftp {target}: sftp subsystem: {e}")))?;
        let session = SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| FolderError::Transient(format!("sftp {target}: sftp init: {e}")))?;
        session.set_timeout(self.request_timeout.as_secs().max(1));
        Ok(SftpFolders {
            session,
            listing: tokio::sync::OnceCell::new(),
            handle,
            target,
            request_timeout: self.request_timeout,
        })
    }
}

#[async_trait]
impl OpenFolders for SftpConnector {
    async fn open(&self) -> Result<Box<dyn Folders>, FolderError> {
        let mut slot = self.cached.lock().await;
        if let Some(conn) = slot.as_ref() {
            // Let the SSH session task see a pending EOF first, then ask the server something
            // cheap; a dead channel never answers, so the probe is bounded more tightly.
            tokio::task::yield_now().await;
            let probe_timeout = self.request_timeout.min(PROBE_TIMEOUT);
            let alive = !conn.handle.is_closed()
                && tokio::time::timeout(probe_timeout, conn.session.canonicalize("."))
                    .await
                    .is_ok_and(|r| r.is_ok());
            if alive {
                return Ok(Box::new(SharedFolders {
                    conn: conn.clone(),
                    slot: self.cached.clone(),
                }));
            }
            *slot = None;
        }
        let conn = match tokio::time::timeout(self.connect_timeout, self.connect()).await {
            Ok(Ok(folders)) => Arc::new(folders),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(FolderError::Transient(format!(
                    "sftp {}:{}: connect timed out after {} ms",
                    self.host,
                    self.port,
                    self.connect_timeout.as_millis()
                )));
            }
        };
        *slot = Some(conn.clone());
        Ok(Box::new(SharedFolders {
            conn,
            slot: self.cached.clone(),
        }))
    }
}

/// One SFTP session's view of the exchange folders (paths relative to the login folder).
pub(crate) struct SftpFolders {
    session: SftpSession,
    /// The channel folders are read on, opened by the first listing.
    listing: tokio::sync::OnceCell<RawSftpSession>,
    handle: client::Handle<PinnedHostKey>,
    /// `host:port`, for errors.
    target: String,
    request_timeout: Duration,
}

/// The shared connection, handed out per operation batch; a transport error retires it.
struct SharedFolders {
    conn: Arc<SftpFolders>,
    slot: Arc<tokio::sync::Mutex<Option<Arc<SftpFolders>>>>,
}

impl SharedFolders {
    async fn check<T>(&self, result: Result<T, FolderError>) -> Result<T, FolderError> {
        if let Err(FolderError::Transient(_)) = &result {
            let mut slot = self.slot.lock().await;
            if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.conn)) {
                *slot = None;
            }
        }
        result
    }
}

#[async_trait]
impl Folders for SharedFolders {
    async fn write_atomic(&self, folder: &str, name: &str, data: &[u8]) -> Result<(), FolderError> {
        self.check(self.conn.write_atomic(folder, name, data).await)
            .await
    }
    async fn list(&self, folder: &str) -> Result<Vec<Entry>, FolderError> {
        self.check(self.conn.list(folder).await).await
    }
    async fn list_matching(
        &self,
        folder: &str,
        part: &str,
        end: &str,
    ) -> Result<Vec<Entry>, FolderError> {
        self.check(self.conn.list_matching(folder, part, end).await)
            .await
    }
    async fn read(&self, folder: &str, name: &str, limit: u64) -> Result<Vec<u8>, FolderError> {
        self.check(self.conn.read(folder, name, limit).await).await
    }
    async fn move_to(&self, from: &str, name: &str, to: &str) -> Result<String, FolderError> {
        self.check(self.conn.move_to(from, name, to).await).await
    }
}

fn sftp_err(what: &str, path: &str, e: SftpError) -> FolderError {
    match &e {
        SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile => {
            FolderError::NotFound(format!("{what} {path}"))
        }
        _ => FolderError::Transient(format!("sftp {what} {path}: {e}")),
    }
}

fn io_err(what: &str, path: &str, e: std::io::Error) -> FolderError {
    FolderError::Transient(format!("sftp {what} {path}: {e}"))
}

impl SftpFolders {
    /// The session folders are read on: a second SFTP channel of the connection, opened on the
    /// first listing. `SftpSession::read_dir` keeps a whole folder and, for every batch the
    /// server sends (about 100 names with OpenSSH), copies everything read so far: quadratic in
    /// the folder's size, in the folders look-ups by key search, which hold every delivery's
    /// files. This one reads the batches itself.
    async fn listing(&self) -> Result<&RawSftpSession, FolderError> {
        let target = &self.target;
        self.listing
            .get_or_try_init(|| async {
                let channel = self.handle.channel_open_session().await.map_err(|e| {
                    FolderError::Transient(format!("sftp {target}: open listing channel: {e}"))
                })?;
                channel.request_subsystem(true, "sftp").await.map_err(|e| {
                    FolderError::Transient(format!("sftp {target}: sftp subsystem: {e}"))
                })?;
                let raw = RawSftpSession::new(channel.into_stream());
                raw.set_timeout(self.request_timeout.as_secs().max(1));
                raw.init().await.map_err(|e| {
                    FolderError::Transient(format!("sftp {target}: sftp init: {e}"))
                })?;
                Ok(raw)
            })
            .await
    }

    /// The regular files of `folder` whose name `keep` accepts, in name order (empty if the
    /// folder does not exist). Other names are dropped batch by batch as the server sends them.
    async fn list_where(
        &self,
        folder: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<Entry>, FolderError> {
        let raw = self.listing().await?;
        let dir = match raw.opendir(folder).await {
            Ok(handle) => handle.handle,
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(sftp_err("list", folder, e)),
        };
        let mut entries = Vec::new();
        let read = loop {
            match raw.readdir(dir.as_str()).await {
                Ok(batch) => entries.extend(
                    batch
                        .files
                        .into_iter()
                        .filter(|f| f.attrs.file_type().is_file() && keep(&f.filename))
                        .map(|f| Entry {
                            size: f.attrs.size.unwrap_or(0),
                            name: f.filename,
                        }),
                ),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(sftp_err("list", folder, e)),
            }
        };
        let closed = raw.close(dir).await;
        read?;
        closed.map_err(|e| sftp_err("close", folder, e))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    async fn exists(&self, path: &str) -> Result<bool, FolderError> {
        self.session
            .try_exists(path)
            .await
            .map_err(|e| sftp_err("stat", path, e))
    }

    async fn create_folder(&self, folder: &str) -> Result<(), FolderError> {
        let mut path = String::new();
        for part in folder.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            if !self.exists(&path).await? {
                self.session
                    .create_dir(path.clone())
                    .await
                    .map_err(|e| sftp_err("mkdir", &path, e))?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Folders for SftpFolders {
    async fn write_atomic(&self, folder: &str, name: &str, data: &[u8]) -> Result<(), FolderError> {
        self.create_folder(folder).await?;
        let target = format!("{folder}/{name}");
        let part = format!("{target}.part");
        let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
        let mut file = self
            .session
            .open_with_flags(part.clone(), flags)
            .await
            .map_err(|e| sftp_err("create", &part, e))?;
        file.write_all(data)
            .await
            .map_err(|e| io_err("write", &part, e))?;
        file.flush().await.map_err(|e| io_err("flush", &part, e))?;
        file.sync_all()
            .await
            .map_err(|e| sftp_err("fsync", &part, e))?;
        file.shutdown()
            .await
            .map_err(|e| io_err("close", &part, e))?;
        if self.exists(&target).await? {
            // SFTP v3 rename never replaces; a same-named file is an earlier run of this attempt.
            self.session
                .remove_file(target.clone())
                .await
                .map_err(|e| sftp_err("remove", &target, e))?;
        }
        self.session
            .rename(part.clone(), target.clone())
            .await
            .map_err(|e| sftp_err("rename", &part, e))
    }

    async fn list(&self, folder: &str) -> Result<Vec<Entry>, FolderError> {
        self.list_where(folder, &|_| true).await
    }

    async fn list_matching(
        &self,
        folder: &str,
        part: &str,
        end: &str,
    ) -> Result<Vec<Entry>, FolderError> {
        self.list_where(folder, &|name| name.contains(part) && name.ends_with(end))
            .await
    }

    async fn read(&self, folder: &str, name: &str, limit: u64) -> Result<Vec<u8>, FolderError> {
        let path = format!("{folder}/{name}");
        let file = self
            .session
            .open(path.clone())
            .await
            .map_err(|e| sftp_err("open", &path, e))?;
        let mut data = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut data)
            .await
            .map_err(|e| io_err("read", &path, e))?;
        if data.len() as u64 > limit {
            return Err(FolderError::Transient(format!(
                "{path} is larger than {limit} bytes"
            )));
        }
        Ok(data)
    }

    async fn move_to(&self, from: &str, name: &str, to: &str) -> Result<String, FolderError> {
        self.create_folder(to).await?;
        let mut new_name = name.to_owned();
        if self.exists(&format!("{to}/{name}")).await? {
            new_name = format!("{name}.{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        }
        let (source, target) = (format!("{from}/{name}"), format!("{to}/{new_name}"));
        self.session
            .rename(source.clone(), target)
            .await
            .map_err(|e| sftp_err("rename", &source, e))?;
        Ok(new_name)
    }
}
