//! The `jump` kind: tickets issued, redeemed once, for HMAC-SHA256 and HMAC-SM3; callbacks;
//! settings; logs; the ledger; and independent signature vectors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::SignedDuration;
use support::jump_line::{KEY, Line, build, now, redeem};
use support::{LogCapture, ctx};
use yimen_adapters::jump::{
    CALLBACK_PATH, InMemoryTicketLedger, JumpError, REDEEM_PATH, SignedRequest, request_system,
};
use yimen_adapters::{AdapterRegistry, SettingsSource};
async fn happy_path(algorithm: &str) {
    let adapter = build("T01", KEY, algorithm);
    let jump = adapter.as_jump().unwrap();
    assert_eq!(jump.system_id(), "T01");
    let issued = jump.issue("dlv-42", now()).unwrap();
    assert_eq!(issued.expires_at, now() + SignedDuration::from_secs(300));
    let url = issued.entry_url.as_str();
    assert!(
        url.starts_with("http://127.0.0.1:9/T01/portal/jump?ticket="),
        "{url}"
    );
    assert!(url.ends_with(&issued.ticket));
    // The claims hold ids and times only.
    let claims = issued.ticket.split('.').next().unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let keys: Vec<&String> = claims.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["v", "sys", "dlv", "exp", "nonce"]);
    assert_eq!(claims["dlv"], "dlv-42");
    assert_eq!(claims["exp"], 1_764_300_300);

    let line = Line::new("T01", KEY, algorithm);
    let ledger = InMemoryTicketLedger::new();
    let at = now() + SignedDuration::from_secs(299);
    let redemption = redeem(jump, &line, &ledger, "T01", &issued.ticket, at)
        .await
        .unwrap();
    assert_eq!(redemption.delivery_id, "dlv-42");
    assert_eq!(redemption.expires_at, issued.expires_at);
    // Single use.
    let again = redeem(jump, &line, &ledger, "T01", &issued.ticket, at)
        .await
        .unwrap_err();
    assert_eq!(again, JumpError::Replayed);
    assert_eq!(again.http_status(), 409);
}

#[tokio::test]
async fn hmac_sha256_tickets_redeem_once() {
    happy_path("hmac-sha256").await;
}

#[tokio::test]
async fn hmac_sm3_tickets_redeem_once() {
    happy_path("hmac-sm3").await;
}

#[tokio::test]
async fn concurrent_redemptions_of_one_ticket_succeed_once() {
    let adapter = build("T01", KEY, "hmac-sha256");
    let ticket = adapter
        .as_jump()
        .unwrap()
        .issue("dlv-c", now())
        .unwrap()
        .ticket;
    let line = Arc::new(Line::new("T01", KEY, "hmac-sha256"));
    let ledger = Arc::new(InMemoryTicketLedger::new());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (adapter, line, ledger, ticket) = (
            adapter.clone(),
            line.clone(),
            ledger.clone(),
            ticket.clone(),
        );
        tasks.push(tokio::spawn(async move {
            redeem(
                adapter.as_jump().unwrap(),
                &line,
                &ledger,
                "T01",
                &ticket,
                now(),
            )
            .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e, JumpError::Replayed),
        }
    }
    assert_eq!(ok, 1);
}

#[test]
fn callbacks_are_verified() {
    for algorithm in ["hmac-sha256", "hmac-sm3"] {
        let adapter = build("T01", KEY, algorithm);
        let jump = adapter.as_jump().unwrap();
        let line = Line::new("T01", KEY, algorithm);
        let body = r#"{"system":"T01","delivery":"dlv-42","line_case_no":"SZ-2026-77","status":"03","message":"已办结"}"#.as_bytes();
        let (ts, sig) = line.sign(CALLBACK_PATH, body, now());
        let request = SignedRequest {
            body,
            timestamp: &ts,
            signature: &sig,
        };
        let callback = jump.verify_callback(request, now()).unwrap();
        assert_eq!(callback.delivery, "dlv-42");
        assert_eq!(callback.line_case_no, "SZ-2026-77");
        assert_eq!(callback.message.as_deref(), Some("已办结"));
        assert_eq!(request_system(body).as_deref(), Some("T01"));

        let (ts, sig) = line.sign(REDEEM_PATH, body, now());
        let request = SignedRequest {
            body,
            timestamp: &ts,
            signature: &sig,
        };
        assert_eq!(
            jump.verify_callback(request, now()).unwrap_err(),
            JumpError::BadRequestSignature
        );
        let later = now() + SignedDuration::from_secs(1000);
        let (ts, sig) = line.sign(CALLBACK_PATH, body, now());
        let request = SignedRequest {
            body,
            timestamp: &ts,
            signature: &sig,
        };
        assert!(matches!(
            jump.verify_callback(request, later),
            Err(JumpError::StaleTimestamp(_))
        ));
        let other = br#"{"system":"T09","delivery":"d","line_case_no":"x","status":"01"}"#;
        let (ts, sig) = line.sign(CALLBACK_PATH, other, now());
        let request = SignedRequest {
            body: other,
            timestamp: &ts,
            signature: &sig,
        };
        assert!(matches!(
            jump.verify_callback(request, now()),
            Err(JumpError::CrossSystem { .. })
        ));
    }
}

#[test]
fn request_signatures_match_independent_vectors() {
    // Computed with Python's hmac + hashlib (OpenSSL SHA-256 and SM3), not with this crate.
    let body = b"{}";
    for (algorithm, expected) in [
        (
            "hmac-sha256",
            "7d7f8c5ca23dc69c0e9ca3dc7b7effc5a9cd257af361eb2de9ef70d49416f498",
        ),
        (
            "hmac-sm3",
            "37f9436ab63fe6e7e37b70138b90a49e0cae319b2edb6d459fc5afaf7eab56c6",
        ),
    ] {
        let line = Line::new("T01", KEY, algorithm);
        assert_eq!(
            line.signer.sign("POST", REDEEM_PATH, "1764300000", body),
            expected
        );
    }
}

#[tokio::test]
async fn tickets_and_keys_stay_out_of_logs() {
    let logs = LogCapture::global();
    let adapter = build("T01", KEY, "hmac-sm3");
    let jump = adapter.as_jump().unwrap();
    let issued = jump.issue("dlv-log", now()).unwrap();
    let line = Line::new("T01", KEY, "hmac-sm3");
    redeem(
        jump,
        &line,
        &InMemoryTicketLedger::new(),
        "T01",
        &issued.ticket,
        now(),
    )
    .await
    .unwrap();
    let text = logs.text();
    assert!(
        text.contains("jump ticket issued") && text.contains("jump ticket redeemed"),
        "{text}"
    );
    let mac = issued.ticket.split('.').nth(1).unwrap();
    assert!(!text.contains(KEY) && !text.contains(mac));
    assert!(!format!("{adapter:?}").contains(KEY));
    assert_eq!(adapter.kind(), "jump");
    assert!(adapter.as_deliver().is_none());
}

#[test]
fn bad_jump_settings_are_located_errors() {
    let registry = AdapterRegistry::builtin();
    for (settings, expected) in [
        (
            "entry_path = \"jump\"\nkey = { env = \"K\" }\n",
            "entry_path",
        ),
        (
            "entry_path = \"/j?x=1\"\nkey = { env = \"K\" }\n",
            "entry_path",
        ),
        (
            "ticket_ttl_seconds = 0\nkey = { env = \"K\" }\n",
            "ticket_ttl_seconds",
        ),
        (
            "ticket_ttl_seconds = 86400\nkey = { env = \"K\" }\n",
            "ticket_ttl_seconds",
        ),
        (
            "algorithm = \"md5\"\nkey = { env = \"K\" }\n",
            "unknown variant `md5`",
        ),
        ("key = {}\n", "adapter.settings.key"),
        ("entry_path = \"/jump\"\n", "key"),
    ] {
        let text = format!("[adapter]\nkind = \"jump\"\n[adapter.settings]\n{settings}");
        let errors = registry.validate(SettingsSource {
            path: Path::new("T01.toml"),
            text: &text,
        });
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            all.iter().any(|e| e.contains(expected)),
            "{settings}: {all:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let text = "[adapter]\nkind = \"jump\"\n[adapter.settings]\nkey = { file = \"absent.key\" }\n";
    let err = registry
        .build(
            &ctx("T01", dir.path(), dir.path()),
            SettingsSource {
                path: Path::new("x"),
                text,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
}

#[tokio::test]
async fn the_in_memory_ledger_forgets_only_what_can_no_longer_verify() {
    use yimen_adapters::jump::{LedgerError, TicketLedger};
    let ledger = InMemoryTicketLedger::new();
    let t0 = now();
    ledger.consume("n1", t0).await.unwrap();
    assert_eq!(ledger.consume("n1", t0).await, Err(LedgerError::Replayed));
    ledger
        .consume("n2", t0 + SignedDuration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        ledger.len(),
        2,
        "n1 may still be unexpired for a ticket expiring at t0 + 3600"
    );
    ledger
        .consume("n3", t0 + SignedDuration::from_secs(3601))
        .await
        .unwrap();
    assert_eq!(
        ledger.len(),
        2,
        "n1 expired before any ticket that can still verify was issued"
    );
}
