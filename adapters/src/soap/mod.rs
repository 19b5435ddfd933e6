//! The `soap` kind (being built).

use std::sync::Arc;

use serde::Deserialize;

use crate::adapter::{Adapter, SystemContext};
use crate::registry::{AdapterKind, BuildError};
use crate::settings::Limits;

/// The `soap` kind.
#[derive(Debug)]
pub struct SoapKind;

/// Settings of the `soap` kind.
#[derive(Debug, Deserialize)]
pub struct SoapSettings(pub toml::Table);

impl AdapterKind for SoapKind {
    const NAME: &'static str = "soap";
    type Settings = SoapSettings;

    fn build(
        ctx: &SystemContext,
        _limits: &Limits,
        _settings: Self::Settings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Err(BuildError::Environment {
            system: ctx.system_id.clone(),
            message: "the soap adapter kind is not available in this build".to_owned(),
        })
    }
}
