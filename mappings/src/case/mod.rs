//! The unified case (统一办件): the one format the one-stop platform submits.
//!
//! A case names its matter, its applicant (natural or legal person), an optional agent, the region
//! and window it came in at, free-form form data filled once and reused by many line systems, its
//! materials, and its statutory time limit. [`Case::validate`] reports every problem at once, each
//! with the JSON path of the offending value.
//!
//! Entry points: [`parse_case`] (bytes → normalised, validated case or every [`Problem`]),
//! [`Case::validate`], [`Case::normalize`] and [`case_schema`].
//!
//! Invariants: a case that passed validation has canonical identity numbers (upper-case check
//! characters) and a division code of 6 or 9 digits.

mod parse;
mod problem;
mod schema;
mod shapes;
mod validate;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use parse::{MAX_CASE_BYTES, parse_case};
pub use problem::Problem;
pub use schema::case_schema;
pub use validate::{
    MAX_ADDRESS_CHARS, MAX_CLOCK_SKEW, MAX_CODE_CHARS, MAX_MATERIAL_BYTES, MAX_MATERIALS,
    MAX_NAME_CHARS, MAX_TEXT_CHARS, MAX_TIME_LIMIT_DAYS,
};

/// A case as the platform submits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The platform's own case number (办件编号); the same number twice is the same case.
    pub case_number: String,
    /// The matter (事项) applied for.
    pub matter: Matter,
    /// Who applies.
    pub applicant: Applicant,
    /// Someone acting for the applicant (代办人), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Agent>,
    /// Where the case belongs.
    pub region: Region,
    /// How and where the case came in.
    pub channel: Channel,
    /// When the platform received the case, with its UTC offset (RFC 3339).
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub received_at: Timestamp,
    /// Form data filled once (表单云) and reused by every line system that needs it. Its names
    /// and texts may hold tabs and line breaks, but no other control character.
    #[serde(default)]
    pub form: serde_json::Map<String, serde_json::Value>,
    /// Materials handed in (申请材料).
    #[serde(default)]
    pub materials: Vec<Material>,
    /// Statutory time limit in working days (承诺时限), when the matter has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_days: Option<u32>,
}

/// The matter a case applies for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Matter {
    /// Matter code from the matter catalogue (事项编码), used for routing.
    pub code: String,
    /// Human-readable matter name.
    pub name: String,
    /// Version of the matter's definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The applicant: a natural person (自然人) or a legal person (法人).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Applicant {
    /// A citizen applying for themself.
    NaturalPerson(NaturalPerson),
    /// A company, organisation or individual business.
    LegalPerson(LegalPerson),
}

/// A natural person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NaturalPerson {
    /// Full name as on the identity document; may hold characters outside GBK.
    pub name: String,
    /// Identity document type.
    pub id_type: IdType,
    /// Identity document number.
    pub id_number: String,
    /// Mobile or fixed-line phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Postal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A legal person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalPerson {
    /// Registered name.
    pub name: String,
    /// Unified social credit code (统一社会信用代码, GB 32100).
    pub credit_code: String,
    /// Organisation type (企业, 个体工商户, 社会组织, 事业单位, ...).
    pub org_type: String,
    /// Legal representative (法定代表人).
    pub legal_representative: NaturalPerson,
    /// Registered address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Contact phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Someone acting for the applicant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// The agent's identity.
    pub person: NaturalPerson,
    /// Relation to the applicant or the mandate (委托书编号, 亲属关系, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

/// Identity document types the hub knows; each line system maps them to its own codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// Resident identity card (居民身份证, GB 11643).
    ResidentId,
    /// Passport.
    Passport,
    /// Mainland travel permit for Hong Kong and Macao residents (港澳居民来往内地通行证).
    HkMacaoPermit,
    /// Mainland travel permit for Taiwan residents (台湾居民来往大陆通行证).
    TaiwanPermit,
    /// Foreigner's permanent residence ID card (外国人永久居留身份证).
    ForeignPermanentResident,
}

/// The region a case belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// GB/T 2260 division code: 6 digits (county level) or 9 digits (township level).
    pub division_code: String,
}

/// How the case came in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Intake channel.
    pub kind: ChannelKind,
    /// Service hall identifier (a window case), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hall: Option<String>,
    /// Window number in the hall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// The clerk who took the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clerk_id: Option<String>,
}

/// Intake channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// At a window of the hall.
    Window,
    /// Online (政务服务网).
    Online,
    /// Self-service terminal.
    SelfService,
    /// Mobile app or mini program.
    Mobile,
}

/// One material handed in with a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Material {
    /// Material name as the matter's catalogue lists it.
    pub name: String,
    /// Material kind (original, copy, e-licence, form, ...).
    pub kind: MaterialKind,
    /// SHA-256 of the file content, lower-case hex (absent for an e-licence reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// File size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Media type such as `application/pdf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Reference to a stored file (the hub's material store), when the file was uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_ref: Option<String>,
    /// Electronic licence number (电子证照编号), when the material is an e-licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence_number: Option<String>,
}

/// Kinds of material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaterialKind {
    /// An original document (原件).
    Original,
    /// A copy (复印件).
    Copy,
    /// An electronic licence (电子证照).
    ELicence,
    /// A form the applicant filled in.
    Form,
    /// Anything else.
    Other,
}
