//! Values derived from a resident ID number (GB 11643): birth date, gender, age.
//!
//! 18-character numbers carry the birth date at positions 7–14 and the sex in the 17th digit
//! (odd = male); the retired 15-digit form carries `YYMMDD` (19YY) at 7–12 and the sex in the
//! 15th digit. Anything else (a passport number, a malformed number) derives nothing: the field
//! is then absent, and its `default` or `required` applies. Check digits are the case
//! validator's business, not this module's.

use jiff::civil::Date;
use serde_json::Value;

use crate::mapping::Derive;

/// The derived value, or `None` when `id` is not a resident ID number.
pub(crate) fn derive(kind: Derive, id: &str, on: Date) -> Option<Value> {
    let (birth, sex_digit) = parse(id)?;
    Some(match kind {
        Derive::BirthDate => Value::String(birth.to_string()),
        Derive::Gender => Value::String(if sex_digit % 2 == 1 { "1" } else { "2" }.to_owned()),
        Derive::Age => {
            let mut age = i64::from(on.year()) - i64::from(birth.year());
            if (on.month(), on.day()) < (birth.month(), birth.day()) {
                age -= 1;
            }
            Value::from(age.max(0))
        }
    })
}

fn parse(id: &str) -> Option<(Date, u8)> {
    let bytes = id.as_bytes();
    let (year, rest, sex) = match bytes.len() {
        18 if bytes[..17].iter().all(u8::is_ascii_digit) => {
            (digits(&bytes[6..10])?, &bytes[10..14], bytes[16] - b'0')
        }
        15 if bytes.iter().all(u8::is_ascii_digit) => (
            1900 + digits(&bytes[6..8])?,
            &bytes[8..12],
            bytes[14] - b'0',
        ),
        _ => return None,
    };
    let month = digits(&rest[..2])?;
    let day = digits(&rest[2..])?;
    let date = Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()?;
    Some((date, sex))
}

fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_from_18_and_15_digit_numbers() {
        let on = jiff::civil::date(2026, 11, 23);
        let id = "11010519491231002X";
        assert_eq!(
            derive(Derive::BirthDate, id, on),
            Some(Value::from("1949-12-31"))
        );
        assert_eq!(derive(Derive::Gender, id, on), Some(Value::from("2")));
        assert_eq!(derive(Derive::Age, id, on), Some(Value::from(76)));
        assert_eq!(
            derive(Derive::Gender, "360426199101010071", on),
            Some(Value::from("1"))
        );
        assert_eq!(
            derive(Derive::Age, "440604194011230049", on),
            Some(Value::from(86))
        );
        assert_eq!(
            derive(Derive::Age, "440604194011240049", on),
            Some(Value::from(85))
        );
        assert_eq!(
            derive(Derive::BirthDate, "110105491231002", on),
            Some(Value::from("1949-12-31"))
        );
        assert_eq!(derive(Derive::BirthDate, "360426199113010079", on), None);
        assert_eq!(derive(Derive::Gender, "E12345678", on), None);
    }
}
