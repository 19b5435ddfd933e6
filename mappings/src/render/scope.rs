//! Reading case paths straight from the typed case, without turning the whole case into JSON
//! first (that conversion cost more than the rest of a render).
//!
//! A [`Scope`] is what paths are relative to: the case, one material (an `each` over
//! `materials`), or a JSON value (the free-form `form` and `each` items below it). Leaf paths are
//! read directly; anything else (a whole object such as `applicant`, or `materials` as a list for
//! the json shape) falls back to serializing that one part. Invariant, tested below: every path
//! gives the same value as navigating `serde_json::to_value(case)`.

use serde::Serialize;
use serde_json::Value;

use crate::case::{Agent, Applicant, Case, Channel, Material, Matter, NaturalPerson};
use crate::mapping::CasePath;

/// What case paths are relative to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    Case(&'a Case),
    Material(&'a Material),
    Json(&'a Value),
}

/// A list an `each` walks over.
pub(crate) enum List<'a> {
    Absent,
    Items(Vec<Scope<'a>>),
    /// Present but not a list.
    Other,
}

impl<'a> Scope<'a> {
    /// The value at `path`, `None` when absent or null.
    pub fn get(&self, path: &CasePath) -> Option<Value> {
        let value = match self {
            Scope::Case(case) => case_value(case, &path.segments),
            Scope::Material(material) => material_value(material, &path.segments),
            Scope::Json(value) => json_ref(value, &path.segments).cloned(),
        };
        value.filter(|v| !v.is_null())
    }

    /// The list at `path`, as scopes for its items.
    pub fn list(&self, path: &CasePath) -> List<'a> {
        let segments = path.segments.as_slice();
        let json = match (self, segments) {
            (Scope::Case(case), [first]) if first == "materials" => {
                return List::Items(case.materials.iter().map(Scope::Material).collect());
            }
            (Scope::Case(case), [first, rest @ ..]) if first == "form" => rest
                .split_first()
                .and_then(|(key, rest)| json_ref(case.form.get(key)?, rest)),
            (Scope::Json(value), _) => json_ref(value, segments),
            _ => return List::Other,
        };
        match json {
            None | Some(Value::Null) => List::Absent,
            Some(Value::Array(items)) => List::Items(items.iter().map(Scope::Json).collect()),
            Some(_) => List::Other,
        }
    }
}

fn json_ref<'v>(mut value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

fn text(s: &str) -> Option<Value> {
    Some(Value::String(s.to_owned()))
}

fn optional(s: Option<&String>) -> Option<Value> {
    s.map(|s| Value::String(s.clone()))
}

/// A whole part, for paths that name an object or list rather than a leaf.
fn whole<T: Serialize>(part: &T, rest: &[String]) -> Option<Value> {
    let value = serde_json::to_value(part).ok()?;
    json_ref(&value, rest).cloned()
}

fn case_value(case: &Case, segments: &[String]) -> Option<Value> {
    let (first, rest) = segments.split_first()?;
    match first.as_str() {
        "case_number" if rest.is_empty() => text(&case.case_number),
        "matter" => matter(&case.matter, rest),
        "applicant" => applicant(&case.applicant, rest),
        "agent" => agent(case.agent.as_ref()?, rest),
        "region" => match rest {
            [key] if key == "division_code" => text(&case.region.division_code),
            _ => whole(&case.region, rest),
        },
        "channel" => channel(&case.channel, rest),
        "received_at" if rest.is_empty() => Some(Value::String(case.received_at.to_string())),
        "time_limit_days" if rest.is_empty() => case.time_limit_days.map(Value::from),
        "form" => match rest.split_first() {
            Some((key, rest)) => json_ref(case.form.get(key)?, rest).cloned(),
            None => Some(Value::Object(case.form.clone())),
        },
        "materials" if rest.is_empty() => whole(&case.materials, rest),
        _ => None,
    }
}

fn matter(matter: &Matter, rest: &[String]) -> Option<Value> {
    match rest {
        [key] if key == "code" => text(&matter.code),
        [key] if key == "name" => text(&matter.name),
        [key] if key == "version" => optional(matter.version.as_ref()),
        _ => whole(matter, rest),
    }
}

fn applicant(applicant: &Applicant, rest: &[String]) -> Option<Value> {
    let [key, deeper @ ..] = rest else {
        return whole(applicant, rest);
    };
    match (applicant, key.as_str()) {
        (Applicant::NaturalPerson(_), "kind") => text("natural_person"),
        (Applicant::LegalPerson(_), "kind") => text("legal_person"),
        (Applicant::NaturalPerson(_), "credit_code" | "org_type" | "legal_representative") => None,
        (Applicant::LegalPerson(_), "id_type" | "id_number") => None,
        (Applicant::NaturalPerson(person), _) => person_value(person, rest),
        (Applicant::LegalPerson(legal), key) => match (key, deeper) {
            ("name", []) => text(&legal.name),
            ("credit_code", []) => text(&legal.credit_code),
            ("org_type", []) => text(&legal.org_type),
            ("address", []) => optional(legal.address.as_ref()),
            ("phone", []) => optional(legal.phone.as_ref()),
            ("legal_representative", deeper) => person_value(&legal.legal_representative, deeper),
            _ => whole(applicant, rest),
        },
    }
}

fn person_value(person: &NaturalPerson, rest: &[String]) -> Option<Value> {
    match rest {
        [key] if key == "name" => text(&person.name),
        [key] if key == "id_number" => text(&person.id_number),
        [key] if key == "id_type" => serde_json::to_value(person.id_type).ok(),
        [key] if key == "phone" => optional(person.phone.as_ref()),
        [key] if key == "address" => optional(person.address.as_ref()),
        _ => whole(person, rest),
    }
}

fn agent(agent: &Agent, rest: &[String]) -> Option<Value> {
    match rest {
        [key, deeper @ ..] if key == "person" => person_value(&agent.person, deeper),
        [key] if key == "relation" => optional(agent.relation.as_ref()),
        _ => whole(agent, rest),
    }
}

fn channel(channel: &Channel, rest: &[String]) -> Option<Value> {
    match rest {
        [key] if key == "kind" => serde_json::to_value(channel.kind).ok(),
        [key] if key == "hall" => optional(channel.hall.as_ref()),
        [key] if key == "window" => optional(channel.window.as_ref()),
        [key] if key == "clerk_id" => optional(channel.clerk_id.as_ref()),
        _ => whole(channel, rest),
    }
}

fn material_value(material: &Material, segments: &[String]) -> Option<Value> {
    match segments {
        [key] if key == "name" => text(&material.name),
        [key] if key == "kind" => serde_json::to_value(material.kind).ok(),
        [key] if key == "sha256" => optional(material.sha256.as_ref()),
        [key] if key == "size" => material.size.map(Value::from),
        [key] if key == "media_type" => optional(material.media_type.as_ref()),
        [key] if key == "file_ref" => optional(material.file_ref.as_ref()),
        [key] if key == "licence_number" => optional(material.licence_number.as_ref()),
        _ => whole(material, segments),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::paths::PathNode;

    fn leaf_paths(node: &PathNode, prefix: &str, out: &mut Vec<String>) {
        if !prefix.is_empty() {
            out.push(prefix.to_owned());
        }
        if let PathNode::Object(keys) = node {
            for (key, child) in keys {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(child, &path, out);
            }
        }
    }

    #[test]
    fn every_schema_path_reads_as_the_json_of_the_case_does() {
        let tree = PathNode::from_schema(&crate::case::case_schema());
        let mut paths = Vec::new();
        leaf_paths(&tree, "", &mut paths);
        paths.extend(
            [
                "form.registered_capital_wan_yuan",
                "form.shareholders",
                "form.none",
                "form",
            ]
            .map(String::from),
        );
        let PathNode::Object(top) = &tree else {
            panic!("case schema is an object")
        };
        let Some(PathNode::Array(item)) = top.get("materials") else {
            panic!("materials")
        };
        let mut item_paths = Vec::new();
        leaf_paths(item, "", &mut item_paths);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases");
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let case = crate::case::parse_case(&bytes).unwrap();
            let json = serde_json::to_value(&case).unwrap();
            for path in &paths {
                let path = CasePath::new(path);
                let expected = json_ref(&json, &path.segments)
                    .filter(|v| !v.is_null())
                    .cloned();
                assert_eq!(Scope::Case(&case).get(&path), expected, "{}", path.text);
            }
            let List::Items(items) = Scope::Case(&case).list(&CasePath::new("materials")) else {
                panic!("materials is a list")
            };
            for (material, item) in items.iter().zip(json["materials"].as_array().unwrap()) {
                for path in &item_paths {
                    let path = CasePath::new(path);
                    let expected = json_ref(item, &path.segments)
                        .filter(|v| !v.is_null())
                        .cloned();
                    assert_eq!(material.get(&path), expected, "materials.{}", path.text);
                }
            }
        }
    }
}
