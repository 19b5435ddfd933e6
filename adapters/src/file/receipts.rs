//! Receipt pickup: lists the inbox, parses receipt XML in the system's charset, ties each receipt
//! to a delivery, archives what was taken and quarantines what is malformed or unmatched.
//!
//! Invariants: bad input (truncated XML, wrong encoding, DTDs, deep nesting, huge or binary files)
//! never panics and never stops a scan: the file goes to quarantine with a `<name>.reason` file
//! saying why. A transient error on one file leaves it in the inbox for the next scan.

use std::sync::Arc;

use encoding_rs::Encoding;
use quick_xml::events::Event;
use tracing::{info, warn};

use super::folders::{FolderError, OpenFolders};
use super::naming;
use crate::adapter::{StatusQueryError, StatusReport};

/// Deepest element nesting a receipt may have.
const MAX_DEPTH: usize = 16;
/// Longest text a receipt field may hold, in characters.
const MAX_FIELD_CHARS: usize = 4096;

/// One receipt file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReceipt {
    /// The file's name in the inbox.
    pub file_name: String,
    /// The delivery's stem (`<File>`): the receipt number the adapter gave the hub.
    pub stem: String,
    /// The delivery's idempotency key (`<Key>`); the 前置机 leaves it empty when it refuses a
    /// delivery whose manifest it could not read.
    pub idempotency_key: Option<String>,
    /// The line system's own receipt number (`<ReceiptNo>`), when given.
    pub receipt_no: Option<String>,
    /// The raw status code (`<StatusCode>`).
    pub status_code: String,
    /// Free text (`<Message>`), when given.
    pub message: Option<String>,
    /// Sequence of a later status change (`<stem>.<seq>.receipt.xml`); 0 for the first.
    pub sequence: u32,
}

impl FileReceipt {
    /// The receipt as a status report keyed by the delivery's stem.
    pub fn to_report(&self) -> StatusReport {
        StatusReport {
            receipt_number: self.stem.clone(),
            raw_status: self.status_code.clone(),
            message: self.message.clone(),
            excerpt: format!(
                "{}: ReceiptNo={} StatusCode={}",
                self.file_name,
                self.receipt_no.as_deref().unwrap_or("-"),
                self.status_code
            ),
        }
    }
}

/// What to do with a well-formed receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Report it and move it to the archive.
    Take,
    /// Leave it in the inbox for a later scan.
    Leave,
    /// Move it to quarantine with this reason.
    Unmatched(String),
}

/// A file moved to quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Its name in the inbox.
    pub file_name: String,
    /// Why.
    pub reason: String,
}

/// What one scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Receipts taken and archived, ordered by stem and sequence.
    pub taken: Vec<FileReceipt>,
    /// Files quarantined.
    pub quarantined: Vec<Quarantined>,
    /// Files left in the inbox (not selected, still being written, or a transient error).
    pub left: usize,
}

/// Scans one system's inbox. Cheap to clone; the hub calls [`ReceiptScanner::scan`] periodically.
#[derive(Clone)]
pub struct ReceiptScanner {
    pub(crate) folders: Arc<dyn OpenFolders>,
    pub(crate) inbox: String,
    pub(crate) archive: String,
    pub(crate) quarantine: String,
    pub(crate) encoding: &'static Encoding,
    pub(crate) max_bytes: u64,
}

impl std::fmt::Debug for ReceiptScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptScanner")
            .field("inbox", &self.inbox)
            .field("encoding", &self.encoding.name())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: FolderError) -> StatusQueryError {
    StatusQueryError::Unavailable(e.to_string())
}

impl ReceiptScanner {
    /// Scans the inbox once. `select` decides, per well-formed receipt whose stem is consistent
    /// with its key, whether to take, leave or quarantine it. Receipts that are malformed or whose
    /// stem does not match their key are quarantined without asking.
    pub async fn scan(
        &self,
        select: &(dyn Fn(&FileReceipt) -> Disposition + Send + Sync),
    ) -> Result<ScanSummary, StatusQueryError> {
        let folders = self.folders.open().await.map_err(unavailable)?;
        let entries = folders.list(&self.inbox).await.map_err(unavailable)?;
        let mut summary = ScanSummary::default();
        for entry in entries {
            let name = entry.name;
            if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") {
                summary.left += 1;
                continue;
            }
            let verdict = if !name.ends_with(".receipt.xml") {
                Err("file name does not end in .receipt.xml".to_owned())
            } else if entry.size > self.max_bytes {
                Err(format!(
                    "file is {} bytes, more than the {} allowed",
                    entry.size, self.max_bytes
                ))
            } else {
                match folders.read(&self.inbox, &name, self.max_bytes).await {
                    Ok(bytes) => parse_receipt(&name, &bytes, self.encoding),
                    Err(e) => {
                        warn!(file = %name, error = %e, "receipt unreadable, left for the next scan");
                        summary.left += 1;
                        continue;
                    }
                }
            };
            let disposition = match &verdict {
                Err(reason) => Disposition::Unmatched(reason.clone()),
                Ok(receipt) => select(receipt),
            };
            match (disposition, verdict) {
                (Disposition::Take, Ok(receipt)) => {
                    folders
                        .move_to(&self.inbox, &name, &self.archive)
                        .await
                        .map_err(unavailable)?;
                    info!(file = %name, stem = %receipt.stem, status = %receipt.status_code, "receipt taken");
                    summary.taken.push(receipt);
                }
                (Disposition::Leave, _) => summary.left += 1,
                (Disposition::Unmatched(reason), _) | (Disposition::Take, Err(reason)) => {
                    let moved = folders
                        .move_to(&self.inbox, &name, &self.quarantine)
                        .await
                        .map_err(unavailable)?;
                    let reason_file = format!("{moved}.reason");
                    folders
                        .write_atomic(
                            &self.quarantine,
                            &reason_file,
                            format!("{reason}\n").as_bytes(),
                        )
                        .await
                        .map_err(unavailable)?;
                    warn!(file = %name, %reason, "receipt quarantined");
                    summary.quarantined.push(Quarantined {
                        file_name: name,
                        reason,
                    });
                }
            }
        }
        summary
            .taken
            .sort_by(|a, b| (&a.stem, a.sequence).cmp(&(&b.stem, b.sequence)));
        Ok(summary)
    }

    /// Looks in the inbox and the archive for a receipt carrying this idempotency key (the
    /// 前置机 took the delivery, even if it moved the outbound files away). Moves nothing.
    pub async fn find_by_key(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<FileReceipt>, StatusQueryError> {
        let marker = format!("_{}.", naming::key_prefix(idempotency_key));
        let folders = self.folders.open().await.map_err(unavailable)?;
        for folder in [&self.inbox, &self.archive] {
            for entry in folders
                .list_matching(folder, &marker, ".receipt.xml")
                .await
                .map_err(unavailable)?
            {
                if entry.size > self.max_bytes {
                    continue;
                }
                let Ok(bytes) = folders.read(folder, &entry.name, self.max_bytes).await else {
                    continue;
                };
                if let Ok(receipt) = parse_receipt(&entry.name, &bytes, self.encoding)
                    && receipt.idempotency_key.as_deref() == Some(idempotency_key)
                {
                    return Ok(Some(receipt));
                }
            }
        }
        Ok(None)
    }

    /// Takes the receipts of the given stems (as [`crate::QueryStatus`] does): those are archived
    /// and reported; receipts of other deliveries stay in the inbox; bad ones are quarantined.
    pub async fn take_for(&self, stems: &[String]) -> Result<Vec<StatusReport>, StatusQueryError> {
        let select = |r: &FileReceipt| {
            if stems.iter().any(|s| s == &r.stem) {
                Disposition::Take
            } else {
                Disposition::Leave
            }
        };
        let summary = self.scan(&select).await?;
        Ok(summary.taken.iter().map(FileReceipt::to_report).collect())
    }
}

/// Parses one receipt file: strict decoding in `encoding`, hardened XML (no DTD, bounded depth and
/// field size), required `File`, `Key` and `StatusCode`, and a name consistent with the content.
pub fn parse_receipt(
    file_name: &str,
    bytes: &[u8],
    encoding: &'static Encoding,
) -> Result<FileReceipt, String> {
    let text = super::charset::decode(bytes, encoding)?;
    if text.chars().any(|c| c == '\0') {
        return Err("contains NUL characters (binary data)".to_owned());
    }
    let fields = read_fields(&text)?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let stem = get("File").ok_or("receipt has no <File>")?;
    let key = get("Key");
    let status = get("StatusCode").ok_or("receipt has no <StatusCode>")?;
    match &key {
        Some(key) if !naming::stem_matches_key(&stem, key) => {
            return Err(format!(
                "receipt names file {stem:?}, which is not a delivery with key prefix {}",
                naming::key_prefix(key)
            ));
        }
        None if !naming::is_stem(&stem) => {
            return Err(format!(
                "receipt names {stem:?}, which is not a delivery file stem"
            ));
        }
        _ => {}
    }
    let sequence = receipt_sequence(file_name, &stem)?;
    Ok(FileReceipt {
        file_name: file_name.to_owned(),
        stem,
        idempotency_key: key,
        receipt_no: get("ReceiptNo"),
        status_code: status,
        message: get("Message"),
        sequence,
    })
}

/// The sequence in `<stem>.receipt.xml` (0) or `<stem>.<seq>.receipt.xml`.
fn receipt_sequence(file_name: &str, stem: &str) -> Result<u32, String> {
    let rest = file_name
        .strip_prefix(stem)
        .and_then(|r| r.strip_suffix(".receipt.xml"))
        .ok_or_else(|| format!("file name does not start with its <File> {stem:?}"))?;
    match rest {
        "" => Ok(0),
        seq => seq
            .strip_prefix('.')
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| format!("bad sequence {seq:?} in file name")),
    }
}

/// Reads the text of the root `<Receipt>`'s child elements.
fn read_fields(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut seen_root = false;
    loop {
        let at = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed xml at byte {at}: {e}"))?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if stack.is_empty() {
                    if seen_root || name != "Receipt" {
                        return Err(format!("root element must be <Receipt>, found <{name}>"));
                    }
                    seen_root = true;
                }
                if stack.len() == 1 {
                    fields.push((name.clone(), String::new()));
                }
                stack.push(name);
                if stack.len() > MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                }
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if stack.is_empty() {
                    return Err(format!("root element must be <Receipt>, found <{name}/>"));
                }
                if stack.len() == 1 {
                    fields.push((name, String::new()));
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => append(
                &mut fields,
                &stack,
                &t.xml_content().map_err(|e| e.to_string())?,
            )?,
            Event::CData(t) => append(&mut fields, &stack, &String::from_utf8_lossy(&t))?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity &{name};"))?
                            .to_owned()
                    }
                };
                append(&mut fields, &stack, &resolved)?;
            }
            Event::DocType(_) => return Err("DTDs are not allowed in receipts".to_owned()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(format!(
            "truncated xml: <{}> is not closed",
            stack.join("><")
        ));
    }
    if !seen_root {
        return Err("no <Receipt> element".to_owned());
    }
    Ok(fields)
}

fn append(fields: &mut [(String, String)], stack: &[String], text: &str) -> Result<(), String> {
    if stack.len() < 2 {
        if text.trim().is_empty() {
            return Ok(());
        }
        return Err("text outside the receipt's fields".to_owned());
    }
    if stack.len() == 2
        && let Some((name, value)) = fields.last_mut()
    {
        value.push_str(text);
        if value.chars().count() > MAX_FIELD_CHARS {
            return Err(format!(
                "<{name}> is longer than {MAX_FIELD_CHARS} characters"
            ));
        }
    }
    Ok(())
}
