//! The working-day calendar: the worked examples, the data format's errors, pauses, and a model
//! test against naive day-by-day counting.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap: a panic is a failed test

use std::path::Path;

use jiff::civil::{Date, date};
use proptest::prelude::*;
use yimen_mappings::calendar::{CalendarError, DayKind, DueDate, WorkingDayCalendar};

fn calendar() -> WorkingDayCalendar {
    WorkingDayCalendar::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("calendar")).unwrap()
}

fn due(date: Date, provisional: bool) -> DueDate {
    DueDate { date, provisional }
}

#[test]
fn five_working_days_across_spring_festival_2026() {
    assert_eq!(
        calendar().add_working_days(date(2026, 2, 13), 5),
        due(date(2026, 2, 27), false)
    );
}

#[test]
fn a_worked_sunday_counts() {
    let calendar = calendar();
    assert_eq!(
        calendar.add_working_days(date(2025, 12, 31), 1),
        due(date(2026, 1, 4), false)
    );
    assert!(calendar.is_working_day(date(2026, 1, 4)));
    assert!(!calendar.is_working_day(date(2026, 1, 2)));
    assert_eq!(
        calendar.exception(date(2026, 1, 4)).unwrap().kind,
        DayKind::Work
    );
}

#[test]
fn a_twenty_day_limit_across_spring_festival() {
    let calendar = calendar();
    assert_eq!(
        calendar.add_working_days(date(2026, 2, 10), 20),
        due(date(2026, 3, 16), false)
    );
    assert_eq!(
        calendar.working_days_between(date(2026, 2, 10), date(2026, 3, 16)),
        20
    );
    assert_eq!(
        calendar.working_days_between(date(2026, 3, 16), date(2026, 2, 10)),
        -20
    );
}

#[test]
fn national_day_2026_and_spring_festival_2025() {
    let calendar = calendar();
    assert_eq!(
        calendar.add_working_days(date(2026, 9, 24), 20),
        due(date(2026, 10, 29), false)
    );
    assert_eq!(
        calendar.add_working_days(date(2025, 1, 24), 10),
        due(date(2025, 2, 13), false)
    );
}

#[test]
fn unpublished_years_make_the_due_date_provisional() {
    let calendar = calendar();
    assert_eq!(calendar.published_years().collect::<Vec<_>>(), [2025, 2026]);
    assert!(!calendar.is_published(2027));
    // 2027 has no data yet: Monday–Friday only, and provisional.
    assert_eq!(
        calendar.add_working_days(date(2026, 12, 18), 20),
        due(date(2027, 1, 15), true)
    );
    assert_eq!(
        calendar.add_working_days(date(2027, 3, 1), 1),
        due(date(2027, 3, 2), true)
    );
    assert!(calendar.add_working_days(date(2024, 12, 27), 1).provisional);
    assert!(
        !calendar.add_working_days(date(2024, 12, 31), 1).provisional,
        "only 2025 counted"
    );
    assert!(!calendar.add_working_days(date(2026, 12, 1), 5).provisional);
    assert!(
        calendar.is_working_day(date(2027, 1, 1)),
        "no data: a Friday is worked"
    );
}

#[test]
fn zero_days_is_the_start_itself() {
    let calendar = calendar();
    assert_eq!(
        calendar.add_working_days(date(2026, 2, 15), 0),
        due(date(2026, 2, 15), false)
    );
    assert_eq!(
        calendar.add_working_days(date(2030, 2, 15), 0),
        due(date(2030, 2, 15), false)
    );
}

#[test]
fn pauses_do_not_count() {
    let calendar = calendar();
    let start = date(2026, 3, 2);
    assert_eq!(calendar.add_working_days(start, 20).date, date(2026, 3, 30));
    // A supplement request pauses the clock for one working week.
    let pause = [date(2026, 3, 9)..=date(2026, 3, 13)];
    assert_eq!(
        calendar.add_working_days_with_pauses(start, 20, &pause),
        due(date(2026, 4, 7), false)
    );
    // Overlapping and unordered pauses count once; pauses outside the span change nothing.
    let pauses = [
        date(2026, 3, 11)..=date(2026, 3, 13),
        date(2026, 3, 9)..=date(2026, 3, 12),
        date(2026, 1, 1)..=date(2026, 2, 1),
        date(2026, 3, 20)..=date(2026, 3, 19),
    ];
    assert_eq!(
        calendar
            .add_working_days_with_pauses(start, 20, &pauses)
            .date,
        date(2026, 4, 7)
    );
    // A pause that pushes the due date into more paused days keeps extending it.
    let pauses = [
        date(2026, 3, 9)..=date(2026, 3, 13),
        date(2026, 4, 1)..=date(2026, 4, 3),
    ];
    assert_eq!(
        calendar
            .add_working_days_with_pauses(start, 20, &pauses)
            .date,
        date(2026, 4, 10)
    );
    // A pause reaching into 2027 makes the due date provisional.
    let pauses = [date(2026, 3, 3)..=date(2026, 12, 31)];
    assert!(
        calendar
            .add_working_days_with_pauses(start, 1, &pauses)
            .provisional
    );
}

#[test]
fn extreme_inputs_saturate_instead_of_panicking() {
    let calendar = calendar();
    let far = calendar.add_working_days(date(2026, 1, 1), u32::MAX);
    assert_eq!(far, due(Date::MAX, true));
    let near_end = calendar.add_working_days(date(9999, 12, 30), 5);
    assert_eq!(near_end.date, Date::MAX);
    assert_eq!(
        calendar.add_working_days(Date::MIN, 1).date,
        date(-9999, 1, 1).tomorrow().unwrap()
    );
}

#[test]
fn data_errors_name_file_and_line() {
    let error = |text: &str| {
        WorkingDayCalendar::from_tsv_str(text)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("# comment\ndate\tkind\tholiday\n2026-02-30\toff\t春节\n"),
        "<tsv>:3: `2026-02-30` is not a date (expected YYYY-MM-DD)"
    );
    assert_eq!(
        error("2026-02-16\tholiday\t春节"),
        "<tsv>:1: kind `holiday` is neither `off` nor `work`"
    );
    assert_eq!(
        error("2026-02-16 off 春节"),
        "<tsv>:1: expected 3 tab-separated columns (date, kind, holiday), found 1"
    );
    assert_eq!(
        error("2026-02-16\twork\t春节"),
        "<tsv>:1: 2026-02-16 is a Monday: `work` is only for a weekend day that is worked"
    );
    assert_eq!(
        error("2026-02-16\toff\t"),
        "<tsv>:1: holiday name must not be empty"
    );
    assert_eq!(
        error("2026-02-16\toff\t春节\n\n2026-02-16\toff\t春节"),
        "<tsv>:3: 2026-02-16 is listed twice (first at <tsv>:1)"
    );
}

#[test]
fn load_dir_reads_every_tsv_file_and_reports_duplicates_across_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        WorkingDayCalendar::load_dir(dir.path()),
        Err(CalendarError::NoFiles { .. })
    ));
    std::fs::write(dir.path().join("2026.tsv"), "2026-10-01\toff\t国庆节\r\n").unwrap();
    std::fs::write(
        dir.path().join("2027.tsv"),
        "date\tkind\tholiday\n2027-01-01\toff\t元旦\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not calendar data").unwrap();
    let calendar = WorkingDayCalendar::load_dir(dir.path()).unwrap();
    assert_eq!(calendar.published_years().collect::<Vec<_>>(), [2026, 2027]);
    assert!(!calendar.is_working_day(date(2027, 1, 1)));
    assert!(!calendar.add_working_days(date(2026, 12, 30), 3).provisional);

    std::fs::write(dir.path().join("2027b.tsv"), "\n2027-01-01\toff\t元旦\n").unwrap();
    let error = WorkingDayCalendar::load_dir(dir.path())
        .unwrap_err()
        .to_string();
    let expected = format!(
        "{}:2: 2027-01-01 is listed twice (first at {}:2)",
        dir.path().join("2027b.tsv").display(),
        dir.path().join("2027.tsv").display()
    );
    assert_eq!(error, expected);

    let missing = dir.path().join("missing");
    let error = WorkingDayCalendar::load_dir(&missing)
        .unwrap_err()
        .to_string();
    assert!(error.starts_with(&missing.display().to_string()), "{error}");
}

#[test]
fn an_empty_calendar_is_monday_to_friday_and_always_provisional() {
    let calendar = WorkingDayCalendar::from_tsv_str("# nothing published yet\n").unwrap();
    assert_eq!(
        calendar.add_working_days(date(2026, 2, 13), 5),
        due(date(2026, 2, 20), true)
    );
    assert_eq!(
        calendar.add_working_days(date(1960, 1, 1), 5),
        due(date(1960, 1, 8), true)
    );
}

/// Naive model: step one day at a time.
fn naive_add(calendar: &WorkingDayCalendar, start: Date, n: u32) -> Date {
    let mut day = start;
    let mut remaining = n;
    while remaining > 0 {
        day = day.tomorrow().unwrap();
        if calendar.is_working_day(day) {
            remaining -= 1;
        }
    }
    day
}

fn naive_is_working(calendar: &WorkingDayCalendar, day: Date) -> bool {
    match calendar.exception(day).map(|e| e.kind) {
        Some(DayKind::Off) => false,
        Some(DayKind::Work) => true,
        None => !matches!(
            day.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        ),
    }
}

fn dates() -> impl Strategy<Value = Date> {
    (0i32..2_600).prop_map(|offset| {
        date(2023, 6, 1)
            .checked_add(jiff::Span::new().days(offset))
            .unwrap()
    })
}

proptest! {
    #[test]
    fn due_dates_match_day_by_day_counting(start in dates(), n in 0u32..400) {
        let calendar = calendar();
        let due = calendar.add_working_days(start, n);
        prop_assert_eq!(due.date, naive_add(&calendar, start, n));
        prop_assert_eq!(calendar.working_days_between(start, due.date), i64::from(n));
        if n > 0 {
            prop_assert!(calendar.is_working_day(due.date));
            let unpublished = (start.tomorrow().unwrap().year()..=due.date.year())
                .any(|year| !calendar.is_published(year));
            prop_assert_eq!(due.provisional, unpublished);
        }
    }

    #[test]
    fn working_days_match_the_data(day in dates()) {
        let calendar = calendar();
        prop_assert_eq!(calendar.is_working_day(day), naive_is_working(&calendar, day));
    }

    #[test]
    fn pauses_match_day_by_day_counting(
        start in dates(),
        n in 1u32..60,
        pauses in proptest::collection::vec((0i32..120, 0i32..15), 0..4),
    ) {
        let calendar = calendar();
        let pauses: Vec<_> = pauses
            .into_iter()
            .map(|(from, len)| {
                let first = start.checked_add(jiff::Span::new().days(from)).unwrap();
                first..=first.checked_add(jiff::Span::new().days(len)).unwrap()
            })
            .collect();
        let mut day = start;
        let mut remaining = n;
        while remaining > 0 {
            day = day.tomorrow().unwrap();
            if calendar.is_working_day(day) && !pauses.iter().any(|p| p.contains(&day)) {
                remaining -= 1;
            }
        }
        prop_assert_eq!(calendar.add_working_days_with_pauses(start, n, &pauses).date, day);
    }
}
