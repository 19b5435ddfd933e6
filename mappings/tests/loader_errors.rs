//! Every load-time error kind, asserted with its file:line:column.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::path::Path;

use tempfile::TempDir;
use yimen_mappings::catalog::Catalog;

/// A valid system file; appended text starts at line 21.
const BASE: &str = r#"format = 1

[system]
id = "T01"
name = "测试系统"
owner = "测试局"
level = "city"
version = "1"

[adapter]
kind = "rest"

[document]
shape = "xml"
charset = "gbk"
root = "Doc"

[[field]]
to = "XM"
from = "applicant.name"
"#;

const ROUTES: &str = "[[route]]\nmatter = \"M1\"\napplicant = \"any\"\ntargets = [\"T01\"]\n";

fn write(dir: &Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap_or(dir)).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Loads a catalogue made of `files` (plus a code table and routes unless given) and returns
/// the errors with the temp dir stripped, so they read `systems/city/T01.toml:3:1: …`.
fn errors(files: &[(&str, &str)]) -> Vec<String> {
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "codes/id_type_gb.toml",
        "[codes]\nresident_id = \"111\"\n",
    );
    if !files.iter().any(|(p, _)| *p == "routes.toml") {
        write(dir.path(), "routes.toml", ROUTES);
    }
    for (path, text) in files {
        write(dir.path(), path, text);
    }
    match Catalog::load(dir.path()) {
        Ok(_) => Vec::new(),
        Err(errors) => {
            let prefix = format!("{}/", dir.path().display());
            errors
                .0
                .iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect()
        }
    }
}

fn system_errors(extra: &str) -> Vec<String> {
    errors(&[("systems/city/T01.toml", &format!("{BASE}{extra}"))])
}

#[test]
fn the_base_file_loads() {
    assert_eq!(system_errors(""), Vec::<String>::new());
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        errors(&[(
            "systems/city/T01.toml",
            &BASE.replace("format = 1\n", "format = 1\nextra = 1\n")
        )]),
        [
            "systems/city/T01.toml:2:1: unknown key `extra`; expected one of: format, system, adapter, document, field, status, example"
        ]
    );
}

#[test]
fn unknown_key_in_a_field() {
    let errors = system_errors("\n[[field]]\nto = \"A\"\nfrom = \"case_number\"\nfomr = \"x\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "systems/city/T01.toml:25:1: unknown field `fomr`, expected one of `to`, `from`"
        ),
        "{errors:?}"
    );
}

#[test]
fn unknown_key_in_system_and_document() {
    let text = BASE
        .replace("version = \"1\"", "version = \"1\"\nvresion = \"2\"")
        .replace("root = \"Doc\"", "root = \"Doc\"\nindent = 4");
    let errors = errors(&[("systems/city/T01.toml", &text)]);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("systems/city/T01.toml:9:1: unknown field `vresion`"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("systems/city/T01.toml:18:1: unknown field `indent`"),
        "{errors:?}"
    );
}

#[test]
fn unknown_case_path_points_at_the_value() {
    assert_eq!(
        system_errors("\n[[field]]\nto = \"A\"\nfrom = \"applicant.nmae\"\n"),
        [
            "systems/city/T01.toml:24:8: unknown case path `applicant.nmae`: `applicant.nmae` does not exist; expected one of: address, credit_code, id_number, id_type, kind, legal_representative, name, org_type, phone"
        ]
    );
}

#[test]
fn unknown_placeholder_points_inside_the_template() {
    let errors =
        system_errors("\n[[field]]\nto = \"A\"\ntemplate = \"{matter.name}-{matter.nmae}\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("systems/city/T01.toml:24:28: unknown case path `matter.nmae`"),
        "{errors:?}"
    );
}

#[test]
fn bad_template_braces() {
    let errors = system_errors("\n[[field]]\nto = \"A\"\ntemplate = \"x{matter.name\"\n");
    assert_eq!(
        errors,
        [
            "systems/city/T01.toml:24:14: template has `{` without a closing `}` (write `{{` for a literal brace)"
        ]
    );
}

#[test]
fn when_and_each_paths_are_checked() {
    let errors = system_errors(
        "\n[[field]]\nto = \"A\"\nfrom = \"case_number\"\nwhen = { path = \"applicant.knid\", equals = \"x\" }\n\
         \n[[field]]\nto = \"L/I\"\neach = \"materials\"\n  [[field.item]]\n  to = \"N\"\n  from = \"nmae\"\n",
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("systems/city/T01.toml:25:17: unknown case path `applicant.knid`"),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("systems/city/T01.toml:32:10: unknown case path `nmae`: `nmae` does not exist; expected one of: file_ref, kind, licence_number, media_type, name, sha256, size"), "{errors:?}");
}

#[test]
fn lists_need_each_and_each_needs_a_list() {
    let errors = system_errors(
        "\n[[field]]\nto = \"A\"\nfrom = \"materials.name\"\n\n[[field]]\nto = \"B\"\nfrom = \"materials\"\n\n[[field]]\nto = \"C\"\neach = \"case_number\"\n  [[field.item]]\n  to = \"N\"\n  from = \"x\"\n",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].contains(":24:8: case path `materials.name` goes inside the list `materials`"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains(
            ":28:8: case path `materials` is a list or an object; only the json shape copies those"
        ),
        "{errors:?}"
    );
    assert!(
        errors[2].contains(":32:8: `each` needs a list, but case path `case_number` is not one"),
        "{errors:?}"
    );
}

#[test]
fn any_key_under_form_is_valid() {
    assert_eq!(
        system_errors("\n[[field]]\nto = \"A\"\nfrom = \"form.whatever.deep.key\"\n"),
        Vec::<String>::new()
    );
}

#[test]
fn unknown_code_table() {
    assert_eq!(
        system_errors(
            "\n[[field]]\nto = \"A\"\nfrom = \"applicant.id_type\"\ncode_table = \"id_type_gbb\"\n"
        ),
        [
            "systems/city/T01.toml:25:14: unknown code table `id_type_gbb` (no codes/id_type_gbb.toml); known tables: id_type_gb"
        ]
    );
}

#[test]
fn file_stem_must_equal_the_id() {
    assert_eq!(
        errors(&[
            ("systems/city/T02.toml", BASE),
            ("routes.toml", &ROUTES.replace("T01", "T02"))
        ]),
        ["systems/city/T02.toml:4:6: system id `T01` differs from the file name `T02.toml`"]
    );
}

#[test]
fn level_must_match_the_folder() {
    let errors = errors(&[("systems/district/T01.toml", BASE)]);
    assert_eq!(
        errors,
        ["systems/district/T01.toml:7:9: level `city` differs from the folder `district/`"]
    );
}

#[test]
fn duplicate_system_ids() {
    let errors = errors(&[
        ("systems/city/T01.toml", BASE),
        ("systems/city/more/T01.toml", BASE),
    ]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("systems/city/more/T01.toml:4:6: system id `T01` is already used by "),
        "{errors:?}"
    );
}

#[test]
fn duplicate_and_conflicting_targets() {
    let errors = system_errors(
        "\n[[field]]\nto = \"XM\"\nfrom = \"case_number\"\n\n[[field]]\nto = \"XM/SUB\"\nvalue = \"x\"\n",
    );
    assert_eq!(
        errors,
        [
            "systems/city/T01.toml:23:6: target `XM` is already written by the field at line 19",
            "systems/city/T01.toml:27:6: target `XM/SUB` goes below `XM`, which another field gives a value",
        ]
    );
}

#[test]
fn exactly_one_source_per_field() {
    let errors = system_errors(
        "\n[[field]]\nto = \"A\"\nfrom = \"case_number\"\nvalue = \"x\"\n\n[[field]]\nto = \"B\"\nrequired = true\n",
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains(":22:1: field `A` has 2 sources (from, value); give exactly one"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains(
            ":27:1: field `B` has no source; give exactly one of from, value, template, each"
        ),
        "{errors:?}"
    );
}

#[test]
fn status_values_must_be_hub_states() {
    let errors = system_errors("\n[status]\n\"01\" = \"accepted\"\n\"02\" = \"done\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("systems/city/T01.toml:24:8: status `02`: unknown state \"done\"; expected one of: received, accepted"), "{errors:?}");
}

#[test]
fn wrong_types_and_values() {
    let errors = system_errors(
        "\n[[field]]\nto = \"A\"\nfrom = \"case_number\"\nmax_length = \"ten\"\n\n[[field]]\nto = \"B\"\nfrom = \"applicant.id_number\"\nderive = \"birthday\"\n",
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains(":25:14: invalid type: string \"ten\", expected usize"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains(
            ":30:10: unknown variant `birthday`, expected one of `birth_date`, `gender`, `age`"
        ),
        "{errors:?}"
    );
}

#[test]
fn format_version_and_missing_sections() {
    let errors = errors(&[(
        "systems/city/T01.toml",
        &BASE.replace("format = 1", "format = 2"),
    )]);
    assert_eq!(
        errors,
        ["systems/city/T01.toml:1:10: unsupported format; this version reads format = 1"]
    );
    let errors = self::errors(&[("systems/city/T01.toml", "format = 1\n")]);
    assert_eq!(
        errors,
        ["systems/city/T01.toml:1:1: missing a [system] table"]
    );
}

#[test]
fn shape_rules() {
    let text = BASE.replace("root = \"Doc\"", "root = \"Doc\"\ncsv_header = true");
    let errors = errors(&[("systems/city/T01.toml", &text)]);
    assert_eq!(
        errors,
        ["systems/city/T01.toml:17:14: `csv_header` applies to the csv shape only, not xml"]
    );
    let errors = system_errors(
        "\n[[field]]\nto = \"p:A\"\nvalue = \"x\"\n\n[[field]]\nto = \"B\"\nvalue = \"x\"\nunencodable = \"ncr\"\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(":23:6: target `p:A`: namespace prefix `p` is not declared"),
        "{errors:?}"
    );
}

#[test]
fn date_formats_and_time_zones_are_checked() {
    let errors = system_errors(
        "\n[[field]]\nto = \"A\"\nfrom = \"received_at\"\ndate_format = \"%Y-%J\"\n\n[[field]]\nto = \"B\"\nfrom = \"received_at\"\ndate_format = \"%Y\"\ntimezone = \"Asia/Foshan\"\n",
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains(":25:15: bad date_format \"%Y-%J\""),
        "{errors:?}"
    );
    assert!(
        errors[1].contains(":31:12: unknown time zone \"Asia/Foshan\""),
        "{errors:?}"
    );
}

#[test]
fn syntax_errors_are_located() {
    let errors = system_errors("\n[[field]]\nto = \"A\nfrom = \"case_number\"\n");
    assert!(!errors.is_empty());
    assert!(
        errors[0].starts_with("systems/city/T01.toml:23:"),
        "{errors:?}"
    );
}

#[test]
fn every_error_of_every_file_is_reported() {
    let broken = format!("{BASE}fomr = 1\n\n[[field]]\nto = \"B\"\nfrom = \"nope\"\n");
    let other = BASE
        .replace("T01", "T02")
        .replace("applicant.name", "applicant.nmae");
    let errors = errors(&[
        ("systems/city/T01.toml", &broken),
        ("systems/city/T02.toml", &other),
    ]);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("systems/city/T01.toml:21:1: unknown field `fomr`"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("systems/city/T01.toml:25:8: unknown case path `nope`"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("systems/city/T02.toml:20:8: unknown case path `applicant.nmae`"),
        "{errors:?}"
    );
}

#[test]
fn routes_are_checked_against_systems() {
    let routes = "[[route]]\nmatter = \"M1\"\napplicant = \"company\"\nregions = [\"4406\", \"44x\"]\ntargets = [\"T01\", \"T99\"]\n\n[[route]]\nmatter = \"M2\"\napplicant = \"any\"\ntargets = [\"T01\"]\nfanout = true\n";
    let errors = errors(&[("systems/city/T01.toml", BASE), ("routes.toml", routes)]);
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert_eq!(
        errors[0],
        "routes.toml:3:13: unknown applicant filter \"company\"; expected natural_person, legal_person or any"
    );
    assert_eq!(
        errors[1],
        "routes.toml:4:20: region \"44x\" is not a division-code prefix (1 to 9 digits)"
    );
    assert_eq!(
        errors[2],
        "routes.toml:5:19: unknown system `T99` (no systems/<level>/T99.toml)"
    );
    assert!(
        errors[3].starts_with("routes.toml:11:1: unknown field `fanout`"),
        "{errors:?}"
    );
}

#[test]
fn code_table_files_are_strict() {
    let errors = errors(&[
        ("systems/city/T01.toml", BASE),
        ("codes/bad.toml", "[codes]\nresident_id = 111\n"),
    ]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("codes/bad.toml:2:15: invalid type: integer `111`, expected a string"),
        "{errors:?}"
    );
}

#[test]
fn examples_need_exactly_one_expectation() {
    let errors = system_errors("\n[[example]]\nname = \"x\"\ncase = \"c.json\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(":22:1: example \"x\" needs exactly one of `expect`, `expect_error`"),
        "{errors:?}"
    );
}

#[test]
fn each_fields_take_no_value_options() {
    let errors = system_errors(
        "\n[[field]]\nto = \"L/I\"\neach = \"materials\"\ndefault = \"x\"\nmax_length = 3\n  [[field.item]]\n  to = \"N\"\n  from = \"name\"\n",
    );
    assert_eq!(
        errors,
        [
            "systems/city/T01.toml:22:1: field `L/I`: an `each` field takes only to, each, item, when and required, not default, max_length"
        ]
    );
    let errors = system_errors("\n[[field]]\nto = \"L\"\neach = \"materials\"\n");
    assert_eq!(
        errors,
        ["systems/city/T01.toml:22:1: field `L` has `each` but no `[[field.item]]` fields"]
    );
}
