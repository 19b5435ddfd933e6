//! Field options that need more than a type check: template placeholders, date formats with
//! their time zones, and code tables (shared or inline) with their fallback.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use jiff::tz::TimeZone;
use toml::Spanned;

use crate::mapping::{CasePath, Codes, DateFormat, Derive, Piece};

use super::compile::FieldCompiler;
use super::paths::PathNode;

impl FieldCompiler<'_> {
    pub(super) fn template(&mut self, template: &Spanned<String>, root: &PathNode) -> Vec<Piece> {
        let text = template.get_ref();
        let span = template.span();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((i, c)) = rest.next() {
            match c {
                '{' if rest.peek().map(|&(_, n)| n) == Some('{') => {
                    rest.next();
                    literal.push('{');
                }
                '}' if rest.peek().map(|&(_, n)| n) == Some('}') => {
                    rest.next();
                    literal.push('}');
                }
                '{' => {
                    let Some(end) = text[i..].find('}').map(|e| i + e) else {
                        let at = self.file.offset_in_string(&span, text, i);
                        self.errors.push(self.file.error_at(at, "template has `{` without a closing `}` (write `{{` for a literal brace)"));
                        return pieces;
                    };
                    let path = &text[i + 1..end];
                    if let Err(problem) = root.resolve(path) {
                        let at = self.file.offset_in_string(&span, text, i + 1);
                        self.errors
                            .push(self.file.error_at(at, problem.message(path)));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Path(CasePath::new(path)));
                    while rest.peek().is_some_and(|&(j, _)| j <= end) {
                        rest.next();
                    }
                }
                '}' => {
                    let at = self.file.offset_in_string(&span, text, i);
                    self.errors.push(self.file.error_at(
                        at,
                        "template has `}` without an opening `{` (write `}}` for a literal brace)",
                    ));
                    return pieces;
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        pieces
    }

    pub(super) fn date_format(
        &mut self,
        pattern: Option<Spanned<String>>,
        timezone: Option<Spanned<String>>,
        derive: Option<&Spanned<Derive>>,
    ) -> Option<DateFormat> {
        let zone = match &timezone {
            Some(name) => match TimeZone::get(name.get_ref()) {
                Ok(zone) => Some(zone),
                Err(_) => {
                    let message = format!(
                        "unknown time zone {:?} (use an IANA name such as Asia/Shanghai)",
                        name.get_ref()
                    );
                    self.error(&name.span(), message);
                    None
                }
            },
            None => None,
        };
        if let Some(d) = derive
            && matches!(d.get_ref(), Derive::Gender | Derive::Age)
            && let Some(p) = &pattern
        {
            self.error(
                &p.span(),
                "`date_format` applies to dates; `derive` gender and age are not dates",
            );
            return None;
        }
        let pattern = match (pattern, derive.map(Spanned::get_ref)) {
            (Some(p), _) => p,
            (None, Some(Derive::BirthDate)) => Spanned::new(0..0, "%Y-%m-%d".to_owned()),
            (None, _) => {
                if let Some(t) = timezone {
                    self.error(&t.span(), "`timezone` needs `date_format`");
                }
                return None;
            }
        };
        let probe = jiff::civil::date(2026, 1, 2)
            .at(3, 4, 5, 0)
            .to_zoned(TimeZone::UTC);
        if let Err(e) =
            probe.and_then(|p| jiff::fmt::strtime::format(pattern.get_ref().as_bytes(), &p))
        {
            let message = format!("bad date_format {:?}: {e}", pattern.get_ref());
            self.error(&pattern.span(), message);
            return None;
        }
        let timezone = zone.unwrap_or_else(crate::mapping::shanghai);
        Some(DateFormat {
            pattern: pattern.into_inner(),
            timezone,
        })
    }

    pub(super) fn codes(
        &mut self,
        table: Option<Spanned<String>>,
        inline: Option<Spanned<BTreeMap<String, String>>>,
        fallback: Option<Spanned<String>>,
        span: &Range<usize>,
    ) -> Option<Codes> {
        let fallback_value = fallback.as_ref().map(|f| f.get_ref().clone());
        match (table, inline) {
            (Some(table), Some(_)) => {
                self.error(
                    &table.span(),
                    "give either `code_table` or `codes`, not both",
                );
                None
            }
            (Some(table), None) => match self.code_tables.get(table.get_ref()) {
                Some(map) => Some(Codes {
                    name: table.get_ref().clone(),
                    map: Arc::clone(map),
                    fallback: fallback_value,
                }),
                None => {
                    let known: Vec<&str> = self.code_tables.keys().map(String::as_str).collect();
                    let message = format!(
                        "unknown code table `{}` (no codes/{}.toml); known tables: {}",
                        table.get_ref(),
                        table.get_ref(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    );
                    self.error(&table.span(), message);
                    None
                }
            },
            (None, Some(inline)) => Some(Codes {
                name: "inline".to_owned(),
                map: Arc::new(inline.into_inner()),
                fallback: fallback_value,
            }),
            (None, None) => {
                if let Some(f) = fallback {
                    let _ = span;
                    self.error(&f.span(), "`code_default` needs `code_table` or `codes`");
                }
                None
            }
        }
    }
}
