//! The SQL of [`super::SyncStore`], written once for both backends (invoked from `impl_store`).
//!
//! Every write runs in one transaction started with the backend's `begin_write()`; change-feed
//! rows are written last under the backend's feed lock, as the rest of the store does.

/// A target row as selected: `case_id, system_id, state, is_final, raw_code, reported_at,
/// due_date, provisional, detail, version, updated_at`.
pub(crate) type TargetTuple = (
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    i64,
    String,
    i64,
    i64,
);

/// The columns of [`TargetTuple`].
pub(crate) const TARGET_COLUMNS: &str = "case_id, system_id, state, is_final, raw_code, \
     reported_at, due_date, provisional, detail, version, updated_at";

/// A history row as selected.
pub(crate) type HistoryTuple = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
);

/// The columns of [`HistoryTuple`].
pub(crate) const HISTORY_COLUMNS: &str =
    "id, case_id, system_id, raw_code, unified_state, source, excerpt, message, at";

/// Decodes a target row.
pub(crate) fn target_row(t: TargetTuple) -> Result<super::TargetRow, super::StoreError> {
    let table = "target_status";
    Ok(super::TargetRow {
        case_id: t.0,
        system_id: t.1,
        state: t.2,
        is_final: t.3 != 0,
        raw_code: t.4,
        reported_at: super::shared::timestamp_opt(t.5, table)?,
        due_date: t.6,
        provisional: t.7 != 0,
        detail: serde_json::from_str(&t.8).map_err(|error| super::StoreError::Corrupt {
            table,
            detail: format!("detail: {error}"),
        })?,
        version: t.9,
        updated_at: super::shared::timestamp(t.10, table)?,
    })
}

/// Decodes a history row.
pub(crate) fn history_row(t: HistoryTuple) -> Result<super::HistoryEntry, super::StoreError> {
    Ok(super::HistoryEntry {
        id: t.0,
        case_id: t.1,
        system_id: t.2,
        raw_code: t.3,
        unified_state: t.4,
        source: t.5,
        excerpt: t.6,
        message: t.7,
        at: super::shared::timestamp(t.8, "status_events")?,
    })
}

/// Generates `impl SyncStore` for a backend type (see `shared::impl_store`).
macro_rules! sync_ops {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The target rows of one case, on `conn`.
            async fn targets_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                case_id: &str,
            ) -> Result<Vec<$crate::store::TargetRow>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM target_status WHERE case_id = $1 ORDER BY system_id",
                    $crate::store::sync_sql::TARGET_COLUMNS
                );
                let rows: Vec<$crate::store::sync_sql::TargetTuple> =
                    sqlx::query_as(&sql).bind(case_id).fetch_all(&mut *conn).await?;
                rows.into_iter().map($crate::store::sync_sql::target_row).collect()
            }

            /// The history of one case, oldest first, on `conn`.
            async fn history_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                case_id: &str,
            ) -> Result<Vec<$crate::store::HistoryEntry>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM status_events WHERE case_id = $1 ORDER BY id",
                    $crate::store::sync_sql::HISTORY_COLUMNS
                );
                let rows: Vec<$crate::store::sync_sql::HistoryTuple> =
                    sqlx::query_as(&sql).bind(case_id).fetch_all(&mut *conn).await?;
                rows.into_iter().map($crate::store::sync_sql::history_row).collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SyncStore for $store {
            async fn open_receipts(
                &self,
                system_id: &str,
                after: &str,
                limit: usize,
            ) -> Result<Vec<$crate::store::OpenReceipt>, StoreError> {
                let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT d.case_id, d.receipt_number, d.receipt_raw_status, t.raw_code
                     FROM deliveries d LEFT JOIN target_status t
                       ON t.case_id = d.case_id AND t.system_id = d.system_id
                     WHERE d.system_id = $1 AND d.state = 'delivered' AND d.case_id > $2
                       AND d.receipt_number IS NOT NULL AND (t.is_final IS NULL OR t.is_final = 0)
                     ORDER BY d.case_id LIMIT $3",
                )
                .bind(system_id)
                .bind(after)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.reader)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(case_id, receipt_number, receipt_raw_status, synced_raw)| {
                        $crate::store::OpenReceipt {
                            case_id,
                            receipt_number,
                            receipt_raw_status,
                            synced_raw,
                        }
                    })
                    .collect())
            }

            async fn case_by_receipt(
                &self,
                system_id: &str,
                receipt_number: &str,
            ) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT case_id FROM deliveries WHERE system_id = $1 AND receipt_number = $2",
                )
                .bind(system_id)
                .bind(receipt_number)
                .fetch_optional(&self.reader)
                .await?)
            }

            async fn list_targets(
                &self,
                case_id: &str,
            ) -> Result<Vec<$crate::store::TargetRow>, StoreError> {
                let mut conn = self.reader.acquire().await?;
                <$store>::targets_in(&mut conn, case_id).await
            }

            async fn case_view(
                &self,
                case_id: &str,
            ) -> Result<Option<$crate::store::CaseView>, StoreError> {
                let mut tx = self.reader.begin_with(<$store>::READ_SNAPSHOT).await?;
                let Some(record) = <$store>::case_in(&mut tx, case_id).await? else {
                    return Ok(None);
                };
                let targets = <$store>::targets_in(&mut tx, case_id).await?;
                let history = <$store>::history_in(&mut tx, case_id).await?;
                tx.commit().await?;
                Ok(Some($crate::store::CaseView { record, targets, history }))
            }

            async fn write_status(
                &self,
                write: $crate::store::StatusWrite,
            ) -> Result<bool, StoreError> {
                use $crate::store::shared::micros;
                let at = micros(write.at);
                let mut tx = self.begin_write().await?;
                if let Some(row) = &write.target {
                    let detail = row.detail.to_string();
                    let query = if row.version == 0 {
                        "INSERT INTO target_status (case_id, system_id, state, is_final, raw_code,
                             reported_at, due_date, provisional, detail, version, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $11)
                         ON CONFLICT (case_id, system_id) DO NOTHING"
                    } else {
                        "UPDATE target_status SET state = $3, is_final = $4, raw_code = $5,
                             reported_at = $6, due_date = $7, provisional = $8, detail = $9,
                             version = $10 + 1, updated_at = $11
                         WHERE case_id = $1 AND system_id = $2 AND version = $10"
                    };
                    let done = sqlx::query(query)
                        .bind(&row.case_id)
                        .bind(&row.system_id)
                        .bind(&row.state)
                        .bind(i64::from(row.is_final))
                        .bind(&row.raw_code)
                        .bind(row.reported_at.map(micros))
                        .bind(&row.due_date)
                        .bind(i64::from(row.provisional))
                        .bind(detail)
                        .bind(row.version)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                if let Some((read_at, status)) = &write.case_status {
                    let done = sqlx::query(
                        "UPDATE cases SET status = $3,
                             updated_at = CASE WHEN $4 > updated_at THEN $4 ELSE updated_at + 1 END
                         WHERE id = $1 AND updated_at = $2",
                    )
                    .bind(&write.case_id)
                    .bind(micros(*read_at))
                    .bind(status)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                if let Some(event) = &write.event {
                    sqlx::query(
                        "INSERT INTO status_events (case_id, system_id, raw_code, unified_state,
                             source, excerpt, message, at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&write.case_id)
                    .bind(&event.system_id)
                    .bind(&event.raw_code)
                    .bind(&event.unified_state)
                    .bind(&event.source)
                    .bind(&event.excerpt)
                    .bind(&event.message)
                    .bind(micros(event.at))
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some((id, body)) = &write.notification {
                    sqlx::query(
                        "INSERT INTO notifications (notification_id, case_id, body, created_at,
                             next_attempt_at)
                         VALUES ($1, $2, $3, $4, $4)",
                    )
                    .bind(id)
                    .bind(&write.case_id)
                    .bind(body)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                if !write.feed.is_empty() {
                    if let Some(lock) = Self::FEED_LOCK {
                        sqlx::query(lock).execute(&mut *tx).await?;
                    }
                    for entry in &write.feed {
                        sqlx::query(
                            "INSERT INTO changes (case_id, kind, system_id, state, at)
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&write.case_id)
                        .bind(entry.kind)
                        .bind(&entry.system_id)
                        .bind(&entry.state)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn list_history(
                &self,
                case_id: &str,
            ) -> Result<Vec<$crate::store::HistoryEntry>, StoreError> {
                let mut conn = self.reader.acquire().await?;
                <$store>::history_in(&mut conn, case_id).await
            }

            async fn list_unknown_status(
                &self,
                limit: usize,
            ) -> Result<Vec<$crate::store::HistoryEntry>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM status_events WHERE unified_state = 'unknown'
                     ORDER BY id DESC LIMIT $1",
                    $crate::store::sync_sql::HISTORY_COLUMNS
                );
                let rows: Vec<$crate::store::sync_sql::HistoryTuple> = sqlx::query_as(&sql)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.reader)
                    .await?;
                rows.into_iter().map($crate::store::sync_sql::history_row).collect()
            }

            async fn targets_due_by(
                &self,
                date: &str,
                limit: usize,
            ) -> Result<Vec<$crate::store::TargetRow>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM target_status
                     WHERE is_final = 0 AND due_date IS NOT NULL AND due_date <= $1
                     ORDER BY due_date, case_id LIMIT $2",
                    $crate::store::sync_sql::TARGET_COLUMNS
                );
                let rows: Vec<$crate::store::sync_sql::TargetTuple> = sqlx::query_as(&sql)
                    .bind(date)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.reader)
                    .await?;
                rows.into_iter().map($crate::store::sync_sql::target_row).collect()
            }

            async fn provisional_targets(
                &self,
                limit: usize,
            ) -> Result<Vec<$crate::store::TargetRow>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM target_status WHERE is_final = 0 AND provisional = 1
                     ORDER BY case_id LIMIT $1",
                    $crate::store::sync_sql::TARGET_COLUMNS
                );
                let rows: Vec<$crate::store::sync_sql::TargetTuple> = sqlx::query_as(&sql)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.reader)
                    .await?;
                rows.into_iter().map($crate::store::sync_sql::target_row).collect()
            }

            async fn claim_notifications(
                &self,
                now: jiff::Timestamp,
                limit: usize,
                lease: std::time::Duration,
            ) -> Result<Vec<$crate::store::PendingNotification>, StoreError> {
                let now_micros = $crate::store::shared::micros(now);
                let mut tx = self.begin_write().await?;
                let sql = format!(
                    "SELECT id, notification_id, case_id, body, attempts FROM notifications n
                     WHERE delivered_at IS NULL AND next_attempt_at <= $1
                       AND NOT EXISTS (SELECT 1 FROM notifications p WHERE p.case_id = n.case_id
                                       AND p.delivered_at IS NULL AND p.id < n.id)
                     ORDER BY id LIMIT $2{}",
                    Self::LOCK_ROWS
                );
                let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(&sql)
                    .bind(now_micros)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&mut *tx)
                    .await?;
                let until = $crate::store::shared::plus(now, lease);
                let mut claimed = Vec::with_capacity(rows.len());
                for (id, notification_id, case_id, body, attempts) in rows {
                    sqlx::query("UPDATE notifications SET next_attempt_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(until)
                        .execute(&mut *tx)
                        .await?;
                    claimed.push($crate::store::PendingNotification {
                        id,
                        notification_id,
                        case_id,
                        body,
                        attempts: $crate::store::shared::count_u32(attempts, "notifications")?,
                    });
                }
                tx.commit().await?;
                Ok(claimed)
            }

            async fn finish_notification(
                &self,
                id: i64,
                retry_at: Option<jiff::Timestamp>,
                error: Option<&str>,
                now: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                use $crate::store::shared::micros;
                let mut tx = self.begin_write().await?;
                let query = match retry_at {
                    None => sqlx::query(
                        "UPDATE notifications SET delivered_at = $2, attempts = attempts + 1,
                             last_error = NULL
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(micros(now)),
                    Some(retry_at) => sqlx::query(
                        "UPDATE notifications SET next_attempt_at = $2, attempts = attempts + 1,
                             last_error = $3
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(micros(retry_at))
                    .bind(error),
                };
                query.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn take_poll_lease(
                &self,
                system_id: &str,
                node_id: &str,
                now: jiff::Timestamp,
                until: jiff::Timestamp,
            ) -> Result<bool, StoreError> {
                use $crate::store::shared::micros;
                let mut tx = self.begin_write().await?;
                let taken = sqlx::query(
                    "INSERT INTO poll_leases (system_id, node_id, until) VALUES ($1, $2, $4)
                     ON CONFLICT (system_id) DO UPDATE SET node_id = $2, until = $4
                     WHERE poll_leases.node_id = $2 OR poll_leases.until <= $3",
                )
                .bind(system_id)
                .bind(node_id)
                .bind(micros(now))
                .bind(micros(until))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(taken.rows_affected() == 1)
            }

            async fn count_pending_notifications(&self) -> Result<u64, StoreError> {
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM notifications WHERE delivered_at IS NULL",
                )
                .fetch_one(&self.reader)
                .await?;
                Ok(u64::try_from(count).unwrap_or(0))
            }
        }
    };
}
pub(crate) use sync_ops;
