//! Running golden examples: render each example's case and compare with its expectation.
//!
//! Comparison is exact except for line ends: `\r\n` and `\n` compare equal (TOML files keep
//! `\n`, CSV bodies end records with `\r\n`), and one final line end is optional on both sides.

use std::fmt;
use std::path::PathBuf;

use crate::case::Case;

use super::{Example, Expectation, SystemSpec};

/// A golden example that did not render as expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    /// The system whose example failed.
    pub system: String,
    /// The example's name.
    pub example: String,
    /// The mapping file.
    pub file: PathBuf,
    /// Line of the example's `case` key.
    pub line: usize,
    /// Column of the example's `case` value.
    pub column: usize,
    /// What went wrong; for a text mismatch, a line diff (`-` expected, `+` rendered).
    pub message: String,
}

impl fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: example {:?}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.example,
            self.message
        )
    }
}

/// Runs every example of one system.
pub(crate) fn run(spec: &SystemSpec) -> Vec<ExampleFailure> {
    spec.examples
        .iter()
        .filter_map(|example| {
            check(spec, example).err().map(|message| ExampleFailure {
                system: spec.id.clone(),
                example: example.name.clone(),
                file: spec.path.clone(),
                line: example.line,
                column: example.column,
                message,
            })
        })
        .collect()
}

fn check(spec: &SystemSpec, example: &Example) -> Result<(), String> {
    let case = read_case(example)?;
    match (&example.expect, spec.render(&case)) {
        (Expectation::Text(expected), Ok(rendered)) => {
            let expected = normalize(expected.strip_prefix('\n').unwrap_or(expected));
            let actual = normalize(&rendered.text);
            if expected == actual {
                Ok(())
            } else {
                Err(format!(
                    "rendered text differs (- expected, + rendered):\n{}",
                    diff(&expected, &actual)
                ))
            }
        }
        (Expectation::Text(_), Err(e)) => Err(format!("rendering failed: {e}")),
        (Expectation::Error(wanted), Err(e)) => {
            let message = e.to_string();
            if message.contains(wanted.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "rendering failed with {message:?}, which does not contain {wanted:?}"
                ))
            }
        }
        (Expectation::Error(wanted), Ok(_)) => Err(format!(
            "rendering succeeded, but an error containing {wanted:?} was expected"
        )),
    }
}

fn read_case(example: &Example) -> Result<Case, String> {
    let bytes = std::fs::read(&example.case)
        .map_err(|e| format!("cannot read case {}: {e}", example.case.display()))?;
    crate::case::parse_case(&bytes).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        format!(
            "case {} is invalid: {}",
            example.case.display(),
            list.join("; ")
        )
    })
}

fn normalize(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    text.strip_suffix('\n').map(str::to_owned).unwrap_or(text)
}

/// A small line diff (longest common subsequence), enough for documents of a few hundred lines.
pub(crate) fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    if a.len() * b.len() > 4_000_000 {
        return format!("--- expected\n{expected}\n+++ rendered\n{actual}");
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff("a\nb\nc", "a\nx\nc");
        assert_eq!(d, "  a\n+ x\n- b\n  c\n");
        assert_eq!(normalize("x\r\ny\r\n"), "x\ny");
    }
}
