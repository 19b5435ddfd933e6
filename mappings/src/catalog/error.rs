//! Load errors, each located in its file by line and column.
//!
//! Offsets come from TOML spans (bytes); [`SourceFile::locate`] turns them into 1-based lines and
//! 1-based columns counted in characters, the way editors show them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found while loading the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct LoadError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, lower-case, no trailing period.
    pub message: String,
}

/// Every problem found while loading, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// A file's text with its line starts, for locating byte offsets.
#[derive(Debug)]
pub(crate) struct SourceFile<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceFile<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and character column of a byte offset.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line.max(1), column + 1)
    }

    /// An error at a byte offset.
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> LoadError {
        let (line, column) = self.locate(offset);
        LoadError {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error at the start of a span.
    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> LoadError {
        self.error_at(span.start, message)
    }

    /// An error from the TOML parser or deserializer.
    pub fn toml_error(&self, error: &toml::de::Error) -> LoadError {
        let message = error.message().trim_end().trim_end_matches('.');
        match error.span() {
            Some(span) => self.error_at(span.start, message),
            None if message.contains("recursion") => {
                self.error_at(0, format!("{message}: tables or arrays nested too deep"))
            }
            None => self.error_at(0, message),
        }
    }

    /// The offset of a character inside a string value, when the value is written without
    /// escapes (so its text appears verbatim after the opening quote); else the value's start.
    pub fn offset_in_string(&self, span: &Range<usize>, value: &str, index: usize) -> usize {
        let raw = self.text.get(span.clone()).unwrap_or("");
        let quote = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
            3
        } else {
            1
        };
        match raw.get(quote..quote + value.len()) {
            Some(inner) if inner == value => span.start + quote + index,
            _ => span.start,
        }
    }
}

/// An error for a whole file (read failures, wrong encoding): line 1, column 1 unless known.
pub(crate) fn file_error(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError {
        file: path.to_path_buf(),
        line: 1,
        column: 1,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_offsets_in_characters() {
        let text = "a = 1\nname = \"王䶮\" x\n";
        let file = SourceFile::new(Path::new("f.toml"), text);
        assert_eq!(file.locate(0), (1, 1));
        assert_eq!(file.locate(6), (2, 1));
        let x = text.find(" x").unwrap_or(0) + 1;
        assert_eq!(file.locate(x), (2, 13));
        assert_eq!(file.error_at(x, "bad").to_string(), "f.toml:2:13: bad");
    }
}
