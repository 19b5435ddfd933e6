//! Time limits through status sync on a real SQLite store and the shipped calendar: a case
//! accepted on 2026-02-13 whose clock spans Spring Festival 2026, a supplement pause, an
//! extension, provisional due dates in a year without data firmed up when the data arrives, and
//! the supervision flags.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::date;
use yimen_hub::lines::Lines;
use yimen_hub::notify::Notifier;
use yimen_hub::store::{NewCase, NewDelivery, Store, StoredPayload, open_sqlite};
use yimen_hub::sync::apply::Outcome;
use yimen_hub::sync::detail::Extension;
use yimen_hub::sync::{Report, Source, SyncConfig, SyncContext};
use yimen_hub::timelimit::{CalendarHandle, Flag, flag, watch};
use yimen_mappings::catalog::Catalog;

fn mappings() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../mappings"))
}

async fn case_in(store: &Arc<dyn Store>, number: &str, systems: &[&str]) -> String {
    let text = std::fs::read_to_string(
        mappings().join("examples/cat-legal-person-investment-filing.json"),
    )
    .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["case_number"] = serde_json::Value::String(number.to_owned());
    let mut case = NewCase::new("test", number, json);
    case.targets = systems
        .iter()
        .map(|s| NewDelivery {
            system_id: (*s).to_owned(),
            payload: StoredPayload {
                mapping_version: "1".to_owned(),
                content_type: "application/json".to_owned(),
                extension: "json".to_owned(),
                body: b"{}".to_vec(),
                fields: Vec::new(),
            },
        })
        .collect();
    match store.insert_case(case).await.unwrap() {
        yimen_hub::store::InsertOutcome::Created { case_id, .. } => case_id,
        other => panic!("{other:?}"),
    }
}

fn report(case_id: &str, raw: &str, at: &str, message: Option<&str>) -> Report {
    Report {
        case_id: case_id.to_owned(),
        system_id: "L16".to_owned(),
        raw_code: raw.to_owned(),
        message: message.map(str::to_owned),
        excerpt: String::new(),
        source: Source::Callback,
        reported_at: Some(at.parse::<Timestamp>().unwrap()),
    }
}

async fn context(calendar_dir: &std::path::Path) -> (Arc<SyncContext>, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let store = open_sqlite(data.path()).await.unwrap();
    let catalog = Arc::new(Catalog::load(&mappings()).unwrap());
    let ctx = SyncContext {
        store,
        catalog,
        lines: Arc::new(Lines::default()),
        calendar: Arc::new(CalendarHandle::load(calendar_dir).unwrap()),
        config: SyncConfig::default(),
        callback_keys: Default::default(),
        notifier: Notifier::new(None),
    };
    (Arc::new(ctx), data)
}

#[tokio::test]
async fn a_limit_spanning_spring_festival_2026_with_a_pause_and_an_extension() {
    let (ctx, _data) = context(&mappings().join("calendar")).await;
    let case_id = case_in(&ctx.store, "TL-1", &["L16"]).await;
    // Accepted on Friday 2026-02-13 (China time); the matter's limit is 2 working days.
    let accepted = report(&case_id, "A", "2026-02-13T02:00:00Z", None);
    assert!(matches!(
        ctx.apply(&accepted).await.unwrap(),
        Outcome::Moved { .. }
    ));
    let row = &ctx.store.list_targets(&case_id).await.unwrap()[0];
    // 2026-02-14 (a Saturday worked) is day 1; the holiday runs to 02-23; day 2 is 02-24.
    assert_eq!(row.due_date.as_deref(), Some("2026-02-24"));
    assert!(!row.provisional);

    // Three more approved days: 02-27, the domain's worked example (02-13 + 5 = 02-27).
    ctx.update_detail(&case_id, "L16", |detail, _| {
        detail.extensions.push(Extension {
            days: 3,
            approver: "局长".to_owned(),
            reason: None,
            at: Timestamp::now(),
        });
        Ok(())
    })
    .await
    .unwrap();
    let row = &ctx.store.list_targets(&case_id).await.unwrap()[0];
    assert_eq!(row.due_date.as_deref(), Some("2026-02-27"));

    // A supplement request on 02-24 pauses the clock; review resumes on 02-26: 02-25 and 02-26
    // do not count, so the due date moves two working days: 02-27, 02-28 (a worked Saturday),
    // 2026-03-02.
    let ask = "请补正以下材料：《住所证明》";
    ctx.apply(&report(&case_id, "S", "2026-02-24T03:00:00Z", Some(ask)))
        .await
        .unwrap();
    let row = &ctx.store.list_targets(&case_id).await.unwrap()[0];
    assert_eq!(row.due_date, None, "no due date while paused");
    ctx.apply(&report(&case_id, "P", "2026-02-26T03:00:00Z", None))
        .await
        .unwrap();
    let row = &ctx.store.list_targets(&case_id).await.unwrap()[0];
    assert_eq!(row.due_date.as_deref(), Some("2026-03-02"));

    // Supervision flags on the way (at-risk margin 2 working days).
    let calendar = ctx.calendar.get();
    let due = date(2026, 3, 2);
    assert_eq!(
        flag(&calendar, due, date(2026, 2, 26), 2),
        (3, Flag::OnTime)
    );
    assert_eq!(
        flag(&calendar, due, date(2026, 2, 27), 2),
        (2, Flag::AtRisk)
    );
    assert_eq!(flag(&calendar, due, date(2026, 3, 3), 2).1, Flag::Overdue);
    let overdue = ctx.store.targets_due_by("2026-11-27", 10).await.unwrap();
    assert_eq!(overdue.len(), 1);
}

#[tokio::test]
async fn provisional_due_dates_firm_up_when_next_years_list_arrives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        mappings().join("calendar/cn.tsv"),
        dir.path().join("cn.tsv"),
    )
    .unwrap();
    let (ctx, _data) = context(dir.path()).await;
    let case_id = case_in(&ctx.store, "TL-2", &["L16"]).await;
    // Accepted 2026-12-30: two working days reach into 2027, which has no data yet.
    ctx.apply(&report(&case_id, "A", "2026-12-30T02:00:00Z", None))
        .await
        .unwrap();
    let row = &ctx.store.list_targets(&case_id).await.unwrap()[0];
    assert!(row.provisional, "{row:?}");
    assert_eq!(row.due_date.as_deref(), Some("2027-01-01"));
    assert_eq!(ctx.store.provisional_targets(10).await.unwrap().len(), 1);

    // The 2027 list is published (New Year's Day off): the due date moves and is firm.
    std::fs::write(dir.path().join("cn2027.tsv"), "2027-01-01\toff\t元旦\n").unwrap();
    assert!(ctx.calendar.reload_if_changed().unwrap());
    assert_eq!(watch::refresh_provisional(&ctx).await.unwrap(), 1);
    let row = &ctx.store.list_targets(&case_id).await.unwrap()[0];
    assert!(!row.provisional);
    assert_eq!(row.due_date.as_deref(), Some("2027-01-04"));
    assert!(ctx.store.provisional_targets(10).await.unwrap().is_empty());
}
