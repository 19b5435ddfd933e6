//! Excerpts of line-system answers for operators, and the masking every logged text goes through.
//!
//! Invariants: an excerpt is at most [`EXCERPT_LIMIT`] bytes (cut on a character boundary); it
//! never contains a configured secret, a resident ID number (18 characters, 17 digits and a digit
//! or `X`) or a mainland mobile number (11 digits starting `1[3-9]`) unmasked.

use crate::settings::Secret;

/// Longest excerpt kept, in bytes.
pub const EXCERPT_LIMIT: usize = 512;

/// Masks personal data and the given secrets, then caps the text at [`EXCERPT_LIMIT`] bytes.
pub fn excerpt(text: &str, secrets: &[&Secret]) -> String {
    let masked = mask(text, secrets);
    cap(&masked, EXCERPT_LIMIT)
}

/// Masks the given secrets (as `[redacted]`), resident ID numbers (`1101**********002X`) and
/// mobile numbers (`138****8000`) in a text of any length.
pub fn mask(text: &str, secrets: &[&Secret]) -> String {
    let mut out = std::borrow::Cow::Borrowed(text);
    for secret in secrets {
        let value = secret.expose();
        if !value.is_empty() && out.contains(value) {
            out = out.replace(value, "[redacted]").into();
        }
    }
    mask_personal_numbers(&out)
}

/// Cuts a text to at most `limit` bytes on a character boundary, marking the cut with `…`.
pub fn cap(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn mask_personal_numbers(text: &str) -> String {
    // By bytes: the digits and the `X` of an ID number are ASCII, and no byte of a multi-byte
    // UTF-8 character is, so every token starts and ends on a character boundary and the
    // characters around it are told apart by their bytes alone.
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let id_tail = run == 17 && matches!(bytes.get(i + 17), Some(b'X' | b'x'));
        let token_len = if id_tail { 18 } else { run };
        let next_is_word = bytes
            .get(i + token_len)
            .is_some_and(|b| b.is_ascii_alphanumeric());
        let is_id = token_len == 18 && !next_is_word;
        let is_phone = token_len == 11 && bytes[i] == b'1' && matches!(bytes[i + 1], b'3'..=b'9');
        let keep = if is_id {
            Some((4, 4))
        } else if is_phone {
            Some((3, 4))
        } else {
            None
        };
        if let Some((head, tail)) = keep {
            let token = &text[i..i + token_len];
            out.push_str(&text[copied..i]);
            out.push_str(&token[..head]);
            out.extend(std::iter::repeat_n('*', token_len - head - tail));
            out.push_str(&token[token_len - tail..]);
            copied = i + token_len;
        }
        i += token_len;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_and_phones_are_masked() {
        let text = "申请人身份证11010519491231002X，电话13800138000，编号L01-20261128-000001";
        let masked = mask(text, &[]);
        assert_eq!(
            masked,
            "申请人身份证1101**********002X，电话138****8000，编号L01-20261128-000001"
        );
    }

    /// The masking as first written, by characters: the reference for the one by bytes.
    fn first_mask(text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < chars.len() {
            if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_digit()) {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            let run = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let id_tail = run == 17 && matches!(chars.get(i + 17), Some('X' | 'x'));
            let token_len = if id_tail { 18 } else { run };
            let token = &chars[i..i + token_len];
            let next_is_word = chars
                .get(i + token_len)
                .is_some_and(|c| c.is_ascii_alphanumeric());
            let is_id = token_len == 18 && !next_is_word;
            let is_phone = token_len == 11 && token[0] == '1' && matches!(token[1], '3'..='9');
            let keep = if is_id {
                Some((4, 4))
            } else if is_phone {
                Some((3, 4))
            } else {
                None
            };
            match keep {
                Some((head, tail)) => {
                    out.extend(&token[..head]);
                    out.extend(std::iter::repeat_n('*', token_len - head - tail));
                    out.extend(&token[token_len - tail..]);
                }
                None => out.extend(token),
            }
            i += token_len;
        }
        out
    }

    #[test]
    fn masking_by_bytes_masks_what_masking_by_characters_did() {
        // Every mix of digit runs around the lengths that matter, `X`, letters, CJK and rare
        // characters, from a fixed pseudo-random sequence.
        let pieces = [
            "1",
            "13",
            "0",
            "X",
            "x",
            "a",
            "中",
            "𠀀",
            " ",
            "，",
            "-",
            "\n",
            "é",
            "9",
            "11010519491231002",
            "13800138000",
            "1380013800",
            "440106199001011234",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state % 12) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            state = state.wrapping_add(0x2545_F491_4F6C_DD1D);
            assert_eq!(mask(&text, &[]), first_mask(&text), "{text:?}");
        }
    }

    #[test]
    fn other_digit_runs_are_kept() {
        assert_eq!(
            mask("20261128 12345678901 123", &[]),
            "20261128 12345678901 123"
        );
        assert_eq!(
            mask("440106199001011234", &[]),
            "4401**********1234",
            "an all-digit ID number is masked too"
        );
    }

    #[test]
    fn secrets_are_removed_and_the_excerpt_is_capped_on_a_char_boundary() {
        let secret = Secret::new("tok-123");
        let long = format!("token=tok-123 {}", "字".repeat(400));
        let cut = excerpt(&long, &[&secret]);
        assert!(!cut.contains("tok-123"));
        assert!(cut.starts_with("token=[redacted] "));
        assert!(cut.len() <= EXCERPT_LIMIT);
        assert!(cut.ends_with('…'));
    }
}
