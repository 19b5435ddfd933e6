//! Building one adapter per catalogue system: base URLs from the line environment, limits from
//! each mapping file, and systems that cannot be built listed as unavailable with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

use std::collections::BTreeMap;

use serve_support::fixture_mappings;
use yimen_adapters::AdapterRegistry;
use yimen_hub::config::{DispatchConfig, LineEnv};
use yimen_hub::lines::Lines;
use yimen_mappings::catalog::Catalog;

#[tokio::test]
async fn every_system_gets_an_adapter_or_a_reason() {
    let mappings = fixture_mappings();
    let catalog = Catalog::load(&mappings).unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "R02".to_owned(),
        url::Url::parse("http://10.0.0.2:8000/r02").unwrap(),
    );
    let env = LineEnv {
        base: None,
        overrides,
        files_dir: files.path().to_path_buf(),
    };
    let lines = Lines::build(
        &catalog,
        &mappings,
        &env,
        &AdapterRegistry::builtin(),
        &DispatchConfig::default(),
    );
    assert_eq!(lines.len(), catalog.systems().count());

    let r01 = lines.get("R01").unwrap();
    assert!(!r01.is_available());
    let reason = r01.adapter.as_ref().unwrap_err();
    assert!(reason.contains("YIMEN_LINE_BASE_R01"), "{reason}");

    let r02 = lines.get("R02").unwrap();
    assert!(r02.is_available() && r02.sender().is_some() && !r02.is_jump());
    assert_eq!(r02.kind, "rest");
    assert_eq!(
        r02.limits.max_in_flight, 4,
        "limits come from the mapping file"
    );
    assert_eq!(r02.policy.max_attempts, 3);
    // The claim window: 4 sending plus the default queue of claimed deliveries waiting for a slot.
    let window = 4 + DispatchConfig::default().claim_ahead;
    assert_eq!(r02.claim_window(), window);
    assert_eq!(r02.claim_room(), window);
    let slot = r02.start_attempt();
    assert_eq!(r02.in_flight(), 1);
    drop(slot);
    assert_eq!(r02.in_flight(), 0);
    // Nothing more is claimed while over half the window is held; then up to the whole window.
    let mut held: Vec<_> = (0..window / 2 + 1).map(|_| r02.hold_claim()).collect();
    assert_eq!((r02.claimed(), r02.claim_room()), (window / 2 + 1, 0));
    held.pop();
    assert_eq!(
        (r02.claimed(), r02.claim_room()),
        (window / 2, window - window / 2)
    );
    held.clear();
    assert_eq!(r02.claim_room(), window);
}

#[tokio::test]
async fn jump_and_file_systems_build_under_a_common_base() {
    let mappings = fixture_mappings();
    let catalog = Catalog::load(&mappings).unwrap();
    let files = tempfile::tempdir().unwrap();
    let env = LineEnv {
        base: Some(url::Url::parse("http://127.0.0.1:9/").unwrap()),
        overrides: BTreeMap::new(),
        files_dir: files.path().to_path_buf(),
    };
    let lines = Lines::build(
        &catalog,
        &mappings,
        &env,
        &AdapterRegistry::builtin(),
        &DispatchConfig::default(),
    );
    for line in lines.iter() {
        assert!(
            line.is_available(),
            "{}: {:?}",
            line.id,
            line.adapter.as_ref().err()
        );
    }
    let j01 = lines.get("J01").unwrap();
    assert!(j01.is_jump() && j01.sender().is_none());
    let f01 = lines.get("F01").unwrap();
    assert_eq!(f01.kind, "file");
    assert!(f01.sender().is_some());
}
