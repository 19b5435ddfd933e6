//! `Case::validate`: one test per rule, and one case with many problems reported at once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap: a panic is a failed test

use jiff::Timestamp;
use yimen_mappings::case::{Applicant, Case, IdType, LegalPerson, MaterialKind, NaturalPerson};

/// The clock the tests validate against (after every sample's `received_at`).
fn now() -> Timestamp {
    "2026-11-28T08:00:00+08:00".parse().unwrap()
}

fn example(name: &str) -> Case {
    let path = format!("{}/examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn natural() -> Case {
    example("natural-person-senior-allowance-agent")
}

fn legal() -> Case {
    example("legal-person-five-certificates")
}

fn person(case: &mut Case) -> &mut NaturalPerson {
    match &mut case.applicant {
        Applicant::NaturalPerson(person) => person,
        Applicant::LegalPerson(legal) => &mut legal.legal_representative,
    }
}

fn company(case: &mut Case) -> &mut LegalPerson {
    match &mut case.applicant {
        Applicant::LegalPerson(legal) => legal,
        Applicant::NaturalPerson(_) => panic!("legal person expected"),
    }
}

/// The problems of `case` as `path: message` lines.
fn problems(case: &Case) -> Vec<String> {
    case.validate_at(now())
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Asserts exactly one problem, at `path`, whose message contains `needle`.
fn assert_one(case: &Case, path: &str, needle: &str) {
    let problems = case.validate_at(now());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, path, "{problems:?}");
    assert!(problems[0].message.contains(needle), "{}", problems[0]);
}

#[test]
fn required_text_must_not_be_blank() {
    let mut case = natural();
    case.case_number = "  ".into();
    assert_one(&case, "case_number", "must not be empty");
    let mut case = natural();
    case.matter.code = String::new();
    assert_one(&case, "matter.code", "must not be empty");
    let mut case = legal();
    company(&mut case).org_type = String::new();
    assert_one(&case, "applicant.org_type", "must not be empty");
    let mut case = natural();
    case.agent.as_mut().unwrap().person.name = String::new();
    assert_one(&case, "agent.person.name", "must not be empty");
    let mut case = natural();
    case.channel.window = Some(String::new());
    assert_one(&case, "channel.window", "must not be empty");
}

#[test]
fn codes_must_not_contain_spaces() {
    let mut case = natural();
    case.case_number = "CC 2026".into();
    assert_one(&case, "case_number", "must not contain spaces");
}

#[test]
fn lengths_are_limited_in_characters() {
    let mut case = natural();
    person(&mut case).name = "䶮".repeat(200);
    assert_eq!(problems(&case), Vec::<String>::new());
    person(&mut case).name = "䶮".repeat(201);
    assert_one(
        &case,
        "applicant.name",
        "201 characters long, more than the limit of 200",
    );
    let mut case = natural();
    person(&mut case).address = Some("𠀀".repeat(501));
    assert_one(&case, "applicant.address", "more than the limit of 500");
    let mut case = natural();
    case.case_number = "C".repeat(65);
    assert_one(&case, "case_number", "more than the limit of 64");
}

#[test]
fn control_characters_are_refused() {
    let mut case = natural();
    case.matter.name = "高龄\u{0}津贴".into();
    assert_one(&case, "matter.name", "control characters");
}

#[test]
fn names_outside_gbk_are_valid() {
    let mut case = natural();
    person(&mut case).name = "王䶮".into();
    person(&mut case).address = Some("𠀀园新村".into());
    assert_eq!(problems(&case), Vec::<String>::new());
}

#[test]
fn resident_id_check_character_and_date_are_checked() {
    let mut case = natural();
    person(&mut case).id_number = "36042619910102009X".into();
    assert_one(
        &case,
        "applicant.id_number",
        "check character (position 18) is X, expected 3",
    );
    person(&mut case).id_number = "360426199113010079".into();
    assert_one(&case, "applicant.id_number", "birth date");
    person(&mut case).id_number = "11010519491231002x".into();
    assert_one(&case, "applicant.id_number", "must be upper-case");
    case.normalize();
    assert_eq!(problems(&case), Vec::<String>::new());
}

#[test]
fn birth_date_must_not_follow_the_day_received() {
    let mut case = natural();
    // Born 2026-12-01, after the case was received on 2026-11-23.
    let first17 = "44060420261201002";
    let check = yimen_mappings::ids::resident_id_check_char(first17).unwrap();
    person(&mut case).id_number = format!("{first17}{check}");
    assert_one(
        &case,
        "applicant.id_number",
        "birth date is after the day the case was received",
    );
}

#[test]
fn other_document_types_are_checked_for_shape_only() {
    let mut case = natural();
    let applicant = person(&mut case);
    applicant.id_type = IdType::HkMacaoPermit;
    applicant.id_number = "H60123456".into();
    assert_eq!(problems(&case), Vec::<String>::new());
    person(&mut case).id_number = "X60123456".into();
    assert_one(
        &case,
        "applicant.id_number",
        "H or M followed by 8 or 10 digits",
    );
    person(&mut case).id_type = IdType::Passport;
    person(&mut case).id_number = "E12345678".into();
    assert_eq!(problems(&case), Vec::<String>::new());
    person(&mut case).id_number = "E1234-5678".into();
    assert_one(&case, "applicant.id_number", "passport number");
    person(&mut case).id_type = IdType::TaiwanPermit;
    person(&mut case).id_number = "12345678".into();
    assert_eq!(problems(&case), Vec::<String>::new());
    person(&mut case).id_type = IdType::ForeignPermanentResident;
    person(&mut case).id_number = "USA330000000001".into();
    assert_eq!(problems(&case), Vec::<String>::new());
    person(&mut case).id_number = "93306019900101001X".into();
    assert_eq!(problems(&case), Vec::<String>::new());
    person(&mut case).id_number = "9330601990010100é".into();
    assert_one(&case, "applicant.id_number", "3 letters and 12 digits");
}

#[test]
fn credit_codes_are_checked_inside_and_out() {
    let mut case = legal();
    company(&mut case).credit_code = "91110000600037341N".into();
    assert_one(
        &case,
        "applicant.credit_code",
        "check character (position 18) is N, expected L",
    );
    company(&mut case).credit_code = "9111000060003IOZSV".into();
    assert_one(&case, "applicant.credit_code", "character 14");
    let first17 = "91110000600037342";
    let check = yimen_mappings::ids::credit_code_check_char(first17).unwrap();
    company(&mut case).credit_code = format!("{first17}{check}");
    assert_one(
        &case,
        "applicant.credit_code",
        "organisation code check character",
    );
}

#[test]
fn the_legal_representative_is_checked_as_a_person() {
    let mut case = legal();
    company(&mut case).legal_representative.id_number = "440604199006220058".into();
    assert_one(
        &case,
        "applicant.legal_representative.id_number",
        "expected 7",
    );
}

#[test]
fn division_codes_have_6_or_9_digits() {
    let mut case = natural();
    case.region.division_code = "440604".into();
    assert_eq!(problems(&case), Vec::<String>::new());
    case.region.division_code = "44060".into();
    assert_one(&case, "region.division_code", "6 or 9 digits");
    case.region.division_code = "4406040110".into();
    assert_one(&case, "region.division_code", "more than the limit of 9");
    case.region.division_code = "04060401A".into();
    assert_one(&case, "region.division_code", "6 or 9 digits");
    case.region.division_code = "040604".into();
    assert_one(&case, "region.division_code", "must not start with 0");
}

#[test]
fn phones_are_mobiles_or_fixed_lines_with_area_code() {
    for good in [
        "13902212345",
        "19912345678",
        "0757-82781234",
        "075782781234",
        "010-12345678",
        "0757-8278123-8001",
        "+852-91234567",
        "+886 912 345 678",
        "+8613902212345",
    ] {
        let mut case = natural();
        person(&mut case).phone = Some(good.into());
        assert_eq!(problems(&case), Vec::<String>::new(), "{good}");
    }
    for bad in [
        "12902212345",
        "1390221234",
        "82781234",
        "757-82781234",
        "0757-0278123",
        "0757-82781234-1234567",
        "0757--82781234",
        "+0852-91234567",
        "+852--91234567",
        "+1234",
        "85291234567",
    ] {
        let mut case = natural();
        case.agent.as_mut().unwrap().person.phone = Some(bad.into());
        assert_one(&case, "agent.person.phone", "must be a mobile number");
    }
}

#[test]
fn material_digests_sizes_and_references_are_checked() {
    let mut case = legal();
    case.materials[0].sha256 = Some("B8D8".repeat(16));
    assert_one(&case, "materials[0].sha256", "64 lower-case hex digits");
    let mut case = legal();
    case.materials[1].sha256 = Some("abc".into());
    assert_one(&case, "materials[1].sha256", "64 lower-case hex digits");
    let mut case = legal();
    case.materials[1].size = Some(0);
    assert_one(&case, "materials[1].size", "at least 1 byte");
    case.materials[1].size = Some(2 * 1024 * 1024 * 1024);
    assert_one(
        &case,
        "materials[1].size",
        "more than the limit of 1073741824",
    );
    let mut case = legal();
    case.materials[0].sha256 = None;
    assert_one(
        &case,
        "materials[0].sha256",
        "required when the material has a file_ref",
    );
    let mut case = legal();
    case.materials[3].licence_number = None;
    assert_eq!(case.materials[3].kind, MaterialKind::ELicence);
    assert_one(
        &case,
        "materials[3].licence_number",
        "required for an e-licence",
    );
    let mut case = legal();
    case.materials[2].media_type = Some("pdf".into());
    assert_one(&case, "materials[2].media_type", "media type");
}

#[test]
fn too_many_materials_are_refused() {
    let mut case = legal();
    let material = case.materials[2].clone();
    case.materials = vec![material; 501];
    assert_one(&case, "materials", "lists 501 materials, more than 500");
}

#[test]
fn time_limits_stay_within_a_year_of_working_days() {
    let mut case = natural();
    case.time_limit_days = Some(365);
    assert_eq!(problems(&case), Vec::<String>::new());
    case.time_limit_days = Some(366);
    assert_one(&case, "time_limit_days", "366 working days, more than 365");
}

#[test]
fn received_at_must_not_be_absurd() {
    let mut case = natural();
    case.received_at = "2026-11-28T20:00:00+08:00".parse().unwrap();
    assert_eq!(problems(&case), Vec::<String>::new());
    case.received_at = "2026-11-30T08:00:00+08:00".parse().unwrap();
    assert_one(&case, "received_at", "more than 24 hours in the future");
    case.received_at = "1999-12-31T23:00:00+08:00".parse().unwrap();
    assert_one(&case, "received_at", "before 2000-01-01");
}

#[test]
fn form_keys_must_not_be_empty() {
    let mut case = natural();
    case.form.insert(" ".into(), serde_json::json!(1));
    assert_one(&case, "form", "keys must not be empty");
}

/// Form texts may span lines, but a NUL or another control character is named by its path,
/// however deep it sits.
#[test]
fn form_texts_must_not_hold_control_characters() {
    let mut case = natural();
    case.form.insert(
        "scope".into(),
        serde_json::json!("第一行\n第二行\t（附注）\r\n"),
    );
    assert_eq!(problems(&case), Vec::<String>::new());
    case.form
        .insert("remark".into(), serde_json::json!("abc\u{0}def"));
    assert_one(&case, "form.remark", "control characters");
    let mut case = natural();
    case.form.insert(
        "shareholders".into(),
        serde_json::json!([{ "name": "张三" }, { "name": "李\u{1b}四" }]),
    );
    assert_one(&case, "form.shareholders[1].name", "control characters");
    // A bad name is reported once, however many values sit below it.
    let mut case = natural();
    case.form
        .insert("ok".into(), serde_json::json!({ "bad\u{7}key": [1, 2, 3] }));
    assert_one(&case, "form.ok.bad\u{7}key", "name must not contain");
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut case = legal();
    case.case_number = String::new();
    case.matter.name = "名".repeat(300);
    let applicant = company(&mut case);
    applicant.credit_code = "91110000600037341N".into();
    applicant.phone = Some("12345".into());
    applicant.legal_representative.id_number = "360426199113010079".into();
    applicant.legal_representative.name = " ".into();
    case.agent.as_mut().unwrap().person.phone = Some("0757".into());
    case.region.division_code = "4406".into();
    case.materials[1].sha256 = Some("XYZ".into());
    case.materials[2].size = Some(0);
    case.materials[3].licence_number = None;
    case.time_limit_days = Some(1000);
    case.received_at = "2030-01-01T00:00:00+08:00".parse().unwrap();
    let paths: Vec<String> = case
        .validate_at(now())
        .into_iter()
        .map(|p| p.path)
        .collect();
    assert_eq!(
        paths,
        [
            "case_number",
            "matter.name",
            "received_at",
            "applicant.credit_code",
            "applicant.legal_representative.name",
            "applicant.legal_representative.id_number",
            "applicant.phone",
            "agent.person.phone",
            "region.division_code",
            "materials[1].sha256",
            "materials[2].size",
            "materials[3].licence_number",
            "time_limit_days",
        ]
    );
}

#[test]
fn problems_never_repeat_identity_numbers() {
    let mut case = legal();
    company(&mut case).legal_representative.id_number = "440604199006220058".into();
    company(&mut case).credit_code = "91440604MA4UR5K26G".into();
    for problem in problems(&case) {
        assert!(!problem.contains("440604199006220058"), "{problem}");
        assert!(!problem.contains("91440604MA4UR5K26G"), "{problem}");
    }
}
