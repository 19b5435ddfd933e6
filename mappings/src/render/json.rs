//! The json shape: nested objects from `/`-separated targets, arrays from `each`, keys in field
//! order, pretty-printed with two spaces. A plain `from` keeps the case value's JSON type (and
//! may copy a whole list or object); transformed values are strings, `value` keeps its TOML type.

use serde_json::{Map, Value};

use crate::charset::Charset;
use crate::mapping::{Field, Source};

use super::RenderError;
use super::scope::{List, Scope};
use super::value::{Env, FieldProblem, condition_holds, evaluate};

pub(crate) fn render(
    fields: &[Field],
    root: &Scope<'_>,
    env: &Env<'_>,
    charset: Charset,
) -> Result<String, RenderError> {
    let mut out = Map::new();
    write_fields(fields, root, env, charset, &mut out, "")?;
    let mut text =
        serde_json::to_string_pretty(&Value::Object(out)).map_err(|e| RenderError::Document {
            system: env.system.to_owned(),
            message: format!("json output failed: {e}"),
        })?;
    text.push('\n');
    Ok(text)
}

fn write_fields(
    fields: &[Field],
    scope: &Scope<'_>,
    env: &Env<'_>,
    charset: Charset,
    out: &mut Map<String, Value>,
    prefix: &str,
) -> Result<(), RenderError> {
    for field in fields {
        let owned;
        let name = if prefix.is_empty() {
            field.to.as_str()
        } else {
            owned = format!("{prefix}{}", field.to);
            owned.as_str()
        };
        let value = match &field.source {
            Source::Each { path, items } => {
                if !condition_holds(field, scope) {
                    continue;
                }
                let list = each_items(field, path, scope, env, name)?;
                let mut array = Vec::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    let mut object = Map::new();
                    write_fields(
                        items,
                        item,
                        env,
                        charset,
                        &mut object,
                        &format!("{name}[{i}]/"),
                    )?;
                    array.push(Value::Object(object));
                }
                Value::Array(array)
            }
            _ => match evaluate(field, name, scope, env, charset)? {
                Some(value) => value,
                None => continue,
            },
        };
        insert(out, &field.target.elements, value);
    }
    Ok(())
}

/// The items of an `each` list: absent is empty (an error when required).
pub(crate) fn each_items<'a>(
    field: &Field,
    path: &crate::mapping::CasePath,
    scope: &Scope<'a>,
    env: &Env<'_>,
    name: &str,
) -> Result<Vec<Scope<'a>>, RenderError> {
    let items = match scope.list(path) {
        List::Absent => Vec::new(),
        List::Items(items) => items,
        List::Other => {
            return Err(env.error(
                name,
                FieldProblem::NotAList {
                    path: path.text.clone(),
                },
            ));
        }
    };
    if items.is_empty() && field.required {
        return Err(env.error(
            name,
            FieldProblem::Missing {
                origin: format!("each {}", path.text),
            },
        ));
    }
    Ok(items)
}

fn insert(out: &mut Map<String, Value>, elements: &[String], value: Value) {
    let Some((last, parents)) = elements.split_last() else {
        return;
    };
    let mut map = out;
    for parent in parents {
        let entry = map
            .entry(parent.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            // The loader refuses a value with children; keep the value if it happens anyway.
            return;
        }
        let Value::Object(next) = entry else { return };
        map = next;
    }
    map.insert(last.clone(), value);
}
