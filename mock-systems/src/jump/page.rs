//! The portal's HTML pages: the pre-filled form, the confirmation and the error page. UTF-8,
//! Chinese, inline styles only (no external resources); every value is HTML-escaped.

use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:'Microsoft YaHei','PingFang SC',sans-serif;background:#f3f5f8;margin:0}\
header{background:#b71c1c;color:#fff;padding:14px 24px;font-size:20px}\
main{max-width:760px;margin:24px auto;background:#fff;padding:24px 32px;border:1px solid #d9dde3}\
label{display:block;margin-top:12px;color:#333;font-size:14px}\
input,select{width:100%;box-sizing:border-box;padding:6px 8px;border:1px solid #aab;font-size:15px}\
button{margin-top:20px;padding:8px 28px;background:#b71c1c;color:#fff;border:0;font-size:16px}\
.note{color:#666;font-size:13px}.error{color:#b71c1c}";

fn layout(title: &str, system_name: &str, content: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{} - {}</title><style>{STYLE}</style></head>\n<body><header>{}</header><main>{content}</main></body></html>\n",
        escape_html(title),
        escape_html(system_name),
        escape_html(system_name),
    )
}

/// The pre-filled form for one delivery.
pub fn form_page(
    system_name: &str,
    delivery: &str,
    fields: &[(String, String)],
    action: &str,
) -> String {
    let mut content = String::new();
    content.push_str("<h1>业务受理（统一受理平台转入）</h1>");
    content.push_str("<p class=\"note\">以下信息由一门式综合受理平台预填，请核对后提交。</p>");
    let _ = write!(
        content,
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"__delivery\" value=\"{}\">",
        escape_html(action),
        escape_html(delivery)
    );
    for (i, (name, value)) in fields.iter().enumerate() {
        let _ = write!(
            content,
            "<label for=\"f{i}\">{}</label><input id=\"f{i}\" name=\"{}\" value=\"{}\">",
            escape_html(name),
            escape_html(name),
            escape_html(value)
        );
    }
    content.push_str(
        "<label for=\"result\">办理意见</label><select id=\"result\" name=\"__result\"><option value=\"accept\" selected>受理</option><option value=\"refuse\">不予受理</option></select>",
    );
    content.push_str("<button type=\"submit\">提交</button></form>");
    layout("业务受理", system_name, &content)
}

/// The confirmation after a submit.
pub fn done_page(system_name: &str, line_case_no: &str, message: &str, hub_ok: bool) -> String {
    let hub = if hub_ok {
        "受理结果已回传统一受理平台。"
    } else {
        "受理结果回传统一受理平台失败，系统将稍后重试。"
    };
    let content = format!(
        "<h1>提交成功</h1><p>本系统办件编号：<strong id=\"line-case-no\">{}</strong></p><p>{}</p><p class=\"note\">{}</p>",
        escape_html(line_case_no),
        escape_html(message),
        escape_html(hub)
    );
    layout("提交成功", system_name, &content)
}

/// An error page (redemption failed, bad submit).
pub fn error_page(system_name: &str, title: &str, detail: &str, status: u16) -> String {
    let content = format!(
        "<h1 class=\"error\">{}</h1><p>{}</p><p class=\"note\">状态码 <span id=\"status\">{status}</span>。请返回统一受理平台重新发起跳转。</p>",
        escape_html(title),
        escape_html(detail)
    );
    layout(title, system_name, &content)
}
