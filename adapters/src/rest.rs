//! The `rest` kind (being built; see the crate map in lib.rs).

use std::sync::Arc;

use serde::Deserialize;

use crate::adapter::{Adapter, SystemContext};
use crate::registry::{AdapterKind, BuildError};
use crate::settings::Limits;

/// The `rest` kind.
#[derive(Debug)]
pub struct RestKind;

/// Settings of the `rest` kind.
#[derive(Debug, Deserialize)]
pub struct RestSettings(pub toml::Table);

impl AdapterKind for RestKind {
    const NAME: &'static str = "rest";
    type Settings = RestSettings;

    fn build(
        ctx: &SystemContext,
        _limits: &Limits,
        _settings: Self::Settings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Err(BuildError::Environment {
            system: ctx.system_id.clone(),
            message: "the rest adapter kind is not available in this build".to_owned(),
        })
    }
}
