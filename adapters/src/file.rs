//! File exchange through local folders or SFTP (前置机). Not available in this build yet: the
//! kind is registered so mapping files naming it validate, and building it reports why it cannot run.

use std::sync::Arc;

use serde::Deserialize;

use crate::adapter::{Adapter, SystemContext};
use crate::registry::{AdapterKind, BuildError};
use crate::settings::Limits;

/// The `file` kind.
#[derive(Debug)]
pub struct FileKind;

/// Settings of the `file` kind (accepted as-is until the kind is available).
#[derive(Debug, Deserialize)]
pub struct FileSettings(pub toml::Table);

impl AdapterKind for FileKind {
    const NAME: &'static str = "file";
    type Settings = FileSettings;

    fn build(
        ctx: &SystemContext,
        _limits: &Limits,
        _settings: Self::Settings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Err(BuildError::Environment {
            system: ctx.system_id.clone(),
            message: "the file adapter kind is not available in this build".to_owned(),
        })
    }
}
