//! The `file` kind over SFTP against a real OpenSSH server started by each test on 127.0.0.1:
//! uploads with manifests, receipts picked up and archived, host key pinning, outages and
//! connect timeouts classified as retries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use support::sshd::{Sshd, free_port, keygen, public_line};
use support::{ID_NUMBER, LogCapture, ctx, material, request, sha256};
use yimen_adapters::file::{Manifest, Sm4Key, package};
use yimen_adapters::{Adapter, AdapterRegistry, DeliveryOutcome, Health, SettingsSource};

fn build(mapping: &str, secrets: &Path) -> Arc<dyn Adapter> {
    AdapterRegistry::builtin()
        .build(
            &ctx("L07", &secrets.join("unused"), secrets),
            SettingsSource {
                path: Path::new("systems/L07.toml"),
                text: mapping,
            },
        )
        .unwrap()
}

fn receipt(stem: &str, key: &str, status: &str) -> Vec<u8> {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"GB18030\"?><Receipt><File>{stem}</File><Key>{key}</Key>\
         <ReceiptNo>L07-1</ReceiptNo><StatusCode>{status}</StatusCode><Message>已办结</Message></Receipt>"
    );
    encoding_rs::GB18030.encode(&text).0.into_owned()
}

#[tokio::test]
async fn upload_lands_with_manifest_and_is_found_by_key() {
    let sshd = Sshd::start().await;
    let adapter = build(&sshd.mapping(""), sshd.dir.path());
    assert_eq!(adapter.health().await, Health::Up);
    let m = material(sshd.dir.path(), "scan.png", "户口簿", b"\x89PNG scan");
    let req = request("S-1/../x", 1, "5e5e5e5e-0001", vec![m]);
    let outcome = adapter.as_deliver().unwrap().deliver(&req).await;
    let DeliveryOutcome::Delivered(receipt) = outcome else {
        panic!("expected delivered, got {outcome:?}");
    };
    let stem = "S-1-..-x_1_8a832b6e";
    assert_eq!(receipt.receipt_number.as_deref(), Some(stem));
    let outbox = sshd.root.join("outbox");
    let doc = std::fs::read(outbox.join(format!("{stem}.xml"))).unwrap();
    assert_eq!(doc, req.payload.body.as_ref());
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(outbox.join(format!("{stem}.manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.sha256, sha256(&doc));
    assert_eq!(manifest.idempotency_key, "5e5e5e5e-0001");
    assert_eq!(
        std::fs::read(outbox.join(&manifest.materials[0].file)).unwrap(),
        b"\x89PNG scan"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".part")
        })
        .collect();
    assert!(leftovers.is_empty());

    let deliver = adapter.as_deliver().unwrap();
    let found = deliver.find_by_key("5e5e5e5e-0001").await.unwrap().unwrap();
    assert_eq!(found.receipt_number.as_deref(), Some(stem));
    assert_eq!(deliver.find_by_key("5e5e5e5e-0002").await.unwrap(), None);
}

/// Look-ups by key read the folders in batches (OpenSSH sends about 100 names each) and keep
/// only matching regular files: among 1,500 other deliveries' manifests, a folder named like a
/// match, and two attempts of the delivery, the later attempt is found; an absent key is not.
#[tokio::test]
async fn look_ups_by_key_search_large_folders() {
    let sshd = Sshd::start().await;
    let outbox = sshd.root.join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    for i in 0..1_500u32 {
        let name = format!(
            "C-{i:05}_1_{:08x}.manifest.json",
            i.wrapping_mul(2_654_435_761)
        );
        std::fs::write(outbox.join(name), b"{}").unwrap();
    }
    let adapter = build(&sshd.mapping(""), sshd.dir.path());
    let deliver = adapter.as_deliver().unwrap();
    let mut stems = Vec::new();
    for attempt in [1, 2] {
        let outcome = deliver
            .deliver(&request("S-9", attempt, "9f9f9f9f-0001", vec![]))
            .await;
        let DeliveryOutcome::Delivered(receipt) = outcome else {
            panic!("expected delivered, got {outcome:?}");
        };
        stems.push(receipt.receipt_number.unwrap());
    }
    let prefix = stems[1].rsplit('_').next().unwrap();
    std::fs::create_dir(outbox.join(format!("D-1_9_{prefix}.manifest.json"))).unwrap();

    let found = deliver.find_by_key("9f9f9f9f-0001").await.unwrap().unwrap();
    assert_eq!(found.receipt_number.as_deref(), Some(stems[1].as_str()));
    assert_eq!(deliver.find_by_key("9f9f9f9f-0002").await.unwrap(), None);
}

#[tokio::test]
async fn sm4_packages_upload_over_sftp() {
    let sshd = Sshd::start().await;
    let key = "0f0e0d0c0b0a09080706050403020100";
    std::fs::write(sshd.dir.path().join("L07.sm4"), key).unwrap();
    let mapping = sshd.mapping(
        "package = \"sm4-zip\"\npackage_key = { file = \"L07.sm4\" }\noutbox = \"out/gov\"\n",
    );
    let adapter = build(&mapping, sshd.dir.path());
    let req = request("P1", 4, "abcdefgh-77", Vec::new());
    let outcome = adapter.as_deliver().unwrap().deliver(&req).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    let sealed = std::fs::read(sshd.root.join("out/gov/P1_4_7b5129d5.sm4")).unwrap();
    let entries = package::open_package(&Sm4Key::from_hex(key).unwrap(), &sealed).unwrap();
    assert_eq!(entries[0].1, req.payload.body.as_ref());
    assert!(
        sshd.root
            .join("out/gov/P1_4_7b5129d5.manifest.json")
            .exists()
    );
}

#[tokio::test]
async fn receipts_are_picked_up_archived_and_quarantined_over_sftp() {
    let sshd = Sshd::start().await;
    let adapter = build(&sshd.mapping(""), sshd.dir.path());
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("R1", 1, "r1r1r1r1-key", Vec::new()))
        .await;
    let DeliveryOutcome::Delivered(r) = outcome else {
        panic!("{outcome:?}")
    };
    let stem = r.receipt_number.unwrap();
    let inbox = sshd.root.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join(format!("{stem}.receipt.xml")),
        receipt(&stem, "r1r1r1r1-key", "05"),
    )
    .unwrap();
    std::fs::write(inbox.join("junk.receipt.xml"), b"\x00\x01\x02 binary").unwrap();
    let reports = adapter
        .as_status()
        .unwrap()
        .query_status(std::slice::from_ref(&stem))
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].raw_status, "05");
    assert_eq!(reports[0].message.as_deref(), Some("已办结"));
    assert!(
        sshd.root
            .join(format!("archive/{stem}.receipt.xml"))
            .exists()
    );
    assert!(sshd.root.join("quarantine/junk.receipt.xml").exists());
    let reason =
        std::fs::read_to_string(sshd.root.join("quarantine/junk.receipt.xml.reason")).unwrap();
    assert!(!reason.trim().is_empty());
    assert_eq!(std::fs::read_dir(&inbox).unwrap().count(), 0);
}

#[tokio::test]
async fn a_mismatched_host_key_is_refused() {
    let sshd = Sshd::start().await;
    let other = sshd.dir.path().join("other_host");
    keygen(&other);
    let pinned = public_line(&sshd.dir.path().join("other_host.pub"));
    let mapping = sshd.mapping("").replace(&sshd.host_key, &pinned);
    let adapter = build(&mapping, sshd.dir.path());
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("H1", 1, "hhhhhhhh", Vec::new()))
        .await;
    let DeliveryOutcome::Rejected { reason, .. } = outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert!(reason.contains("host key"), "{reason}");
    assert!(matches!(adapter.health().await, Health::Down(_)));
    assert!(!sshd.root.join("outbox").exists(), "nothing uploaded");
}

#[tokio::test]
async fn an_unauthorised_client_key_is_refused() {
    let sshd = Sshd::start().await;
    let stranger = sshd.dir.path().join("stranger");
    keygen(&stranger);
    let mapping = sshd.mapping("").replace(
        &sshd.client_key.display().to_string(),
        &stranger.display().to_string(),
    );
    let adapter = build(&mapping, sshd.dir.path());
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("A1", 1, "aaaaaaaa", Vec::new()))
        .await;
    let DeliveryOutcome::Rejected { reason, .. } = outcome else {
        panic!("expected rejected, got {outcome:?}");
    };
    assert!(reason.contains("refused key authentication"), "{reason}");
}

#[tokio::test]
async fn server_down_is_a_retry() {
    let sshd = Sshd::start().await;
    let port = free_port();
    let mapping = sshd
        .mapping("")
        .replace(&format!("port = {}", sshd.port), &format!("port = {port}"));
    let adapter = build(&mapping, sshd.dir.path());
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("D1", 1, "dddddddd", Vec::new()))
        .await;
    assert!(
        matches!(outcome, DeliveryOutcome::Retry { .. }),
        "{outcome:?}"
    );
    let status = adapter
        .as_status()
        .unwrap()
        .query_status(&["D1_1_b32914cd".to_owned()])
        .await;
    assert!(matches!(
        status,
        Err(yimen_adapters::StatusQueryError::Unavailable(_))
    ));
}

#[tokio::test]
async fn connect_timeout_is_honoured_on_a_blackhole_port() {
    // A listener that never accepts: TCP connects, the SSH banner never comes.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client");
    keygen(&key);
    let host = dir.path().join("host");
    keygen(&host);
    let mapping = format!(
        "[adapter]\nkind = \"file\"\n[adapter.limits]\nconnect_timeout_ms = 250\n[adapter.settings]\n\
         transport = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"u\"\n\
         private_key = {{ file = \"client\" }}\nknown_host_key = \"{}\"\n",
        public_line(&dir.path().join("host.pub"))
    );
    let adapter = build(&mapping, dir.path());
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("T1", 1, "tttttttt", Vec::new()))
        .await;
    let DeliveryOutcome::Retry { reason, .. } = outcome else {
        panic!("expected retry, got {outcome:?}");
    };
    assert!(reason.contains("timed out"), "{reason}");
    drop(blackhole);
}

#[tokio::test]
async fn private_keys_and_personal_data_stay_out_of_logs() {
    let logs = LogCapture::global();
    let sshd = Sshd::start().await;
    let adapter = build(&sshd.mapping(""), sshd.dir.path());
    let outcome = adapter
        .as_deliver()
        .unwrap()
        .deliver(&request("L1", 1, "llllllll", Vec::new()))
        .await;
    assert!(matches!(outcome, DeliveryOutcome::Delivered(_)));
    let key_text = std::fs::read_to_string(&sshd.client_key).unwrap();
    let key_body = key_text.lines().nth(1).unwrap();
    let text = logs.text();
    assert!(text.contains("delivery written to outbox"));
    assert!(!text.contains(key_body) && !text.contains(ID_NUMBER));
    assert!(!format!("{adapter:?}").contains(key_body));
}

#[tokio::test]
async fn the_shared_connection_is_replaced_after_the_server_restarts() {
    let mut sshd = Sshd::start().await;
    let adapter = build(&sshd.mapping(""), sshd.dir.path());
    let deliver = adapter.as_deliver().unwrap();
    for attempt in 1..=3 {
        let outcome = deliver
            .deliver(&request("W1", attempt, "wwwwwwww", Vec::new()))
            .await;
        assert!(
            matches!(outcome, DeliveryOutcome::Delivered(_)),
            "{outcome:?}"
        );
    }
    sshd.stop();
    let outcome = deliver
        .deliver(&request("W1", 4, "wwwwwwww", Vec::new()))
        .await;
    assert!(
        matches!(outcome, DeliveryOutcome::Retry { .. }),
        "{outcome:?}"
    );
    sshd.restart().await;
    let outcome = deliver
        .deliver(&request("W1", 5, "wwwwwwww", Vec::new()))
        .await;
    assert!(
        matches!(outcome, DeliveryOutcome::Delivered(_)),
        "{outcome:?}"
    );
    let outbox = sshd.root.join("outbox");
    for attempt in [1, 2, 3, 5] {
        assert!(
            outbox
                .join(format!("W1_{attempt}_67b55d55.manifest.json"))
                .exists()
        );
    }
    assert!(!outbox.join("W1_4_67b55d55.xml").exists());
}
