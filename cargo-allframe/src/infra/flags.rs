//! `[feature_flags]` with a flag service (Unleash, LaunchDarkly, Flagsmith): the
//! `feature-flags` module and the `terraform/feature-flags` root (applied once, not per region)
//! creating the flag project, one environment per deployment environment (the k8s overlays) and
//! their SDK keys, stored in the cloud's secret store; the AWS and Google Cloud roots give the
//! services the provider, the endpoint, the sync interval and the key's secret. The k8s
//! manifests (endpoint from a ConfigMap per overlay, key from the Secret
//! `<architecture>-feature-flags`), `fly.toml` (`[env]`; the key is a Fly secret) and
//! docker-compose (endpoint and key from the developer's shell) pass the same settings on.
//!
//! `provider = "env"` (the default) needs no infrastructure: nothing is generated.

use allframe_config::model::FlagProvider;
use allframe_config::{Architecture, EnvString};
use allframe_env as vars;
use minijinja::context;
use minijinja::value::Value;
use serde::Serialize;

use super::terraform::{hcl_expr, hcl_literal};
use super::v;
use crate::error::CliError;
use crate::escape::Code;
use crate::templates::{Renderer, cloud as t};
use crate::workspace::PlannedFile;

/// The environment variable holding the SDK key where it is a secret of the service.
pub const SDK_KEY: &str = vars::FEATURE_FLAGS_SDK_KEY.name;

/// What the templates know of `[feature_flags]`.
#[derive(Debug, Clone, Serialize)]
pub struct FlagsContext {
    /// `unleash`, `launchdarkly` or `flagsmith`.
    pub provider: &'static str,
    /// `default_strategy`, as written.
    pub default_strategy: &'static str,
    /// `sync_interval_seconds`.
    pub sync_interval_seconds: u32,
    /// The SDK endpoint of the hosted service; none for Unleash, which is self-hosted or
    /// per-instance.
    pub default_url: Option<&'static str>,
}

/// `[feature_flags]` of `architecture`, unless its provider needs no infrastructure.
pub fn context(architecture: &Architecture) -> Option<FlagsContext> {
    let flags = &architecture.globals().feature_flags;
    let default_url = match flags.provider {
        FlagProvider::Env => return None,
        FlagProvider::Unleash => None,
        FlagProvider::Launchdarkly => Some("https://sdk.launchdarkly.com"),
        FlagProvider::Flagsmith => Some("https://edge.api.flagsmith.com/api/v1/"),
    };
    Some(FlagsContext {
        provider: flags.provider.as_str(),
        default_strategy: flags.default_strategy.as_str(),
        sync_interval_seconds: flags.sync_interval_seconds,
        default_url,
    })
}

/// The environment a service gets from the cloud root `cloud` (`aws`, `gcp` or `fly`): names
/// and HCL expressions. On Google Cloud the key itself is mounted from Secret Manager, on Fly.io
/// it is a Fly secret (both as [`SDK_KEY`]); on AWS the service gets the secret's ARN and may
/// read it.
pub fn service_env(flags: &FlagsContext, cloud: &str) -> Vec<(&'static str, Code)> {
    let quoted = hcl_literal;
    let mut out = vec![
        (vars::FEATURE_FLAGS_PROVIDER.name, quoted(flags.provider)),
        (
            vars::FEATURE_FLAGS_URL.name,
            Code::new("var.feature_flags_url"),
        ),
        (
            vars::FEATURE_FLAGS_SYNC_INTERVAL_SECONDS.name,
            quoted(&flags.sync_interval_seconds.to_string()),
        ),
        (
            vars::FEATURE_FLAGS_DEFAULT_STRATEGY.name,
            quoted(flags.default_strategy),
        ),
    ];
    if cloud == "aws" {
        out.push((
            vars::FEATURE_FLAGS_SECRET_ARN.name,
            Code::new("data.aws_secretsmanager_secret.feature_flags.arn"),
        ));
    }
    out
}

/// Plans the `terraform/feature-flags` root with `common` (the context of every cloud
/// template, holding `flags`).
pub fn plan(
    architecture: &Architecture,
    renderer: &Renderer,
    common: &Value,
    files: &mut Vec<PlannedFile>,
) -> Result<(), CliError> {
    let cloud = &architecture.globals().cloud;
    let project = cloud.gcp.as_ref().and_then(|g| g.project_id.as_ref());
    let deferred = project.is_some_and(EnvString::is_deferred);
    let context = context! {
        flags_aws_regions => v(&cloud.regions),
        gcp_project => if deferred { project.map(hcl_expr) } else { Some(Code::new("var.gcp_project_id")) },
        gcp_project_variable => deferred,
        gcp_project_literal => project.and_then(allframe_config::EnvString::literal),
        ..common.clone()
    };
    for template in t::FLAGS_ROOT {
        let (path, text) = renderer.render(template, &context)?;
        files.push(PlannedFile::new(path, text));
    }
    Ok(())
}
