//! Charsets line systems take, and the check that a text fits one.
//!
//! GB18030 holds every Unicode scalar value (encoding_rs refuses only U+E5E5, which the check
//! reports like any other). GBK is smaller than what encoding_rs's `GBK` encoder emits: that
//! encoder is GB18030's two-byte table, which also maps characters real GBK (CP936) systems do
//! not have, such as 䶮 (U+4DAE) at FE9F. [`Charset::first_unencodable`] therefore also refuses
//! the two-byte code points GB18030 added to GBK (A2E3, A6D9–A6DF, A6EC–A6ED, A6F3, A8BC, A8BF,
//! A989–A995, FE50–FEA0). Invariant: text that passes the check encodes without replacement.

use std::fmt;

use encoding_rs::{EncoderResult, Encoding, GB18030, GBK, UTF_8};
use serde::Deserialize;

/// The charset a document body is encoded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum Charset {
    /// UTF-8 (the default).
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// GBK (CP936): most legacy systems; characters outside it must not be sent.
    #[serde(rename = "gbk")]
    Gbk,
    /// GB 18030 (mandatory since 2023-08-01): holds every character.
    #[serde(rename = "gb18030")]
    Gb18030,
}

/// What to do with a character the charset cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unencodable {
    /// Rendering fails, naming the field and the character (the default).
    #[default]
    Error,
    /// The character is written as an XML numeric character reference (xml shape only).
    Ncr,
}

impl Charset {
    /// The label used in Content-Type and the XML declaration.
    pub fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Gbk => "GBK",
            Charset::Gb18030 => "GB18030",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            Charset::Utf8 => UTF_8,
            Charset::Gbk => GBK,
            Charset::Gb18030 => GB18030,
        }
    }

    /// Whether the charset holds `c`.
    pub fn can_encode(self, c: char) -> bool {
        if c.is_ascii() || self == Charset::Utf8 {
            return true;
        }
        let mut utf8 = [0u8; 4];
        let text = c.encode_utf8(&mut utf8);
        let mut out = [0u8; 8];
        let mut encoder = self.encoding().new_encoder();
        let (result, _, written) =
            encoder.encode_from_utf8_without_replacement(text, &mut out, true);
        if !matches!(result, EncoderResult::InputEmpty) {
            return false;
        }
        match self {
            Charset::Gbk => written == 1 || (written == 2 && !gb18030_addition(out[0], out[1])),
            _ => true,
        }
    }

    /// The first character of `text` the charset cannot hold, if any.
    pub fn first_unencodable(self, text: &str) -> Option<char> {
        if text.is_ascii() || self == Charset::Utf8 {
            return None;
        }
        text.chars().find(|&c| !self.can_encode(c))
    }

    /// Encodes `text`; fails with the first character the charset cannot hold.
    pub fn encode(self, text: &str) -> Result<Vec<u8>, char> {
        if let Some(c) = self.first_unencodable(text) {
            return Err(c);
        }
        if self == Charset::Utf8 {
            return Ok(text.as_bytes().to_vec());
        }
        let mut encoder = self.encoding().new_encoder();
        let capacity = encoder
            .max_buffer_length_from_utf8_without_replacement(text.len())
            .unwrap_or(text.len().saturating_mul(4));
        let mut out = vec![0u8; capacity];
        let (result, _, written) =
            encoder.encode_from_utf8_without_replacement(text, &mut out, true);
        match result {
            EncoderResult::InputEmpty => {
                out.truncate(written);
                Ok(out)
            }
            EncoderResult::Unmappable(c) => Err(c),
            // The buffer was sized by the encoder's own worst case.
            EncoderResult::OutputFull => Ok(self.encoding().encode(text).0.into_owned()),
        }
    }
}

/// Two-byte GB18030 code points that GBK (CP936) lacks.
fn gb18030_addition(lead: u8, trail: u8) -> bool {
    let code = u16::from(lead) << 8 | u16::from(trail);
    matches!(code,
        0xA2E3 | 0xA6D9..=0xA6DF | 0xA6EC..=0xA6ED | 0xA6F3 | 0xA8BC | 0xA8BF
        | 0xA989..=0xA995 | 0xFE50..=0xFEA0)
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_refuses_characters_outside_cp936() {
        assert_eq!(Charset::Gbk.first_unencodable("王䶮"), Some('䶮'));
        assert_eq!(Charset::Gbk.first_unencodable("𠀀先生"), Some('𠀀'));
        assert_eq!(Charset::Gbk.first_unencodable("\u{FE10}"), Some('\u{FE10}'));
        assert_eq!(Charset::Gbk.first_unencodable("梁嘉欣 €é·"), None);
        assert_eq!(Charset::Gbk.encode("中").ok(), Some(vec![0xD6, 0xD0]));
    }

    #[test]
    fn gb18030_holds_everything_but_the_whatwg_hole() {
        assert_eq!(Charset::Gb18030.first_unencodable("王䶮𠀀"), None);
        assert_eq!(
            Charset::Gb18030.encode("𠀀").ok(),
            Some(vec![0x95, 0x32, 0x82, 0x36])
        );
        assert_eq!(Charset::Gb18030.encode("\u{E5E5}"), Err('\u{E5E5}'));
        assert_eq!(
            Charset::Utf8.encode("䶮").ok(),
            Some("䶮".as_bytes().to_vec())
        );
    }
}
