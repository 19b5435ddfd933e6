//! Single use of jump tickets: a ledger of consumed nonces.
//!
//! The hub implements [`TicketLedger`] on its store so single use holds across nodes and
//! restarts; [`InMemoryTicketLedger`] serves one process (tests, demo). Invariant: `consume`
//! succeeds at most once per nonce while the ticket could still verify.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use super::config::MAX_TICKET_TTL_SECONDS;

/// Why a nonce could not be consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The nonce was consumed before: the ticket is being replayed.
    #[error("ticket already redeemed")]
    Replayed,
    /// The ledger could not be reached (store down).
    #[error("ticket ledger unavailable: {0}")]
    Unavailable(String),
}

/// Records consumed ticket nonces.
#[async_trait]
pub trait TicketLedger: Send + Sync {
    /// Marks `nonce` used; [`LedgerError::Replayed`] if it was already. `expires_at` is when the
    /// ticket expires: the record may be forgotten after it.
    async fn consume(&self, nonce: &str, expires_at: Timestamp) -> Result<(), LedgerError>;
}

/// A ledger in this process's memory.
#[derive(Debug, Default)]
pub struct InMemoryTicketLedger {
    used: Mutex<Used>,
}

/// Consumed nonces, and the same ordered by expiry so forgetting costs O(log n) per nonce.
#[derive(Debug, Default)]
struct Used {
    nonces: HashSet<String>,
    by_expiry: BTreeSet<(Timestamp, String)>,
}

impl InMemoryTicketLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Nonces currently remembered.
    pub fn len(&self) -> usize {
        self.used.lock().map(|u| u.nonces.len()).unwrap_or(0)
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl TicketLedger for InMemoryTicketLedger {
    async fn consume(&self, nonce: &str, expires_at: Timestamp) -> Result<(), LedgerError> {
        let mut used = self
            .used
            .lock()
            .map_err(|_| LedgerError::Unavailable("ledger lock poisoned".to_owned()))?;
        // A ticket being consumed is unexpired and was issued at most MAX_TICKET_TTL_SECONDS
        // before its expiry, so anything that expired that long before `expires_at` is
        // already expired now and can never verify again: safe to forget.
        let horizon = expires_at
            .checked_sub(SignedDuration::from_secs(MAX_TICKET_TTL_SECONDS as i64))
            .unwrap_or(Timestamp::MIN);
        while used
            .by_expiry
            .first()
            .is_some_and(|(exp, _)| *exp < horizon)
        {
            if let Some((_, old)) = used.by_expiry.pop_first() {
                used.nonces.remove(&old);
            }
        }
        if !used.nonces.insert(nonce.to_owned()) {
            return Err(LedgerError::Replayed);
        }
        used.by_expiry.insert((expires_at, nonce.to_owned()));
        Ok(())
    }
}
