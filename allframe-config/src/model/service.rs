//! `[[services]]`: one entry per service, with the tables any service may carry.
//! The tables tied to one service type live in [`super::archetype`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::archetype::{
    Acl, Bff, Cache, Consumer, Cqrs, GraphQl, Integrations, Job, Saga, Schedule, Stream,
    Subscriptions, WebSocket,
};
use super::choice::choice;
use super::global::DatabaseKind;
use super::resilience::{BulkheadConfig, CircuitBreakerConfig, RateLimitConfig, RetryConfig};

choice! {
    /// The archetype of a service: what it does and what the runtime wires for it.
    pub enum ServiceType {
        /// Request/response, no local state beyond its own tables.
        Stateless = "stateless",
        /// Full event history with CQRS projections.
        EventSourced = "event-sourced",
        /// Coordinates a distributed transaction.
        SagaOrchestrator = "saga-orchestrator",
        /// Integrates an external system.
        Gateway = "gateway",
        /// Processes events.
        Consumer = "consumer",
        /// Emits events.
        Producer = "producer",
        /// Transforms event streams in real time.
        StreamProcessor = "stream-processor",
        /// Backend for a frontend.
        Bff = "bff",
        /// Real-time bidirectional connections.
        WebsocketGateway = "websocket-gateway",
        /// Cron jobs.
        Scheduled = "scheduled",
        /// Adapts a legacy system.
        AntiCorruptionLayer = "anti-corruption-layer",
        /// Distributed cache.
        Cache = "cache",
    }
}

choice! {
    /// A protocol a service speaks to its callers.
    pub enum Protocol {
        /// HTTP/JSON.
        Rest = "rest",
        /// gRPC.
        Grpc = "grpc",
        /// GraphQL over HTTP.
        Graphql = "graphql",
        /// WebSocket.
        Websocket = "websocket",
    }
}

/// `[services.domain]`: the service's domain model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// Entity (aggregate) names, in PascalCase.
    #[serde(default)]
    pub entities: Vec<String>,
    /// Domain events the service produces, in PascalCase.
    #[serde(default)]
    pub events: Vec<String>,
}

/// `[services.ports]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// Listening ports as `protocol:port`, e.g. `rest:8080`, `grpc:9090`.
    #[serde(default)]
    pub inbound: Vec<String>,
    /// What the service calls: `postgres`, `mysql`, `redis`, `event-bus`, or another service's name.
    #[serde(default)]
    pub outbound: Vec<String>,
}

choice! {
    /// The migration tool the service's schema changes are written for.
    pub enum MigrationTool {
        /// sqlx migrations (`migrations/*.sql`).
        Sqlx = "sqlx",
        /// Diesel migrations.
        Diesel = "diesel",
        /// SeaORM migrations.
        SeaOrm = "sea-orm",
    }
}

choice! {
    /// How schema changes are rolled out.
    pub enum MigrationStrategy {
        /// Expand, migrate, then contract: zero-downtime.
        ExpandContract = "expand-contract",
        /// Apply each migration as it is.
        Direct = "direct",
    }
}

/// `[services.database]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDatabase {
    /// The production engine (default: `[settings] default_database`).
    #[serde(rename = "type")]
    pub kind: Option<DatabaseKind>,
    /// The migration tool.
    #[serde(default = "default_migrations")]
    pub migrations: MigrationTool,
    /// The rollout strategy of migrations.
    #[serde(default = "default_migration_strategy")]
    pub strategy: MigrationStrategy,
}

fn default_migrations() -> MigrationTool {
    MigrationTool::Sqlx
}
fn default_migration_strategy() -> MigrationStrategy {
    MigrationStrategy::ExpandContract
}

choice! {
    /// Where idempotency keys and stored responses live.
    pub enum IdempotencyStorage {
        /// Redis.
        Redis = "redis",
        /// The service's PostgreSQL database.
        Postgres = "postgres",
        /// The service's SQLite database.
        Sqlite = "sqlite",
    }
}

/// `[services.idempotency]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Idempotency {
    /// Turn the idempotency layer on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The request header carrying the key.
    #[serde(default = "default_key_header")]
    pub key_header: String,
    /// How long a key and its stored response are kept, in hours.
    #[serde(default = "default_ttl_hours")]
    pub ttl_hours: u32,
    /// The store (default: follows the service's database).
    pub storage: Option<IdempotencyStorage>,
}

fn yes() -> bool {
    true
}
fn default_key_header() -> String {
    "Idempotency-Key".to_owned()
}
fn default_ttl_hours() -> u32 {
    24
}

choice! {
    /// How events leave a service.
    pub enum MessagingPattern {
        /// Transactional outbox: events commit with the state change, a relay publishes them.
        Outbox = "outbox",
        /// Publish after commit, without an outbox.
        Direct = "direct",
        /// The bus's own transactions (Kafka).
        Transactional = "transactional",
    }
}

/// `[services.messaging]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Messaging {
    /// The publishing pattern.
    #[serde(default = "default_pattern")]
    pub pattern: MessagingPattern,
    /// How often the outbox relay polls, in milliseconds.
    #[serde(default = "default_polling")]
    pub outbox_polling_ms: u64,
}

fn default_pattern() -> MessagingPattern {
    MessagingPattern::Outbox
}
fn default_polling() -> u64 {
    100
}

/// One `[[services]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service's name: a DNS label and crate name such as `user-service`.
    pub name: String,
    /// The archetype.
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// What the service is responsible for (one sentence, used in docs).
    pub responsibility: Option<String>,
    /// Protocols it serves (default `["rest"]`).
    pub protocols: Option<Vec<Protocol>>,
    /// Domain model.
    pub domain: Option<Domain>,
    /// Ports.
    pub ports: Option<Ports>,
    /// Database.
    pub database: Option<ServiceDatabase>,
    /// Idempotency keys on unsafe requests.
    pub idempotency: Option<Idempotency>,
    /// How events are published.
    pub messaging: Option<Messaging>,
    /// Backend-for-frontend aggregation (type `bff`).
    pub bff: Option<Bff>,
    /// GraphQL options (type `bff`, or protocol `graphql`).
    pub graphql: Option<GraphQl>,
    /// Saga definition (type `saga-orchestrator`).
    pub saga: Option<Saga>,
    /// External providers (type `gateway`).
    pub integrations: Option<Integrations>,
    /// Event store and projections (type `event-sourced`).
    pub cqrs: Option<Cqrs>,
    /// Consumed events (type `consumer`).
    pub consumer: Option<Consumer>,
    /// WebSocket options (type `websocket-gateway`).
    pub websocket: Option<WebSocket>,
    /// Events pushed to clients (type `websocket-gateway`).
    pub subscriptions: Option<Subscriptions>,
    /// Default schedule (type `scheduled`).
    pub schedule: Option<Schedule>,
    /// Named jobs (type `scheduled`).
    pub jobs: Option<std::collections::BTreeMap<String, Job>>,
    /// Legacy upstream (type `anti-corruption-layer`).
    pub acl: Option<Acl>,
    /// Stream topics and windows (type `stream-processor`).
    pub stream: Option<Stream>,
    /// Cache backend (type `cache`).
    pub cache: Option<Cache>,
    /// Overrides `[resilience] circuit_breaker` field by field.
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Overrides `[resilience] retry` field by field.
    pub retry: Option<RetryConfig>,
    /// Overrides `[resilience] bulkhead` field by field.
    pub bulkhead: Option<BulkheadConfig>,
    /// Overrides `[resilience] rate_limit` field by field.
    pub rate_limit: Option<RateLimitConfig>,
}
