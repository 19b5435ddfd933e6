//! The mock fleet served in-process (`yimen_mock_systems::serve` on 127.0.0.1 port 0, the
//! repository's catalogue) and the real adapters built from the shipped mapping files, for
//! interoperability scenarios that need no hub: rendering sample cases with the real mapping
//! engine, delivering them, and reading back what the mock holds through its admin API.
//!
//! Invariant: the fleet runs at pace 100 (a status step every 5 minutes), so a case stays in its
//! first state for a whole test and what an adapter reads can be compared with the mock's case.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use url::Url;
use yimen_adapters::{
    Adapter, AdapterRegistry, DeliveryOutcome, DeliveryRequest, Payload, Receipt, SettingsSource,
    StatusReport, SystemContext,
};
use yimen_mappings::catalog::{Catalog, Expectation, SystemSpec};
use yimen_mappings::render::{RenderError, Rendered};
use yimen_mock_systems::{Catalogue, KindSpec, MockConfig};

use crate::{eventually, mappings_dir};

/// The mock fleet served in-process; stops when dropped.
#[derive(Debug)]
pub struct Fleet {
    /// `http://ADDR` of the fleet.
    pub url: String,
    /// The exchange folders' root (`--files`).
    pub files: PathBuf,
    /// A client for the admin API.
    pub http: reqwest::Client,
    /// The catalogue the fleet serves.
    pub catalogue: Catalogue,
    _stop: oneshot::Sender<()>,
    _tmp: Option<TempDir>,
}

impl Fleet {
    /// Starts the fleet with a fresh temp files folder.
    pub async fn start(hub_url: &str) -> Result<Fleet> {
        let tmp = tempfile::tempdir()?;
        let files = tmp.path().join("files");
        let mut fleet = Fleet::start_in(files, hub_url).await?;
        fleet._tmp = Some(tmp);
        Ok(fleet)
    }

    /// Starts the fleet with the given files folder.
    pub async fn start_in(files: PathBuf, hub_url: &str) -> Result<Fleet> {
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
    pub fn adapter(&self, spec: &SystemSpec, text: &str) -> Result<Arc<dyn Adapter>> {
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

    /// Installs a fault plan on a system (`POST /_admin/faults/<id>`).
    pub async fn fault(&self, id: &str, plan: Value) -> Result<()> {
        self.http
            .post(format!("{}/_admin/faults/{id}", self.url))
            .json(&plan)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("installing fault plan {plan} on {id}"))?;
        Ok(())
    }

    /// Clears a system's fault plan.
    pub async fn clear_fault(&self, id: &str) -> Result<()> {
        self.http
            .delete(format!("{}/_admin/faults/{id}", self.url))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The documents the system received, as the admin API shows them.
    pub async fn received(&self, id: &str) -> Result<Vec<Value>> {
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
    pub async fn case(&self, id: &str, receipt_no: &str) -> Result<Value> {
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
    pub async fn check_report(
        &self,
        id: &str,
        receipt_no: &str,
        report: &StatusReport,
    ) -> Result<()> {
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

    /// A jump system's portal entry path, as the mock serves it.
    pub fn entry_path(&self, id: &str) -> Result<String> {
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

/// The repository's catalogue, as the mapping engine loads it.
pub fn catalog() -> Result<Catalog> {
    Catalog::load(&mappings_dir()).map_err(|e| anyhow!("loading the catalogue: {e}"))
}

/// One system of the catalogue.
pub fn system<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a SystemSpec> {
    catalog
        .system(id)
        .ok_or_else(|| anyhow!("no system {id} in the catalogue"))
}

/// The case of the system's first golden example that renders (a case routed to it).
pub fn sample_json(spec: &SystemSpec) -> Result<Value> {
    let example = spec
        .examples
        .iter()
        .find(|e| matches!(e.expect, Expectation::Text(_)))
        .ok_or_else(|| anyhow!("{} has no example that renders", spec.id))?;
    let text = std::fs::read_to_string(&example.case)
        .with_context(|| format!("reading {}", example.case.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Renders a case given as JSON for a system: the outer error is a case that does not parse,
/// the inner one what the mapping engine says.
pub fn render_json(spec: &SystemSpec, case: &Value) -> Result<Result<Rendered, RenderError>> {
    let bytes = serde_json::to_vec(case)?;
    let case = yimen_mappings::case::parse_case(&bytes)
        .map_err(|problems| anyhow!("sample case does not parse: {problems:?}"))?;
    Ok(spec.render(&case))
}

/// A first delivery attempt of a rendered document under an idempotency key.
pub fn request(rendered: Rendered, key: &str) -> DeliveryRequest {
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

/// A delivery of the system's sample case under an idempotency key.
pub fn sample_request(spec: &SystemSpec, key: &str) -> Result<DeliveryRequest> {
    let rendered = render_json(spec, &sample_json(spec)?)?
        .map_err(|e| anyhow!("rendering {}'s sample: {e}", spec.id))?;
    Ok(request(rendered, key))
}

/// Delivers through an adapter's delivery capability.
pub async fn deliver(adapter: &dyn Adapter, request: &DeliveryRequest) -> Result<DeliveryOutcome> {
    let deliver = adapter
        .as_deliver()
        .ok_or_else(|| anyhow!("adapter cannot deliver"))?;
    Ok(deliver.deliver(request).await)
}

/// The receipt of a delivered outcome, else an error naming the outcome.
pub fn delivered(id: &str, outcome: DeliveryOutcome) -> Result<Receipt> {
    match outcome {
        DeliveryOutcome::Delivered(receipt) => Ok(receipt),
        other => bail!("{id}: expected delivered, got {other:?}"),
    }
}

/// Delivers the system's sample through `adapter`, then polls `query_status` until the mock's
/// receipt comes back; returns the stem and the report.
pub async fn file_round_trip(
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

/// Names of the files in a folder (none when it is missing).
pub fn files_below(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
