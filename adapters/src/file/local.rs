//! Exchange folders on the local file system (`transport = "local"`).
//!
//! Durability: a write goes to `name.part` (created fresh), is fsynced, renamed to `name`, and the
//! folder is fsynced so the rename survives a power cut; writes renaming in one folder at the same
//! time share that fsync ([`FolderSyncs`]). Blocking calls run on tokio's blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::dir_sync::FolderSyncs;
use super::folders::{Entry, FolderError, Folders};

/// Folders below one local root (the system's `files_dir`). Clones share their folder fsyncs.
#[derive(Debug, Clone)]
pub struct LocalFolders {
    root: PathBuf,
    syncs: Arc<FolderSyncs>,
}

impl LocalFolders {
    /// Folders below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            syncs: Arc::default(),
        }
    }

    /// Creates the given folders below the root.
    pub fn create(&self, folders: &[&str]) -> std::io::Result<()> {
        for folder in folders {
            fs::create_dir_all(self.root.join(folder))?;
        }
        Ok(())
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, FolderError>
    where
        T: Send + 'static,
        F: FnOnce(PathBuf, &FolderSyncs) -> Result<T, FolderError> + Send + 'static,
    {
        let root = self.root.clone();
        let syncs = Arc::clone(&self.syncs);
        tokio::task::spawn_blocking(move || f(root, &syncs))
            .await
            .map_err(|e| FolderError::Transient(format!("file task failed: {e}")))?
    }
}

fn write_atomic(syncs: &FolderSyncs, dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let part = dir.join(format!("{name}.part"));
    let target = dir.join(name);
    let create = || OpenOptions::new().write(true).create_new(true).open(&part);
    let result = (|| {
        // A `.part` left by an attempt cut short is replaced. Removing it only when found
        // spares every write an `unlink`, which takes the folder's lock for writing.
        let mut file = match create() {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                fs::remove_file(&part)?;
                create()?
            }
            opened => opened?,
        };
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&part, &target)?;
        syncs.sync(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result
}

/// The regular files of `dir` whose name `wanted` accepts, in name order; empty if `dir` does
/// not exist. Only accepted names are looked at (one `stat` each), and a file that goes away
/// between the listing and its `stat` (the 前置机 took it) is left out, not an error.
fn list_dir(dir: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<Entry>, FolderError> {
    let reader = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for entry in reader {
        let entry = entry?;
        // Names that are not UTF-8 cannot be ours; they are skipped, never touched.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !wanted(&name) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if meta.is_file() {
            out.push(Entry {
                name,
                size: meta.len(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn unique_target(dir: &Path, name: &str) -> (PathBuf, String) {
    let plain = dir.join(name);
    if !plain.exists() {
        return (plain, name.to_owned());
    }
    let unique = format!("{name}.{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    (dir.join(&unique), unique)
}

#[async_trait]
impl Folders for LocalFolders {
    async fn write_atomic(&self, folder: &str, name: &str, data: &[u8]) -> Result<(), FolderError> {
        let (folder, name, data) = (folder.to_owned(), name.to_owned(), data.to_vec());
        self.blocking(move |root, syncs| Ok(write_atomic(syncs, &root.join(folder), &name, &data)?))
            .await
    }

    async fn list(&self, folder: &str) -> Result<Vec<Entry>, FolderError> {
        let folder = folder.to_owned();
        self.blocking(move |root, _| list_dir(&root.join(folder), |_| true))
            .await
    }

    async fn list_matching(
        &self,
        folder: &str,
        part: &str,
        end: &str,
    ) -> Result<Vec<Entry>, FolderError> {
        let (folder, part, end) = (folder.to_owned(), part.to_owned(), end.to_owned());
        self.blocking(move |root, _| {
            list_dir(&root.join(folder), |name| {
                name.contains(part.as_str()) && name.ends_with(end.as_str())
            })
        })
        .await
    }

    async fn read(&self, folder: &str, name: &str, limit: u64) -> Result<Vec<u8>, FolderError> {
        let path_folder = folder.to_owned();
        let name = name.to_owned();
        self.blocking(move |root, _| {
            let file = File::open(root.join(path_folder).join(&name))?;
            let mut data = Vec::new();
            file.take(limit.saturating_add(1)).read_to_end(&mut data)?;
            if data.len() as u64 > limit {
                return Err(FolderError::Transient(format!(
                    "{name} is larger than {limit} bytes"
                )));
            }
            Ok(data)
        })
        .await
    }

    async fn move_to(&self, from: &str, name: &str, to: &str) -> Result<String, FolderError> {
        let (from, name, to) = (from.to_owned(), name.to_owned(), to.to_owned());
        self.blocking(move |root, syncs| {
            let to_dir = root.join(to);
            fs::create_dir_all(&to_dir)?;
            let (target, new_name) = unique_target(&to_dir, &name);
            fs::rename(root.join(&from).join(&name), target)?;
            syncs.sync(&to_dir)?;
            syncs.sync(&root.join(from))?;
            Ok(new_name)
        })
        .await
    }
}

#[async_trait]
impl super::folders::OpenFolders for LocalFolders {
    async fn open(&self) -> Result<Box<dyn Folders>, FolderError> {
        Ok(Box::new(self.clone()))
    }
}
