//! A jump line system's side for the tests: builds jump adapters from mapping text and signs
//! requests the way PROTOCOLS.md says.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use jiff::Timestamp;
use yimen_adapters::jump::{
    InMemoryTicketLedger, JumpAdapter, JumpError, REDEEM_PATH, SignedRequest,
};
use yimen_adapters::{Adapter, AdapterRegistry, IssueJumpTickets, SettingsSource};

use super::ctx;

pub const KEY: &str = "T01-dev-key";

pub fn now() -> Timestamp {
    Timestamp::from_second(1_764_300_000).unwrap()
}

pub fn build(system: &str, key: &str, algorithm: &str) -> Arc<dyn Adapter> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{system}.key")), format!("{key}\n")).unwrap();
    let text = format!(
        "[adapter]\nkind = \"jump\"\n[adapter.settings]\nentry_path = \"/portal/jump\"\n\
         algorithm = \"{algorithm}\"\nkey = {{ file = \"{system}.key\" }}\n"
    );
    AdapterRegistry::builtin()
        .build(
            &ctx(system, dir.path(), dir.path()),
            SettingsSource {
                path: Path::new("systems/T01.toml"),
                text: &text,
            },
        )
        .unwrap()
}

/// A line system's signed request, signed with `key` the way PROTOCOLS.md says.
pub struct Line {
    pub signer: JumpAdapter,
}

impl Line {
    pub fn new(system: &str, key: &str, algorithm: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), key).unwrap();
        let mut settings =
            yimen_adapters::jump::JumpSettings::new(yimen_adapters::settings::SecretRef {
                env: None,
                file: Some("k".into()),
            });
        settings.algorithm = if algorithm == "hmac-sm3" {
            yimen_adapters::jump::MacAlgorithm::HmacSm3
        } else {
            yimen_adapters::jump::MacAlgorithm::HmacSha256
        };
        let signer = JumpAdapter::build(&ctx(system, dir.path(), dir.path()), &settings).unwrap();
        Self { signer }
    }

    pub fn sign(&self, path: &str, body: &[u8], at: Timestamp) -> (String, String) {
        let ts = at.as_second().to_string();
        let sig = self.signer.sign("POST", path, &ts, body);
        (ts, sig)
    }
}

pub fn redeem_body(system: &str, ticket: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "system": system, "ticket": ticket })).unwrap()
}

pub async fn redeem(
    jump: &dyn IssueJumpTickets,
    line: &Line,
    ledger: &InMemoryTicketLedger,
    system: &str,
    ticket: &str,
    at: Timestamp,
) -> Result<yimen_adapters::jump::Redemption, JumpError> {
    let body = redeem_body(system, ticket);
    let (ts, sig) = line.sign(REDEEM_PATH, &body, at);
    let request = SignedRequest {
        body: &body,
        timestamp: &ts,
        signature: &sig,
    };
    jump.verify_redemption(request, ledger, at).await
}
