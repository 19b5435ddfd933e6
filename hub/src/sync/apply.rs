//! Applying a report: read the case and its target rows, decide with [`super::transition`],
//! write everything of the change in one compare-and-set transaction, and read again and decide
//! again when another writer got there first.
//!
//! Time-limit facts change with the state: the first state at or past `accepted` sets the
//! acceptance day (the report's date, China time) and the target's limit from the routes of
//! the case's matter; `supplement_required` pauses the clock from the next day; leaving it
//! resumes the clock. Detail-only changes (extensions, supplements sent, recomputing a
//! provisional due date) go through [`SyncContext::update_detail`] the same way.

use jiff::Timestamp;
use serde_json::json;
use yimen_mappings::case::parse_case;
use yimen_mappings::catalog::CaseState;

use super::detail::{Refusal, SupplementRequest, TargetDetail};
use super::transition::{Applied, Verdict, aggregate, judge};
use super::{Report, SyncContext, SyncError};
use crate::store::{CaseRecord, FeedEntry, HistoryEntry, StatusWrite, TargetRow};
use crate::timelimit::{china_date, due_date};

/// How many times a write is decided again after losing a race.
const ATTEMPTS: usize = 16;

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target moved.
    Moved {
        /// From this state.
        from: CaseState,
        /// To this state.
        to: CaseState,
    },
    /// Already applied.
    Duplicate,
    /// Older or less advanced than what is applied.
    Stale,
    /// Unknown raw code: recorded and flagged.
    Unknown,
}

impl SyncContext {
    /// Applies one report (see the module doc).
    pub async fn apply(&self, report: &Report) -> Result<Outcome, SyncError> {
        let cleaned;
        let report = if report.is_storable() {
            report
        } else {
            cleaned = report.clone().made_storable();
            &cleaned
        };
        let spec = self
            .catalog
            .system(&report.system_id)
            .ok_or_else(|| SyncError::UnknownSystem(report.system_id.clone()))?;
        let mapped = spec.map_status(&report.raw_code);
        for _ in 0..ATTEMPTS {
            let (case, rows) = self.read(&report.case_id, &report.system_id).await?;
            let row = rows.iter().find(|r| r.system_id == report.system_id);
            let current_state = row
                .and_then(|r| r.state.parse().ok())
                .unwrap_or(CaseState::Received);
            let current = Applied {
                state: current_state,
                raw: row.and_then(|r| r.raw_code.as_deref()),
                reported_at: row.and_then(|r| r.reported_at),
            };
            let verdict = judge(current, &report.raw_code, mapped, report.reported_at);
            let now = Timestamp::now();
            let write = match verdict {
                Verdict::Duplicate => return Ok(Outcome::Duplicate),
                Verdict::Stale => {
                    tracing::debug!(case = %report.case_id, system = %report.system_id,
                        raw = %report.raw_code, "stale status report ignored");
                    return Ok(Outcome::Stale);
                }
                Verdict::Unknown => self.unknown_write(&case, row, report, now),
                Verdict::Move(next) => self.move_write(&case, &rows, row, report, next, now),
            };
            let notifies = write.notification.is_some();
            if self.store.write_status(write).await? {
                if notifies {
                    self.notifier.wake();
                }
                return Ok(match verdict {
                    Verdict::Move(to) => {
                        tracing::info!(case = %report.case_id, system = %report.system_id,
                            from = %current_state, to = %to, source = report.source.as_str(),
                            "status moved");
                        Outcome::Moved {
                            from: current_state,
                            to,
                        }
                    }
                    _ => {
                        tracing::warn!(case = %report.case_id, system = %report.system_id,
                            raw = %report.raw_code, "unknown raw status code flagged");
                        Outcome::Unknown
                    }
                });
            }
        }
        Err(SyncError::Contended(report.case_id.clone()))
    }

    /// Changes a target's detail (not its state) and recomputes its due date; `change` may
    /// refuse with an error. Returns the new row.
    pub async fn update_detail(
        &self,
        case_id: &str,
        system_id: &str,
        change: impl Fn(&mut TargetDetail, &TargetRow) -> Result<(), SyncError>,
    ) -> Result<TargetRow, SyncError> {
        for _ in 0..ATTEMPTS {
            let (case, rows) = self.read(case_id, system_id).await?;
            let mut row = rows
                .into_iter()
                .find(|r| r.system_id == system_id)
                .unwrap_or_else(|| self.fresh_row(case_id, system_id, &case));
            let mut detail = read_detail(&row);
            change(&mut detail, &row)?;
            self.set_due(&mut row, &detail);
            row.detail = detail.to_json();
            let feed = vec![FeedEntry {
                kind: "time_limit",
                system_id: Some(system_id.to_owned()),
                state: row.due_date.clone().unwrap_or_else(|| "paused".to_owned()),
            }];
            let write = StatusWrite {
                case_id: case_id.to_owned(),
                target: Some(row.clone()),
                event: None,
                case_status: None,
                feed,
                notification: None,
                at: Timestamp::now(),
            };
            if self.store.write_status(write).await? {
                row.version += 1;
                return Ok(row);
            }
        }
        Err(SyncError::Contended(case_id.to_owned()))
    }

    async fn read(
        &self,
        case_id: &str,
        system_id: &str,
    ) -> Result<(CaseRecord, Vec<TargetRow>), SyncError> {
        let case = self
            .store
            .get_case(case_id)
            .await?
            .ok_or_else(|| SyncError::CaseNotFound(case_id.to_owned()))?;
        if !case.deliveries.iter().any(|d| d.system_id == system_id) {
            return Err(SyncError::NotATarget {
                case: case_id.to_owned(),
                system: system_id.to_owned(),
            });
        }
        let rows = self.store.list_targets(case_id).await?;
        Ok((case, rows))
    }

    fn fresh_row(&self, case_id: &str, system_id: &str, case: &CaseRecord) -> TargetRow {
        TargetRow {
            case_id: case_id.to_owned(),
            system_id: system_id.to_owned(),
            state: CaseState::Received.as_str().to_owned(),
            is_final: false,
            raw_code: None,
            reported_at: None,
            due_date: None,
            provisional: false,
            detail: TargetDetail::default().to_json(),
            version: 0,
            updated_at: case.summary.updated_at,
        }
    }

    fn unknown_write(
        &self,
        case: &CaseRecord,
        row: Option<&TargetRow>,
        report: &Report,
        now: Timestamp,
    ) -> StatusWrite {
        let case_id = &case.summary.case_id;
        let mut target = row
            .cloned()
            .unwrap_or_else(|| self.fresh_row(case_id, &report.system_id, case));
        target.raw_code = Some(report.raw_code.clone());
        StatusWrite {
            case_id: case_id.clone(),
            target: Some(target),
            event: Some(event(report, "unknown", now)),
            case_status: None,
            feed: vec![FeedEntry {
                kind: "unknown_status",
                system_id: Some(report.system_id.clone()),
                state: report.raw_code.clone(),
            }],
            notification: None,
            at: now,
        }
    }

    fn move_write(
        &self,
        case: &CaseRecord,
        rows: &[TargetRow],
        row: Option<&TargetRow>,
        report: &Report,
        next: CaseState,
        now: Timestamp,
    ) -> StatusWrite {
        let case_id = &case.summary.case_id;
        let mut target = row
            .cloned()
            .unwrap_or_else(|| self.fresh_row(case_id, &report.system_id, case));
        let previous: CaseState = target.state.parse().unwrap_or(CaseState::Received);
        let mut detail = read_detail(&target);
        let day = china_date(report.reported_at.unwrap_or(now));
        detail.message = report.message.clone();
        let text = report.message.clone().unwrap_or_default();
        match next {
            CaseState::Rejected | CaseState::NotAccepted => {
                detail.refusal = Some(Refusal::parse(&text));
            }
            CaseState::SupplementRequired => {
                detail.supplement = Some(SupplementRequest::parse(&text, now));
                detail.pause(day);
            }
            _ => {}
        }
        if previous == CaseState::SupplementRequired && next != previous {
            detail.resume(day);
        }
        let accepting = matches!(
            next,
            CaseState::Accepted
                | CaseState::InReview
                | CaseState::SupplementRequired
                | CaseState::Approved
                | CaseState::Rejected
        );
        if accepting && detail.accepted_on.is_none() {
            detail.accepted_on = Some(day);
            detail.limit_days = Some(self.limit_days(case, &report.system_id));
        }
        target.state = next.as_str().to_owned();
        target.is_final = next.is_final();
        target.raw_code = Some(report.raw_code.clone());
        target.reported_at = report.reported_at.or(target.reported_at);
        self.set_due(&mut target, &detail);
        target.detail = detail.to_json();

        let states: Vec<CaseState> = case
            .deliveries
            .iter()
            .map(|d| {
                if d.system_id == report.system_id {
                    next
                } else {
                    rows.iter()
                        .find(|r| r.system_id == d.system_id)
                        .and_then(|r| r.state.parse().ok())
                        .unwrap_or(CaseState::Received)
                }
            })
            .collect();
        let status = aggregate(&states);
        let mut feed = vec![FeedEntry {
            kind: "status_event",
            system_id: Some(report.system_id.clone()),
            state: next.as_str().to_owned(),
        }];
        if status != case.summary.status {
            feed.push(FeedEntry {
                kind: "case_status",
                system_id: None,
                state: status.to_owned(),
            });
        }
        let notification = self.config.webhook.as_ref().map(|_| {
            let id = uuid::Uuid::now_v7().to_string();
            let body = json!({
                "notification_id": id,
                "case_id": case_id,
                "case_number": case.summary.case_number,
                "case_status": status,
                "system": report.system_id,
                "state": next.as_str(),
                "previous_state": previous.as_str(),
                "raw_code": report.raw_code,
                "source": report.source.as_str(),
                "message": report.message,
                "refusal": detail.refusal.as_ref().filter(|_| next.is_final()),
                "supplement": detail.supplement.as_ref()
                    .filter(|_| next == CaseState::SupplementRequired),
                "due_date": target.due_date,
                "at": now.to_string(),
            });
            (id, body.to_string())
        });
        StatusWrite {
            case_id: case_id.clone(),
            target: Some(target),
            event: Some(event(report, next.as_str(), now)),
            case_status: Some((case.summary.updated_at, status.to_owned())),
            feed,
            notification,
            at: now,
        }
    }

    /// Sets the row's due-date columns from its detail (none once final or while paused).
    fn set_due(&self, row: &mut TargetRow, detail: &TargetDetail) {
        let due = if row.is_final {
            None
        } else {
            due_date(&self.calendar.get(), detail)
        };
        row.due_date = due.map(|d| d.date.to_string());
        row.provisional = due.is_some_and(|d| d.provisional);
    }

    /// The statutory limit of one target: the largest `time_limit_days` of the routes of the
    /// case's matter that name the system, else the configured default.
    pub fn limit_days(&self, case: &CaseRecord, system_id: &str) -> u32 {
        let text = case.case_json.to_string();
        parse_case(text.as_bytes())
            .ok()
            .and_then(|parsed| {
                let routes = self.catalog.routes().matching(&parsed).ok()?;
                routes
                    .iter()
                    .filter(|r| r.targets.iter().any(|t| t == system_id))
                    .filter_map(|r| r.time_limit_days)
                    .max()
            })
            .unwrap_or(self.config.timelimit.default_days)
    }
}

/// A row's detail; an unreadable one is logged and starts empty.
pub fn read_detail(row: &TargetRow) -> TargetDetail {
    TargetDetail::from_json(&row.detail).unwrap_or_else(|error| {
        tracing::warn!(case = %row.case_id, system = %row.system_id, %error,
            "unreadable target detail; starting afresh");
        TargetDetail::default()
    })
}

fn event(report: &Report, state: &str, now: Timestamp) -> HistoryEntry {
    HistoryEntry {
        id: 0,
        case_id: report.case_id.clone(),
        system_id: report.system_id.clone(),
        raw_code: report.raw_code.clone(),
        unified_state: state.to_owned(),
        source: report.source.as_str().to_owned(),
        excerpt: report.excerpt.clone(),
        message: report.message.clone(),
        at: report.reported_at.unwrap_or(now),
    }
}
