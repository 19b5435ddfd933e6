//! Receipt pickup from a local inbox: GB18030 receipts matched and archived, hostile files
//! quarantined with reasons, other deliveries' receipts left alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use support::{ctx, request};
use yimen_adapters::file::{Disposition, FileAdapter, FileSettings, Transport};
use yimen_adapters::settings::Limits;
use yimen_adapters::{Adapter, DeliveryOutcome};

fn receipt_xml(stem: &str, key: &str, status: &str, message: &str) -> Vec<u8> {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"GB18030\"?>\n<Receipt><File>{stem}</File><Key>{key}</Key>\
         <ReceiptNo>L05-20261128-000001</ReceiptNo><StatusCode>{status}</StatusCode>\
         <Message>{message}</Message></Receipt>"
    );
    encoding_rs::GB18030.encode(&text).0.into_owned()
}

async fn delivered(adapter: &FileAdapter, case: &str, key: &str) -> String {
    match adapter
        .as_deliver()
        .unwrap()
        .deliver(&request(case, 1, key, Vec::new()))
        .await
    {
        DeliveryOutcome::Delivered(r) => r.receipt_number.unwrap(),
        other => panic!("expected delivered, got {other:?}"),
    }
}

fn setup(tmp: &Path) -> Arc<FileAdapter> {
    let settings = FileSettings::new(Transport::Local);
    let ctx = ctx("L05", &tmp.join("files"), tmp);
    Arc::new(FileAdapter::build(&ctx, &Limits::default(), &settings).unwrap())
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn receipts_are_matched_reported_and_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = setup(tmp.path());
    let stem_a = delivered(&adapter, "CA", "aaaaaaaa-1").await;
    let stem_b = delivered(&adapter, "CB", "bbbbbbbb-1").await;
    let inbox = tmp.path().join("files/inbox");
    std::fs::write(
        inbox.join(format!("{stem_a}.receipt.xml")),
        receipt_xml(&stem_a, "aaaaaaaa-1", "01", "已受理"),
    )
    .unwrap();
    std::fs::write(
        inbox.join(format!("{stem_a}.1.receipt.xml")),
        receipt_xml(&stem_a, "aaaaaaaa-1", "03", "审批通过 &amp; 办结"),
    )
    .unwrap();
    std::fs::write(
        inbox.join(format!("{stem_b}.receipt.xml")),
        receipt_xml(&stem_b, "bbbbbbbb-1", "01", ""),
    )
    .unwrap();

    let reports = adapter
        .as_status()
        .unwrap()
        .query_status(std::slice::from_ref(&stem_a))
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].receipt_number, stem_a);
    assert_eq!(reports[0].raw_status, "01");
    assert_eq!(reports[0].message.as_deref(), Some("已受理"));
    assert_eq!(reports[1].raw_status, "03");
    assert_eq!(reports[1].message.as_deref(), Some("审批通过 & 办结"));
    assert!(reports[0].excerpt.contains("L05-20261128-000001"));
    // B's receipt stays for B's own poll; A's are archived.
    assert_eq!(names(&inbox), [format!("{stem_b}.receipt.xml")]);
    assert_eq!(
        names(&tmp.path().join("files/archive")),
        [
            format!("{stem_a}.1.receipt.xml"),
            format!("{stem_a}.receipt.xml")
        ]
    );
    // Nothing is reported twice.
    assert!(adapter.query_status_again(&stem_a).await.is_empty());
}

trait Again {
    async fn query_status_again(&self, stem: &str) -> Vec<yimen_adapters::StatusReport>;
}

impl Again for Arc<FileAdapter> {
    async fn query_status_again(&self, stem: &str) -> Vec<yimen_adapters::StatusReport> {
        self.as_status()
            .unwrap()
            .query_status(&[stem.to_owned()])
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn hostile_receipts_are_quarantined_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = setup(tmp.path());
    let stem = delivered(&adapter, "CQ", "qqqqqqqq-1").await;
    let inbox = tmp.path().join("files/inbox");
    let good = receipt_xml(&stem, "qqqqqqqq-1", "01", "好");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated.receipt.xml", good[..good.len() - 20].to_vec(), "truncated"),
        ("badenc.receipt.xml", b"<Receipt><File>\x81\x20</File></Receipt>".to_vec(), "not valid gb18030"),
        ("binary.receipt.xml", (0u8..=255).cycle().take(3000).collect(), ""),
        ("huge.receipt.xml", vec![b' '; 2 * 1024 * 1024], "more than"),
        (
            "dtd.receipt.xml",
            b"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;\">]><Receipt><File>&b;</File></Receipt>".to_vec(),
            "dtd",
        ),
        (
            "deep.receipt.xml",
            format!("<Receipt>{}</Receipt>", "<a>".repeat(100)).into_bytes(),
            "nested deeper",
        ),
        ("wrongkey.receipt.xml", receipt_xml(&stem, "zzzzzzzz-9", "01", ""), "not a delivery"),
        ("other_1_77e3459c.receipt.xml", receipt_xml("other_1_77e3459c", "abcdefgh-1", "01", ""), ""),
        ("notes.txt", b"hello".to_vec(), "does not end in .receipt.xml"),
        ("empty.receipt.xml", Vec::new(), "no <receipt>"),
        ("noroot.receipt.xml", b"<Other/>".to_vec(), "root element"),
        ("nostatus.receipt.xml", encoding_rs::GB18030.encode(&format!("<Receipt><File>{stem}</File><Key>qqqqqqqq-1</Key></Receipt>")).0.into_owned(), "statuscode"),
    ];
    for (name, data, _) in &cases {
        std::fs::write(inbox.join(name), data).unwrap();
    }
    std::fs::write(inbox.join("writing.receipt.xml.part"), b"<Rec").unwrap();
    let scanner = adapter.receipt_scanner();
    // The hub's matcher: only the stems it knows; "other_1_77e3459c" is unknown.
    let known = stem.clone();
    let select = move |r: &yimen_adapters::file::FileReceipt| {
        if r.stem == known {
            Disposition::Take
        } else {
            Disposition::Unmatched(format!("no delivery {}", r.stem))
        }
    };
    let summary = scanner.scan(&select).await.unwrap();
    assert!(summary.taken.is_empty(), "{:?}", summary.taken);
    assert_eq!(summary.quarantined.len(), cases.len());
    assert_eq!(summary.left, 1, "the .part file is still being written");
    let quarantine = tmp.path().join("files/quarantine");
    for (name, _, expected) in &cases {
        let reason = std::fs::read_to_string(quarantine.join(format!("{name}.reason"))).unwrap();
        assert!(reason.to_lowercase().contains(expected), "{name}: {reason}");
        assert!(quarantine.join(name).exists());
    }
    assert_eq!(names(&inbox), ["writing.receipt.xml.part"]);
    // The same name quarantined again keeps both files.
    std::fs::write(inbox.join("notes.txt"), b"again").unwrap();
    scanner.scan(&select).await.unwrap();
    assert_eq!(
        names(&quarantine)
            .iter()
            .filter(|n| n.starts_with("notes.txt"))
            .count(),
        4
    );
}

#[tokio::test]
async fn utf8_receipts_are_read_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = FileSettings::new(Transport::Local);
    settings.receipt_charset = "utf-8".to_owned();
    let ctx = ctx("L06", &tmp.path().join("files"), tmp.path());
    let adapter = FileAdapter::build(&ctx, &Limits::default(), &settings).unwrap();
    let stem = delivered(&adapter, "CU", "uuuuuuuu-1").await;
    let text = format!(
        "\u{feff}<Receipt><File>{stem}</File><Key>uuuuuuuu-1</Key><StatusCode>02</StatusCode><Message><![CDATA[补正 <材料>]]></Message></Receipt>"
    );
    std::fs::write(
        tmp.path().join(format!("files/inbox/{stem}.receipt.xml")),
        text,
    )
    .unwrap();
    let reports = adapter
        .as_status()
        .unwrap()
        .query_status(&[stem])
        .await
        .unwrap();
    assert_eq!(reports[0].message.as_deref(), Some("补正 <材料>"));
}

#[tokio::test]
async fn refusals_without_a_key_are_reported_by_stem() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = setup(tmp.path());
    let stem = delivered(&adapter, "CR", "rrrrrrrr-1").await;
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?><Receipt><File>{stem}</File><Key></Key>\
         <ReceiptNo></ReceiptNo><StatusCode>99</StatusCode><Message>清单无法读取</Message></Receipt>"
    );
    let inbox = tmp.path().join("files/inbox");
    std::fs::write(
        inbox.join(format!("{stem}.receipt.xml")),
        encoding_rs::GB18030.encode(&text).0,
    )
    .unwrap();
    // Without a key the stem must still look like one of ours.
    std::fs::write(
        inbox.join("x.receipt.xml"),
        "<Receipt><File>x</File><StatusCode>99</StatusCode></Receipt>",
    )
    .unwrap();
    let reports = adapter
        .as_status()
        .unwrap()
        .query_status(std::slice::from_ref(&stem))
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].raw_status, "99");
    assert_eq!(reports[0].message.as_deref(), Some("清单无法读取"));
    assert!(
        tmp.path()
            .join("files/quarantine/x.receipt.xml.reason")
            .exists()
    );
}

#[tokio::test]
async fn find_by_key_falls_back_to_receipts_when_the_outbox_was_emptied() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = setup(tmp.path());
    let stem = delivered(&adapter, "CF", "ffffffff-1").await;
    // The 前置机 moved the delivery away (to a folder of its own) and answered.
    let outbox = tmp.path().join("files/outbox");
    for entry in std::fs::read_dir(&outbox).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let deliver = adapter.as_deliver().unwrap();
    assert_eq!(deliver.find_by_key("ffffffff-1").await.unwrap(), None);
    std::fs::write(
        tmp.path().join(format!("files/inbox/{stem}.receipt.xml")),
        receipt_xml(&stem, "ffffffff-1", "01", "已受理"),
    )
    .unwrap();
    let found = deliver.find_by_key("ffffffff-1").await.unwrap().unwrap();
    assert_eq!(found.receipt_number.as_deref(), Some(stem.as_str()));
    assert_eq!(found.raw_status.as_deref(), Some("01"));
    assert_eq!(deliver.find_by_key("ffffffff-2").await.unwrap(), None);
    assert_eq!(
        names(&tmp.path().join("files/inbox")).len(),
        1,
        "nothing moved"
    );
}

#[tokio::test]
async fn a_gb18030_receipt_is_read_on_a_utf8_system_when_it_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = FileSettings::new(Transport::Local);
    settings.receipt_charset = "utf-8".to_owned();
    let ctx = ctx("L08", &tmp.path().join("files"), tmp.path());
    let adapter = FileAdapter::build(&ctx, &Limits::default(), &settings).unwrap();
    let stem = delivered(&adapter, "CG", "gggggggg-1").await;
    let bytes = receipt_xml(&stem, "gggggggg-1", "01", "已受理䶮");
    assert!(String::from_utf8(bytes.clone()).is_err());
    std::fs::write(
        tmp.path().join(format!("files/inbox/{stem}.receipt.xml")),
        bytes,
    )
    .unwrap();
    let reports = adapter
        .as_status()
        .unwrap()
        .query_status(&[stem])
        .await
        .unwrap();
    assert_eq!(reports[0].message.as_deref(), Some("已受理䶮"));
}
