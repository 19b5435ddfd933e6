//! Shape checks for single values of a case: phones, division codes, digests, document numbers.
//!
//! Each function answers `Err(message)` with a lower-case message that never repeats the value,
//! because values here are personal data.

use crate::ids::{CreditCode, ResidentId};

use super::IdType;

/// Mobile `1[3-9]` + 9 digits; a fixed line `0` + 2–3 digit area code, optional `-`, 7–8
/// digits, optional `-` extension of 1–6 digits; or an international number `+` country code and
/// number (8–15 digits in all, single `-` or spaces between groups), as for applicants from Hong
/// Kong, Macao, Taiwan or abroad.
pub(crate) fn phone(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let is_mobile = bytes.len() == 11
        && bytes[0] == b'1'
        && (b'3'..=b'9').contains(&bytes[1])
        && bytes.iter().all(u8::is_ascii_digit);
    if is_mobile || is_fixed_line(value) || is_international(value) {
        Ok(())
    } else {
        Err(
            "must be a mobile number (11 digits starting 13-19), a fixed line with area code \
             (such as 0757-82781234) or an international number starting with + (such as \
             +852-91234567)"
                .to_owned(),
        )
    }
}

/// `+` country code and number: 8–15 digits, groups separated by one `-` or space.
fn is_international(value: &str) -> bool {
    let Some(rest) = value.strip_prefix('+') else {
        return false;
    };
    let groups: Vec<&str> = rest.split(['-', ' ']).collect();
    let digits: usize = groups.iter().map(|group| group.len()).sum();
    groups
        .iter()
        .all(|group| !group.is_empty() && group.bytes().all(|b| b.is_ascii_digit()))
        && !rest.starts_with('0')
        && (8..=15).contains(&digits)
}

/// Fixed line with area code: `0AA(A)[-]NNNNNNN(N)[-EXT]`.
fn is_fixed_line(value: &str) -> bool {
    let mut parts = value.split('-');
    let first = parts.next().unwrap_or_default();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (area, local, extension) = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => {
            // No separator: area code and local number run together (10–12 digits).
            if !all_digits(first) || !(10..=12).contains(&first.len()) {
                return false;
            }
            return first.starts_with('0') && !first.starts_with("00");
        }
        (Some(local), extension, None) => (first, local, extension),
        _ => return false,
    };
    all_digits(area)
        && (3..=4).contains(&area.len())
        && area.starts_with('0')
        && !area.starts_with("00")
        && all_digits(local)
        && (7..=8).contains(&local.len())
        && !local.starts_with('0')
        && extension.is_none_or(|ext| all_digits(ext) && ext.len() <= 6)
}

/// GB/T 2260 division code: 6 digits (county) or 9 digits (township), not starting with 0.
pub(crate) fn division_code(value: &str) -> Result<(), String> {
    let digits = value.bytes().all(|b| b.is_ascii_digit());
    if !digits || !(value.len() == 6 || value.len() == 9) {
        return Err("must be a division code of 6 or 9 digits".to_owned());
    }
    if value.starts_with('0') {
        return Err("division code must not start with 0".to_owned());
    }
    Ok(())
}

/// SHA-256 digest: 64 lower-case hex digits.
pub(crate) fn sha256(value: &str) -> Result<(), String> {
    let ok = value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err("must be 64 lower-case hex digits (a SHA-256 digest)".to_owned())
    }
}

/// Media type `type/subtype` (ASCII, no spaces).
pub(crate) fn media_type(value: &str) -> Result<(), String> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match value.split_once('/') {
        Some((kind, subtype)) if token(kind) && token(subtype) => Ok(()),
        _ => Err("must be a media type such as application/pdf".to_owned()),
    }
}

/// Identity document number for `id_type`: a full check for resident IDs, shape for the rest.
/// Returns the resident ID when it is one, for checks that need the birth date.
pub(crate) fn id_number(id_type: IdType, value: &str) -> Result<Option<ResidentId>, String> {
    let upper_alnum = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = match id_type {
        IdType::ResidentId => {
            return ResidentId::parse(value)
                .map(Some)
                .map_err(|error| error.to_string());
        }
        IdType::Passport => (5..=17).contains(&value.len()) && upper_alnum(value),
        IdType::HkMacaoPermit => {
            let rest = value.strip_prefix(['H', 'M']).unwrap_or("-");
            (rest.len() == 8 || rest.len() == 10) && digits(rest)
        }
        IdType::TaiwanPermit => (value.len() == 8 || value.len() == 10) && digits(value),
        IdType::ForeignPermanentResident => {
            let old = value.len() == 15
                && value.bytes().take(3).all(|b| b.is_ascii_uppercase())
                && value.get(3..).is_some_and(digits);
            let new = value.len() == 18
                && value.starts_with('9')
                && value.get(..17).is_some_and(digits)
                && matches!(value.as_bytes()[17], b'0'..=b'9' | b'X');
            old || new
        }
    };
    if ok {
        Ok(None)
    } else {
        Err(id_shape_message(id_type).to_owned())
    }
}

/// What a document number of `id_type` must look like.
fn id_shape_message(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "must be an 18-character resident ID number",
        IdType::Passport => "must be a passport number of 5-17 letters and digits",
        IdType::HkMacaoPermit => "must be H or M followed by 8 or 10 digits",
        IdType::TaiwanPermit => "must be 8 or 10 digits",
        IdType::ForeignPermanentResident => {
            "must be 3 letters and 12 digits, or 18 characters starting with 9"
        }
    }
}

/// Unified social credit code with its inner organisation-code check.
pub(crate) fn credit_code(value: &str) -> Result<(), String> {
    CreditCode::parse(value)
        .map(|_| ())
        .map_err(|error| error.to_string())
}
