//! The exchange-folder operations the `file` kind needs, over any transport.
//!
//! Folder arguments are the validated relative folder settings; name arguments are always names
//! produced or checked by [`super::naming`] (`[A-Za-z0-9_.-]`, no leading dot), so an
//! implementation only ever touches `root/folder/name`.

use async_trait::async_trait;

/// One entry of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name (not a path).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// Why a folder operation failed, classified for the delivery outcome.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// Transient: I/O error, disk full, connection lost, timeout. Try again later.
    #[error("{0}")]
    Transient(String),
    /// Permanent: the server refused us (host key mismatch, authentication refused).
    #[error("{0}")]
    Refused(String),
    /// The file does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}

impl From<std::io::Error> for FolderError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            Self::NotFound(e.to_string())
        } else {
            Self::Transient(e.to_string())
        }
    }
}

/// Exchange folders on one transport (a local root, or one SFTP session).
#[async_trait]
pub trait Folders: Send + Sync {
    /// Writes `data` to `folder/name` atomically: `name.part`, flushed to stable storage, then
    /// renamed; a reader never sees a partial file under `name`. Creates `folder` if missing.
    async fn write_atomic(&self, folder: &str, name: &str, data: &[u8]) -> Result<(), FolderError>;
    /// Lists the regular files of `folder` (empty if it does not exist).
    async fn list(&self, folder: &str) -> Result<Vec<Entry>, FolderError>;
    /// Lists the regular files of `folder` whose name contains `part` and ends with `end`, in
    /// name order. Look-ups by idempotency key use it: the folders they search hold every
    /// delivery's files, so an implementation should drop other names as it reads them rather
    /// than keep (or, locally, even look at) them all. The default filters [`Folders::list`].
    async fn list_matching(
        &self,
        folder: &str,
        part: &str,
        end: &str,
    ) -> Result<Vec<Entry>, FolderError> {
        let mut entries = self.list(folder).await?;
        entries.retain(|e| e.name.contains(part) && e.name.ends_with(end));
        Ok(entries)
    }
    /// Reads `folder/name`, at most `limit` bytes (longer files are an error).
    async fn read(&self, folder: &str, name: &str, limit: u64) -> Result<Vec<u8>, FolderError>;
    /// Moves `from/name` to `to/name` (creating `to`); an existing target keeps its content and
    /// the moved file gets a unique suffix. Returns the name it got.
    async fn move_to(&self, from: &str, name: &str, to: &str) -> Result<String, FolderError>;
}

/// Opens the exchange folders of one system: the local root as is, or a fresh SFTP session.
#[async_trait]
pub trait OpenFolders: Send + Sync {
    /// Opens (connects) the folders; an SFTP connection lives as long as the returned value.
    async fn open(&self) -> Result<Box<dyn Folders>, FolderError>;
}
