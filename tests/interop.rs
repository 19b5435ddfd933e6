//! The real adapters (yimen-adapters, built from the shipped mapping files) against the real mock
//! line systems (yimen-mock-systems, served in-process on 127.0.0.1 port 0), with documents the
//! real mapping engine renders: every rest and soap system end to end, rare characters through
//! GB18030, faults classified by the adapters, file exchange over local folders and over a real
//! OpenSSH server, and a jump ticket redeemed by the portal against a small hub.
//!
//! Invariant: no fixed sleeps; every wait polls with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use jiff::Timestamp;
use serde_json::{Value, json};
use yimen_adapters::DeliveryOutcome;
use yimen_e2e::fleet::{
    Fleet, catalog, deliver, delivered, file_round_trip, files_below, render_json, request,
    sample_json, sample_request, system,
};
use yimen_e2e::jump_hub::JumpHub;
use yimen_e2e::{eventually, mock_counters};
use yimen_mappings::catalog::SystemSpec;
use yimen_mappings::render::{FieldProblem, RenderError};

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
            .query_status(&[number.clone(), format!("{id}-19990101-999999")])
            .await
            .map_err(|e| anyhow!("{id}: query_status: {e}"))?;
        ensure!(
            reports.len() == 1,
            "{id}: a receipt the system does not know must be absent: {reports:?}"
        );
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
    let mut addresses = 0;
    // soap, rest, and a file system taking SM4-encrypted packages: all GB18030.
    for id in ["L02", "T06", "L36", "L14"] {
        let spec = system(&catalog, id)?;
        let rendered = render_json(spec, &rare_case(spec)?)?
            .map_err(|e| anyhow!("{id}: rare characters must render in gb18030: {e}"))?;
        ensure!(
            rendered.text.contains(RARE_NAME),
            "{id}: the mapping dropped the name"
        );
        let carries_address = rendered.text.contains('𠀀');
        addresses += usize::from(carries_address);
        let adapter = fleet.adapter(spec, &spec.source)?;
        let key = format!("rare-{id}");
        delivered(
            id,
            deliver(adapter.as_ref(), &request(rendered, &key)).await?,
        )?;
        // File systems take the package on their next scan of the outbox.
        let document = eventually(
            &format!("{id}: the mock records the document of {key}"),
            Duration::from_secs(10),
            || async {
                let documents = fleet.received(id).await?;
                Ok(documents
                    .into_iter()
                    .find(|d| d["idempotency_key"] == key.as_str()))
            },
        )
        .await?;
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
    ensure!(addresses > 0, "no mapping carried the address with 𠀀");
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

    // The mock takes the case and never answers, or answers garbage: ambiguous; asking by key
    // finds what it took.
    let taking = [
        ("L01", rest, "timeout"),
        ("T06", soap, "timeout"),
        ("L01", rest, "malformed"),
        ("T06", soap, "malformed"),
    ];
    for (id, spec, fault) in taking {
        let short = fleet.adapter(spec, &with_short_timeout(&spec.source))?;
        fleet.fault(id, json!({fault: true, "times": 1})).await?;
        let key = format!("f-{fault}-{id}");
        let outcome = deliver(short.as_ref(), &sample_request(spec, &key)?).await?;
        ensure!(
            matches!(outcome, DeliveryOutcome::Ambiguous { .. }),
            "{id}: {fault}: {outcome:?}"
        );
        let found = short.as_deliver().unwrap().find_by_key(&key).await?;
        let taken = fleet.received(id).await?;
        let taken = taken
            .iter()
            .find(|d| d["idempotency_key"] == key.as_str())
            .and_then(|d| d["receipt_no"].as_str());
        ensure!(
            taken.is_some() && found.as_ref().and_then(|r| r.receipt_number.as_deref()) == taken,
            "{id}: {fault}: the case the mock took ({taken:?}) is not what find_by_key found: {found:?}"
        );
    }

    fleet
        .fault("L01", json!({"reset": true, "times": 1}))
        .await?;
    let outcome = deliver(rest_adapter.as_ref(), &sample_request(rest, "f-reset")?).await?;
    ensure!(
        matches!(outcome, DeliveryOutcome::Ambiguous { .. }),
        "reset: {outcome:?}"
    );

    // A token-auth system whose bearer tokens all expired: the adapter fetches a new one.
    let token = system(&catalog, "L17")?;
    let token_adapter = fleet.adapter(token, &token.source)?;
    delivered(
        "L17",
        deliver(token_adapter.as_ref(), &sample_request(token, "f-token-1")?).await?,
    )?;
    fleet
        .http
        .post(format!("{}/_admin/tokens/L17/expire", fleet.url))
        .send()
        .await?
        .error_for_status()?;
    delivered(
        "L17",
        deliver(token_adapter.as_ref(), &sample_request(token, "f-token-2")?).await?,
    )?;

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
        // A receipt in GB18030 whatever receipt_charset says (gbk, utf-8): still read right.
        fleet.fault(id, json!({"gb18030_bodies": true})).await?;
        file_round_trip(&fleet, spec, adapter.as_ref(), &format!("file-gb-{id}")).await?;
        fleet.clear_fault(id).await?;
    }
    let counters = mock_counters(&fleet.http, &fleet.url).await?;
    for id in ["L05", "L37"] {
        ensure!(
            counters.get(id).map(|c| c.0) == Some(2),
            "{id}: {counters:?}"
        );
    }
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
    // L05: plain files, GBK receipts; L14: SM4-encrypted ZIP packages, GB18030 receipts.
    for id in ["L05", "L14"] {
        let spec = system(&catalog, id)?;
        // The SFTP session starts in the fleet's files folder: the folders sit below `<id>/`.
        let mut text = spec
            .source
            .replacen("transport = \"local\"\n", &sshd.settings_lines(), 1);
        for folder in ["outbox", "inbox", "archive", "quarantine"] {
            text = text.replacen(
                &format!("{folder} = \"{folder}\""),
                &format!("{folder} = \"{id}/{folder}\""),
                1,
            );
        }
        ensure!(
            text.contains("transport = \"sftp\"") && text.contains(&format!("\"{id}/outbox\"")),
            "{id}'s mapping does not have the expected local folder lines"
        );
        let adapter = fleet.adapter(spec, &text)?;
        let key = format!("sftp-{id}");
        let (stem, _) = file_round_trip(&fleet, spec, adapter.as_ref(), &key).await?;
        let archived = files_below(&files.join(id).join("archive"));
        ensure!(
            archived.iter().any(|f| f.starts_with(&stem)),
            "{id}: the receipt of {stem} was not archived over SFTP: {archived:?}"
        );
        // After an ambiguous attempt the adapter looks for the manifest by key in the outbox.
        let found = adapter.as_deliver().unwrap().find_by_key(&key).await?;
        ensure!(
            found.as_ref().and_then(|r| r.receipt_number.as_deref()) == Some(stem.as_str()),
            "{id}: find_by_key over SFTP gave {found:?}, delivered {stem}"
        );
    }
    let counters = mock_counters(&fleet.http, &fleet.url).await?;
    for id in ["L05", "L14"] {
        ensure!(
            counters.get(id).map(|c| c.0) == Some(1),
            "{id}: {counters:?}"
        );
    }
    drop(sshd);
    Ok(())
}

#[tokio::test]
async fn jump_ticket_is_redeemed_by_the_portal_and_the_callback_verifies() -> Result<()> {
    let catalog = catalog()?;
    let mut hub = JumpHub::start().await?;
    let fleet = Fleet::start(&hub.url).await?;

    // T01 signs with HMAC-SM3, T11 with HMAC-SHA256.
    for (consumed, id) in ["T01", "T11"].into_iter().enumerate() {
        let spec = system(&catalog, id)?;
        let adapter = fleet.adapter(spec, &spec.source)?;
        let rendered = render_json(spec, &sample_json(spec)?)?
            .map_err(|e| anyhow!("rendering {id}'s sample: {e}"))?;
        ensure!(!rendered.fields.is_empty(), "{id}: the form has no fields");
        hub.set_fields(rendered.fields.clone());
        hub.serve_adapter(adapter.clone());

        let jump = adapter
            .as_jump()
            .ok_or_else(|| anyhow!("{id}: no jump capability"))?;
        let delivery = format!("dlv-jump-{id}");
        let delivery = delivery.as_str();
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
            hub.consumed() == consumed + 1,
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
        let confirmation = answer.text().await?;
        let callback = tokio::time::timeout(Duration::from_secs(10), hub.callbacks.recv())
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
        ensure!(
            confirmation.contains(&callback.line_case_no),
            "the portal's confirmation does not show {}",
            callback.line_case_no
        );
        let documents = fleet.received(id).await?;
        ensure!(
            documents
                .iter()
                .any(|d| d["receipt_no"] == callback.line_case_no.as_str()),
            "{id}: the mock did not record the jump case"
        );
    }
    Ok(())
}
