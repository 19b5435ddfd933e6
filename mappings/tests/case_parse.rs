//! `parse_case` on hostile and broken bodies: always a clear problem, never a panic or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap: a panic is a failed test

use serde_json::{Value, json};
use yimen_mappings::case::{MAX_CASE_BYTES, Problem, parse_case};

fn example(name: &str) -> Value {
    let path = format!("{}/examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn problems(body: &[u8]) -> Vec<Problem> {
    parse_case(body).expect_err("the body must be refused")
}

fn single(body: &[u8]) -> Problem {
    let mut problems = problems(body);
    assert_eq!(problems.len(), 1, "{problems:?}");
    problems.remove(0)
}

#[test]
fn examples_parse() {
    let bytes = serde_json::to_vec(&example("legal-person-five-certificates")).unwrap();
    let case = parse_case(&bytes).unwrap();
    assert_eq!(case.matter.code, "11440604MB2C90001");
}

#[test]
fn invalid_utf8_is_reported_with_its_offset() {
    let mut body = br#"{"case_number": "A"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#""}"#);
    let problem = single(&body);
    assert_eq!(problem.path, "");
    assert_eq!(
        problem.message,
        "case body is not valid UTF-8 (invalid byte at offset 18)"
    );
}

#[test]
fn malformed_json_is_reported_with_line_and_column() {
    let problem = single(b"{\n  \"case_number\": \"A\",\n  oops\n}");
    assert_eq!(problem.path, "");
    assert!(
        problem.message.starts_with("case body is not valid JSON"),
        "{problem}"
    );
    assert!(problem.message.contains("line 3"), "{problem}");
}

#[test]
fn empty_body_and_trailing_garbage_are_reported() {
    assert!(single(b"").message.contains("EOF"));
    let mut body = serde_json::to_vec(&example("natural-person-pension-enrolment")).unwrap();
    body.extend_from_slice(b" {}");
    let problem = single(&body);
    assert!(problem.message.contains("trailing characters"), "{problem}");
}

#[test]
fn a_body_that_is_not_an_object_is_refused() {
    for body in ["[]", "\"case\"", "  42", "null"] {
        assert_eq!(
            single(body.as_bytes()).message,
            "case body must be a JSON object",
            "{body}"
        );
    }
}

#[test]
fn a_wrong_type_carries_its_json_path() {
    let mut case = example("legal-person-five-certificates");
    case["materials"][1]["size"] = json!("large");
    let problem = single(&serde_json::to_vec(&case).unwrap());
    assert_eq!(problem.path, "materials[1].size");
    assert!(
        problem.message.contains("invalid type: string \"large\""),
        "{problem}"
    );
    assert!(
        problem
            .to_string()
            .starts_with("materials[1].size: invalid type")
    );
}

#[test]
fn a_wrong_type_inside_the_tagged_applicant_carries_its_full_path() {
    let mut case = example("legal-person-five-certificates");
    case["applicant"]["legal_representative"]["id_number"] = json!(440604199006220057u64);
    let problem = single(&serde_json::to_vec(&case).unwrap());
    assert_eq!(problem.path, "applicant.legal_representative.id_number");
    assert!(
        problem.message.contains("invalid type: integer"),
        "{problem}"
    );
}

#[test]
fn unknown_and_missing_fields_are_named() {
    let mut case = example("natural-person-pension-enrolment");
    case["applicant"]["nickname"] = json!("阿玲");
    let problem = single(&serde_json::to_vec(&case).unwrap());
    assert_eq!(problem.path, "applicant.nickname");
    assert!(
        problem.message.contains("unknown field `nickname`"),
        "{problem}"
    );

    let mut case = example("natural-person-pension-enrolment");
    case["region"]
        .as_object_mut()
        .unwrap()
        .remove("division_code");
    let problem = single(&serde_json::to_vec(&case).unwrap());
    assert_eq!(problem.path, "region");
    assert!(
        problem.message.contains("missing field `division_code`"),
        "{problem}"
    );

    let mut case = example("natural-person-pension-enrolment");
    case["applicant"]["kind"] = json!("robot");
    let problem = single(&serde_json::to_vec(&case).unwrap());
    assert_eq!(problem.path, "applicant.kind");
    assert_eq!(
        problem.message,
        "unknown applicant kind \"robot\", expected `natural_person` or `legal_person`"
    );
}

#[test]
fn every_type_problem_comes_back_at_once() {
    let mut case = example("legal-person-five-certificates");
    case["materials"][0]["size"] = json!("large");
    case["materials"][2]["kind"] = json!("photocopy");
    case["time_limit_days"] = json!(-1);
    case["received_at"] = json!("yesterday");
    case["applicant"]["legal_representative"]["id_type"] = json!(111);
    case["priority"] = json!("urgent");
    case.as_object_mut().unwrap().remove("channel");
    let problems = problems(&serde_json::to_vec(&case).unwrap());
    let mut paths: Vec<_> = problems.iter().map(|p| p.to_string()).collect();
    paths.sort();
    let expected = [
        "applicant.legal_representative.id_type: invalid type: integer `111`, expected",
        "channel: is required",
        "materials[0].size: invalid type: string \"large\", expected u64",
        "materials[2].kind: unknown variant `photocopy`",
        "priority: unknown field",
        "received_at: ",
        "time_limit_days: invalid value: integer `-1`, expected u32",
    ];
    assert_eq!(paths.len(), expected.len(), "{paths:#?}");
    for (path, expected) in paths.iter().zip(expected) {
        assert!(
            path.starts_with(expected),
            "{path} does not start with {expected}"
        );
    }
}

#[test]
fn an_applicant_without_kind_is_named() {
    let mut case = example("natural-person-pension-enrolment");
    case["applicant"].as_object_mut().unwrap().remove("kind");
    let problem = single(&serde_json::to_vec(&case).unwrap());
    assert_eq!(problem.to_string(), "applicant.kind: is required");
    case["applicant"] = json!("陈美玲");
    let problem = single(&serde_json::to_vec(&case).unwrap());
    assert_eq!(problem.path, "applicant");
}

#[test]
fn a_bad_timestamp_is_named() {
    let mut case = example("natural-person-pension-enrolment");
    case["received_at"] = json!("2026-11-23 09:15:42");
    let problem = single(&serde_json::to_vec(&case).unwrap());
    assert_eq!(problem.path, "received_at");
}

#[test]
fn a_body_over_the_limit_is_refused_before_parsing() {
    let body = vec![b' '; 50 * 1024 * 1024];
    let problem = single(&body);
    assert_eq!(
        problem.message,
        format!("case body is 52428800 bytes, more than the limit of {MAX_CASE_BYTES} bytes")
    );
}

#[test]
fn a_large_case_under_the_limit_parses() {
    let mut case = example("natural-person-pension-enrolment");
    case["form"]["notes"] = json!("备".repeat(4 * 1024 * 1024));
    let case = parse_case(&serde_json::to_vec(&case).unwrap()).unwrap();
    assert_eq!(
        case.form["notes"].as_str().unwrap().chars().count(),
        4 * 1024 * 1024
    );
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused() {
    let depth = 10_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let problem = single(nested.as_bytes());
    assert_eq!(problem.message, "case body must be a JSON object");
    let nested = format!("{}1{}", "{\"form\":".repeat(depth), "}".repeat(depth));
    let problem = single(nested.as_bytes());
    assert!(
        problem.message.contains("recursion limit exceeded"),
        "{problem}"
    );

    let mut case = example("natural-person-pension-enrolment");
    case["form"]["deep"] = json!("DEEP");
    let deep = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let case = serde_json::to_string(&case)
        .unwrap()
        .replace("\"DEEP\"", &deep);
    let problem = single(case.as_bytes());
    assert!(
        problem.message.contains("recursion limit exceeded"),
        "{problem}"
    );
}

#[test]
fn normalisation_runs_before_validation() {
    let mut case = example("natural-person-senior-allowance-agent");
    case["applicant"]["id_number"] = json!("  11010519491231002x ");
    case["applicant"]["name"] = json!(" 王䶮\t");
    case["materials"][0]["sha256"] =
        json!("0A97241251F38C8CB3C90049D9CFCF6A24E78552C882621598394419DD565D94");
    let case = parse_case(&serde_json::to_vec(&case).unwrap()).unwrap();
    let yimen_mappings::case::Applicant::NaturalPerson(person) = &case.applicant else {
        panic!("natural person expected");
    };
    assert_eq!(person.id_number, "11010519491231002X");
    assert_eq!(person.name, "王䶮");
    assert_eq!(
        case.materials[0].sha256.as_deref(),
        Some("0a97241251f38c8cb3c90049d9cfcf6a24e78552c882621598394419dd565d94")
    );
}

#[test]
fn validation_problems_come_back_all_at_once() {
    let mut case = example("legal-person-five-certificates");
    case["applicant"]["credit_code"] = json!("91110000600037341N");
    case["region"]["division_code"] = json!("4406");
    let problems = problems(&serde_json::to_vec(&case).unwrap());
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["applicant.credit_code", "region.division_code"]);
}

fn example_bytes() -> Vec<u8> {
    serde_json::to_vec(&example("legal-person-five-certificates")).unwrap()
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_give_problems_not_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        if let Err(problems) = parse_case(&bytes) {
            proptest::prop_assert!(!problems.is_empty());
        }
    }

    #[test]
    fn truncated_cases_are_refused_with_a_problem(cut in 0usize..1_000) {
        let bytes = example_bytes();
        let cut = cut % bytes.len();
        let problems = parse_case(&bytes[..cut]).expect_err("a truncated case is refused");
        proptest::prop_assert!(!problems.is_empty());
    }

    #[test]
    fn changed_bytes_give_a_case_or_problems(position in 0usize..4_000, byte in proptest::prelude::any::<u8>()) {
        let mut bytes = example_bytes();
        let position = position % bytes.len();
        bytes[position] = byte;
        if let Err(problems) = parse_case(&bytes) {
            proptest::prop_assert!(!problems.is_empty());
            for problem in problems {
                proptest::prop_assert!(!problem.message.is_empty());
            }
        }
    }
}
