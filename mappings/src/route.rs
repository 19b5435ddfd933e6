//! Routing: matter code + applicant kind + region → the line systems a case goes to.
//!
//! `routes.toml` holds `[[route]]` entries. Every route whose matter equals the case's, whose
//! applicant filter admits the applicant kind and whose region prefixes (if any) match the
//! case's division code contributes its targets, in file order, without repeats (fan-out). An
//! unknown matter is an error naming the code; a known matter with no matching route is an
//! error naming the matter, the applicant kind and the region.
//!
//! Invariant (established at load): every target is a system of the catalogue.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::case::{Applicant, Case};
use crate::catalog::SystemSpec;
use crate::catalog::raw::RawRoute;
use crate::catalog::{LoadError, SourceFile};

/// Which applicants a route admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicantFilter {
    /// Citizens.
    NaturalPerson,
    /// Companies and organisations.
    LegalPerson,
    /// Both.
    Any,
}

impl ApplicantFilter {
    fn admits(self, kind: &str) -> bool {
        match self {
            ApplicantFilter::Any => true,
            ApplicantFilter::NaturalPerson => kind == "natural_person",
            ApplicantFilter::LegalPerson => kind == "legal_person",
        }
    }
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Matter code.
    pub matter: String,
    /// Matter name.
    pub name: String,
    /// Applicant filter.
    pub applicant: ApplicantFilter,
    /// Division-code prefixes; `None` means anywhere.
    pub regions: Option<Vec<String>>,
    /// Target system ids, in order.
    pub targets: Vec<String>,
    /// Statutory time limit in working days, when the route sets one.
    pub time_limit_days: Option<u32>,
}

/// Why a case could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No route mentions the matter.
    #[error("unknown matter code {0:?}: no route in routes.toml")]
    UnknownMatter(String),
    /// Routes exist for the matter, but none admits this applicant kind and region.
    #[error("matter {matter:?} has no route for applicant kind {applicant} in region {region}")]
    NoRoute {
        /// Matter code.
        matter: String,
        /// `natural_person` or `legal_person`.
        applicant: String,
        /// The case's division code.
        region: String,
    },
}

/// The routing table.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Every route, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes that match a case (at least one), or why there are none.
    pub fn matching(&self, case: &Case) -> Result<Vec<&Route>, RouteError> {
        let matter = case.matter.code.as_str();
        let applicant = match case.applicant {
            Applicant::NaturalPerson(_) => "natural_person",
            Applicant::LegalPerson(_) => "legal_person",
        };
        let region = case.region.division_code.as_str();
        let mut known = false;
        let mut matched = Vec::new();
        for route in self.routes.iter().filter(|r| r.matter == matter) {
            known = true;
            let in_region = route
                .regions
                .as_ref()
                .is_none_or(|prefixes| prefixes.iter().any(|p| region.starts_with(p.as_str())));
            if route.applicant.admits(applicant) && in_region {
                matched.push(route);
            }
        }
        if !known {
            return Err(RouteError::UnknownMatter(matter.to_owned()));
        }
        if matched.is_empty() {
            return Err(RouteError::NoRoute {
                matter: matter.to_owned(),
                applicant: applicant.to_owned(),
                region: region.to_owned(),
            });
        }
        Ok(matched)
    }

    /// Target system ids for a case, in route order without repeats.
    pub fn route(&self, case: &Case) -> Result<Vec<String>, RouteError> {
        let mut targets: Vec<String> = Vec::new();
        for route in self.matching(case)? {
            for target in &route.targets {
                if !targets.contains(target) {
                    targets.push(target.clone());
                }
            }
        }
        Ok(targets)
    }

    /// Parses and checks routes.toml against the loaded systems.
    pub(crate) fn load(
        file: &SourceFile<'_>,
        systems: &BTreeMap<String, SystemSpec>,
        broken: &BTreeSet<String>,
        errors: &mut Vec<LoadError>,
    ) -> Routes {
        let (table, syntax) = DeTable::parse_recoverable(file.text);
        if !syntax.is_empty() {
            errors.extend(syntax.iter().map(|e| file.toml_error(e)));
            return Routes::default();
        }
        let mut routes = Vec::new();
        for (key, value) in table.into_inner() {
            match key.get_ref().as_ref() {
                "format" => {
                    if !matches!(value.get_ref(), DeValue::Integer(i) if i.as_str() == "1") {
                        errors.push(file.error(
                            &value.span(),
                            "unsupported format; this version reads format = 1",
                        ));
                    }
                }
                "route" => {
                    let span = value.span();
                    let DeValue::Array(items) = value.into_inner() else {
                        errors.push(
                            file.error(&span, "`route` must be an array of tables ([[route]])"),
                        );
                        continue;
                    };
                    for item in items {
                        match RawRoute::deserialize(ValueDeserializer::from(item)) {
                            Ok(raw) => {
                                if let Some(route) = check(file, raw, systems, broken, errors) {
                                    routes.push(route);
                                }
                            }
                            Err(e) => errors.push(file.toml_error(&e)),
                        }
                    }
                }
                other => errors.push(file.error(
                    &key.span(),
                    format!("unknown key `{other}`; expected `format` or `[[route]]`"),
                )),
            }
        }
        Routes { routes }
    }
}

fn check(
    file: &SourceFile<'_>,
    raw: RawRoute,
    systems: &BTreeMap<String, SystemSpec>,
    broken: &BTreeSet<String>,
    errors: &mut Vec<LoadError>,
) -> Option<Route> {
    let before = errors.len();
    let applicant = match raw.applicant.get_ref().as_str() {
        "natural_person" => ApplicantFilter::NaturalPerson,
        "legal_person" => ApplicantFilter::LegalPerson,
        "any" => ApplicantFilter::Any,
        other => {
            errors.push(file.error(
                &raw.applicant.span(),
                format!("unknown applicant filter {other:?}; expected natural_person, legal_person or any"),
            ));
            ApplicantFilter::Any
        }
    };
    if raw.matter.get_ref().trim().is_empty() {
        errors.push(file.error(&raw.matter.span(), "matter code is empty"));
    }
    for region in raw.regions.iter().flatten() {
        let r = region.get_ref();
        if r.is_empty() || r.len() > 9 || !r.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(file.error(
                &region.span(),
                format!("region {r:?} is not a division-code prefix (1 to 9 digits)"),
            ));
        }
    }
    if raw.regions.as_ref().is_some_and(Vec::is_empty) {
        errors.push(file.error(
            &raw.matter.span(),
            "`regions = []` matches nowhere; leave it out to mean anywhere",
        ));
    }
    if raw.targets.is_empty() {
        errors.push(file.error(&raw.matter.span(), "route has no targets"));
    }
    for target in &raw.targets {
        if broken.contains(target.get_ref()) {
            continue;
        }
        if !systems.contains_key(target.get_ref()) {
            errors.push(file.error(
                &target.span(),
                format!(
                    "unknown system `{}` (no systems/<level>/{}.toml)",
                    target.get_ref(),
                    target.get_ref()
                ),
            ));
        }
    }
    (errors.len() == before).then(|| Route {
        matter: raw.matter.into_inner(),
        name: raw.name,
        applicant,
        regions: raw
            .regions
            .map(|rs| rs.into_iter().map(toml::Spanned::into_inner).collect()),
        targets: raw
            .targets
            .into_iter()
            .map(toml::Spanned::into_inner)
            .collect(),
        time_limit_days: raw.time_limit_days,
    })
}
