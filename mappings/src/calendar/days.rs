//! Day numbers: dates as consecutive integers, for fast arithmetic on the working-day bitsets.
//!
//! Day 0 is 1970-01-01 (a Thursday). The conversions are Howard Hinnant's `days_from_civil` and
//! `civil_from_days`, exact for the whole proleptic Gregorian range `jiff` supports.

use jiff::civil::{Date, Weekday};

/// Days since 1970-01-01.
pub(crate) type DayNumber = i32;

/// The day number of `date`.
pub(crate) fn day_number(date: Date) -> DayNumber {
    let year = i32::from(date.year()) - i32::from(date.month() <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i32::from(date.month());
    let day_of_year =
        (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + i32::from(date.day()) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of day number `day`, saturating at the ends of the range `jiff` supports.
pub(crate) fn date_of(day: DayNumber) -> Date {
    if day <= day_number(Date::MIN) {
        return Date::MIN;
    }
    if day >= day_number(Date::MAX) {
        return Date::MAX;
    }
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day_of_month = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i32::from(month <= 2);
    // In range by the checks above, so every conversion succeeds.
    let parts = (
        i16::try_from(year),
        i8::try_from(month),
        i8::try_from(day_of_month),
    );
    match parts {
        (Ok(year), Ok(month), Ok(day)) => Date::new(year, month, day).unwrap_or(Date::MAX),
        _ => Date::MAX,
    }
}

/// Whether day number `day` falls on a Saturday or Sunday.
pub(crate) fn is_weekend(day: DayNumber) -> bool {
    // Day 0 (1970-01-01) was a Thursday, so remainders 2 and 3 are Saturday and Sunday.
    matches!(day.rem_euclid(7), 2 | 3)
}

/// Whether `date` falls on a Saturday or Sunday.
pub(crate) fn is_weekend_date(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// Monday–Friday days in the day numbers `first..=last` (0 when `last < first`).
pub(crate) fn weekdays_between(first: DayNumber, last: DayNumber) -> u32 {
    if last < first {
        return 0;
    }
    let span = i64::from(last) - i64::from(first) + 1;
    let whole_weeks = span / 7;
    let mut count = whole_weeks * 5;
    let rest_start = i64::from(first) + whole_weeks * 7;
    for day in rest_start..=i64::from(last) {
        if !is_weekend(i32::try_from(day).unwrap_or(i32::MAX)) {
            count += 1;
        }
    }
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// The day number of the `n`-th (n ≥ 1) Monday–Friday day after `day`.
pub(crate) fn nth_weekday_after(day: DayNumber, n: u32) -> DayNumber {
    let n = i64::from(n);
    let mut current = i64::from(day);
    // Jump whole weeks first (5 weekdays each), keeping at least one weekday to place.
    let weeks = (n - 1) / 5;
    current += weeks * 7;
    let mut remaining = n - weeks * 5;
    while remaining > 0 {
        current += 1;
        if !is_weekend(i32::try_from(current).unwrap_or(i32::MAX)) {
            remaining -= 1;
        }
    }
    i32::try_from(current).unwrap_or(i32::MAX)
}
