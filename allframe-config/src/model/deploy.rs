//! `[cloud]` and `[deployment]`: where and how services are shipped.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::choice::choice;
use crate::interpolate::EnvString;

choice! {
    /// A cloud provider.
    pub enum CloudProvider {
        /// Amazon Web Services.
        Aws = "aws",
        /// Google Cloud.
        Gcp = "gcp",
        /// Fly.io.
        Fly = "fly",
        /// Shuttle.
        Shuttle = "shuttle",
    }
}

choice! {
    /// Where services run on AWS.
    pub enum AwsRuntime {
        /// Lambda behind API Gateway.
        Lambda = "lambda",
        /// ECS on Fargate.
        Fargate = "fargate",
        /// ECS on EC2.
        Ecs = "ecs",
        /// EKS (Kubernetes).
        Eks = "eks",
    }
}

choice! {
    /// Where services run on Google Cloud.
    pub enum GcpRuntime {
        /// Cloud Run.
        CloudRun = "cloud-run",
        /// Cloud Functions.
        CloudFunctions = "cloud-functions",
        /// GKE (Kubernetes).
        Gke = "gke",
    }
}

/// `[cloud.aws]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsCloud {
    /// Account id; usually `${AWS_ACCOUNT_ID}`.
    pub account_id: Option<EnvString>,
    /// Compute runtime.
    #[serde(default = "default_aws_runtime")]
    pub runtime: AwsRuntime,
}

fn default_aws_runtime() -> AwsRuntime {
    AwsRuntime::Fargate
}

/// `[cloud.gcp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpCloud {
    /// Project id; usually `${GCP_PROJECT_ID}`.
    pub project_id: Option<EnvString>,
    /// Compute runtime.
    #[serde(default = "default_gcp_runtime")]
    pub runtime: GcpRuntime,
}

fn default_gcp_runtime() -> GcpRuntime {
    GcpRuntime::CloudRun
}

/// `[cloud.fly]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlyCloud {
    /// The Fly.io organization.
    pub org: EnvString,
}

/// `[cloud.shuttle]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShuttleCloud {
    /// The Shuttle project.
    pub project: EnvString,
}

/// `[cloud]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cloud {
    /// The cloud deployed to first; its table must be present.
    pub primary: Option<CloudProvider>,
    /// Regions every service is deployed to.
    #[serde(default)]
    pub regions: Vec<String>,
    /// AWS settings.
    pub aws: Option<AwsCloud>,
    /// Google Cloud settings.
    pub gcp: Option<GcpCloud>,
    /// Fly.io settings.
    pub fly: Option<FlyCloud>,
    /// Shuttle settings.
    pub shuttle: Option<ShuttleCloud>,
}

choice! {
    /// How a new version replaces the old one.
    pub enum DeploymentStrategy {
        /// Shift a share of traffic, watch, then promote or roll back.
        Canary = "canary",
        /// Run the new version beside the old one and switch at once.
        BlueGreen = "blue-green",
        /// Replace instances a few at a time.
        Rolling = "rolling",
        /// Stop the old version, then start the new one.
        Recreate = "recreate",
    }
}

/// `promotion_criteria = { error_rate_max, latency_p99_ms }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionCriteria {
    /// Highest error rate (0.0–1.0) at which a canary is promoted.
    #[serde(default = "default_error_rate")]
    pub error_rate_max: f64,
    /// Highest p99 latency at which a canary is promoted, in milliseconds.
    #[serde(default = "default_p99")]
    pub latency_p99_ms: u32,
}

fn default_error_rate() -> f64 {
    0.01
}
fn default_p99() -> u32 {
    500
}

impl Default for PromotionCriteria {
    fn default() -> Self {
        Self {
            error_rate_max: default_error_rate(),
            latency_p99_ms: default_p99(),
        }
    }
}

/// `[deployment]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The strategy.
    #[serde(default = "default_strategy")]
    pub strategy: DeploymentStrategy,
    /// Share of traffic sent to a canary, in percent.
    #[serde(default = "default_canary_percentage")]
    pub canary_percentage: u8,
    /// How long a canary is watched before promotion, in minutes.
    #[serde(default = "default_canary_minutes")]
    pub canary_duration_minutes: u32,
    /// When a canary may be promoted.
    #[serde(default)]
    pub promotion_criteria: PromotionCriteria,
    /// Roll back automatically when the criteria fail.
    #[serde(default = "default_rollback")]
    pub rollback_on_failure: bool,
}

fn default_strategy() -> DeploymentStrategy {
    DeploymentStrategy::Rolling
}
fn default_canary_percentage() -> u8 {
    10
}
fn default_canary_minutes() -> u32 {
    15
}
fn default_rollback() -> bool {
    true
}

impl Default for Deployment {
    fn default() -> Self {
        Self {
            strategy: default_strategy(),
            canary_percentage: default_canary_percentage(),
            canary_duration_minutes: default_canary_minutes(),
            promotion_criteria: PromotionCriteria::default(),
            rollback_on_failure: default_rollback(),
        }
    }
}
