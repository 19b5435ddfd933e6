//! Settings of the `file` kind, parsed strictly and validated without I/O.
//!
//! Folder names are relative paths below the system's exchange root (local `files_dir` or the
//! SFTP login folder); validation refuses absolute paths and `..` so no setting can point the
//! adapter outside its root.

use std::path::{Component, Path};

use serde::Deserialize;

use crate::settings::SecretRef;

/// How files reach the 前置机.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A folder on this machine (or a mounted share).
    #[default]
    Local,
    /// An SFTP server.
    Sftp,
}

/// What one delivery puts in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum PackageKind {
    /// The document and each material as separate files, then the manifest.
    #[default]
    #[serde(rename = "plain")]
    Plain,
    /// One ZIP of document, materials and manifest, encrypted with SM4-CBC (国密).
    #[serde(rename = "sm4-zip")]
    Sm4Zip,
}

/// The `[adapter.settings]` table of a `file` system.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `local` or `sftp`.
    #[serde(default)]
    pub transport: Transport,
    /// Outbound folder.
    #[serde(default = "default_outbox")]
    pub outbox: String,
    /// Folder receipts come back to.
    #[serde(default = "default_inbox")]
    pub inbox: String,
    /// Folder processed receipts move to.
    #[serde(default = "default_archive")]
    pub archive: String,
    /// Folder malformed or unmatched receipts move to, each with a `.reason` file.
    #[serde(default = "default_quarantine")]
    pub quarantine: String,
    /// Encoding of receipt files (`gb18030`, `gbk`, `gb2312`, `utf-8`, …).
    #[serde(default = "default_charset")]
    pub receipt_charset: String,
    /// Receipt files larger than this are quarantined unread.
    #[serde(default = "default_max_receipt_bytes")]
    pub max_receipt_bytes: u64,
    /// `plain` or `sm4-zip`.
    #[serde(default)]
    pub package: PackageKind,
    /// The SM4 key (32 hex digits), for `sm4-zip`.
    #[serde(default)]
    pub package_key: Option<SecretRef>,
    /// SFTP server host.
    #[serde(default)]
    pub host: Option<String>,
    /// SFTP server port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// SFTP user.
    #[serde(default)]
    pub username: Option<String>,
    /// The OpenSSH private key text (a key file, or a variable holding the text).
    #[serde(default)]
    pub private_key: Option<SecretRef>,
    /// The server's pinned host key, `"<algorithm> <base64>"` as in `known_hosts`.
    #[serde(default)]
    pub known_host_key: Option<String>,
}

fn default_outbox() -> String {
    "outbox".to_owned()
}
fn default_inbox() -> String {
    "inbox".to_owned()
}
fn default_archive() -> String {
    "archive".to_owned()
}
fn default_quarantine() -> String {
    "quarantine".to_owned()
}
fn default_charset() -> String {
    "gb18030".to_owned()
}
fn default_max_receipt_bytes() -> u64 {
    1024 * 1024
}
fn default_port() -> u16 {
    22
}

impl FileSettings {
    /// Settings with every default and the given transport (tests, integrators).
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            outbox: default_outbox(),
            inbox: default_inbox(),
            archive: default_archive(),
            quarantine: default_quarantine(),
            receipt_charset: default_charset(),
            max_receipt_bytes: default_max_receipt_bytes(),
            package: PackageKind::Plain,
            package_key: None,
            host: None,
            port: default_port(),
            username: None,
            private_key: None,
            known_host_key: None,
        }
    }

    /// Every problem in the settings, as (key path, message); empty when valid.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let key = |k: &str| format!("adapter.settings.{k}");
        for (name, value) in [
            ("outbox", &self.outbox),
            ("inbox", &self.inbox),
            ("archive", &self.archive),
            ("quarantine", &self.quarantine),
        ] {
            if let Err(message) = check_folder(value) {
                out.push((key(name), message));
            }
        }
        let folders = [&self.outbox, &self.inbox, &self.archive, &self.quarantine];
        for (i, a) in folders.iter().enumerate() {
            if folders[i + 1..].contains(a) {
                out.push((
                    key("outbox"),
                    format!("folder {a:?} is used for two purposes; outbox, inbox, archive and quarantine must differ"),
                ));
            }
        }
        if receipt_encoding(&self.receipt_charset).is_none() {
            out.push((
                key("receipt_charset"),
                format!("unknown charset {:?}", self.receipt_charset),
            ));
        }
        if self.max_receipt_bytes == 0 {
            out.push((
                key("max_receipt_bytes"),
                "must be greater than 0".to_owned(),
            ));
        }
        match (self.package, &self.package_key) {
            (PackageKind::Sm4Zip, None) => out.push((
                key("package_key"),
                "package = \"sm4-zip\" needs package_key".to_owned(),
            )),
            (PackageKind::Plain, Some(_)) => out.push((
                key("package_key"),
                "package_key is only used with package = \"sm4-zip\"".to_owned(),
            )),
            (_, Some(secret)) => {
                if let Err(e) = secret.check() {
                    out.push((key("package_key"), e.to_string()));
                }
            }
            _ => {}
        }
        match self.transport {
            Transport::Sftp => self.sftp_problems(&mut out),
            Transport::Local => {
                for (name, set) in [
                    ("host", self.host.is_some()),
                    ("username", self.username.is_some()),
                    ("private_key", self.private_key.is_some()),
                    ("known_host_key", self.known_host_key.is_some()),
                ] {
                    if set {
                        out.push((key(name), "only used with transport = \"sftp\"".to_owned()));
                    }
                }
            }
        }
        out
    }

    fn sftp_problems(&self, out: &mut Vec<(String, String)>) {
        let key = |k: &str| format!("adapter.settings.{k}");
        match &self.host {
            None => out.push((key("host"), "transport = \"sftp\" needs host".to_owned())),
            Some(h) if h.trim().is_empty() => out.push((key("host"), "is empty".to_owned())),
            Some(_) => {}
        }
        if self.port == 0 {
            out.push((key("port"), "must be between 1 and 65535".to_owned()));
        }
        match &self.username {
            None => out.push((
                key("username"),
                "transport = \"sftp\" needs username".to_owned(),
            )),
            Some(u) if u.is_empty() => out.push((key("username"), "is empty".to_owned())),
            Some(_) => {}
        }
        match &self.private_key {
            None => out.push((
                key("private_key"),
                "transport = \"sftp\" needs private_key".to_owned(),
            )),
            Some(secret) => {
                if let Err(e) = secret.check() {
                    out.push((key("private_key"), e.to_string()));
                }
            }
        }
        match &self.known_host_key {
            None => out.push((
                key("known_host_key"),
                "transport = \"sftp\" needs known_host_key (the server's pinned host key)"
                    .to_owned(),
            )),
            Some(text) => {
                if let Err(e) = super::sftp::parse_host_key(text) {
                    out.push((key("known_host_key"), e));
                }
            }
        }
    }
}

/// Checks that a folder setting is a non-empty relative path that stays below its root.
fn check_folder(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("is empty".to_owned());
    }
    let path = Path::new(value);
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("{value:?} must not contain `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "{value:?} must be relative to the system's exchange root"
                ));
            }
        }
    }
    if value.contains('\\') || value.chars().any(char::is_control) {
        return Err(format!(
            "{value:?} may contain only `/` as separator and no control characters"
        ));
    }
    Ok(())
}

/// The decoder for a receipt charset label; GBK and GB2312 decode as GB18030 (its superset).
pub fn receipt_encoding(label: &str) -> Option<&'static encoding_rs::Encoding> {
    let lower = label.trim().to_ascii_lowercase();
    match lower.as_str() {
        "gbk" | "gb2312" | "gb18030" | "cp936" => Some(encoding_rs::GB18030),
        _ => encoding_rs::Encoding::for_label_no_replacement(lower.as_bytes()),
    }
}
