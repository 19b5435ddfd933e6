//! The set of valid case paths, derived from the case's JSON schema (the one source of truth).
//!
//! The schema is walked once: `$ref`s are resolved, `oneOf`/`anyOf`/`allOf` variants are merged
//! (so `applicant.credit_code` is valid because one applicant variant has it), nullable types
//! are unwrapped, arrays keep their item shape (checked under `each`), and an object with open
//! `additionalProperties` (the `form` bag) accepts any key below it.

use std::collections::BTreeMap;

use serde_json::Value;

/// The shape of a value at a case path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathNode {
    /// A string, number or boolean.
    Scalar,
    /// An object with known keys.
    Object(BTreeMap<String, PathNode>),
    /// A list; the node describes one item.
    Array(Box<PathNode>),
    /// Free-form data: any key or shape below is accepted (checked at render time).
    Any,
}

/// Why a path is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// A segment the schema does not have at that place.
    Unknown {
        /// The path up to and including the bad segment.
        prefix: String,
        /// Keys that would be valid there.
        expected: Vec<String>,
    },
    /// A segment below a list (lists are entered with `each`).
    InsideList(String),
    /// A segment below a scalar.
    BelowScalar(String),
    /// An empty path or an empty segment.
    Empty,
}

impl PathProblem {
    /// A message naming the path and what would be valid.
    pub fn message(&self, path: &str) -> String {
        match self {
            PathProblem::Unknown { prefix, expected } => {
                let mut message = format!("unknown case path `{path}`: `{prefix}` does not exist");
                if !expected.is_empty() {
                    let near: Vec<&str> = expected.iter().map(String::as_str).collect();
                    message.push_str(&format!("; expected one of: {}", near.join(", ")));
                }
                message
            }
            PathProblem::InsideList(list) => format!(
                "case path `{path}` goes inside the list `{list}`; map a list with `each` and item fields"
            ),
            PathProblem::BelowScalar(scalar) => {
                format!("case path `{path}` goes below `{scalar}`, which is a single value")
            }
            PathProblem::Empty => format!("case path `{path}` has an empty segment"),
        }
    }
}

impl PathNode {
    /// Builds the tree from a JSON schema document (as schemars emits it).
    pub fn from_schema(schema: &Value) -> PathNode {
        let defs = schema.get("$defs").or_else(|| schema.get("definitions"));
        build(schema, defs, 0)
    }

    /// The node at a dotted path, or why there is none.
    pub fn resolve(&self, path: &str) -> Result<&PathNode, PathProblem> {
        let mut node = self;
        let mut consumed = 0;
        for segment in path.split('.') {
            if segment.is_empty() {
                return Err(PathProblem::Empty);
            }
            let prefix_end = consumed + segment.len();
            let prefix = &path[..prefix_end];
            let parent = path[..consumed].trim_end_matches('.');
            node = match node {
                PathNode::Any => return Ok(&PathNode::Any),
                PathNode::Object(keys) => {
                    keys.get(segment).ok_or_else(|| PathProblem::Unknown {
                        prefix: prefix.to_owned(),
                        expected: keys.keys().cloned().collect(),
                    })?
                }
                PathNode::Array(_) => return Err(PathProblem::InsideList(parent.to_owned())),
                PathNode::Scalar => return Err(PathProblem::BelowScalar(parent.to_owned())),
            };
            consumed = prefix_end + 1;
        }
        Ok(node)
    }
}

const MAX_DEPTH: usize = 32;

fn build(schema: &Value, defs: Option<&Value>, depth: usize) -> PathNode {
    if depth > MAX_DEPTH {
        return PathNode::Any;
    }
    let Some(object) = schema.as_object() else {
        // `true` (anything) or a malformed schema: accept anything below.
        return PathNode::Any;
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return match defs.and_then(|d| d.get(name)) {
            Some(target) => build(target, defs, depth + 1),
            None => PathNode::Any,
        };
    }
    let mut merged: Option<PathNode> = None;
    for combinator in ["oneOf", "anyOf", "allOf"] {
        for variant in object
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if is_null_schema(variant) {
                continue;
            }
            let node = build(variant, defs, depth + 1);
            merged = Some(match merged {
                None => node,
                Some(previous) => merge(previous, node),
            });
        }
    }
    let own = own_shape(object, defs, depth);
    match (merged, own) {
        (Some(m), Some(o)) => merge(m, o),
        (Some(m), None) => m,
        (None, Some(o)) => o,
        (None, None) => PathNode::Any,
    }
}

fn own_shape(
    object: &serde_json::Map<String, Value>,
    defs: Option<&Value>,
    depth: usize,
) -> Option<PathNode> {
    let types: Vec<&str> = match object.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        let keys = properties
            .iter()
            .map(|(k, v)| (k.clone(), build(v, defs, depth + 1)))
            .collect();
        return Some(PathNode::Object(keys));
    }
    match types.first().copied() {
        Some("array") => Some(PathNode::Array(Box::new(
            object
                .get("items")
                .map_or(PathNode::Any, |items| build(items, defs, depth + 1)),
        ))),
        Some("object") => Some(PathNode::Any),
        Some(_) => Some(PathNode::Scalar),
        None if object.contains_key("const") || object.contains_key("enum") => {
            Some(PathNode::Scalar)
        }
        None => None,
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

fn merge(a: PathNode, b: PathNode) -> PathNode {
    match (a, b) {
        (PathNode::Object(mut x), PathNode::Object(y)) => {
            for (key, node) in y {
                let merged = match x.remove(&key) {
                    Some(existing) => merge(existing, node),
                    None => node,
                };
                x.insert(key, merged);
            }
            PathNode::Object(x)
        }
        (PathNode::Array(x), PathNode::Array(y)) => PathNode::Array(Box::new(merge(*x, *y))),
        (PathNode::Scalar, PathNode::Scalar) => PathNode::Scalar,
        _ => PathNode::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PathNode {
        PathNode::from_schema(&crate::catalog::case_schema_value())
    }

    #[test]
    fn schema_paths_cover_both_applicant_kinds() {
        let tree = tree();
        for path in [
            "case_number",
            "matter.code",
            "applicant.kind",
            "applicant.name",
            "applicant.id_number",
            "applicant.credit_code",
            "applicant.legal_representative.name",
            "agent.person.name",
            "region.division_code",
            "channel.window",
            "received_at",
            "time_limit_days",
            "form.anything.below",
        ] {
            assert!(tree.resolve(path).is_ok(), "{path}");
        }
        assert!(matches!(tree.resolve("materials"), Ok(PathNode::Array(_))));
    }

    #[test]
    fn bad_paths_say_where_they_go_wrong() {
        let tree = tree();
        let problem = tree.resolve("applicant.nmae").err();
        let message = problem
            .map(|p| p.message("applicant.nmae"))
            .unwrap_or_default();
        assert!(
            message.contains("`applicant.nmae` does not exist"),
            "{message}"
        );
        assert!(message.contains("name"), "{message}");
        assert!(
            matches!(tree.resolve("materials.name"), Err(PathProblem::InsideList(l)) if l == "materials")
        );
        assert!(matches!(
            tree.resolve("case_number.x"),
            Err(PathProblem::BelowScalar(_))
        ));
        assert!(matches!(
            tree.resolve("matter..code"),
            Err(PathProblem::Empty)
        ));
    }
}
