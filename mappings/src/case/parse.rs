//! [`parse_case`]: bytes in, a normalised and validated [`Case`] or every problem found out.
//!
//! Invariants: never panics and never recurses without bound on hostile input. Bodies above
//! [`MAX_CASE_BYTES`] are refused before parsing; invalid UTF-8 is reported with its byte offset;
//! nesting deeper than serde_json's recursion limit (128 levels) is a syntax problem; a wrong
//! type names the JSON path of the value, including paths inside the tagged `applicant`.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::problem::{Problem, join};
use super::{Case, LegalPerson, NaturalPerson};

/// The largest case body accepted, in bytes (16 MiB). Materials travel by reference, so a real
/// case is a few kilobytes; the limit only bounds memory for a hostile or broken client.
pub const MAX_CASE_BYTES: usize = 16 * 1024 * 1024;

/// Parses, normalises and validates a case.
///
/// Returns every problem at once: a body that cannot be parsed gives one problem (with the JSON
/// path when the JSON is well formed but a value has the wrong type); a parsed case gives every
/// validation problem.
pub fn parse_case(bytes: &[u8]) -> Result<Case, Vec<Problem>> {
    let mut case = deserialize_case(bytes).map_err(|problem| vec![problem])?;
    case.normalize();
    let problems = case.validate();
    if problems.is_empty() {
        Ok(case)
    } else {
        Err(problems)
    }
}

/// Turns bytes into a [`Case`] without normalising or validating it.
fn deserialize_case(bytes: &[u8]) -> Result<Case, Problem> {
    if bytes.len() > MAX_CASE_BYTES {
        return Err(Problem::new(
            "",
            format!(
                "case body is {} bytes, more than the limit of {MAX_CASE_BYTES} bytes",
                bytes.len()
            ),
        ));
    }
    if let Err(error) = std::str::from_utf8(bytes) {
        return Err(Problem::new(
            "",
            format!(
                "case body is not valid UTF-8 (invalid byte at offset {})",
                error.valid_up_to()
            ),
        ));
    }
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|&byte| byte != b'{') {
        return Err(Problem::new("", "case body must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<Case, _> = serde_path_to_error::deserialize(&mut deserializer);
    match result {
        Ok(case) => match deserializer.end() {
            Ok(()) => Ok(case),
            Err(error) => Err(Problem::new(
                "",
                format!("case body is not valid JSON: {error}"),
            )),
        },
        Err(error) => {
            let path = path_string(error.path());
            let inner = error.into_inner();
            if !inner.is_data() {
                return Err(Problem::new(
                    "",
                    format!("case body is not valid JSON: {inner}"),
                ));
            }
            if path == "applicant"
                && let Some(problem) = refine_applicant(bytes)
            {
                return Err(problem);
            }
            Err(Problem::new(path, inner.to_string()))
        }
    }
}

/// `serde_path_to_error` paths as this crate writes them (the root is the empty string).
fn path_string(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." { String::new() } else { text }
}

/// Finds the exact path of a type error inside the internally tagged `applicant`, which serde
/// buffers and so reports only as `applicant`.
fn refine_applicant(bytes: &[u8]) -> Option<Problem> {
    let root: Value = serde_json::from_slice(bytes).ok()?;
    let mut applicant = root.get("applicant")?.as_object()?.clone();
    let kind = applicant.remove("kind")?;
    let value = Value::Object(applicant);
    match kind.as_str()? {
        "natural_person" => type_error::<NaturalPerson>(value, "applicant"),
        "legal_person" => type_error::<LegalPerson>(value, "applicant"),
        _ => None,
    }
}

/// The first type error of `value` as a `T`, with its path under `prefix`.
fn type_error<T: DeserializeOwned>(value: Value, prefix: &str) -> Option<Problem> {
    let error = serde_path_to_error::deserialize::<_, T>(value).err()?;
    let path = path_string(error.path());
    let path = if path.is_empty() {
        prefix.to_owned()
    } else {
        join(prefix, &path)
    };
    Some(Problem::new(path, error.into_inner().to_string()))
}
