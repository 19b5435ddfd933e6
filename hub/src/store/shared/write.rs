//! Writes: intake (one transaction per batch; the rows through the backend's `write_intake`),
//! completions (`write_completions`), replays, clerk results, case status, status events, the ticket
//! ledger and the change feed (`write_feed`).

/// Generates the write methods of a backend (see the module doc of `shared`).
macro_rules! write_ops {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Writes the feed entries gathered in `feed` (the backend's `write_feed`) and
            /// commits. On PostgreSQL the feed lock is taken there, last, after every row lock:
            /// a transaction holding it never waits for a row, so it cannot be part of a
            /// deadlock, and commit order is cursor order.
            async fn commit_with(
                mut tx: WriteTx,
                feed: shared::Feed,
            ) -> Result<(), StoreError> {
                if !feed.is_empty() {
                    Self::write_feed(&mut tx, feed.entries()).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// Stores a batch of cases in one write. The fast path writes each table with one
            /// statement (one statement in all on PostgreSQL; on SQLite one prepared insert run
            /// per row, see `sqlite_direct`); if the database refuses it, nothing of
            /// it is kept and the batch is written again case by case, each case a write of its
            /// own, so one bad case cannot fail the others.
            async fn do_insert_cases(
                &self,
                cases: &[NewCase],
            ) -> Result<Vec<Result<InsertOutcome, StoreError>>, StoreError> {
                let now = shared::micros(jiff::Timestamp::now());
                match self.insert_batch(cases, now).await {
                    Ok(results) => return Ok(results),
                    // The database refused something in these cases.
                    Err(error @ StoreError::Database(sqlx::Error::Database(_))) => {
                        tracing::warn!(%error, size = cases.len(), "batch insert refused; storing case by case");
                    }
                    // The store cannot write at all (no connection, a failed commit, closed):
                    // each case alone would fail the same way, one after the other.
                    Err(error) => return Err(error),
                }
                let mut results = Vec::with_capacity(cases.len());
                for case in cases {
                    match self.insert_batch(std::slice::from_ref(case), now).await {
                        Ok(mut outcome) => results.extend(outcome.pop()),
                        Err(error) => {
                            tracing::warn!(%error, "case not stored");
                            results.push(Err(error));
                        }
                    }
                }
                Ok(results)
            }

            /// The fast path of [`Self::do_insert_cases`]: every new number is inserted at once
            /// with all its rows; a number already stored is skipped by the insert itself and
            /// answered from a lookup afterwards, so the common batch, all new, needs no lookup.
            async fn insert_batch(
                &self,
                cases: &[NewCase],
                now: i64,
            ) -> Result<Vec<Result<InsertOutcome, StoreError>>, StoreError> {
                use std::collections::HashMap;
                let mut results: Vec<Option<Result<InsertOutcome, StoreError>>> =
                    cases.iter().map(|_| None).collect();
                // The first case of each number gets an id; later repeats in the batch answer
                // like the case they repeat.
                let mut first: HashMap<(&str, &str), usize> = HashMap::new();
                let mut fresh: Vec<(usize, String)> = Vec::new();
                let mut repeats: Vec<(usize, usize)> = Vec::new();
                for (i, case) in cases.iter().enumerate() {
                    if let Err(error) = shared::validate(case) {
                        results[i] = Some(Err(error));
                        continue;
                    }
                    let key = (case.client_id.as_str(), case.case_number.as_str());
                    match first.entry(key) {
                        std::collections::hash_map::Entry::Occupied(earlier) => {
                            repeats.push((i, *earlier.get()));
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(i);
                            fresh.push((i, shared::new_id()));
                        }
                    }
                }
                drop(first);
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
                // Materials, deliveries and payloads of the new cases; targets the intake node
                // claimed are `sending` under its lease, attempt 1 begun.
                let mut rows: Vec<(&str, &NewDelivery, CreatedDelivery)> = Vec::new();
                for (i, case_id) in &fresh {
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
                for (i, case_id) in &fresh {
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
                    // A delivery claimed here begins its first attempt now; its attempt row
                    // is written when the attempt ends.
                    let (state, attempts, next_attempt_at, lease_owner, lease_expires_at, due_at) =
                        match &d.claimed {
                            Some((lease, expires)) => {
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
                        attempt_started_at: d.claimed.as_ref().map(|_| now),
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
                // The backend writes the rows, looks up the numbers stored before, adds the
                // feed entries of the cases inserted and commits.
                let written = self.write_intake(&case_rows, added).await?;
                drop(case_rows);
                // The cases inserted, and for the numbers stored before, their case as stored
                // (id, content hash), by the index of the batch's first case of that number.
                let mut created: Vec<(usize, &str)> = Vec::with_capacity(fresh.len());
                let mut stored: HashMap<usize, (String, String)> = HashMap::new();
                for (i, id) in &fresh {
                    let case = &cases[*i];
                    if written.inserted.contains(id) {
                        created.push((*i, id.as_str()));
                        continue;
                    }
                    let Some((existing, hash)) = written.stored.get(id) else {
                        return Err(StoreError::Invalid(format!(
                            "case {} was neither stored nor found", case.case_number
                        )));
                    };
                    results[*i] = Some(Ok(if *hash == case.content_hash {
                        InsertOutcome::Existing { case_id: existing.clone() }
                    } else {
                        InsertOutcome::Conflict { case_id: existing.clone() }
                    }));
                    stored.insert(*i, (existing.clone(), hash.clone()));
                }
                let new_ids: HashMap<usize, &str> = created.iter().copied().collect();
                for (i, earlier) in repeats {
                    let (id, hash) = match (stored.get(&earlier), new_ids.get(&earlier)) {
                        (Some((id, hash)), _) => (id.as_str(), hash.as_str()),
                        (None, Some(id)) => (*id, cases[earlier].content_hash.as_str()),
                        (None, None) => continue,
                    };
                    results[i] = Some(Ok(if hash == cases[i].content_hash {
                        InsertOutcome::Existing { case_id: id.to_owned() }
                    } else {
                        InsertOutcome::Conflict { case_id: id.to_owned() }
                    }));
                }
                let mut per_case: HashMap<&str, Vec<CreatedDelivery>> = HashMap::new();
                for (case_id, _, d) in rows {
                    per_case.entry(case_id).or_default().push(d);
                }
                for (i, case_id) in &created {
                    let deliveries = per_case.remove(case_id).unwrap_or_default();
                    results[*i] = Some(Ok(InsertOutcome::Created {
                        case_id: (*case_id).to_owned(),
                        deliveries,
                    }));
                }
                Ok(results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(StoreError::Invalid("case left unanswered".to_owned()))))
                    .collect())
            }

            /// Records a batch of outcomes in one transaction (the backend's `write_completions`):
            /// a guarded update of the deliveries (only rows whose lease is still held change),
            /// then the matching attempt rows. A delivery whose lease was lost changes nothing
            /// and gets `LeaseLost` (or `DeliveryNotFound`).
            async fn do_complete_many(
                &self,
                items: &[Completion],
                now: jiff::Timestamp,
            ) -> Result<Vec<Result<DeliveryState, StoreError>>, StoreError> {
                let now = shared::micros(now);
                let mut states = Vec::with_capacity(items.len());
                let rows: Vec<shared::CompletionRow<'_>> = items
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
                        let state = outcome.next_state();
                        states.push(state);
                        shared::CompletionRow {
                            delivery_id: item.lease.delivery_id.as_str(),
                            owner: item.lease.owner.as_str(),
                            attempt: i64::from(item.lease.attempt),
                            state: state.as_str(),
                            next_attempt_at: next,
                            receipt_number: receipt.and_then(|x| x.receipt_number.as_deref()),
                            receipt_raw_status: receipt.and_then(|x| x.raw_status.as_deref()),
                            receipt_excerpt: receipt.map(|x| x.excerpt.as_str()),
                            outcome: outcome.name(),
                            error,
                            excerpt,
                        }
                    })
                    .collect();
                // The backend updates the rows whose lease held, reads the others, adds the
                // feed entries of the deliveries that ended and commits.
                let written = match self.write_completions(&rows, now).await {
                    Ok(written) => written,
                    // The database refused something in these outcomes: nothing of the batch
                    // was kept. Each is written again alone, so one it refuses cannot keep the
                    // others from being recorded (and their deliveries from being sent again
                    // once their leases expire). If none can be written alone either, the
                    // refusal is the batch's (a permission, a passing conflict), not one
                    // outcome's: the batch fails whole, and the caller may try it again.
                    Err(error @ StoreError::Database(sqlx::Error::Database(_)))
                        if rows.len() > 1 =>
                    {
                        tracing::warn!(%error, size = rows.len(), "outcomes refused; recording one by one");
                        let mut results = Vec::with_capacity(rows.len());
                        let mut any_written = false;
                        for (row, state) in rows.iter().zip(states) {
                            let one = std::slice::from_ref(row);
                            results.push(match self.write_completions(one, now).await {
                                Ok(written) => {
                                    any_written = true;
                                    Self::completed(one, vec![state], &written)?
                                        .pop()
                                        .unwrap_or(Ok(state))
                                }
                                Err(error) => {
                                    tracing::warn!(delivery = %row.delivery_id, %error, "outcome refused");
                                    Err(error)
                                }
                            });
                        }
                        return if any_written { Ok(results) } else { Err(error) };
                    }
                    Err(error) => return Err(error),
                };
                Self::completed(&rows, states, &written)
            }

            /// What [`Self::do_complete_many`] answers for `rows` once `written`: the state of
            /// each row whose lease held, why not for the others.
            fn completed(
                rows: &[shared::CompletionRow<'_>],
                states: Vec<DeliveryState>,
                written: &shared::CompletionsWritten,
            ) -> Result<Vec<Result<DeliveryState, StoreError>>, StoreError> {
                let mut results = Vec::with_capacity(rows.len());
                for (r, state) in rows.iter().zip(states) {
                    if written.updated.contains_key(r.delivery_id) {
                        results.push(Ok(state));
                        continue;
                    }
                    results.push(match written.current.get(r.delivery_id) {
                        Some(Some((state, holder))) => Err(StoreError::LeaseLost {
                            delivery_id: r.delivery_id.to_owned(),
                            state: state.parse()?,
                            holder: holder.clone(),
                        }),
                        Some(None) | None => {
                            Err(StoreError::DeliveryNotFound(r.delivery_id.to_owned()))
                        }
                    });
                }
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
                Self::count_moved(&mut tx, &system_id, "awaiting_clerk", "delivered", 1).await?;
                let mut feed = shared::Feed::default();
                feed.push(&case_id, "delivery_state", Some(&system_id), "delivered", now);
                Self::commit_with(tx, feed).await?;
                Ok(())
            }

            /// Counts `n` deliveries of `system` moved from `from` to `to`, where the backend
            /// counts in code ([`Self::COUNT_CHANGE`]; PostgreSQL's triggers count by
            /// themselves).
            async fn count_moved(
                tx: &mut WriteTx,
                system: &str,
                from: &str,
                to: &str,
                n: i64,
            ) -> Result<(), StoreError> {
                let Some(change) = Self::COUNT_CHANGE else {
                    return Ok(());
                };
                for (state, n) in [(from, -n), (to, n)] {
                    sqlx::query(change)
                        .bind(system)
                        .bind(state)
                        .bind(n)
                        .execute(&mut **tx)
                        .await?;
                }
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
