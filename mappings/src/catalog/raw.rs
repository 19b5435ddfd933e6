//! The file formats as written, parsed strictly (`deny_unknown_fields`), with spans kept for
//! every value a later check may need to point at. Nothing here is validated beyond types.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::charset::{Charset, Unencodable};
use crate::mapping::{Derive, Scalar, Shape};

use super::Level;

/// `[system]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSystem {
    pub id: Spanned<String>,
    pub name: String,
    pub owner: String,
    pub level: Spanned<Level>,
    #[serde(default)]
    pub serves: Vec<Spanned<String>>,
    pub version: String,
}

/// `[adapter]`: only the kind is read here; yimen-adapters parses the rest strictly.
#[derive(Debug, Deserialize)]
pub struct RawAdapter {
    pub kind: Spanned<String>,
}

/// `[document]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocument {
    pub shape: Shape,
    #[serde(default)]
    pub charset: Charset,
    pub unencodable: Option<Spanned<Unencodable>>,
    pub root: Option<Spanned<String>>,
    #[serde(default)]
    pub namespaces: BTreeMap<String, Spanned<String>>,
    pub csv_header: Option<Spanned<bool>>,
    pub csv_delimiter: Option<Spanned<String>>,
}

/// One `[[field]]` (or `[[field.item]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub to: Spanned<String>,
    pub from: Option<Spanned<FromPaths>>,
    pub value: Option<Spanned<Scalar>>,
    pub template: Option<Spanned<String>>,
    pub each: Option<Spanned<String>>,
    #[serde(default)]
    pub item: Vec<Spanned<RawField>>,
    #[serde(default)]
    pub required: bool,
    pub when: Option<Spanned<RawWhen>>,
    pub derive: Option<Spanned<Derive>>,
    pub code_table: Option<Spanned<String>>,
    pub codes: Option<Spanned<BTreeMap<String, String>>>,
    pub code_default: Option<Spanned<String>>,
    pub date_format: Option<Spanned<String>>,
    pub timezone: Option<Spanned<String>>,
    pub default: Option<Spanned<Scalar>>,
    pub max_length: Option<Spanned<usize>>,
    pub unencodable: Option<Spanned<Unencodable>>,
}

/// `from`: one case path, or several tried in order (the first present one wins).
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a case path or a list of case paths")]
pub enum FromPaths {
    One(String),
    Many(Vec<String>),
}

impl FromPaths {
    pub fn paths(&self) -> Vec<&str> {
        match self {
            FromPaths::One(p) => vec![p.as_str()],
            FromPaths::Many(ps) => ps.iter().map(String::as_str).collect(),
        }
    }
}

/// `when = { path = …, equals = … | present = … | in = [ … ] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    pub path: Spanned<String>,
    pub equals: Option<Scalar>,
    pub present: Option<bool>,
    #[serde(rename = "in")]
    pub one_of: Option<Vec<Scalar>>,
}

/// One `[[example]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExample {
    pub name: String,
    pub case: Spanned<String>,
    pub expect: Option<String>,
    pub expect_error: Option<String>,
}

/// A code table file, `codes/<name>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCodeFile {
    pub format: Option<Spanned<i64>>,
    #[serde(default)]
    pub description: String,
    pub codes: BTreeMap<String, String>,
}

/// One `[[route]]` of routes.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub matter: Spanned<String>,
    #[serde(default)]
    pub name: String,
    pub applicant: Spanned<String>,
    pub regions: Option<Vec<Spanned<String>>>,
    pub targets: Vec<Spanned<String>>,
    pub time_limit_days: Option<u32>,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, integer, float or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::String(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Integer)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}
