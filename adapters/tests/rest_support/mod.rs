//! Shared set-up of the rest tests: an adapter built through the registry against a wiremock
//! server, and a sample delivery carrying personal data.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use url::Url;
use wiremock::MockServer;
use yimen_adapters::{
    Adapter, AdapterRegistry, DeliveryRequest, Payload, SettingsSource, SystemContext,
};

/// A mapping file whose `[adapter.settings]` holds `settings` (TOML lines) and whose limits hold
/// `limits`.
pub fn mapping(limits: &str, settings: &str) -> String {
    format!(
        "format = 1\n[system]\nid = \"L01\"\n[adapter]\nkind = \"rest\"\n[adapter.limits]\n{limits}\n[adapter.settings]\n{settings}\n[document]\ncharset = \"utf-8\"\n"
    )
}

/// Builds a rest adapter for `server` (base URL `{server}/L01`) from settings lines.
pub fn adapter(server: &MockServer, settings: &str) -> Arc<dyn Adapter> {
    adapter_with_limits(server, "", settings)
}

/// Builds a rest adapter with limits lines too.
pub fn adapter_with_limits(server: &MockServer, limits: &str, settings: &str) -> Arc<dyn Adapter> {
    let text = mapping(limits, settings);
    let path = PathBuf::from("L01.toml");
    let ctx = context(&format!("{}/L01", server.uri()));
    AdapterRegistry::builtin()
        .build(
            &ctx,
            SettingsSource {
                path: &path,
                text: &text,
            },
        )
        .unwrap()
}

/// A system context whose secrets folder holds `l01.key` = `l01-dev-key`.
pub fn context(base_url: &str) -> SystemContext {
    SystemContext {
        system_id: "L01".to_owned(),
        base_url: Url::parse(base_url).unwrap(),
        files_dir: std::env::temp_dir(),
        secrets_root: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/registry-fixtures"),
    }
}

/// A delivery of a JSON document with an ID number and a phone number in it.
pub fn request(key: &str, attempt: u32) -> DeliveryRequest {
    let body = r#"{"XM":"张三","SFZH":"11010519491231002X","LXDH":"13800138000"}"#;
    DeliveryRequest {
        delivery_id: "dlv-1".to_owned(),
        case_id: "case-1".to_owned(),
        attempt,
        idempotency_key: key.to_owned(),
        payload: Payload {
            content_type: "application/json; charset=utf-8".to_owned(),
            body: Bytes::from_static(body.as_bytes()),
            extension: "json".to_owned(),
            fields: Vec::new(),
        },
        materials: Vec::new(),
    }
}

/// The deliver answer of PROTOCOLS.md.
pub fn receipt_json(receipt: &str) -> serde_json::Value {
    serde_json::json!({"code": "0", "message": "ok", "data": {"receiptNo": receipt, "status": "01"}})
}
