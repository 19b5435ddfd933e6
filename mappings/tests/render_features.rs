//! Every rendering feature, on small catalogues written to temp dirs and the fixture cases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

use std::path::Path;

use serde_json::{Value, json};
use tempfile::TempDir;
use yimen_mappings::case::{Case, parse_case};
use yimen_mappings::catalog::Catalog;
use yimen_mappings::render::{RenderError, Rendered};

fn fixture_case(name: &str) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/cases/{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn case(value: &Value) -> Case {
    match parse_case(value.to_string().as_bytes()) {
        Ok(case) => case,
        Err(problems) => panic!("fixture case invalid: {problems:?}"),
    }
}

fn legal() -> Case {
    case(&fixture_case("legal-person"))
}

fn rare() -> Case {
    case(&fixture_case("natural-person-rare-name"))
}

fn ext_b() -> Case {
    case(&fixture_case("natural-person-ext-b-name"))
}

/// Renders `case` with a one-system catalogue whose `[document]` and fields are given.
fn render(document: &str, fields: &str, case: &Case) -> Result<Rendered, RenderError> {
    let dir = TempDir::new().unwrap();
    let systems = dir.path().join("systems/city");
    std::fs::create_dir_all(&systems).unwrap();
    let text = format!(
        "format = 1\n[system]\nid = \"T01\"\nname = \"t\"\nowner = \"o\"\nlevel = \"city\"\nversion = \"1\"\n[adapter]\nkind = \"rest\"\n[document]\n{document}\n{fields}"
    );
    std::fs::write(systems.join("T01.toml"), text).unwrap();
    std::fs::write(dir.path().join("routes.toml"), "").unwrap();
    let catalog = match Catalog::load(dir.path()) {
        Ok(catalog) => catalog,
        Err(errors) => panic!("{errors}"),
    };
    catalog.render("T01", case)
}

fn text(document: &str, fields: &str, case: &Case) -> String {
    match render(document, fields, case) {
        Ok(rendered) => rendered.text,
        Err(e) => panic!("{e}"),
    }
}

fn error(document: &str, fields: &str, case: &Case) -> String {
    match render(document, fields, case) {
        Ok(rendered) => panic!("rendered unexpectedly:\n{}", rendered.text),
        Err(e) => e.to_string(),
    }
}

const XML_GBK: &str = "shape = \"xml\"\ncharset = \"gbk\"\nroot = \"Doc\"";
const NAME: &str = "[[field]]\nto = \"JBXX/XM\"\nfrom = \"applicant.name\"\n";

#[test]
fn gbk_refuses_a_name_outside_gbk_naming_system_and_field() {
    assert_eq!(
        error(XML_GBK, NAME, &rare()),
        "T01: field JBXX/XM: character '䶮' (U+4DAE) cannot be encoded in GBK"
    );
    assert_eq!(
        error("shape = \"json\"\ncharset = \"gbk\"", NAME, &ext_b()),
        "T01: field JBXX/XM: character '𠀀' (U+20000) cannot be encoded in GBK"
    );
}

#[test]
fn gb18030_encodes_every_character() {
    let doc = "shape = \"xml\"\ncharset = \"gb18030\"\nroot = \"Doc\"";
    for (case, name) in [(rare(), "王䶮"), (ext_b(), "𠀀明")] {
        let rendered = render(doc, NAME, &case).unwrap();
        assert!(rendered.text.contains(&format!("<XM>{name}</XM>")));
        assert_eq!(rendered.content_type, "application/xml; charset=GB18030");
        assert!(
            rendered
                .text
                .starts_with("<?xml version=\"1.0\" encoding=\"GB18030\"?>\n")
        );
        let (decoded, _, had_errors) = encoding_rs::GB18030.decode(&rendered.body);
        assert!(!had_errors);
        assert_eq!(decoded, rendered.text);
    }
    let body = render(doc, NAME, &ext_b()).unwrap().body;
    assert!(
        body.windows(4).any(|w| w == [0x95, 0x32, 0x82, 0x36]),
        "𠀀 as four bytes"
    );
}

#[test]
fn ncr_policy_writes_character_references_in_xml() {
    let doc = format!("{XML_GBK}\nunencodable = \"ncr\"");
    let rendered = render(&doc, NAME, &rare()).unwrap();
    assert!(
        rendered.text.contains("<XM>王&#x4DAE;</XM>"),
        "{}",
        rendered.text
    );
    let (decoded, _, had_errors) = encoding_rs::GBK.decode(&rendered.body);
    assert!(!had_errors);
    assert_eq!(decoded, rendered.text);
    let field_policy = format!(
        "{NAME}unencodable = \"ncr\"\n[[field]]\nto = \"@n\"\nfrom = \"agent.person.name\"\n"
    );
    assert!(text(XML_GBK, &field_policy, &rare()).contains("&#x4DAE;"));
}

#[test]
fn xml_namespaces_attributes_nesting_and_escaping() {
    let doc = "shape = \"xml\"\ncharset = \"utf-8\"\nroot = \"c:Case\"\nnamespaces = { \"\" = \"urn:d\", \"c\" = \"urn:c\" }";
    let fields = r#"
[[field]]
to = "@c:v"
value = "1 \"a\" <b>"
[[field]]
to = "c:Head/No"
from = "case_number"
[[field]]
to = "c:Head/@kind"
from = "applicant.kind"
[[field]]
to = "c:Head/Note"
value = "a & b < c\nline"
[[field]]
to = "Empty"
value = ""
"#;
    assert_eq!(
        text(doc, fields, &legal()),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<c:Case xmlns=\"urn:d\" xmlns:c=\"urn:c\" c:v=\"1 &quot;a&quot; &lt;b&gt;\">\n  <c:Head kind=\"legal_person\">\n    <No>CC20261123000201</No>\n    <Note>a &amp; b &lt; c\nline</Note>\n  </c:Head>\n  <Empty></Empty>\n</c:Case>\n"
    );
}

#[test]
fn control_characters_fail_in_xml() {
    let mut value = fixture_case("legal-person");
    value["form"]["note"] = json!("bell\u{7}");
    let fields = "[[field]]\nto = \"N\"\nfrom = \"form.note\"\n";
    // Intake refuses such a form (`form_texts_must_not_hold_control_characters`); the renderer
    // still refuses to write one into XML if a case reaches it unvalidated.
    let unvalidated: Case = serde_json::from_value(value).unwrap();
    assert_eq!(
        error(XML_GBK, fields, &unvalidated),
        "T01: field N: character U+0007 is not allowed in XML"
    );
}

#[test]
fn repeated_elements_with_attributes_and_empty_lists() {
    let fields = r#"
[[field]]
to = "CLXX/CL"
each = "materials"
  [[field.item]]
  to = "@hash"
  from = "sha256"
  [[field.item]]
  to = "MC"
  from = "name"
"#;
    let out = text(XML_GBK, fields, &legal());
    assert!(out.contains("  <CLXX>\n    <CL hash=\"b8d8d4f79c9489d4d5d921d0704c045c2e12b37030ca0e3408dcb4cb6bdbd886\">\n      <MC>公司登记（备案）申请书</MC>\n    </CL>\n"), "{out}");
    assert!(
        out.contains("    <CL>\n      <MC>法定代表人身份证</MC>\n    </CL>\n  </CLXX>\n"),
        "{out}"
    );
    assert_eq!(out.matches("<CL").count(), 5);
    let none = text(XML_GBK, fields, &ext_b());
    assert_eq!(
        none,
        "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<Doc>\n  <CLXX/>\n</Doc>\n"
    );
    let required = fields.replace(
        "each = \"materials\"",
        "each = \"materials\"\nrequired = true",
    );
    assert_eq!(
        error(XML_GBK, &required, &ext_b()),
        "T01: field CLXX/CL: required value missing (each materials)"
    );
}

#[test]
fn item_errors_name_the_item() {
    let fields = "[[field]]\nto = \"L\"\neach = \"materials\"\n  [[field.item]]\n  to = \"MC\"\n  from = \"name\"\n  max_length = 5\n";
    assert_eq!(
        error("shape = \"json\"", fields, &legal()),
        "T01: field L[0]/MC: value has 11 characters, more than max_length 5"
    );
}

#[test]
fn json_keeps_types_and_nests() {
    let fields = r#"
[[field]]
to = "a/b/limit"
from = "time_limit_days"
[[field]]
to = "a/b/flag"
value = true
[[field]]
to = "a/c"
value = 1.5
[[field]]
to = "bank"
from = "form.bank_account_opening"
[[field]]
to = "seals"
from = "form.seal_count"
codes = { "3" = "three" }
"#;
    assert_eq!(
        text("shape = \"json\"", fields, &legal()),
        "{\n  \"a\": {\n    \"b\": {\n      \"limit\": 3,\n      \"flag\": true\n    },\n    \"c\": 1.5\n  },\n  \"bank\": true,\n  \"seals\": \"three\"\n}\n"
    );
}

#[test]
fn csv_quotes_and_line_ends() {
    let mut value = fixture_case("legal-person");
    value["form"]["note"] = json!("a,\"b\"\nc");
    let fields = "[[field]]\nto = \"NO\"\nfrom = \"case_number\"\n[[field]]\nto = \"NOTE\"\nfrom = \"form.note\"\n[[field]]\nto = \"ABSENT\"\nfrom = \"form.missing\"\n";
    let rendered = render("shape = \"csv\"\ncharset = \"gbk\"", fields, &case(&value)).unwrap();
    assert_eq!(
        rendered.text,
        "NO,NOTE,ABSENT\r\nCC20261123000201,\"a,\"\"b\"\"\nc\",\r\n"
    );
    assert_eq!(rendered.content_type, "text/csv; charset=GBK");
    assert_eq!(rendered.extension, "csv");
    let no_header = render(
        "shape = \"csv\"\ncsv_header = false\ncsv_delimiter = \"\\t\"",
        fields,
        &legal(),
    )
    .unwrap();
    assert_eq!(no_header.text, "CC20261123000201\t\t\r\n");
}

#[test]
fn form_fields_text_and_urlencoded_body() {
    let fields = "[[field]]\nto = \"xm\"\nfrom = \"applicant.name\"\n[[field]]\nto = \"bz\"\nvalue = \"a b&c\\\\\\nd\"\n";
    let rendered = render("shape = \"form\"\ncharset = \"gbk\"", fields, &legal()).unwrap();
    assert_eq!(
        rendered.fields[0],
        (
            "xm".to_owned(),
            "佛山市禅城区瓷韵陶艺文化有限公司".to_owned()
        )
    );
    assert_eq!(rendered.fields[1].1, "a b&c\\\nd");
    assert_eq!(
        rendered.text,
        "xm=佛山市禅城区瓷韵陶艺文化有限公司\nbz=a b&c\\\\\\nd\n"
    );
    let body = String::from_utf8(rendered.body).unwrap();
    assert!(body.starts_with("xm=%B7%F0%C9%BD"), "{body}");
    assert!(body.ends_with("&bz=a+b%26c%5C%0Ad"), "{body}");
    assert_eq!(
        rendered.content_type,
        "application/x-www-form-urlencoded; charset=GBK"
    );
}

#[test]
fn conditions_defaults_and_required() {
    let fields = r#"
[[field]]
to = "frdb"
from = "applicant.legal_representative.name"
required = true
when = { path = "applicant.kind", equals = "legal_person" }
[[field]]
to = "ck"
from = "channel.window"
when = { path = "channel.kind", in = ["window", "self_service"] }
[[field]]
to = "dl"
value = "有代办人"
when = { path = "agent", present = true }
[[field]]
to = "wdl"
value = "无代办人"
when = { path = "agent", present = false }
[[field]]
to = "fax"
from = "form.fax"
default = "无"
[[field]]
to = "bt"
template = "{applicant.name}/{form.fax}"
default = "-"
"#;
    let doc = "shape = \"form\"";
    assert_eq!(
        text(doc, fields, &legal()),
        "frdb=梁嘉欣\nck=B02\ndl=有代办人\nfax=无\nbt=-\n"
    );
    assert_eq!(
        text(doc, fields, &ext_b()),
        "ck=03\ndl=有代办人\nfax=无\nbt=-\n"
    );
    assert_eq!(
        error(
            doc,
            "[[field]]\nto = \"x\"\ntemplate = \"{form.a}{form.b}\"\nrequired = true\n",
            &legal()
        ),
        "T01: field x: required value missing (template needs form.a, form.b)"
    );
}

#[test]
fn code_tables_shared_inline_and_fallback() {
    let inline =
        "[[field]]\nto = \"t\"\nfrom = \"applicant.kind\"\ncodes = { natural_person = \"1\" }\n";
    assert_eq!(
        error("shape = \"form\"", inline, &legal()),
        "T01: field t: value \"legal_person\" is not in code table inline"
    );
    let fallback = format!("{inline}code_default = \"9\"\n");
    assert_eq!(text("shape = \"form\"", &fallback, &legal()), "t=9\n");
}

#[test]
fn dates_timestamps_and_time_zones() {
    let mut value = fixture_case("legal-person");
    value["form"]["founded"] = json!("2026-01-05");
    value["form"]["not_a_date"] = json!("soon");
    let fields = r#"
[[field]]
to = "sh"
from = "received_at"
date_format = "%Y-%m-%d %H:%M:%S"
[[field]]
to = "utc"
from = "received_at"
date_format = "%Y-%m-%dT%H:%M:%SZ"
timezone = "UTC"
[[field]]
to = "founded"
from = "form.founded"
date_format = "%Y年%m月%d日"
[[field]]
to = "birth"
from = "applicant.legal_representative.id_number"
derive = "birth_date"
[[field]]
to = "age"
from = "applicant.legal_representative.id_number"
derive = "age"
[[field]]
to = "sex"
from = "applicant.legal_representative.id_number"
derive = "gender"
"#;
    assert_eq!(
        text("shape = \"form\"", fields, &case(&value)),
        "sh=2026-11-23 09:40:00\nutc=2026-11-23T01:40:00Z\nfounded=2026年01月05日\nbirth=1990-06-22\nage=36\nsex=1\n"
    );
    let bad = "[[field]]\nto = \"d\"\nfrom = \"form.not_a_date\"\ndate_format = \"%Y\"\n";
    assert_eq!(
        error("shape = \"form\"", bad, &case(&value)),
        "T01: field d: value \"soon\" is not a date or timestamp"
    );
}

#[test]
fn derive_from_a_passport_is_absent() {
    let mut value = fixture_case("natural-person-rare-name");
    value["applicant"]["id_type"] = json!("passport");
    value["applicant"]["id_number"] = json!("E12345678");
    let fields = "[[field]]\nto = \"sex\"\nfrom = \"applicant.id_number\"\nderive = \"gender\"\nrequired = true\n";
    assert_eq!(
        error("shape = \"form\"", fields, &case(&value)),
        "T01: field sex: required value missing (from applicant.id_number)"
    );
    let with_default = fields.replace("required = true", "default = \"9\"");
    assert_eq!(
        text("shape = \"form\"", &with_default, &case(&value)),
        "sex=9\n"
    );
}

#[test]
fn lists_where_a_single_value_is_needed_fail_at_render() {
    let fields = "[[field]]\nto = \"s\"\nfrom = \"form.shareholders\"\n";
    assert_eq!(
        error("shape = \"form\"", fields, &legal()),
        "T01: field s: case path form.shareholders holds a list or an object; this shape takes single values"
    );
}

#[test]
fn rendering_is_deterministic_and_unknown_systems_are_named() {
    let a = render(XML_GBK, NAME, &legal()).unwrap();
    let b = render(XML_GBK, NAME, &legal()).unwrap();
    assert_eq!(a, b);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog");
    let catalog = Catalog::load(&dir).unwrap();
    assert_eq!(
        catalog.render("L99", &legal()).unwrap_err().to_string(),
        "unknown line system \"L99\""
    );
}
