//! The conformance checks. Each sets up the scenarios it needs through the [`Subject`] and
//! reports what it found; none asserts speed (the wait on a silent line system is bounded by a
//! generous guard only so that a hang fails instead of blocking the test run).

use std::time::Duration;

use super::{
    ArrangeError, Arranged, CheckFailure, LogCapture, PERSONAL_ID, PERSONAL_PHONE, Scenario,
    Subject, sample_request,
};
use crate::adapter::Deliver;
use crate::outcome::DeliveryOutcome;
use crate::settings::Limits;

/// Limits used by the checks: short timeouts so a silent line system is noticed quickly.
pub fn short_limits() -> Limits {
    Limits {
        connect_timeout_ms: 250,
        request_timeout_ms: 500,
        ..Limits::default()
    }
}

/// Upper bound on any single call in the checks: many times the short timeouts.
const GUARD: Duration = Duration::from_secs(15);

fn failure(check: &'static str, message: impl Into<String>) -> CheckFailure {
    CheckFailure {
        check,
        message: message.into(),
    }
}

/// Arranges a scenario; `Ok(None)` when the kind cannot be put in it.
async fn arrange(
    check: &'static str,
    subject: &dyn Subject,
    scenario: Scenario,
) -> Result<Option<Arranged>, CheckFailure> {
    match subject.arrange(scenario, &short_limits()).await {
        Ok(arranged) => Ok(Some(arranged)),
        Err(ArrangeError::NotApplicable(why)) => {
            tracing::debug!(check, ?scenario, why, "scenario not applicable");
            Ok(None)
        }
        Err(ArrangeError::Failed(why)) => Err(failure(
            check,
            format!("could not arrange {scenario:?}: {why}"),
        )),
    }
}

fn deliver_of<'a>(
    check: &'static str,
    arranged: &'a Arranged,
) -> Result<&'a dyn Deliver, CheckFailure> {
    arranged
        .adapter
        .as_deliver()
        .ok_or_else(|| failure(check, "the adapter does not deliver"))
}

/// A line system that never answers: delivery ends in `Retry` or `Ambiguous`, lookups and status
/// queries end in an error, all within the configured timeouts.
pub async fn timeouts_honoured(subject: &dyn Subject) -> Result<(), CheckFailure> {
    const CHECK: &str = "timeouts honoured";
    let Some(arranged) = arrange(CHECK, subject, Scenario::Hangs).await? else {
        return Ok(());
    };
    let deliver = deliver_of(CHECK, &arranged)?;
    let request = sample_request(subject, "conformance-timeout", 1);
    let hang = |what: &str| {
        failure(
            CHECK,
            format!(
                "{what} did not end within {GUARD:?} although request_timeout_ms = {}",
                short_limits().request_timeout_ms
            ),
        )
    };
    match tokio::time::timeout(GUARD, deliver.deliver(&request)).await {
        Err(_) => return Err(hang("delivery")),
        Ok(DeliveryOutcome::Retry { .. } | DeliveryOutcome::Ambiguous { .. }) => {}
        Ok(other) => {
            return Err(failure(
                CHECK,
                format!(
                    "a silent line system gave {}, expected retry or ambiguous",
                    other.name()
                ),
            ));
        }
    }
    match tokio::time::timeout(GUARD, deliver.find_by_key(&request.idempotency_key)).await {
        Err(_) => return Err(hang("lookup by key")),
        Ok(Ok(found)) => {
            return Err(failure(
                CHECK,
                format!("a silent line system answered a lookup: {found:?}"),
            ));
        }
        Ok(Err(_)) => {}
    }
    if let Some(status) = arranged.adapter.as_status() {
        let receipts = ["R1".to_owned()];
        match tokio::time::timeout(GUARD, status.query_status(&receipts)).await {
            Err(_) => return Err(hang("status query")),
            Ok(Ok(reports)) => {
                return Err(failure(
                    CHECK,
                    format!("a silent line system answered a status query: {reports:?}"),
                ));
            }
            Ok(Err(_)) => {}
        }
    }
    Ok(())
}

/// A transient failure is `Retry`, a refusal `Rejected`, an unreachable system `Retry`.
pub async fn errors_classified(subject: &dyn Subject) -> Result<(), CheckFailure> {
    const CHECK: &str = "errors classified";
    let cases = [
        (Scenario::FailsTransiently, "retry"),
        (Scenario::Refuses, "rejected"),
        (Scenario::Unreachable, "retry"),
    ];
    for (scenario, expected) in cases {
        let Some(arranged) = arrange(CHECK, subject, scenario).await? else {
            continue;
        };
        let request = sample_request(subject, "conformance-errors", 1);
        let outcome = tokio::time::timeout(GUARD, deliver_of(CHECK, &arranged)?.deliver(&request))
            .await
            .map_err(|_| failure(CHECK, format!("{scenario:?}: delivery did not end")))?;
        if outcome.name() != expected {
            return Err(failure(
                CHECK,
                format!("{scenario:?} gave {outcome:?}, expected {expected}"),
            ));
        }
    }
    Ok(())
}

/// Every attempt carries its delivery's idempotency key; attempts of one delivery the same key.
pub async fn idempotency_key_sent(subject: &dyn Subject) -> Result<(), CheckFailure> {
    const CHECK: &str = "idempotency key sent";
    let Some(arranged) = arrange(CHECK, subject, Scenario::Accepts).await? else {
        return Err(failure(CHECK, "the Accepts scenario is required"));
    };
    let deliver = deliver_of(CHECK, &arranged)?;
    let attempts = [
        ("conformance-key-a", 1),
        ("conformance-key-a", 2),
        ("conformance-key-b", 1),
    ];
    for (key, attempt) in attempts {
        let outcome = deliver
            .deliver(&sample_request(subject, key, attempt))
            .await;
        if outcome.name() != "delivered" {
            return Err(failure(
                CHECK,
                format!("attempt {attempt} of {key} gave {outcome:?}"),
            ));
        }
    }
    let received = arranged.keys.received_keys().await;
    let expected: Vec<&str> = attempts.iter().map(|(key, _)| *key).collect();
    if received != expected {
        return Err(failure(
            CHECK,
            format!("the line system received keys {received:?}, expected {expected:?}"),
        ));
    }
    Ok(())
}

/// Across every scenario, no secret, ID number or phone number appears in any log line (all
/// levels) or in any outcome's reason or excerpt.
pub async fn secrets_and_personal_data_not_logged(
    subject: &dyn Subject,
) -> Result<(), CheckFailure> {
    const CHECK: &str = "secrets and personal data not logged";
    let logs = LogCapture::new();
    let texts = logs.capture(exercise_everything(subject)).await?;
    let logged = logs.text();
    if logged.trim().is_empty() {
        return Err(failure(
            CHECK,
            "the adapter logged nothing; outcomes must be logged",
        ));
    }
    let mut forbidden: Vec<(String, &str)> = subject
        .secrets()
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| (s, "a secret"))
        .collect();
    forbidden.push((PERSONAL_ID.to_owned(), "an ID number"));
    forbidden.push((PERSONAL_PHONE.to_owned(), "a phone number"));
    for (value, what) in &forbidden {
        if logged.contains(value.as_str()) {
            return Err(failure(CHECK, format!("{what} appears in the logs")));
        }
        if let Some(text) = texts.iter().find(|t| t.contains(value.as_str())) {
            let shown = crate::excerpt::mask(text, &[]);
            return Err(failure(
                CHECK,
                format!("{what} appears in an outcome: {shown}"),
            ));
        }
    }
    Ok(())
}

/// Runs every scenario once and returns every text an outcome or error carried.
async fn exercise_everything(subject: &dyn Subject) -> Result<Vec<String>, CheckFailure> {
    const CHECK: &str = "secrets and personal data not logged";
    let mut texts = Vec::new();
    let scenarios = [
        Scenario::Accepts,
        Scenario::Refuses,
        Scenario::FailsTransiently,
        Scenario::Unreachable,
        Scenario::Hangs,
    ];
    for scenario in scenarios {
        let Some(arranged) = arrange(CHECK, subject, scenario).await? else {
            continue;
        };
        let deliver = deliver_of(CHECK, &arranged)?;
        let request = sample_request(subject, "conformance-logs", 1);
        if let Ok(outcome) = tokio::time::timeout(GUARD, deliver.deliver(&request)).await {
            texts.push(format!("{outcome:?}"));
        }
        if let Ok(found) =
            tokio::time::timeout(GUARD, deliver.find_by_key("conformance-logs")).await
        {
            texts.push(format!("{found:?}"));
        }
        if let Some(status) = arranged.adapter.as_status()
            && let Ok(reports) =
                tokio::time::timeout(GUARD, status.query_status(&["R1".to_owned()])).await
        {
            texts.push(format!("{reports:?}"));
        }
        texts.push(format!("{:?}", arranged.adapter));
        let _ = arranged.adapter.health().await;
    }
    Ok(texts)
}
