//! Claiming due deliveries under a lease, and extending a lease.
//!
//! The backend's `write_claim` takes the deliveries (see `PostgresStore::write_claim` and
//! `sqlite_direct::write_claim`); what it read is turned into [`ClaimedDelivery`] values here,
//! after its commit.

/// Generates `do_claim_due` and `do_extend_lease` for a backend.
macro_rules! claim_ops {
    ($store:ty, $db:ty) => {
        impl $store {
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
                let written = self.write_claim(node_id, now, expires, limit, caps).await?;
                let mut payloads = shared::payloads_from(written.payloads)?;
                let materials = shared::materials_from(written.materials)?;
                let rows = written.rows;
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
                let kept = self.write_renewals(leases, shared::micros(until)).await?;
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
