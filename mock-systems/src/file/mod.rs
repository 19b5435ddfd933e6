//! The file kind (前置机 exchange folders): polls `<files>/<id>/<outbox>` for manifests, verifies
//! each document's SHA-256 and size, takes it by idempotency key and answers with receipt files in
//! `<files>/<id>/<inbox>`.
//!
//! Taken files stay in the outbox (the client may look there for a manifest by key); a marker
//! `<files>/<id>/.taken/<manifest>` makes each manifest taken once, across restarts too. A
//! manifest is only read once its data file was written (the client writes the manifest last).
//! A repeat key gets a receipt with the existing receipt number and counts a duplicate. Files
//! with a bad manifest or hash get a refusal receipt (the system's `not_accepted` code).

mod manifest;
mod package;
mod receipt;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::catalogue::{FileSpec, KindSpec};
use crate::faults::FaultAction;
use crate::progress::Transition;
use crate::state::{Fleet, Received, Sink, SystemEntry};

pub use package::open as open_package;
pub use receipt::file_name as receipt_file_name;

/// Folder (under `<files>/<id>`) of the markers of manifests already taken.
pub const TAKEN_MARKERS: &str = ".taken";

/// How often outboxes are looked at.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// A receipt to write later (slow receipts).
#[derive(Debug)]
struct Delayed {
    dir: PathBuf,
    name: String,
    bytes: Vec<u8>,
    delay: Duration,
}

/// Polls every file system's outbox until shutdown.
pub async fn run(fleet: Arc<Fleet>) {
    loop {
        tokio::select! {
            () = fleet.shutdown.cancelled() => return,
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
        let scan_fleet = Arc::clone(&fleet);
        let delayed = tokio::task::spawn_blocking(move || scan_all(&scan_fleet)).await;
        for (entry, late) in delayed.unwrap_or_default() {
            let fleet = Arc::clone(&fleet);
            tokio::spawn(async move {
                tokio::select! {
                    () = fleet.shutdown.cancelled() => return,
                    () = tokio::time::sleep(late.delay) => {}
                }
                write_counted(&entry, &late.dir, &late.name, &late.bytes);
            });
        }
    }
}

/// The folder of one file system.
pub fn system_dir(fleet: &Fleet, id: &str) -> PathBuf {
    fleet.runtime.files_dir.join(id)
}

fn scan_all(fleet: &Fleet) -> Vec<(Arc<SystemEntry>, Delayed)> {
    let mut delayed = Vec::new();
    for entry in fleet.systems.values() {
        let KindSpec::File(spec) = &entry.spec.kind else {
            continue;
        };
        if entry.is_down() {
            continue;
        }
        let outbox = system_dir(fleet, &entry.spec.id).join(&spec.outbox);
        let Ok(listing) = std::fs::read_dir(&outbox) else {
            continue;
        };
        let markers = system_dir(fleet, &entry.spec.id).join(TAKEN_MARKERS);
        let mut manifests: Vec<String> = listing
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".manifest.json") && !markers.join(name).exists())
            .collect();
        manifests.sort();
        for name in manifests {
            if let Some(late) = take_file(fleet, entry, spec, &outbox, &name) {
                delayed.push((Arc::clone(entry), late));
            }
        }
    }
    delayed
}

fn take_file(
    fleet: &Fleet,
    entry: &Arc<SystemEntry>,
    spec: &FileSpec,
    outbox: &Path,
    manifest_name: &str,
) -> Option<Delayed> {
    let stem = manifest_name.trim_end_matches(".manifest.json").to_owned();
    let applied = entry.decide_faults();
    if applied.action == Some(FaultAction::ServerError) {
        tracing::info!(system = %entry.spec.id, %stem, "file left for a later scan by fault plan");
        return None;
    }
    let dir = system_dir(fleet, &entry.spec.id);
    let inbox = dir.join(&spec.inbox);
    let refused_code = entry
        .spec
        .codes
        .get("not_accepted")
        .or_else(|| entry.spec.codes.get("rejected"))
        .cloned()
        .unwrap_or_else(|| "99".to_owned());
    let (files, key, receipt_no, code, message) = match manifest::read_files(
        outbox,
        spec,
        &entry.spec.charset,
        manifest_name,
    ) {
        Err((files, reason)) => {
            let mut state = entry.lock();
            state.counters.rejected += 1;
            state.record(file_record(
                None,
                None,
                &format!("rejected: {reason}"),
                "",
                String::new(),
            ));
            tracing::info!(system = %entry.spec.id, %stem, %reason, "file refused");
            (files, String::new(), String::new(), refused_code, reason)
        }
        Ok(taken) => {
            if let Some(FaultAction::Reject(_, reason)) = &applied.action {
                let mut state = entry.lock();
                state.counters.rejected += 1;
                let outcome = format!("rejected: {reason}");
                state.record(file_record(
                    Some(&taken.key),
                    None,
                    &outcome,
                    &taken.charset,
                    taken.body,
                ));
                (
                    taken.files,
                    taken.key,
                    String::new(),
                    refused_code,
                    reason.clone(),
                )
            } else {
                let sink = Sink::FileReceipts { stem: stem.clone() };
                let mut state = entry.lock();
                let (index, new) = state.open_case(&entry.spec, &fleet.runtime, &taken.key, sink);
                let case = state.cases[index].clone();
                let outcome = if new { "accepted" } else { "duplicate" };
                state.record(file_record(
                    Some(&taken.key),
                    Some(&case.receipt_no),
                    outcome,
                    &taken.charset,
                    taken.body,
                ));
                let step = case.current().clone();
                tracing::info!(system = %entry.spec.id, %stem, receipt = %case.receipt_no, new, "file taken");
                (
                    taken.files,
                    taken.key,
                    case.receipt_no,
                    step.code,
                    step.message,
                )
            }
        }
    };
    let markers = dir.join(TAKEN_MARKERS);
    let marked = std::fs::create_dir_all(&markers)
        .and_then(|()| std::fs::write(markers.join(manifest_name), files.join("\n")));
    if let Err(err) = marked {
        tracing::warn!(system = %entry.spec.id, %stem, error = %err, "cannot mark manifest taken");
    }
    if applied.missing_receipts {
        tracing::info!(system = %entry.spec.id, %stem, "receipt withheld by fault plan");
        return None;
    }
    let name = receipt::file_name(&stem, 1);
    let bytes = if applied.action == Some(FaultAction::Malformed) {
        b"<Receipt><File>garbage".to_vec()
    } else {
        receipt::render(
            &receipt::Receipt {
                stem: &stem,
                key: &key,
                receipt_no: &receipt_no,
                status_code: &code,
                message: &message,
            },
            if applied.gb18030 {
                "gb18030"
            } else {
                &spec.receipt_charset
            },
        )
    };
    let delay = match (applied.slow_receipts, applied.latency) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    match delay {
        Some(delay) => Some(Delayed {
            dir: inbox,
            name,
            bytes,
            delay,
        }),
        None => {
            write_counted(entry, &inbox, &name, &bytes);
            None
        }
    }
}

fn file_record(
    key: Option<&str>,
    receipt_no: Option<&str>,
    outcome: &str,
    charset: &str,
    body: String,
) -> Received {
    Received {
        at: Timestamp::now(),
        operation: "file".to_owned(),
        idempotency_key: key.map(str::to_owned),
        receipt_no: receipt_no.map(str::to_owned),
        outcome: outcome.to_owned(),
        charset: charset.to_owned(),
        body,
        headers: Default::default(),
    }
}

fn write_counted(entry: &SystemEntry, dir: &Path, name: &str, bytes: &[u8]) {
    match receipt::write_atomic(dir, name, bytes) {
        Ok(()) => entry.lock().counters.receipts_written += 1,
        Err(err) => {
            tracing::warn!(system = %entry.spec.id, name, error = %err, "cannot write receipt");
        }
    }
}

/// Writes the receipt for a later status change of a file case.
pub fn write_status_receipt(
    fleet: &Fleet,
    entry: &SystemEntry,
    stem: &str,
    transition: &Transition,
) {
    let KindSpec::File(spec) = &entry.spec.kind else {
        return;
    };
    let bytes = receipt::render(
        &receipt::Receipt {
            stem,
            key: &transition.key,
            receipt_no: &transition.receipt_no,
            status_code: &transition.step.code,
            message: &transition.step.message,
        },
        &spec.receipt_charset,
    );
    let inbox = system_dir(fleet, &entry.spec.id).join(&spec.inbox);
    write_counted(
        entry,
        &inbox,
        &receipt::file_name(stem, transition.seq),
        &bytes,
    );
}
