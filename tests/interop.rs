//! The real adapters (yimen-adapters, built from the shipped mapping files) against the real mock
//! line systems (yimen-mock-systems, served in-process on 127.0.0.1 port 0), with documents the
//! real mapping engine renders: every rest and soap system end to end, rare characters through
//! GB18030, faults classified by the adapters, file exchange over local folders and over a real
//! OpenSSH server, and a jump ticket redeemed by the portal against a small hub.
//!
//! Invariant: no fixed sleeps; every wait polls with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use jiff::Timestamp;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use url::Url;
use yimen_adapters::jump::{InMemoryTicketLedger, JumpCallback, SignedRequest};
use yimen_adapters::{
    Adapter, AdapterRegistry, DeliveryOutcome, DeliveryRequest, Payload, Receipt, SettingsSource,
    StatusReport, SystemContext,
};
use yimen_e2e::{eventually, mappings_dir, mock_counters};
use yimen_mappings::catalog::{Catalog, Expectation, SystemSpec};
use yimen_mappings::render::{FieldProblem, RenderError, Rendered};
use yimen_mock_systems::{Catalogue, KindSpec, MockConfig};

/// The mock fleet served in-process; stops when dropped.
struct Fleet {
    url: String,
    files: PathBuf,
    http: reqwest::Client,
    catalogue: Catalogue,
    _stop: oneshot::Sender<()>,
    _tmp: Option<TempDir>,
}

impl Fleet {
    /// Starts the fleet with a fresh temp files folder.
    async fn start(hub_url: &str) -> Result<Fleet> {
        let tmp = tempfile::tempdir()?;
        let files = tmp.path().join("files");
        let mut fleet = Fleet::start_in(files, hub_url).await?;
        fleet._tmp = Some(tmp);
        Ok(fleet)
    }

    /// Starts the fleet with the given files folder.
    async fn start_in(files: PathBuf, hub_url: &str) -> Result<Fleet> {
        let catalogue = Catalogue::load(&mappings_dir())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let mut config = MockConfig::new(catalogue.clone(), files.clone(), hub_url);
        // Cases stay in their first state for the whole test (a step every 5 minutes), so what
        // an adapter reads can be compared with what the mock holds.
        config.pace = 100.0;
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = yimen_mock_systems::serve(config, listener, shutdown).await {
                eprintln!("mock fleet failed: {e}");
            }
        });
        Ok(Fleet {
            url,
            files,
            http: reqwest::Client::new(),
            catalogue,
            _stop: stop,
            _tmp: None,
        })
    }

    /// Builds a system's adapter from mapping text (the shipped file or a modified copy).
    fn adapter(&self, spec: &SystemSpec, text: &str) -> Result<Arc<dyn Adapter>> {
        let ctx = SystemContext {
            system_id: spec.id.clone(),
            base_url: Url::parse(&format!("{}/{}", self.url, spec.id))?,
            files_dir: self.files.join(&spec.id),
            secrets_root: mappings_dir(),
        };
        let source = SettingsSource {
            path: &spec.path,
            text,
        };
        AdapterRegistry::builtin()
            .build(&ctx, source)
            .map_err(|e| anyhow!("building the {} adapter: {e}", spec.id))
    }

    async fn fault(&self, id: &str, plan: Value) -> Result<()> {
        self.http
            .post(format!("{}/_admin/faults/{id}", self.url))
            .json(&plan)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("installing fault plan {plan} on {id}"))?;
        Ok(())
    }

    async fn clear_fault(&self, id: &str) -> Result<()> {
        self.http
            .delete(format!("{}/_admin/faults/{id}", self.url))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The documents the system received, as the admin API shows them.
    async fn received(&self, id: &str) -> Result<Vec<Value>> {
        let answer: Value = self
            .http
            .get(format!("{}/_admin/received/{id}", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer["documents"].as_array().cloned().unwrap_or_default())
    }

    /// The mock's case with this receipt number (its raw status and message).
    async fn case(&self, id: &str, receipt_no: &str) -> Result<Value> {
        let answer: Value = self
            .http
            .get(format!("{}/_admin/cases/{id}", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        answer["cases"]
            .as_array()
            .and_then(|cases| cases.iter().find(|c| c["receipt_no"] == receipt_no))
            .cloned()
            .ok_or_else(|| anyhow!("{id}: the mock holds no case {receipt_no}: {answer}"))
    }

    /// Checks a status report against the mock's own case: same raw code, same (Chinese)
    /// message, so the answer's charset was decoded right.
    async fn check_report(&self, id: &str, receipt_no: &str, report: &StatusReport) -> Result<()> {
        let case = self.case(id, receipt_no).await?;
        ensure!(
            case["status"] == report.raw_status.as_str(),
            "{id}: report {report:?}, mock case {case}"
        );
        ensure!(
            case["message"].as_str() == report.message.as_deref(),
            "{id}: message decoded as {:?}, mock says {}",
            report.message,
            case["message"]
        );
        Ok(())
    }

    fn entry_path(&self, id: &str) -> Result<String> {
        self.catalogue
            .systems
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| match &s.kind {
                KindSpec::Jump(jump) => Some(jump.entry_path.clone()),
                _ => None,
            })
            .ok_or_else(|| anyhow!("{id} is not a jump system of the mock catalogue"))
    }
}

fn catalog() -> Result<Catalog> {
    Catalog::load(&mappings_dir()).map_err(|e| anyhow!("loading the catalogue: {e}"))
}

fn system<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a SystemSpec> {
    catalog
        .system(id)
        .ok_or_else(|| anyhow!("no system {id} in the catalogue"))
}

/// The case of the system's first golden example that renders (a case routed to it).
fn sample_json(spec: &SystemSpec) -> Result<Value> {
    let example = spec
        .examples
        .iter()
        .find(|e| matches!(e.expect, Expectation::Text(_)))
        .ok_or_else(|| anyhow!("{} has no example that renders", spec.id))?;
    let text = std::fs::read_to_string(&example.case)
        .with_context(|| format!("reading {}", example.case.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn render_json(spec: &SystemSpec, case: &Value) -> Result<Result<Rendered, RenderError>> {
    let bytes = serde_json::to_vec(case)?;
    let case = yimen_mappings::case::parse_case(&bytes)
        .map_err(|problems| anyhow!("sample case does not parse: {problems:?}"))?;
    Ok(spec.render(&case))
}

fn request(rendered: Rendered, key: &str) -> DeliveryRequest {
    DeliveryRequest {
        delivery_id: format!("dlv-{key}"),
        case_id: format!("case-{key}"),
        attempt: 1,
        idempotency_key: key.to_owned(),
        payload: Payload {
            content_type: rendered.content_type,
            body: rendered.body.into(),
            extension: rendered.extension.to_owned(),
            fields: rendered.fields,
        },
        materials: Vec::new(),
    }
}

fn sample_request(spec: &SystemSpec, key: &str) -> Result<DeliveryRequest> {
    let rendered = render_json(spec, &sample_json(spec)?)?
        .map_err(|e| anyhow!("rendering {}'s sample: {e}", spec.id))?;
    Ok(request(rendered, key))
}

async fn deliver(adapter: &dyn Adapter, request: &DeliveryRequest) -> Result<DeliveryOutcome> {
    let deliver = adapter
        .as_deliver()
        .ok_or_else(|| anyhow!("adapter cannot deliver"))?;
    Ok(deliver.deliver(request).await)
}

fn delivered(id: &str, outcome: DeliveryOutcome) -> Result<Receipt> {
    match outcome {
        DeliveryOutcome::Delivered(receipt) => Ok(receipt),
        other => bail!("{id}: expected delivered, got {other:?}"),
    }
}

/// Every rest and soap system: deliver, deliver again (same receipt, one duplicate), find by
/// key, and a status query answering a raw code the system's own status table maps.
#[tokio::test]
async fn every_rest_and_soap_system_delivers_dedupes_and_reports_status() -> Result<()> {
    let catalog = catalog()?;
    let fleet = Fleet::start("http://127.0.0.1:9").await?;
    let systems: Vec<&SystemSpec> = catalog
        .systems()
        .filter(|s| s.kind == "rest" || s.kind == "soap")
        .collect();
    ensure!(
        systems.len() == 21,
        "expected 21 rest/soap systems, found {}",
        systems.len()
    );
    for spec in &systems {
        let id = spec.id.as_str();
        let adapter = fleet.adapter(spec, &spec.source)?;
        let key = format!("interop-{id}-1");
        let req = sample_request(spec, &key)?;
        let first = delivered(id, deliver(adapter.as_ref(), &req).await?)?;
        let number = first
            .receipt_number
            .clone()
            .ok_or_else(|| anyhow!("{id}: receipt without a number: {first:?}"))?;
        let mut again = req.clone();
        again.attempt = 2;
        let second = delivered(id, deliver(adapter.as_ref(), &again).await?)?;
        ensure!(
            second.receipt_number.as_deref() == Some(number.as_str()),
            "{id}: second delivery gave {second:?}, first {first:?}"
        );
        let found = adapter
            .as_deliver()
            .unwrap()
            .find_by_key(&key)
            .await
            .map_err(|e| anyhow!("{id}: find_by_key: {e}"))?
            .ok_or_else(|| anyhow!("{id}: find_by_key found nothing"))?;
        ensure!(
            found.receipt_number.as_deref() == Some(number.as_str()),
            "{id}: find_by_key gave {found:?}"
        );
        let status = adapter
            .as_status()
            .ok_or_else(|| anyhow!("{id}: no status capability"))?;
        let reports = status
            .query_status(std::slice::from_ref(&number))
            .await
            .map_err(|e| anyhow!("{id}: query_status: {e}"))?;
        let report = reports
            .iter()
            .find(|r| r.receipt_number == number)
            .ok_or_else(|| anyhow!("{id}: status of {number} missing: {reports:?}"))?;
        ensure!(
            spec.map_status(&report.raw_status).is_some(),
            "{id}: raw status {:?} is not in the system's [status] table",
            report.raw_status
        );
        fleet.check_report(id, &number, report).await?;
    }
    let counters = mock_counters(&fleet.http, &fleet.url).await?;
    for spec in &systems {
        let (received, duplicates) = counters.get(&spec.id).copied().unwrap_or_default();
        ensure!(
            (received, duplicates) == (1, 1),
            "{}: mock counted received {received}, duplicates {duplicates}",
            spec.id
        );
    }
    Ok(())
}

const RARE_NAME: &str = "王䶮";
const RARE_ADDRESS: &str = "广东省佛山市禅城区祖庙街道𠀀园新村3座1202房";

/// The system's sample case with 䶮 (U+4DAE) in the applicant's (or legal representative's) name
/// and 𠀀 (U+20000) in the address.
fn rare_case(spec: &SystemSpec) -> Result<Value> {
    let mut case = sample_json(spec)?;
    let applicant = &mut case["applicant"];
    if applicant["kind"] == "natural_person" {
        applicant["name"] = json!(RARE_NAME);
    } else {
        applicant["legal_representative"]["name"] = json!(RARE_NAME);
    }
    applicant["address"] = json!(RARE_ADDRESS);
    Ok(case)
}

#[tokio::test]
async fn rare_characters_round_trip_through_gb18030_and_fail_loudly_in_gbk() -> Result<()> {
    let catalog = catalog()?;
    let fleet = Fleet::start("http://127.0.0.1:9").await?;
    for id in ["L02", "T06", "L36"] {
        let spec = system(&catalog, id)?;
        let rendered = render_json(spec, &rare_case(spec)?)?
            .map_err(|e| anyhow!("{id}: rare characters must render in gb18030: {e}"))?;
        ensure!(
            rendered.text.contains(RARE_NAME),
            "{id}: the mapping dropped the name"
        );
        let carries_address = rendered.text.contains('𠀀');
        let adapter = fleet.adapter(spec, &spec.source)?;
        let key = format!("rare-{id}");
        delivered(
            id,
            deliver(adapter.as_ref(), &request(rendered, &key)).await?,
        )?;
        let documents = fleet.received(id).await?;
        let document = documents
            .iter()
            .find(|d| d["idempotency_key"] == key.as_str())
            .ok_or_else(|| anyhow!("{id}: the mock recorded no document for {key}"))?;
        let body = document["body"].as_str().unwrap_or_default();
        ensure!(
            body.contains(RARE_NAME),
            "{id}: name changed on the way: {body}"
        );
        ensure!(
            !carries_address || body.contains('𠀀'),
            "{id}: address changed on the way: {body}"
        );
    }
    // GBK has neither character: rendering must refuse, naming the field and the character.
    let spec = system(&catalog, "T05")?;
    let error = match render_json(spec, &rare_case(spec)?)? {
        Ok(rendered) => bail!("T05: rendered what GBK cannot hold: {}", rendered.text),
        Err(error) => error,
    };
    let message = error.to_string();
    let RenderError::Field {
        field,
        problem: FieldProblem::Unencodable { ch, .. },
        ..
    } = error
    else {
        bail!("T05: expected an unencodable-field error, got {message}");
    };
    ensure!(['䶮', '𠀀'].contains(&ch), "unexpected character {ch:?}");
    ensure!(
        !field.is_empty() && message.contains(&field) && message.contains(ch),
        "the error does not say what and where: {message}"
    );
    ensure!(
        !message.contains('?'),
        "the error shows a replacement: {message}"
    );
    Ok(())
}

/// A copy of the mapping text with short timeouts (for the timeout fault).
fn with_short_timeout(text: &str) -> String {
    format!("{text}\n[adapter.limits]\nconnect_timeout_ms = 300\nrequest_timeout_ms = 500\n")
}

#[tokio::test]
async fn faults_are_classified_by_the_real_adapters() -> Result<()> {
    let catalog = catalog()?;
    let fleet = Fleet::start("http://127.0.0.1:9").await?;
    let rest = system(&catalog, "L01")?;
    let rest_adapter = fleet.adapter(rest, &rest.source)?;
    let soap = system(&catalog, "T06")?;
    let soap_adapter = fleet.adapter(soap, &soap.source)?;
    let gbk = system(&catalog, "T05")?;
    let gbk_adapter = fleet.adapter(gbk, &gbk.source)?;

    fleet
        .fault("L01", json!({"error_rate": 1.0, "times": 1}))
        .await?;
    let outcome = deliver(rest_adapter.as_ref(), &sample_request(rest, "f-500")?).await?;
    ensure!(
        matches!(outcome, DeliveryOutcome::Retry { .. }),
        "500: {outcome:?}"
    );

    // SOAP 1.2 (T06: Sender 400 / Receiver 500) and SOAP 1.1 (T05: Client / Server, 500).
    for (id, spec, adapter) in [("T06", soap, &soap_adapter), ("T05", gbk, &gbk_adapter)] {
        fleet
            .fault(id, json!({"soap_fault": "client", "times": 1}))
            .await?;
        let request = sample_request(spec, &format!("f-client-{id}"))?;
        let outcome = deliver(adapter.as_ref(), &request).await?;
        ensure!(
            matches!(outcome, DeliveryOutcome::Rejected { .. }),
            "{id}: client fault: {outcome:?}"
        );
        fleet
            .fault(id, json!({"soap_fault": "server", "times": 1}))
            .await?;
        let request = sample_request(spec, &format!("f-server-{id}"))?;
        let outcome = deliver(adapter.as_ref(), &request).await?;
        ensure!(
            matches!(outcome, DeliveryOutcome::Retry { .. }),
            "{id}: server fault: {outcome:?}"
        );
    }

    let short = fleet.adapter(rest, &with_short_timeout(&rest.source))?;
    fleet
        .fault("L01", json!({"timeout": true, "times": 1}))
        .await?;
    let outcome = deliver(short.as_ref(), &sample_request(rest, "f-timeout")?).await?;
    ensure!(
        matches!(outcome, DeliveryOutcome::Ambiguous { .. }),
        "timeout: {outcome:?}"
    );
    let found = short.as_deliver().unwrap().find_by_key("f-timeout").await?;
    ensure!(
        found.as_ref().is_some_and(|r| r.receipt_number.is_some()),
        "the case the mock took before timing out is not found: {found:?}"
    );

    fleet
        .fault("L01", json!({"reset": true, "times": 1}))
        .await?;
    let outcome = deliver(rest_adapter.as_ref(), &sample_request(rest, "f-reset")?).await?;
    ensure!(
        matches!(outcome, DeliveryOutcome::Ambiguous { .. }),
        "reset: {outcome:?}"
    );

    fleet.fault("L01", json!({"down_for_ms": 60_000})).await?;
    let outcome = deliver(rest_adapter.as_ref(), &sample_request(rest, "f-down")?).await?;
    ensure!(
        matches!(outcome, DeliveryOutcome::Retry { .. }),
        "down: {outcome:?}"
    );
    fleet.clear_fault("L01").await?;

    // Answers in GB18030 from a UTF-8 rest system and a GBK soap system.
    for (id, spec, adapter) in [("L01", rest, &rest_adapter), ("T05", gbk, &gbk_adapter)] {
        fleet.fault(id, json!({"gb18030_bodies": true})).await?;
        let key = format!("f-gb18030-{id}");
        let receipt = delivered(
            id,
            deliver(adapter.as_ref(), &sample_request(spec, &key)?).await?,
        )?;
        let documents = fleet.received(id).await?;
        let taken = documents
            .iter()
            .find(|d| d["idempotency_key"] == key.as_str())
            .and_then(|d| d["receipt_no"].as_str())
            .ok_or_else(|| anyhow!("{id}: the mock recorded no receipt for {key}"))?;
        ensure!(
            receipt.receipt_number.as_deref() == Some(taken),
            "{id}: receipt {receipt:?} decoded wrongly from GB18030, mock gave {taken}"
        );
        let reports = adapter
            .as_status()
            .unwrap()
            .query_status(&[taken.to_owned()])
            .await?;
        let report = reports
            .first()
            .ok_or_else(|| anyhow!("{id}: no status for {taken} in GB18030"))?;
        ensure!(
            report
                .message
                .as_deref()
                .is_some_and(|m| !m.is_empty() && !m.contains('\u{fffd}')),
            "{id}: status message {report:?}"
        );
        fleet.check_report(id, taken, report).await?;
        fleet.clear_fault(id).await?;
    }
    Ok(())
}

/// Delivers the system's sample through `adapter`, then polls `query_status` until the mock's
/// receipt comes back; returns the stem and the report.
async fn file_round_trip(
    fleet: &Fleet,
    spec: &SystemSpec,
    adapter: &dyn Adapter,
    key: &str,
) -> Result<(String, StatusReport)> {
    let id = spec.id.as_str();
    let receipt = delivered(id, deliver(adapter, &sample_request(spec, key)?).await?)?;
    let stem = receipt
        .receipt_number
        .ok_or_else(|| anyhow!("{id}: file receipt without a stem"))?;
    let status = adapter
        .as_status()
        .ok_or_else(|| anyhow!("{id}: no status capability"))?;
    let stems = vec![stem.clone()];
    let report = eventually(
        &format!("{id}: the mock's receipt for {stem}"),
        Duration::from_secs(15),
        || async {
            let reports = status.query_status(&stems).await?;
            Ok(reports.into_iter().find(|r| r.receipt_number == stem))
        },
    )
    .await?;
    ensure!(
        spec.map_status(&report.raw_status).is_some(),
        "{id}: raw status {:?} is not in the system's [status] table",
        report.raw_status
    );
    let documents = fleet.received(id).await?;
    let receipt_no = documents
        .iter()
        .find(|d| d["idempotency_key"] == key)
        .and_then(|d| d["receipt_no"].as_str())
        .ok_or_else(|| anyhow!("{id}: the mock recorded no document for {key}"))?;
    fleet.check_report(id, receipt_no, &report).await?;
    Ok((stem, report))
}

fn files_below(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn file_systems_exchange_through_local_folders() -> Result<()> {
    let catalog = catalog()?;
    let fleet = Fleet::start("http://127.0.0.1:9").await?;
    for id in ["L05", "L37"] {
        let spec = system(&catalog, id)?;
        let adapter = fleet.adapter(spec, &spec.source)?;
        let (stem, _) =
            file_round_trip(&fleet, spec, adapter.as_ref(), &format!("file-{id}")).await?;
        let outbox = files_below(&fleet.files.join(id).join("outbox"));
        ensure!(
            outbox.iter().any(|f| f.starts_with(&stem)),
            "{id}: nothing of {stem} in the outbox: {outbox:?}"
        );
        let archived = files_below(&fleet.files.join(id).join("archive"));
        ensure!(
            archived
                .iter()
                .any(|f| f.starts_with(&stem) && f.contains("receipt")),
            "{id}: the receipt of {stem} was not archived: {archived:?}"
        );
        let inbox = files_below(&fleet.files.join(id).join("inbox"));
        ensure!(
            !inbox.iter().any(|f| f.starts_with(&stem)),
            "{id}: the receipt of {stem} is still in the inbox: {inbox:?}"
        );
    }
    let counters = mock_counters(&fleet.http, &fleet.url).await?;
    ensure!(
        counters.get("L05").map(|c| c.0) == Some(1),
        "L05: {counters:?}"
    );
    ensure!(
        counters.get("L37").map(|c| c.0) == Some(1),
        "L37: {counters:?}"
    );
    Ok(())
}

#[tokio::test]
async fn file_system_exchanges_over_a_real_sftp_server() -> Result<()> {
    let catalog = catalog()?;
    let tmp = tempfile::tempdir()?;
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files)?;
    let sshd = yimen_e2e::sshd::Sshd::start(&files).await?;
    let fleet = Fleet::start_in(files.clone(), "http://127.0.0.1:9").await?;
    let spec = system(&catalog, "L05")?;
    // The SFTP session starts in the fleet's files folder: L05's folders sit below `L05/`.
    let mut text = spec
        .source
        .replacen("transport = \"local\"\n", &sshd.settings_lines(), 1);
    for folder in ["outbox", "inbox", "archive", "quarantine"] {
        text = text.replacen(
            &format!("{folder} = \"{folder}\""),
            &format!("{folder} = \"L05/{folder}\""),
            1,
        );
    }
    ensure!(
        text.contains("transport = \"sftp\""),
        "L05's mapping has no local transport line"
    );
    let adapter = fleet.adapter(spec, &text)?;
    let (stem, _) = file_round_trip(&fleet, spec, adapter.as_ref(), "sftp-L05").await?;
    let archived = files_below(&files.join("L05").join("archive"));
    ensure!(
        archived.iter().any(|f| f.starts_with(&stem)),
        "the receipt of {stem} was not archived over SFTP: {archived:?}"
    );
    let counters = mock_counters(&fleet.http, &fleet.url).await?;
    ensure!(
        counters.get("L05").map(|c| c.0) == Some(1),
        "L05: {counters:?}"
    );
    drop(sshd);
    Ok(())
}

/// What the test hub shares with its handlers.
struct HubState {
    adapter: Mutex<Option<Arc<dyn Adapter>>>,
    ledger: InMemoryTicketLedger,
    fields: Mutex<Vec<(String, String)>>,
    callbacks: tokio::sync::mpsc::UnboundedSender<JumpCallback>,
}

fn signed(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let _ = body;
    (header("x-timestamp"), header("x-signature"))
}

fn jump_of(state: &HubState) -> Option<Arc<dyn Adapter>> {
    state.adapter.lock().unwrap().clone()
}

async fn hub_redeem(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let Some(adapter) = jump_of(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let jump = adapter.as_jump().expect("a jump adapter");
    let (timestamp, signature) = signed(&headers, &body);
    let request = SignedRequest {
        body: &body,
        timestamp: &timestamp,
        signature: &signature,
    };
    match jump
        .verify_redemption(request, &state.ledger, Timestamp::now())
        .await
    {
        Ok(redemption) => {
            let fields: serde_json::Map<String, Value> = state
                .fields
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let answer = json!({"delivery": redemption.delivery_id, "fields": fields});
            (StatusCode::OK, answer.to_string())
        }
        Err(e) => (
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            e.to_string(),
        ),
    }
}

async fn hub_callback(
    State(state): State<Arc<HubState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let Some(adapter) = jump_of(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    };
    let jump = adapter.as_jump().expect("a jump adapter");
    let (timestamp, signature) = signed(&headers, &body);
    let request = SignedRequest {
        body: &body,
        timestamp: &timestamp,
        signature: &signature,
    };
    match jump.verify_callback(request, Timestamp::now()) {
        Ok(callback) => {
            let _ = state.callbacks.send(callback);
            (StatusCode::OK, "{}".to_owned())
        }
        Err(e) => (
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
            e.to_string(),
        ),
    }
}

#[tokio::test]
async fn jump_ticket_is_redeemed_by_the_portal_and_the_callback_verifies() -> Result<()> {
    let catalog = catalog()?;
    let (tx, mut callbacks) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(HubState {
        adapter: Mutex::new(None),
        ledger: InMemoryTicketLedger::new(),
        fields: Mutex::new(Vec::new()),
        callbacks: tx,
    });
    let app = Router::new()
        .route("/v1/jump/redeem", post(hub_redeem))
        .route("/v1/jump/callback", post(hub_callback))
        .with_state(state.clone());
    let hub_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hub_url = format!("http://{}", hub_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(hub_listener, app).await });
    let fleet = Fleet::start(&hub_url).await?;

    let id = "T01";
    let spec = system(&catalog, id)?;
    let adapter = fleet.adapter(spec, &spec.source)?;
    let rendered = render_json(spec, &sample_json(spec)?)?
        .map_err(|e| anyhow!("rendering {id}'s sample: {e}"))?;
    ensure!(!rendered.fields.is_empty(), "{id}: the form has no fields");
    *state.fields.lock().unwrap() = rendered.fields.clone();
    *state.adapter.lock().unwrap() = Some(adapter.clone());

    let jump = adapter
        .as_jump()
        .ok_or_else(|| anyhow!("{id}: no jump capability"))?;
    let delivery = "dlv-jump-T01";
    let ticket = jump.issue(delivery, Timestamp::now())?;
    let page = fleet.http.get(ticket.entry_url.clone()).send().await?;
    ensure!(page.status() == 200, "portal answered {}", page.status());
    let html = page.text().await?;
    let plain: Vec<&(String, String)> = rendered
        .fields
        .iter()
        .filter(|(_, v)| !v.is_empty() && !v.contains(['&', '<', '>', '"', '\'']))
        .collect();
    ensure!(!plain.is_empty(), "no field value to look for");
    for (name, value) in &plain {
        ensure!(
            html.contains(value.as_str()),
            "field {name}={value} not pre-filled in {html}"
        );
    }
    ensure!(
        state.ledger.len() == 1,
        "the ticket's nonce was not consumed"
    );

    // The same ticket a second time is a replay: the hub refuses it and the portal says so.
    let replay = fleet.http.get(ticket.entry_url.clone()).send().await?;
    ensure!(
        replay.status() == 409,
        "replayed ticket answered {}",
        replay.status()
    );

    let mut form: Vec<(String, String)> = vec![("__delivery".to_owned(), delivery.to_owned())];
    form.extend(rendered.fields.iter().cloned());
    let submit = format!("{}/{id}{}/submit", fleet.url, fleet.entry_path(id)?);
    let answer = fleet.http.post(submit).form(&form).send().await?;
    ensure!(
        answer.status() == 200,
        "submit answered {}",
        answer.status()
    );
    let callback = tokio::time::timeout(Duration::from_secs(10), callbacks.recv())
        .await
        .context("no verified callback within 10 s")?
        .ok_or_else(|| anyhow!("callback channel closed"))?;
    ensure!(
        callback.system == id && callback.delivery == delivery,
        "{callback:?}"
    );
    ensure!(
        !callback.line_case_no.is_empty(),
        "callback without a line case number"
    );
    ensure!(
        spec.map_status(&callback.status).is_some(),
        "callback status {:?} is not in {id}'s [status] table",
        callback.status
    );
    let answer_page = answer_text_contains(&fleet, id, &callback.line_case_no).await?;
    ensure!(answer_page, "the mock did not record the jump case");
    Ok(())
}

async fn answer_text_contains(fleet: &Fleet, id: &str, line_case_no: &str) -> Result<bool> {
    let documents = fleet.received(id).await?;
    Ok(documents
        .iter()
        .any(|d| d["receipt_no"].as_str() == Some(line_case_no)))
}
