//! The working-day calendar as live data: loaded from `<mappings>/calendar/*.tsv` (or
//! `$YIMEN_CALENDAR`), reloaded when a file's modification time or size changes (checked
//! periodically) or on SIGHUP, so next year's list is picked up without a release.
//!
//! Invariants: readers always get a complete calendar (swapped whole behind an `Arc`); a reload
//! that fails keeps the previous calendar and logs why; a missing folder means the plain
//! Monday–Friday rule with every due date provisional.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use yimen_mappings::calendar::{CalendarError, WorkingDayCalendar};

/// Size and modification time of every calendar file, to notice changes.
type Stamp = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// A reloadable [`WorkingDayCalendar`].
#[derive(Debug)]
pub struct CalendarHandle {
    dir: PathBuf,
    current: RwLock<Arc<WorkingDayCalendar>>,
    stamp: Mutex<Stamp>,
}

impl CalendarHandle {
    /// Loads the calendar in `dir`; a missing folder gives the plain Monday–Friday calendar.
    pub fn load(dir: &Path) -> Result<Self, CalendarError> {
        let stamp = stamp(dir);
        let calendar = read(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            current: RwLock::new(Arc::new(calendar)),
            stamp: Mutex::new(stamp),
        })
    }

    /// Loads like [`CalendarHandle::load`]; data that does not load is logged and replaced by
    /// the plain Monday–Friday calendar until a reload succeeds.
    pub fn load_or_plain(dir: &Path) -> Self {
        Self::load(dir).unwrap_or_else(|error| {
            tracing::error!(%error, dir = %dir.display(), "calendar data does not load; Monday-Friday only");
            Self {
                dir: dir.to_owned(),
                current: RwLock::new(Arc::new(plain())),
                stamp: Mutex::new(Vec::new()),
            }
        })
    }

    /// The folder it reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The calendar as last loaded.
    pub fn get(&self) -> Arc<WorkingDayCalendar> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads when a file changed; `Ok(true)` when a new calendar is in place.
    pub fn reload_if_changed(&self) -> Result<bool, CalendarError> {
        let now = stamp(&self.dir);
        let changed = match self.stamp.lock() {
            Ok(guard) => *guard != now,
            Err(poisoned) => *poisoned.into_inner() != now,
        };
        if !changed {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    /// Reloads unconditionally.
    pub fn reload(&self) -> Result<(), CalendarError> {
        let now = stamp(&self.dir);
        let calendar = read(&self.dir)?;
        let years: Vec<i16> = calendar.published_years().collect();
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::new(calendar),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(calendar),
        }
        match self.stamp.lock() {
            Ok(mut guard) => *guard = now,
            Err(poisoned) => *poisoned.into_inner() = now,
        }
        tracing::info!(dir = %self.dir.display(), ?years, "working-day calendar reloaded");
        Ok(())
    }
}

/// The calendar without exceptions (Monday–Friday).
#[allow(clippy::expect_used)]
fn plain() -> WorkingDayCalendar {
    // Invariant: text without rows has nothing to reject.
    WorkingDayCalendar::from_tsv_str("").expect("an empty calendar has no rows to reject")
}

fn read(dir: &Path) -> Result<WorkingDayCalendar, CalendarError> {
    if dir.is_dir() {
        WorkingDayCalendar::load_dir(dir)
    } else {
        tracing::warn!(dir = %dir.display(), "no calendar folder: Monday-Friday only, due dates provisional");
        Ok(plain())
    }
}

fn stamp(dir: &Path) -> Stamp {
    let mut stamp: Stamp = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "tsv"))
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            Some((entry.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    stamp.sort();
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn a_new_year_file_is_picked_up_and_a_broken_one_keeps_the_old_calendar() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cn.tsv"), "2026-01-01\toff\t元旦\n").unwrap();
        let handle = CalendarHandle::load(dir.path()).unwrap();
        assert!(!handle.get().is_published(2027));
        assert!(!handle.reload_if_changed().unwrap());
        std::fs::write(dir.path().join("cn2027.tsv"), "2027-01-01\toff\t元旦\n").unwrap();
        assert!(handle.reload_if_changed().unwrap());
        assert!(handle.get().is_published(2027));
        assert!(!handle.get().is_working_day(date(2027, 1, 1)));
        std::fs::write(dir.path().join("bad.tsv"), "not a date\toff\tx\n").unwrap();
        assert!(handle.reload_if_changed().is_err());
        assert!(
            handle.get().is_published(2027),
            "the previous calendar stays"
        );
    }

    #[test]
    fn a_missing_folder_is_monday_to_friday() {
        let handle = CalendarHandle::load(Path::new("/nonexistent/calendar")).unwrap();
        assert!(handle.get().is_working_day(date(2026, 1, 1)));
    }
}
