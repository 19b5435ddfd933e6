//! The hub's case states and the order transitions move in.
//!
//! Every line system reports its own raw status codes; its mapping file's `[status]` table maps
//! them to a [`CaseState`]. Transitions are monotonic: [`CaseState::may_follow`] says whether a
//! newly reported state may replace the current one (a late `in_review` never overwrites
//! `approved`; `in_review` and `supplement_required` may alternate).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A case's (or one delivery's) state in the hub's own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Taken in by the hub, not yet acknowledged by the line system.
    Received,
    /// Accepted for handling (受理).
    Accepted,
    /// Being examined (审查/审批).
    InReview,
    /// The applicant must supply more (补正告知); the time-limit clock pauses.
    SupplementRequired,
    /// Decided in favour (准予).
    Approved,
    /// Decided against (不予许可), with reasons, legal basis and remedy.
    Rejected,
    /// Refused at intake (不予受理).
    NotAccepted,
    /// Withdrawn by the applicant (撤回).
    Withdrawn,
}

impl CaseState {
    /// Every state, in lifecycle order.
    pub const ALL: [CaseState; 8] = [
        CaseState::Received,
        CaseState::Accepted,
        CaseState::InReview,
        CaseState::SupplementRequired,
        CaseState::Approved,
        CaseState::Rejected,
        CaseState::NotAccepted,
        CaseState::Withdrawn,
    ];

    /// The state's name as written in mapping files and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Received => "received",
            CaseState::Accepted => "accepted",
            CaseState::InReview => "in_review",
            CaseState::SupplementRequired => "supplement_required",
            CaseState::Approved => "approved",
            CaseState::Rejected => "rejected",
            CaseState::NotAccepted => "not_accepted",
            CaseState::Withdrawn => "withdrawn",
        }
    }

    /// Progress rank: a transition never goes to a lower rank. `in_review` and
    /// `supplement_required` share a rank; the four final states share the highest.
    pub fn rank(self) -> u8 {
        match self {
            CaseState::Received => 0,
            CaseState::Accepted => 1,
            CaseState::InReview | CaseState::SupplementRequired => 2,
            CaseState::Approved
            | CaseState::Rejected
            | CaseState::NotAccepted
            | CaseState::Withdrawn => 3,
        }
    }

    /// Whether the state is final (no later report changes it).
    pub fn is_final(self) -> bool {
        self.rank() == 3
    }

    /// Whether `self`, newly reported, may replace `current`: it must move forward, or switch
    /// between `in_review` and `supplement_required`. Repeating the current state is not a move.
    pub fn may_follow(self, current: CaseState) -> bool {
        if self == current || current.is_final() {
            return false;
        }
        self.rank() > current.rank() || (self.rank() == 2 && current.rank() == 2)
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of the hub's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown state {0:?}; expected one of: received, accepted, in_review, supplement_required, approved, rejected, not_accepted, withdrawn"
)]
pub struct UnknownState(pub String);

impl FromStr for CaseState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaseState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for state in CaseState::ALL {
            let json = serde_json::to_string(&state).unwrap_or_default();
            assert_eq!(json, format!("\"{state}\""));
            assert_eq!(state.as_str().parse::<CaseState>(), Ok(state));
        }
        assert!("done".parse::<CaseState>().is_err());
    }

    #[test]
    fn transitions_are_monotonic() {
        use CaseState::*;
        assert!(Accepted.may_follow(Received));
        assert!(SupplementRequired.may_follow(InReview));
        assert!(InReview.may_follow(SupplementRequired));
        assert!(Approved.may_follow(InReview));
        assert!(!InReview.may_follow(Approved));
        assert!(!Accepted.may_follow(InReview));
        assert!(!Approved.may_follow(Approved));
        assert!(!Rejected.may_follow(Approved));
    }
}
