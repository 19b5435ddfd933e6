//! Turns raw `[[field]]` tables into checked [`Field`]s, collecting every problem with its
//! location: sources, case paths (against the schema tree), code tables, targets, formats.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

use crate::charset::Unencodable;
use crate::mapping::{CasePath, Field, Shape, Source, Target, Test, When};

use super::error::{LoadError, SourceFile};
use super::paths::PathNode;
use super::raw::{RawField, RawWhen};

/// Shared code tables by name.
pub(crate) type CodeTables = BTreeMap<String, Arc<BTreeMap<String, String>>>;

/// What field compilation needs from the file and the catalogue.
pub(crate) struct FieldCompiler<'a> {
    pub file: &'a SourceFile<'a>,
    pub shape: Shape,
    pub document_policy: Unencodable,
    pub prefixes: BTreeSet<String>,
    pub code_tables: &'a CodeTables,
    pub errors: Vec<LoadError>,
}

impl FieldCompiler<'_> {
    pub(super) fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.errors.push(self.file.error(span, message));
    }

    /// Compiles one level of fields (top level or the items of an `each`).
    pub fn fields(&mut self, raws: Vec<Spanned<RawField>>, root: &PathNode) -> Vec<Field> {
        let mut fields = Vec::with_capacity(raws.len());
        let mut seen: BTreeMap<(Vec<String>, Option<String>), usize> = BTreeMap::new();
        let mut leaves: Vec<(Vec<String>, Range<usize>)> = Vec::new();
        let mut targets: Vec<(Vec<String>, Range<usize>, String)> = Vec::new();
        for raw in raws {
            let span = raw.span();
            let raw = raw.into_inner();
            let to_span = raw.to.span();
            let Some(field) = self.field(raw, span, root) else {
                continue;
            };
            let key = (
                field.target.elements.clone(),
                field.target.attribute.clone(),
            );
            if let Some(line) = seen.get(&key) {
                let message = format!(
                    "target `{}` is already written by the field at line {line}",
                    field.to
                );
                self.error(&to_span, message);
                continue;
            }
            seen.insert(key, self.file.locate(to_span.start).0);
            if field.target.attribute.is_none() {
                leaves.push((field.target.elements.clone(), to_span.clone()));
            }
            targets.push((field.target.elements.clone(), to_span, field.to.clone()));
            fields.push(field);
        }
        if matches!(self.shape, Shape::Json | Shape::Xml) {
            for (leaf, _) in &leaves {
                for (elements, span, to) in &targets {
                    if elements.len() > leaf.len() && elements.starts_with(leaf) {
                        let message = format!(
                            "target `{to}` goes below `{}`, which another field gives a value",
                            leaf.join("/")
                        );
                        self.error(&span.clone(), message);
                    }
                }
            }
        }
        fields
    }

    fn field(&mut self, raw: RawField, span: Range<usize>, root: &PathNode) -> Option<Field> {
        let to = raw.to.get_ref().clone();
        let target = self.target(&raw.to)?;
        let mut sources = Vec::new();
        for (name, present) in [
            ("from", raw.from.is_some()),
            ("value", raw.value.is_some()),
            ("template", raw.template.is_some()),
            ("each", raw.each.is_some()),
        ] {
            if present {
                sources.push(name);
            }
        }
        if sources.len() != 1 {
            let message = if sources.is_empty() {
                format!(
                    "field `{to}` has no source; give exactly one of from, value, template, each"
                )
            } else {
                format!(
                    "field `{to}` has {} sources ({}); give exactly one",
                    sources.len(),
                    sources.join(", ")
                )
            };
            self.error(&span, message);
            return None;
        }
        if raw.each.is_none() && !raw.item.is_empty() {
            self.error(
                &span,
                format!("field `{to}` has `item` fields but no `each` list"),
            );
        }
        let when = raw.when.and_then(|w| self.when(w, root));
        if let Some(each) = raw.each {
            let extras: Vec<&str> = [
                ("derive", raw.derive.is_some()),
                ("code_table", raw.code_table.is_some()),
                ("codes", raw.codes.is_some()),
                ("code_default", raw.code_default.is_some()),
                ("date_format", raw.date_format.is_some()),
                ("timezone", raw.timezone.is_some()),
                ("default", raw.default.is_some()),
                ("max_length", raw.max_length.is_some()),
                ("unencodable", raw.unencodable.is_some()),
            ]
            .into_iter()
            .filter_map(|(key, present)| present.then_some(key))
            .collect();
            if !extras.is_empty() {
                let message = format!(
                    "field `{to}`: an `each` field takes only to, each, item, when and required, not {}",
                    extras.join(", ")
                );
                self.error(&span, message);
            }
            return self.each_field(to, target, each, raw.item, raw.required, when, span, root);
        }
        let unencodable = match raw.unencodable {
            Some(policy) => {
                if *policy.get_ref() == Unencodable::Ncr && self.shape != Shape::Xml {
                    self.error(&policy.span(), "unencodable = \"ncr\" needs the xml shape");
                }
                policy.into_inner()
            }
            None => self.document_policy,
        };
        let source = if let Some(from) = raw.from {
            let paths = from.get_ref().paths();
            if paths.is_empty() {
                self.error(&from.span(), "`from` lists no case path");
            }
            let mut compiled = Vec::new();
            for path in paths {
                compiled.push(self.value_path(path, &from.span(), root));
            }
            Source::From(compiled)
        } else if let Some(template) = raw.template {
            Source::Template(self.template(&template, root))
        } else if let Some(value) = raw.value {
            Source::Value(value.into_inner())
        } else {
            return None;
        };
        let derive = raw.derive.inspect(|d| {
            if !matches!(source, Source::From(_)) {
                self.error(
                    &d.span(),
                    "`derive` needs `from` (a resident ID number path)",
                );
            }
        });
        let date = self.date_format(raw.date_format, raw.timezone, derive.as_ref());
        let codes = self.codes(raw.code_table, raw.codes, raw.code_default, &span);
        Some(Field {
            to,
            target,
            source,
            when,
            required: raw.required,
            default: raw.default.map(Spanned::into_inner),
            derive: derive.map(Spanned::into_inner),
            date,
            codes,
            max_length: raw.max_length.map(Spanned::into_inner),
            unencodable,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn each_field(
        &mut self,
        to: String,
        target: Target,
        each: Spanned<String>,
        items: Vec<Spanned<RawField>>,
        required: bool,
        when: Option<When>,
        span: Range<usize>,
        root: &PathNode,
    ) -> Option<Field> {
        if matches!(self.shape, Shape::Csv | Shape::Form) {
            self.error(
                &each.span(),
                format!("`each` needs the json or xml shape, not {}", self.shape),
            );
            return None;
        }
        if target.attribute.is_some() {
            self.error(
                &each.span(),
                "an `each` target must be an element, not an attribute",
            );
        }
        if items.is_empty() {
            self.error(
                &span,
                format!("field `{to}` has `each` but no `[[field.item]]` fields"),
            );
        }
        let item_root = match root.resolve(each.get_ref()) {
            Ok(PathNode::Array(item)) => (**item).clone(),
            Ok(PathNode::Any) => PathNode::Any,
            Ok(_) => {
                let message = format!(
                    "`each` needs a list, but case path `{}` is not one",
                    each.get_ref()
                );
                self.error(&each.span(), message);
                PathNode::Any
            }
            Err(problem) => {
                let message = problem.message(each.get_ref());
                self.error(&each.span(), message);
                PathNode::Any
            }
        };
        let items = self.fields(items, &item_root);
        Some(Field {
            to,
            target,
            source: Source::Each {
                path: CasePath::new(each.get_ref()),
                items,
            },
            when,
            required,
            default: None,
            derive: None,
            date: None,
            codes: None,
            max_length: None,
            unencodable: self.document_policy,
        })
    }

    fn target(&mut self, to: &Spanned<String>) -> Option<Target> {
        let text = to.get_ref();
        let span = to.span();
        if text.is_empty() {
            self.error(&span, "`to` is empty");
            return None;
        }
        if matches!(self.shape, Shape::Csv | Shape::Form) {
            return Some(Target {
                elements: vec![text.clone()],
                attribute: None,
            });
        }
        let mut elements: Vec<String> = text.split('/').map(str::to_owned).collect();
        let attribute = match elements.last() {
            Some(last) if last.starts_with('@') => {
                let name = last[1..].to_owned();
                elements.pop();
                Some(name)
            }
            _ => None,
        };
        if self.shape == Shape::Json && attribute.is_some() {
            self.error(
                &span,
                format!("target `{text}`: attributes (`@…`) exist only in the xml shape"),
            );
            return None;
        }
        let names = elements.iter().chain(attribute.iter());
        for name in names {
            if let Some(problem) = self.name_problem(name) {
                self.error(&span, format!("target `{text}`: {problem}"));
                return None;
            }
        }
        Some(Target {
            elements,
            attribute,
        })
    }

    fn name_problem(&self, name: &str) -> Option<String> {
        if name.is_empty() {
            return Some("empty segment".to_owned());
        }
        if self.shape != Shape::Xml {
            return None;
        }
        let (prefix, local) = match name.split_once(':') {
            Some((p, l)) => (Some(p), l),
            None => (None, name),
        };
        if let Some(prefix) = prefix
            && prefix != "xml"
            && !self.prefixes.contains(prefix)
        {
            let declared: Vec<&str> = self.prefixes.iter().map(String::as_str).collect();
            return Some(format!(
                "namespace prefix `{prefix}` is not declared in [document] namespaces (declared: {})",
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ));
        }
        if !is_xml_name(local) || prefix.is_some_and(|p| !is_xml_name(p)) {
            return Some(format!("`{name}` is not a valid XML name"));
        }
        None
    }

    /// Checks a `from`-style path; non-json shapes cannot take a list or an object.
    fn value_path(&mut self, path: &str, span: &Range<usize>, root: &PathNode) -> CasePath {
        match root.resolve(path) {
            Ok(PathNode::Array(_) | PathNode::Object(_)) if self.shape != Shape::Json => {
                let message = format!(
                    "case path `{path}` is a list or an object; only the json shape copies those (use `each` for lists)"
                );
                self.error(span, message);
            }
            Ok(_) => {}
            Err(problem) => {
                let message = problem.message(path);
                self.error(span, message);
            }
        }
        CasePath::new(path)
    }

    fn when(&mut self, raw: Spanned<RawWhen>, root: &PathNode) -> Option<When> {
        let span = raw.span();
        let raw = raw.into_inner();
        if let Err(problem) = root.resolve(raw.path.get_ref()) {
            let message = problem.message(raw.path.get_ref());
            self.error(&raw.path.span(), message);
        }
        let path = CasePath::new(raw.path.get_ref());
        let tests: Vec<Test> = [
            raw.equals.map(Test::Equals),
            raw.present.map(Test::Present),
            raw.one_of.map(Test::In),
        ]
        .into_iter()
        .flatten()
        .collect();
        if tests.len() != 1 {
            self.error(&span, "`when` needs exactly one of equals, present, in");
            return None;
        }
        tests.into_iter().next().map(|test| When { path, test })
    }
}

/// A conservative XML name check: letter or `_` first, then letters, digits, `-`, `_`, `.`.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
