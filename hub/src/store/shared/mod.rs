//! The SQL and flow both backends share, written once.
//!
//! SQLite and PostgreSQL run the same statements (`$N` placeholders work in both through sqlx);
//! they differ only in how a write transaction starts (`BEGIN IMMEDIATE` vs `BEGIN`), in row
//! locking when claiming (`FOR UPDATE SKIP LOCKED` on PostgreSQL), in the change-feed lock and
//! in telling other nodes of a breaker opening (`NOTIFY` on PostgreSQL), and in the two hot
//! writes, intake, claims and completions: on SQLite they run on the writer's handle directly, one
//! prepared statement per table run once per row, with no hand-off to sqlx's connection
//! thread (`sqlite_direct`); on PostgreSQL, where every statement is a round trip, as one
//! prepared statement per write, with one array per column (`UNNEST`) and data-modifying
//! `WITH` parts.
//! The [`impl_store`] macro writes the [`super::Store`] implementation for a backend type that
//! has `writer`/`reader` pools, `begin_write()`, `do_breaker_signals()`, `do_close()`,
//! `write_intake()` (an intake batch, committed), `write_completions()` (outcomes, committed),
//! `write_claim()` (due deliveries taken under a lease, committed),
//! `write_feed()` (change feed), `write_renewals()` (leases extended, committed), `BACKEND`,
//! `LOCK_ROWS`, `FEED_LOCK` and `BREAKER_SIGNAL`.
//! A macro rather than generics: sqlx's generic executor bounds would bury the SQL.

mod claim;
mod operate;
mod read;
mod report;
mod write;

use jiff::Timestamp;

use super::StoreError;

pub(crate) use claim::claim_ops;
pub(crate) use operate::operate_ops;
pub(crate) use read::read_ops;
pub(crate) use report::report_ops;
pub(crate) use write::write_ops;

/// The rows one intake batch adds besides its cases, one vector per table, inserted by the
/// backend's `write_intake` together with the case rows. A case whose number turns out to be
/// stored already (another node stored it meanwhile) is skipped with all its rows.
#[derive(Debug, Default)]
pub(crate) struct IntakeRows<'a> {
    pub materials: Vec<MaterialRow<'a>>,
    pub deliveries: Vec<DeliveryRow<'a>>,
    pub payloads: Vec<PayloadRow<'a>>,
}

impl IntakeRows<'_> {
    /// Keeps only the rows of the cases in `inserted`.
    pub(crate) fn retain_cases(&mut self, inserted: &std::collections::HashSet<String>) {
        self.materials.retain(|m| inserted.contains(m.case_id));
        self.deliveries.retain(|d| inserted.contains(d.case_id));
        let kept: std::collections::HashSet<&str> = self.deliveries.iter().map(|d| d.id).collect();
        self.payloads.retain(|p| kept.contains(p.delivery_id));
    }
}

/// A payload as stored: `(delivery_id, mapping_version, content_type, extension, body,
/// fields_json)`.
pub(crate) type PayloadRead = (String, String, String, String, Vec<u8>, String);

/// A delivery a claim took, as stored: `(id, case_id, system_id, idempotency_key, attempts,
/// last_outcome)`.
pub(crate) type ClaimedRead = (String, String, String, String, i64, Option<String>);

/// A material as stored: `(case_id, name, sha256, size, media_type, path)`.
pub(crate) type MaterialRead = (String, String, String, i64, String, String);

/// What the backend's `write_claim` took and read, as stored; turned into
/// [`super::ClaimedDelivery`] values after the write, outside the writer's lock.
#[derive(Debug, Default)]
pub(crate) struct ClaimWritten {
    /// The deliveries now `sending` under the claimer's lease: `(id, case_id, system_id,
    /// idempotency_key, attempts, last_outcome)`, `last_outcome` being `lease_expired` for one
    /// whose earlier lease had run out.
    pub rows: Vec<ClaimedRead>,
    /// Their payloads.
    pub payloads: Vec<PayloadRead>,
    /// Their cases' materials, by case in position order.
    pub materials: Vec<MaterialRead>,
}

/// Stored payloads by delivery id.
pub(crate) fn payloads_from(
    rows: Vec<PayloadRead>,
) -> Result<std::collections::HashMap<String, super::StoredPayload>, StoreError> {
    let mut payloads = std::collections::HashMap::with_capacity(rows.len());
    for (id, mapping_version, content_type, extension, body, fields) in rows {
        let fields = fields_from_json(&fields)?;
        payloads.insert(
            id,
            super::StoredPayload {
                mapping_version,
                content_type,
                extension,
                body,
                fields,
            },
        );
    }
    Ok(payloads)
}

/// Stored materials by case id, in the order read.
pub(crate) fn materials_from(
    rows: Vec<MaterialRead>,
) -> Result<std::collections::HashMap<String, Vec<super::NewMaterial>>, StoreError> {
    let mut materials: std::collections::HashMap<String, Vec<super::NewMaterial>> =
        Default::default();
    for (case_id, name, sha256, size, media_type, path) in rows {
        let size = u64::try_from(size).map_err(|_| StoreError::Corrupt {
            table: "materials",
            detail: format!("negative size {size}"),
        })?;
        materials
            .entry(case_id)
            .or_default()
            .push(super::NewMaterial {
                name,
                sha256,
                size,
                media_type,
                path,
            });
    }
    Ok(materials)
}

/// One outcome as a completion writes it: the delivery row's new values, guarded by the lease
/// (`delivery_id`, `owner`, `attempt`), and the attempt row's result.
#[derive(Debug)]
pub(crate) struct CompletionRow<'a> {
    pub delivery_id: &'a str,
    pub owner: &'a str,
    pub attempt: i64,
    pub state: &'static str,
    pub next_attempt_at: Option<i64>,
    pub receipt_number: Option<&'a str>,
    pub receipt_raw_status: Option<&'a str>,
    pub receipt_excerpt: Option<&'a str>,
    pub outcome: &'static str,
    pub error: Option<&'a str>,
    pub excerpt: Option<&'a str>,
}

/// A `cases` row; `now` is its creation and update time.
#[derive(Debug)]
pub(crate) struct CaseRow<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub case_number: &'a str,
    pub content_hash: &'a str,
    pub case_json: String,
    pub applicant_id_number: Option<&'a str>,
    pub credit_code: Option<&'a str>,
    pub status: &'a str,
    pub now: i64,
}

/// A `materials` row.
#[derive(Debug)]
pub(crate) struct MaterialRow<'a> {
    pub case_id: &'a str,
    pub position: i64,
    pub name: &'a str,
    pub sha256: &'a str,
    pub size: i64,
    pub media_type: &'a str,
    pub path: &'a str,
}

/// A `deliveries` row as intake writes it (`created_at = updated_at = now`).
#[derive(Debug)]
pub(crate) struct DeliveryRow<'a> {
    pub id: &'a str,
    pub case_id: &'a str,
    pub system_id: &'a str,
    pub idempotency_key: &'a str,
    pub state: &'static str,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub lease_owner: Option<&'a str>,
    pub lease_expires_at: Option<i64>,
    pub due_at: i64,
    /// `now` for a delivery claimed at intake (its first attempt begins), else `None`.
    pub attempt_started_at: Option<i64>,
    pub mapping_version: &'a str,
    pub now: i64,
}

/// A `payloads` row.
#[derive(Debug)]
pub(crate) struct PayloadRow<'a> {
    pub delivery_id: &'a str,
    pub mapping_version: &'a str,
    pub content_type: &'a str,
    pub extension: &'a str,
    pub body: &'a [u8],
    pub fields_json: String,
}

/// What an intake write stored.
#[derive(Debug, Default)]
pub(crate) struct IntakeWritten {
    /// The ids of the cases inserted.
    pub inserted: std::collections::HashSet<String>,
    /// For each case whose number was stored before: (id, content hash) as stored, by the id
    /// the batch had given the case.
    pub stored: std::collections::HashMap<String, (String, String)>,
}

/// What a completion write changed.
#[derive(Debug, Default)]
pub(crate) struct CompletionsWritten {
    /// The deliveries updated (their lease held): delivery id → (case id, system id).
    pub updated: std::collections::HashMap<String, (String, String)>,
    /// The others: delivery id → (state, lease owner) as stored, or `None` if no such row.
    pub current: std::collections::HashMap<String, Option<(String, Option<String>)>>,
}

/// The feed entries of an intake write: one `case_created` per case inserted.
pub(crate) fn created_feed(
    cases: &[CaseRow<'_>],
    inserted: &std::collections::HashSet<String>,
) -> Feed {
    let mut feed = Feed::default();
    for case in cases.iter().filter(|c| inserted.contains(c.id)) {
        feed.push(case.id, "case_created", None, case.status, case.now);
    }
    feed
}

/// The feed entries of a completion write: one `delivery_state` per updated delivery that
/// ended (delivered, dead, or waiting for a clerk).
pub(crate) fn completion_feed(
    rows: &[CompletionRow<'_>],
    updated: &std::collections::HashMap<String, (String, String)>,
    now: i64,
) -> Feed {
    let mut feed = Feed::default();
    for row in rows {
        use super::DeliveryState::{AwaitingClerk, Dead, Delivered};
        if !matches!(row.state.parse(), Ok(Delivered | Dead | AwaitingClerk)) {
            continue;
        }
        if let Some((case_id, system_id)) = updated.get(row.delivery_id) {
            feed.push(case_id, "delivery_state", Some(system_id), row.state, now);
        }
    }
    feed
}

/// A timestamp as stored: microseconds since the Unix epoch.
pub(crate) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// A stored time back to a timestamp.
pub(crate) fn timestamp(micros: i64, table: &'static str) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(micros).map_err(|error| StoreError::Corrupt {
        table,
        detail: format!("time {micros} out of range: {error}"),
    })
}

/// An optional stored time back to a timestamp.
pub(crate) fn timestamp_opt(
    micros: Option<i64>,
    table: &'static str,
) -> Result<Option<Timestamp>, StoreError> {
    micros.map(|value| timestamp(value, table)).transpose()
}

/// `now + lease`, saturating.
pub(crate) fn plus(now: Timestamp, lease: std::time::Duration) -> i64 {
    let lease = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
    micros(now).saturating_add(lease)
}

/// A stored count back to `u32` (attempt numbers).
pub(crate) fn count_u32(value: i64, table: &'static str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        table,
        detail: format!("count {value} out of range"),
    })
}

/// One change-feed entry waiting for its transaction's commit.
#[derive(Debug)]
pub(crate) struct PendingChange {
    pub(crate) case_id: String,
    pub(crate) kind: &'static str,
    pub(crate) system_id: Option<String>,
    pub(crate) state: String,
    pub(crate) at: i64,
}

/// The change-feed entries a write transaction gathers; written last, just before commit.
#[derive(Debug, Default)]
pub(crate) struct Feed(Vec<PendingChange>);

impl Feed {
    /// Adds one entry.
    pub(crate) fn push(
        &mut self,
        case_id: &str,
        kind: &'static str,
        system_id: Option<&str>,
        state: &str,
        at: i64,
    ) {
        self.0.push(PendingChange {
            case_id: case_id.to_owned(),
            kind,
            system_id: system_id.map(str::to_owned),
            state: state.to_owned(),
            at,
        });
    }

    /// True when nothing was gathered.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The gathered entries, in order.
    pub(crate) fn entries(&self) -> &[PendingChange] {
        &self.0
    }
}

/// A new time-ordered id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Form fields as stored (a JSON array of pairs, order kept).
pub(crate) fn fields_to_json(fields: &[(String, String)]) -> String {
    serde_json::to_string(fields).unwrap_or_else(|_| "[]".to_owned())
}

/// Stored form fields back to pairs.
pub(crate) fn fields_from_json(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        table: "payloads",
        detail: format!("fields_json: {error}"),
    })
}

/// Checks what the database cannot: a case has targets, and no system twice.
pub(crate) fn validate(case: &super::NewCase) -> Result<(), StoreError> {
    if case.targets.is_empty() {
        return Err(StoreError::Invalid(format!(
            "case {} has no targets",
            case.case_number
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for target in &case.targets {
        if !seen.insert(target.system_id.as_str()) {
            return Err(StoreError::Invalid(format!(
                "case {} lists line system {} twice",
                case.case_number, target.system_id
            )));
        }
    }
    Ok(())
}

/// Writes the whole [`super::Store`] implementation for one backend type.
macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        $crate::store::shared::write_ops!($store, $db);
        $crate::store::shared::operate_ops!($store, $db);
        $crate::store::shared::claim_ops!($store, $db);
        $crate::store::shared::read_ops!($store, $db);
        $crate::store::shared::report_ops!($store, $db);
        $crate::store::sync_sql::sync_ops!($store, $db);

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                Self::BACKEND
            }

            async fn insert_case(&self, case: NewCase) -> Result<InsertOutcome, StoreError> {
                let mut results = self.do_insert_cases(std::slice::from_ref(&case)).await?;
                results
                    .pop()
                    .ok_or(StoreError::Invalid("empty insert".to_owned()))?
            }

            async fn insert_cases(
                &self,
                cases: &[NewCase],
            ) -> Result<Vec<Result<InsertOutcome, StoreError>>, StoreError> {
                self.do_insert_cases(cases).await
            }

            async fn claim_due(
                &self,
                node_id: &str,
                now: jiff::Timestamp,
                limit: usize,
                lease: std::time::Duration,
                caps: &ClaimCaps,
            ) -> Result<Vec<ClaimedDelivery>, StoreError> {
                self.do_claim_due(node_id, now, limit, lease, caps).await
            }

            async fn extend_lease(
                &self,
                lease: &LeaseToken,
                until: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                self.do_extend_lease(lease, until).await
            }

            async fn extend_leases(
                &self,
                leases: &[LeaseToken],
                until: jiff::Timestamp,
            ) -> Result<Vec<String>, StoreError> {
                self.do_extend_leases(leases, until).await
            }

            async fn node_heartbeat(
                &self,
                node_id: &str,
                now: jiff::Timestamp,
                live_since: jiff::Timestamp,
            ) -> Result<Vec<String>, StoreError> {
                self.do_node_heartbeat(node_id, now, live_since).await
            }

            async fn share_breaker(
                &self,
                system_id: &str,
                node_id: &str,
                open_until: Option<jiff::Timestamp>,
                now: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                self.do_share_breaker(system_id, node_id, open_until, now)
                    .await
            }

            async fn open_breakers(
                &self,
                now: jiff::Timestamp,
            ) -> Result<Vec<(String, jiff::Timestamp)>, StoreError> {
                self.do_open_breakers(now).await
            }

            async fn breaker_signals(&self) -> Result<Option<BreakerSignals>, StoreError> {
                self.do_breaker_signals().await
            }

            async fn node_leave(&self, node_id: &str) -> Result<(), StoreError> {
                self.do_node_leave(node_id).await
            }

            async fn complete(
                &self,
                lease: &LeaseToken,
                outcome: AttemptOutcome,
                now: jiff::Timestamp,
            ) -> Result<DeliveryState, StoreError> {
                let item = Completion {
                    lease: lease.clone(),
                    outcome,
                };
                let mut results = self
                    .do_complete_many(std::slice::from_ref(&item), now)
                    .await?;
                results
                    .pop()
                    .ok_or(StoreError::Invalid("empty completion".to_owned()))?
            }

            async fn complete_many(
                &self,
                items: &[Completion],
                now: jiff::Timestamp,
            ) -> Result<Vec<Result<DeliveryState, StoreError>>, StoreError> {
                self.do_complete_many(items, now).await
            }

            async fn resolve_clerk(
                &self,
                delivery_id: &str,
                receipt: StoredReceipt,
                now: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                self.do_resolve_clerk(delivery_id, receipt, now).await
            }

            async fn get_case(&self, case_id: &str) -> Result<Option<CaseRecord>, StoreError> {
                self.do_get_case(case_id).await
            }

            async fn find_cases(
                &self,
                query: &CaseQuery,
                limit: usize,
            ) -> Result<Vec<CaseSummary>, StoreError> {
                self.do_find_cases(query, limit).await
            }

            async fn get_delivery(
                &self,
                delivery_id: &str,
            ) -> Result<Option<DeliveryRecord>, StoreError> {
                self.do_get_delivery(delivery_id).await
            }

            async fn get_payload(
                &self,
                delivery_id: &str,
            ) -> Result<Option<StoredPayload>, StoreError> {
                self.do_get_payload(delivery_id).await
            }

            async fn list_attempts(
                &self,
                delivery_id: &str,
            ) -> Result<Vec<AttemptRecord>, StoreError> {
                self.do_list_attempts(delivery_id).await
            }

            async fn system_counters(&self) -> Result<Vec<SystemCounters>, StoreError> {
                self.do_system_counters().await
            }

            async fn count_backlog(&self) -> Result<u64, StoreError> {
                self.do_count_backlog().await
            }

            async fn fold_counts(&self) -> Result<u64, StoreError> {
                self.do_fold_counts().await
            }

            async fn list_dead(
                &self,
                filter: &DeadLetterFilter,
            ) -> Result<Vec<DeadLetter>, StoreError> {
                self.do_list_dead(filter).await
            }

            async fn replay(
                &self,
                selector: &ReplaySelector,
                actor: &str,
                reason: &str,
                now: jiff::Timestamp,
            ) -> Result<Vec<ReplayRecord>, StoreError> {
                self.do_replay(selector, actor, reason, now).await
            }

            async fn list_replays(
                &self,
                delivery_id: &str,
            ) -> Result<Vec<ReplayRecord>, StoreError> {
                self.do_list_replays(delivery_id).await
            }

            async fn set_case_status(
                &self,
                case_id: &str,
                status: &str,
                now: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                self.do_set_case_status(case_id, status, now).await
            }

            async fn record_status_event(&self, event: NewStatusEvent) -> Result<i64, StoreError> {
                self.do_record_status_event(event).await
            }

            async fn list_status_events(
                &self,
                case_id: &str,
            ) -> Result<Vec<StatusEvent>, StoreError> {
                self.do_list_status_events(case_id).await
            }

            async fn consume_ticket(
                &self,
                nonce: &str,
                expires_at: jiff::Timestamp,
                now: jiff::Timestamp,
            ) -> Result<TicketUse, StoreError> {
                self.do_consume_ticket(nonce, expires_at, now).await
            }

            async fn purge_expired_tickets(&self, now: jiff::Timestamp) -> Result<u64, StoreError> {
                self.do_purge_expired_tickets(now).await
            }

            async fn changes_since(
                &self,
                cursor: i64,
                limit: usize,
            ) -> Result<Vec<Change>, StoreError> {
                self.do_changes_since(cursor, limit).await
            }

            async fn schema_version(&self) -> Result<i64, StoreError> {
                self.do_schema_version().await
            }

            async fn close(&self) {
                self.do_close().await;
            }
        }
    };
}
pub(crate) use impl_store;
