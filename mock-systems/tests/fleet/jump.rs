//! jump: the portal redeems tickets against a fake hub that checks signatures, shows the form,
//! and calls back on submit.

use crate::support::*;

#[tokio::test]
async fn portal_redeems_shows_the_form_and_calls_back() {
    let (hub, hub_url) = fake_hub().await;
    let fleet = start_with(Options {
        hub_url,
        ..Options::default()
    })
    .await;
    let page = fleet
        .client
        .get(fleet.url("/J01/jump?ticket=t1"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("value=\"佛山市禅城区一门科技有限公司\""));
    assert!(
        html.contains("value=\"0757-8888&lt;&amp;&gt;\""),
        "values are escaped"
    );
    assert!(html.contains("action=\"/J01/jump/submit\""));
    let at = |name: &str| html.find(&format!("name=\"{name}\"")).unwrap();
    assert!(
        at("NSRMC") < at("TYSHXYDM") && at("TYSHXYDM") < at("LXDH"),
        "the hub's field order"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
    let calls = hub.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].signed_ok);
    assert_eq!(calls[0].body["system"], "J01");
    assert_eq!(calls[0].body["ticket"], "t1");

    let form = [
        ("__delivery", "dlv-t1"),
        ("NSRMC", "佛山市禅城区一门科技有限公司"),
        ("TYSHXYDM", "9144060573144633XL"),
    ];
    let done = fleet
        .client
        .post(fleet.url("/J01/jump/submit"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let html = done.text().await.unwrap();
    assert!(html.contains("提交成功"));
    assert!(html.contains("受理结果已回传"));
    let callback = hub
        .calls()
        .into_iter()
        .find(|c| c.path == "/v1/jump/callback")
        .unwrap();
    assert!(callback.signed_ok);
    assert_eq!(callback.body["delivery"], "dlv-t1");
    assert_eq!(callback.body["status"], "SL");
    let line_case_no = callback.body["line_case_no"].as_str().unwrap().to_owned();
    assert!(html.contains(&line_case_no));

    let again = fleet
        .client
        .post(fleet.url("/J01/jump/submit"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(again.text().await.unwrap().contains(&line_case_no));
    let stats = fleet.stats("J01").await;
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["duplicates"], 1);
    assert_eq!(stats["callbacks_sent"], 1);
    let docs = fleet.received("J01").await;
    assert!(
        docs[0]["body"]
            .as_str()
            .unwrap()
            .contains("9144060573144633XL")
    );
}

#[tokio::test]
async fn redemption_failures_show_the_hub_status() {
    let (_hub, hub_url) = fake_hub().await;
    let fleet = start_with(Options {
        hub_url,
        ..Options::default()
    })
    .await;
    for (ticket, status, words) in [
        ("expired", 410, "过期"),
        ("replayed", 409, "重放"),
        ("forged", 401, "伪造"),
        ("other", 403, "其他业务系统"),
    ] {
        let page = fleet
            .client
            .get(fleet.url(&format!("/J01/jump?ticket={ticket}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), status);
        let html = page.text().await.unwrap();
        assert!(html.contains(words), "{ticket}: {html}");
        assert!(html.contains(&format!("<span id=\"status\">{status}</span>")));
    }
    let missing = fleet
        .client
        .get(fleet.url("/J01/jump"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let unredeemed = fleet
        .client
        .post(fleet.url("/J01/jump/submit"))
        .form(&[("__delivery", "never-redeemed")])
        .send()
        .await
        .unwrap();
    assert_eq!(unredeemed.status(), 400);
    assert_eq!(fleet.stats("J01").await["received"], 0);
}

#[tokio::test]
async fn sm3_portal_signs_with_hmac_sm3_and_progresses_by_callback() {
    let (hub, hub_url) = fake_hub().await;
    let fleet = start_with(Options {
        hub_url,
        pace: 0.01,
        ..Options::default()
    })
    .await;
    let page = fleet
        .client
        .get(fleet.url("/J02/portal/enter?ticket=s1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        200,
        "the fake hub verified an HMAC-SM3 signature"
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("action=\"/J02/portal/enter/submit\"")
    );
    let done = fleet
        .client
        .post(fleet.url("/J02/portal/enter/submit"))
        .form(&[("__delivery", "dlv-s1")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    eventually("the approval is called back", || async {
        hub.calls()
            .iter()
            .any(|c| c.path == "/v1/jump/callback" && c.body["status"] == "3")
    })
    .await;
    let statuses: Vec<String> = hub
        .calls()
        .iter()
        .filter(|c| c.path == "/v1/jump/callback")
        .map(|c| {
            assert!(c.signed_ok);
            c.body["status"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(statuses, ["1", "2", "3"]);
}

#[tokio::test]
async fn a_callback_the_hub_missed_is_sent_again_in_order() {
    let (hub, hub_url) = fake_hub().await;
    let fleet = start_with(Options {
        hub_url,
        pace: 0.01,
        ..Options::default()
    })
    .await;
    let page = fleet
        .client
        .get(fleet.url("/J02/portal/enter?ticket=r1"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    hub.fail_next.store(3, std::sync::atomic::Ordering::SeqCst);
    let done = fleet
        .client
        .post(fleet.url("/J02/portal/enter/submit"))
        .form(&[("__delivery", "dlv-r1")])
        .send()
        .await
        .unwrap();
    assert!(done.text().await.unwrap().contains("稍后重试"));
    eventually("every status reaches the hub", || async {
        hub.calls()
            .iter()
            .filter(|c| c.path == "/v1/jump/callback")
            .count()
            == 3
    })
    .await;
    let statuses: Vec<String> = hub
        .calls()
        .iter()
        .filter(|c| c.path == "/v1/jump/callback")
        .map(|c| c.body["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["1", "2", "3"], "retries keep the order");
    let stats = fleet.stats("J02").await;
    assert_eq!(stats["callbacks_retried"], 3);
    assert_eq!(stats["callbacks_sent"], 3);
    assert_eq!(stats["callbacks_failed"], 0);
}

#[tokio::test]
async fn the_clerk_can_refuse_at_intake() {
    let (hub, hub_url) = fake_hub().await;
    let fleet = start_with(Options {
        hub_url,
        pace: 0.01,
        ..Options::default()
    })
    .await;
    let page = fleet
        .client
        .get(fleet.url("/J01/jump?ticket=n1"))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("不予受理"));
    let done = fleet
        .client
        .post(fleet.url("/J01/jump/submit"))
        .form(&[("__delivery", "dlv-n1"), ("__result", "refuse")])
        .send()
        .await
        .unwrap();
    assert!(done.text().await.unwrap().contains("不予受理"));
    let callback = hub
        .calls()
        .into_iter()
        .find(|c| c.path == "/v1/jump/callback")
        .unwrap();
    assert_eq!(
        callback.body["status"], "TH",
        "J01's own code for a refusal"
    );
    let message = callback.body["message"].as_str().unwrap();
    assert!(
        message.contains("依据") && message.contains("行政复议"),
        "{message}"
    );
    let cases = fleet.cases("J01").await;
    assert_eq!(cases[0]["finished"], true);
    assert_eq!(fleet.stats("J01").await["open_cases"], 0);
}
