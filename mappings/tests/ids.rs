//! Identity numbers: the published test vectors and property tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap: a panic is a failed test

use jiff::civil::date;
use proptest::prelude::*;
use yimen_mappings::ids::{
    CreditCode, Gender, IdError, ResidentId, credit_code_check_char, org_code_check_char,
    resident_id_check_char,
};

#[test]
fn valid_resident_ids_pass() {
    for number in [
        "11010519491231002X",
        "360426199101010071",
        "44011320141005001X",
        "110105195001010039",
    ] {
        let id = ResidentId::parse(number).unwrap_or_else(|e| panic!("{number}: {e}"));
        assert_eq!(id.as_str(), number);
    }
}

#[test]
fn lower_case_x_is_accepted_and_canonicalised() {
    let id = ResidentId::parse("11010519491231002x").unwrap();
    assert_eq!(id.as_str(), "11010519491231002X");
    assert_eq!(id.to_string(), "11010519491231002X");
}

#[test]
fn wrong_check_character_is_reported() {
    assert_eq!(
        ResidentId::parse("36042619910102009X"),
        Err(IdError::CheckCharacter {
            expected: '3',
            found: 'X'
        })
    );
}

#[test]
fn month_thirteen_is_reported_even_when_the_check_passes() {
    assert_eq!(
        ResidentId::parse("360426199113010079"),
        Err(IdError::BirthDate)
    );
}

#[test]
fn impossible_and_out_of_range_dates_are_rejected() {
    for first17 in [
        "36042619910230007",
        "36042618991231007",
        "36042621010101007",
    ] {
        let check = resident_id_check_char(first17).unwrap();
        let number = format!("{first17}{check}");
        assert_eq!(
            ResidentId::parse(&number),
            Err(IdError::BirthDate),
            "{number}"
        );
    }
    let leap = format!(
        "44060420000229006{}",
        resident_id_check_char("44060420000229006").unwrap()
    );
    assert!(ResidentId::parse(&leap).is_ok());
}

#[test]
fn division_code_must_not_start_with_zero() {
    let first17 = "04042619910101007";
    let number = format!("{first17}{}", resident_id_check_char(first17).unwrap());
    assert_eq!(ResidentId::parse(&number), Err(IdError::DivisionCode));
}

#[test]
fn retired_chancheng_division_codes_stay_valid() {
    for first17 in ["44060219650412003", "44060319720101001"] {
        let number = format!("{first17}{}", resident_id_check_char(first17).unwrap());
        let id = ResidentId::parse(&number).unwrap();
        assert_eq!(id.division_code(), &first17[..6]);
    }
}

#[test]
fn length_and_characters_are_reported_with_position() {
    assert_eq!(
        ResidentId::parse("11010519491231002"),
        Err(IdError::Length {
            expected: 18,
            found: 17
        })
    );
    assert!(matches!(
        ResidentId::parse("1101051949123100X2"),
        Err(IdError::Character {
            position: 17,
            found: 'X',
            ..
        })
    ));
    assert!(matches!(
        ResidentId::parse("11010519491231002Ｘ"),
        Err(IdError::Character { position: 18, .. })
    ));
}

#[test]
fn birth_date_gender_and_age_are_derived() {
    let id = ResidentId::parse("11010519491231002X").unwrap();
    assert_eq!(id.birth_date(), date(1949, 12, 31));
    assert_eq!(id.gender(), Gender::Female);
    assert_eq!(id.gender().gb_code(), "2");
    assert_eq!(id.age_on(date(2026, 12, 30)), 76);
    assert_eq!(id.age_on(date(2026, 12, 31)), 77);
    let male = ResidentId::parse("360426199101010071").unwrap();
    assert_eq!(male.gender(), Gender::Male);
    assert_eq!(male.birth_date(), date(1991, 1, 1));
    assert_eq!(male.age_on(date(1990, 1, 1)), 0);
}

#[test]
fn error_messages_do_not_repeat_the_birth_date() {
    let message = ResidentId::parse("360426199113010079")
        .unwrap_err()
        .to_string();
    assert!(!message.contains("19911301"), "{message}");
    assert_eq!(
        message,
        "birth date (positions 7-14) is not a real calendar date between 1900-01-01 and 2100-12-31"
    );
}

#[test]
fn valid_credit_codes_pass() {
    for code in [
        "91110000600037341L",
        "91350100M000100Y43",
        "91310115591693856A",
        "9144060573144633XL",
    ] {
        let parsed = CreditCode::parse(code).unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!(parsed.as_str(), code);
    }
    let code = CreditCode::parse("9144060573144633xl").unwrap();
    assert_eq!(code.as_str(), "9144060573144633XL");
    assert_eq!(code.division_code(), "440605");
    assert_eq!(code.org_code(), "73144633X");
}

#[test]
fn invalid_credit_codes_are_reported() {
    assert_eq!(
        CreditCode::parse("91110000600037341N"),
        Err(IdError::CheckCharacter {
            expected: 'L',
            found: 'N'
        })
    );
    assert!(matches!(
        CreditCode::parse("9111000060003IOZSV"),
        Err(IdError::Character {
            position: 14,
            found: 'I',
            ..
        })
    ));
    assert_eq!(
        CreditCode::parse("9111000060003734"),
        Err(IdError::Length {
            expected: 18,
            found: 16
        })
    );
}

#[test]
fn inner_organisation_code_is_checked() {
    // Outer check recomputed so only the inner GB 11714 check fails.
    let first17 = "91110000600037342";
    let code = format!("{first17}{}", credit_code_check_char(first17).unwrap());
    assert_eq!(
        CreditCode::parse(&code),
        Err(IdError::OrgCodeCheck {
            expected: '1',
            found: '2'
        })
    );
    assert_eq!(org_code_check_char("73144633"), Some('X'));
    assert_eq!(org_code_check_char("60003734"), Some('1'));
    assert_eq!(org_code_check_char("6000373"), None);
}

#[test]
fn sample_case_numbers_are_valid() {
    for number in [
        "440604195803150022",
        "440604194007080049",
        "440602196504120036",
        "440604199006220057",
        "440604198811030075",
        "440604197509190022",
        "440604199212250046",
        "440603197201010017",
    ] {
        ResidentId::parse(number).unwrap_or_else(|e| panic!("{number}: {e}"));
    }
    for code in [
        "91440604MA4UR5K26F",
        "92440604MA4W7T3E4N",
        "91440604MA51X9QH6A",
        "914406043150568777",
        "91440604MA4XKL2B32",
    ] {
        CreditCode::parse(code).unwrap_or_else(|e| panic!("{code}: {e}"));
    }
}

/// Valid resident ID numbers: any division code not starting with 0, any real date in range.
fn resident_ids() -> impl Strategy<Value = String> {
    (100_000u32..1_000_000, 0i32..73_049, 0u32..1000).prop_map(|(division, days, sequence)| {
        let birth = date(1900, 1, 1)
            .checked_add(jiff::Span::new().days(days))
            .unwrap();
        let first17 = format!("{division}{}{sequence:03}", birth.strftime("%Y%m%d"));
        format!("{first17}{}", resident_id_check_char(&first17).unwrap())
    })
}

const CREDIT_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Valid credit codes: free first two characters, digits for the division, a valid inner org code.
fn credit_codes() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = CREDIT_ALPHABET.chars().collect();
    let symbol = proptest::sample::select(alphabet);
    (
        symbol.clone(),
        symbol.clone(),
        0u32..1_000_000,
        proptest::collection::vec(symbol, 8),
    )
        .prop_map(|(a, b, division, body)| {
            let body: String = body.into_iter().collect();
            let org = format!("{body}{}", org_code_check_char(&body).unwrap());
            let first17 = format!("{a}{b}{division:06}{org}");
            format!("{first17}{}", credit_code_check_char(&first17).unwrap())
        })
}

proptest! {
    #[test]
    fn generated_resident_ids_pass(number in resident_ids()) {
        let id = ResidentId::parse(&number).unwrap();
        prop_assert_eq!(id.as_str(), number.as_str());
        prop_assert_eq!(id.birth_date().strftime("%Y%m%d").to_string(), &number[6..14]);
    }

    #[test]
    fn any_single_change_to_a_resident_id_fails(
        number in resident_ids(),
        position in 0usize..18,
        replacement in proptest::sample::select("0123456789X".chars().collect::<Vec<_>>()),
    ) {
        let mut chars: Vec<char> = number.chars().collect();
        prop_assume!(chars[position] != replacement);
        chars[position] = replacement;
        let changed: String = chars.into_iter().collect();
        prop_assert!(ResidentId::parse(&changed).is_err(), "{} accepted", changed);
    }

    #[test]
    fn generated_credit_codes_pass(code in credit_codes()) {
        let parsed = CreditCode::parse(&code).unwrap();
        prop_assert_eq!(parsed.as_str(), code.as_str());
    }

    #[test]
    fn any_single_change_to_a_credit_code_fails(
        code in credit_codes(),
        position in 0usize..18,
        replacement in proptest::sample::select("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".chars().collect::<Vec<_>>()),
    ) {
        let mut chars: Vec<char> = code.chars().collect();
        prop_assume!(chars[position] != replacement);
        chars[position] = replacement;
        let changed: String = chars.into_iter().collect();
        prop_assert!(CreditCode::parse(&changed).is_err(), "{} accepted", changed);
    }
}
