//! [`Case::validate`] and [`Case::normalize`].
//!
//! Validation walks the whole case and collects every problem, each with the dotted path of the
//! offending value; it never stops at the first. Normalisation trims text, upper-cases identity
//! document numbers and credit codes, and lower-cases digests, so that validation (which does
//! not normalise) accepts what the platform meant.

use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::problem::{Problem, join};
use super::{Applicant, Case, LegalPerson, Material, MaterialKind, NaturalPerson, shapes};

/// Longest case number or matter code, in characters.
pub const MAX_CODE_CHARS: usize = 64;
/// Longest name (person, organisation, matter, material), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest address, in characters.
pub const MAX_ADDRESS_CHARS: usize = 500;
/// Longest free-text value of other fields (organisation type, relation, hall, references).
pub const MAX_TEXT_CHARS: usize = 200;
/// Most materials one case may list.
pub const MAX_MATERIALS: usize = 500;
/// Largest material file, in bytes (1 GiB).
pub const MAX_MATERIAL_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest statutory time limit, in working days.
pub const MAX_TIME_LIMIT_DAYS: u32 = 365;
/// How far ahead of the validating clock `received_at` may be (clock skew between systems).
pub const MAX_CLOCK_SKEW: SignedDuration = SignedDuration::from_hours(24);
/// Earliest plausible `received_at`.
const EARLIEST_RECEIVED: Timestamp = Timestamp::constant(946_656_000, 0); // 2000-01-01T00:00:00+08:00

/// Collects problems while walking a case.
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// A form entry `name` at `path`, and everything inside it: names and texts may hold tabs
    /// and line breaks (multi-line fields), but no other control character. NUL and the rest
    /// cannot be stored as text everywhere, and break line systems that read C strings.
    fn form_entry(&mut self, path: &str, name: &str, value: &serde_json::Value) {
        if has_control(name) {
            self.add(path, "name must not contain control characters");
        }
        self.form_value(path, value);
    }

    /// A form value at `path` (see [`Self::form_entry`]).
    fn form_value(&mut self, path: &str, value: &serde_json::Value) {
        match value {
            serde_json::Value::String(text) if has_control(text) => self.add(
                path,
                "must not contain control characters other than tabs and line breaks",
            ),
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.form_value(&format!("{path}[{index}]"), item);
                }
            }
            serde_json::Value::Object(entries) => {
                for (name, item) in entries {
                    self.form_entry(&join(path, name), name, item);
                }
            }
            _ => {}
        }
    }

    /// Required text: not blank, within `max` characters, no control characters.
    fn required(&mut self, path: &str, value: &str, max: usize) -> bool {
        if value.trim().is_empty() {
            self.add(path, "must not be empty");
            return false;
        }
        self.text(path, value, max)
    }

    /// Optional text that, when present, must be a non-blank `required` text.
    fn optional(&mut self, path: &str, value: Option<&str>, max: usize) -> bool {
        value.is_some_and(|value| self.required(path, value, max))
    }

    /// Text within `max` characters and without control characters.
    fn text(&mut self, path: &str, value: &str, max: usize) -> bool {
        let count = value.chars().count();
        if count > max {
            self.add(
                path,
                format!("is {count} characters long, more than the limit of {max}"),
            );
            return false;
        }
        if value.chars().any(char::is_control) {
            self.add(path, "must not contain control characters");
            return false;
        }
        true
    }

    /// A required code: text without whitespace.
    fn code(&mut self, path: &str, value: &str) {
        if self.required(path, value, MAX_CODE_CHARS) && value.chars().any(char::is_whitespace) {
            self.add(path, "must not contain spaces");
        }
    }

    /// A shape check's outcome, recorded under `path`.
    fn shape<T>(&mut self, path: &str, outcome: Result<T, String>) -> Option<T> {
        outcome.map_err(|message| self.add(path, message)).ok()
    }

    fn person(&mut self, prefix: &str, person: &NaturalPerson, received_on: Date) {
        self.required(&join(prefix, "name"), &person.name, MAX_NAME_CHARS);
        let id_path = join(prefix, "id_number");
        if self.required(&id_path, &person.id_number, MAX_CODE_CHARS) {
            let id = self.shape(
                &id_path,
                shapes::id_number(person.id_type, &person.id_number),
            );
            if let Some(id) = id.flatten() {
                if id.as_str() != person.id_number {
                    self.add(&id_path, "check character must be upper-case X");
                } else if id.birth_date() > received_on {
                    self.add(
                        &id_path,
                        "birth date is after the day the case was received",
                    );
                }
            }
        }
        self.phone(&join(prefix, "phone"), person.phone.as_deref());
        let address = person.address.as_deref();
        self.optional(&join(prefix, "address"), address, MAX_ADDRESS_CHARS);
    }

    fn phone(&mut self, path: &str, phone: Option<&str>) {
        if let Some(phone) = phone
            && self.required(path, phone, 32)
        {
            self.shape(path, shapes::phone(phone));
        }
    }

    fn legal_person(&mut self, prefix: &str, legal: &LegalPerson, received_on: Date) {
        self.required(&join(prefix, "name"), &legal.name, MAX_NAME_CHARS);
        let code_path = join(prefix, "credit_code");
        if self.required(&code_path, &legal.credit_code, MAX_CODE_CHARS) {
            self.shape(&code_path, shapes::credit_code(&legal.credit_code));
        }
        self.required(&join(prefix, "org_type"), &legal.org_type, MAX_TEXT_CHARS);
        let representative = join(prefix, "legal_representative");
        self.person(&representative, &legal.legal_representative, received_on);
        self.optional(
            &join(prefix, "address"),
            legal.address.as_deref(),
            MAX_ADDRESS_CHARS,
        );
        self.phone(&join(prefix, "phone"), legal.phone.as_deref());
    }

    fn material(&mut self, prefix: &str, material: &Material) {
        self.required(&join(prefix, "name"), &material.name, MAX_NAME_CHARS);
        if let Some(sha256) = &material.sha256 {
            self.shape(&join(prefix, "sha256"), shapes::sha256(sha256));
        }
        match material.size {
            Some(0) => self.add(join(prefix, "size"), "must be at least 1 byte"),
            Some(size) if size > MAX_MATERIAL_BYTES => self.add(
                join(prefix, "size"),
                format!("is {size} bytes, more than the limit of {MAX_MATERIAL_BYTES}"),
            ),
            _ => {}
        }
        if let Some(media_type) = &material.media_type {
            let path = join(prefix, "media_type");
            if self.required(&path, media_type, 100) {
                self.shape(&path, shapes::media_type(media_type));
            }
        }
        let file_ref = material.file_ref.as_deref();
        if self.optional(&join(prefix, "file_ref"), file_ref, MAX_TEXT_CHARS)
            && material.sha256.is_none()
        {
            self.add(
                join(prefix, "sha256"),
                "is required when the material has a file_ref",
            );
        }
        let licence_path = join(prefix, "licence_number");
        match (&material.licence_number, material.kind) {
            (Some(number), _) => {
                self.required(&licence_path, number, MAX_TEXT_CHARS);
            }
            (None, MaterialKind::ELicence) => {
                self.add(licence_path, "is required for an e-licence material");
            }
            (None, _) => {}
        }
    }
}

/// A control character other than tab, line feed and carriage return.
fn has_control(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

impl Case {
    /// Every problem of this case, each with its path; empty when the case is valid.
    ///
    /// `received_at` is checked against the system clock; see [`Case::validate_at`].
    pub fn validate(&self) -> Vec<Problem> {
        self.validate_at(Timestamp::now())
    }

    /// Every problem of this case, taking `now` as the current time.
    pub fn validate_at(&self, now: Timestamp) -> Vec<Problem> {
        let mut check = Checker {
            problems: Vec::new(),
        };
        check.code("case_number", &self.case_number);
        check.code("matter.code", &self.matter.code);
        check.required("matter.name", &self.matter.name, MAX_NAME_CHARS);
        check.optional(
            "matter.version",
            self.matter.version.as_deref(),
            MAX_CODE_CHARS,
        );

        if self.received_at > now.saturating_add(MAX_CLOCK_SKEW).unwrap_or(now) {
            check.add("received_at", "is more than 24 hours in the future");
        } else if self.received_at < EARLIEST_RECEIVED {
            check.add("received_at", "is before 2000-01-01");
        }
        let received_on = received_on(self.received_at);

        match &self.applicant {
            Applicant::NaturalPerson(person) => check.person("applicant", person, received_on),
            Applicant::LegalPerson(legal) => check.legal_person("applicant", legal, received_on),
        }
        if let Some(agent) = &self.agent {
            check.person("agent.person", &agent.person, received_on);
            check.optional("agent.relation", agent.relation.as_deref(), MAX_TEXT_CHARS);
        }

        let division = &self.region.division_code;
        if check.required("region.division_code", division, 9) {
            check.shape("region.division_code", shapes::division_code(division));
        }
        check.optional("channel.hall", self.channel.hall.as_deref(), MAX_CODE_CHARS);
        check.optional(
            "channel.window",
            self.channel.window.as_deref(),
            MAX_CODE_CHARS,
        );
        check.optional(
            "channel.clerk_id",
            self.channel.clerk_id.as_deref(),
            MAX_CODE_CHARS,
        );

        if self.form.keys().any(|key| key.trim().is_empty()) {
            check.add("form", "keys must not be empty");
        }
        for (key, value) in &self.form {
            check.form_entry(&join("form", key), key, value);
        }
        if self.materials.len() > MAX_MATERIALS {
            let count = self.materials.len();
            check.add(
                "materials",
                format!("lists {count} materials, more than {MAX_MATERIALS}"),
            );
        }
        for (index, material) in self.materials.iter().enumerate() {
            check.material(&format!("materials[{index}]"), material);
        }
        if let Some(days) = self.time_limit_days
            && days > MAX_TIME_LIMIT_DAYS
        {
            let message = format!("is {days} working days, more than {MAX_TIME_LIMIT_DAYS}");
            check.add("time_limit_days", message);
        }
        check.problems
    }

    /// Trims text, upper-cases document numbers and credit codes, lower-cases digests.
    pub fn normalize(&mut self) {
        trim(&mut self.case_number);
        trim(&mut self.matter.code);
        trim(&mut self.matter.name);
        trim_opt(&mut self.matter.version);
        match &mut self.applicant {
            Applicant::NaturalPerson(person) => normalize_person(person),
            Applicant::LegalPerson(legal) => {
                trim(&mut legal.name);
                trim(&mut legal.credit_code);
                legal.credit_code.make_ascii_uppercase();
                trim(&mut legal.org_type);
                normalize_person(&mut legal.legal_representative);
                trim_opt(&mut legal.address);
                trim_opt(&mut legal.phone);
            }
        }
        if let Some(agent) = &mut self.agent {
            normalize_person(&mut agent.person);
            trim_opt(&mut agent.relation);
        }
        trim(&mut self.region.division_code);
        trim_opt(&mut self.channel.hall);
        trim_opt(&mut self.channel.window);
        trim_opt(&mut self.channel.clerk_id);
        for material in &mut self.materials {
            trim(&mut material.name);
            trim_opt(&mut material.sha256);
            if let Some(sha256) = &mut material.sha256 {
                sha256.make_ascii_lowercase();
            }
            trim_opt(&mut material.media_type);
            trim_opt(&mut material.file_ref);
            trim_opt(&mut material.licence_number);
        }
    }
}

/// The calendar day (UTC+8, mainland China) on which `at` falls.
fn received_on(at: Timestamp) -> Date {
    at.to_zoned(TimeZone::fixed(Offset::constant(8))).date()
}

fn normalize_person(person: &mut NaturalPerson) {
    trim(&mut person.name);
    trim(&mut person.id_number);
    person.id_number.make_ascii_uppercase();
    trim_opt(&mut person.phone);
    trim_opt(&mut person.address);
}

fn trim(value: &mut String) {
    let trimmed = value.trim();
    if trimmed.len() != value.len() {
        *value = trimmed.to_owned();
    }
}

fn trim_opt(value: &mut Option<String>) {
    if let Some(value) = value {
        trim(value);
    }
}
