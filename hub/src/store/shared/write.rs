//! Writes: intake (one transaction and a few multi-row statements per batch), completions, replays,
//! clerk results, case status, status events, the ticket ledger and the change feed.

/// Generates the write methods of a backend (see the module doc of `shared`).
macro_rules! write_ops {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Writes the feed entries gathered in `feed` and commits. On PostgreSQL the feed lock
            /// is taken here, last, after every row lock: a transaction holding it never waits
            /// for a row, so it cannot be part of a deadlock, and commit order is cursor order.
            async fn commit_with(
                mut tx: WriteTx,
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

            /// Stores a batch of cases in one transaction. The fast path writes each table with
            /// one multi-row statement per chunk (a handful of statements per batch instead of
            /// several per case); if the database refuses it, the batch is written again case by
            /// case, each in its own savepoint, so one bad case cannot fail the others.
            async fn do_insert_cases(
                &self,
                cases: &[NewCase],
            ) -> Result<Vec<Result<InsertOutcome, StoreError>>, StoreError> {
                let now = shared::micros(jiff::Timestamp::now());
                let mut tx = self.begin_write().await?;
                let mut feed = shared::Feed::default();
                let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                match Self::insert_batch(&mut savepoint, cases, now, &mut feed).await {
                    Ok(results) => {
                        savepoint.commit().await?;
                        Self::commit_with(tx, feed).await?;
                        return Ok(results);
                    }
                    Err(error) => {
                        savepoint.rollback().await?;
                        tracing::warn!(%error, size = cases.len(), "batch insert refused; storing case by case");
                        feed = shared::Feed::default();
                    }
                }
                let mut results = Vec::with_capacity(cases.len());
                for case in cases {
                    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                    let one = std::slice::from_ref(case);
                    match Self::insert_batch(&mut savepoint, one, now, &mut feed).await {
                        Ok(mut outcome) => {
                            savepoint.commit().await?;
                            results.extend(outcome.pop());
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

            /// The fast path of [`Self::do_insert_cases`]: numbers already stored (or repeated
            /// inside the batch) are answered from one lookup, the new cases inserted together.
            async fn insert_batch(
                tx: &mut sqlx::Transaction<'_, $db>,
                cases: &[NewCase],
                now: i64,
                feed: &mut shared::Feed,
            ) -> Result<Vec<Result<InsertOutcome, StoreError>>, StoreError> {
                use std::collections::{HashMap, HashSet};
                const ROWS: usize = 400;
                let mut results: Vec<Option<Result<InsertOutcome, StoreError>>> =
                    cases.iter().map(|_| None).collect();
                // Numbers stored before: (client, number) → (id, hash).
                let mut known: HashMap<(&str, &str), (String, String)> = HashMap::new();
                let mut by_client: HashMap<&str, Vec<&str>> = HashMap::new();
                for case in cases {
                    by_client.entry(&case.client_id).or_default().push(&case.case_number);
                }
                for (client, numbers) in &by_client {
                    for chunk in numbers.chunks(ROWS) {
                        let mut query = sqlx::QueryBuilder::<$db>::new(
                            "SELECT case_number, id, content_hash FROM cases WHERE client_id = ",
                        );
                        query.push_bind(*client);
                        query.push(" AND case_number IN (");
                        let mut list = query.separated(", ");
                        for number in chunk {
                            list.push_bind(*number);
                        }
                        query.push(")");
                        let rows: Vec<(String, String, String)> =
                            query.build_query_as().persistent(false).fetch_all(&mut **tx).await?;
                        for (number, id, hash) in rows {
                            let number = chunk.iter().find(|n| **n == number).copied().unwrap_or("");
                            known.insert((client, number), (id, hash));
                        }
                    }
                }
                // The new cases, each number once; later repeats answer like stored ones.
                let mut fresh: Vec<(usize, String)> = Vec::new();
                for (i, case) in cases.iter().enumerate() {
                    if let Err(error) = shared::validate(case) {
                        results[i] = Some(Err(error));
                        continue;
                    }
                    let key = (case.client_id.as_str(), case.case_number.as_str());
                    if let Some((id, hash)) = known.get(&key) {
                        results[i] = Some(Ok(if *hash == case.content_hash {
                            InsertOutcome::Existing { case_id: id.clone() }
                        } else {
                            InsertOutcome::Conflict { case_id: id.clone() }
                        }));
                        continue;
                    }
                    let case_id = shared::new_id();
                    known.insert(key, (case_id.clone(), case.content_hash.clone()));
                    fresh.push((i, case_id));
                }
                // Insert; a number another node stored meanwhile (PostgreSQL) is skipped here
                // and answered from a second lookup below.
                let case_rows: Vec<shared::CaseRow<'_>> = fresh
                    .iter()
                    .map(|(i, id)| {
                        let case = &cases[*i];
                        shared::CaseRow {
                            id: id.as_str(),
                            client_id: case.client_id.as_str(),
                            case_number: case.case_number.as_str(),
                            content_hash: case.content_hash.as_str(),
                            case_json: case.case_json.to_string(),
                            applicant_id_number: case.applicant_id_number.as_deref(),
                            credit_code: case.credit_code.as_deref(),
                            status: case.status.as_str(),
                            now,
                        }
                    })
                    .collect();
                let inserted: HashSet<String> =
                    Self::insert_case_rows(&mut **tx, &case_rows).await?.into_iter().collect();
                drop(case_rows);
                let mut created: Vec<(usize, String)> = Vec::with_capacity(fresh.len());
                for (i, id) in fresh {
                    if inserted.contains(&id) {
                        created.push((i, id));
                        continue;
                    }
                    let case = &cases[i];
                    let (existing, hash): (String, String) = sqlx::query_as(
                        "SELECT id, content_hash FROM cases WHERE client_id = $1 AND case_number = $2",
                    )
                    .bind(&case.client_id)
                    .bind(&case.case_number)
                    .fetch_one(&mut **tx)
                    .await?;
                    results[i] = Some(Ok(if hash == case.content_hash {
                        InsertOutcome::Existing { case_id: existing }
                    } else {
                        InsertOutcome::Conflict { case_id: existing }
                    }));
                }
                // Materials, deliveries and payloads of the created cases; targets the intake
                // node claimed are `sending` under its lease, attempt 1 begun.
                let mut rows: Vec<(&str, &NewDelivery, CreatedDelivery)> = Vec::new();
                for (i, case_id) in &created {
                    // The intake claim's lease, the same for every claimed target of the case.
                    let claim = cases[*i].claim.as_ref().map(|c| {
                        let lease = i64::try_from(c.lease.as_micros()).unwrap_or(i64::MAX);
                        let expires = jiff::Timestamp::from_microsecond(now.saturating_add(lease))
                            .unwrap_or(jiff::Timestamp::MAX);
                        (c, expires)
                    });
                    for target in &cases[*i].targets {
                        let delivery_id = shared::new_id();
                        let claimed = claim
                            .filter(|(c, _)| c.systems.contains(&target.system_id))
                            .map(|(c, expires)| {
                                let lease = LeaseToken {
                                    delivery_id: delivery_id.clone(),
                                    owner: c.owner.clone(),
                                    attempt: 1,
                                };
                                (lease, expires)
                            });
                        rows.push((
                            case_id.as_str(),
                            target,
                            CreatedDelivery {
                                idempotency_key: delivery_id.clone(),
                                delivery_id,
                                system_id: target.system_id.clone(),
                                claimed,
                            },
                        ));
                    }
                }
                let mut added = shared::IntakeRows::default();
                for (i, case_id) in &created {
                    for (position, m) in cases[*i].materials.iter().enumerate() {
                        added.materials.push(shared::MaterialRow {
                            case_id: case_id.as_str(),
                            position: i64::try_from(position).unwrap_or(i64::MAX),
                            name: m.name.as_str(),
                            sha256: m.sha256.as_str(),
                            size: i64::try_from(m.size).unwrap_or(i64::MAX),
                            media_type: m.media_type.as_str(),
                            path: m.path.as_str(),
                        });
                    }
                }
                for (case_id, t, d) in &rows {
                    let (state, attempts, next_attempt_at, lease_owner, lease_expires_at, due_at) =
                        match &d.claimed {
                            Some((lease, expires)) => {
                                added.attempts.push(shared::AttemptRow {
                                    delivery_id: lease.delivery_id.as_str(),
                                    attempt: i64::from(lease.attempt),
                                    node_id: lease.owner.as_str(),
                                    started_at: now,
                                });
                                let expires = shared::micros(*expires);
                                ("sending", 1, None, Some(lease.owner.as_str()), Some(expires), expires)
                            }
                            None => ("queued", 0, Some(now), None, None, now),
                        };
                    added.deliveries.push(shared::DeliveryRow {
                        id: d.delivery_id.as_str(),
                        case_id,
                        system_id: d.system_id.as_str(),
                        idempotency_key: d.idempotency_key.as_str(),
                        state,
                        attempts,
                        next_attempt_at,
                        lease_owner,
                        lease_expires_at,
                        due_at,
                        mapping_version: t.payload.mapping_version.as_str(),
                        now,
                    });
                    added.payloads.push(shared::PayloadRow {
                        delivery_id: d.delivery_id.as_str(),
                        mapping_version: t.payload.mapping_version.as_str(),
                        content_type: t.payload.content_type.as_str(),
                        extension: t.payload.extension.as_str(),
                        body: t.payload.body.as_slice(),
                        fields_json: shared::fields_to_json(&t.payload.fields),
                    });
                }
                Self::insert_rows(&mut **tx, &added).await?;
                drop(added);
                let mut per_case: HashMap<&str, Vec<CreatedDelivery>> = HashMap::new();
                for (case_id, _, d) in rows {
                    per_case.entry(case_id).or_default().push(d);
                }
                for (i, case_id) in &created {
                    feed.push(case_id, "case_created", None, &cases[*i].status, now);
                    let deliveries = per_case.remove(case_id.as_str()).unwrap_or_default();
                    results[*i] = Some(Ok(InsertOutcome::Created {
                        case_id: case_id.clone(),
                        deliveries,
                    }));
                }
                Ok(results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(StoreError::Invalid("case left unanswered".to_owned()))))
                    .collect())
            }

            /// Records a batch of outcomes in one transaction with a few multi-row statements:
            /// one guarded `UPDATE … FROM (VALUES …)` per chunk (only rows whose lease is still
            /// held change), then the matching attempt rows. A delivery whose lease was lost
            /// changes nothing and gets `LeaseLost` (or `DeliveryNotFound`).
            async fn do_complete_many(
                &self,
                items: Vec<Completion>,
                now: jiff::Timestamp,
            ) -> Result<Vec<Result<DeliveryState, StoreError>>, StoreError> {
                const ROWS: usize = 300;
                struct Row<'a> {
                    lease: &'a LeaseToken,
                    state: DeliveryState,
                    name: &'static str,
                    next: Option<i64>,
                    receipt: Option<&'a StoredReceipt>,
                    error: Option<&'a str>,
                    excerpt: Option<&'a str>,
                }
                let now = shared::micros(now);
                let rows: Vec<Row<'_>> = items
                    .iter()
                    .map(|item| {
                        let outcome = &item.outcome;
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
                        Row {
                            lease: &item.lease,
                            state: outcome.next_state(),
                            name: outcome.name(),
                            next,
                            receipt,
                            error,
                            excerpt,
                        }
                    })
                    .collect();
                let mut tx = self.begin_write().await?;
                let mut feed = shared::Feed::default();
                // delivery id → (case id, system id) of the rows whose lease held.
                let mut updated: std::collections::HashMap<String, (String, String)> =
                    std::collections::HashMap::with_capacity(rows.len());
                for chunk in rows.chunks(ROWS) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE deliveries SET state = v.column4, next_attempt_at = v.column5,
                             due_at = v.column5, lease_owner = NULL, lease_expires_at = NULL,
                             receipt_number = v.column6, receipt_raw_status = v.column7,
                             receipt_excerpt = v.column8, last_outcome = v.column9,
                             last_error = v.column10, last_excerpt = v.column11, updated_at = ",
                    );
                    query.push_bind(now);
                    query.push(" FROM (");
                    query.push_values(chunk, |mut b, r| {
                        b.push_bind(r.lease.delivery_id.as_str())
                            .push_bind(r.lease.owner.as_str())
                            .push_bind(i64::from(r.lease.attempt))
                            .push_bind(r.state.as_str())
                            .push_bind(r.next)
                            .push_bind(r.receipt.and_then(|x| x.receipt_number.as_deref()))
                            .push_bind(r.receipt.and_then(|x| x.raw_status.as_deref()))
                            .push_bind(r.receipt.map(|x| x.excerpt.as_str()))
                            .push_bind(r.name)
                            .push_bind(r.error)
                            .push_bind(r.excerpt);
                    });
                    query.push(
                        ") AS v WHERE deliveries.id = v.column1 AND deliveries.state = 'sending'
                         AND deliveries.lease_owner = v.column2 AND deliveries.attempts = v.column3
                         RETURNING deliveries.id, deliveries.case_id, deliveries.system_id",
                    );
                    let changed: Vec<(String, String, String)> = query
                        .build_query_as()
                        .persistent(false)
                        .fetch_all(&mut *tx)
                        .await?;
                    for (id, case_id, system_id) in changed {
                        updated.insert(id, (case_id, system_id));
                    }
                    let held: Vec<&Row<'_>> = chunk
                        .iter()
                        .filter(|r| updated.contains_key(&r.lease.delivery_id))
                        .collect();
                    if held.is_empty() {
                        continue;
                    }
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE attempts SET finished_at = ",
                    );
                    query.push_bind(now);
                    query.push(
                        ", outcome = v.column3, reason = v.column4, excerpt = v.column5 FROM (",
                    );
                    query.push_values(held, |mut b, r| {
                        b.push_bind(r.lease.delivery_id.as_str())
                            .push_bind(i64::from(r.lease.attempt))
                            .push_bind(r.name)
                            .push_bind(r.error)
                            .push_bind(r.excerpt);
                    });
                    query.push(
                        ") AS v WHERE attempts.delivery_id = v.column1 AND attempts.attempt = v.column2",
                    );
                    query.build().persistent(false).execute(&mut *tx).await?;
                }
                let mut results = Vec::with_capacity(rows.len());
                for r in &rows {
                    if let Some((case_id, system_id)) = updated.get(&r.lease.delivery_id) {
                        if matches!(
                            r.state,
                            DeliveryState::Delivered
                                | DeliveryState::Dead
                                | DeliveryState::AwaitingClerk
                        ) {
                            feed.push(case_id, "delivery_state", Some(system_id), r.state.as_str(), now);
                        }
                        results.push(Ok(r.state));
                        continue;
                    }
                    let current: Option<(String, Option<String>)> = sqlx::query_as(
                        "SELECT state, lease_owner FROM deliveries WHERE id = $1",
                    )
                    .bind(&r.lease.delivery_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    results.push(match current {
                        None => Err(StoreError::DeliveryNotFound(r.lease.delivery_id.clone())),
                        Some((state, holder)) => Err(StoreError::LeaseLost {
                            delivery_id: r.lease.delivery_id.clone(),
                            state: state.parse()?,
                            holder,
                        }),
                    });
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
                tx: &mut WriteTx,
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
