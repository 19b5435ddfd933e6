//! Identity numbers and their check characters.
//!
//! - [`ResidentId`]: the 18-character resident identity number (GB 11643-1999): 6-digit division
//!   code, birth date `YYYYMMDD`, 3-digit sequence (odd = male), and a check character computed
//!   with weights `7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2` as `"10X98765432"[sum mod 11]`.
//! - [`CreditCode`]: the 18-character unified social credit code (GB 32100-2015) whose
//!   positions 9..17 are an organisation code (GB 11714) with its own check character.
//!
//! Invariants: a value of either type holds the canonical form (upper-case check character) and
//! passed every check; the division code of a resident ID is not checked against the current
//! GB/T 2260 list, because retired codes (such as 440602 and 440603) stay valid in issued IDs.
//! Error messages never repeat the number or the birth date, so they are safe to log.

use std::fmt;

use jiff::civil::Date;

/// Weights of positions 1..17 of a resident ID number.
const RESIDENT_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check characters of a resident ID number, indexed by the weighted sum mod 11.
const RESIDENT_CHECK: &[u8; 11] = b"10X98765432";
/// The 31 characters a credit code may hold, in value order (no I, O, S, V, Z).
const CREDIT_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of positions 1..17 of a credit code.
const CREDIT_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
/// Weights of the 8 body characters of an organisation code (GB 11714).
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// Earliest birth date a resident ID may carry.
const EARLIEST_BIRTH: Date = Date::constant(1900, 1, 1);
/// Latest birth date a resident ID may carry.
const LATEST_BIRTH: Date = Date::constant(2100, 12, 31);

/// What is wrong with an identity number. Positions are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Wrong number of characters.
    #[error("must be {expected} characters long, found {found}")]
    Length {
        /// Required length.
        expected: usize,
        /// Actual length in characters.
        found: usize,
    },
    /// A character not allowed at its position.
    #[error("character {position} ({found:?}) is not allowed there: {allowed}")]
    Character {
        /// 1-based position.
        position: usize,
        /// The offending character.
        found: char,
        /// What the position allows.
        allowed: &'static str,
    },
    /// The division code part of a resident ID starts with 0.
    #[error("division code (positions 1-6) must not start with 0")]
    DivisionCode,
    /// The birth date part of a resident ID is not a real date in range.
    #[error(
        "birth date (positions 7-14) is not a real calendar date between 1900-01-01 and 2100-12-31"
    )]
    BirthDate,
    /// The final check character does not match the first 17.
    #[error("check character (position 18) is {found}, expected {expected}")]
    CheckCharacter {
        /// The check character the first 17 positions call for.
        expected: char,
        /// The check character given.
        found: char,
    },
    /// The organisation code inside a credit code fails its own check (GB 11714).
    #[error("organisation code check character (position 17) is {found}, expected {expected}")]
    OrgCodeCheck {
        /// The check character positions 9..16 call for.
        expected: char,
        /// The check character given.
        found: char,
    },
}

/// Sex as a resident ID encodes it (odd sequence = male).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// Odd sequence number.
    Male,
    /// Even sequence number.
    Female,
}

impl Gender {
    /// The GB/T 2261.1 code: `"1"` male, `"2"` female.
    pub fn gb_code(self) -> &'static str {
        match self {
            Gender::Male => "1",
            Gender::Female => "2",
        }
    }
}

/// A checked resident identity number (GB 11643-1999), in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResidentId {
    number: String,
    birth_date: Date,
}

impl ResidentId {
    /// Checks `number` (lower-case `x` accepted) and returns it in canonical form.
    pub fn parse(number: &str) -> Result<Self, IdError> {
        let chars: Vec<char> = number.chars().collect();
        if chars.len() != 18 {
            return Err(IdError::Length {
                expected: 18,
                found: chars.len(),
            });
        }
        for (index, &c) in chars.iter().enumerate() {
            let ok = c.is_ascii_digit() || (index == 17 && matches!(c, 'x' | 'X'));
            if !ok {
                let allowed = if index == 17 {
                    "a digit or X"
                } else {
                    "a digit"
                };
                return Err(IdError::Character {
                    position: index + 1,
                    found: c,
                    allowed,
                });
            }
        }
        let canonical: String = chars.iter().map(char::to_ascii_uppercase).collect();
        let bytes = canonical.as_bytes();
        if bytes[0] == b'0' {
            return Err(IdError::DivisionCode);
        }
        let birth_date = parse_birth_date(&bytes[6..14]).ok_or(IdError::BirthDate)?;
        let expected = resident_id_check_char(&canonical[..17]).ok_or(IdError::Character {
            position: 1,
            found: chars[0],
            allowed: "a digit",
        })?;
        let found = char::from(bytes[17]);
        if found != expected {
            return Err(IdError::CheckCharacter { expected, found });
        }
        Ok(Self {
            number: canonical,
            birth_date,
        })
    }

    /// The canonical number (upper-case `X`).
    pub fn as_str(&self) -> &str {
        &self.number
    }

    /// The division code of the place of first registration (may be a retired code).
    pub fn division_code(&self) -> &str {
        &self.number[..6]
    }

    /// The birth date.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// The sex encoded by the parity of the sequence number.
    pub fn gender(&self) -> Gender {
        if self.number.as_bytes()[16] % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// Completed years of age on `today` (0 when `today` is before the birth date).
    pub fn age_on(&self, today: Date) -> u32 {
        let birth = self.birth_date;
        let mut years = i32::from(today.year()) - i32::from(birth.year());
        if (today.month(), today.day()) < (birth.month(), birth.day()) {
            years -= 1;
        }
        u32::try_from(years).unwrap_or(0)
    }
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.number)
    }
}

/// A checked unified social credit code (GB 32100-2015), in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditCode(String);

impl CreditCode {
    /// Checks `code` (lower-case letters accepted) and returns it in canonical form.
    pub fn parse(code: &str) -> Result<Self, IdError> {
        let chars: Vec<char> = code.chars().collect();
        if chars.len() != 18 {
            return Err(IdError::Length {
                expected: 18,
                found: chars.len(),
            });
        }
        let canonical: String = chars.iter().map(char::to_ascii_uppercase).collect();
        for (index, c) in canonical.chars().enumerate() {
            if credit_value(c).is_none() {
                let allowed = "0-9 or A-Z without I, O, S, V, Z";
                return Err(IdError::Character {
                    position: index + 1,
                    found: chars[index],
                    allowed,
                });
            }
            if (2..8).contains(&index) && !c.is_ascii_digit() {
                let allowed = "a digit (positions 3-8 are a division code)";
                return Err(IdError::Character {
                    position: index + 1,
                    found: chars[index],
                    allowed,
                });
            }
        }
        let expected = credit_code_check_char(&canonical[..17]).ok_or(IdError::Length {
            expected: 18,
            found: chars.len(),
        })?;
        let found = chars[17].to_ascii_uppercase();
        if found != expected {
            return Err(IdError::CheckCharacter { expected, found });
        }
        let org_expected = org_code_check_char(&canonical[8..16]).ok_or(IdError::OrgCodeCheck {
            expected: '?',
            found: chars[16],
        })?;
        let org_found = char::from(canonical.as_bytes()[16]);
        if org_found != org_expected {
            return Err(IdError::OrgCodeCheck {
                expected: org_expected,
                found: org_found,
            });
        }
        Ok(Self(canonical))
    }

    /// The canonical code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The division code of the registering authority (positions 3..8).
    pub fn division_code(&self) -> &str {
        &self.0[2..8]
    }

    /// The organisation code with its check character (positions 9..17).
    pub fn org_code(&self) -> &str {
        &self.0[8..17]
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The check character for the first 17 digits of a resident ID, or `None` if any is not a digit.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, weight) in first17.chars().zip(RESIDENT_WEIGHTS) {
        sum += c.to_digit(10)? * weight;
    }
    Some(char::from(RESIDENT_CHECK[(sum % 11) as usize]))
}

/// The check character for the first 17 characters of a credit code, or `None` if any is outside
/// the credit-code alphabet.
pub fn credit_code_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, weight) in first17.chars().zip(CREDIT_WEIGHTS) {
        sum += credit_value(c)? * weight;
    }
    Some(char::from(CREDIT_ALPHABET[((31 - sum % 31) % 31) as usize]))
}

/// The GB 11714 check character for the 8-character body of an organisation code (digits and
/// upper-case letters, A = 10 … Z = 35), or `None` if any character is outside that set.
pub fn org_code_check_char(body8: &str) -> Option<char> {
    if body8.len() != 8 {
        return None;
    }
    let mut sum = 0;
    for (c, weight) in body8.chars().zip(ORG_WEIGHTS) {
        let value = match c {
            '0'..='9' | 'A'..='Z' => c.to_digit(36)?,
            _ => return None,
        };
        sum += value * weight;
    }
    Some(match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        digit => char::from_digit(digit, 10)?,
    })
}

/// The value of a credit-code character (its index in the alphabet).
fn credit_value(c: char) -> Option<u32> {
    let byte = u8::try_from(c).ok()?;
    CREDIT_ALPHABET
        .iter()
        .position(|&a| a == byte)
        .and_then(|p| u32::try_from(p).ok())
}

/// Parses `YYYYMMDD` (ASCII digits) into a date within the accepted birth range.
fn parse_birth_date(digits: &[u8]) -> Option<Date> {
    let number = |range: std::ops::Range<usize>| -> Option<i16> {
        std::str::from_utf8(digits.get(range)?).ok()?.parse().ok()
    };
    let year = number(0..4)?;
    let month = i8::try_from(number(4..6)?).ok()?;
    let day = i8::try_from(number(6..8)?).ok()?;
    let date = Date::new(year, month, day).ok()?;
    (EARLIEST_BIRTH..=LATEST_BIRTH)
        .contains(&date)
        .then_some(date)
}
