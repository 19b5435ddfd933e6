//! Rendering: one case through one system's mapping into that system's document.
//!
//! Case paths are read from the typed case ([`scope`]); each field is evaluated by [`value`] (condition, source,
//! derivation, date format, code table, default, required, length, charset) and written by the
//! shape's writer ([`json`], [`xml`], [`flat`] for csv and form). The text is then encoded in
//! the system's charset.
//!
//! Invariants: rendering is deterministic (same case and mapping → same bytes); a character the
//! charset cannot hold fails rendering naming the field, unless the policy is `ncr` (xml), and is
//! never replaced silently; the text ends with one line end.

mod derive;
mod flat;
mod json;
mod scope;
mod value;
mod xml;

use crate::case::Case;
use crate::catalog::SystemSpec;
use crate::charset::Charset;
use crate::mapping::Shape;

pub use value::FieldProblem;

/// A rendered document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The document as text, before charset encoding (what golden examples compare).
    pub text: String,
    /// The document encoded in the system's charset (what is sent).
    pub body: Vec<u8>,
    /// Media type with charset, such as `application/xml; charset=GB18030`.
    pub content_type: String,
    /// File extension without the dot: `json`, `xml`, `csv` or `form`.
    pub extension: &'static str,
    /// Name/value pairs for the form shape (jump systems); empty for other shapes.
    pub fields: Vec<(String, String)>,
}

/// Why a case could not be rendered for a system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// No system with that id in the catalogue.
    #[error("unknown line system {0:?}")]
    UnknownSystem(String),
    /// A field could not be rendered.
    #[error("{system}: field {field}: {problem}")]
    Field {
        /// The system id.
        system: String,
        /// The target field (`to`), with item positions such as `CLXX/CL[1]/CLMC`.
        field: String,
        /// What is wrong.
        problem: FieldProblem,
    },
    /// The document as a whole could not be produced.
    #[error("{system}: {message}")]
    Document {
        /// The system id.
        system: String,
        /// What is wrong.
        message: String,
    },
}

/// Renders `case` with `spec`'s mapping.
pub fn render(spec: &SystemSpec, case: &Case) -> Result<Rendered, RenderError> {
    let root = scope::Scope::Case(case);
    let env = value::Env::new(&spec.id, case);
    let document = &spec.mapping.document;
    let fields = &spec.mapping.fields;
    let (text, form_fields) = match document.shape {
        Shape::Json => (
            json::render(fields, &root, &env, document.charset)?,
            Vec::new(),
        ),
        Shape::Xml => (xml::render(document, fields, &root, &env)?, Vec::new()),
        Shape::Csv => (flat::csv(document, fields, &root, &env)?, Vec::new()),
        Shape::Form => flat::form(fields, &root, &env, document.charset)?,
    };
    let charset = document.charset;
    let body = if document.shape == Shape::Form {
        flat::urlencode(&form_fields, charset)
            .map_err(|c| unencodable_document(spec, c, charset))?
    } else {
        charset
            .encode(&text)
            .map_err(|c| unencodable_document(spec, c, charset))?
    };
    Ok(Rendered {
        text,
        body,
        content_type: format!(
            "{}; charset={}",
            document.shape.media_type(),
            charset.label()
        ),
        extension: document.shape.extension(),
        fields: form_fields,
    })
}

fn unencodable_document(spec: &SystemSpec, c: char, charset: Charset) -> RenderError {
    RenderError::Document {
        system: spec.id.clone(),
        message: format!(
            "character '{c}' (U+{:04X}) in the mapping's names cannot be encoded in {charset}",
            u32::from(c)
        ),
    }
}
