//! Keeps the calendar current: checks the calendar files every `calendar_check` and on SIGHUP,
//! and after a reload recomputes every open provisional due date, so a newly published year
//! firms them up without a release.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::sync::SyncContext;

/// Provisional targets recomputed per reload (the rest on the next check).
const BATCH: usize = 10_000;

/// Watches until `stop`.
pub async fn run(ctx: Arc<SyncContext>, stop: CancellationToken) {
    let mut check = tokio::time::interval(ctx.config.calendar_check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "no SIGHUP handler; calendar checked periodically only");
            None
        }
    };
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        let forced = tokio::select! {
            () = stop.cancelled() => return,
            _ = check.tick() => false,
            () = hup => true,
        };
        let reloaded = if forced {
            ctx.calendar.reload().map(|()| true)
        } else {
            ctx.calendar.reload_if_changed()
        };
        match reloaded {
            Ok(true) => {
                if let Err(error) = refresh_provisional(&ctx).await {
                    tracing::warn!(%error, "recomputing provisional due dates failed");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::error!(%error, "calendar data does not load; previous kept"),
        }
    }
}

/// Recomputes the due dates of open targets whose due date is provisional; returns how many
/// became firm.
pub async fn refresh_provisional(ctx: &SyncContext) -> Result<usize, crate::sync::SyncError> {
    let rows = ctx.store.provisional_targets(BATCH).await?;
    let mut firmed = 0;
    for row in rows {
        let updated = ctx
            .update_detail(&row.case_id, &row.system_id, |_, _| Ok(()))
            .await?;
        if !updated.provisional {
            firmed += 1;
        }
    }
    tracing::info!(firmed, "provisional due dates recomputed");
    Ok(firmed)
}
