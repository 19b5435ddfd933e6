//! Dedicated-line jump (专线跳转) in a real browser: the platform asks the hub for the clerk's
//! jump link, headless Chromium follows it into the line system's own page (the mock portal),
//! which redeems the single-use ticket server to server and shows the pre-filled form; the clerk
//! submits it, the line system calls the hub back, and the delivery is marked delivered with the
//! line system's own case number. The URL carries only the opaque ticket; a second visit with the
//! same ticket is refused.

use std::time::Duration;

use yimen_e2e::webdriver::Browser;
use yimen_e2e::{API_KEY, eventually, free_port, sample_case, start_hub, start_mocks};

/// 高龄津贴 at a town hall: routed to T16, a jump system.
const CASE_FILE: &str = "natural-person-senior-allowance-agent.json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_jumps_into_the_line_system_with_the_form_filled() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let files = tempfile::tempdir()?;
    let port = free_port()?;
    let hub_url = format!("http://127.0.0.1:{port}");
    let mocks = start_mocks(files.path(), &hub_url, &[])?;
    let data_arg = data.path().to_string_lossy().into_owned();
    let _hub = start_hub(port, &["--data", &data_arg], &mocks.url, files.path(), &[])?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;

    let case = sample_case(CASE_FILE, "JUMP-BROWSER-0001")?;
    let name = case["applicant"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id_number = case["applicant"]["id_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let accepted: serde_json::Value = client
        .post(format!("{hub_url}/v1/cases"))
        .bearer_auth(API_KEY)
        .json(&case)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let case_id = accepted["case_id"].as_str().unwrap_or_default().to_owned();
    let target = |state: &'static str| {
        let (client, hub_url, case_id) = (client.clone(), hub_url.clone(), case_id.clone());
        move || {
            let (client, hub_url, case_id) = (client.clone(), hub_url.clone(), case_id.clone());
            async move {
                let view: serde_json::Value = client
                    .get(format!("{hub_url}/v1/cases/{case_id}"))
                    .bearer_auth(API_KEY)
                    .send()
                    .await?
                    .json()
                    .await?;
                let t16 = view["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["system"] == "T16")
                    .cloned();
                Ok(t16.filter(|t| t["state"] == state))
            }
        }
    };
    eventually(
        "T16 waits for the clerk",
        Duration::from_secs(20),
        target("awaiting_clerk"),
    )
    .await?;

    // The platform fetches the clerk's link; only the opaque ticket travels in the URL.
    let redirect = client
        .get(format!("{hub_url}/v1/cases/{case_id}/jump/T16"))
        .bearer_auth(API_KEY)
        .send()
        .await?;
    assert_eq!(redirect.status(), reqwest::StatusCode::SEE_OTHER);
    let entry = redirect
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let url = reqwest::Url::parse(&entry)?;
    let params: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(params, ["ticket"], "only the ticket in {entry}");
    assert!(!entry.contains(&id_number), "ID number in the URL");
    assert!(
        !url.as_str().contains(&*urlencode(&name)),
        "name in the URL"
    );

    // The clerk's browser enters the line system: the form is filled.
    let browser = Browser::start().await?;
    browser.goto(&entry).await?;
    let inputs = browser.inputs().await?;
    assert!(
        inputs.iter().any(|(_, v)| v == &name),
        "the applicant's name is pre-filled: {inputs:?} at {}: {}",
        browser.current_url().await?,
        browser.body_text().await?
    );
    browser.click("button[type=submit]").await?;
    // The click navigates; read the page once the confirmation has replaced the form (an element
    // of the old page may go stale in between, which `eventually` retries).
    let confirmation = eventually("the confirmation page", Duration::from_secs(15), || async {
        let text = browser.body_text().await?;
        Ok(text.contains("T16-").then_some(text))
    })
    .await?;
    assert!(
        confirmation.contains("T16-"),
        "the line system shows its own case number: {confirmation}"
    );

    // The line system's callback marks the delivery delivered with its case number.
    let delivered = eventually(
        "T16 delivered",
        Duration::from_secs(20),
        target("delivered"),
    )
    .await?;
    let receipt = delivered["receipt"]["receipt_number"]
        .as_str()
        .unwrap_or_default();
    assert!(receipt.starts_with("T16-"), "receipt {receipt}");

    // The same ticket a second time is refused.
    browser.goto(&entry).await?;
    let again = browser.body_text().await?;
    assert!(
        !browser.inputs().await?.iter().any(|(_, v)| v == &name),
        "a used ticket must not show the form again: {again}"
    );
    Ok(())
}

/// Percent-encodes every byte but ASCII letters and digits, as a URL would carry the text.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The operator console in a real browser: Chinese by default, English on request, the sync
/// status of every catalogue system, nothing loaded from elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_console_shows_every_line_system_in_chinese_and_english() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let files = tempfile::tempdir()?;
    let port = free_port()?;
    let hub_url = format!("http://127.0.0.1:{port}");
    let mocks = start_mocks(files.path(), &hub_url, &[])?;
    let data_arg = data.path().to_string_lossy().into_owned();
    let _hub = start_hub(port, &["--data", &data_arg], &mocks.url, files.path(), &[])?;
    let client = reqwest::Client::new();
    client
        .post(format!("{hub_url}/v1/cases"))
        .bearer_auth(API_KEY)
        .json(&sample_case(
            "natural-person-pension-enrolment.json",
            "CONSOLE-0001",
        )?)
        .send()
        .await?
        .error_for_status()?;

    let console = client.get(format!("{hub_url}/console")).send().await?;
    let csp = console
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "CSP: {csp}");
    let html = console.text().await?;
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );

    let browser = Browser::start().await?;
    browser.goto(&format!("{hub_url}/console")).await?;
    browser
        .execute(&format!(
            "sessionStorage.setItem('yimen.key', '{API_KEY}'); localStorage.removeItem('yimen.lang');"
        ))
        .await?;
    browser.goto(&format!("{hub_url}/console")).await?;
    let rows = eventually("68 systems listed", Duration::from_secs(15), || async {
        let n = browser
            .execute("return document.querySelectorAll('#systems tr').length")
            .await?;
        Ok(n.as_u64().filter(|n| *n == 68))
    })
    .await?;
    assert_eq!(rows, 68);
    let text = browser.body_text().await?;
    assert!(
        text.contains("线路系统同步状态"),
        "Chinese by default: {text}"
    );
    assert!(text.contains("T05"), "T05 listed");
    if let Ok(dir) = std::env::var("YIMEN_SCREENSHOTS") {
        browser
            .screenshot(&std::path::Path::new(&dir).join("console-zh.png"))
            .await?;
    }

    browser.goto(&format!("{hub_url}/console?lang=en")).await?;
    let english = eventually("English console", Duration::from_secs(10), || async {
        let text = browser.body_text().await?;
        Ok(text.contains("Line systems: sync status").then_some(text))
    })
    .await?;
    assert!(english.contains("Dead letters"), "{english}");

    let metrics = client
        .get(format!("{hub_url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(metrics.contains("yimen_deliveries_delivered{system=\"T05\",kind=\"soap\"}"));
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("yimen_breaker_open{"))
            .count(),
        68,
        "one breaker line per system"
    );
    Ok(())
}
