//! Text encodings of legacy line systems: labels, decoding and encoding.
//!
//! Anything labelled gb2312, gbk, cp936 or gb18030 is decoded with the GB18030 decoder (a
//! superset); answers are encoded in the system's own charset. Decoding never panics: invalid
//! bytes are an error naming the charset.

use encoding_rs::{Encoding, GB18030, GBK, UTF_8};

/// The encoding for a charset label; unknown labels fall back to UTF-8.
pub fn encoding_for(label: &str) -> &'static Encoding {
    match label.trim().to_ascii_lowercase().as_str() {
        "gbk" | "cp936" | "gb2312" | "x-gbk" | "windows-936" => GBK,
        "gb18030" => GB18030,
        other => Encoding::for_label(other.as_bytes()).unwrap_or(UTF_8),
    }
}

/// The canonical name to put in a Content-Type or XML declaration.
pub fn label(label: &str) -> &'static str {
    let encoding = encoding_for(label);
    if encoding == GBK {
        "GBK"
    } else if encoding == GB18030 {
        "GB18030"
    } else {
        "UTF-8"
    }
}

/// Decodes `bytes` in `charset` (GBK family through GB18030); invalid bytes are an error.
pub fn decode(bytes: &[u8], charset: &str) -> Result<String, String> {
    let mut encoding = encoding_for(charset);
    if encoding == GBK {
        encoding = GB18030;
    }
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(format!("body is not valid {}", label(charset)));
    }
    Ok(text.into_owned())
}

/// Encodes `text` in `charset`; characters the charset lacks become XML character references.
pub fn encode(text: &str, charset: &str) -> Vec<u8> {
    let encoding = encoding_for(charset);
    let (bytes, _, _) = encoding.encode(text);
    bytes.into_owned()
}

/// The `charset` parameter of a Content-Type value, when present.
pub fn from_content_type(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The `encoding` of an XML declaration at the start of `bytes`, when present.
pub fn from_xml_declaration(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(200)];
    let head = String::from_utf8_lossy(head);
    let decl = head.strip_prefix("<?xml")?;
    let end = decl.find("?>")?;
    let decl = &decl[..end];
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next()?;
    let rest = &rest[1..];
    let close = rest.find(quote)?;
    Some(rest[..close].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_labels_decode_with_gb18030() {
        let bytes = encode("䶮", "gb18030");
        assert_eq!(decode(&bytes, "gbk").unwrap(), "䶮");
        assert_eq!(decode(&encode("石湾", "gb2312"), "gb2312").unwrap(), "石湾");
    }

    #[test]
    fn invalid_bytes_are_an_error() {
        assert!(decode(&[0xff, 0xfe, 0x81], "utf-8").is_err());
    }

    #[test]
    fn finds_charset_in_headers_and_declarations() {
        assert_eq!(
            from_content_type("text/xml; charset=\"GB18030\"").as_deref(),
            Some("GB18030")
        );
        assert_eq!(
            from_xml_declaration(b"<?xml version=\"1.0\" encoding='gbk'?><a/>").as_deref(),
            Some("gbk")
        );
        assert_eq!(from_xml_declaration(b"<a/>"), None);
    }
}
