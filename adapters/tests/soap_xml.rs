//! The hardened XML reader every SOAP answer goes through: hostile input fails fast and clearly.

use yimen_adapters::xml::{self, MAX_DEPTH, MAX_SIZE, XmlError};

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"#;

#[test]
fn a_billion_laughs_bomb_is_refused_at_its_doctype() {
    let error = xml::parse(BILLION_LAUGHS).unwrap_err();
    assert_eq!(error, XmlError::Doctype { position: 22 });
    assert_eq!(
        error.to_string(),
        "xml document type declarations are refused (at byte 22)"
    );
}

#[test]
fn an_external_entity_is_refused_at_its_doctype() {
    let xxe = r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
    assert!(matches!(
        xml::parse(xxe),
        Err(XmlError::Doctype { position: 0 })
    ));
}

#[test]
fn undeclared_entities_are_refused_in_text_and_attributes() {
    let in_text = xml::parse("<r>a &lol9; b</r>").unwrap_err();
    assert_eq!(
        in_text,
        XmlError::Entity {
            name: "lol9".to_owned(),
            position: 5
        }
    );
    assert!(in_text.to_string().contains("&lol9; is refused"));
    let in_attribute = xml::parse(r#"<r a="&lol9;"/>"#).unwrap_err();
    assert!(
        matches!(&in_attribute, XmlError::Entity { name, .. } if name == "lol9"),
        "{in_attribute:?}"
    );
}

#[test]
fn predefined_and_character_references_are_resolved() {
    let root = xml::parse(
        r#"<a:Root xmlns:a="urn:x" k="&quot;1&quot;"><b>&lt;x&gt; &amp; &apos;&#x4E2D;&#25991;</b><c><![CDATA[<raw>]]></c></a:Root>"#,
    )
    .unwrap();
    assert_eq!(root.name, "Root");
    assert_eq!(root.child_text("b"), Some("<x> & '中文"));
    assert_eq!(root.child_text("c"), Some("<raw>"));
    assert!(
        root.attributes
            .contains(&("k".to_owned(), "\"1\"".to_owned()))
    );
}

fn nested(depth: usize) -> String {
    format!("{}x{}", "<e>".repeat(depth), "</e>".repeat(depth))
}

#[test]
fn nesting_is_limited_to_the_maximum_depth() {
    let at_limit = xml::parse(&nested(MAX_DEPTH)).unwrap();
    assert_eq!(at_limit.name, "e");
    let error = xml::parse(&nested(MAX_DEPTH + 1)).unwrap_err();
    assert_eq!(error, XmlError::TooDeep { position: 3 * 64 });
    assert!(matches!(
        xml::parse(&nested(200_000)),
        Err(XmlError::TooDeep { .. })
    ));
}

#[test]
fn oversized_documents_are_refused_before_parsing() {
    let big = format!("<r>{}</r>", "a".repeat(MAX_SIZE));
    assert_eq!(
        xml::parse(&big),
        Err(XmlError::TooLarge { size: MAX_SIZE + 7 })
    );
    assert!(matches!(
        xml::decode(big.as_bytes(), None),
        Err(XmlError::TooLarge { .. })
    ));
}

#[test]
fn malformed_documents_get_located_errors() {
    let mismatched = xml::parse("<a><b></a>").unwrap_err();
    assert!(
        matches!(&mismatched, XmlError::Malformed { message, .. } if message.contains("b")),
        "{mismatched}"
    );
    assert!(mismatched.to_string().starts_with("malformed xml at byte "));
    assert!(matches!(
        xml::parse("<a><b>"),
        Err(XmlError::Malformed { .. })
    ));
    assert!(matches!(
        xml::parse("<a/><b/>"),
        Err(XmlError::Malformed { .. })
    ));
    assert!(matches!(
        xml::parse("<a>x</a>trailing"),
        Err(XmlError::Malformed { .. })
    ));
    assert_eq!(xml::parse("  "), Err(XmlError::Empty));
    assert!(matches!(
        xml::parse("<a>& </a>"),
        Err(XmlError::Malformed { .. })
    ));
}

#[test]
fn a_gb18030_document_is_decoded_by_its_declaration() {
    let text = r#"<?xml version="1.0" encoding="GB18030"?><Result><ErrorMessage>证件号码有误㐀</ErrorMessage></Result>"#;
    let (bytes, _, _) = encoding_rs::GB18030.encode(text);
    assert_eq!(
        xml::declared_encoding(&bytes).map(|e| e.name()),
        Some("gb18030")
    );
    let decoded = xml::decode(&bytes, None).unwrap();
    let root = xml::parse(&decoded).unwrap();
    assert_eq!(root.child_text("ErrorMessage"), Some("证件号码有误㐀"));
    assert_eq!(
        xml::strip_declaration(&decoded),
        "<Result><ErrorMessage>证件号码有误㐀</ErrorMessage></Result>"
    );
}
