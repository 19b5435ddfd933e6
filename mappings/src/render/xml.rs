//! The xml shape: a declaration naming the charset, the root element with its namespace
//! declarations, nested elements from `/`-separated targets, `@name` attributes, one element per
//! `each` item; two-space indentation, `<X/>` for an element with nothing in it.
//!
//! Text and attribute values are escaped here (`&`, `<`, `>`, and `"` plus line ends in
//! attributes); under the `ncr` policy a character the charset cannot hold becomes `&#xHHHH;`.
//! Characters XML 1.0 forbids (most C0 controls) fail the field.

use std::borrow::Cow;

use quick_xml::Writer;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;

use crate::charset::{Charset, Unencodable};
use crate::mapping::{Document, Field, Source};

use super::RenderError;
use super::json::each_items;
use super::scope::Scope;
use super::value::{Env, FieldProblem, condition_holds, evaluate, not_scalar, scalar_text};

#[derive(Debug)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    text: Option<String>,
    children: Vec<Element>,
}

impl Element {
    fn new(name: &str) -> Element {
        Element {
            name: name.to_owned(),
            attributes: Vec::new(),
            text: None,
            children: Vec::new(),
        }
    }

    /// The element at `path` below this one, creating what is missing (the last child of a
    /// name is reused, so repeated `each` elements keep their own content).
    fn descend(&mut self, path: &[String]) -> &mut Element {
        let mut element = self;
        for name in path {
            let index = match element.children.iter().rposition(|c| &c.name == name) {
                Some(index) => index,
                None => {
                    element.children.push(Element::new(name));
                    element.children.len() - 1
                }
            };
            element = &mut element.children[index];
        }
        element
    }
}

pub(crate) fn render(
    document: &Document,
    fields: &[Field],
    root: &Scope<'_>,
    env: &Env<'_>,
) -> Result<String, RenderError> {
    let mut top = Element::new(&document.root);
    for (prefix, uri) in &document.namespaces {
        let name = if prefix.is_empty() {
            "xmlns".to_owned()
        } else {
            format!("xmlns:{prefix}")
        };
        let escaped = escape(uri, document.charset, false, true)
            .map_err(|problem| env.error(&format!("namespaces.{prefix}"), problem))?;
        top.attributes.push((name, escaped));
    }
    write_fields(fields, root, env, document.charset, &mut top, "")?;
    let mut writer = Writer::new(Vec::with_capacity(1024));
    let io = |e: std::io::Error| RenderError::Document {
        system: env.system.to_owned(),
        message: format!("xml output failed: {e}"),
    };
    writer
        .write_event(Event::Decl(BytesDecl::new(
            "1.0",
            Some(document.charset.label()),
            None,
        )))
        .map_err(io)?;
    newline(&mut writer, 0).map_err(io)?;
    write_element(&mut writer, &top, 0).map_err(io)?;
    let mut text = String::from_utf8(writer.into_inner()).map_err(|e| RenderError::Document {
        system: env.system.to_owned(),
        message: format!("xml output is not UTF-8: {e}"),
    })?;
    text.push('\n');
    Ok(text)
}

fn write_fields(
    fields: &[Field],
    scope: &Scope<'_>,
    env: &Env<'_>,
    charset: Charset,
    element: &mut Element,
    prefix: &str,
) -> Result<(), RenderError> {
    for field in fields {
        let owned;
        let name = if prefix.is_empty() {
            field.to.as_str()
        } else {
            owned = format!("{prefix}{}", field.to);
            owned.as_str()
        };
        let elements = &field.target.elements;
        if let Source::Each { path, items } = &field.source {
            if !condition_holds(field, scope) {
                continue;
            }
            let list = each_items(field, path, scope, env, name)?;
            let Some((last, parents)) = elements.split_last() else {
                continue;
            };
            let parent = element.descend(parents);
            for (i, item) in list.iter().enumerate() {
                let mut child = Element::new(last);
                write_fields(
                    items,
                    item,
                    env,
                    charset,
                    &mut child,
                    &format!("{name}[{i}]/"),
                )?;
                parent.children.push(child);
            }
            continue;
        }
        let Some(value) = evaluate(field, name, scope, env, charset)? else {
            continue;
        };
        let text = scalar_text(&value).ok_or_else(|| env.error(name, not_scalar(field)))?;
        let ncr = field.unencodable == Unencodable::Ncr;
        let target = element.descend(elements);
        match &field.target.attribute {
            Some(attribute) => {
                let escaped = escape(&text, charset, ncr, true).map_err(|p| env.error(name, p))?;
                target.attributes.push((attribute.clone(), escaped));
            }
            None => {
                target.text =
                    Some(escape(&text, charset, ncr, false).map_err(|p| env.error(name, p))?);
            }
        }
    }
    Ok(())
}

fn escape(
    text: &str,
    charset: Charset,
    ncr: bool,
    attribute: bool,
) -> Result<String, FieldProblem> {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\n' if attribute => out.push_str("&#xA;"),
            '\t' if attribute => out.push_str("&#x9;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                return Err(FieldProblem::NotXmlChar { ch: c });
            }
            c if ncr && !charset.can_encode(c) => out.push_str(&format!("&#x{:X};", u32::from(c))),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn write_element(
    writer: &mut Writer<Vec<u8>>,
    element: &Element,
    depth: usize,
) -> std::io::Result<()> {
    let mut start = BytesStart::new(element.name.as_str());
    for (key, value) in &element.attributes {
        start.push_attribute(Attribute {
            key: QName(key.as_bytes()),
            value: Cow::Borrowed(value.as_bytes()),
        });
    }
    if element.children.is_empty() && element.text.is_none() {
        return writer.write_event(Event::Empty(start));
    }
    writer.write_event(Event::Start(start))?;
    if let Some(text) = &element.text {
        writer.write_event(Event::Text(BytesText::from_escaped(text.as_str())))?;
    }
    if !element.children.is_empty() {
        for child in &element.children {
            newline(writer, depth + 1)?;
            write_element(writer, child, depth + 1)?;
        }
        newline(writer, depth)?;
    }
    writer.write_event(Event::End(BytesEnd::new(element.name.as_str())))
}

fn newline(writer: &mut Writer<Vec<u8>>, depth: usize) -> std::io::Result<()> {
    let indent = format!("\n{}", "  ".repeat(depth));
    writer.write_event(Event::Text(BytesText::from_escaped(indent)))
}
