//! Reads: cases, deliveries, payloads, history, counters, dead letters, events, the feed.

/// Generates the read methods of a backend.
macro_rules! read_ops {
    ($store:ty, $db:ty) => {
        impl $store {
            const DELIVERY_COLUMNS: &'static str = "id, case_id, system_id, idempotency_key, state,
                attempts, next_attempt_at, lease_owner, lease_expires_at, receipt_number,
                receipt_raw_status, receipt_excerpt, last_error, last_excerpt, mapping_version,
                created_at, updated_at";

            fn delivery_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<DeliveryRecord, StoreError> {
                use sqlx::Row;
                const T: &str = "deliveries";
                let state: String = row.try_get("state")?;
                let state: DeliveryState = state.parse()?;
                let receipt_excerpt: Option<String> = row.try_get("receipt_excerpt")?;
                Ok(DeliveryRecord {
                    delivery_id: row.try_get("id")?,
                    case_id: row.try_get("case_id")?,
                    system_id: row.try_get("system_id")?,
                    idempotency_key: row.try_get("idempotency_key")?,
                    state,
                    attempts: shared::count_u32(row.try_get("attempts")?, T)?,
                    next_attempt_at: shared::timestamp_opt(row.try_get("next_attempt_at")?, T)?,
                    lease_owner: row.try_get("lease_owner")?,
                    lease_expires_at: shared::timestamp_opt(row.try_get("lease_expires_at")?, T)?,
                    receipt: receipt_excerpt
                        .filter(|_| state == DeliveryState::Delivered)
                        .map(|excerpt| -> Result<StoredReceipt, sqlx::Error> {
                            Ok(StoredReceipt {
                                receipt_number: row.try_get("receipt_number")?,
                                raw_status: row.try_get("receipt_raw_status")?,
                                excerpt,
                            })
                        })
                        .transpose()?,
                    last_error: row.try_get("last_error")?,
                    last_excerpt: row.try_get("last_excerpt")?,
                    mapping_version: row.try_get("mapping_version")?,
                    created_at: shared::timestamp(row.try_get("created_at")?, T)?,
                    updated_at: shared::timestamp(row.try_get("updated_at")?, T)?,
                })
            }

            fn summary_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<CaseSummary, StoreError> {
                use sqlx::Row;
                Ok(CaseSummary {
                    case_id: row.try_get("id")?,
                    client_id: row.try_get("client_id")?,
                    case_number: row.try_get("case_number")?,
                    content_hash: row.try_get("content_hash")?,
                    status: row.try_get("status")?,
                    created_at: shared::timestamp(row.try_get("created_at")?, "cases")?,
                    updated_at: shared::timestamp(row.try_get("updated_at")?, "cases")?,
                })
            }

            /// Payloads of the given deliveries, by delivery id.
            async fn payloads_of(
                conn: &mut <$db as sqlx::Database>::Connection,
                ids: &[&str],
            ) -> Result<std::collections::HashMap<String, StoredPayload>, StoreError> {
                shared::payloads_from(Self::payload_rows(conn, ids).await?)
            }

            /// Payloads of the given deliveries, as stored.
            async fn payload_rows(
                conn: &mut <$db as sqlx::Database>::Connection,
                ids: &[&str],
            ) -> Result<Vec<shared::PayloadRead>, StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT delivery_id, mapping_version, content_type, extension, body, fields_json
                     FROM payloads WHERE delivery_id IN (",
                );
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                query.push(")");
                Ok(query.build_query_as().fetch_all(&mut *conn).await?)
            }

            /// Materials of the given cases, by case id, in their original order.
            async fn materials_of(
                conn: &mut <$db as sqlx::Database>::Connection,
                case_ids: &[&str],
            ) -> Result<std::collections::HashMap<String, Vec<NewMaterial>>, StoreError> {
                shared::materials_from(Self::material_rows(conn, case_ids).await?)
            }

            /// Materials of the given cases, as stored, by case in position order.
            async fn material_rows(
                conn: &mut <$db as sqlx::Database>::Connection,
                case_ids: &[&str],
            ) -> Result<Vec<shared::MaterialRead>, StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT case_id, name, sha256, size, media_type, path FROM materials
                     WHERE case_id IN (",
                );
                let mut list = query.separated(", ");
                for id in case_ids {
                    list.push_bind(*id);
                }
                query.push(") ORDER BY case_id, position");
                Ok(query.build_query_as().fetch_all(&mut *conn).await?)
            }

            async fn do_get_case(&self, case_id: &str) -> Result<Option<CaseRecord>, StoreError> {
                let mut conn = self.reader.acquire().await?;
                Self::case_in(&mut conn, case_id).await
            }

            /// One case with its materials and deliveries, on `conn`.
            async fn case_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                case_id: &str,
            ) -> Result<Option<CaseRecord>, StoreError> {
                use sqlx::Row;
                let Some(row) = sqlx::query("SELECT * FROM cases WHERE id = $1")
                    .bind(case_id)
                    .fetch_optional(&mut *conn)
                    .await?
                else {
                    return Ok(None);
                };
                let summary = Self::summary_from_row(&row)?;
                let json: String = row.try_get("case_json")?;
                let case_json = serde_json::from_str(&json).map_err(|error| {
                    StoreError::Corrupt { table: "cases", detail: format!("case_json: {error}") }
                })?;
                let mut materials = Self::materials_of(&mut *conn, &[case_id]).await?;
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM deliveries WHERE case_id = $1 ORDER BY system_id",
                    Self::DELIVERY_COLUMNS
                ))
                .bind(case_id)
                .fetch_all(&mut *conn)
                .await?;
                let deliveries =
                    rows.iter().map(Self::delivery_from_row).collect::<Result<_, _>>()?;
                Ok(Some(CaseRecord {
                    summary,
                    case_json,
                    materials: materials.remove(case_id).unwrap_or_default(),
                    deliveries,
                }))
            }

            async fn do_find_cases(
                &self,
                query: &CaseQuery,
                limit: usize,
            ) -> Result<Vec<CaseSummary>, StoreError> {
                let (column, value) = match query {
                    CaseQuery::CaseNumber(value) => ("case_number", value),
                    CaseQuery::IdNumber(value) => ("applicant_id_number", value),
                    CaseQuery::CreditCode(value) => ("credit_code", value),
                };
                let rows = sqlx::query(&format!(
                    "SELECT id, client_id, case_number, content_hash, status, created_at,
                         updated_at
                     FROM cases WHERE {column} = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(value)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.reader)
                .await?;
                rows.iter().map(Self::summary_from_row).collect()
            }

            async fn do_get_delivery(
                &self,
                delivery_id: &str,
            ) -> Result<Option<DeliveryRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM deliveries WHERE id = $1",
                    Self::DELIVERY_COLUMNS
                ))
                .bind(delivery_id)
                .fetch_optional(&self.reader)
                .await?;
                row.as_ref().map(Self::delivery_from_row).transpose()
            }

            async fn do_get_payload(
                &self,
                delivery_id: &str,
            ) -> Result<Option<StoredPayload>, StoreError> {
                let mut conn = self.reader.acquire().await?;
                Ok(Self::payloads_of(&mut conn, &[delivery_id]).await?.remove(delivery_id))
            }

            async fn do_list_attempts(
                &self,
                delivery_id: &str,
            ) -> Result<Vec<AttemptRecord>, StoreError> {
                type Row = (i64, String, i64, Option<i64>, Option<String>, Option<String>, Option<String>);
                // An attempt's row is written when it ends; one still running is read from
                // its delivery (unless a node of an older version wrote its row at its start).
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT attempt, node_id, started_at, finished_at, outcome, reason, excerpt
                     FROM attempts WHERE delivery_id = $1
                     UNION ALL
                     SELECT d.attempts, d.lease_owner,
                         COALESCE(d.attempt_started_at, d.updated_at), CAST(NULL AS BIGINT),
                         CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS TEXT)
                     FROM deliveries d
                     WHERE d.id = $1 AND d.state = 'sending' AND NOT EXISTS (
                         SELECT 1 FROM attempts a
                         WHERE a.delivery_id = d.id AND a.attempt = d.attempts)
                     ORDER BY 1",
                )
                .bind(delivery_id)
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(|(attempt, node_id, started, finished, outcome, reason, excerpt)| {
                        Ok(AttemptRecord {
                            attempt: shared::count_u32(attempt, "attempts")?,
                            node_id,
                            started_at: shared::timestamp(started, "attempts")?,
                            finished_at: shared::timestamp_opt(finished, "attempts")?,
                            outcome,
                            reason,
                            excerpt,
                        })
                    })
                    .collect()
            }
        }
    };
}
pub(crate) use read_ops;
