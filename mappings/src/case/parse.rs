//! [`parse_case`]: bytes in, a normalised and validated [`Case`] or every problem found out.
//!
//! Invariants: never panics and never recurses without bound on hostile input. Bodies above
//! [`MAX_CASE_BYTES`] are refused before parsing; invalid UTF-8 is reported with its byte offset;
//! nesting deeper than serde_json's recursion limit (128 levels) is a syntax problem. When the
//! JSON is well formed but values have the wrong type, every top-level field (and every
//! material) is checked on its own, so all type problems come back at once, each with its path,
//! including paths inside the tagged `applicant`.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::problem::{Problem, join};
use super::{Agent, Case, Channel, LegalPerson, Material, Matter, NaturalPerson, Region};

/// The largest case body accepted, in bytes (16 MiB). Materials travel by reference, so a real
/// case is a few kilobytes; the limit only bounds memory for a hostile or broken client.
pub const MAX_CASE_BYTES: usize = 16 * 1024 * 1024;

/// Top-level fields a case must have.
const REQUIRED_FIELDS: [&str; 6] = [
    "case_number",
    "matter",
    "applicant",
    "region",
    "channel",
    "received_at",
];

/// Parses, normalises and validates a case.
///
/// Returns every problem at once: a body that is not JSON gives one problem; well-formed JSON
/// with wrong types gives one problem per offending field; a parsed case gives every validation
/// problem.
pub fn parse_case(bytes: &[u8]) -> Result<Case, Vec<Problem>> {
    let mut case = deserialize_case(bytes)?;
    case.normalize();
    let problems = case.validate();
    if problems.is_empty() {
        Ok(case)
    } else {
        Err(problems)
    }
}

/// Turns bytes into a [`Case`] without normalising or validating it.
fn deserialize_case(bytes: &[u8]) -> Result<Case, Vec<Problem>> {
    let body = |message: String| vec![Problem::new("", message)];
    if bytes.len() > MAX_CASE_BYTES {
        let size = bytes.len();
        return Err(body(format!(
            "case body is {size} bytes, more than the limit of {MAX_CASE_BYTES} bytes"
        )));
    }
    if let Err(error) = std::str::from_utf8(bytes) {
        let offset = error.valid_up_to();
        return Err(body(format!(
            "case body is not valid UTF-8 (invalid byte at offset {offset})"
        )));
    }
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|&byte| byte != b'{') {
        return Err(body("case body must be a JSON object".to_owned()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<Case, _> = serde_path_to_error::deserialize(&mut deserializer);
    let error = match result {
        Ok(case) => {
            return match deserializer.end() {
                Ok(()) => Ok(case),
                Err(error) => Err(body(format!("case body is not valid JSON: {error}"))),
            };
        }
        Err(error) => error,
    };
    let path = path_string(error.path());
    let inner = error.into_inner();
    if !inner.is_data() {
        return Err(body(format!("case body is not valid JSON: {inner}")));
    }
    let problems = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(root)) => field_problems(&root),
        _ => Vec::new(),
    };
    if problems.is_empty() {
        Err(vec![Problem::new(path, inner.to_string())])
    } else {
        Err(problems)
    }
}

/// Type problems of every top-level field checked on its own, in document order, then the
/// missing required fields.
fn field_problems(root: &Map<String, Value>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (key, value) in root {
        let problem = match key.as_str() {
            "case_number" => type_error::<String>(value, key),
            "matter" => type_error::<Matter>(value, key),
            "applicant" => applicant_error(value),
            "agent" => type_error::<Option<Agent>>(value, key),
            "region" => type_error::<Region>(value, key),
            "channel" => type_error::<Channel>(value, key),
            "received_at" => type_error::<jiff::Timestamp>(value, key),
            "form" => type_error::<Map<String, Value>>(value, key),
            "materials" => match value.as_array() {
                Some(items) => {
                    let items = items.iter().enumerate();
                    problems.extend(items.filter_map(|(index, item)| {
                        type_error::<Material>(item, &format!("materials[{index}]"))
                    }));
                    None
                }
                None => type_error::<Vec<Material>>(value, key),
            },
            "time_limit_days" => type_error::<Option<u32>>(value, key),
            _ => Some(Problem::new(key.as_str(), "unknown field")),
        };
        problems.extend(problem);
    }
    for field in REQUIRED_FIELDS {
        if !root.contains_key(field) {
            problems.push(Problem::new(field, "is required"));
        }
    }
    problems
}

/// `serde_path_to_error` paths as this crate writes them (the root is the empty string).
fn path_string(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." { String::new() } else { text }
}

/// The type problem of the internally tagged `applicant`, with its exact path: serde buffers a
/// tagged enum and so would report only `applicant`.
fn applicant_error(value: &Value) -> Option<Problem> {
    let Some(object) = value.as_object() else {
        return type_error::<super::Applicant>(value, "applicant");
    };
    let mut fields = object.clone();
    let kind = fields.remove("kind");
    let fields = Value::Object(fields);
    match kind.as_ref().map(|kind| (kind, kind.as_str())) {
        Some((_, Some("natural_person"))) => type_error::<NaturalPerson>(&fields, "applicant"),
        Some((_, Some("legal_person"))) => type_error::<LegalPerson>(&fields, "applicant"),
        Some((kind, _)) => Some(Problem::new(
            "applicant.kind",
            format!("unknown applicant kind {kind}, expected `natural_person` or `legal_person`"),
        )),
        None => Some(Problem::new("applicant.kind", "is required")),
    }
}

/// The first type error of `value` as a `T`, with its path under `prefix`.
fn type_error<T: DeserializeOwned>(value: &Value, prefix: &str) -> Option<Problem> {
    let error = serde_path_to_error::deserialize::<_, T>(value).err()?;
    let path = path_string(error.path());
    let path = if path.is_empty() {
        prefix.to_owned()
    } else {
        join(prefix, &path)
    };
    Some(Problem::new(path, error.into_inner().to_string()))
}
