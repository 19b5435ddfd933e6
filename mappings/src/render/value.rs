//! Evaluating one field against the case: the pipeline every shape shares.
//!
//! Order: `when` (false → the field is not written at all) → source (`from`, `value`,
//! `template`) → `derive` → `date_format` → code table → `default` when absent → `required` →
//! `max_length` → charset check (skipped under the `ncr` policy, which the XML writer applies).

use jiff::civil::Date;
use serde_json::Value;

use crate::case::Case;
use crate::charset::{Charset, Unencodable};
use crate::mapping::{DateFormat, Field, Piece, Scalar, Source, Test};

use super::RenderError;
use super::derive;
use super::scope::Scope;

/// What is wrong with one field's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    /// `required = true` and the source gave nothing.
    #[error("required value missing ({origin})")]
    Missing {
        /// The source as written (`from applicant.phone`, `template needs …`, ...).
        origin: String,
    },
    /// A character the document charset cannot hold.
    #[error("character '{ch}' (U+{code:04X}) cannot be encoded in {charset}", code = u32::from(*ch))]
    Unencodable {
        /// The character.
        ch: char,
        /// The charset.
        charset: Charset,
    },
    /// A character XML 1.0 does not allow.
    #[error("character U+{code:04X} is not allowed in XML", code = u32::from(*ch))]
    NotXmlChar {
        /// The character.
        ch: char,
    },
    /// Longer than `max_length` characters.
    #[error("value has {length} characters, more than max_length {max}")]
    TooLong {
        /// Characters in the value.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A value the code table lacks, with no `code_default`.
    #[error("value {value:?} is not in code table {table}")]
    NoCode {
        /// The value.
        value: String,
        /// The table name (or `inline`).
        table: String,
    },
    /// `date_format` on something that is neither a timestamp nor a date.
    #[error("value {value:?} is not a date or timestamp")]
    NotADate {
        /// The value.
        value: String,
    },
    /// The date pattern could not format the value.
    #[error("date_format {pattern:?} cannot format {value:?}: {reason}")]
    DateFormat {
        /// The pattern.
        pattern: String,
        /// The value.
        value: String,
        /// The formatter's reason.
        reason: String,
    },
    /// A list or object where the shape needs a single value.
    #[error("case path {path} holds a list or an object; this shape takes single values")]
    NotScalar {
        /// The case path.
        path: String,
    },
    /// `each` over something that is not a list.
    #[error("case path {path} is not a list")]
    NotAList {
        /// The case path.
        path: String,
    },
}

/// What every field evaluation needs besides the value scope.
#[derive(Debug)]
pub(crate) struct Env<'a> {
    pub system: &'a str,
    /// The day the case was received in Asia/Shanghai (for `derive = "age"`).
    pub received: Date,
}

impl<'a> Env<'a> {
    pub fn new(system: &'a str, case: &Case) -> Env<'a> {
        Env {
            system,
            received: case.received_at.to_zoned(crate::mapping::shanghai()).date(),
        }
    }

    pub fn error(&self, field: &str, problem: FieldProblem) -> RenderError {
        RenderError::Field {
            system: self.system.to_owned(),
            field: field.to_owned(),
            problem,
        }
    }
}

/// Whether the field's `when` holds (true when it has none).
pub(crate) fn condition_holds(field: &Field, scope: &Scope<'_>) -> bool {
    let Some(when) = &field.when else {
        return true;
    };
    let value = scope.get(&when.path);
    match &when.test {
        Test::Present(wanted) => value.is_some() == *wanted,
        Test::Equals(expected) => value.is_some_and(|v| scalar_equals(expected, &v)),
        Test::In(options) => value.is_some_and(|v| options.iter().any(|o| scalar_equals(o, &v))),
    }
}

fn scalar_equals(scalar: &Scalar, value: &Value) -> bool {
    match (scalar, value) {
        (Scalar::String(s), Value::String(v)) => s == v,
        (Scalar::Integer(i), Value::Number(n)) => n.as_i64() == Some(*i),
        (Scalar::Float(f), Value::Number(n)) => n.as_f64() == Some(*f),
        (Scalar::Bool(b), Value::Bool(v)) => b == v,
        _ => false,
    }
}

/// A scalar JSON value as text; `None` for lists and objects.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Evaluates a non-`each` field: `Ok(None)` means the field is not written.
pub(crate) fn evaluate(
    field: &Field,
    name: &str,
    scope: &Scope<'_>,
    env: &Env<'_>,
    charset: Charset,
) -> Result<Option<Value>, RenderError> {
    if !condition_holds(field, scope) {
        return Ok(None);
    }
    let fail = |problem| env.error(name, problem);
    let mut value = match &field.source {
        Source::From(paths) => paths.iter().find_map(|p| scope.get(p)),
        Source::Value(constant) => Some(constant.to_json()),
        Source::Template(pieces) => template(pieces, scope),
        Source::Each { .. } => return Ok(None),
    };
    if let (Some(kind), Some(v)) = (field.derive, &value) {
        value = derive::derive(kind, v.as_str().unwrap_or(""), env.received);
    }
    if let (Some(format), Some(v)) = (&field.date, &value) {
        value = Some(Value::String(format_date(format, v).map_err(fail)?));
    }
    if let (Some(codes), Some(v)) = (&field.codes, &value) {
        let key = scalar_text(v).ok_or_else(|| fail(not_scalar(field)))?;
        let code = match codes.map.get(&key) {
            Some(code) => code.clone(),
            None => codes.fallback.clone().ok_or_else(|| {
                fail(FieldProblem::NoCode {
                    value: key.clone(),
                    table: codes.name.clone(),
                })
            })?,
        };
        value = Some(Value::String(code));
    }
    let value = match value {
        Some(v) => v,
        None => match &field.default {
            Some(default) => default.to_json(),
            None if field.required => {
                return Err(fail(FieldProblem::Missing {
                    origin: describe_source(&field.source),
                }));
            }
            None => return Ok(None),
        },
    };
    if let Some(max) = field.max_length
        && let Some(text) = scalar_text(&value)
    {
        let length = text.chars().count();
        if length > max {
            return Err(fail(FieldProblem::TooLong { length, max }));
        }
    }
    if field.unencodable == Unencodable::Error {
        check_charset(&value, charset).map_err(fail)?;
    }
    Ok(Some(value))
}

/// Fails on the first character (in any string of the value) the charset cannot hold.
pub(crate) fn check_charset(value: &Value, charset: Charset) -> Result<(), FieldProblem> {
    match value {
        Value::String(s) => match charset.first_unencodable(s) {
            Some(ch) => Err(FieldProblem::Unencodable { ch, charset }),
            None => Ok(()),
        },
        Value::Array(items) => items.iter().try_for_each(|v| check_charset(v, charset)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if let Some(ch) = charset.first_unencodable(k) {
                return Err(FieldProblem::Unencodable { ch, charset });
            }
            check_charset(v, charset)
        }),
        _ => Ok(()),
    }
}

pub(crate) fn not_scalar(field: &Field) -> FieldProblem {
    FieldProblem::NotScalar {
        path: describe_path(&field.source),
    }
}

fn describe_path(source: &Source) -> String {
    match source {
        Source::From(paths) => paths
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
        Source::Each { path, .. } => path.text.clone(),
        Source::Value(_) => "value".to_owned(),
        Source::Template(_) => "template".to_owned(),
    }
}

fn describe_source(source: &Source) -> String {
    match source {
        Source::From(_) => format!("from {}", describe_path(source)),
        Source::Each { path, .. } => format!("each {}", path.text),
        Source::Template(pieces) => {
            let paths: Vec<&str> = pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Path(path) => Some(path.text.as_str()),
                    Piece::Text(_) => None,
                })
                .collect();
            format!("template needs {}", paths.join(", "))
        }
        Source::Value(_) => "value".to_owned(),
    }
}

/// Fills a template; absent when any placeholder is absent.
fn template(pieces: &[Piece], scope: &Scope<'_>) -> Option<Value> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Path(path) => out.push_str(&scalar_text(&scope.get(path)?)?),
        }
    }
    Some(Value::String(out))
}

/// Formats a timestamp (converted to the field's time zone), a civil date-time or a date.
fn format_date(format: &DateFormat, value: &Value) -> Result<String, FieldProblem> {
    let text = scalar_text(value).unwrap_or_default();
    let failed = |reason: jiff::Error| FieldProblem::DateFormat {
        pattern: format.pattern.clone(),
        value: text.clone(),
        reason: reason.to_string(),
    };
    let pattern = format.pattern.as_bytes();
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        let zoned = timestamp.to_zoned(format.timezone.clone());
        return jiff::fmt::strtime::format(pattern, &zoned).map_err(failed);
    }
    if let Ok(datetime) = text.parse::<jiff::civil::DateTime>()
        && text.len() > 10
    {
        return jiff::fmt::strtime::format(pattern, datetime).map_err(failed);
    }
    if let Ok(date) = text.parse::<Date>() {
        return jiff::fmt::strtime::format(pattern, date).map_err(failed);
    }
    Err(FieldProblem::NotADate { value: text })
}
