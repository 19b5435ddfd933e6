//! The `file` kind over local folders: atomic outbox writes, manifests, SM4 packages,
//! idempotency look-ups, classification and settings errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use support::{ID_NUMBER, LogCapture, ctx, material, request, sha256};
use yimen_adapters::file::{Entry, Folders, LocalFolders, Manifest, Sm4Key, is_safe_name, package};
use yimen_adapters::{Adapter, AdapterRegistry, DeliveryOutcome, SettingsSource};

const SM4_KEY: &str = "00112233445566778899aabbccddeeff";

fn build(dir: &Path, settings: &str) -> Arc<dyn Adapter> {
    let text = format!("[adapter]\nkind = \"file\"\n[adapter.settings]\n{settings}");
    std::fs::write(dir.join("L05.sm4"), format!("{SM4_KEY}\n")).unwrap();
    let source = SettingsSource {
        path: Path::new("systems/L05.toml"),
        text: &text,
    };
    AdapterRegistry::builtin()
        .build(&ctx("L05", &dir.join("files"), dir), source)
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn plain_delivery_writes_document_materials_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = build(tmp.path(), "transport = \"local\"\n");
    let m = material(tmp.path(), "licence.pdf", "营业执照", b"%PDF-1.7 licence");
    let req = request("C2026-0001", 1, "7f3a9c21-aaaa-bbbb", vec![m]);
    let outcome = adapter.as_deliver().unwrap().deliver(&req).await;
    let DeliveryOutcome::Delivered(receipt) = outcome else {
        panic!("expected delivered, got {outcome:?}");
    };
    let stem = "C2026-0001_1_c92b5af3";
    assert_eq!(receipt.receipt_number.as_deref(), Some(stem));
    let outbox = tmp.path().join("files/outbox");
    assert_eq!(
        files(&outbox),
        [
            format!("{stem}.m1.pdf"),
            format!("{stem}.manifest.json"),
            format!("{stem}.xml")
        ]
    );
    let doc = std::fs::read(outbox.join(format!("{stem}.xml"))).unwrap();
    assert_eq!(
        doc,
        req.payload.body.as_ref(),
        "document written as given (GB18030 bytes)"
    );
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(outbox.join(format!("{stem}.manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.file, format!("{stem}.xml"));
    assert_eq!(manifest.sha256, sha256(&doc));
    assert_eq!(manifest.size, doc.len() as u64);
    assert_eq!(manifest.idempotency_key, "7f3a9c21-aaaa-bbbb");
    assert_eq!(manifest.case_id, "C2026-0001");
    assert_eq!(manifest.materials.len(), 1);
    assert_eq!(manifest.materials[0].name, "营业执照");
    assert_eq!(manifest.materials[0].sha256, sha256(b"%PDF-1.7 licence"));
    assert_eq!(
        std::fs::read(outbox.join(&manifest.materials[0].file)).unwrap(),
        b"%PDF-1.7 licence"
    );
}

#[tokio::test]
async fn hostile_case_ids_never_leave_the_outbox() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = build(tmp.path(), "");
    let hostile = [
        "../../etc/passwd",
        "a/b",
        "受理/编号",
        "..",
        "/abs",
        "a\\..\\b",
        ".hidden",
        "",
    ];
    for (i, id) in hostile.iter().enumerate() {
        let req = request(id, 1, &format!("../../key{i}/xxxxxxxx"), Vec::new());
        let outcome = adapter.as_deliver().unwrap().deliver(&req).await;
        assert!(
            matches!(outcome, DeliveryOutcome::Delivered(_)),
            "{id:?}: {outcome:?}"
        );
    }
    let outbox = tmp.path().join("files/outbox");
    let names = files(&outbox);
    assert_eq!(names.len(), hostile.len() * 2);
    for name in &names {
        assert!(is_safe_name(name), "{name:?}");
    }
    // Nothing was written anywhere else below the temp dir.
    assert_eq!(
        files(&tmp.path().join("files")),
        ["archive", "inbox", "outbox", "quarantine"]
    );
    assert_eq!(files(tmp.path()), ["L05.sm4", "files"]);
}

#[tokio::test]
async fn sm4_zip_package_decrypts_to_document_materials_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = build(
        tmp.path(),
        "package = \"sm4-zip\"\npackage_key = { file = \"L05.sm4\" }\n",
    );
    let m1 = material(tmp.path(), "id.jpg", "身份证", b"\xff\xd8jpeg");
    let m2 = material(tmp.path(), "form", "申请表", b"form");
    let req = request("C9", 2, "abcdef0123456789", vec![m1, m2]);
    let outcome = adapter.as_deliver().unwrap().deliver(&req).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    let outbox = tmp.path().join("files/outbox");
    assert_eq!(
        files(&outbox),
        ["C9_2_f445801e.manifest.json", "C9_2_f445801e.sm4"]
    );
    let sealed = std::fs::read(outbox.join("C9_2_f445801e.sm4")).unwrap();
    let outer: Manifest =
        serde_json::from_slice(&std::fs::read(outbox.join("C9_2_f445801e.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(outer.file, "C9_2_f445801e.sm4");
    assert_eq!(outer.sha256, sha256(&sealed));
    assert!(
        !sealed.windows(4).any(|w| w == b"form"),
        "package is encrypted"
    );
    let entries = package::open_package(&Sm4Key::from_hex(SM4_KEY).unwrap(), &sealed).unwrap();
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "C9_2_f445801e.xml",
            "C9_2_f445801e.m1.jpg",
            "C9_2_f445801e.m2.bin",
            "C9_2_f445801e.manifest.json"
        ]
    );
    assert_eq!(entries[0].1, req.payload.body.as_ref());
    let inner: Manifest = serde_json::from_slice(&entries[3].1).unwrap();
    assert_eq!(inner.file, "C9_2_f445801e.xml");
    assert_eq!(inner.sha256, sha256(&req.payload.body));
    assert_eq!(inner.materials, outer.materials);
    assert_eq!(inner.materials[1].sha256, sha256(b"form"));
    assert_eq!(entries[2].1, b"form");
}

#[tokio::test]
async fn find_by_key_sees_the_latest_manifest_with_that_key() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = build(tmp.path(), "");
    let deliver = adapter.as_deliver().unwrap();
    assert_eq!(deliver.find_by_key("k1k1k1k1-0001").await.unwrap(), None);
    for attempt in [1, 2] {
        let outcome = deliver
            .deliver(&request("C1", attempt, "k1k1k1k1-0001", Vec::new()))
            .await;
        assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    }
    // Same key prefix, different key: must not be confused.
    deliver
        .deliver(&request("C1", 3, "k1k1k1k1-9999", Vec::new()))
        .await;
    let found = deliver.find_by_key("k1k1k1k1-0001").await.unwrap().unwrap();
    assert_eq!(found.receipt_number.as_deref(), Some("C1_2_44ebc764"));
    assert_eq!(deliver.find_by_key("k1k1k1k1-0002").await.unwrap(), None);
}

/// Look-ups by key list only the names they want; folders are regular files only, and a folder
/// that does not exist lists empty.
#[tokio::test]
async fn list_matching_keeps_only_wanted_regular_files() {
    let tmp = tempfile::tempdir().unwrap();
    let outbox = tmp.path().join("outbox");
    std::fs::create_dir_all(outbox.join("C3_1_k1.manifest.json")).unwrap();
    for (name, data) in [
        ("C1_1_k1.manifest.json", "{}"),
        ("C1_2_k1.manifest.json", "{ }"),
        ("C1_1_k1.xml", "<a/>"),
        ("C2_1_k2.manifest.json", "{}"),
    ] {
        std::fs::write(outbox.join(name), data).unwrap();
    }
    let folders = LocalFolders::new(tmp.path());
    let found = folders
        .list_matching("outbox", "_k1", ".manifest.json")
        .await
        .unwrap();
    assert_eq!(
        found,
        [
            Entry {
                name: "C1_1_k1.manifest.json".to_owned(),
                size: 2
            },
            Entry {
                name: "C1_2_k1.manifest.json".to_owned(),
                size: 3
            },
        ]
    );
    assert_eq!(folders.list("outbox").await.unwrap().len(), 4);
    assert!(
        folders
            .list_matching("absent", "", "")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn io_errors_retry_and_bad_materials_reject() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = build(tmp.path(), "");
    let deliver = adapter.as_deliver().unwrap();
    // The outbox became a regular file: writes fail like on a broken or full disk.
    let outbox = tmp.path().join("files/outbox");
    std::fs::remove_dir(&outbox).unwrap();
    std::fs::write(&outbox, b"not a folder").unwrap();
    let outcome = deliver
        .deliver(&request("C1", 1, "abcdefgh1", Vec::new()))
        .await;
    assert!(
        matches!(outcome, DeliveryOutcome::Retry { .. }),
        "{outcome:?}"
    );
    std::fs::remove_file(&outbox).unwrap();

    let mut m = material(tmp.path(), "a.pdf", "a", b"original");
    m.sha256 = sha256(b"something else");
    let outcome = deliver
        .deliver(&request("C1", 1, "abcdefgh1", vec![m]))
        .await;
    let DeliveryOutcome::Rejected { reason, .. } = outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert!(reason.contains("changed since intake"), "{reason}");
    let mut missing = material(tmp.path(), "b.pdf", "b", b"x");
    missing.path = tmp.path().join("gone.pdf");
    let outcome = deliver
        .deliver(&request("C1", 1, "abcdefgh1", vec![missing]))
        .await;
    assert!(
        matches!(outcome, DeliveryOutcome::Rejected { .. }),
        "{outcome:?}"
    );
    assert!(
        !outbox.exists() || files(&outbox).is_empty(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn secrets_and_personal_data_stay_out_of_logs() {
    let logs = LogCapture::global();
    let tmp = tempfile::tempdir().unwrap();
    let adapter = build(
        tmp.path(),
        "package = \"sm4-zip\"\npackage_key = { file = \"L05.sm4\" }\n",
    );
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("C1", 1, "abcdefgh-1", Vec::new()))
        .await;
    assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    let text = logs.text();
    assert!(text.contains("delivery written to outbox"), "logs: {text}");
    assert!(!text.contains(ID_NUMBER) && !text.contains(SM4_KEY) && !text.contains("张三"));
    assert!(!format!("{adapter:?}").contains(SM4_KEY));
}

#[test]
fn bad_settings_are_located_errors() {
    let registry = AdapterRegistry::builtin();
    let cases = [
        ("outbox = \"../escape\"\n", "adapter.settings.outbox"),
        ("outbox = \"/abs\"\n", "adapter.settings.outbox"),
        (
            "receipt_charset = \"klingon\"\n",
            "adapter.settings.receipt_charset",
        ),
        ("package = \"sm4-zip\"\n", "adapter.settings.package_key"),
        ("transport = \"sftp\"\n", "adapter.settings.host"),
        (
            "transport = \"sftp\"\nhost = \"h\"\nusername = \"u\"\nprivate_key = { file = \"k\" }\nknown_host_key = \"ssh-ed25519 !!!\"\n",
            "adapter.settings.known_host_key",
        ),
        ("host = \"h\"\n", "adapter.settings.host"),
        ("outboxx = \"x\"\n", "unknown field"),
    ];
    for (settings, expected) in cases {
        let text = format!("[adapter]\nkind = \"file\"\n[adapter.settings]\n{settings}");
        let errors = registry.validate(SettingsSource {
            path: Path::new("L05.toml"),
            text: &text,
        });
        assert!(!errors.is_empty(), "{settings}");
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            all.iter().any(|e| e.contains(expected)),
            "{settings}: {all:?}"
        );
        assert!(errors.iter().all(|e| e.line >= 1));
    }
    let ok = "[adapter]\nkind = \"file\"\n[adapter.settings]\ntransport = \"local\"\n";
    assert!(
        registry
            .validate(SettingsSource {
                path: Path::new("x"),
                text: ok
            })
            .is_empty()
    );
}

#[test]
fn a_missing_package_key_fails_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "[adapter]\nkind = \"file\"\n[adapter.settings]\npackage = \"sm4-zip\"\npackage_key = { file = \"missing.key\" }\n";
    let err = AdapterRegistry::builtin()
        .build(
            &ctx("L05", tmp.path(), tmp.path()),
            SettingsSource {
                path: Path::new("x"),
                text,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("package_key"), "{err}");
}

#[tokio::test]
async fn a_part_file_left_by_an_attempt_cut_short_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let folders = LocalFolders::new(tmp.path());
    std::fs::create_dir_all(tmp.path().join("outbox")).unwrap();
    std::fs::write(tmp.path().join("outbox/a.xml.part"), b"<half").unwrap();
    folders
        .write_atomic("outbox", "a.xml", b"<whole/>")
        .await
        .unwrap();
    assert_eq!(files(&tmp.path().join("outbox")), ["a.xml"]);
    assert_eq!(
        std::fs::read(tmp.path().join("outbox/a.xml")).unwrap(),
        b"<whole/>"
    );
    // A fresh name needs no clean-up.
    folders
        .write_atomic("outbox", "b.xml", b"<b/>")
        .await
        .unwrap();
    assert_eq!(files(&tmp.path().join("outbox")), ["a.xml", "b.xml"]);
}
