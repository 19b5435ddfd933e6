//! Pure decisions of status sync: whether a report moves a target, and what the case's unified
//! status is across its targets.
//!
//! # Invariants
//! - Monotonic: a target never moves to a lower [`CaseState::rank`]; `in_review` ⇄
//!   `supplement_required` may alternate; nothing follows a final state.
//! - A report whose raw code equals the last one applied is a duplicate and changes nothing.
//! - A report dated (callbacks carry `at`) before the last applied one is stale.
//! - An unknown raw code never changes the state; it is recorded and flagged.
//!
//! # Unified status of a case
//! While any target is open, the case shows its least advanced open target, except that
//! `supplement_required` anywhere shows as `supplement_required` (the applicant must act).
//! When every target is final: `approved` when all approved; `withdrawn` when all withdrawn;
//! `not_accepted` when all not accepted; `partly_rejected` when some were approved and others
//! refused (rejected or not accepted); otherwise `rejected`.

use jiff::Timestamp;
use yimen_mappings::catalog::CaseState;

/// What a report does to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target moves to this state.
    Move(CaseState),
    /// Same raw code (or same state) as already applied: ignored.
    Duplicate,
    /// Older or less advanced than what is applied: ignored.
    Stale,
    /// No mapping knows the raw code: recorded and flagged, state unchanged.
    Unknown,
}

/// The target as last applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied<'a> {
    /// Its state (`received` when nothing was reported yet).
    pub state: CaseState,
    /// The last raw code seen.
    pub raw: Option<&'a str>,
    /// When the line system dated the last applied report.
    pub reported_at: Option<Timestamp>,
}

/// Judges one report against what is applied.
pub fn judge(
    current: Applied<'_>,
    raw: &str,
    mapped: Option<CaseState>,
    reported_at: Option<Timestamp>,
) -> Verdict {
    if current.raw == Some(raw) {
        return Verdict::Duplicate;
    }
    let Some(next) = mapped else {
        return Verdict::Unknown;
    };
    if let (Some(new), Some(old)) = (reported_at, current.reported_at)
        && new < old
    {
        return Verdict::Stale;
    }
    if next == current.state && current.raw.is_none() {
        // The system's first report: recorded even though it names the starting state.
        Verdict::Move(next)
    } else if next == current.state {
        Verdict::Duplicate
    } else if next.may_follow(current.state) {
        Verdict::Move(next)
    } else {
        Verdict::Stale
    }
}

/// The unified status of a case from its targets' states (see the module doc).
pub fn aggregate(states: &[CaseState]) -> &'static str {
    let open: Vec<CaseState> = states.iter().copied().filter(|s| !s.is_final()).collect();
    if states.is_empty() {
        return CaseState::Received.as_str();
    }
    if !open.is_empty() {
        if open.contains(&CaseState::SupplementRequired) {
            return CaseState::SupplementRequired.as_str();
        }
        let least = open
            .iter()
            .copied()
            .min_by_key(|s| s.rank())
            .unwrap_or(CaseState::Received);
        return least.as_str();
    }
    let all = |state: CaseState| states.iter().all(|s| *s == state);
    for state in [
        CaseState::Approved,
        CaseState::Withdrawn,
        CaseState::NotAccepted,
    ] {
        if all(state) {
            return state.as_str();
        }
    }
    let approved = states.contains(&CaseState::Approved);
    let refused = states
        .iter()
        .any(|s| matches!(s, CaseState::Rejected | CaseState::NotAccepted));
    if approved && refused {
        "partly_rejected"
    } else if refused {
        CaseState::Rejected.as_str()
    } else {
        // Approved and withdrawn only: what was decided was granted.
        CaseState::Approved.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CaseState::*;

    fn at(raw: &'static str, state: CaseState) -> Applied<'static> {
        Applied {
            state,
            raw: Some(raw),
            reported_at: None,
        }
    }

    #[test]
    fn forward_moves_apply_and_backward_ones_are_stale() {
        assert_eq!(
            judge(at("01", Received), "02", Some(Accepted), None),
            Verdict::Move(Accepted)
        );
        assert_eq!(
            judge(at("05", Approved), "03", Some(InReview), None),
            Verdict::Stale
        );
        assert_eq!(
            judge(at("03", InReview), "02", Some(Accepted), None),
            Verdict::Stale
        );
    }

    #[test]
    fn review_and_supplement_alternate_but_not_after_a_final_state() {
        let review = at("03", InReview);
        assert_eq!(
            judge(review, "09", Some(SupplementRequired), None),
            Verdict::Move(SupplementRequired)
        );
        let supplement = at("09", SupplementRequired);
        assert_eq!(
            judge(supplement, "03", Some(InReview), None),
            Verdict::Move(InReview)
        );
        assert_eq!(
            judge(at("06", Rejected), "09", Some(SupplementRequired), None),
            Verdict::Stale
        );
    }

    #[test]
    fn duplicates_unknown_codes_and_older_reports() {
        assert_eq!(
            judge(at("03", InReview), "03", Some(InReview), None),
            Verdict::Duplicate
        );
        assert_eq!(
            judge(at("03", InReview), "3", Some(InReview), None),
            Verdict::Duplicate
        );
        assert_eq!(
            judge(at("03", InReview), "ZZ", None, None),
            Verdict::Unknown
        );
        assert_eq!(
            judge(at("ZZ", InReview), "ZZ", None, None),
            Verdict::Duplicate
        );
        let fresh = Applied {
            state: Received,
            raw: None,
            reported_at: None,
        };
        assert_eq!(
            judge(fresh, "01", Some(Received), None),
            Verdict::Move(Received)
        );
        let t = |s: i64| Timestamp::from_second(s).ok();
        let current = Applied {
            state: SupplementRequired,
            raw: Some("09"),
            reported_at: t(200),
        };
        assert_eq!(judge(current, "03", Some(InReview), t(100)), Verdict::Stale);
        assert_eq!(
            judge(current, "03", Some(InReview), t(300)),
            Verdict::Move(InReview)
        );
    }

    #[test]
    fn aggregate_across_targets() {
        assert_eq!(aggregate(&[]), "received");
        assert_eq!(aggregate(&[Accepted, InReview]), "accepted");
        assert_eq!(aggregate(&[Approved, InReview]), "in_review");
        assert_eq!(
            aggregate(&[InReview, SupplementRequired, Approved]),
            "supplement_required"
        );
        assert_eq!(aggregate(&[Approved, Approved]), "approved");
        assert_eq!(aggregate(&[Approved, Rejected]), "partly_rejected");
        assert_eq!(aggregate(&[Approved, NotAccepted]), "partly_rejected");
        assert_eq!(aggregate(&[Rejected, NotAccepted]), "rejected");
        assert_eq!(aggregate(&[NotAccepted, NotAccepted]), "not_accepted");
        assert_eq!(aggregate(&[Withdrawn, Withdrawn]), "withdrawn");
        assert_eq!(aggregate(&[Rejected, Withdrawn]), "rejected");
    }
}
