//! Looking a delivery up by idempotency key in the `file` kind's local exchange folders when
//! they hold many other deliveries' files: what the dispatcher does for every delivery whose
//! lease expired mid-attempt (a node died, or its outcome could not be recorded), often for
//! hundreds at once.
//!
//! Run: `cargo bench -p yimen-adapters --bench file_lookup [-- [--sftp] FILES]`. With `--sftp`
//! the folders are read over SFTP from a real OpenSSH server on 127.0.0.1 (fewer look-ups at
//! once: one connection carries them all). FILES (default 20,000)
//! manifests go into each of `outbox` and `archive`, and as many receipts into each of `inbox`
//! and `archive`; then 64 look-ups of keys that are not there (the worst case: every folder is
//! searched to the end) run at once, twice. Prints the time per look-up and how much the
//! process's peak resident memory grew.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/support/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use url::Url;
use yimen_adapters::{Adapter, AdapterRegistry, SettingsSource, SystemContext};

const AT_ONCE: usize = 64;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn fill(files: &Path, count: usize) {
    for folder in ["outbox", "archive", "inbox"] {
        std::fs::create_dir_all(files.join(folder)).unwrap();
    }
    for i in 0..count {
        // Names as the adapter makes them: `<case>_<attempt>_<key prefix>`.
        let stem = format!("C2026-{i:07}_1_{:08x}", i.wrapping_mul(2_654_435_761));
        let manifest = format!("{stem}.manifest.json");
        let receipt = format!("{stem}.receipt.xml");
        std::fs::write(files.join("outbox").join(&manifest), b"{}").unwrap();
        std::fs::write(files.join("archive").join(&manifest), b"{}").unwrap();
        std::fs::write(files.join("inbox").join(&receipt), b"<Receipt/>").unwrap();
        std::fs::write(files.join("archive").join(&receipt), b"<Receipt/>").unwrap();
    }
}

fn build(dir: &Path, text: &str) -> Arc<dyn Adapter> {
    let ctx = SystemContext {
        system_id: "L05".to_owned(),
        base_url: Url::parse("http://127.0.0.1:9/L05").unwrap(),
        files_dir: dir.join("files"),
        secrets_root: PathBuf::from(dir),
    };
    AdapterRegistry::builtin()
        .build(
            &ctx,
            SettingsSource {
                path: Path::new("systems/L05.toml"),
                text,
            },
        )
        .unwrap()
}

fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let over_sftp = std::env::args().any(|a| a == "--sftp");
    let at_once = if over_sftp { 8 } else { AT_ONCE };
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (adapter, transport, _server) = if over_sftp {
        let server = runtime.block_on(sshd::Sshd::start());
        fill(&server.root, count);
        let adapter = build(server.dir.path(), &server.mapping(""));
        (adapter, "SFTP", Some(server))
    } else {
        fill(&dir.path().join("files"), count);
        let text = "[adapter]\nkind = \"file\"\n[adapter.settings]\ntransport = \"local\"\n";
        (build(dir.path(), text), "local", None)
    };
    let before = peak_rss_kib();
    for round in 1..=2 {
        let started = Instant::now();
        runtime.block_on(async {
            let lookups: Vec<_> = (0..at_once)
                .map(|i| {
                    let adapter = adapter.clone();
                    tokio::spawn(async move {
                        let key = format!("absent-{round}-{i}");
                        adapter
                            .as_deliver()
                            .unwrap()
                            .find_by_key(&key)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            for lookup in lookups {
                assert!(lookup.await.unwrap().is_none());
            }
        });
        let elapsed = started.elapsed();
        println!(
            "RESULT file lookup ({transport}), {count} files in each of 4 folder listings, \
             {at_once} at once, round {round}: {:.1} ms per look-up ({:.0} ms for all); \
             peak RSS grew {} MiB",
            elapsed.as_secs_f64() * 1000.0 / at_once as f64,
            elapsed.as_secs_f64() * 1000.0,
            peak_rss_kib().saturating_sub(before) / 1024
        );
    }
}
