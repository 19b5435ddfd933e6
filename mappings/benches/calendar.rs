//! Due-date arithmetic speed: the hub computes a due date for every accepted case and re-checks
//! open cases for supervision, so one million due dates must take well under a second.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may unwrap, like tests

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jiff::civil::{Date, date};
use yimen_mappings::calendar::WorkingDayCalendar;

/// One million (start, limit) pairs: starts over 2025–2027, limits of 1–60 working days.
fn inputs() -> Vec<(Date, u32)> {
    let first = date(2025, 1, 1);
    (0..1_000_000u32)
        .map(|i| {
            let offset = i64::from(i.wrapping_mul(2_654_435_761) % 1_095);
            let start = first.checked_add(jiff::Span::new().days(offset)).unwrap();
            (start, 1 + i % 60)
        })
        .collect()
}

fn due_dates(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("calendar");
    let calendar = WorkingDayCalendar::load_dir(&dir).unwrap();
    let inputs = inputs();
    let mut group = c.benchmark_group("calendar");
    group.sample_size(10);
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("1e6 add_working_days", |b| {
        b.iter(|| {
            for &(start, n) in &inputs {
                black_box(calendar.add_working_days(black_box(start), black_box(n)));
            }
        });
    });
    let pauses = [
        date(2026, 3, 9)..=date(2026, 3, 13),
        date(2026, 10, 12)..=date(2026, 10, 16),
    ];
    group.bench_function("1e6 add_working_days_with_pauses", |b| {
        b.iter(|| {
            for &(start, n) in &inputs {
                black_box(calendar.add_working_days_with_pauses(black_box(start), n, &pauses));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, due_dates);
criterion_main!(benches);
