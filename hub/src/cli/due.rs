//! `yimen due DATE N`: prints the date on which a time limit of N working days that starts on
//! DATE falls due, as `YYYY-MM-DD` on one line. Counting starts the day after DATE; paused
//! ranges (`--pause FROM..TO`, inclusive) do not count. When a counted day lies in a year the
//! calendar data does not cover yet, `(provisional)` and the reason go to stderr.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use jiff::civil::Date;
use yimen_mappings::calendar::WorkingDayCalendar;

use super::MappingsArg;

/// Arguments of `yimen due`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start date, YYYY-MM-DD (the day the case was accepted).
    #[arg(value_parser = parse_date)]
    pub date: Date,
    /// Time limit in working days.
    pub days: u32,
    /// Folder of calendar *.tsv files [default: <mappings>/calendar].
    #[arg(long, env = "YIMEN_CALENDAR")]
    pub calendar: Option<PathBuf>,
    /// A paused range FROM..TO (inclusive, YYYY-MM-DD) whose days do not count; repeatable.
    #[arg(long = "pause", value_parser = parse_pause)]
    pub pauses: Vec<RangeInclusive<Date>>,
    #[command(flatten)]
    pub mappings: MappingsArg,
}

/// Prints the due date.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = args
        .calendar
        .unwrap_or_else(|| args.mappings.mappings.join("calendar"));
    let calendar = WorkingDayCalendar::load_dir(&dir)
        .with_context(|| format!("loading the working-day calendar from {}", dir.display()))?;
    let due = calendar.add_working_days_with_pauses(args.date, args.days, &args.pauses);
    println!("{}", due.date);
    if due.provisional {
        let published: Vec<String> = calendar.published_years().map(|y| y.to_string()).collect();
        eprintln!(
            "(provisional) the calendar has no data for a year counted (published: {})",
            if published.is_empty() {
                "none".to_owned()
            } else {
                published.join(", ")
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_date(text: &str) -> Result<Date, String> {
    let well_formed = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    text.parse::<Date>()
        .ok()
        .filter(|_| well_formed)
        .ok_or_else(|| format!("`{text}` is not a date (expected YYYY-MM-DD, such as 2026-02-13)"))
}

fn parse_pause(text: &str) -> Result<RangeInclusive<Date>, String> {
    let (first, last) = text
        .split_once("..")
        .ok_or_else(|| format!("`{text}` is not a range (expected FROM..TO, both YYYY-MM-DD)"))?;
    let (first, last) = (parse_date(first)?, parse_date(last)?);
    if last < first {
        return Err(format!("pause `{text}` ends before it starts"));
    }
    Ok(first..=last)
}
