//! soap: 1.1 in GB18030 and 1.2 with WS-Security; idempotency, lookup, status, refusals, faults.

use crate::support::*;

const NS11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const NS12: &str = "http://www.w3.org/2003/05/soap-envelope";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn envelope11(charset: &str, method: &str, params: &[(&str, &str)]) -> String {
    let params: String = params
        .iter()
        .map(|(k, v)| format!("<{k}>{}</{k}>", escape(v)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"{charset}\"?><soap:Envelope xmlns:soap=\"{NS11}\"><soap:Body><{method} xmlns=\"http://tempuri.org/\">{params}</{method}></soap:Body></soap:Envelope>"
    )
}

async fn call11(
    fleet: &TestFleet,
    method: &str,
    action: &str,
    params: &[(&str, &str)],
) -> (u16, String) {
    let text = envelope11("GB18030", method, params);
    let body = encoding_rs::GB18030.encode(&text).0.into_owned();
    let response = fleet
        .client
        .post(fleet.url("/S01/Service.asmx"))
        .header("Content-Type", "text/xml; charset=GB18030")
        .header("SOAPAction", format!("\"http://tempuri.org/{action}\""))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("GB18030"),
        "answers in the system charset"
    );
    let bytes = response.bytes().await.unwrap();
    let (text, _, errors) = encoding_rs::GB18030.decode(&bytes);
    assert!(!errors);
    (status, text.into_owned())
}

/// The unescaped `<Result>` inside the answer.
fn result_of(answer: &str) -> String {
    let start = answer.find("Result>").unwrap() + "Result>".len();
    let end = answer.rfind("</").unwrap();
    let inner = &answer[start..end];
    let inner = &inner[..inner.rfind("</").unwrap()];
    inner
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn tag<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .map(|i| i + open.len())
        .unwrap_or_else(|| panic!("no {name} in {xml}"));
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    &xml[start..end]
}

const DOC: &str = "<?xml version=\"1.0\" encoding=\"GB18030\"?><CaseInfo><JBXX><XM>䶮 &amp; 石湾</XM></JBXX></CaseInfo>";

#[tokio::test]
async fn submit_in_gb18030_then_lookup_and_query() {
    let fleet = start().await;
    let token = secret("S01.key");
    let (status, answer) = call11(
        &fleet,
        "SubmitCase",
        "SubmitCase",
        &[("token", &token), ("xmlDoc", DOC), ("bizSerialNo", "biz-1")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("<SubmitCaseResponse xmlns=\"http://tempuri.org/\">"));
    let result = result_of(&answer);
    assert_eq!(tag(&result, "state"), "1");
    let receipt = tag(&result, "ReceiptNo").to_owned();
    assert!(receipt.starts_with("S01-"));
    assert_eq!(tag(&result, "StatusCode"), "01");

    let docs = fleet.received("S01").await;
    assert_eq!(docs[0]["idempotency_key"], "biz-1");
    assert!(
        docs[0]["body"]
            .as_str()
            .unwrap()
            .contains("<XM>䶮 &amp; 石湾</XM>"),
        "{}",
        docs[0]["body"]
    );
    assert_eq!(docs[0]["charset"], "GB18030");
    assert_eq!(
        docs[0]["headers"]["soapaction"],
        "\"http://tempuri.org/SubmitCase\""
    );

    let (_, answer) = call11(
        &fleet,
        "QueryByKey",
        "QueryByKey",
        &[("token", &token), ("bizSerialNo", "biz-1")],
    )
    .await;
    assert_eq!(tag(&result_of(&answer), "ReceiptNo"), receipt);
    let (_, answer) = call11(
        &fleet,
        "QueryByKey",
        "QueryByKey",
        &[("token", &token), ("bizSerialNo", "nope")],
    )
    .await;
    assert_eq!(tag(&result_of(&answer), "state"), "2");

    let list = format!("{receipt},S01-unknown");
    let (_, answer) = call11(
        &fleet,
        "QueryStatus",
        "QueryStatus",
        &[("token", &token), ("receiptNos", &list)],
    )
    .await;
    let result = result_of(&answer);
    assert_eq!(result.matches("<Item>").count(), 1);
    assert_eq!(tag(&result, "StatusCode"), "01");
    assert_eq!(tag(&result, "Opinion"), "已受理");
}

#[tokio::test]
async fn same_serial_number_is_one_case() {
    let fleet = start().await;
    let token = secret("S01.key");
    let params = [
        ("token", token.as_str()),
        ("xmlDoc", DOC),
        ("bizSerialNo", "dup"),
    ];
    let (_, first) = call11(&fleet, "SubmitCase", "SubmitCase", &params).await;
    let (_, second) = call11(&fleet, "SubmitCase", "SubmitCase", &params).await;
    assert_eq!(
        tag(&result_of(&first), "ReceiptNo"),
        tag(&result_of(&second), "ReceiptNo")
    );
    let stats = fleet.stats("S01").await;
    assert_eq!(stats["received"], 1);
    assert_eq!(stats["duplicates"], 1);
}

#[tokio::test]
async fn malformed_documents_and_missing_keys_are_state_2() {
    let fleet = start().await;
    let token = secret("S01.key");
    let (status, answer) = call11(
        &fleet,
        "SubmitCase",
        "SubmitCase",
        &[
            ("token", &token),
            ("xmlDoc", "<CaseInfo><XM>x</CaseInfo>"),
            ("bizSerialNo", "m-1"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let r = result_of(&answer);
    assert_eq!(tag(&r, "state"), "2");
    assert!(tag(&r, "ErrorMessage").contains("XML"), "{r}");
    let bomb = "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>";
    let (_, answer) = call11(
        &fleet,
        "SubmitCase",
        "SubmitCase",
        &[("token", &token), ("xmlDoc", bomb), ("bizSerialNo", "m-2")],
    )
    .await;
    assert!(tag(&result_of(&answer), "ErrorMessage").contains("DTD"));
    let (_, answer) = call11(
        &fleet,
        "SubmitCase",
        "SubmitCase",
        &[("token", &token), ("xmlDoc", DOC)],
    )
    .await;
    assert!(tag(&result_of(&answer), "ErrorMessage").contains("bizSerialNo"));
    let stats = fleet.stats("S01").await;
    assert_eq!(stats["rejected"], 3);
    assert_eq!(stats["received"], 0);
}

#[tokio::test]
async fn wrong_token_action_or_envelope_is_a_client_fault() {
    let fleet = start().await;
    let token = secret("S01.key");
    let (status, answer) = call11(
        &fleet,
        "SubmitCase",
        "SubmitCase",
        &[("token", "bad"), ("xmlDoc", DOC), ("bizSerialNo", "a")],
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        answer.contains("<faultcode>soap:Client</faultcode>"),
        "{answer}"
    );
    let (_, answer) = call11(
        &fleet,
        "SubmitCase",
        "QueryStatus",
        &[("token", &token), ("xmlDoc", DOC), ("bizSerialNo", "a")],
    )
    .await;
    assert!(answer.contains("soap:Client") && answer.contains("SOAPAction"));
    let dtd = encoding_rs::GB18030
        .encode("<!DOCTYPE x [<!ENTITY e \"e\">]><x>&e;</x>")
        .0
        .into_owned();
    let response = fleet
        .client
        .post(fleet.url("/S01/Service.asmx"))
        .header("Content-Type", "text/xml; charset=GB18030")
        .header("SOAPAction", "\"http://tempuri.org/SubmitCase\"")
        .body(dtd)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let bytes = response.bytes().await.unwrap();
    assert!(encoding_rs::GB18030.decode(&bytes).0.contains("DTD"));
    let wrong_media = fleet
        .client
        .post(fleet.url("/S01/Service.asmx"))
        .header("Content-Type", "application/soap+xml; charset=utf-8")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_media.status(), 415);
    assert_eq!(fleet.stats("S01").await["received"], 0);
}

fn envelope12(password: &str, params: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><env:Envelope xmlns:env=\"{NS12}\"><env:Header><wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"><wsse:UsernameToken><wsse:Username>yimen</wsse:Username><wsse:Password>{password}</wsse:Password></wsse:UsernameToken></wsse:Security></env:Header><env:Body><Submit xmlns=\"http://chancheng.gov.cn/approval/\">{params}</Submit></env:Body></env:Envelope>"
    )
}

#[tokio::test]
async fn soap12_with_ws_security() {
    let fleet = start().await;
    let params = format!(
        "<authToken>{}</authToken><caseXml><![CDATA[<Project><Name>禅城区项目</Name></Project>]]></caseXml><serialNo>p-1</serialNo>",
        secret("S02.key")
    );
    let send = |password: String| {
        fleet
            .client
            .post(fleet.url("/S02/ws/ApprovalService.asmx"))
            .header(
                "Content-Type",
                "application/soap+xml; charset=utf-8; action=\"http://chancheng.gov.cn/approval/Submit\"",
            )
            .body(envelope12(&password, &params))
            .send()
    };
    let ok = send(secret("S02.wss")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/soap+xml")
    );
    let text = ok.text().await.unwrap();
    assert!(text.contains(NS12));
    assert_eq!(tag(&result_of(&text), "state"), "1");
    assert_eq!(tag(&result_of(&text), "StatusCode"), "1");
    let refused = send("wrong".into()).await.unwrap();
    assert_eq!(refused.status(), 400);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("<soap:Value>soap:Sender</soap:Value>"),
        "{text}"
    );
    let docs = fleet.received("S02").await;
    assert_eq!(
        docs[0]["body"],
        "<Project><Name>禅城区项目</Name></Project>"
    );
}

#[tokio::test]
async fn wsdl_describes_the_configured_operations() {
    let fleet = start().await;
    let response = fleet
        .client
        .get(fleet.url("/S02/ws/ApprovalService.asmx?wsdl"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let wsdl = response.text().await.unwrap();
    yimen_mock_systems::soap::check_well_formed(&wsdl).unwrap();
    for needle in [
        "targetNamespace=\"http://chancheng.gov.cn/approval/\"",
        "soapAction=\"http://chancheng.gov.cn/approval/Submit\"",
        "name=\"caseXml\"",
        "name=\"serialNo\"",
        "http://schemas.xmlsoap.org/wsdl/soap12/",
        "location=\"/S02/ws/ApprovalService.asmx\"",
    ] {
        assert!(wsdl.contains(needle), "{needle} in {wsdl}");
    }
}
