//! Claiming due deliveries under a lease, and extending a lease.
//!
//! Candidates come from the `due_at` indexes (`(system_id, due_at)` for listed systems, `(due_at)`
//! for the rest), oldest first, locked with `LOCK_ROWS` (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
//! so concurrent claimers on several nodes never take the same row; nothing on SQLite, where the
//! write transaction already excludes every other writer).

/// Generates `do_claim_due` and `do_extend_lease` for a backend.
macro_rules! claim_ops {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Due candidates `(id, system_id)`, at most `limit` and each system's cap.
            async fn due_candidates(
                tx: &mut WriteTx,
                now: i64,
                limit: usize,
                caps: &ClaimCaps,
            ) -> Result<Vec<(String, String)>, StoreError> {
                // One statement per chunk of listed systems: a UNION ALL of one index probe per
                // system (each its own ORDER BY … LIMIT, and on PostgreSQL its own row locks),
                // instead of one round trip per system.
                let mut picked: Vec<(String, String)> = Vec::new();
                let listed: Vec<(&String, usize)> =
                    caps.per_system.iter().map(|(s, c)| (s, *c)).filter(|(_, c)| *c > 0).collect();
                for chunk in listed.chunks(Self::CLAIM_CHUNK) {
                    let room = limit.saturating_sub(picked.len());
                    if room == 0 {
                        break;
                    }
                    let mut query = sqlx::QueryBuilder::<$db>::new("");
                    for (i, (system, cap)) in chunk.iter().enumerate() {
                        if i > 0 {
                            query.push(" UNION ALL ");
                        }
                        query.push("SELECT id, system_id FROM (SELECT id, system_id FROM deliveries WHERE system_id = ");
                        query.push_bind(system.as_str());
                        query.push(" AND due_at IS NOT NULL AND due_at <= ");
                        query.push_bind(now);
                        query.push(" ORDER BY due_at LIMIT ");
                        query.push_bind(i64::try_from((*cap).min(room)).unwrap_or(i64::MAX));
                        query.push(Self::LOCK_ROWS);
                        query.push(format!(") AS c{i}"));
                    }
                    // Kept prepared: the text depends only on how many systems have room, so
                    // it repeats from round to round, and parsing a compound of one probe per
                    // system costs more than running it.
                    let rows: Vec<(String, String)> =
                        query.build_query_as().fetch_all(&mut **tx).await?;
                    // Over `limit` only when several systems filled up at once; the surplus
                    // (locked but not updated on PostgreSQL) is released at commit.
                    picked.extend(rows.into_iter().take(room));
                }
                let Some(other_cap) = caps.others.filter(|cap| *cap > 0) else {
                    return Ok(picked);
                };
                let room = limit.saturating_sub(picked.len());
                if room == 0 {
                    return Ok(picked);
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, system_id FROM deliveries WHERE due_at IS NOT NULL AND due_at <= ",
                );
                query.push_bind(now);
                if !caps.per_system.is_empty() {
                    query.push(" AND system_id NOT IN (");
                    let mut list = query.separated(", ");
                    for system in caps.per_system.keys() {
                        list.push_bind(system.as_str());
                    }
                    query.push(")");
                }
                query.push(" ORDER BY due_at LIMIT ");
                query.push_bind(i64::try_from(room).unwrap_or(i64::MAX));
                query.push(Self::LOCK_ROWS);
                let rows: Vec<(String, String)> =
                    query.build_query_as().fetch_all(&mut **tx).await?;
                let mut taken: std::collections::BTreeMap<String, usize> = Default::default();
                for (id, system) in rows {
                    let count = taken.entry(system.clone()).or_default();
                    if *count < other_cap {
                        *count += 1;
                        picked.push((id, system));
                    }
                }
                Ok(picked)
            }

            async fn do_claim_due(
                &self,
                node_id: &str,
                now: jiff::Timestamp,
                limit: usize,
                lease: std::time::Duration,
                caps: &ClaimCaps,
            ) -> Result<Vec<ClaimedDelivery>, StoreError> {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let expires = shared::plus(now, lease);
                let now = shared::micros(now);
                let mut tx = self.begin_write().await?;
                let picked = Self::due_candidates(&mut tx, now, limit, caps).await?;
                if picked.is_empty() {
                    tx.commit().await?;
                    return Ok(Vec::new());
                }
                // A delivery still `sending` here has an expired lease: its node died mid-attempt.
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE attempts SET finished_at = ",
                );
                query.push_bind(now);
                query.push(", outcome = 'lease_expired' WHERE finished_at IS NULL AND delivery_id IN (");
                let mut list = query.separated(", ");
                for (id, _) in &picked {
                    list.push_bind(id.as_str());
                }
                query.push(")");
                query.build().execute(&mut *tx).await?;

                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE deliveries SET last_outcome = CASE WHEN state = 'sending'
                         THEN 'lease_expired' ELSE last_outcome END,
                         state = 'sending', attempts = attempts + 1, lease_owner = ",
                );
                query.push_bind(node_id);
                query.push(", lease_expires_at = ");
                query.push_bind(expires);
                query.push(", due_at = ");
                query.push_bind(expires);
                query.push(", next_attempt_at = NULL, updated_at = ");
                query.push_bind(now);
                query.push(" WHERE id IN (");
                let mut list = query.separated(", ");
                for (id, _) in &picked {
                    list.push_bind(id.as_str());
                }
                query.push(
                    ") RETURNING id, case_id, system_id, idempotency_key, attempts, last_outcome",
                );
                let rows: Vec<(String, String, String, String, i64, Option<String>)> =
                    query.build_query_as().fetch_all(&mut *tx).await?;

                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO attempts (delivery_id, attempt, node_id, started_at) ",
                );
                insert.push_values(&rows, |mut row, r| {
                    row.push_bind(r.0.as_str())
                        .push_bind(r.4)
                        .push_bind(node_id)
                        .push_bind(now);
                });
                insert.build().execute(&mut *tx).await?;

                let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
                let case_ids: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
                let mut payloads = Self::payloads_of(&mut tx, &ids).await?;
                let mut materials = Self::materials_of(&mut tx, &case_ids).await?;
                tx.commit().await?;

                let lease_expires_at = shared::timestamp(expires, "deliveries")?;
                let mut claimed = Vec::with_capacity(rows.len());
                for (id, case_id, system_id, key, attempts, previous) in rows {
                    let payload = payloads.remove(&id).ok_or_else(|| StoreError::Corrupt {
                        table: "payloads",
                        detail: format!("delivery {id} has no payload"),
                    })?;
                    claimed.push(ClaimedDelivery {
                        lease: LeaseToken {
                            delivery_id: id,
                            owner: node_id.to_owned(),
                            attempt: shared::count_u32(attempts, "deliveries")?,
                        },
                        materials: materials.get(&case_id).cloned().unwrap_or_default(),
                        case_id,
                        system_id,
                        idempotency_key: key,
                        lease_expires_at,
                        payload,
                        previous_outcome: previous,
                    });
                }
                materials.clear();
                tracing::debug!(node_id, claimed = claimed.len(), "claimed due deliveries");
                Ok(claimed)
            }

            async fn do_extend_leases(
                &self,
                leases: &[LeaseToken],
                until: jiff::Timestamp,
            ) -> Result<Vec<String>, StoreError> {
                if leases.is_empty() {
                    return Ok(Vec::new());
                }
                let until = shared::micros(until);
                let mut tx = self.begin_write().await?;
                // Locked in id order first, as completions lock them (see `lock_deliveries`).
                let ids: Vec<&str> = leases.iter().map(|l| l.delivery_id.as_str()).collect();
                Self::lock_deliveries(&mut tx, &ids).await?;
                let mut kept = std::collections::HashSet::with_capacity(leases.len());
                for chunk in leases.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE deliveries SET lease_expires_at = ",
                    );
                    query.push_bind(until);
                    query.push(", due_at = ");
                    query.push_bind(until);
                    query.push(" FROM (");
                    query.push_values(chunk, |mut b, lease| {
                        b.push_bind(lease.delivery_id.as_str())
                            .push_bind(lease.owner.as_str())
                            .push_bind(i64::from(lease.attempt));
                    });
                    query.push(
                        ") AS v WHERE deliveries.id = v.column1 AND deliveries.state = 'sending'
                         AND deliveries.lease_owner = v.column2 AND deliveries.attempts = v.column3
                         RETURNING deliveries.id",
                    );
                    let ids: Vec<String> = query
                        .build_query_scalar()
                        .persistent(false)
                        .fetch_all(&mut *tx)
                        .await?;
                    kept.extend(ids);
                }
                tx.commit().await?;
                Ok(leases
                    .iter()
                    .filter(|l| !kept.contains(&l.delivery_id))
                    .map(|l| l.delivery_id.clone())
                    .collect())
            }

            async fn do_extend_lease(
                &self,
                lease: &LeaseToken,
                until: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                let until = shared::micros(until);
                let mut tx = self.begin_write().await?;
                let updated = sqlx::query(
                    "UPDATE deliveries SET lease_expires_at = $4, due_at = $4
                     WHERE id = $1 AND state = 'sending' AND lease_owner = $2 AND attempts = $3",
                )
                .bind(&lease.delivery_id)
                .bind(&lease.owner)
                .bind(i64::from(lease.attempt))
                .bind(until)
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    let holder: Option<Option<String>> =
                        sqlx::query_scalar("SELECT lease_owner FROM deliveries WHERE id = $1")
                            .bind(&lease.delivery_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let state = self.current_state(&mut tx, &lease.delivery_id).await?;
                    return Err(StoreError::LeaseLost {
                        delivery_id: lease.delivery_id.clone(),
                        state,
                        holder: holder.flatten(),
                    });
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use claim_ops;
