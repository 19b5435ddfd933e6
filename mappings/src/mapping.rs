//! One line system's compiled mapping: the document settings and the fields, validated at load
//! time so that rendering only meets problems that depend on the case.
//!
//! Invariants (established by the loader): every case path resolves in the case schema (or lies
//! under a free-form `form` key or an `each` item of unknown shape); every code table exists;
//! target paths are unique per level and never both a value and a parent; XML prefixes are
//! declared; `derive`, `date_format` and the shape's rules agree.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::charset::{Charset, Unencodable};

/// What kind of document a system takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A JSON object, pretty-printed.
    Json,
    /// An XML document with declaration.
    Xml,
    /// One CSV record (with an optional header row).
    Csv,
    /// Name/value pairs for a pre-filled web form (jump systems).
    Form,
}

impl Shape {
    /// File extension for a rendered document.
    pub fn extension(self) -> &'static str {
        match self {
            Shape::Json => "json",
            Shape::Xml => "xml",
            Shape::Csv => "csv",
            Shape::Form => "form",
        }
    }

    /// Media type (without charset).
    pub fn media_type(self) -> &'static str {
        match self {
            Shape::Json => "application/json",
            Shape::Xml => "application/xml",
            Shape::Csv => "text/csv",
            Shape::Form => "application/x-www-form-urlencoded",
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// A value derived from a resident ID number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Derive {
    /// The birth date (a date: formatted with `date_format`, default `%Y-%m-%d`).
    BirthDate,
    /// `1` male, `2` female (GB/T 2261.1).
    Gender,
    /// Age in whole years on the day the case was received.
    Age,
}

/// A constant from a mapping file.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::String(s) => serde_json::Value::String(s.clone()),
            Scalar::Integer(i) => serde_json::Value::from(*i),
            Scalar::Float(f) => serde_json::Value::from(*f),
            Scalar::Bool(b) => serde_json::Value::Bool(*b),
        }
    }
}

/// The document settings of one system.
#[derive(Debug, Clone)]
pub struct Document {
    pub shape: Shape,
    pub charset: Charset,
    pub unencodable: Unencodable,
    /// XML root element name.
    pub root: String,
    /// XML namespace declarations (prefix, URI), "" being the default namespace.
    pub namespaces: Vec<(String, String)>,
    pub csv_header: bool,
    pub csv_delimiter: u8,
}

/// A dotted case path, split once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePath {
    pub text: String,
    pub segments: Vec<String>,
}

impl CasePath {
    pub fn new(text: &str) -> CasePath {
        CasePath {
            text: text.to_owned(),
            segments: text.split('.').map(str::to_owned).collect(),
        }
    }
}

/// Where a field's value goes: element path and, for XML, an optional attribute of the last
/// element (or of the current element when `elements` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub elements: Vec<String>,
    pub attribute: Option<String>,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Path(CasePath),
}

/// Where a field's value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The first present of one or more case paths.
    From(Vec<CasePath>),
    /// A constant.
    Value(Scalar),
    /// Text with `{case.path}` placeholders.
    Template(Vec<Piece>),
    /// One element or object per item of a list, built from item fields.
    Each { path: CasePath, items: Vec<Field> },
}

/// The test of a `when` condition.
#[derive(Debug, Clone)]
pub enum Test {
    Equals(Scalar),
    Present(bool),
    In(Vec<Scalar>),
}

/// A condition on the case: the field is written only when it holds.
#[derive(Debug, Clone)]
pub struct When {
    pub path: CasePath,
    pub test: Test,
}

/// A code table (shared or inline) and the fallback for values it lacks.
#[derive(Debug, Clone)]
pub struct Codes {
    /// Table name, or `inline`.
    pub name: String,
    pub map: Arc<BTreeMap<String, String>>,
    pub fallback: Option<String>,
}

/// The hub's default time zone, Asia/Shanghai (UTC+8 since 1991), looked up once: the tz
/// database is bundled, so the lookup cannot fail on a system without one; UTC+8 stands in if it
/// ever did.
pub fn shanghai() -> TimeZone {
    static ZONE: std::sync::LazyLock<TimeZone> = std::sync::LazyLock::new(|| {
        TimeZone::get("Asia/Shanghai").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(8)))
    });
    ZONE.clone()
}

/// Date formatting of timestamps and dates.
#[derive(Debug, Clone)]
pub struct DateFormat {
    pub pattern: String,
    pub timezone: TimeZone,
}

/// One compiled field.
#[derive(Debug, Clone)]
pub struct Field {
    /// The `to` as written, used in error messages.
    pub to: String,
    pub target: Target,
    pub source: Source,
    pub when: Option<When>,
    pub required: bool,
    pub default: Option<Scalar>,
    pub derive: Option<Derive>,
    pub date: Option<DateFormat>,
    pub codes: Option<Codes>,
    pub max_length: Option<usize>,
    pub unencodable: Unencodable,
}

/// A system's whole mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub document: Document,
    pub fields: Vec<Field>,
}
