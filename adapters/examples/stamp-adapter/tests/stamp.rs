//! The `stamp` kind, defined in this crate, loaded from a mapping-file text through the same
//! registry as the built-ins, delivering to a real HTTP server; and it passes the conformance suite.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};
use yimen_adapters::conformance::{HttpSubject, KeyLocation, run_all};
use yimen_adapters::{
    AdapterRegistry, DeliveryOutcome, DeliveryRequest, Payload, SettingsSource, SystemContext,
};
use yimen_example_stamp_adapter::StampKind;

const KEY: &str = "stamp-dev-key-not-for-production";

const MAPPING: &str = r#"format = 1

[system]
id = "S09"
name = "电子印章存证"

[adapter]
kind = "stamp"
[adapter.limits]
request_timeout_ms = 5000
[adapter.settings]
path = "/stamps"
issuer = "hall-440604"
key = { env = "YIMEN_S09_KEY_NEVER_SET", file = "stamp.key" }

[document]
shape = "json"
charset = "utf-8"
"#;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn registry() -> AdapterRegistry {
    let mut registry = AdapterRegistry::builtin();
    registry.register_kind::<StampKind>();
    registry
}

/// Checks the stamp the way the stamp system does: signature over the stamp without it.
fn valid_stamp(request: &Request) -> bool {
    let Ok(mut stamp) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
        return false;
    };
    let Some(signature) = stamp
        .as_object_mut()
        .and_then(|o| o.remove("signature"))
        .and_then(|s| s.as_str().map(str::to_owned))
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()) else {
        return false;
    };
    mac.update(stamp.to_string().as_bytes());
    let document_hash = hex::encode(Sha256::digest(b"{\"case\":\"c-1\"}"));
    hex::decode(signature).is_ok_and(|s| mac.verify_slice(&s).is_ok())
        && stamp["sha256"] == document_hash.as_str()
        && stamp["size"] == 14
        && stamp["issuer"] == "hall-440604"
        && stamp["key"] == "key-1"
}

#[tokio::test]
async fn a_mapping_file_naming_stamp_validates_builds_and_delivers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/S09/stamps"))
        .and(header("Idempotency-Key", "key-1"))
        .and(valid_stamp)
        .respond_with(ResponseTemplate::new(201).set_body_string(r#"{"stampId":"ST-0001"}"#))
        .expect(1)
        .mount(&server)
        .await;

    let registry = registry();
    assert!(registry.known_kinds().contains(&"stamp".to_owned()));
    let file = PathBuf::from("systems/district/S09.toml");
    let source = SettingsSource {
        path: &file,
        text: MAPPING,
    };
    assert_eq!(registry.validate(source), []);
    let ctx = SystemContext {
        system_id: "S09".to_owned(),
        base_url: Url::parse(&format!("{}/S09", server.uri())).unwrap(),
        files_dir: std::env::temp_dir(),
        secrets_root: tests_dir(),
    };
    let adapter = registry.build(&ctx, source).unwrap();
    assert_eq!(adapter.kind(), "stamp");
    assert!(!format!("{adapter:?}").contains(KEY));

    let request = DeliveryRequest {
        delivery_id: "d-1".to_owned(),
        case_id: "c-1".to_owned(),
        attempt: 1,
        idempotency_key: "key-1".to_owned(),
        payload: Payload {
            content_type: "application/json".to_owned(),
            body: Bytes::from_static(b"{\"case\":\"c-1\"}"),
            extension: "json".to_owned(),
            fields: Vec::new(),
        },
        materials: Vec::new(),
    };
    let outcome = adapter.as_deliver().unwrap().deliver(&request).await;
    let DeliveryOutcome::Delivered(receipt) = outcome else {
        panic!("expected delivered, got {outcome:?}");
    };
    assert_eq!(receipt.receipt_number.as_deref(), Some("ST-0001"));
}

#[test]
fn bad_stamp_settings_are_located_in_the_mapping_file() {
    let text = MAPPING.replace(
        "issuer = \"hall-440604\"",
        "issuer = \"\"\ncolour = \"red\"",
    );
    let file = PathBuf::from("S09.toml");
    let errors = registry().validate(SettingsSource {
        path: &file,
        text: &text,
    });
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].column), (14, 1), "{}", errors[0]);
    assert!(errors[0].message.contains("colour"), "{}", errors[0]);
    let text = MAPPING.replace("issuer = \"hall-440604\"", "issuer = \" \"");
    let errors = registry().validate(SettingsSource {
        path: &file,
        text: &text,
    });
    assert_eq!(
        errors[0].to_string(),
        "S09.toml:13:1: adapter.settings.issuer: must not be empty"
    );
}

#[tokio::test]
async fn the_stamp_kind_passes_the_conformance_suite() {
    let subject = HttpSubject::new::<StampKind>("S09", MAPPING)
        .secrets_root(tests_dir())
        .secret(KEY)
        .accept(ResponseTemplate::new(201).set_body_string(r#"{"stampId":"ST-1"}"#))
        .key_at(KeyLocation::Header("Idempotency-Key"));
    run_all(&subject).await.unwrap();
}
