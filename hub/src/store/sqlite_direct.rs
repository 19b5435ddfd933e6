//! The SQLite store's hot writes, intake batches, claims and completions, as plain calls on the
//! writer's handle ([`super::sqlite_group::GroupWriter::write`]).
//!
//! Through sqlx, every statement is a hand-off to the connection's thread and back, and a
//! multi-row statement is parsed again for each batch. Here each table has one statement,
//! prepared once per write and run once per row, in the calling task: an intake write of 30
//! cases is some 150 executions of 5 prepared statements and no hand-off.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::shared;

/// Net changes of the delivery counts (`delivery_counts`) a write makes, by (system, state),
/// applied with one statement per count at the end of the write: row triggers cost more than
/// the rows they count (about 9 µs an insert, 5 µs a change of state, measured).
#[derive(Debug, Default)]
pub(crate) struct CountChanges(std::collections::BTreeMap<(String, String), i64>);

impl CountChanges {
    /// One delivery of `system` moved from `from` (`None`: new) to `to`.
    pub(crate) fn moved(&mut self, system: &str, from: Option<&str>, to: &str) {
        if from == Some(to) {
            return;
        }
        if let Some(from) = from {
            *self
                .0
                .entry((system.to_owned(), from.to_owned()))
                .or_default() -= 1;
        }
        *self
            .0
            .entry((system.to_owned(), to.to_owned()))
            .or_default() += 1;
    }

    /// Applies the changes.
    pub(crate) fn write(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut add = conn.prepare_cached(COUNT_CHANGE)?;
        for ((system, state), n) in self.0.iter().filter(|(_, n)| **n != 0) {
            add.execute(params![system, state, n])?;
        }
        Ok(())
    }
}

/// Adds `?3` to the count of (`?1` system, `?2` state).
pub(crate) const COUNT_CHANGE: &str = "INSERT INTO delivery_counts (system_id, state, n)
     VALUES (?1, ?2, ?3)
     ON CONFLICT (system_id, state) DO UPDATE SET n = n + excluded.n";

/// Inserts an intake batch: the cases first (a number already stored is skipped, and looked up
/// afterwards), then the other rows of the cases inserted, then their feed entries.
pub(crate) fn write_intake(
    conn: &Connection,
    cases: &[shared::CaseRow<'_>],
    mut rows: shared::IntakeRows<'_>,
) -> Result<shared::IntakeWritten, StoreError> {
    let mut inserted = HashSet::with_capacity(cases.len());
    let mut insert = conn.prepare_cached(
        "INSERT INTO cases (id, client_id, case_number, content_hash, case_json,
             applicant_id_number, credit_code, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
         ON CONFLICT (client_id, case_number) DO NOTHING",
    )?;
    for c in cases {
        let changed = insert.execute(params![
            c.id,
            c.client_id,
            c.case_number,
            c.content_hash,
            c.case_json,
            c.applicant_id_number,
            c.credit_code,
            c.status,
            c.now,
        ])?;
        if changed == 1 {
            inserted.insert(c.id.to_owned());
        }
    }
    let mut stored = HashMap::new();
    if inserted.len() < cases.len() {
        rows.retain_cases(&inserted);
        let mut find = conn.prepare_cached(
            "SELECT id, content_hash FROM cases WHERE client_id = ?1 AND case_number = ?2",
        )?;
        for c in cases.iter().filter(|c| !inserted.contains(c.id)) {
            let found = find.query_row(params![c.client_id, c.case_number], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            stored.insert(c.id.to_owned(), found);
        }
    }
    if !rows.materials.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO materials (case_id, position, name, sha256, size, media_type, path)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for m in &rows.materials {
            insert.execute(params![
                m.case_id,
                m.position,
                m.name,
                m.sha256,
                m.size,
                m.media_type,
                m.path,
            ])?;
        }
    }
    let mut counts = CountChanges::default();
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (id, case_id, system_id, idempotency_key, state, attempts,
             next_attempt_at, lease_owner, lease_expires_at, due_at, attempt_started_at,
             mapping_version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
    )?;
    for d in &rows.deliveries {
        insert.execute(params![
            d.id,
            d.case_id,
            d.system_id,
            d.idempotency_key,
            d.state,
            d.attempts,
            d.next_attempt_at,
            d.lease_owner,
            d.lease_expires_at,
            d.due_at,
            d.attempt_started_at,
            d.mapping_version,
            d.now,
        ])?;
        counts.moved(d.system_id, None, d.state);
    }
    counts.write(conn)?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO payloads (delivery_id, mapping_version, content_type, extension, body,
             fields_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for p in &rows.payloads {
        insert.execute(params![
            p.delivery_id,
            p.mapping_version,
            p.content_type,
            p.extension,
            p.body,
            p.fields_json,
        ])?;
    }
    write_feed(conn, shared::created_feed(cases, &inserted).entries())?;
    Ok(shared::IntakeWritten { inserted, stored })
}

/// Records outcomes: per outcome, a guarded update of the delivery (only a row whose lease is
/// still held changes) and its finished attempt row; for one whose lease did not hold, a read
/// of the delivery as stored. Then the count changes and the feed entries of the deliveries
/// that ended.
pub(crate) fn write_completions(
    conn: &Connection,
    rows: &[shared::CompletionRow<'_>],
    now: i64,
) -> Result<shared::CompletionsWritten, StoreError> {
    let mut update = conn.prepare_cached(
        "UPDATE deliveries SET state = ?4, next_attempt_at = ?5, due_at = ?5, lease_owner = NULL,
             lease_expires_at = NULL, receipt_number = ?6, receipt_raw_status = ?7,
             receipt_excerpt = ?8, last_outcome = ?9, last_error = ?10, last_excerpt = ?11,
             updated_at = ?12
         WHERE id = ?1 AND state = 'sending' AND lease_owner = ?2 AND attempts = ?3
         RETURNING case_id, system_id, COALESCE(attempt_started_at, created_at)",
    )?;
    // A row already there was written at the attempt's start by a node of an older version.
    let mut finish = conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, attempt, node_id, started_at, finished_at, outcome,
             reason, excerpt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET finished_at = excluded.finished_at,
             outcome = excluded.outcome, reason = excluded.reason, excerpt = excluded.excerpt",
    )?;
    let mut read =
        conn.prepare_cached("SELECT state, lease_owner FROM deliveries WHERE id = ?1")?;
    let mut written = shared::CompletionsWritten::default();
    let mut counts = CountChanges::default();
    for r in rows {
        // An `UPDATE … RETURNING` makes all its changes at its first step.
        let changed: Option<(String, String, i64)> = update
            .query_row(
                params![
                    r.delivery_id,
                    r.owner,
                    r.attempt,
                    r.state,
                    r.next_attempt_at,
                    r.receipt_number,
                    r.receipt_raw_status,
                    r.receipt_excerpt,
                    r.outcome,
                    r.error,
                    r.excerpt,
                    now,
                ],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        match changed {
            Some((case_id, system_id, started_at)) => {
                finish.execute(params![
                    r.delivery_id,
                    r.attempt,
                    r.owner,
                    started_at,
                    now,
                    r.outcome,
                    r.error,
                    r.excerpt,
                ])?;
                counts.moved(&system_id, Some("sending"), r.state);
                let ids = (case_id, system_id);
                written.updated.insert(r.delivery_id.to_owned(), ids);
            }
            None => {
                let found = read
                    .query_row(params![r.delivery_id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                written.current.insert(r.delivery_id.to_owned(), found);
            }
        }
    }
    counts.write(conn)?;
    write_feed(
        conn,
        shared::completion_feed(rows, &written.updated, now).entries(),
    )?;
    Ok(written)
}

/// Takes up to `limit` due deliveries under `node_id`'s lease until `expires`, oldest first, and
/// reads their payloads and their cases' materials. Each listed system gives at most its cap,
/// from one probe of the `(system_id, due_at)` index; the unlisted ones at most `caps.others`
/// each, from one probe per system with due deliveries ([`others_due`]). The group's
/// transaction excludes every other writer, so nothing needs locking. A delivery still
/// `sending` here had a lease that ran out (its node died mid-attempt): that attempt is written
/// now, as ended by the lease (`lease_expired`). The attempt begun here is written when it
/// ends.
pub(crate) fn write_claim(
    conn: &Connection,
    node_id: &str,
    now: i64,
    expires: i64,
    limit: usize,
    caps: &super::ClaimCaps,
) -> Result<shared::ClaimWritten, StoreError> {
    // (id, state before the claim)
    let mut picked: Vec<(String, String)> = Vec::new();
    let mut probe = conn.prepare_cached(
        "SELECT id, state FROM deliveries
         WHERE system_id = ?1 AND due_at IS NOT NULL AND due_at <= ?2
         ORDER BY due_at LIMIT ?3",
    )?;
    for (system, cap) in &caps.per_system {
        let room = limit.saturating_sub(picked.len()).min(*cap);
        if room == 0 {
            continue;
        }
        let due = probe.query_map(params![system, now, as_limit(room)], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        for id in due {
            picked.push(id?);
        }
    }
    let room = limit.saturating_sub(picked.len());
    if let Some(cap) = caps.others.filter(|cap| *cap > 0 && room > 0) {
        picked.extend(others_due(conn, now, room, cap, caps)?);
    }
    let mut written = shared::ClaimWritten::default();
    if picked.is_empty() {
        return Ok(written);
    }
    let mut expire = conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, attempt, node_id, started_at, finished_at, outcome)
         SELECT id, attempts, lease_owner, COALESCE(attempt_started_at, updated_at), ?2,
             'lease_expired'
         FROM deliveries WHERE id = ?1 AND state = 'sending'
         ON CONFLICT (delivery_id, attempt) DO UPDATE SET
             finished_at = excluded.finished_at, outcome = excluded.outcome",
    )?;
    let mut take = conn.prepare_cached(
        "UPDATE deliveries SET last_outcome = CASE WHEN state = 'sending'
             THEN 'lease_expired' ELSE last_outcome END,
             state = 'sending', attempts = attempts + 1, lease_owner = ?2,
             lease_expires_at = ?3, due_at = ?3, next_attempt_at = NULL,
             attempt_started_at = ?4, updated_at = ?4
         WHERE id = ?1
         RETURNING case_id, system_id, idempotency_key, attempts, last_outcome",
    )?;
    let mut payload = conn.prepare_cached(
        "SELECT delivery_id, mapping_version, content_type, extension, body, fields_json
         FROM payloads WHERE delivery_id = ?1",
    )?;
    let mut cases = HashSet::new();
    let mut counts = CountChanges::default();
    for (id, state) in picked {
        if state == "sending" {
            expire.execute(params![id, now])?;
        }
        let (case_id, system_id, key, attempts, previous): (String, String, String, i64, _) =
            take.query_row(params![id, node_id, expires, now], |row| row.try_into())?;
        counts.moved(&system_id, Some(&state), "sending");
        // A delivery without its payload is reported by the caller, as corrupt.
        if let Some(found) = payload
            .query_row(params![id], |row| row.try_into())
            .optional()?
        {
            written.payloads.push(found);
        }
        cases.insert(case_id.clone());
        written
            .rows
            .push((id, case_id, system_id, key, attempts, previous));
    }
    let mut materials = conn.prepare_cached(
        "SELECT case_id, name, sha256, size, media_type, path FROM materials
         WHERE case_id = ?1 ORDER BY position",
    )?;
    for case_id in cases {
        for row in materials.query_map(params![case_id], |row| row.try_into())? {
            written.materials.push(row?);
        }
    }
    counts.write(conn)?;
    Ok(written)
}

/// Due deliveries `(id, state)` of the systems `caps` does not list, oldest first: at most
/// `room` in all and `cap` of each system. The systems with due deliveries come from the
/// delivery counts (a handful of rows); each is probed through `(system_id, due_at)` as a
/// listed one is, and the oldest of what the probes found are kept.
fn others_due(
    conn: &Connection,
    now: i64,
    room: usize,
    cap: usize,
    caps: &super::ClaimCaps,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut systems = conn.prepare_cached(
        "SELECT system_id FROM delivery_counts
         WHERE state IN ('queued', 'retry_wait', 'sending')
         GROUP BY system_id HAVING SUM(n) > 0",
    )?;
    let systems: Vec<String> = systems
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut probe = conn.prepare_cached(
        "SELECT id, state, due_at FROM deliveries
         WHERE system_id = ?1 AND due_at IS NOT NULL AND due_at <= ?2
         ORDER BY due_at LIMIT ?3",
    )?;
    let mut found: Vec<(i64, String, String)> = Vec::new();
    for system in systems.iter().filter(|s| !caps.per_system.contains_key(*s)) {
        let rows = probe.query_map(params![system, now, as_limit(cap.min(room))], |row| {
            Ok((row.get(2)?, row.get(0)?, row.get(1)?))
        })?;
        for row in rows {
            found.push(row?);
        }
    }
    found.sort();
    Ok(found
        .into_iter()
        .take(room)
        .map(|(_, id, state)| (id, state))
        .collect())
}

/// A row count as SQLite's `LIMIT` takes it.
fn as_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Appends change-feed entries. The single writer orders commits, so no lock is needed.
fn write_feed(conn: &Connection, entries: &[shared::PendingChange]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO changes (case_id, kind, system_id, state, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in entries {
        insert.execute(params![e.case_id, e.kind, e.system_id, e.state, e.at])?;
    }
    Ok(())
}

/// A refusal or failure of a write run on the handle directly, reported as sqlx reports one
/// of its own ([`StoreError::Database`]), so that callers see one kind of database error.
#[derive(Debug)]
pub(crate) struct DirectError {
    message: String,
    /// SQLite's extended result code, if SQLite gave one.
    code: Option<i32>,
    source: rusqlite::Error,
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DirectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl sqlx::error::DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.code.map(|code| code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(source: rusqlite::Error) -> Self {
        let code = match &source {
            rusqlite::Error::SqliteFailure(error, _) => Some(error.extended_code),
            _ => None,
        };
        let message = source.to_string();
        StoreError::Database(sqlx::Error::Database(Box::new(DirectError {
            message,
            code,
            source,
        })))
    }
}
