//! Yimen's mapping layer: pure data and pure functions, no async and no network.
//!
//! - [`case`]: the unified case format and its validation (every problem with its JSON path).
//! - [`ids`]: check digits of resident ID numbers (GB 11643) and credit codes (GB 32100 / GB 11714).
//! - [`calendar`]: the working-day calendar and due-date arithmetic.
//! - [`catalog`]: loading `systems/<level>/<id>.toml` mapping files, with file:line:column errors.
//! - [`render`]: turning a case into one line system's document (JSON, XML, CSV row, form fields).
//! - [`route`]: matter code + applicant kind + region → target line systems.
//! - [`mapping`]: one system's compiled mapping (document settings and fields).
//! - [`charset`]: UTF-8, GBK and GB18030, and the check that a text fits one.
//! - [`status`]: the hub's case states and their monotonic order.
//!
//! The hub is the only crate that uses both this crate and `yimen-adapters`.

pub mod calendar;
pub mod case;
pub mod catalog;
pub mod charset;
pub mod ids;
pub mod mapping;
pub mod render;
pub mod route;
pub mod status;
