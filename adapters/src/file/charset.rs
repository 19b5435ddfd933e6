//! Strict decoding of receipt files: never a replacement character, so a wrong encoding is an
//! error (and a quarantined file), not silently garbled text.

use encoding_rs::Encoding;

/// Decodes strictly: in the encoding the XML declaration names when the bytes are valid in it
/// (a 前置机 may answer in GB18030 whatever the setting says), else in the configured one (legacy
/// systems write GBK under a `UTF-8` declaration).
pub fn decode(bytes: &[u8], configured: &'static Encoding) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return encoding_rs::UTF_8
            .decode_without_bom_handling_and_without_replacement(rest)
            .map(|t| t.into_owned())
            .ok_or_else(|| "starts with a UTF-8 byte order mark but is not UTF-8".to_owned());
    }
    let declared = declared_encoding(bytes);
    for encoding in declared.into_iter().chain([configured]) {
        if let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(bytes) {
            return Ok(text.into_owned());
        }
    }
    Err(match declared {
        Some(d) if d != configured => format!(
            "not valid {} text (nor {} as declared)",
            configured.name(),
            d.name()
        ),
        _ => format!("not valid {} text", configured.name()),
    })
}

/// The encoding an `<?xml … encoding="…"?>` declaration at the start names, if known.
pub fn declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes.get(..bytes.len().min(200))?;
    let head = std::str::from_utf8(head).ok().or_else(|| {
        head.iter()
            .position(|b| !b.is_ascii())
            .and_then(|end| std::str::from_utf8(&head[..end]).ok())
    })?;
    let decl = head.strip_prefix("<?xml")?;
    let decl = &decl[..decl.find("?>")?];
    let after = &decl[decl.find("encoding")? + "encoding".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let value = &after[1..];
    let label = &value[..value.find(quote)?];
    super::config::receipt_encoding(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb(text: &str) -> Vec<u8> {
        encoding_rs::GB18030.encode(text).0.into_owned()
    }

    #[test]
    fn the_declaration_wins_when_the_bytes_fit_it() {
        let receipt = gb("<?xml version=\"1.0\" encoding=\"GB18030\"?><R>已受理</R>");
        let text = decode(&receipt, encoding_rs::UTF_8).unwrap();
        assert!(text.contains("已受理"));
    }

    #[test]
    fn a_wrong_utf8_declaration_falls_back_to_the_setting() {
        let receipt = gb("<?xml version='1.0' encoding='UTF-8'?><R>审查中</R>");
        let text = decode(&receipt, encoding_rs::GB18030).unwrap();
        assert!(text.contains("审查中"));
    }

    #[test]
    fn undecodable_bytes_are_an_error() {
        let err = decode(b"<R>\x81\x20</R>", encoding_rs::GB18030).unwrap_err();
        assert!(err.contains("gb18030"), "{err}");
        assert!(decode(b"\xEF\xBB\xBF\xff", encoding_rs::GB18030).is_err());
        assert_eq!(
            declared_encoding(b"<?xml version=\"1.0\" encoding=\"klingon\"?>"),
            None
        );
        assert_eq!(declared_encoding(b"<R/>"), None);
    }
}
