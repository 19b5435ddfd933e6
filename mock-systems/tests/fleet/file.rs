//! file: outbox → receipt round trips in a temp folder, refusals, sm4-zip packages, status
//! receipts over time.

use std::io::Write;
use std::path::{Path, PathBuf};

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use sha2::{Digest, Sha256};

use crate::support::*;

fn put(outbox: &Path, stem: &str, ext: &str, data: &[u8], key: &str, sha: Option<&str>) {
    std::fs::create_dir_all(outbox).unwrap();
    let file = format!("{stem}.{ext}");
    std::fs::write(outbox.join(format!("{file}.part")), data).unwrap();
    std::fs::rename(outbox.join(format!("{file}.part")), outbox.join(&file)).unwrap();
    let sha = sha
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(Sha256::digest(data)));
    let manifest = serde_json::json!({
        "file": file, "sha256": sha, "size": data.len(), "idempotency_key": key,
        "case_id": "case-1", "materials": []
    });
    std::fs::write(
        outbox.join(format!("{stem}.manifest.json")),
        manifest.to_string(),
    )
    .unwrap();
}

fn read_receipt(path: &PathBuf) -> String {
    let bytes = std::fs::read(path).unwrap();
    let (text, _, errors) = encoding_rs::GB18030.decode(&bytes);
    assert!(!errors);
    text.into_owned()
}

fn tag<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
    let end = xml.find(&format!("</{name}>")).unwrap();
    &xml[start..end]
}

const DOC: &str = "<?xml version=\"1.0\" encoding=\"GB18030\"?><GJJ><XM>䶮</XM></GJJ>";

#[tokio::test]
async fn plain_file_round_trip_with_status_receipts() {
    let fleet = start_with(Options {
        pace: 0.02,
        ..Options::default()
    })
    .await;
    let dir = fleet.files.path().join("F01");
    let doc = encoding_rs::GB18030.encode(DOC).0.into_owned();
    put(
        &dir.join("outbox"),
        "case-1_1_abcd1234",
        "xml",
        &doc,
        "key-1",
        None,
    );
    let first = dir.join("inbox/case-1_1_abcd1234.receipt.xml");
    eventually("the first receipt", || async { first.exists() }).await;
    let text = read_receipt(&first);
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"GB18030\"?>"));
    assert_eq!(tag(&text, "File"), "case-1_1_abcd1234");
    assert_eq!(tag(&text, "Key"), "key-1");
    assert_eq!(tag(&text, "StatusCode"), "01");
    let receipt_no = tag(&text, "ReceiptNo").to_owned();
    assert!(receipt_no.starts_with("F01-"));
    let last = dir.join("inbox/case-1_1_abcd1234.4.receipt.xml");
    eventually("the approval receipt", || async { last.exists() }).await;
    let text = read_receipt(&last);
    assert_eq!(tag(&text, "StatusCode"), "09");
    assert_eq!(tag(&text, "ReceiptNo"), receipt_no);
    assert!(
        dir.join("outbox/case-1_1_abcd1234.manifest.json").exists(),
        "taken files stay in the outbox"
    );
    assert!(dir.join(".taken/case-1_1_abcd1234.manifest.json").exists());
    let docs = fleet.received("F01").await;
    assert_eq!(docs[0]["body"], DOC, "decoded from GB18030");

    put(
        &dir.join("outbox"),
        "case-1_2_abcd1234",
        "xml",
        &doc,
        "key-1",
        None,
    );
    let again = dir.join("inbox/case-1_2_abcd1234.receipt.xml");
    eventually("the duplicate's receipt", || async { again.exists() }).await;
    assert_eq!(tag(&read_receipt(&again), "ReceiptNo"), receipt_no);
    let stats = fleet.stats("F01").await;
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["duplicates"], 1);
}

#[tokio::test]
async fn a_bad_hash_gets_a_refusal_receipt() {
    let fleet = start().await;
    let dir = fleet.files.path().join("F01");
    put(
        &dir.join("outbox"),
        "bad_1_00000000",
        "xml",
        DOC.as_bytes(),
        "key-bad",
        Some(&"0".repeat(64)),
    );
    let receipt = dir.join("inbox/bad_1_00000000.receipt.xml");
    eventually("the refusal receipt", || async { receipt.exists() }).await;
    let text = read_receipt(&receipt);
    assert_eq!(tag(&text, "StatusCode"), "10");
    assert!(tag(&text, "Message").contains("SHA-256"));
    assert_eq!(fleet.stats("F01").await["rejected"], 1);
}

fn sm4_zip(document: &[u8], key_hex: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("case-9.xml", options).unwrap();
    zip.write_all(document).unwrap();
    zip.start_file("material-1.pdf", options).unwrap();
    zip.write_all(b"%PDF-1.4 test").unwrap();
    zip.start_file("manifest.json", options).unwrap();
    zip.write_all(br#"{"file":"case-9.xml","materials":[{"name":"material-1.pdf"}]}"#)
        .unwrap();
    let plain = zip.finish().unwrap().into_inner();
    let key = hex::decode(key_hex).unwrap();
    let iv = [7u8; 16];
    let ciphertext = cbc::Encryptor::<sm4::Sm4>::new_from_slices(&key, &iv)
        .unwrap()
        .encrypt_padded_vec_mut::<Pkcs7>(&plain);
    [iv.to_vec(), ciphertext].concat()
}

#[tokio::test]
async fn sm4_zip_packages_are_decrypted() {
    let fleet = start().await;
    let dir = fleet.files.path().join("F02");
    let doc = "<Licence><Holder>佛山市禅城区一门科技有限公司</Holder></Licence>";
    let package = sm4_zip(doc.as_bytes(), &secret("F02.sm4"));
    put(
        &dir.join("send"),
        "case-9_1_feedbeef",
        "zip.sm4",
        &package,
        "key-9",
        None,
    );
    let receipt = dir.join("recv/case-9_1_feedbeef.receipt.xml");
    eventually("the package receipt", || async { receipt.exists() }).await;
    let text = String::from_utf8(std::fs::read(&receipt).unwrap()).unwrap();
    assert!(text.contains("encoding=\"UTF-8\""));
    assert_eq!(tag(&text, "StatusCode"), "01");
    assert_eq!(fleet.received("F02").await[0]["body"], doc);

    let wrong = sm4_zip(doc.as_bytes(), "00112233445566778899aabbccddeeff");
    put(
        &dir.join("send"),
        "case-9_2_feedbeef",
        "zip.sm4",
        &wrong,
        "key-10",
        None,
    );
    let refusal = dir.join("recv/case-9_2_feedbeef.receipt.xml");
    eventually("the refusal for a wrong key", || async { refusal.exists() }).await;
    let text = String::from_utf8(std::fs::read(&refusal).unwrap()).unwrap();
    assert_eq!(tag(&text, "StatusCode"), "10");
}

#[tokio::test]
async fn missing_and_slow_receipts() {
    let fleet = start().await;
    let dir = fleet.files.path().join("F01");
    let doc = encoding_rs::GB18030.encode(DOC).0.into_owned();
    fleet
        .fault(
            "F01",
            serde_json::json!({"missing_receipts": true, "times": 1}),
        )
        .await;
    put(
        &dir.join("outbox"),
        "m_1_11111111",
        "xml",
        &doc,
        "key-m",
        None,
    );
    eventually("the file is taken", || async {
        fleet.stats("F01").await["received"] == 1
    })
    .await;
    assert!(!dir.join("inbox/m_1_11111111.receipt.xml").exists());
    assert_eq!(fleet.stats("F01").await["faults_injected"], 1);

    fleet
        .fault("F01", serde_json::json!({"slow_receipts_ms": 300}))
        .await;
    let started = std::time::Instant::now();
    put(
        &dir.join("outbox"),
        "s_1_22222222",
        "xml",
        &doc,
        "key-s",
        None,
    );
    let receipt = dir.join("inbox/s_1_22222222.receipt.xml");
    eventually("the slow receipt", || async { receipt.exists() }).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn gb18030_receipts_for_a_utf8_system() {
    let fleet = start().await;
    fleet
        .fault(
            "F02",
            serde_json::json!({"gb18030_bodies": true, "times": 1}),
        )
        .await;
    let dir = fleet.files.path().join("F02");
    let package = sm4_zip(
        "<Licence><Holder>䶮</Holder></Licence>".as_bytes(),
        &secret("F02.sm4"),
    );
    put(
        &dir.join("send"),
        "g_1_33333333",
        "sm4",
        &package,
        "key-g",
        None,
    );
    let receipt = dir.join("recv/g_1_33333333.receipt.xml");
    eventually("the receipt", || async { receipt.exists() }).await;
    let bytes = std::fs::read(&receipt).unwrap();
    assert!(String::from_utf8(bytes.clone()).is_err(), "not UTF-8");
    let text = read_receipt(&receipt);
    assert!(text.contains("encoding=\"GB18030\""));
    assert_eq!(tag(&text, "Message"), "已受理");
}
