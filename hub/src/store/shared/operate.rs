//! Operator and status writes: replays, case status, status events, the jump-ticket ledger.

/// Generates the operator and status write methods of a backend.
macro_rules! operate_ops {
    ($store:ty, $db:ty) => {
        impl $store {
            async fn do_node_heartbeat(
                &self,
                node_id: &str,
                now: jiff::Timestamp,
                live_since: jiff::Timestamp,
            ) -> Result<Vec<String>, StoreError> {
                const GONE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
                let forget = shared::micros(now) - i64::try_from(GONE.as_micros()).unwrap_or(0);
                let now = shared::micros(now);
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO nodes (node_id, started_at, seen_at) VALUES ($1, $2, $2)
                     ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at",
                )
                .bind(node_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM nodes WHERE seen_at < $1")
                    .bind(forget)
                    .execute(&mut *tx)
                    .await?;
                let live: Vec<String> = sqlx::query_scalar(
                    "SELECT node_id FROM nodes WHERE seen_at >= $1 OR node_id = $2 ORDER BY node_id",
                )
                .bind(shared::micros(live_since))
                .bind(node_id)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(live)
            }

            async fn do_share_breaker(
                &self,
                system_id: &str,
                node_id: &str,
                open_until: Option<jiff::Timestamp>,
                now: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                match open_until {
                    Some(until) => {
                        sqlx::query(
                            "INSERT INTO breakers (system_id, open_until, opened_by)
                             VALUES ($1, $2, $3)
                             ON CONFLICT (system_id) DO UPDATE
                             SET open_until = excluded.open_until, opened_by = excluded.opened_by
                             WHERE breakers.open_until < excluded.open_until",
                        )
                        .bind(system_id)
                        .bind(shared::micros(until))
                        .bind(node_id)
                        .execute(&mut *tx)
                        .await?;
                        // Delivered to the listening nodes at commit.
                        if let Some(signal) = Self::BREAKER_SIGNAL {
                            sqlx::query(signal).bind(system_id).execute(&mut *tx).await?;
                        }
                    }
                    None => {
                        sqlx::query(
                            "DELETE FROM breakers WHERE system_id = $1 AND open_until <= $2",
                        )
                        .bind(system_id)
                        .bind(shared::micros(now))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn do_open_breakers(
                &self,
                now: jiff::Timestamp,
            ) -> Result<Vec<(String, jiff::Timestamp)>, StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT system_id, open_until FROM breakers WHERE open_until > $1
                     ORDER BY system_id",
                )
                .bind(shared::micros(now))
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(|(system, until)| Ok((system, shared::timestamp(until, "breakers")?)))
                    .collect()
            }

            async fn do_node_leave(&self, node_id: &str) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM nodes WHERE node_id = $1")
                    .bind(node_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn do_replay(
                &self,
                selector: &ReplaySelector,
                actor: &str,
                reason: &str,
                now: jiff::Timestamp,
            ) -> Result<Vec<ReplayRecord>, StoreError> {
                let at = now;
                let now = shared::micros(now);
                let mut tx = self.begin_write().await?;
                let select = "SELECT id, case_id, system_id, attempts FROM deliveries
                              WHERE state = 'dead'";
                let rows: Vec<(String, String, String, i64)> = match selector {
                    ReplaySelector::One(id) => {
                        let rows: Vec<(String, String, String, i64)> =
                            sqlx::query_as(&format!("{select} AND id = $1"))
                                .bind(id)
                                .fetch_all(&mut *tx)
                                .await?;
                        if rows.is_empty() {
                            let state = self.current_state(&mut tx, id).await?;
                            return Err(StoreError::WrongState {
                                delivery_id: id.clone(),
                                state,
                                expected: "dead",
                            });
                        }
                        rows
                    }
                    ReplaySelector::System(system) => {
                        sqlx::query_as(&format!("{select} AND system_id = $1 ORDER BY id"))
                            .bind(system)
                            .fetch_all(&mut *tx)
                            .await?
                    }
                    ReplaySelector::Range {
                        system_id,
                        from,
                        to,
                    } => {
                        sqlx::query_as(&format!(
                            "{select} AND updated_at >= $1 AND updated_at < $2
                             AND ($3 IS NULL OR system_id = $3) ORDER BY id"
                        ))
                        .bind(shared::micros(*from))
                        .bind(shared::micros(*to))
                        .bind(system_id.as_deref())
                        .fetch_all(&mut *tx)
                        .await?
                    }
                };
                let mut records = Vec::with_capacity(rows.len());
                let mut feed = shared::Feed::default();
                // Deliveries put back per system, counted once per system at the end.
                let mut replayed: std::collections::BTreeMap<String, i64> = Default::default();
                for (delivery_id, case_id, system_id, attempts) in rows {
                    sqlx::query(
                        "UPDATE deliveries SET state = 'queued', next_attempt_at = $2, due_at = $2,
                             updated_at = $2
                         WHERE id = $1 AND state = 'dead'",
                    )
                    .bind(&delivery_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    *replayed.entry(system_id.clone()).or_default() += 1;
                    let record = ReplayRecord {
                        replay_id: shared::new_id(),
                        delivery_id,
                        actor: actor.to_owned(),
                        reason: reason.to_owned(),
                        at,
                        after_attempt: shared::count_u32(attempts, "deliveries")?,
                    };
                    sqlx::query(
                        "INSERT INTO replays (id, delivery_id, actor, reason, at, after_attempt)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&record.replay_id)
                    .bind(&record.delivery_id)
                    .bind(actor)
                    .bind(reason)
                    .bind(now)
                    .bind(attempts)
                    .execute(&mut *tx)
                    .await?;
                    feed.push(&case_id, "delivery_state", Some(&system_id), "queued", now);
                    records.push(record);
                }
                for (system_id, n) in &replayed {
                    Self::count_moved(&mut tx, system_id, "dead", "queued", *n).await?;
                }
                Self::commit_with(tx, feed).await?;
                tracing::info!(actor, replayed = records.len(), "dead letters replayed");
                Ok(records)
            }

            async fn do_set_case_status(
                &self,
                case_id: &str,
                status: &str,
                now: jiff::Timestamp,
            ) -> Result<(), StoreError> {
                let now = shared::micros(now);
                let mut tx = self.begin_write().await?;
                let updated =
                    sqlx::query("UPDATE cases SET status = $2, updated_at = $3 WHERE id = $1")
                        .bind(case_id)
                        .bind(status)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::CaseNotFound(case_id.to_owned()));
                }
                let mut feed = shared::Feed::default();
                feed.push(case_id, "case_status", None, status, now);
                Self::commit_with(tx, feed).await?;
                Ok(())
            }

            async fn do_record_status_event(
                &self,
                event: NewStatusEvent,
            ) -> Result<i64, StoreError> {
                let at = shared::micros(event.at);
                let mut tx = self.begin_write().await?;
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT id FROM cases WHERE id = $1")
                        .bind(&event.case_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    return Err(StoreError::CaseNotFound(event.case_id));
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO status_events
                         (case_id, system_id, raw_code, unified_state, source, excerpt, at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(&event.case_id)
                .bind(&event.system_id)
                .bind(&event.raw_code)
                .bind(&event.unified_state)
                .bind(&event.source)
                .bind(&event.excerpt)
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                let system = Some(event.system_id.as_str());
                let state = event.unified_state.as_str();
                let mut feed = shared::Feed::default();
                feed.push(&event.case_id, "status_event", system, state, at);
                Self::commit_with(tx, feed).await?;
                Ok(id)
            }

            async fn do_consume_ticket(
                &self,
                nonce: &str,
                expires_at: jiff::Timestamp,
                now: jiff::Timestamp,
            ) -> Result<TicketUse, StoreError> {
                if expires_at <= now {
                    return Ok(TicketUse::Expired);
                }
                let mut tx = self.begin_write().await?;
                let inserted = sqlx::query(
                    "INSERT INTO jump_tickets (nonce, expires_at, used_at) VALUES ($1, $2, $3)
                     ON CONFLICT (nonce) DO NOTHING",
                )
                .bind(nonce)
                .bind(shared::micros(expires_at))
                .bind(shared::micros(now))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(if inserted.rows_affected() == 1 {
                    TicketUse::Fresh
                } else {
                    TicketUse::AlreadyUsed
                })
            }

            async fn do_purge_expired_tickets(
                &self,
                now: jiff::Timestamp,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                let deleted = sqlx::query("DELETE FROM jump_tickets WHERE expires_at < $1")
                    .bind(shared::micros(now))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(deleted.rows_affected())
            }
        }
    };
}
pub(crate) use operate_ops;
