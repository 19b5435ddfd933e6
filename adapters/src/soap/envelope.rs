//! Request envelopes of the `soap` kind, written with quick-xml and encoded in the system's charset.
//!
//! Invariants: every parameter value is escaped text (the rendered document travels as an escaped
//! string, never as markup); the envelope's XML declaration and Content-Type name the charset the
//! bytes are in; characters the charset cannot hold become numeric character references.

use encoding_rs::{Encoding, UTF_8};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::config::SoapVersion;
use crate::settings::Secret;

const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";

/// Writes the envelopes of one service.
#[derive(Debug)]
pub struct EnvelopeWriter {
    /// SOAP version.
    pub version: SoapVersion,
    /// The operations' namespace.
    pub namespace: String,
    /// WS-Security UsernameToken (user name, password), when configured.
    pub username_token: Option<(String, Secret)>,
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct SoapRequest {
    /// The encoded envelope.
    pub body: Vec<u8>,
    /// Content-Type header value (with charset, and `action` under SOAP 1.2).
    pub content_type: String,
    /// SOAPAction header value (SOAP 1.1 only).
    pub soap_action: Option<String>,
}

impl EnvelopeWriter {
    /// The action URI of an operation: namespace + method.
    pub fn action(&self, method: &str) -> String {
        format!("{}{method}", self.namespace)
    }

    /// Writes the call `method(params…)` in `encoding`.
    pub fn request(
        &self,
        method: &str,
        params: &[(&str, &str)],
        encoding: &'static Encoding,
    ) -> Result<SoapRequest, std::io::Error> {
        let label = label(encoding);
        let text = self.envelope_text(method, params, label)?;
        let body = if encoding == UTF_8 {
            text.into_bytes()
        } else {
            let (bytes, _, _) = encoding.encode(&text);
            bytes.into_owned()
        };
        let action = self.action(method);
        let (content_type, soap_action) = match self.version {
            SoapVersion::V11 => (
                format!("text/xml; charset={label}"),
                Some(format!("\"{action}\"")),
            ),
            SoapVersion::V12 => (
                format!("application/soap+xml; charset={label}; action=\"{action}\""),
                None,
            ),
        };
        Ok(SoapRequest {
            body,
            content_type,
            soap_action,
        })
    }

    fn envelope_text(
        &self,
        method: &str,
        params: &[(&str, &str)],
        label: &str,
    ) -> Result<String, std::io::Error> {
        let envelope_ns = match self.version {
            SoapVersion::V11 => SOAP11_NS,
            SoapVersion::V12 => SOAP12_NS,
        };
        let mut w = Writer::new(Vec::new());
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some(label), None)))?;
        w.write_event(Event::Start(
            BytesStart::new("soap:Envelope").with_attributes([("xmlns:soap", envelope_ns)]),
        ))?;
        if let Some((username, password)) = &self.username_token {
            w.write_event(Event::Start(BytesStart::new("soap:Header")))?;
            w.write_event(Event::Start(
                BytesStart::new("wsse:Security")
                    .with_attributes([("xmlns:wsse", WSSE_NS), ("soap:mustUnderstand", "1")]),
            ))?;
            w.write_event(Event::Start(BytesStart::new("wsse:UsernameToken")))?;
            text_element(&mut w, BytesStart::new("wsse:Username"), username)?;
            text_element(
                &mut w,
                BytesStart::new("wsse:Password").with_attributes([("Type", PASSWORD_TEXT)]),
                password.expose(),
            )?;
            w.write_event(Event::End(BytesEnd::new("wsse:UsernameToken")))?;
            w.write_event(Event::End(BytesEnd::new("wsse:Security")))?;
            w.write_event(Event::End(BytesEnd::new("soap:Header")))?;
        }
        w.write_event(Event::Start(BytesStart::new("soap:Body")))?;
        w.write_event(Event::Start(
            BytesStart::new(method).with_attributes([("xmlns", self.namespace.as_str())]),
        ))?;
        for (name, value) in params {
            text_element(&mut w, BytesStart::new(*name), value)?;
        }
        w.write_event(Event::End(BytesEnd::new(method)))?;
        w.write_event(Event::End(BytesEnd::new("soap:Body")))?;
        w.write_event(Event::End(BytesEnd::new("soap:Envelope")))?;
        String::from_utf8(w.into_inner()).map_err(std::io::Error::other)
    }
}

fn text_element(
    w: &mut Writer<Vec<u8>>,
    start: BytesStart<'_>,
    text: &str,
) -> Result<(), std::io::Error> {
    let end = start.to_end().into_owned();
    w.write_event(Event::Start(start))?;
    w.write_event(Event::Text(BytesText::new(text)))?;
    w.write_event(Event::End(end))
}

/// The label an encoding is declared with (`UTF-8`, `GBK`, `GB18030`).
pub fn label(encoding: &'static Encoding) -> &'static str {
    match encoding.name() {
        "GBK" => "GBK",
        "gb18030" => "GB18030",
        "UTF-8" => "UTF-8",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(version: SoapVersion) -> EnvelopeWriter {
        EnvelopeWriter {
            version,
            namespace: "http://tempuri.org/".to_owned(),
            username_token: None,
        }
    }

    #[test]
    fn a_soap11_call_escapes_its_parameters() {
        let request = writer(SoapVersion::V11)
            .request(
                "SubmitCase",
                &[
                    ("token", "t&k"),
                    ("xmlDoc", "<CaseInfo a=\"1\">张</CaseInfo>"),
                ],
                UTF_8,
            )
            .unwrap();
        let text = String::from_utf8(request.body).unwrap();
        assert_eq!(
            text,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><SubmitCase xmlns=\"http://tempuri.org/\"><token>t&amp;k</token><xmlDoc>&lt;CaseInfo a=&quot;1&quot;&gt;张&lt;/CaseInfo&gt;</xmlDoc></SubmitCase></soap:Body></soap:Envelope>"
        );
        assert_eq!(request.content_type, "text/xml; charset=UTF-8");
        assert_eq!(
            request.soap_action.as_deref(),
            Some("\"http://tempuri.org/SubmitCase\"")
        );
    }

    #[test]
    fn a_soap12_call_carries_the_action_in_its_content_type_and_gbk_bytes() {
        let request = writer(SoapVersion::V12)
            .request("SubmitCase", &[("xmlDoc", "张三㐀")], encoding_rs::GBK)
            .unwrap();
        assert_eq!(
            request.content_type,
            "application/soap+xml; charset=GBK; action=\"http://tempuri.org/SubmitCase\""
        );
        assert_eq!(request.soap_action, None);
        let (text, _, _) = encoding_rs::GBK.decode(&request.body);
        assert!(text.contains("encoding=\"GBK\""));
        assert!(text.contains("http://www.w3.org/2003/05/soap-envelope"));
        assert!(
            text.contains("<xmlDoc>张三&#13312;</xmlDoc>"),
            "a character GBK lacks becomes a reference: {text}"
        );
    }
}
