//! Operator reads: counters, backlog, dead letters, replays, status events, the change feed.

/// Generates the operator read methods of a backend.
macro_rules! report_ops {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn do_system_counters(&self) -> Result<Vec<SystemCounters>, StoreError> {
                // Kept as deliveries change (migration 0007): on SQLite one row per system and
                // state, on PostgreSQL (triggers) a few change rows each until they are folded.
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT system_id, state, CAST(SUM(n) AS BIGINT) FROM delivery_counts
                     GROUP BY system_id, state HAVING SUM(n) <> 0 ORDER BY system_id",
                )
                .fetch_all(&self.reader)
                .await?;
                let mut counters: Vec<SystemCounters> = Vec::new();
                for (system_id, state, count) in rows {
                    if counters
                        .last()
                        .is_none_or(|last| last.system_id != system_id)
                    {
                        counters.push(SystemCounters {
                            system_id,
                            ..Default::default()
                        });
                    }
                    let count = u64::try_from(count).unwrap_or(0);
                    if let Some(entry) = counters.last_mut() {
                        match state.parse()? {
                            DeliveryState::Queued | DeliveryState::RetryWait => {
                                entry.backlog += count
                            }
                            DeliveryState::Sending => entry.sending += count,
                            DeliveryState::Delivered => entry.delivered += count,
                            DeliveryState::Dead => entry.dead += count,
                            DeliveryState::AwaitingClerk => entry.awaiting_clerk += count,
                        }
                    }
                }
                Ok(counters)
            }

            async fn do_count_backlog(&self) -> Result<u64, StoreError> {
                let count: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM delivery_counts
                     WHERE state IN ('queued', 'retry_wait', 'sending')",
                )
                .fetch_one(&self.reader)
                .await?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn do_fold_counts(&self) -> Result<u64, StoreError> {
                let Some(fold) = Self::FOLD_COUNTS else {
                    return Ok(0);
                };
                let mut tx = self.begin_write().await?;
                let folded = sqlx::query(fold).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(folded.rows_affected())
            }

            async fn do_list_dead(
                &self,
                filter: &DeadLetterFilter,
            ) -> Result<Vec<DeadLetter>, StoreError> {
                type Row = (
                    String,
                    String,
                    String,
                    String,
                    i64,
                    Option<String>,
                    Option<String>,
                    i64,
                );
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT d.id, d.case_id, c.case_number, d.system_id, d.attempts, d.last_error,
                         d.last_excerpt, d.updated_at
                     FROM deliveries d JOIN cases c ON c.id = d.case_id
                     WHERE d.state = 'dead'
                       AND ($1 IS NULL OR d.system_id = $1)
                       AND ($2 IS NULL OR d.updated_at >= $2)
                       AND ($3 IS NULL OR d.updated_at < $3)
                     ORDER BY d.updated_at DESC, d.id DESC LIMIT $4",
                )
                .bind(filter.system_id.as_deref())
                .bind(filter.from.map(shared::micros))
                .bind(filter.to.map(shared::micros))
                .bind(i64::try_from(filter.limit).unwrap_or(i64::MAX))
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(
                        |(id, case_id, number, system, attempts, reason, excerpt, at)| {
                            Ok(DeadLetter {
                                delivery_id: id,
                                case_id,
                                case_number: number,
                                system_id: system,
                                attempts: shared::count_u32(attempts, "deliveries")?,
                                reason,
                                excerpt,
                                died_at: shared::timestamp(at, "deliveries")?,
                            })
                        },
                    )
                    .collect()
            }

            async fn do_list_replays(
                &self,
                delivery_id: &str,
            ) -> Result<Vec<ReplayRecord>, StoreError> {
                let rows: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(
                    "SELECT id, delivery_id, actor, reason, at, after_attempt FROM replays
                     WHERE delivery_id = $1 ORDER BY at, id",
                )
                .bind(delivery_id)
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(|(replay_id, delivery_id, actor, reason, at, after)| {
                        Ok(ReplayRecord {
                            replay_id,
                            delivery_id,
                            actor,
                            reason,
                            at: shared::timestamp(at, "replays")?,
                            after_attempt: shared::count_u32(after, "replays")?,
                        })
                    })
                    .collect()
            }

            async fn do_list_status_events(
                &self,
                case_id: &str,
            ) -> Result<Vec<StatusEvent>, StoreError> {
                type Row = (i64, String, String, String, String, String, String, i64);
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT id, case_id, system_id, raw_code, unified_state, source, excerpt, at
                     FROM status_events WHERE case_id = $1 ORDER BY id",
                )
                .bind(case_id)
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(
                        |(id, case_id, system_id, raw_code, unified_state, source, excerpt, at)| {
                            Ok(StatusEvent {
                                id,
                                event: NewStatusEvent {
                                    case_id,
                                    system_id,
                                    raw_code,
                                    unified_state,
                                    source,
                                    excerpt,
                                    at: shared::timestamp(at, "status_events")?,
                                },
                            })
                        },
                    )
                    .collect()
            }

            async fn do_changes_since(
                &self,
                cursor: i64,
                limit: usize,
            ) -> Result<Vec<Change>, StoreError> {
                let rows: Vec<(i64, String, String, Option<String>, String, i64)> = sqlx::query_as(
                    "SELECT cursor, case_id, kind, system_id, state, at FROM changes
                         WHERE cursor > $1 ORDER BY cursor LIMIT $2",
                )
                .bind(cursor)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(|(cursor, case_id, kind, system_id, state, at)| {
                        Ok(Change {
                            cursor,
                            case_id,
                            kind,
                            system_id,
                            state,
                            at: shared::timestamp(at, "changes")?,
                        })
                    })
                    .collect()
            }

            async fn do_schema_version(&self) -> Result<i64, StoreError> {
                let version: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                        .fetch_one(&self.reader)
                        .await?;
                Ok(version.unwrap_or(0))
            }
        }
    };
}
pub(crate) use report_ops;
