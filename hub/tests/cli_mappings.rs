//! The mapping commands (`check`, `catalog`, `route`, `map`) run as the real binary against the
//! engine's fixture catalogue and broken copies of it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/tests/fixtures")
}

fn catalog_dir() -> PathBuf {
    fixtures().join("catalog")
}

fn case(name: &str) -> PathBuf {
    fixtures().join(format!("cases/{name}.json"))
}

fn yimen(args: &[&str], mappings: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yimen"))
        .args(args)
        .arg("--mappings")
        .arg(mappings)
        .env_remove("YIMEN_MAPPINGS")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A writable copy of the fixture catalogue (with the cases its examples name) and its path.
fn copy_catalog() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    copy_dir(&fixtures(), dir.path());
    let catalog = dir.path().join("catalog");
    (dir, catalog)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn check_passes_on_a_good_catalogue() {
    let output = yimen(&["check"], &catalog_dir());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "4 systems, 3 routes, 6 examples: ok\n");
    assert_eq!(stderr(&output), "");
}

#[test]
fn check_prints_every_load_error_located_and_fails() {
    let (_dir, catalog) = copy_catalog();
    let f02 = catalog.join("systems/city/F02.toml");
    let text = std::fs::read_to_string(&f02).unwrap();
    std::fs::write(
        &f02,
        text.replace(
            "from = \"case_number\"",
            "from = \"case_nubmer\"\nfomat = 1",
        ),
    )
    .unwrap();
    let f04 = catalog.join("systems/provincial/F04.toml");
    let text = std::fs::read_to_string(&f04).unwrap();
    std::fs::write(
        &f04,
        text.replace("\"9\" = \"approved\"", "\"9\" = \"finished\""),
    )
    .unwrap();
    let output = yimen(&["check"], &catalog);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].ends_with("systems/city/F02.toml:32:1: unknown field `fomat`, expected one of `to`, `from`, `value`, `template`, `each`, `item`, `required`, `when`, `derive`, `code_table`, `codes`, `code_default`, `date_format`, `timezone`, `default`, `max_length`, `unencodable`"), "{err}");
    assert!(lines[1].contains("systems/provincial/F04.toml:"), "{err}");
    assert!(
        lines[1].contains(": status `9`: unknown state \"finished\""),
        "{err}"
    );
    assert!(
        stdout(&output).ends_with("catalogue did not load: 2 problems\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn check_reports_adapter_settings_and_golden_failures() {
    let (_dir, catalog) = copy_catalog();
    let f03 = catalog.join("systems/district/F03.toml");
    let text = std::fs::read_to_string(&f03).unwrap();
    let text = text
        .replace("transport = \"local\"", "transport = \"local\"\nspeed = 3")
        .replace("|20261123|B02", "|20261124|B02");
    std::fs::write(&f03, text).unwrap();
    let output = yimen(&["check"], &catalog);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("systems/district/F03.toml:15:1: unknown field `speed`"),
        "{err}"
    );
    assert!(err.contains("speed"), "{err}");
    assert!(err.contains("example \"one record with a header, pipe-delimited\": rendered text differs (- expected, + rendered):"), "{err}");
    assert!(err.contains("\n- CC20261123000201|企业开办（五证合一）|佛山市禅城区瓷韵陶艺文化有限公司|广东省佛山市禅城区石湾镇街道东平路12号之一|20261124|B02"), "{err}");
    assert!(err.contains("\n+ CC20261123000201|企业开办（五证合一）|佛山市禅城区瓷韵陶艺文化有限公司|广东省佛山市禅城区石湾镇街道东平路12号之一|20261123|B02"), "{err}");
    assert_eq!(
        stdout(&output),
        "4 systems, 3 routes, 6 examples: 2 problems\n"
    );
}

#[test]
fn catalog_as_json_and_as_a_table() {
    let output = yimen(&["catalog", "--json"], &catalog_dir());
    assert!(output.status.success());
    let entries: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 4);
    assert_eq!(
        entries[1],
        serde_json::json!({"id": "F02", "name": "市场主体登记系统（测试）", "owner": "市市场监管局", "level": "city", "kind": "rest"})
    );
    let table = stdout(&yimen(&["catalog"], &catalog_dir()));
    assert!(
        table.starts_with("ID   LEVEL       KIND    NAME (OWNER)\n"),
        "{table}"
    );
    assert!(
        table.contains("\nF04  provincial  jump    民政业务专线（测试） (省民政厅)\n"),
        "{table}"
    );
}

#[test]
fn route_prints_targets_with_names() {
    let output = yimen(
        &["route", case("legal-person").to_str().unwrap()],
        &catalog_dir(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "F01\t赋码系统（测试）\nF02\t市场主体登记系统（测试）\nF03\t区前置机交换（测试）\nF04\t民政业务专线（测试）\n"
    );
}

#[test]
fn route_and_map_print_every_case_problem_with_its_path() {
    let dir = TempDir::new().unwrap();
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case("legal-person")).unwrap()).unwrap();
    value["applicant"]["credit_code"] = serde_json::json!("91110000600037341N");
    value["region"]["division_code"] = serde_json::json!("4406");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, value.to_string()).unwrap();
    for args in [
        vec!["route", bad.to_str().unwrap()],
        vec!["map", "F01", bad.to_str().unwrap()],
    ] {
        let output = yimen(&args, &catalog_dir());
        assert_eq!(output.status.code(), Some(1));
        let err = stderr(&output);
        assert!(err.contains("bad.json: applicant.credit_code: "), "{err}");
        assert!(err.contains("bad.json: region.division_code: "), "{err}");
        assert!(err.contains("invalid case: 2 problems"), "{err}");
        assert_eq!(stdout(&output), "");
    }
}

#[test]
fn route_errors_name_the_matter() {
    let dir = TempDir::new().unwrap();
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case("legal-person")).unwrap()).unwrap();
    value["matter"]["code"] = serde_json::json!("UNKNOWN01");
    let path = dir.path().join("case.json");
    std::fs::write(&path, value.to_string()).unwrap();
    let output = yimen(&["route", path.to_str().unwrap()], &catalog_dir());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "yimen: unknown matter code \"UNKNOWN01\": no route in routes.toml\n"
    );
}

#[test]
fn map_prints_the_text_or_the_encoded_body() {
    let output = yimen(
        &["map", "F03", case("legal-person").to_str().unwrap()],
        &catalog_dir(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("BJBH|SXMC|SQR|DZ|SLRQ|CK\r\nCC20261123000201|企业开办"),
        "{text}"
    );
    let raw = yimen(
        &[
            "map",
            "F03",
            case("legal-person").to_str().unwrap(),
            "--raw",
        ],
        &catalog_dir(),
    );
    let (decoded, _, had_errors) = encoding_rs::GBK.decode(&raw.stdout);
    assert!(!had_errors);
    assert_eq!(decoded, text);
    assert_ne!(raw.stdout, text.as_bytes());
}

#[test]
fn map_failures_name_system_and_field() {
    let output = yimen(
        &[
            "map",
            "F02",
            case("natural-person-rare-name").to_str().unwrap(),
        ],
        &catalog_dir(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "yimen: F02: field applicant/name: character '䶮' (U+4DAE) cannot be encoded in GBK\n"
    );
    let output = yimen(
        &["map", "L99", case("legal-person").to_str().unwrap()],
        &catalog_dir(),
    );
    assert_eq!(stderr(&output), "yimen: unknown line system \"L99\"\n");
}
