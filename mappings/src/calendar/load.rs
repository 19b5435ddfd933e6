//! Reading the calendar data: tab-separated files of exceptions to the Monday–Friday week.
//!
//! Format (one file per country or per publication; `mappings/calendar/cn.tsv`):
//! lines starting with `#` are comments, blank lines are ignored, an optional header line
//! `date<TAB>kind<TAB>holiday`, then one row per exceptional day: an ISO date, `off` (a public
//! holiday or bridging day off) or `work` (a weekend day worked, 调休), and the holiday's name.
//!
//! Invariants: every error names the file and 1-based line; a date listed twice (in one file or
//! across files) is an error naming both places; `work` on a Monday–Friday day is an error,
//! because it would change nothing and is almost certainly a typo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use super::days::is_weekend_date;

/// What is wrong with the calendar data.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// A file or the folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The folder holds no `*.tsv` file.
    #[error("{dir}: no *.tsv calendar files")]
    NoFiles {
        /// The folder.
        dir: PathBuf,
    },
    /// A line could not be understood.
    #[error("{file}:{line}: {message}")]
    Line {
        /// The file (as given or found in the folder).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Whether an exceptional day is worked or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DayKind {
    /// A public holiday or bridging day off.
    Off,
    /// A weekend day that is a working day (调休).
    Work,
}

/// One exceptional day and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// Off or worked.
    pub kind: DayKind,
    /// The holiday it belongs to (春节, 国庆节, ...).
    pub holiday: String,
    /// `file:line` it came from.
    pub source: String,
}

/// Exceptions by date, as read from one or more files.
pub(crate) type Exceptions = BTreeMap<Date, Exception>;

/// Reads every `*.tsv` file in `dir` (in name order) into `exceptions`.
pub(crate) fn read_dir(dir: &Path, exceptions: &mut Exceptions) -> Result<(), CalendarError> {
    let io = |source| CalendarError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|ext| ext == "tsv") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(CalendarError::NoFiles {
            dir: dir.to_path_buf(),
        });
    }
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| CalendarError::Io {
            path: path.clone(),
            source,
        })?;
        read_str(&text, &path.display().to_string(), exceptions)?;
    }
    Ok(())
}

/// Reads the text of one calendar file, named `file` in errors, into `exceptions`.
pub(crate) fn read_str(
    text: &str,
    file: &str,
    exceptions: &mut Exceptions,
) -> Result<(), CalendarError> {
    let mut seen_row = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let error = |message: String| CalendarError::Line {
            file: file.to_owned(),
            line,
            message,
        };
        let row = raw.trim_end_matches('\r');
        if row.trim().is_empty() || row.starts_with('#') {
            continue;
        }
        let columns: Vec<&str> = row.split('\t').map(str::trim).collect();
        if !seen_row && columns.first() == Some(&"date") {
            seen_row = true;
            continue;
        }
        seen_row = true;
        let [date, kind, holiday] = columns[..] else {
            return Err(error(format!(
                "expected 3 tab-separated columns (date, kind, holiday), found {}",
                columns.len()
            )));
        };
        let date: Date = date
            .parse()
            .map_err(|_| error(format!("`{date}` is not a date (expected YYYY-MM-DD)")))?;
        let kind = match kind {
            "off" => DayKind::Off,
            "work" => DayKind::Work,
            other => return Err(error(format!("kind `{other}` is neither `off` nor `work`"))),
        };
        if kind == DayKind::Work && !is_weekend_date(date) {
            return Err(error(format!(
                "{date} is a {:?}: `work` is only for a weekend day that is worked",
                date.weekday()
            )));
        }
        if holiday.is_empty() {
            return Err(error("holiday name must not be empty".to_owned()));
        }
        let source = format!("{file}:{line}");
        let exception = Exception {
            kind,
            holiday: holiday.to_owned(),
            source,
        };
        if let Some(first) = exceptions.insert(date, exception) {
            return Err(error(format!(
                "{date} is listed twice (first at {})",
                first.source
            )));
        }
    }
    Ok(())
}
