//! Hardened XML reading for the soap kind: the envelope (operation and its string parameters)
//! and the well-formedness of the document passed inside it.
//!
//! No DTD is accepted and no entity is expanded beyond the five predefined ones and character
//! references; nesting deeper than [`MAX_DEPTH`] is refused. Input is already decoded text: the
//! envelope's charset was applied before parsing.

use std::collections::BTreeMap;

use quick_xml::events::{BytesRef, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// SOAP 1.1 envelope namespace.
pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace.
pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

/// One SOAP call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `1.1` or `1.2`, from the envelope namespace.
    pub version: &'static str,
    /// Operation element's local name.
    pub operation: String,
    /// Operation element's namespace.
    pub operation_ns: Option<String>,
    /// Parameters by local name, as unescaped text.
    pub params: BTreeMap<String, String>,
    /// WS-Security UsernameToken username, when present.
    pub username: Option<String>,
    /// WS-Security UsernameToken password, when present.
    pub password: Option<String>,
}

fn resolve_ref(reference: &BytesRef<'_>) -> Result<String, String> {
    if let Some(ch) = reference
        .resolve_char_ref()
        .map_err(|err| format!("bad character reference: {err}"))?
    {
        return Ok(ch.to_string());
    }
    let name = reference
        .decode()
        .map_err(|err| format!("bad entity reference: {err}"))?;
    match name.as_ref() {
        "amp" => Ok("&".to_owned()),
        "lt" => Ok("<".to_owned()),
        "gt" => Ok(">".to_owned()),
        "quot" => Ok("\"".to_owned()),
        "apos" => Ok("'".to_owned()),
        other => Err(format!(
            "entity &{other}; is not allowed (no DTD, no entities)"
        )),
    }
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// Parses a SOAP envelope.
pub fn parse_envelope(text: &str) -> Result<Call, String> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let mut version = None;
    let mut in_body = false;
    let mut operation: Option<(String, Option<String>)> = None;
    let mut params = BTreeMap::new();
    let mut current_param: Option<(String, String)> = None;
    let mut header_text: Option<(String, String)> = None;
    let mut username = None;
    let mut password = None;
    loop {
        let position = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|err| format!("xml error at byte {position}: {err}"))?;
        let ns = match ns {
            ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.0).into_owned()),
            _ => None,
        };
        match event {
            Event::DocType(_) => return Err("DTD is not allowed".to_owned()),
            Event::Start(ref e) | Event::Empty(ref e) => {
                for attr in e.attributes() {
                    attr.map_err(|err| format!("bad attribute at byte {position}: {err}"))?;
                }
                let name = local(e.local_name().as_ref());
                let empty = matches!(event, Event::Empty(_));
                let depth = stack.len() + 1;
                if depth > MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH}"));
                }
                match depth {
                    1 => {
                        if name != "Envelope" {
                            return Err(format!("root element is {name}, not Envelope"));
                        }
                        version = match ns.as_deref() {
                            Some(SOAP11) => Some("1.1"),
                            Some(SOAP12) => Some("1.2"),
                            other => {
                                return Err(format!("unknown envelope namespace {other:?}"));
                            }
                        };
                    }
                    2 => in_body = name == "Body",
                    3 if in_body && operation.is_none() => {
                        operation = Some((name.clone(), ns.clone()));
                    }
                    4 if in_body => {
                        if empty {
                            params.insert(name.clone(), String::new());
                        } else {
                            current_param = Some((name.clone(), String::new()));
                        }
                    }
                    d if in_body && d > 4 => {
                        let param = current_param.as_ref().map(|(n, _)| n.clone());
                        return Err(format!(
                            "parameter {} holds markup; documents are passed as escaped strings",
                            param.unwrap_or_default()
                        ));
                    }
                    _ if !in_body && (name == "Username" || name == "Password") => {
                        header_text = Some((name.clone(), String::new()));
                    }
                    _ => {}
                }
                if !empty {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                let depth = stack.len();
                stack.pop();
                if depth == 4
                    && in_body
                    && let Some((name, value)) = current_param.take()
                {
                    params.insert(name, value);
                }
                if let Some((name, value)) = header_text.take() {
                    match name.as_str() {
                        "Username" => username = Some(value),
                        _ => password = Some(value),
                    }
                }
                if depth == 2 {
                    in_body = false;
                }
            }
            Event::Text(e) => {
                let piece = e
                    .xml_content()
                    .map_err(|err| format!("bad text at byte {position}: {err}"))?;
                push_text(&mut current_param, &mut header_text, &piece);
            }
            Event::CData(e) => {
                let piece = e
                    .decode()
                    .map_err(|err| format!("bad cdata at byte {position}: {err}"))?;
                push_text(&mut current_param, &mut header_text, &piece);
            }
            Event::GeneralRef(e) => {
                let piece = resolve_ref(&e)?;
                push_text(&mut current_param, &mut header_text, &piece);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed element {}", stack.join("/")));
    }
    let version = version.ok_or("no Envelope element")?;
    let (operation, operation_ns) = operation.ok_or("Body holds no operation")?;
    Ok(Call {
        version,
        operation,
        operation_ns,
        params,
        username,
        password,
    })
}

fn push_text(
    param: &mut Option<(String, String)>,
    header: &mut Option<(String, String)>,
    piece: &str,
) {
    if let Some((_, value)) = param.as_mut() {
        value.push_str(piece);
    } else if let Some((_, value)) = header.as_mut() {
        value.push_str(piece);
    }
}

/// Checks that `text` is one well-formed XML document (no DTD, no entities, depth bounded).
pub fn check_well_formed(text: &str) -> Result<(), String> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|err| format!("xml error at byte {position}: {err}"))?;
        match event {
            Event::DocType(_) => return Err("DTD is not allowed".to_owned()),
            Event::Start(ref e) | Event::Empty(ref e) => {
                for attr in e.attributes() {
                    attr.map_err(|err| format!("bad attribute at byte {position}: {err}"))?;
                }
                if depth == 0 {
                    roots += 1;
                    if roots > 1 {
                        return Err(format!("second root element at byte {position}"));
                    }
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(format!("nesting deeper than {MAX_DEPTH}"));
                    }
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::GeneralRef(e) => {
                resolve_ref(&e)?;
            }
            Event::Text(e) if depth == 0 && !e.iter().all(u8::is_ascii_whitespace) => {
                return Err(format!("text outside the root element at byte {position}"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 {
        return Err("document ends inside an element".to_owned());
    }
    if roots == 0 {
        return Err("document has no root element".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_soap11_call_with_escaped_document() {
        let text = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<SubmitCase xmlns="http://tempuri.org/"><token>s3cret</token>
<xmlDoc>&lt;?xml version="1.0"?&gt;&lt;CaseInfo&gt;&lt;XM&gt;张三 &amp;amp; 李四&lt;/XM&gt;&lt;/CaseInfo&gt;</xmlDoc>
<bizSerialNo>K-1</bizSerialNo></SubmitCase></soap:Body></soap:Envelope>"#;
        let call = parse_envelope(text).unwrap();
        assert_eq!(call.version, "1.1");
        assert_eq!(call.operation, "SubmitCase");
        assert_eq!(call.operation_ns.as_deref(), Some("http://tempuri.org/"));
        assert_eq!(call.params["token"], "s3cret");
        assert_eq!(call.params["bizSerialNo"], "K-1");
        let doc = &call.params["xmlDoc"];
        assert!(doc.contains("<XM>张三 &amp; 李四</XM>"));
        check_well_formed(doc).unwrap();
    }

    #[test]
    fn refuses_dtds_and_entities() {
        let bomb = r#"<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#;
        assert!(check_well_formed(bomb).unwrap_err().contains("DTD"));
        assert!(check_well_formed("<a>&x;</a>").unwrap_err().contains("&x;"));
    }

    #[test]
    fn refuses_malformed_and_deep_documents() {
        assert!(check_well_formed("<a><b></a>").is_err());
        assert!(check_well_formed("<a/><b/>").is_err());
        assert!(check_well_formed("<a>").is_err());
        let deep = "<a>".repeat(65) + &"</a>".repeat(65);
        assert!(check_well_formed(&deep).unwrap_err().contains("deeper"));
    }

    #[test]
    fn reads_soap12_and_ws_security() {
        let text = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header>
<wsse:Security xmlns:wsse="x"><wsse:UsernameToken><wsse:Username>yimen</wsse:Username>
<wsse:Password>pw</wsse:Password></wsse:UsernameToken></wsse:Security></env:Header>
<env:Body><QueryStatus xmlns="http://tempuri.org/"><token/><receiptNos>A,B</receiptNos></QueryStatus></env:Body></env:Envelope>"#;
        let call = parse_envelope(text).unwrap();
        assert_eq!(call.version, "1.2");
        assert_eq!(call.username.as_deref(), Some("yimen"));
        assert_eq!(call.password.as_deref(), Some("pw"));
        assert_eq!(call.params["token"], "");
        assert_eq!(call.params["receiptNos"], "A,B");
    }
}
