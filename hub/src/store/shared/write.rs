//! Writes: intake (one transaction per batch, one savepoint per case), completions, replays,
//! clerk results, case status, status events, the ticket ledger and the change feed.

/// Generates the write methods of a backend (see the module doc of `shared`).
macro_rules! write_ops {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Writes the feed entries gathered in `feed` and commits. On PostgreSQL the feed lock
            /// is taken here, last, after every row lock: a transaction holding it never waits
            /// for a row, so it cannot be part of a deadlock, and commit order is cursor order.
            async fn commit_with(
                mut tx: sqlx::Transaction<'_, $db>,
                feed: shared::Feed,
            ) -> Result<(), StoreError> {
                if !feed.is_empty() {
                    if let Some(lock) = Self::FEED_LOCK {
                        sqlx::query(lock).execute(&mut *tx).await?;
                    }
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO changes (case_id, kind, system_id, state, at) ",
                    );
                    insert.push_values(feed.entries(), |mut row, change| {
                        row.push_bind(&change.case_id)
                            .push_bind(change.kind)
                            .push_bind(&change.system_id)
                            .push_bind(&change.state)
                            .push_bind(change.at);
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// Stores one case inside `tx`; the caller wraps it in a savepoint.
            async fn insert_one(
                tx: &mut sqlx::Transaction<'_, $db>,
                case: &NewCase,
                now: i64,
                feed: &mut shared::Feed,
            ) -> Result<InsertOutcome, StoreError> {
                let case_id = shared::new_id();
                let inserted: Option<String> = sqlx::query_scalar(
                    "INSERT INTO cases (id, client_id, case_number, content_hash, case_json,
                         applicant_id_number, credit_code, status, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                     ON CONFLICT (client_id, case_number) DO NOTHING
                     RETURNING id",
                )
                .bind(&case_id)
                .bind(&case.client_id)
                .bind(&case.case_number)
                .bind(&case.content_hash)
                .bind(case.case_json.to_string())
                .bind(&case.applicant_id_number)
                .bind(&case.credit_code)
                .bind(&case.status)
                .bind(now)
                .fetch_optional(&mut **tx)
                .await?;
                if inserted.is_none() {
                    let (existing, hash): (String, String) = sqlx::query_as(
                        "SELECT id, content_hash FROM cases
                         WHERE client_id = $1 AND case_number = $2",
                    )
                    .bind(&case.client_id)
                    .bind(&case.case_number)
                    .fetch_one(&mut **tx)
                    .await?;
                    return Ok(if hash == case.content_hash {
                        InsertOutcome::Existing { case_id: existing }
                    } else {
                        InsertOutcome::Conflict { case_id: existing }
                    });
                }
                if !case.materials.is_empty() {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO materials (case_id, position, name, sha256, size, media_type, path) ",
                    );
                    insert.push_values(case.materials.iter().enumerate(), |mut row, (i, m)| {
                        row.push_bind(&case_id)
                            .push_bind(i64::try_from(i).unwrap_or(i64::MAX))
                            .push_bind(&m.name)
                            .push_bind(&m.sha256)
                            .push_bind(i64::try_from(m.size).unwrap_or(i64::MAX))
                            .push_bind(&m.media_type)
                            .push_bind(&m.path);
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                let deliveries: Vec<CreatedDelivery> = case
                    .targets
                    .iter()
                    .map(|target| {
                        let delivery_id = shared::new_id();
                        CreatedDelivery {
                            idempotency_key: delivery_id.clone(),
                            delivery_id,
                            system_id: target.system_id.clone(),
                        }
                    })
                    .collect();
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state,
                         next_attempt_at, due_at, mapping_version, created_at, updated_at) ",
                );
                insert.push_values(deliveries.iter().zip(&case.targets), |mut row, (d, t)| {
                    row.push_bind(&d.delivery_id)
                        .push_bind(&case_id)
                        .push_bind(&d.system_id)
                        .push_bind(&d.idempotency_key)
                        .push_bind("queued")
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(&t.payload.mapping_version)
                        .push_bind(now)
                        .push_bind(now);
                });
                insert.build().execute(&mut **tx).await?;
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO payloads (delivery_id, mapping_version, content_type, extension,
                         body, fields_json) ",
                );
                insert.push_values(deliveries.iter().zip(&case.targets), |mut row, (d, t)| {
                    row.push_bind(&d.delivery_id)
                        .push_bind(&t.payload.mapping_version)
                        .push_bind(&t.payload.content_type)
                        .push_bind(&t.payload.extension)
                        .push_bind(&t.payload.body)
                        .push_bind(shared::fields_to_json(&t.payload.fields));
                });
                insert.build().execute(&mut **tx).await?;
                feed.push(&case_id, "case_created", None, &case.status, now);
                Ok(InsertOutcome::Created { case_id, deliveries })
            }

            async fn do_insert_cases(
                &self,
                cases: Vec<NewCase>,
            ) -> Result<Vec<Result<InsertOutcome, StoreError>>, StoreError> {
                let now = shared::micros(jiff::Timestamp::now());
                let mut tx = self.begin_write().await?;
                let mut results = Vec::with_capacity(cases.len());
                let mut feed = shared::Feed::default();
                for case in &cases {
                    if let Err(error) = shared::validate(case) {
                        results.push(Err(error));
                        continue;
                    }
                    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                    match Self::insert_one(&mut savepoint, case, now, &mut feed).await {
                        Ok(outcome) => {
                            savepoint.commit().await?;
                            results.push(Ok(outcome));
                        }
                        Err(error) => {
                            savepoint.rollback().await?;
                            tracing::warn!(%error, "case not stored");
                            results.push(Err(error));
                        }
                    }
                }
                Self::commit_with(tx, feed).await?;
                Ok(results)
            }

            /// Completes one delivery inside `tx` if `lease` is held.
            async fn complete_one(
                tx: &mut sqlx::Transaction<'_, $db>,
                lease: &LeaseToken,
                outcome: &AttemptOutcome,
                now: i64,
                feed: &mut shared::Feed,
            ) -> Result<DeliveryState, StoreError> {
                let state = outcome.next_state();
                let (next, receipt, error, excerpt) = match outcome {
                    AttemptOutcome::Delivered(receipt) => {
                        (None, Some(receipt), None, Some(receipt.excerpt.as_str()))
                    }
                    AttemptOutcome::Retry { next_attempt_at, reason, excerpt } => (
                        Some(shared::micros(*next_attempt_at)),
                        None,
                        Some(reason.as_str()),
                        Some(excerpt.as_str()),
                    ),
                    AttemptOutcome::Ambiguous { next_attempt_at, reason } => (
                        Some(shared::micros(*next_attempt_at)),
                        None,
                        Some(reason.as_str()),
                        None,
                    ),
                    AttemptOutcome::Dead { reason, excerpt } => {
                        (None, None, Some(reason.as_str()), Some(excerpt.as_str()))
                    }
                    AttemptOutcome::AwaitingClerk { excerpt } => {
                        (None, None, None, Some(excerpt.as_str()))
                    }
                };
                let updated = sqlx::query(
                    "UPDATE deliveries SET state = $4, next_attempt_at = $5, due_at = $5,
                         lease_owner = NULL, lease_expires_at = NULL,
                         receipt_number = $6, receipt_raw_status = $7, receipt_excerpt = $8,
                         last_outcome = $9, last_error = $10, last_excerpt = $11, updated_at = $12
                     WHERE id = $1 AND state = 'sending' AND lease_owner = $2 AND attempts = $3",
                )
                .bind(&lease.delivery_id)
                .bind(&lease.owner)
                .bind(i64::from(lease.attempt))
                .bind(state.as_str())
                .bind(next)
                .bind(receipt.and_then(|r| r.receipt_number.as_deref()))
                .bind(receipt.and_then(|r| r.raw_status.as_deref()))
                .bind(receipt.map(|r| r.excerpt.as_str()))
                .bind(outcome.name())
                .bind(error)
                .bind(excerpt)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                if updated.rows_affected() == 0 {
                    let current: Option<(String, Option<String>)> = sqlx::query_as(
                        "SELECT state, lease_owner FROM deliveries WHERE id = $1",
                    )
                    .bind(&lease.delivery_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                    let Some((state, holder)) = current else {
                        return Err(StoreError::DeliveryNotFound(lease.delivery_id.clone()));
                    };
                    return Err(StoreError::LeaseLost {
                        delivery_id: lease.delivery_id.clone(),
                        state: state.parse()?,
                        holder,
                    });
                }
                sqlx::query(
                    "UPDATE attempts SET finished_at = $3, outcome = $4, reason = $5, excerpt = $6
                     WHERE delivery_id = $1 AND attempt = $2",
                )
                .bind(&lease.delivery_id)
                .bind(i64::from(lease.attempt))
                .bind(now)
                .bind(outcome.name())
                .bind(error)
                .bind(excerpt)
                .execute(&mut **tx)
                .await?;
                if matches!(
                    state,
                    DeliveryState::Delivered | DeliveryState::Dead | DeliveryState::AwaitingClerk
                ) {
                    let (case_id, system_id): (String, String) = sqlx::query_as(
                        "SELECT case_id, system_id FROM deliveries WHERE id = $1",
                    )
                    .bind(&lease.delivery_id)
                    .fetch_one(&mut **tx)
                    .await?;
                    feed.push(&case_id, "delivery_state", Some(&system_id), state.as_str(), now);
                }
                Ok(state)
            }

            async fn do_complete_many(
                &self,
                items: Vec<Completion>,
                now: jiff::Timestamp,
            ) -> Result<Vec<Result<DeliveryState, StoreError>>, StoreError> {
                let now = shared::micros(now);
                let mut tx = self.begin_write().await?;
                let mut results = Vec::with_capacity(items.len());
                let mut feed = shared::Feed::default();
                for item in &items {
                    // A lost lease changes nothing (the guarded UPDATE is the first write).
                    let lease = &item.lease;
                    match Self::complete_one(&mut tx, lease, &item.outcome, now, &mut feed).await {
                        Err(StoreError::Database(error)) => return Err(error.into()),
                        result => results.push(result),
                    }
                }
                Self::commit_with(tx, feed).await?;
                Ok(results)
            }

            async fn do_resolve_clerk(
                &self,
                delivery_id: &str,
                receipt: StoredReceipt,
                now: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                let now = shared::micros(now);
                let mut tx = self.begin_write().await?;
                let row: Option<(String, String)> = sqlx::query_as(
                    "UPDATE deliveries SET state = 'delivered', receipt_number = $2,
                         receipt_raw_status = $3, receipt_excerpt = $4, last_outcome = 'delivered',
                         updated_at = $5
                     WHERE id = $1 AND state = 'awaiting_clerk'
                     RETURNING case_id, system_id",
                )
                .bind(delivery_id)
                .bind(&receipt.receipt_number)
                .bind(&receipt.raw_status)
                .bind(&receipt.excerpt)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((case_id, system_id)) = row else {
                    let state = self.current_state(&mut tx, delivery_id).await?;
                    return Err(StoreError::WrongState {
                        delivery_id: delivery_id.to_owned(),
                        state,
                        expected: "awaiting_clerk",
                    });
                };
                let mut feed = shared::Feed::default();
                feed.push(&case_id, "delivery_state", Some(&system_id), "delivered", now);
                Self::commit_with(tx, feed).await?;
                Ok(())
            }

            /// The state of one delivery, or `DeliveryNotFound`.
            async fn current_state(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                delivery_id: &str,
            ) -> Result<DeliveryState, StoreError> {
                let state: Option<String> =
                    sqlx::query_scalar("SELECT state FROM deliveries WHERE id = $1")
                        .bind(delivery_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                state
                    .ok_or_else(|| StoreError::DeliveryNotFound(delivery_id.to_owned()))?
                    .parse()
            }
        }
    };
}
pub(crate) use write_ops;
