//! Loading one mapping file: the top-level sections are taken apart by hand so that each
//! section (and each `[[field]]`, `[[example]]`) is deserialized on its own and every problem in
//! the file is reported, not just the first.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::charset::Unencodable;
use crate::mapping::{Document, Mapping, Shape};
use crate::status::CaseState;

use super::compile::{CodeTables, FieldCompiler};
use super::error::{LoadError, SourceFile};
use super::paths::PathNode;
use super::raw::{RawAdapter, RawDocument, RawExample, RawField, RawSystem};
use super::{Example, Expectation, SystemSpec};

const SECTIONS: &str = "format, system, adapter, document, field, status, example";
const HALL_APPLICANTS: [&str; 2] = ["natural_person", "legal_person"];
const HALL_LEVELS: [&str; 4] = ["town", "district", "city", "province"];

/// Parses and checks one system file; returns the spec and the offset of its id. Problems are
/// added to `errors` in file order.
pub(crate) fn load(
    file: &SourceFile<'_>,
    tree: &PathNode,
    tables: &CodeTables,
    errors: &mut Vec<LoadError>,
) -> Option<(SystemSpec, usize)> {
    let start = errors.len();
    let loaded = load_unsorted(file, tree, tables, errors);
    errors[start..].sort_by_key(|e| (e.line, e.column));
    loaded
}

fn load_unsorted(
    file: &SourceFile<'_>,
    tree: &PathNode,
    tables: &CodeTables,
    errors: &mut Vec<LoadError>,
) -> Option<(SystemSpec, usize)> {
    let start = errors.len();
    let (table, syntax) = DeTable::parse_recoverable(file.text);
    if !syntax.is_empty() {
        let mut located: Vec<LoadError> = syntax.iter().map(|e| file.toml_error(e)).collect();
        located.dedup();
        errors.extend(located);
        return None;
    }
    let mut sections = Sections::default();
    for (key, value) in table.into_inner() {
        let name = key.get_ref().as_ref();
        match name {
            "format" => match value.get_ref() {
                DeValue::Integer(i) if i.as_str() == "1" => sections.format = true,
                _ => errors.push(file.error(
                    &value.span(),
                    "unsupported format; this version reads format = 1",
                )),
            },
            "system" => sections.system = section(file, value, errors),
            "adapter" => sections.adapter = section(file, value, errors),
            "document" => sections.document = section(file, value, errors),
            "status" => sections.status = section(file, value, errors),
            "field" => sections.fields = Some(array(file, value, "field", errors)),
            "example" => sections.examples = array(file, value, "example", errors),
            other => errors.push(file.error(
                &key.span(),
                format!("unknown key `{other}`; expected one of: {SECTIONS}"),
            )),
        }
    }
    for (present, what) in [
        (sections.format, "`format = 1`"),
        (sections.system.is_some(), "a [system] table"),
        (sections.adapter.is_some(), "an [adapter] table with `kind`"),
        (sections.document.is_some(), "a [document] table"),
    ] {
        if !present && errors.len() == start {
            errors.push(file.error_at(0, format!("missing {what}")));
        }
    }
    let (Some(system), Some(adapter), Some(raw_document)) =
        (sections.system, sections.adapter, sections.document)
    else {
        return None;
    };
    check_identity(file, &system, errors);
    let document = document(file, raw_document, errors)?;
    let mut compiler = FieldCompiler {
        file,
        shape: document.shape,
        document_policy: document.unencodable,
        prefixes: document
            .namespaces
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| !p.is_empty())
            .collect(),
        code_tables: tables,
        errors: Vec::new(),
    };
    let had_fields = sections.fields.is_some();
    let fields = compiler.fields(sections.fields.unwrap_or_default(), tree);
    if !had_fields {
        errors.push(file.error_at(0, "no [[field]]: a mapping writes at least one field"));
    }
    errors.extend(compiler.errors);
    let status_map = status_map(file, sections.status.unwrap_or_default(), errors);
    let examples = sections
        .examples
        .into_iter()
        .filter_map(|raw| example(file, raw, errors))
        .collect();
    if errors.len() != start {
        return None;
    }
    let id_offset = system.id.span().start;
    Some((
        SystemSpec {
            id: system.id.into_inner(),
            name: system.name,
            owner: system.owner,
            level: system.level.into_inner(),
            kind: adapter.kind.into_inner(),
            version: system.version,
            serves: system.serves.into_iter().map(Spanned::into_inner).collect(),
            path: file.path.to_path_buf(),
            source: file.text.to_owned(),
            status_map,
            examples,
            mapping: Mapping { document, fields },
        },
        id_offset,
    ))
}

#[derive(Default)]
struct Sections {
    format: bool,
    system: Option<RawSystem>,
    adapter: Option<RawAdapter>,
    document: Option<RawDocument>,
    status: Option<BTreeMap<String, Spanned<String>>>,
    fields: Option<Vec<Spanned<RawField>>>,
    examples: Vec<Spanned<RawExample>>,
}

fn section<T: for<'de> Deserialize<'de>>(
    file: &SourceFile<'_>,
    value: Spanned<DeValue<'_>>,
    errors: &mut Vec<LoadError>,
) -> Option<T> {
    T::deserialize(ValueDeserializer::from(value))
        .map_err(|e| errors.push(file.toml_error(&e)))
        .ok()
}

fn array<T: for<'de> Deserialize<'de>>(
    file: &SourceFile<'_>,
    value: Spanned<DeValue<'_>>,
    name: &str,
    errors: &mut Vec<LoadError>,
) -> Vec<Spanned<T>> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items
            .into_iter()
            .filter_map(|item| section::<Spanned<T>>(file, item, errors))
            .collect(),
        _ => {
            errors.push(file.error(
                &span,
                format!("`{name}` must be an array of tables ([[{name}]])"),
            ));
            Vec::new()
        }
    }
}

fn check_identity(file: &SourceFile<'_>, system: &RawSystem, errors: &mut Vec<LoadError>) {
    let stem = file
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if system.id.get_ref() != &stem {
        errors.push(file.error(
            &system.id.span(),
            format!(
                "system id `{}` differs from the file name `{stem}.toml`",
                system.id.get_ref()
            ),
        ));
    }
    let folder = file
        .path
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned());
    if let Some(folder) =
        folder.filter(|f| ["national", "provincial", "city", "district"].contains(&f.as_str()))
        && folder != system.level.get_ref().as_str()
    {
        errors.push(file.error(
            &system.level.span(),
            format!(
                "level `{}` differs from the folder `{folder}/`",
                system.level.get_ref()
            ),
        ));
    }
    for serves in &system.serves {
        let ok = serves.get_ref().split_once(':').is_some_and(|(who, hall)| {
            HALL_APPLICANTS.contains(&who) && HALL_LEVELS.contains(&hall)
        });
        if !ok {
            errors.push(file.error(
                &serves.span(),
                format!(
                    "serves `{}` is not `<applicant>:<hall>` with applicant {} and hall {}",
                    serves.get_ref(),
                    HALL_APPLICANTS.join("|"),
                    HALL_LEVELS.join("|")
                ),
            ));
        }
    }
}

fn document(
    file: &SourceFile<'_>,
    raw: RawDocument,
    errors: &mut Vec<LoadError>,
) -> Option<Document> {
    let shape = raw.shape;
    let mut ok = true;
    let mut misplaced = |span: Range<usize>, key: &str, wanted: &str| {
        errors.push(file.error(
            &span,
            format!("`{key}` applies to the {wanted} shape only, not {shape}"),
        ));
        ok = false;
    };
    if shape != Shape::Xml {
        if let Some(root) = &raw.root {
            misplaced(root.span(), "root", "xml");
        }
        if let Some((_, uri)) = raw.namespaces.iter().next() {
            misplaced(uri.span(), "namespaces", "xml");
        }
        if let Some(policy) = raw
            .unencodable
            .as_ref()
            .filter(|p| *p.get_ref() == Unencodable::Ncr)
        {
            misplaced(policy.span(), "unencodable = \"ncr\"", "xml");
        }
    }
    if shape != Shape::Csv {
        if let Some(header) = &raw.csv_header {
            misplaced(header.span(), "csv_header", "csv");
        }
        if let Some(delimiter) = &raw.csv_delimiter {
            misplaced(delimiter.span(), "csv_delimiter", "csv");
        }
    }
    let root = match (shape, raw.root) {
        (Shape::Xml, Some(root)) => {
            let name = root.get_ref();
            let local = name.rsplit(':').next().unwrap_or(name);
            if local.is_empty() || name.contains('/') || name.contains(char::is_whitespace) {
                errors.push(file.error(
                    &root.span(),
                    format!("root `{name}` is not a valid XML element name"),
                ));
                ok = false;
            }
            root.into_inner()
        }
        (Shape::Xml, None) => {
            errors.push(file.error_at(0, "the xml shape needs `root` in [document]"));
            ok = false;
            String::new()
        }
        (_, _) => String::new(),
    };
    let delimiter = match raw.csv_delimiter {
        Some(d) => match d.get_ref().as_bytes() {
            [b] if b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') => *b,
            _ => {
                errors.push(file.error(
                    &d.span(),
                    "csv_delimiter must be one ASCII character other than a quote or line end",
                ));
                ok = false;
                b','
            }
        },
        None => b',',
    };
    ok.then(|| Document {
        shape,
        charset: raw.charset,
        unencodable: raw.unencodable.map(Spanned::into_inner).unwrap_or_default(),
        root,
        namespaces: raw
            .namespaces
            .into_iter()
            .map(|(p, uri)| (p, uri.into_inner()))
            .collect(),
        csv_header: raw.csv_header.map(Spanned::into_inner).unwrap_or(true),
        csv_delimiter: delimiter,
    })
}

fn status_map(
    file: &SourceFile<'_>,
    raw: BTreeMap<String, Spanned<String>>,
    errors: &mut Vec<LoadError>,
) -> BTreeMap<String, CaseState> {
    let mut map = BTreeMap::new();
    for (code, state) in raw {
        match state.get_ref().parse::<CaseState>() {
            Ok(parsed) => {
                map.insert(code, parsed);
            }
            Err(e) => errors.push(file.error(&state.span(), format!("status `{code}`: {e}"))),
        }
    }
    map
}

fn example(
    file: &SourceFile<'_>,
    raw: Spanned<RawExample>,
    errors: &mut Vec<LoadError>,
) -> Option<Example> {
    let span = raw.span();
    let raw = raw.into_inner();
    let expect = match (raw.expect, raw.expect_error) {
        (Some(text), None) => Expectation::Text(text),
        (None, Some(message)) => Expectation::Error(message),
        _ => {
            errors.push(file.error(
                &span,
                format!(
                    "example {:?} needs exactly one of `expect`, `expect_error`",
                    raw.name
                ),
            ));
            return None;
        }
    };
    let (line, column) = file.locate(raw.case.span().start);
    let base = file.path.parent().unwrap_or(file.path);
    Some(Example {
        name: raw.name,
        case: base.join(raw.case.get_ref()),
        expect,
        line,
        column,
    })
}
