//! The flat shapes: csv (one record, optionally after a header row of the `to` names; an
//! absent field is an empty cell; records end with `\r\n`) and form (name/value pairs for a
//! jump system's pre-filled form; the text is `name=value` lines with `\`, line feed and
//! carriage return escaped as `\\`, `\n`, `\r`; the body is urlencoded in the charset).

use crate::charset::Charset;
use crate::mapping::{Document, Field};

use super::RenderError;
use super::scope::Scope;
use super::value::{Env, evaluate, not_scalar, scalar_text};

pub(crate) fn csv(
    document: &Document,
    fields: &[Field],
    root: &Scope<'_>,
    env: &Env<'_>,
) -> Result<String, RenderError> {
    let mut record = Vec::with_capacity(fields.len());
    for field in fields {
        let cell = match evaluate(field, &field.to, root, env, document.charset)? {
            Some(value) => {
                scalar_text(&value).ok_or_else(|| env.error(&field.to, not_scalar(field)))?
            }
            None => String::new(),
        };
        record.push(cell);
    }
    let mut writer = csv::WriterBuilder::new()
        .delimiter(document.csv_delimiter)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(256));
    let failed = |e: csv::Error| RenderError::Document {
        system: env.system.to_owned(),
        message: format!("csv output failed: {e}"),
    };
    if document.csv_header {
        writer
            .write_record(fields.iter().map(|f| f.to.as_str()))
            .map_err(failed)?;
    }
    writer.write_record(&record).map_err(failed)?;
    let bytes = writer.into_inner().map_err(|e| RenderError::Document {
        system: env.system.to_owned(),
        message: format!("csv output failed: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| RenderError::Document {
        system: env.system.to_owned(),
        message: format!("csv output is not UTF-8: {e}"),
    })
}

pub(crate) fn form(
    fields: &[Field],
    root: &Scope<'_>,
    env: &Env<'_>,
    charset: Charset,
) -> Result<(String, Vec<(String, String)>), RenderError> {
    let mut pairs = Vec::with_capacity(fields.len());
    let mut text = String::new();
    for field in fields {
        let Some(value) = evaluate(field, &field.to, root, env, charset)? else {
            continue;
        };
        let value = scalar_text(&value).ok_or_else(|| env.error(&field.to, not_scalar(field)))?;
        text.push_str(&field.to);
        text.push('=');
        for c in value.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                '\r' => text.push_str("\\r"),
                c => text.push(c),
            }
        }
        text.push('\n');
        pairs.push((field.to.clone(), value));
    }
    Ok((text, pairs))
}

/// `application/x-www-form-urlencoded` in the charset; fails with a character it cannot hold.
pub(crate) fn urlencode(pairs: &[(String, String)], charset: Charset) -> Result<Vec<u8>, char> {
    let mut out = Vec::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        percent(&charset.encode(name)?, &mut out);
        out.push(b'=');
        percent(&charset.encode(value)?, &mut out);
    }
    Ok(out)
}

fn percent(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(b),
            b' ' => out.push(b'+'),
            b => out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]),
        }
    }
}
