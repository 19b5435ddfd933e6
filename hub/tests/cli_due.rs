//! `yimen due` run as a real process: the due date on stdout, `(provisional)` on stderr, and a
//! clear error with a non-zero exit for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap: a panic is a failed test

use std::path::Path;
use std::process::{Command, Output};

fn yimen(args: &[&str]) -> Output {
    let calendar = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/calendar");
    Command::new(env!("CARGO_BIN_EXE_yimen"))
        .arg("due")
        .args(args)
        .arg("--calendar")
        .arg(calendar)
        .env_remove("YIMEN_CALENDAR")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn prints_the_due_date_across_spring_festival() {
    let output = yimen(&["2026-02-13", "5"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "2026-02-27\n");
    assert_eq!(stderr(&output), "");
}

#[test]
fn counts_a_worked_sunday() {
    let output = yimen(&["2025-12-31", "1"]);
    assert_eq!(stdout(&output), "2026-01-04\n");
}

#[test]
fn pauses_do_not_count() {
    let output = yimen(&["2026-03-02", "20", "--pause", "2026-03-09..2026-03-13"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "2026-04-07\n");
}

#[test]
fn unpublished_years_are_flagged_on_stderr() {
    let output = yimen(&["2026-12-18", "20"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "2027-01-15\n");
    assert!(
        stderr(&output).starts_with("(provisional)"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("published: 2025, 2026"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_default_calendar_is_the_one_beside_the_mappings() {
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    let output = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args(["due", "2026-02-13", "5", "--mappings"])
        .arg(mappings)
        .env_remove("YIMEN_CALENDAR")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "2026-02-27\n");
}

#[test]
fn bad_dates_are_clear_errors() {
    for bad in ["2026-02-30", "20260213", "2026-2-13", "tomorrow"] {
        let output = yimen(&[bad, "5"]);
        assert!(!output.status.success(), "{bad}");
        assert_eq!(stdout(&output), "", "{bad}");
        let message = stderr(&output);
        assert!(
            message.contains(&format!("`{bad}` is not a date (expected YYYY-MM-DD")),
            "{message}"
        );
    }
    let output = yimen(&["2026-02-13", "-1"]);
    assert!(!output.status.success());
    let output = yimen(&["2026-02-13", "5", "--pause", "2026-03-13..2026-03-09"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("ends before it starts"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_calendar_folder_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args([
            "due",
            "2026-02-13",
            "5",
            "--calendar",
            "/nonexistent/calendar",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("loading the working-day calendar from /nonexistent/calendar"),
        "{message}"
    );
}
