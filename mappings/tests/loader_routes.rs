//! Routing over the fixture catalogue's routes.toml: filters, fan-out, and the two errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::path::Path;

use serde_json::{Value, json};
use yimen_mappings::case::{Case, parse_case};
use yimen_mappings::catalog::Catalog;
use yimen_mappings::route::RouteError;

fn catalog() -> Catalog {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog");
    match Catalog::load(&dir) {
        Ok(catalog) => catalog,
        Err(errors) => panic!("{errors}"),
    }
}

fn fixture(name: &str) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/cases/{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn case(value: &Value) -> Case {
    parse_case(value.to_string().as_bytes()).unwrap()
}

#[test]
fn matching_routes_fan_out_in_order_without_repeats() {
    let targets = catalog().route(&case(&fixture("legal-person"))).unwrap();
    assert_eq!(targets, ["F01", "F02", "F03", "F04"]);
}

#[test]
fn applicant_and_region_filters() {
    let catalog = catalog();
    let mut natural = fixture("natural-person-rare-name");
    assert_eq!(catalog.route(&case(&natural)).unwrap(), ["F04"]);
    natural["matter"]["code"] = json!("11440604MB2C90001");
    assert_eq!(catalog.route(&case(&natural)).unwrap(), ["F02", "F04"]);

    let mut elsewhere = fixture("legal-person");
    elsewhere["region"]["division_code"] = json!("440103");
    assert_eq!(catalog.route(&case(&elsewhere)).unwrap(), ["F02", "F04"]);
}

#[test]
fn a_known_matter_without_a_route_names_applicant_and_region() {
    let catalog = catalog();
    let mut value = fixture("natural-person-rare-name");
    value["region"]["division_code"] = json!("440103");
    assert_eq!(
        catalog.route(&case(&value)),
        Err(RouteError::NoRoute {
            matter: "11440604MB2C90102".to_owned(),
            applicant: "natural_person".to_owned(),
            region: "440103".to_owned(),
        })
    );
    let mut legal = fixture("legal-person");
    legal["matter"]["code"] = json!("11440604MB2C90102");
    let error = catalog.route(&case(&legal)).unwrap_err().to_string();
    assert_eq!(
        error,
        "matter \"11440604MB2C90102\" has no route for applicant kind legal_person in region 440604"
    );
}

#[test]
fn an_unknown_matter_names_the_code() {
    let mut value = fixture("legal-person");
    value["matter"]["code"] = json!("99999999");
    assert_eq!(
        catalog().route(&case(&value)).unwrap_err().to_string(),
        "unknown matter code \"99999999\": no route in routes.toml"
    );
}

#[test]
fn routes_and_status_maps_are_exposed() {
    let catalog = catalog();
    assert_eq!(catalog.routes().len(), 3);
    let first = catalog.routes().iter().next().unwrap();
    assert_eq!(first.time_limit_days, Some(3));
    let f02 = catalog.system("F02").unwrap();
    assert_eq!(
        f02.map_status("30").map(|s| s.as_str()),
        Some("supplement_required")
    );
    assert_eq!(f02.map_status(" 90 ").map(|s| s.as_str()), Some("approved"));
    assert_eq!(f02.map_status("77"), None);
    let ids: Vec<&str> = catalog.systems().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["F01", "F02", "F03", "F04"]);
    assert_eq!(f02.kind, "rest");
    assert!(f02.source.contains("[adapter]"));
}

#[test]
fn the_catalogue_can_be_shared_between_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Catalog>();
}
