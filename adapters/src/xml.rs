//! Hardened XML reading, used for every XML answer a line system sends (SOAP envelopes, the
//! escaped result documents inside them, receipt files).
//!
//! Invariants: a document type declaration (`<!DOCTYPE …>`) is an error, so no entity can be
//! declared; the only entity references accepted are the five predefined ones and character
//! references; nesting is at most [`MAX_DEPTH`] elements; input is at most [`MAX_SIZE`] bytes.
//! Parsing is a single linear pass: a hostile document fails fast with a located error.

use encoding_rs::{Encoding, UTF_8};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// Largest document accepted, in bytes.
pub const MAX_SIZE: usize = 8 * 1024 * 1024;

/// Why a document was refused. Positions are byte offsets into the decoded text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Larger than [`MAX_SIZE`].
    #[error("xml document of {size} bytes exceeds the limit of {MAX_SIZE} bytes")]
    TooLarge {
        /// The document's size.
        size: usize,
    },
    /// A `<!DOCTYPE …>` declaration (entity declarations live there).
    #[error("xml document type declarations are refused (at byte {position})")]
    Doctype {
        /// Where it starts.
        position: u64,
    },
    /// An entity reference other than the five predefined ones.
    #[error(
        "xml entity reference &{name}; is refused: only &lt; &gt; &amp; &apos; &quot; and character references are accepted (at byte {position})"
    )]
    Entity {
        /// The entity's name.
        name: String,
        /// Where it is.
        position: u64,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("xml nesting deeper than {MAX_DEPTH} elements (at byte {position})")]
    TooDeep {
        /// Where the limit was crossed.
        position: u64,
    },
    /// Not well-formed.
    #[error("malformed xml at byte {position}: {message}")]
    Malformed {
        /// Where the reader stopped.
        position: u64,
        /// What the reader found.
        message: String,
    },
    /// No root element.
    #[error("xml document has no root element")]
    Empty,
}

/// An element of a parsed document: local name, attributes, direct text and child elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Local name (namespace prefix removed).
    pub name: String,
    /// Attributes as (qualified name, unescaped value).
    pub attributes: Vec<(String, String)>,
    /// The element's own text and CDATA, unescaped and concatenated.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The element at a path of local names below this one.
    pub fn find(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |at, name| at.child(name))
    }
}

/// A reader configured the one way every XML in this crate is read: end names checked, empty
/// elements expanded, comments checked. Callers must still refuse `Event::DocType` and resolve
/// `Event::GeneralRef` with [`resolve_reference`]; [`parse`] does both.
pub fn reader(text: &str) -> Reader<&[u8]> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = true;
    config.allow_unmatched_ends = false;
    config.allow_dangling_amp = false;
    reader
}

/// Resolves a reference: one of the five predefined entities or a character reference.
pub fn resolve_reference(
    reference: &quick_xml::events::BytesRef<'_>,
    position: u64,
) -> Result<char, XmlError> {
    let name = String::from_utf8_lossy(reference.as_ref()).into_owned();
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c),
            _ => Err(XmlError::Malformed {
                position,
                message: format!("invalid character reference &{name};"),
            }),
        };
    }
    match name.as_str() {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        _ => Err(XmlError::Entity { name, position }),
    }
}

/// Parses a document into its root [`Element`], with every limit of this module enforced.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    if text.len() > MAX_SIZE {
        return Err(XmlError::TooLarge { size: text.len() });
    }
    let mut reader = reader(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let position = reader.buffer_position();
        let event = reader.read_event().map_err(|e| XmlError::Malformed {
            position: reader.error_position(),
            message: e.to_string(),
        })?;
        let malformed = |message: String| XmlError::Malformed { position, message };
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype { position }),
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep { position });
                }
                if root.is_some() && stack.is_empty() {
                    return Err(malformed("content after the root element".to_owned()));
                }
                stack.push(element(&start, position)?);
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| malformed("unexpected end tag".to_owned()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => {
                let decoded = text.xml_content().map_err(|e| malformed(e.to_string()))?;
                match stack.last_mut() {
                    Some(current) => current.text.push_str(&decoded),
                    None if decoded.trim().is_empty() => {}
                    None => return Err(malformed("text outside the root element".to_owned())),
                }
            }
            Event::CData(data) => {
                let decoded = data.xml_content().map_err(|e| malformed(e.to_string()))?;
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&decoded);
                }
            }
            Event::GeneralRef(reference) => {
                let c = resolve_reference(&reference, position)?;
                match stack.last_mut() {
                    Some(current) => current.text.push(c),
                    None => return Err(malformed("reference outside the root element".to_owned())),
                }
            }
            Event::Empty(_) | Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError::Malformed {
            position: reader.buffer_position(),
            message: format!("unclosed element <{}>", open.name),
        });
    }
    root.ok_or(XmlError::Empty)
}

fn element(start: &BytesStart<'_>, position: u64) -> Result<Element, XmlError> {
    let malformed = |message: String| XmlError::Malformed { position, message };
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| malformed(e.to_string()))?;
        let value = attribute.unescape_value().map_err(|e| match e {
            quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(
                _,
                name,
            )) => XmlError::Entity { name, position },
            other => malformed(other.to_string()),
        })?;
        let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
        attributes.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attributes,
        ..Element::default()
    })
}

/// The encoding an XML declaration names (`<?xml version="1.0" encoding="GB18030"?>`).
pub fn declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes.get(..bytes.len().min(256))?;
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let declaration = std::str::from_utf8(&head[..end]).ok()?;
    let (_, after) = declaration.split_once("encoding")?;
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let label = after[1..].split(quote).next()?;
    Encoding::for_label(label.as_bytes())
}

/// Decodes an XML answer: by the transport's charset when given, else the XML declaration, else
/// a byte-order mark, else UTF-8. Refuses input larger than [`MAX_SIZE`].
pub fn decode(bytes: &[u8], transport: Option<&'static Encoding>) -> Result<String, XmlError> {
    if bytes.len() > MAX_SIZE {
        return Err(XmlError::TooLarge { size: bytes.len() });
    }
    let encoding = transport
        .or_else(|| declared_encoding(bytes))
        .unwrap_or(UTF_8);
    let (text, _, _) = encoding.decode(bytes);
    Ok(text.into_owned())
}

/// Removes a leading XML declaration (and byte-order mark) from a document.
pub fn strip_declaration(text: &str) -> &str {
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("<?xml")
        && let Some(end) = text.find("?>")
    {
        return text[end + 2..].trim_start();
    }
    text
}
