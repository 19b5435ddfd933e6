//! A thin W3C WebDriver client over `chromedriver`, enough for a clerk's visit: open a URL, read
//! inputs and text, click. The WebDriver protocol is plain JSON over HTTP, so reqwest carries it;
//! the Rust WebDriver crates pull in a second TLS stack with a C toolchain dependency.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running `chromedriver` and one headless Chromium session; both end on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Result<Browser> {
        let port = crate::free_port()?;
        // Its own process group, so that dropping the browser ends Chromium with it.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver (apt-get install chromium chromium-driver)")?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on {base}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir()?;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let answer = browser.call("POST", "/session", Some(caps)).await?;
        browser.session = answer["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {answer}"))?
            .to_owned();
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let answer: Value = request.send().await?.json().await?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!(
                "webdriver {method} {path}: {error}: {}",
                answer["value"]["message"]
            );
        }
        Ok(answer["value"].clone())
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens a URL and waits for the page load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await
            .map(|_| ())
    }

    /// The URL the browser shows now.
    pub async fn current_url(&self) -> Result<String> {
        let v = self.call("GET", &self.at("/url"), None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The page's visible text.
    pub async fn body_text(&self) -> Result<String> {
        let body = self.find("body").await?;
        let v = self
            .call("GET", &self.at(&format!("/element/{body}/text")), None)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    async fn find(&self, css: &str) -> Result<String> {
        let v = self
            .call(
                "POST",
                &self.at("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        v[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no element {css}"))
    }

    /// `(name, value)` of every input on the page.
    pub async fn inputs(&self) -> Result<Vec<(String, String)>> {
        let found = self
            .call(
                "POST",
                &self.at("/elements"),
                Some(json!({"using": "css selector", "value": "input"})),
            )
            .await?;
        let mut out = Vec::new();
        for element in found.as_array().into_iter().flatten() {
            let Some(id) = element[ELEMENT_KEY].as_str() else {
                continue;
            };
            let name = self
                .call(
                    "GET",
                    &self.at(&format!("/element/{id}/attribute/name")),
                    None,
                )
                .await?;
            let value = self
                .call(
                    "GET",
                    &self.at(&format!("/element/{id}/property/value")),
                    None,
                )
                .await?;
            out.push((
                name.as_str().unwrap_or_default().to_owned(),
                value.as_str().unwrap_or_default().to_owned(),
            ));
        }
        Ok(out)
    }

    /// Clicks the first element matching a CSS selector.
    pub async fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css).await?;
        self.call("POST", &self.at(&format!("/element/{id}/click")), None)
            .await
            .map(|_| ())
    }
}

impl Browser {
    /// Runs a script in the page and returns its value.
    pub async fn execute(&self, script: &str) -> Result<Value> {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Saves a PNG screenshot of the page (for a person to look at; tests don't compare pixels).
    pub async fn screenshot(&self, path: &std::path::Path) -> Result<()> {
        use base64::Engine as _;
        let v = self.call("GET", &self.at("/screenshot"), None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("decoding the screenshot")?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the Chromium processes it started share one process group.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", group.as_str()])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
