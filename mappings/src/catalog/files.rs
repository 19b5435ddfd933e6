//! Reading a catalogue folder: finding files, reading them safely (size limit, UTF-8), loading
//! code tables, systems and routes, and the checks that span files (duplicate ids, route
//! targets).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::route::Routes;

use super::compile::CodeTables;
use super::error::{LoadError, SourceFile, file_error};
use super::paths::PathNode;
use super::raw::RawCodeFile;
use super::{SystemSpec, case_schema_value, system};

/// Mapping files larger than this are refused before parsing.
pub(crate) const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
const MAX_DIR_DEPTH: usize = 8;

pub(crate) struct Loaded {
    pub systems: BTreeMap<String, SystemSpec>,
    pub routes: Routes,
    pub code_tables: usize,
    pub errors: Vec<LoadError>,
}

pub(crate) fn load_dir(dir: &Path) -> Loaded {
    let mut errors = Vec::new();
    let tables = load_code_tables(&dir.join("codes"), &mut errors);
    let tree = PathNode::from_schema(&case_schema_value());
    let systems_dir = dir.join("systems");
    let mut paths = Vec::new();
    if systems_dir.is_dir() {
        find_toml(&systems_dir, 0, &mut paths, &mut errors);
    } else {
        errors.push(file_error(&systems_dir, "no systems/ folder: a catalogue keeps one mapping file per line system in systems/<level>/<id>.toml"));
    }
    paths.sort();
    let mut systems: BTreeMap<String, SystemSpec> = BTreeMap::new();
    // Ids of files that exist but did not load: routes naming them get no second error.
    let mut broken: BTreeSet<String> = BTreeSet::new();
    for path in paths {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(text) = read_text(&path, &mut errors) else {
            broken.insert(stem);
            continue;
        };
        let file = SourceFile::new(&path, &text);
        let Some((spec, id_offset)) = system::load(&file, &tree, &tables, &mut errors) else {
            broken.insert(stem);
            continue;
        };
        if let Some(existing) = systems.get(&spec.id) {
            let message = format!(
                "system id `{}` is already used by {}",
                spec.id,
                existing.path.display()
            );
            errors.push(file.error_at(id_offset, message));
            continue;
        }
        systems.insert(spec.id.clone(), spec);
    }
    let routes_path = dir.join("routes.toml");
    let routes = match read_text(&routes_path, &mut errors) {
        Some(text) => {
            let file = SourceFile::new(&routes_path, &text);
            Routes::load(&file, &systems, &broken, &mut errors)
        }
        None => Routes::default(),
    };
    Loaded {
        systems,
        routes,
        code_tables: tables.len(),
        errors,
    }
}

fn find_toml(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    if depth > MAX_DIR_DEPTH {
        errors.push(file_error(
            dir,
            "folders nested too deep (more than 8 levels) under systems/",
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(file_error(dir, format!("cannot read folder: {e}")));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            find_toml(&path, depth + 1, out, errors);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

/// Reads a file as UTF-8 text, refusing huge files and locating invalid bytes.
pub(crate) fn read_text(path: &Path, errors: &mut Vec<LoadError>) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_FILE_BYTES => {
            errors.push(file_error(
                path,
                format!(
                    "file is {} bytes; mapping files are limited to {} bytes",
                    meta.len(),
                    MAX_FILE_BYTES
                ),
            ));
            return None;
        }
        Ok(_) => {}
        Err(e) => {
            errors.push(file_error(path, format!("cannot read file: {e}")));
            return None;
        }
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            errors.push(file_error(path, format!("cannot read file: {e}")));
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let prefix = String::from_utf8_lossy(&bytes[..valid]).into_owned();
            let file = SourceFile::new(path, &prefix);
            errors.push(file.error_at(
                valid,
                format!(
                    "invalid UTF-8 (byte 0x{:02X}); mapping files are UTF-8",
                    bytes[valid]
                ),
            ));
            None
        }
    }
}

fn load_code_tables(dir: &Path, errors: &mut Vec<LoadError>) -> CodeTables {
    let mut tables = CodeTables::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return tables;
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let Some(text) = read_text(&path, errors) else {
            continue;
        };
        let file = SourceFile::new(&path, &text);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match toml::de::Deserializer::parse(&text).and_then(RawCodeFile::deserialize) {
            Ok(raw) => {
                if let Some(format) = raw.format.filter(|f| *f.get_ref() != 1) {
                    errors.push(file.error(
                        &format.span(),
                        "unsupported format; this version reads format = 1",
                    ));
                }
                let _ = raw.description;
                tables.insert(name, Arc::new(raw.codes));
            }
            Err(e) => errors.push(file.toml_error(&e)),
        }
    }
    tables
}
