//! Statutory time limits (承诺时限, 行政许可法 Art. 82) per case and per target line system.
//!
//! A target's clock starts the day after the line system accepted the case and runs
//! `limit + approved extensions` working days of the [`WorkingDayCalendar`]; days paused for
//! supplement requests do not count ([`crate::sync::detail::Pause`]). A due date that counts a day
//! of a year without calendar data is provisional and is recomputed when the data arrives.
//! The case's due date is the latest of its open targets'.
//!
//! Flags for supervision (时限监察): `overdue` when today is past the due date; `at_risk` when
//! at most [`TimeLimitConfig::at_risk_days`] working days are left. A paused target is neither.
//!
//! Dates are China Standard Time (UTC+8, no daylight saving).

pub mod calendar;
pub mod watch;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use serde::Serialize;
use yimen_mappings::calendar::{DueDate, WorkingDayCalendar};

use crate::sync::detail::TargetDetail;
pub use calendar::CalendarHandle;

/// Time-limit settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeLimitConfig {
    /// Working days when no route of the case's matter sets a limit (`YIMEN_DEFAULT_LIMIT_DAYS`).
    pub default_days: u32,
    /// At most this many working days left is at risk (`YIMEN_AT_RISK_DAYS`).
    pub at_risk_days: u32,
}

impl Default for TimeLimitConfig {
    fn default() -> Self {
        Self {
            default_days: 20,
            at_risk_days: 2,
        }
    }
}

/// A supervision flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// More than the at-risk margin left.
    OnTime,
    /// At most the at-risk margin left.
    AtRisk,
    /// Past the due date.
    Overdue,
}

impl Flag {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::OnTime => "on_time",
            Flag::AtRisk => "at_risk",
            Flag::Overdue => "overdue",
        }
    }
}

/// The calendar day of `at` in China Standard Time.
pub fn china_date(at: Timestamp) -> Date {
    at.to_zoned(TimeZone::fixed(Offset::constant(8))).date()
}

/// The due date of a target, or `None` before acceptance, without a limit, or while paused.
pub fn due_date(calendar: &WorkingDayCalendar, detail: &TargetDetail) -> Option<DueDate> {
    let accepted = detail.accepted_on?;
    let limit = detail.limit_days?;
    if detail.paused() {
        return None;
    }
    let pauses: Vec<_> = detail
        .pauses
        .iter()
        .filter_map(|p| p.to.map(|to| p.from..=to))
        .collect();
    let days = limit.saturating_add(detail.extension_days());
    Some(calendar.add_working_days_with_pauses(accepted, days, &pauses))
}

/// Working days left until `due` (negative when past) and the flag.
pub fn flag(calendar: &WorkingDayCalendar, due: Date, today: Date, at_risk: u32) -> (i64, Flag) {
    let left = calendar.working_days_between(today, due);
    let flag = if today > due {
        Flag::Overdue
    } else if left <= i64::from(at_risk) {
        Flag::AtRisk
    } else {
        Flag::OnTime
    };
    (left, flag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::detail::Pause;

    fn calendar() -> WorkingDayCalendar {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../mappings/calendar");
        WorkingDayCalendar::load_dir(std::path::Path::new(dir)).unwrap()
    }

    fn day(y: i16, m: i8, d: i8) -> Date {
        Date::new(y, m, d).unwrap()
    }

    #[test]
    fn the_clock_starts_the_day_after_acceptance_and_skips_spring_festival() {
        let detail = TargetDetail {
            accepted_on: Some(day(2026, 2, 13)),
            limit_days: Some(5),
            ..TargetDetail::default()
        };
        let due = due_date(&calendar(), &detail).unwrap();
        assert_eq!(due.date, day(2026, 2, 27));
        assert!(!due.provisional);
    }

    #[test]
    fn pauses_and_extensions_move_the_due_date() {
        let cal = calendar();
        let mut detail = TargetDetail {
            accepted_on: Some(day(2026, 3, 2)),
            limit_days: Some(5),
            ..TargetDetail::default()
        };
        assert_eq!(due_date(&cal, &detail).unwrap().date, day(2026, 3, 9));
        detail.pauses.push(Pause {
            from: day(2026, 3, 4),
            to: None,
        });
        assert_eq!(due_date(&cal, &detail), None, "no due date while paused");
        detail.pauses[0].to = Some(day(2026, 3, 5));
        assert_eq!(due_date(&cal, &detail).unwrap().date, day(2026, 3, 11));
        detail.extensions.push(crate::sync::detail::Extension {
            days: 10,
            approver: "chief".to_owned(),
            reason: None,
            at: Timestamp::UNIX_EPOCH,
        });
        assert_eq!(due_date(&cal, &detail).unwrap().date, day(2026, 3, 25));
    }

    #[test]
    fn a_due_date_in_an_unpublished_year_is_provisional() {
        let detail = TargetDetail {
            accepted_on: Some(day(2026, 12, 20)),
            limit_days: Some(20),
            ..TargetDetail::default()
        };
        assert!(due_date(&calendar(), &detail).unwrap().provisional);
    }

    #[test]
    fn flags_count_working_days_left() {
        let cal = calendar();
        let due = day(2026, 3, 11);
        assert_eq!(flag(&cal, due, day(2026, 3, 2), 2), (7, Flag::OnTime));
        assert_eq!(flag(&cal, due, day(2026, 3, 9), 2), (2, Flag::AtRisk));
        assert_eq!(flag(&cal, due, day(2026, 3, 11), 2), (0, Flag::AtRisk));
        assert_eq!(flag(&cal, due, day(2026, 3, 12), 2).1, Flag::Overdue);
    }
}
