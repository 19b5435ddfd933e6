//! The `soap` adapter: submits the rendered document as an escaped string parameter, finds an
//! earlier submission by its idempotency key, and queries status in batches.
//!
//! Invariants: the idempotency key travels in `key_param` of every submission; the inner
//! document's own XML declaration is dropped (the envelope's encoding governs); answers are read
//! only through [`crate::xml`]; secrets and documents are never logged.

use encoding_rs::{Encoding, UTF_8};
use reqwest::Client;
use reqwest::header::CONTENT_TYPE;
use tracing::Instrument;
use url::Url;

use super::answer::{self, FaultParty, ResultDoc, SoapAnswer};
use super::envelope::EnvelopeWriter;
use crate::adapter::StatusReport;
use crate::excerpt::{excerpt, mask};
use crate::http::{
    Answer, TransportFailure, charset_of, charset_param, classify_failure_status, read_raw,
    retry_after,
};
use crate::outcome::{DeliveryOutcome, Receipt};
use crate::settings::Secret;
use crate::{Adapter, Deliver, DeliveryRequest, Health, QueryStatus, StatusQueryError, xml};

/// A `soap` line system, ready to deliver. One per system; its client keeps connections alive.
#[derive(Debug)]
pub struct SoapAdapter {
    pub(super) system_id: String,
    pub(super) client: Client,
    pub(super) endpoint: Url,
    pub(super) writer: EnvelopeWriter,
    pub(super) submit_method: String,
    pub(super) query_method: Option<String>,
    pub(super) lookup_method: Option<String>,
    pub(super) secret_param: Option<(String, Secret)>,
    pub(super) doc_param: String,
    pub(super) key_param: String,
    pub(super) receipts_param: String,
    pub(super) status_batch: usize,
    pub(super) charset: Option<&'static Encoding>,
}

/// An answer read and decoded, with the operation's reading of it.
struct Called {
    answer: Answer,
    read: Result<SoapAnswer, answer::AnswerError>,
}

impl SoapAdapter {
    async fn call(
        &self,
        method: &str,
        params: &[(&str, &str)],
        encoding: &'static Encoding,
    ) -> Result<Called, TransportFailure> {
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 1);
        if let Some((name, secret)) = &self.secret_param {
            all.push((name, secret.expose()));
        }
        all.extend_from_slice(params);
        let request = self
            .writer
            .request(method, &all, encoding)
            .map_err(|e| TransportFailure::NotSent(format!("envelope not written: {e}")))?;
        let mut http = self
            .client
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, request.content_type)
            .body(request.body);
        if let Some(action) = request.soap_action {
            http = http.header("SOAPAction", action);
        }
        let response = http
            .send()
            .await
            .map_err(|e| TransportFailure::from_error(&e))?;
        let (status, headers, body) = read_raw(response).await?;
        let text = xml::decode(&body, charset_of(&headers))
            .map_err(|e| TransportFailure::MaybeSent(e.to_string()))?;
        let read = answer::read(&text, method);
        Ok(Called {
            answer: Answer {
                status,
                headers,
                text,
            },
            read,
        })
    }

    fn secrets(&self) -> Vec<&Secret> {
        let mut secrets: Vec<&Secret> = self.secret_param.iter().map(|(_, s)| s).collect();
        secrets.extend(self.writer.username_token.iter().map(|(_, p)| p));
        secrets
    }

    fn excerpt(&self, text: &str) -> String {
        excerpt(text, &self.secrets())
    }

    fn classify(&self, called: Called) -> DeliveryOutcome {
        let Called { answer, read } = called;
        match read {
            Ok(SoapAnswer::Fault {
                party,
                code,
                reason,
            }) => {
                let reason = mask(&format!("soap fault {code}: {reason}"), &self.secrets());
                match party {
                    FaultParty::Sender => DeliveryOutcome::Rejected {
                        reason,
                        excerpt: self.excerpt(&answer.text),
                    },
                    FaultParty::Receiver => DeliveryOutcome::Retry {
                        after: retry_after(&answer.headers),
                        reason,
                    },
                }
            }
            Ok(SoapAnswer::Result(result)) => match result.state.as_str() {
                "1" => DeliveryOutcome::Delivered(self.receipt(&result, &answer)),
                "2" => DeliveryOutcome::Rejected {
                    reason: mask(
                        &format!(
                            "line system refused: {}",
                            result.error_message.as_deref().unwrap_or("no reason given")
                        ),
                        &self.secrets(),
                    ),
                    excerpt: self.excerpt(&answer.text),
                },
                other => DeliveryOutcome::Ambiguous {
                    reason: format!("unknown result state {other:?}"),
                },
            },
            Err(_) if !answer.status.is_success() => {
                classify_failure_status(&answer, self.excerpt(&answer.text))
            }
            Err(error) => DeliveryOutcome::Ambiguous {
                reason: format!("answer not understood: {error}"),
            },
        }
    }

    fn receipt(&self, result: &ResultDoc, answer: &Answer) -> Receipt {
        Receipt {
            receipt_number: result.receipt_number.clone(),
            raw_status: result.status_code.clone(),
            excerpt: self.excerpt(&answer.text),
        }
    }

    fn query_failed(&self, called: &Called) -> StatusQueryError {
        let text = self.excerpt(&called.answer.text);
        match &called.read {
            Ok(SoapAnswer::Fault {
                party: FaultParty::Receiver,
                ..
            }) => StatusQueryError::Unavailable(text),
            Err(_) if called.answer.status.is_server_error() => StatusQueryError::Unavailable(text),
            Err(e) => StatusQueryError::Malformed(format!("{e}: {text}")),
            _ => StatusQueryError::Malformed(text),
        }
    }

    fn query_charset(&self) -> &'static Encoding {
        self.charset.unwrap_or(UTF_8)
    }
}

#[async_trait::async_trait]
impl Adapter for SoapAdapter {
    fn kind(&self) -> &'static str {
        super::NAME
    }

    async fn health(&self) -> Health {
        let mut url = self.endpoint.clone();
        url.set_query(Some("wsdl"));
        match self.client.get(url).send().await {
            Ok(_) => Health::Up,
            Err(e) => Health::Down(TransportFailure::from_error(&e).reason().to_owned()),
        }
    }

    fn as_deliver(&self) -> Option<&dyn Deliver> {
        Some(self)
    }

    fn as_status(&self) -> Option<&dyn QueryStatus> {
        self.query_method.as_ref().map(|_| self as &dyn QueryStatus)
    }
}

#[async_trait::async_trait]
impl Deliver for SoapAdapter {
    async fn deliver(&self, request: &DeliveryRequest) -> DeliveryOutcome {
        let span = tracing::info_span!(
            "soap.deliver",
            system = %self.system_id,
            delivery = %request.delivery_id,
            attempt = request.attempt,
        );
        async {
            let body = &request.payload.body;
            let document_charset = charset_param(&request.payload.content_type)
                .or_else(|| xml::declared_encoding(body))
                .unwrap_or(UTF_8);
            let (document, _, _) = document_charset.decode(body);
            let document = xml::strip_declaration(&document);
            let params = [
                (self.doc_param.as_str(), document),
                (self.key_param.as_str(), request.idempotency_key.as_str()),
            ];
            let encoding = self.charset.unwrap_or(document_charset);
            let outcome = match self.call(&self.submit_method, &params, encoding).await {
                Err(failure) => failure.outcome(),
                Ok(called) => self.classify(called),
            };
            outcome.log();
            outcome
        }
        .instrument(span)
        .await
    }

    async fn find_by_key(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<Receipt>, StatusQueryError> {
        let Some(method) = &self.lookup_method else {
            return Err(StatusQueryError::Unavailable(
                "the system offers no lookup by key (no lookup_method)".to_owned(),
            ));
        };
        let params = [(self.key_param.as_str(), idempotency_key)];
        let called = self
            .call(method, &params, self.query_charset())
            .await
            .map_err(|f| StatusQueryError::Unavailable(f.reason().to_owned()))?;
        match &called.read {
            Ok(SoapAnswer::Result(result)) if result.state == "1" => {
                Ok(Some(self.receipt(result, &called.answer)))
            }
            Ok(SoapAnswer::Result(result)) if result.state == "2" => Ok(None),
            _ => Err(self.query_failed(&called)),
        }
    }
}

#[async_trait::async_trait]
impl QueryStatus for SoapAdapter {
    async fn query_status(
        &self,
        receipt_numbers: &[String],
    ) -> Result<Vec<StatusReport>, StatusQueryError> {
        let Some(method) = &self.query_method else {
            return Err(StatusQueryError::Unavailable(
                "the system offers no status query (no query_method)".to_owned(),
            ));
        };
        let mut reports = Vec::with_capacity(receipt_numbers.len());
        for chunk in receipt_numbers.chunks(self.status_batch) {
            let joined = chunk.join(",");
            let params = [(self.receipts_param.as_str(), joined.as_str())];
            let called = self
                .call(method, &params, self.query_charset())
                .await
                .map_err(|f| StatusQueryError::Unavailable(f.reason().to_owned()))?;
            let Ok(SoapAnswer::Result(result)) = &called.read else {
                return Err(self.query_failed(&called));
            };
            if result.state != "1" {
                return Err(StatusQueryError::Malformed(format!(
                    "status query refused: {}",
                    self.excerpt(result.error_message.as_deref().unwrap_or(""))
                )));
            }
            reports.extend(
                result
                    .items
                    .iter()
                    .map(|(receipt, status, opinion)| StatusReport {
                        receipt_number: receipt.clone(),
                        raw_status: status.clone(),
                        message: opinion.as_deref().map(|o| mask(o, &self.secrets())),
                        excerpt: self.excerpt(&format!(
                            "{receipt} {status} {}",
                            opinion.as_deref().unwrap_or("")
                        )),
                    }),
            );
        }
        tracing::debug!(system = %self.system_id, asked = receipt_numbers.len(), answered = reports.len(), "status query");
        Ok(reports)
    }
}
