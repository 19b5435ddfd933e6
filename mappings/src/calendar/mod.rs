//! The working-day calendar and due-date arithmetic (工作日, 承诺时限).
//!
//! A working day is Monday–Friday, minus the `off` days and plus the `work` days of the calendar
//! data (`mappings/calendar/*.tsv`, see [`load`](self) for the format). The State Council
//! publishes next year's exceptions each November, so the data is updatable without a release,
//! and a year is *published* when the data has at least one row for it. A due date that counts
//! any day of an unpublished year is marked provisional.
//!
//! Counting starts the day after the start date (行政许可法 Art. 82): `start + 1 working day` is
//! the first working day after `start`. Paused days (supplement requests, hearings, testing) do
//! not count.
//!
//! Invariants: the published years are covered by one bitset (bit set = working day), so a due
//! date costs a few word operations per 64 days; outside that span the plain Monday–Friday rule
//! applies, counted in whole weeks. `working_days_between(start, add_working_days(start, n).date)
//! == n` for every start and n.

mod days;
mod load;

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::Path;

use jiff::civil::Date;

use days::{DayNumber, date_of, day_number, is_weekend, nth_weekday_after, weekdays_between};
pub use load::{CalendarError, DayKind, Exception};

/// A due date and whether it rests on unpublished calendar years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DueDate {
    /// The last day of the time limit.
    pub date: Date,
    /// Whether a counted day lies in a year the calendar data does not cover yet.
    pub provisional: bool,
}

/// Working days of the mainland calendar, from the exceptions data.
#[derive(Debug, Clone)]
pub struct WorkingDayCalendar {
    exceptions: load::Exceptions,
    published: BTreeSet<i16>,
    /// Runs of consecutive published years as inclusive day-number ranges, in order.
    published_spans: Vec<(DayNumber, DayNumber)>,
    /// Day number of the first bit (1 January of the first published year).
    base: DayNumber,
    /// Day number just past the last bit (1 January after the last published year).
    end: DayNumber,
    /// Bit `i` is set when day `base + i` is a working day.
    bits: Vec<u64>,
}

impl WorkingDayCalendar {
    /// Loads every `*.tsv` file in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, CalendarError> {
        let mut exceptions = load::Exceptions::new();
        load::read_dir(dir, &mut exceptions)?;
        let calendar = Self::from_exceptions(exceptions);
        tracing::debug!(dir = %dir.display(), years = ?calendar.published, "calendar loaded");
        Ok(calendar)
    }

    /// Reads one calendar file's text; errors name it `<tsv>`.
    pub fn from_tsv_str(text: &str) -> Result<Self, CalendarError> {
        let mut exceptions = load::Exceptions::new();
        load::read_str(text, "<tsv>", &mut exceptions)?;
        Ok(Self::from_exceptions(exceptions))
    }

    fn from_exceptions(exceptions: load::Exceptions) -> Self {
        let published: BTreeSet<i16> = exceptions.keys().map(|date| date.year()).collect();
        let (base, end) = match (published.first(), published.last()) {
            (Some(&first), Some(&last)) => (
                day_number(Date::new(first, 1, 1).unwrap_or(Date::MIN)),
                day_number(Date::new(last.saturating_add(1), 1, 1).unwrap_or(Date::MAX)),
            ),
            _ => (0, 0),
        };
        let len = usize::try_from(end - base).unwrap_or(0);
        let mut bits = vec![0u64; len.div_ceil(64)];
        for offset in 0..len {
            let day = base + i32::try_from(offset).unwrap_or(i32::MAX);
            let working = match exceptions.get(&date_of(day)).map(|e| e.kind) {
                Some(DayKind::Off) => false,
                Some(DayKind::Work) => true,
                None => !is_weekend(day),
            };
            if working {
                bits[offset / 64] |= 1 << (offset % 64);
            }
        }
        let published_spans = spans(&published);
        Self {
            exceptions,
            published,
            published_spans,
            base,
            end,
            bits,
        }
    }

    /// Years the data covers, in order.
    pub fn published_years(&self) -> impl Iterator<Item = i16> + '_ {
        self.published.iter().copied()
    }

    /// Whether the data covers `year`.
    pub fn is_published(&self, year: i16) -> bool {
        self.published.contains(&year)
    }

    /// The exception for `date`, when the data lists one.
    pub fn exception(&self, date: Date) -> Option<&Exception> {
        self.exceptions.get(&date)
    }

    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: Date) -> bool {
        self.is_working(day_number(date))
    }

    /// The `n`-th working day after `start` (`start` itself when `n` is 0).
    pub fn add_working_days(&self, start: Date, n: u32) -> DueDate {
        let start = day_number(start);
        self.due(start, self.nth_working_after(start, n))
    }

    /// The `n`-th working day after `start`, not counting days inside any of `pauses`
    /// (inclusive ranges, in any order, possibly overlapping).
    pub fn add_working_days_with_pauses(
        &self,
        start: Date,
        n: u32,
        pauses: &[RangeInclusive<Date>],
    ) -> DueDate {
        let start = day_number(start);
        let pauses = merge(pauses);
        let mut paused = 0;
        loop {
            let due = self.nth_working_after(start, n.saturating_add(paused));
            let now_paused = pauses
                .iter()
                .map(|&(first, last)| self.count_working(first.max(start + 1), last.min(due)))
                .sum();
            if now_paused == paused {
                return self.due(start, due);
            }
            paused = now_paused;
        }
    }

    /// Working days in `(a, b]` when `b` is after `a`; minus the working days in `(b, a]` when
    /// `b` is before `a`; 0 when they are equal.
    pub fn working_days_between(&self, a: Date, b: Date) -> i64 {
        let (a, b) = (day_number(a), day_number(b));
        if b >= a {
            i64::from(self.count_working(a + 1, b))
        } else {
            -i64::from(self.count_working(b + 1, a))
        }
    }

    fn due(&self, start: DayNumber, due: DayNumber) -> DueDate {
        let covered = due <= start
            || self
                .published_spans
                .iter()
                .any(|&(first, last)| first <= start + 1 && due <= last);
        DueDate {
            date: date_of(due),
            provisional: !covered,
        }
    }

    fn is_working(&self, day: DayNumber) -> bool {
        if day < self.base || day >= self.end {
            return !is_weekend(day);
        }
        let offset = usize::try_from(day - self.base).unwrap_or(0);
        self.bits[offset / 64] & (1 << (offset % 64)) != 0
    }

    /// Working days among day numbers `first..=last`.
    fn count_working(&self, first: DayNumber, last: DayNumber) -> u32 {
        if last < first {
            return 0;
        }
        let mut count = weekdays_between(first, last.min(self.base - 1));
        count += weekdays_between(first.max(self.end), last);
        let (from, to) = (first.max(self.base), last.min(self.end - 1));
        if from <= to {
            let from = usize::try_from(from - self.base).unwrap_or(0);
            let to = usize::try_from(to - self.base).unwrap_or(0);
            for word in from / 64..=to / 64 {
                let mut bits = self.bits[word];
                if word == from / 64 {
                    bits &= u64::MAX << (from % 64);
                }
                if word == to / 64 {
                    bits &= u64::MAX >> (63 - to % 64);
                }
                count += bits.count_ones();
            }
        }
        count
    }

    /// The day number of the `n`-th working day after `day`.
    fn nth_working_after(&self, day: DayNumber, n: u32) -> DayNumber {
        let mut current = day;
        let mut remaining = n;
        if remaining == 0 {
            return current;
        }
        if current < self.base - 1 {
            let before = weekdays_between(current + 1, self.base - 1);
            if remaining <= before {
                return nth_weekday_after(current, remaining);
            }
            remaining -= before;
            current = self.base - 1;
        }
        if current + 1 < self.end {
            let len = self.bits.len() * 64;
            let mut position = usize::try_from(current + 1 - self.base).unwrap_or(0);
            while position < len {
                let word = self.bits[position / 64] >> (position % 64);
                let ones = word.count_ones();
                if ones >= remaining {
                    let offset = position + nth_set_bit(word, remaining);
                    return self.base + i32::try_from(offset).unwrap_or(i32::MAX);
                }
                remaining -= ones;
                position = (position / 64 + 1) * 64;
            }
            current = self.end - 1;
        }
        nth_weekday_after(current, remaining)
    }
}

/// Runs of consecutive `years` as inclusive day-number ranges.
fn spans(years: &BTreeSet<i16>) -> Vec<(DayNumber, DayNumber)> {
    let mut spans: Vec<(DayNumber, DayNumber)> = Vec::new();
    for &year in years {
        let first = day_number(Date::new(year, 1, 1).unwrap_or(Date::MIN));
        let last = day_number(Date::new(year, 12, 31).unwrap_or(Date::MAX));
        match spans.last_mut() {
            Some(span) if span.1 + 1 == first => span.1 = last,
            _ => spans.push((first, last)),
        }
    }
    spans
}

/// Index of the `n`-th (n ≥ 1) set bit of `word`, which has at least `n` set bits.
fn nth_set_bit(mut word: u64, n: u32) -> usize {
    for _ in 1..n {
        word &= word - 1;
    }
    word.trailing_zeros() as usize
}

/// Pauses as sorted, non-overlapping day-number ranges.
fn merge(pauses: &[RangeInclusive<Date>]) -> Vec<(DayNumber, DayNumber)> {
    let mut ranges: Vec<_> = pauses
        .iter()
        .map(|range| (day_number(*range.start()), day_number(*range.end())))
        .filter(|(first, last)| first <= last)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(DayNumber, DayNumber)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(previous) if first <= previous.1.saturating_add(1) => {
                previous.1 = previous.1.max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    merged
}
