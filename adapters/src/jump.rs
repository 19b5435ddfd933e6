//! Dedicated-line jump (专线跳转). Not available in this build yet: the kind is registered so
//! mapping files naming it validate, and building it reports why it cannot run.

use std::sync::Arc;

use serde::Deserialize;

use crate::adapter::{Adapter, SystemContext};
use crate::registry::{AdapterKind, BuildError};
use crate::settings::Limits;

/// Issues and verifies jump tickets (专线跳转).
pub trait IssueJumpTickets: Send + Sync {}

/// The `jump` kind.
#[derive(Debug)]
pub struct JumpKind;

/// Settings of the `jump` kind (accepted as-is until the kind is available).
#[derive(Debug, Deserialize)]
pub struct JumpSettings(pub toml::Table);

impl AdapterKind for JumpKind {
    const NAME: &'static str = "jump";
    type Settings = JumpSettings;

    fn build(
        ctx: &SystemContext,
        _limits: &Limits,
        _settings: Self::Settings,
    ) -> Result<Arc<dyn Adapter>, BuildError> {
        Err(BuildError::Environment {
            system: ctx.system_id.clone(),
            message: "the jump adapter kind is not available in this build".to_owned(),
        })
    }
}
