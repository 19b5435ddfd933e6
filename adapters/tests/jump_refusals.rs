//! The `jump` kind refuses every bad redemption with its own error (and HTTP status), for
//! HMAC-SHA256 and HMAC-SM3: expired, forged, other system's, bad request signature, stale
//! timestamp, malformed body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::SignedDuration;
use support::jump_line::{KEY, Line, build, now, redeem, redeem_body};
use yimen_adapters::jump::{
    CALLBACK_PATH, InMemoryTicketLedger, JumpError, REDEEM_PATH, SignedRequest,
};

#[tokio::test]
async fn every_refusal_has_its_own_error() {
    for algorithm in ["hmac-sha256", "hmac-sm3"] {
        let adapter = build("T01", KEY, algorithm);
        let jump = adapter.as_jump().unwrap();
        let line = Line::new("T01", KEY, algorithm);
        let ledger = InMemoryTicketLedger::new();
        let ticket = jump.issue("dlv-1", now()).unwrap().ticket;

        // Expired: at the expiry second and after.
        let late = now() + SignedDuration::from_secs(300);
        let err = redeem(jump, &line, &ledger, "T01", &ticket, late)
            .await
            .unwrap_err();
        assert_eq!((err.clone(), err.http_status()), (JumpError::Expired, 410));

        // Forged: a changed MAC, changed claims under the old MAC, garbage.
        let (claims, mac) = ticket.split_once('.').unwrap();
        let mut bad_mac = URL_SAFE_NO_PAD.decode(mac).unwrap();
        bad_mac[0] ^= 1;
        let forged = format!("{claims}.{}", URL_SAFE_NO_PAD.encode(bad_mac));
        let mut json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        json["dlv"] = "dlv-other".into();
        let swapped = format!(
            "{}.{mac}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap())
        );
        for bad in [
            forged.as_str(),
            swapped.as_str(),
            "garbage",
            "a.b",
            "",
            &"x".repeat(5000),
        ] {
            let err = redeem(jump, &line, &ledger, "T01", bad, now())
                .await
                .unwrap_err();
            assert_eq!(
                (err.clone(), err.http_status()),
                (JumpError::Forged, 401),
                "{bad:.40}"
            );
        }

        // Cross-system: a ticket of T02 (its own key) presented for T01, and a body naming T02.
        let other = build("T02", "T02-other-key", algorithm);
        let foreign = other
            .as_jump()
            .unwrap()
            .issue("dlv-9", now())
            .unwrap()
            .ticket;
        let err = redeem(jump, &line, &ledger, "T01", &foreign, now())
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);
        assert!(
            matches!(err, JumpError::CrossSystem { ref ticket_system } if ticket_system == "T02")
        );
        let err = redeem(jump, &line, &ledger, "T02", &ticket, now())
            .await
            .unwrap_err();
        assert!(matches!(err, JumpError::CrossSystem { .. }));

        // Bad request signature: another key, or a body other than the one signed.
        let impostor = Line::new("T01", "not-the-key", algorithm);
        let err = redeem(jump, &impostor, &ledger, "T01", &ticket, now())
            .await
            .unwrap_err();
        assert_eq!(
            (err.clone(), err.http_status()),
            (JumpError::BadRequestSignature, 401)
        );
        let body = redeem_body("T01", &ticket);
        let (ts, sig) = line.sign(REDEEM_PATH, b"{}", now());
        let request = SignedRequest {
            body: &body,
            timestamp: &ts,
            signature: &sig,
        };
        assert_eq!(
            jump.verify_redemption(request, &ledger, now())
                .await
                .unwrap_err(),
            JumpError::BadRequestSignature
        );
        let request = SignedRequest {
            body: &body,
            timestamp: &ts,
            signature: "not hex",
        };
        assert_eq!(
            jump.verify_redemption(request, &ledger, now())
                .await
                .unwrap_err(),
            JumpError::BadRequestSignature
        );
        // Signed for the callback path, replayed against redemption.
        let (ts, sig) = line.sign(CALLBACK_PATH, &body, now());
        let request = SignedRequest {
            body: &body,
            timestamp: &ts,
            signature: &sig,
        };
        assert_eq!(
            jump.verify_redemption(request, &ledger, now())
                .await
                .unwrap_err(),
            JumpError::BadRequestSignature
        );

        // Stale timestamp: more than 300 s either way, missing, or not a number.
        for skew in [-301, 301] {
            let at = now() + SignedDuration::from_secs(skew);
            let (ts, sig) = line.sign(REDEEM_PATH, &body, at);
            let request = SignedRequest {
                body: &body,
                timestamp: &ts,
                signature: &sig,
            };
            let err = jump
                .verify_redemption(request, &ledger, now())
                .await
                .unwrap_err();
            assert!(matches!(err, JumpError::StaleTimestamp(_)), "{skew}: {err}");
            assert_eq!(err.http_status(), 401);
        }
        for ts in ["", "yesterday"] {
            let request = SignedRequest {
                body: &body,
                timestamp: ts,
                signature: "00",
            };
            let err = jump
                .verify_redemption(request, &ledger, now())
                .await
                .unwrap_err();
            assert!(matches!(err, JumpError::StaleTimestamp(_)));
        }
        // Within the skew it works; a malformed body is its own error.
        let at = now() + SignedDuration::from_secs(-300);
        let (ts, sig) = line.sign(REDEEM_PATH, &body, at);
        let request = SignedRequest {
            body: &body,
            timestamp: &ts,
            signature: &sig,
        };
        assert!(
            jump.verify_redemption(request, &ledger, now())
                .await
                .is_ok()
        );
        let (ts, sig) = line.sign(REDEEM_PATH, b"[1,2]", now());
        let request = SignedRequest {
            body: b"[1,2]",
            timestamp: &ts,
            signature: &sig,
        };
        let err = jump
            .verify_redemption(request, &ledger, now())
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 400);
        assert_eq!(
            ledger.len(),
            1,
            "only the one good redemption consumed a nonce"
        );
    }
}
