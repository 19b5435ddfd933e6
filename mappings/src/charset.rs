//! Charsets line systems take, and the check that a text fits one.
//!
//! GB18030 holds every Unicode scalar value (encoding_rs refuses only U+E5E5, which the check
//! reports like any other). GBK is smaller than what encoding_rs's `GBK` encoder emits: that
//! encoder is GB18030's two-byte table, which also maps characters real GBK (CP936) systems do
//! not have, such as 䶮 (U+4DAE) at FE9F. [`Charset::first_unencodable`] therefore also refuses
//! the two-byte code points GB18030 added to GBK (A2E3, A6D9–A6DF, A6EC–A6ED, A6F3, A8BC, A8BF,
//! A989–A995, FE50–FEA0). Invariant: text that passes the check encodes without replacement.

use std::fmt;

use std::sync::atomic::{AtomicU64, Ordering};

use encoding_rs::{EncoderResult, GB18030};
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

    /// The bytes of one character in this charset, or `None` when it cannot hold it.
    fn encode_char(self, c: char) -> Option<Code> {
        if c.is_ascii() {
            return Some(Code::one(c as u8));
        }
        match self {
            Charset::Utf8 => {
                let mut buf = [0u8; 4];
                let len = c.encode_utf8(&mut buf).len();
                Some(Code { bytes: buf, len })
            }
            Charset::Gb18030 => gb18030(c),
            Charset::Gbk => {
                if c == '\u{20AC}' {
                    return Some(Code::one(0x80));
                }
                gb18030(c)
                    .filter(|code| code.len == 2 && !gb18030_addition(code.bytes[0], code.bytes[1]))
            }
        }
    }

    /// Whether the charset holds `c`.
    pub fn can_encode(self, c: char) -> bool {
        self == Charset::Utf8 || self.encode_char(c).is_some()
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
        if self == Charset::Utf8 || text.is_ascii() {
            return Ok(text.as_bytes().to_vec());
        }
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            let code = self.encode_char(c).ok_or(c)?;
            out.extend_from_slice(&code.bytes[..code.len]);
        }
        Ok(out)
    }
}

/// One character's bytes.
#[derive(Debug, Clone, Copy)]
struct Code {
    bytes: [u8; 4],
    len: usize,
}

impl Code {
    fn one(b: u8) -> Code {
        Code {
            bytes: [b, 0, 0, 0],
            len: 1,
        }
    }
}

/// GB18030 codes of BMP characters, filled on first use: encoding_rs's legacy CJK encoders
/// favour size over speed (a table search per character), which made a document of a few
/// hundred Chinese characters cost hundreds of microseconds. Entry layout: 0 = not looked up
/// yet; else bits 0–31 the bytes (first byte lowest), bits 32–34 the length, 7 = unencodable.
static GB18030_BMP: [AtomicU64; 0x10000] = [const { AtomicU64::new(0) }; 0x10000];
const UNENCODABLE: u64 = 7;

fn gb18030(c: char) -> Option<Code> {
    let Ok(index) = u16::try_from(u32::from(c)) else {
        return lookup_gb18030(c);
    };
    let slot = &GB18030_BMP[usize::from(index)];
    let packed = slot.load(Ordering::Relaxed);
    if packed != 0 {
        let len = packed >> 32;
        if len == UNENCODABLE {
            return None;
        }
        let bytes = (packed as u32).to_le_bytes();
        return Some(Code {
            bytes,
            len: len as usize,
        });
    }
    let code = lookup_gb18030(c);
    let packed = match code {
        Some(code) => (code.len as u64) << 32 | u64::from(u32::from_le_bytes(code.bytes)),
        None => UNENCODABLE << 32,
    };
    slot.store(packed, Ordering::Relaxed);
    code
}

fn lookup_gb18030(c: char) -> Option<Code> {
    let mut utf8 = [0u8; 4];
    let text = c.encode_utf8(&mut utf8);
    let mut bytes = [0u8; 4];
    let mut encoder = GB18030.new_encoder();
    let (result, _, written) = encoder.encode_from_utf8_without_replacement(text, &mut bytes, true);
    match result {
        EncoderResult::InputEmpty if written > 0 => Some(Code {
            bytes,
            len: written,
        }),
        _ => None,
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
    fn fast_encoding_agrees_with_encoding_rs() {
        let text: String = (0x80u32..0x3_0000)
            .filter_map(char::from_u32)
            .filter(|&c| c != '\u{E5E5}')
            .collect();
        let ours = Charset::Gb18030.encode(&text);
        let (theirs, _, _) = encoding_rs::GB18030.encode(&text);
        assert_eq!(ours.ok().as_deref(), Some(&*theirs));
        for c in (0x80u32..0x1_0000).filter_map(char::from_u32) {
            if let Some(code) = Charset::Gbk.encode_char(c) {
                let mut utf8 = [0; 4];
                let (theirs, _, unmappable) = encoding_rs::GBK.encode(c.encode_utf8(&mut utf8));
                assert!(!unmappable, "{c}");
                assert_eq!(&code.bytes[..code.len], &*theirs, "{c}");
            }
        }
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
