//! Fault plans: what a system does wrong, set at run time through the admin API.
//!
//! A plan applies to every request (or outbox file) of one system. With `times` it expires after
//! that many requests; `down_for_ms` becomes an absolute `down_until` when installed. Deciding is
//! pure given the random draw, so tests of the decision need no server.

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// Which SOAP fault to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SoapFaultKind {
    /// `soap:Client` / `soap:Sender`: the caller's fault.
    Client,
    /// `soap:Server` / `soap:Receiver`: the service's fault.
    Server,
}

/// A refusal: an HTTP 4xx status and a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RejectSpec {
    /// Just a reason (status 422).
    Reason(String),
    /// Status and reason.
    Full {
        /// 4xx status code.
        #[serde(default = "default_reject_status")]
        status: u16,
        /// Why.
        reason: String,
    },
}

fn default_reject_status() -> u16 {
    422
}

impl RejectSpec {
    /// The status and reason.
    pub fn parts(&self) -> (u16, &str) {
        match self {
            Self::Reason(reason) => (422, reason),
            Self::Full { status, reason } => (*status, reason),
        }
    }
}

/// A fault plan as posted to `/_admin/faults/<id>`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// Added delay before answering, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Share of requests answered 500 (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Answer SOAP calls with this fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soap_fault: Option<SoapFaultKind>,
    /// Take the request, then never answer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub timeout: bool,
    /// Take the request, then drop the connection (TCP reset).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reset: bool,
    /// Take the request, then answer a garbage body.
    #[serde(default, skip_serializing_if = "is_false")]
    pub malformed: bool,
    /// Answer 503 (file systems: take no files) until this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_until: Option<Timestamp>,
    /// Like `down_until`, relative to when the plan is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_for_ms: Option<u64>,
    /// Encode answers in GB18030 (and say so in Content-Type).
    #[serde(default, skip_serializing_if = "is_false")]
    pub gb18030_bodies: bool,
    /// File systems: take files but write no receipts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub missing_receipts: bool,
    /// File systems: write receipts this late, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_receipts_ms: Option<u64>,
    /// Refuse requests with a 4xx (SOAP: state 2; file: a refusal receipt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<RejectSpec>,
    /// The plan expires after this many requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl FaultPlan {
    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(rate) = self.error_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err(format!("error_rate must be within 0..1, got {rate}"));
        }
        if let Some(reject) = &self.reject {
            let (status, _) = reject.parts();
            if !(400..500).contains(&status) {
                return Err(format!("reject.status must be a 4xx status, got {status}"));
            }
        }
        if self.times == Some(0) {
            return Err("times must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// What the plan does to one request, besides latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// 503, not taken.
    Down,
    /// Taken, then the connection is reset.
    Reset,
    /// Taken, then no answer ever.
    Timeout,
    /// Refused with a 4xx.
    Reject(u16, String),
    /// A SOAP fault, not taken.
    SoapFault(SoapFaultKind),
    /// 500, not taken.
    ServerError,
    /// Taken, answered with garbage.
    Malformed,
}

/// The effect of the active plan on one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Delay before answering.
    pub latency: Option<Duration>,
    /// The fault, if any.
    pub action: Option<FaultAction>,
    /// Answer in GB18030.
    pub gb18030: bool,
    /// File systems: no receipt.
    pub missing_receipts: bool,
    /// File systems: delay receipts.
    pub slow_receipts: Option<Duration>,
}

impl Applied {
    /// Whether the plan changed anything for this request.
    pub fn injected(&self) -> bool {
        *self != Self::default()
    }
}

/// An installed plan with its remaining count.
#[derive(Debug, Clone)]
pub struct ActivePlan {
    /// The plan as posted.
    pub plan: FaultPlan,
    /// End of the downtime window, resolved at install time.
    pub down_until: Option<Timestamp>,
    /// Requests left before the plan expires.
    pub remaining: Option<u32>,
}

impl ActivePlan {
    /// Installs `plan` at `now`.
    pub fn install(plan: FaultPlan, now: Timestamp) -> Self {
        let relative = plan
            .down_for_ms
            .and_then(|ms| now.checked_add(Duration::from_millis(ms)).ok());
        let down_until = match (plan.down_until, relative) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Self {
            remaining: plan.times,
            plan,
            down_until,
        }
    }

    /// Decides what happens to one request; returns whether the plan is now used up.
    pub fn decide(&mut self, now: Timestamp, rng: &mut StdRng) -> (Applied, bool) {
        let plan = &self.plan;
        let action = if self.down_until.is_some_and(|until| now < until) {
            Some(FaultAction::Down)
        } else if plan.reset {
            Some(FaultAction::Reset)
        } else if plan.timeout {
            Some(FaultAction::Timeout)
        } else if let Some(reject) = &plan.reject {
            let (status, reason) = reject.parts();
            Some(FaultAction::Reject(status, reason.to_owned()))
        } else if let Some(kind) = plan.soap_fault {
            Some(FaultAction::SoapFault(kind))
        } else if plan
            .error_rate
            .is_some_and(|rate| rng.random::<f64>() < rate)
        {
            Some(FaultAction::ServerError)
        } else if plan.malformed {
            Some(FaultAction::Malformed)
        } else {
            None
        };
        let applied = Applied {
            latency: plan.latency_ms.map(Duration::from_millis),
            action,
            gb18030: plan.gb18030_bodies,
            missing_receipts: plan.missing_receipts,
            slow_receipts: plan.slow_receipts_ms.map(Duration::from_millis),
        };
        let expired = match &mut self.remaining {
            Some(left) => {
                *left = left.saturating_sub(1);
                *left == 0
            }
            None => false,
        };
        (applied, expired)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_counted_plan_expires() {
        let plan: FaultPlan = serde_json::from_str(r#"{"reject":"材料不全","times":2}"#).unwrap();
        plan.validate().unwrap();
        let now = Timestamp::UNIX_EPOCH;
        let mut active = ActivePlan::install(plan, now);
        let mut rng = StdRng::seed_from_u64(1);
        let (first, expired) = active.decide(now, &mut rng);
        assert_eq!(
            first.action,
            Some(FaultAction::Reject(422, "材料不全".into()))
        );
        assert!(!expired);
        assert!(active.decide(now, &mut rng).1);
    }

    #[test]
    fn downtime_is_relative_to_install() {
        let plan = FaultPlan {
            down_for_ms: Some(1_000),
            ..FaultPlan::default()
        };
        let now = Timestamp::UNIX_EPOCH;
        let mut active = ActivePlan::install(plan, now);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            active.decide(now, &mut rng).0.action,
            Some(FaultAction::Down)
        );
        let later = now.checked_add(Duration::from_secs(2)).unwrap();
        assert_eq!(active.decide(later, &mut rng).0.action, None);
    }

    #[test]
    fn bad_plans_name_the_field() {
        let plan = FaultPlan {
            error_rate: Some(1.5),
            ..FaultPlan::default()
        };
        assert!(plan.validate().unwrap_err().contains("error_rate"));
        let err = serde_json::from_str::<FaultPlan>(r#"{"latency":5}"#).unwrap_err();
        assert!(err.to_string().contains("latency"));
    }
}
