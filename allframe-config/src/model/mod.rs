//! The typed model of `architecture.toml`: one serde type per section, no catch-all values.
//!
//! Types here describe the file as written. Defaults that need the whole file (ports, the
//! database a service inherits, merged resilience) are computed in [`crate::resolve`].

mod archetype;
mod choice;
mod deploy;
mod global;
mod resilience;
mod service;

pub use archetype::*;
pub use deploy::*;
pub use global::*;
pub use resilience::*;
pub use service::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole `architecture.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "AllFrame architecture.toml")]
pub struct ArchitectureFile {
    /// The system's identity.
    pub architecture: ArchitectureInfo,
    /// System-wide choices.
    #[serde(default)]
    pub settings: Settings,
    /// Resilience defaults every service inherits.
    #[serde(default)]
    pub resilience: Resilience,
    /// Security.
    #[serde(default)]
    pub security: Security,
    /// Compliance.
    #[serde(default)]
    pub compliance: Compliance,
    /// Observability.
    #[serde(default)]
    pub observability: Observability,
    /// Testing.
    #[serde(default)]
    pub testing: Testing,
    /// Feature flags.
    #[serde(default)]
    pub feature_flags: FeatureFlags,
    /// Multi-tenancy.
    #[serde(default)]
    pub tenant: Tenant,
    /// Cloud providers.
    #[serde(default)]
    pub cloud: Cloud,
    /// Deployment strategy.
    #[serde(default)]
    pub deployment: Deployment,
    /// The services.
    #[serde(default)]
    pub services: Vec<Service>,
}
