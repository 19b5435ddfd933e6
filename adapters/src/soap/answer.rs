//! Answers of the `soap` kind: the envelope, its fault or its `…Result` string, and the `Result`
//! document inside, all read with the hardened reader of [`crate::xml`].
//!
//! Faults: `Client` (1.1) and `Sender` (1.2) codes blame the request; `Server` and `Receiver`
//! blame the service; other codes (`VersionMismatch`, `MustUnderstand`) blame the request too.

use crate::xml::{self, Element, XmlError};

/// Who a fault blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultParty {
    /// The request was wrong: do not send it again as is.
    Sender,
    /// The service failed: try again later.
    Receiver,
}

/// What a SOAP answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapAnswer {
    /// A SOAP fault.
    Fault {
        /// Who it blames.
        party: FaultParty,
        /// The fault code as sent (`soap:Client`).
        code: String,
        /// The fault string or reason text.
        reason: String,
    },
    /// The operation's `Result` document.
    Result(ResultDoc),
}

/// The `Result` document of PROTOCOLS.md: `state`, `ErrorMessage`, `ReceiptNo`, `StatusCode`,
/// and for status queries `Items`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultDoc {
    /// `1` taken, `2` refused (as sent).
    pub state: String,
    /// Why it was refused.
    pub error_message: Option<String>,
    /// The line system's receipt number.
    pub receipt_number: Option<String>,
    /// The raw status code.
    pub status_code: Option<String>,
    /// Status items: (receipt number, status code, opinion).
    pub items: Vec<(String, String, Option<String>)>,
}

/// Why an answer could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not well-formed or hostile XML.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Well-formed but not the expected shape.
    #[error("unexpected soap answer: {0}")]
    Shape(String),
}

/// Reads an answer to `method`.
pub fn read(text: &str, method: &str) -> Result<SoapAnswer, AnswerError> {
    let envelope = xml::parse(text)?;
    if envelope.name != "Envelope" {
        return Err(AnswerError::Shape(format!(
            "root element is <{}>, not <Envelope>",
            envelope.name
        )));
    }
    let body = envelope
        .child("Body")
        .ok_or_else(|| AnswerError::Shape("envelope without <Body>".to_owned()))?;
    if let Some(fault) = body.child("Fault") {
        return Ok(read_fault(fault));
    }
    let response_name = format!("{method}Response");
    let result_name = format!("{method}Result");
    let result = body
        .find(&[&response_name, &result_name])
        .ok_or_else(|| AnswerError::Shape(format!("no <{response_name}><{result_name}>")))?;
    let document = match result.child("Result") {
        Some(inline) => inline.clone(),
        None => xml::parse(xml::strip_declaration(&result.text))?,
    };
    read_result(&document).map(SoapAnswer::Result)
}

fn read_fault(fault: &Element) -> SoapAnswer {
    let code = fault
        .child_text("faultcode")
        .or_else(|| fault.find(&["Code", "Value"]).map(|v| v.text.trim()))
        .unwrap_or_default()
        .to_owned();
    let reason = fault
        .child_text("faultstring")
        .or_else(|| fault.find(&["Reason", "Text"]).map(|t| t.text.trim()))
        .unwrap_or_default()
        .to_owned();
    let local = code.rsplit(':').next().unwrap_or_default();
    let party = if local.starts_with("Server") || local.starts_with("Receiver") {
        FaultParty::Receiver
    } else {
        FaultParty::Sender
    };
    SoapAnswer::Fault {
        party,
        code,
        reason,
    }
}

fn read_result(document: &Element) -> Result<ResultDoc, AnswerError> {
    if document.name != "Result" {
        return Err(AnswerError::Shape(format!(
            "result document is <{}>, not <Result>",
            document.name
        )));
    }
    let text = |name: &str| {
        document
            .child_text(name)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let state =
        text("state").ok_or_else(|| AnswerError::Shape("result without <state>".to_owned()))?;
    let mut items = Vec::new();
    if let Some(list) = document.child("Items") {
        for item in list.children_named("Item") {
            let receipt = item.child_text("ReceiptNo").unwrap_or_default();
            let status = item.child_text("StatusCode").unwrap_or_default();
            if receipt.is_empty() || status.is_empty() {
                return Err(AnswerError::Shape(
                    "status item without <ReceiptNo> or <StatusCode>".to_owned(),
                ));
            }
            let opinion = item
                .child_text("Opinion")
                .filter(|o| !o.is_empty())
                .map(str::to_owned);
            items.push((receipt.to_owned(), status.to_owned(), opinion));
        }
    }
    Ok(ResultDoc {
        state,
        error_message: text("ErrorMessage"),
        receipt_number: text("ReceiptNo"),
        status_code: text("StatusCode"),
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_escaped_result_string_is_read() {
        let text = r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><SubmitCaseResponse xmlns="http://tempuri.org/"><SubmitCaseResult>&lt;?xml version="1.0" encoding="gb18030"?&gt;&lt;Result&gt;&lt;state&gt;1&lt;/state&gt;&lt;ErrorMessage/&gt;&lt;ReceiptNo&gt;L02-0001&lt;/ReceiptNo&gt;&lt;StatusCode&gt;01&lt;/StatusCode&gt;&lt;/Result&gt;</SubmitCaseResult></SubmitCaseResponse></soap:Body></soap:Envelope>"#;
        let SoapAnswer::Result(result) = read(text, "SubmitCase").unwrap() else {
            panic!("expected a result");
        };
        assert_eq!(result.state, "1");
        assert_eq!(result.error_message, None);
        assert_eq!(result.receipt_number.as_deref(), Some("L02-0001"));
        assert_eq!(result.status_code.as_deref(), Some("01"));
    }

    #[test]
    fn faults_of_both_versions_are_attributed() {
        let v11 = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>bad doc</faultstring></s:Fault></s:Body></s:Envelope>"#;
        assert_eq!(
            read(v11, "SubmitCase").unwrap(),
            SoapAnswer::Fault {
                party: FaultParty::Sender,
                code: "s:Client".to_owned(),
                reason: "bad doc".to_owned()
            }
        );
        let v12 = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code><env:Reason><env:Text xml:lang="zh">忙</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
        let SoapAnswer::Fault { party, reason, .. } = read(v12, "SubmitCase").unwrap() else {
            panic!("expected a fault");
        };
        assert_eq!((party, reason.as_str()), (FaultParty::Receiver, "忙"));
    }

    #[test]
    fn a_hostile_inner_document_is_refused() {
        let text = r#"<Envelope><Body><SubmitCaseResponse><SubmitCaseResult>&lt;!DOCTYPE r [&lt;!ENTITY a "b"&gt;]&gt;&lt;Result&gt;&amp;a;&lt;/Result&gt;</SubmitCaseResult></SubmitCaseResponse></Body></Envelope>"#;
        assert!(matches!(
            read(text, "SubmitCase"),
            Err(AnswerError::Xml(XmlError::Doctype { .. }))
        ));
    }
}
