//! Every sample case in `mappings/examples/` parses, normalises and validates cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap: a panic is a failed test

use std::path::Path;

use yimen_mappings::case::{Applicant, parse_case};

fn examples() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

#[test]
fn every_example_parses_and_validates() {
    let examples = examples();
    assert!(examples.len() >= 8, "only {} examples", examples.len());
    for (name, bytes) in examples {
        let case = parse_case(&bytes).unwrap_or_else(|problems| panic!("{name}: {problems:?}"));
        assert!(
            !case.form.is_empty(),
            "{name}: every example fills the form"
        );
    }
}

#[test]
fn examples_cover_both_applicant_kinds_and_an_agent() {
    let cases: Vec<_> = examples()
        .iter()
        .map(|(_, bytes)| parse_case(bytes).unwrap())
        .collect();
    let legal = cases
        .iter()
        .filter(|c| matches!(c.applicant, Applicant::LegalPerson(_)))
        .count();
    assert!(legal >= 3 && cases.len() - legal >= 3);
    assert!(cases.iter().any(|c| c.agent.is_some()));
    assert!(cases.iter().any(|c| c.region.division_code.len() == 9));
}

#[test]
fn examples_hold_characters_outside_gbk() {
    let all: String = examples()
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(all.contains('\u{4DAE}'), "䶮 U+4DAE");
    assert!(all.contains('\u{20000}'), "𠀀 U+20000");
}
