//! The file-wide sections of `architecture.toml`: everything but `[[services]]`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::choice::choice;
use crate::interpolate::EnvString;

/// `[architecture]`: the system's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchitectureInfo {
    /// Name of the whole system; also the workspace's name.
    pub name: String,
    /// Version of the architecture (semver).
    #[serde(default = "default_version")]
    pub version: String,
    /// Whether services serve several tenants (see `[tenant]`).
    #[serde(default)]
    pub multi_tenant: bool,
}

fn default_version() -> String {
    "0.1.0".to_owned()
}

choice! {
    /// The production event bus the services publish to and consume from.
    pub enum EventBus {
        /// Apache Kafka.
        Kafka = "kafka",
        /// RabbitMQ.
        Rabbitmq = "rabbitmq",
        /// AWS SQS/SNS.
        Sqs = "sqs",
        /// Google Cloud Pub/Sub.
        Pubsub = "pubsub",
        /// NATS JetStream.
        Nats = "nats",
    }
}

choice! {
    /// A database engine.
    pub enum DatabaseKind {
        /// PostgreSQL.
        Postgres = "postgres",
        /// MySQL or MariaDB.
        Mysql = "mysql",
        /// AWS DynamoDB.
        Dynamodb = "dynamodb",
        /// Google Firestore.
        Firestore = "firestore",
        /// SQLite, embedded in the service.
        Sqlite = "sqlite",
    }
}

choice! {
    /// Where telemetry goes.
    pub enum TelemetryBackend {
        /// OpenTelemetry (OTLP).
        Opentelemetry = "opentelemetry",
        /// No export.
        None = "none",
    }
}

choice! {
    /// An event schema registry.
    pub enum SchemaRegistry {
        /// Confluent Schema Registry.
        Confluent = "confluent",
        /// AWS Glue Schema Registry.
        Glue = "glue",
        /// Apicurio Registry.
        Apicurio = "apicurio",
        /// No registry.
        None = "none",
    }
}

choice! {
    /// Wire format of event payloads.
    pub enum EventFormat {
        /// Apache Avro.
        Avro = "avro",
        /// Protocol Buffers.
        Protobuf = "protobuf",
        /// JSON described by JSON Schema.
        JsonSchema = "json-schema",
    }
}

choice! {
    /// Schema evolution rule enforced by the registry.
    pub enum Compatibility {
        /// New readers read old data.
        Backward = "backward",
        /// Old readers read new data.
        Forward = "forward",
        /// Both directions.
        Full = "full",
        /// No check.
        None = "none",
    }
}

/// `[settings.events]`: event schema management.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// The schema registry.
    #[serde(default = "default_registry")]
    pub schema_registry: SchemaRegistry,
    /// The payload format.
    #[serde(default = "default_format")]
    pub format: EventFormat,
    /// The compatibility rule.
    #[serde(default = "default_compatibility")]
    pub compatibility: Compatibility,
}

fn default_registry() -> SchemaRegistry {
    SchemaRegistry::None
}
fn default_format() -> EventFormat {
    EventFormat::JsonSchema
}
fn default_compatibility() -> Compatibility {
    Compatibility::Backward
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            schema_registry: default_registry(),
            format: default_format(),
            compatibility: default_compatibility(),
        }
    }
}

/// `[settings]`: system-wide choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The production event bus (locally, an embedded SQLite log stands in for it).
    #[serde(default = "default_bus")]
    pub event_bus: EventBus,
    /// The database a service uses when it declares none.
    #[serde(default = "default_database")]
    pub default_database: DatabaseKind,
    /// The telemetry backend.
    #[serde(default = "default_telemetry")]
    pub observability: TelemetryBackend,
    /// Event schema management.
    #[serde(default)]
    pub events: EventSettings,
    /// Make every warning an error: in `cargo allframe check` and ignite (like
    /// `--deny-warnings`), and in the `#[allframe::service]` macro, which cannot print
    /// warnings on stable Rust and otherwise leaves them to `check`.
    #[serde(default)]
    pub deny_warnings: bool,
}

fn default_bus() -> EventBus {
    EventBus::Kafka
}
fn default_database() -> DatabaseKind {
    DatabaseKind::Postgres
}
fn default_telemetry() -> TelemetryBackend {
    TelemetryBackend::Opentelemetry
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            event_bus: default_bus(),
            default_database: default_database(),
            observability: default_telemetry(),
            events: EventSettings::default(),
            deny_warnings: false,
        }
    }
}

choice! {
    /// Where secrets come from.
    pub enum SecretsManager {
        /// AWS Secrets Manager.
        AwsSecrets = "aws-secrets",
        /// HashiCorp Vault.
        Vault = "vault",
        /// Google Secret Manager.
        GcpSecrets = "gcp-secrets",
        /// Plain environment variables.
        Env = "env",
    }
}

choice! {
    /// An identity provider.
    pub enum AuthProvider {
        /// AWS Cognito.
        Cognito = "cognito",
        /// Auth0.
        Auth0 = "auth0",
        /// Keycloak.
        Keycloak = "keycloak",
        /// Any other OpenID Connect issuer.
        Custom = "custom",
    }
}

/// `[security.authentication]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// The identity provider.
    pub provider: AuthProvider,
    /// The JWT issuer; usually `${AUTH_ISSUER}`.
    pub jwt_issuer: Option<EnvString>,
    /// The expected JWT audience.
    pub audience: Option<EnvString>,
}

/// `[security]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Where secrets come from.
    #[serde(default = "default_secrets")]
    pub secrets_manager: SecretsManager,
    /// Mutual TLS between services.
    #[serde(default)]
    pub mtls: bool,
    /// Rotation period of API keys and secrets, in days.
    pub api_key_rotation_days: Option<u32>,
    /// Authentication of callers.
    pub authentication: Option<Authentication>,
}

fn default_secrets() -> SecretsManager {
    SecretsManager::Env
}

impl Default for Security {
    fn default() -> Self {
        Self {
            secrets_manager: default_secrets(),
            mtls: false,
            api_key_rotation_days: None,
            authentication: None,
        }
    }
}

/// `[compliance]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compliance {
    /// Record an audit log of every state change.
    #[serde(default)]
    pub audit_logging: bool,
    /// Field names treated as personal data (masked in logs).
    #[serde(default)]
    pub pii_fields: Vec<String>,
    /// How long data is kept, in days.
    pub data_retention_days: Option<u32>,
    /// GDPR obligations (erasure, export).
    #[serde(default)]
    pub gdpr_enabled: bool,
    /// HIPAA obligations.
    #[serde(default)]
    pub hipaa_enabled: bool,
}

choice! {
    /// Trace context propagation format.
    pub enum Propagation {
        /// W3C Trace Context.
        Traceparent = "traceparent",
        /// Zipkin B3.
        B3 = "b3",
        /// Jaeger (uber-trace-id).
        Jaeger = "jaeger",
        /// W3C Baggage.
        Baggage = "baggage",
    }
}

choice! {
    /// Trace sampling strategy.
    pub enum SamplingStrategy {
        /// Sample every trace.
        Always = "always",
        /// Sample none.
        Never = "never",
        /// Sample a fraction (`rate`).
        Probabilistic = "probabilistic",
        /// Follow the caller's decision, else sample `rate`.
        ParentBased = "parent-based",
    }
}

/// `sampling = { strategy, rate }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// The strategy.
    pub strategy: SamplingStrategy,
    /// Fraction of traces kept, from 0.0 to 1.0.
    #[serde(default = "default_rate")]
    pub rate: f64,
}

fn default_rate() -> f64 {
    1.0
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            strategy: SamplingStrategy::ParentBased,
            rate: default_rate(),
        }
    }
}

choice! {
    /// Metrics export.
    pub enum MetricsBackend {
        /// A Prometheus scrape endpoint.
        Prometheus = "prometheus",
        /// OTLP push.
        Otlp = "otlp",
        /// No metrics.
        None = "none",
    }
}

choice! {
    /// Log line format.
    pub enum LogFormat {
        /// `key=value` text lines.
        Structured = "structured",
        /// JSON lines.
        Json = "json",
        /// Compact human-readable text.
        Plain = "plain",
    }
}

/// `[observability.baggage]`: what travels with every request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Baggage {
    /// Propagate the tenant id.
    #[serde(default)]
    pub tenant_id: bool,
    /// Propagate the user id.
    #[serde(default)]
    pub user_id: bool,
    /// Propagate a correlation id.
    #[serde(default = "yes")]
    pub correlation_id: bool,
}

fn yes() -> bool {
    true
}

impl Default for Baggage {
    fn default() -> Self {
        Self {
            tenant_id: false,
            user_id: false,
            correlation_id: true,
        }
    }
}

/// `[observability]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    /// Distributed tracing backend.
    #[serde(default = "default_telemetry")]
    pub tracing: TelemetryBackend,
    /// Accepted and emitted trace context formats.
    #[serde(default = "default_propagation")]
    pub propagation: Vec<Propagation>,
    /// Trace sampling.
    #[serde(default)]
    pub sampling: Sampling,
    /// Metrics export.
    #[serde(default = "default_metrics")]
    pub metrics: MetricsBackend,
    /// Log line format.
    #[serde(default = "default_logging")]
    pub logging: LogFormat,
    /// Baggage propagated with every request.
    #[serde(default)]
    pub baggage: Baggage,
}

fn default_propagation() -> Vec<Propagation> {
    vec![Propagation::Traceparent]
}
fn default_metrics() -> MetricsBackend {
    MetricsBackend::Prometheus
}
fn default_logging() -> LogFormat {
    LogFormat::Structured
}

impl Default for Observability {
    fn default() -> Self {
        Self {
            tracing: default_telemetry(),
            propagation: default_propagation(),
            sampling: Sampling::default(),
            metrics: default_metrics(),
            logging: default_logging(),
            baggage: Baggage::default(),
        }
    }
}

choice! {
    /// Where consumer-driven contracts are published.
    pub enum ContractBroker {
        /// PactFlow.
        Pactflow = "pactflow",
        /// A self-hosted Pact Broker.
        PactBroker = "pact-broker",
        /// Pact files stay in the repository.
        None = "none",
    }
}

choice! {
    /// Load testing tool.
    pub enum LoadTool {
        /// Grafana k6.
        K6 = "k6",
        /// Locust.
        Locust = "locust",
        /// Gatling.
        Gatling = "gatling",
    }
}

/// `load_testing = { tool, baseline_rps }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadTesting {
    /// The tool.
    pub tool: LoadTool,
    /// Requests per second every service must sustain.
    pub baseline_rps: u32,
}

/// `[testing]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Testing {
    /// Generate consumer-driven contract tests.
    #[serde(default)]
    pub contract_testing: bool,
    /// Where contracts are published.
    #[serde(default = "default_broker")]
    pub contract_broker: ContractBroker,
    /// Generate chaos experiments.
    #[serde(default)]
    pub chaos_engineering: bool,
    /// Load test baseline.
    pub load_testing: Option<LoadTesting>,
}

fn default_broker() -> ContractBroker {
    ContractBroker::None
}

impl Default for Testing {
    fn default() -> Self {
        Self {
            contract_testing: false,
            contract_broker: default_broker(),
            chaos_engineering: false,
            load_testing: None,
        }
    }
}

choice! {
    /// Feature flag service.
    pub enum FlagProvider {
        /// Unleash.
        Unleash = "unleash",
        /// LaunchDarkly.
        Launchdarkly = "launchdarkly",
        /// Flagsmith.
        Flagsmith = "flagsmith",
        /// Environment variables.
        Env = "env",
    }
}

choice! {
    /// How a new flag is turned on by default.
    pub enum RolloutStrategy {
        /// On for everyone.
        Default = "default",
        /// On for a growing percentage of users.
        GradualRollout = "gradual-rollout",
        /// On for listed users.
        UserIds = "user-ids",
        /// Percentage with stickiness on a chosen field.
        FlexibleRollout = "flexible-rollout",
    }
}

/// `[feature_flags]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureFlags {
    /// The flag service.
    #[serde(default = "default_flags")]
    pub provider: FlagProvider,
    /// Default rollout strategy.
    #[serde(default = "default_rollout")]
    pub default_strategy: RolloutStrategy,
    /// How often flags are refreshed, in seconds.
    #[serde(default = "default_sync")]
    pub sync_interval_seconds: u32,
}

fn default_flags() -> FlagProvider {
    FlagProvider::Env
}
fn default_rollout() -> RolloutStrategy {
    RolloutStrategy::Default
}
fn default_sync() -> u32 {
    10
}

impl Default for FeatureFlags {
    fn default() -> Self {
        Self {
            provider: default_flags(),
            default_strategy: default_rollout(),
            sync_interval_seconds: default_sync(),
        }
    }
}

choice! {
    /// How tenants' data is kept apart.
    pub enum TenantIsolation {
        /// A schema per tenant.
        Schema = "schema",
        /// A database per tenant.
        Database = "database",
        /// A tenant column on every row.
        RowLevel = "row-level",
    }
}

choice! {
    /// How a request's tenant is found.
    pub enum TenantRouting {
        /// From the host's first label.
        Subdomain = "subdomain",
        /// From the tenant header.
        Header = "header",
        /// From the first path segment.
        Path = "path",
    }
}

/// `[tenant]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Turn tenancy on.
    #[serde(default)]
    pub enabled: bool,
    /// Isolation level.
    #[serde(default = "default_isolation")]
    pub isolation: TenantIsolation,
    /// Header carrying the tenant id.
    #[serde(default = "default_tenant_header")]
    pub header: String,
    /// Where the tenant id is read from.
    #[serde(default = "default_routing")]
    pub routing: TenantRouting,
}

fn default_isolation() -> TenantIsolation {
    TenantIsolation::RowLevel
}
fn default_tenant_header() -> String {
    "X-Tenant-ID".to_owned()
}
fn default_routing() -> TenantRouting {
    TenantRouting::Header
}

impl Default for Tenant {
    fn default() -> Self {
        Self {
            enabled: false,
            isolation: default_isolation(),
            header: default_tenant_header(),
            routing: default_routing(),
        }
    }
}
