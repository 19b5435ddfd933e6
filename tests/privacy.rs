//! Personal data never reaches the logs or URLs: the hub runs with debug logging while cases
//! with ID numbers, phones and names go through intake, routing, rendering, delivery (rest, soap,
//! file, jump) and status sync; nothing it prints contains them, and the clerk's jump link carries
//! only an opaque ticket.

use std::time::Duration;

use yimen_e2e::{API_KEY, eventually, free_port, sample_case, start_hub_with_env, start_mocks};

/// Cases whose targets cover every adapter kind: soap (T05), rest + file + soap (five
/// certificates: L02 soap, L05 file, L20 soap, L03/L19 jump), jump (T16).
const CASES: [&str; 3] = [
    "natural-person-pension-enrolment.json",
    "legal-person-five-certificates.json",
    "natural-person-senior-allowance-agent.json",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_and_urls_carry_no_id_numbers_phones_or_names() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let files = tempfile::tempdir()?;
    let port = free_port()?;
    let hub_url = format!("http://127.0.0.1:{port}");
    let mocks = start_mocks(files.path(), &hub_url, &["--pace", "0.05"])?;
    let data_arg = data.path().to_string_lossy().into_owned();
    let hub = start_hub_with_env(
        port,
        &["--data", &data_arg],
        &mocks.url,
        files.path(),
        &[],
        &[("RUST_LOG", "debug")],
    )?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    let mut secrets: Vec<String> = Vec::new();
    let mut ids = Vec::new();
    for (i, file) in CASES.iter().enumerate() {
        let case = sample_case(file, &format!("PRIVACY-{i}"))?;
        for person in [
            &case["applicant"],
            &case["applicant"]["legal_representative"],
            &case["agent"]["person"],
        ] {
            for field in ["id_number", "phone", "name"] {
                if let Some(v) = person[field].as_str() {
                    secrets.push(v.to_owned());
                }
            }
        }
        if let Some(code) = case["applicant"]["credit_code"].as_str() {
            secrets.push(code.to_owned());
        }
        let answer: serde_json::Value = client
            .post(format!("{hub_url}/v1/cases"))
            .bearer_auth(API_KEY)
            .json(&case)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ids.push(answer["case_id"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        secrets.len() >= 8,
        "personal data collected: {}",
        secrets.len()
    );

    // Every delivery either arrives or waits for a clerk; then the clerk's link is fetched.
    for id in &ids {
        eventually("deliveries settle", Duration::from_secs(30), || async {
            let view: serde_json::Value = client
                .get(format!("{hub_url}/v1/cases/{id}"))
                .bearer_auth(API_KEY)
                .send()
                .await?
                .json()
                .await?;
            let targets = view["targets"].as_array().cloned().unwrap_or_default();
            Ok(targets
                .iter()
                .all(|t| t["state"] == "delivered" || t["state"] == "awaiting_clerk")
                .then_some(()))
        })
        .await?;
    }
    let jump = client
        .get(format!("{hub_url}/v1/cases/{}/jump/T16", ids[2]))
        .bearer_auth(API_KEY)
        .send()
        .await?;
    let location = jump
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(location.contains("ticket="), "a jump link: {location}");
    // Let status polling and callbacks run for a while with debug logging on.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let lines = hub.drain_output();
    assert!(
        lines.len() > 10,
        "debug logging produced output: {}",
        lines.len()
    );
    for secret in &secrets {
        assert!(
            !location.contains(secret.as_str()),
            "{secret} in the jump URL"
        );
        if let Some(line) = lines.iter().find(|l| l.contains(secret.as_str())) {
            panic!("personal data in the hub's log: {line}");
        }
    }
    Ok(())
}
