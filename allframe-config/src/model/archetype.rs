//! The tables tied to one service type (`[services.saga]`, `[services.consumer]`, …).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::choice::choice;
use super::resilience::{CircuitBreakerConfig, RateLimitConfig, RetryConfig};
use crate::interpolate::EnvString;

choice! {
    /// How a BFF serves cached responses.
    pub enum CachingStrategy {
        /// Serve stale while refreshing in the background.
        StaleWhileRevalidate = "stale-while-revalidate",
        /// Expire after the TTL.
        Ttl = "ttl",
        /// Never cache.
        NoCache = "no-cache",
    }
}

/// `caching = { ttl_seconds, strategy }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BffCaching {
    /// Lifetime of a cached response, in seconds.
    pub ttl_seconds: u64,
    /// The strategy.
    #[serde(default = "default_caching")]
    pub strategy: CachingStrategy,
}

fn default_caching() -> CachingStrategy {
    CachingStrategy::Ttl
}

/// `[services.bff]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bff {
    /// Services whose APIs are aggregated (names of services, in this file or outside it).
    pub aggregates: Vec<String>,
    /// Response caching.
    pub caching: Option<BffCaching>,
    /// Rate limit towards the frontend.
    pub rate_limit: Option<RateLimitConfig>,
}

/// `[services.graphql]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphQl {
    /// Expose an Apollo Federation subgraph.
    #[serde(default)]
    pub federation: bool,
    /// Stitch the aggregated services' schemas.
    #[serde(default)]
    pub schema_stitching: bool,
}

choice! {
    /// Where saga state is persisted.
    pub enum SagaStateStore {
        /// PostgreSQL.
        Postgres = "postgres",
        /// Redis.
        Redis = "redis",
        /// SQLite.
        Sqlite = "sqlite",
    }
}

/// `[services.saga]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Saga {
    /// The saga's name, in PascalCase; also the name of the trait its steps form.
    pub name: String,
    /// Steps, in order, in PascalCase.
    pub steps: Vec<String>,
    /// Compensations: `compensation[i]` undoes `steps[i]`.
    pub compensation: Vec<String>,
    /// Deadline of a whole saga, in seconds; past it, the saga compensates.
    #[serde(default = "default_saga_timeout")]
    pub timeout_seconds: u64,
    /// Where the saga's state is kept (default: the service's database).
    pub state_store: Option<SagaStateStore>,
    /// Steps whose participant answers on the bus, by step name: the step sends its command
    /// and the saga waits for the event answering it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub replies: std::collections::BTreeMap<String, SagaReply>,
}

/// `[services.saga.replies] <Step> = { success = "…", failure = "…" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SagaReply {
    /// The event saying the participant applied the step, in PascalCase: its payload becomes
    /// the step's output.
    pub success: String,
    /// The event saying the participant declined it (the steps before it are compensated).
    pub failure: Option<String>,
}

fn default_saga_timeout() -> u64 {
    300
}

/// `[services.integrations]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Integrations {
    /// External providers, e.g. `stripe`.
    pub providers: Vec<String>,
    /// Circuit breaker for provider calls.
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Retry policy for provider calls.
    pub retry: Option<RetryConfig>,
    /// How long one attempt of a provider call may take (connecting, sending, reading the
    /// answer), in milliseconds; 10 000 when absent.
    pub timeout_ms: Option<u64>,
}

choice! {
    /// An event store engine. The store lives in the service's own database (its appends
    /// share a transaction with the outbox), so only `sqlite` and `postgres` are built;
    /// `allsource` and `eventstore` are refused by validation.
    pub enum EventStoreKind {
        /// PostgreSQL (the service's database, through `DATABASE_URL`).
        Postgres = "postgres",
        /// SQLite (the service's embedded database, the default).
        Sqlite = "sqlite",
        /// AllSource.
        Allsource = "allsource",
        /// EventStoreDB.
        Eventstore = "eventstore",
    }
}

/// `[services.cqrs]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cqrs {
    /// The event store; absent, the service's database (SQLite by default, PostgreSQL with
    /// `DATABASE_URL`).
    pub event_store: Option<EventStoreKind>,
    /// Projections (read models), in PascalCase.
    #[serde(default)]
    pub projections: Vec<String>,
    /// Take a snapshot every N events.
    #[serde(default = "default_snapshot")]
    pub snapshot_frequency: u32,
}

fn default_snapshot() -> u32 {
    100
}

choice! {
    /// A notification channel.
    pub enum Channel {
        /// E-mail.
        Email = "email",
        /// SMS.
        Sms = "sms",
        /// Mobile push.
        Push = "push",
        /// HTTP webhook.
        Webhook = "webhook",
    }
}

choice! {
    /// How the delay between retries grows.
    pub enum Backoff {
        /// Doubles each time.
        Exponential = "exponential",
        /// Grows by the initial delay each time.
        Linear = "linear",
        /// Stays the same.
        Fixed = "fixed",
    }
}

/// `[services.consumer]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Events consumed, in PascalCase.
    pub events: Vec<String>,
    /// Output channels.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Send events that keep failing to a dead letter queue.
    #[serde(default = "yes")]
    pub dlq: bool,
    /// Retries before an event goes to the dead letter queue.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Backoff between retries.
    #[serde(default = "default_backoff")]
    pub retry_backoff: Backoff,
    /// Events handled at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
}

fn yes() -> bool {
    true
}
fn default_max_retries() -> u32 {
    3
}
fn default_backoff() -> Backoff {
    Backoff::Exponential
}
fn default_concurrency() -> u32 {
    10
}

choice! {
    /// WebSocket wire protocol.
    pub enum WsProtocol {
        /// Socket.IO.
        SocketIo = "socket.io",
        /// Plain WebSocket frames.
        Raw = "raw",
        /// GraphQL subscriptions over WebSocket.
        GraphqlSubscriptions = "graphql-subscriptions",
    }
}

choice! {
    /// How WebSocket connections scale across instances.
    pub enum WsScaling {
        /// A load balancer keeps each client on one instance.
        StickySessions = "sticky-sessions",
        /// Instances share messages through Redis.
        RedisAdapter = "redis-adapter",
    }
}

/// `[services.websocket]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebSocket {
    /// Wire protocol.
    #[serde(default = "default_ws_protocol")]
    pub protocol: WsProtocol,
    /// Scaling model.
    #[serde(default = "default_scaling")]
    pub scaling: WsScaling,
    /// Track who is connected.
    #[serde(default)]
    pub presence: bool,
    /// Heartbeat period, in milliseconds.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval_ms: u64,
    /// Connections one instance accepts.
    #[serde(default = "default_max_connections")]
    pub max_connections_per_instance: u32,
}

fn default_ws_protocol() -> WsProtocol {
    WsProtocol::Raw
}
fn default_scaling() -> WsScaling {
    WsScaling::StickySessions
}
fn default_heartbeat() -> u64 {
    30_000
}
fn default_max_connections() -> u32 {
    10_000
}

choice! {
    /// Who may subscribe.
    pub enum SubscriptionAuth {
        /// A valid JWT.
        Jwt = "jwt",
        /// An API key.
        ApiKey = "api-key",
        /// Anyone.
        None = "none",
    }
}

/// `[services.subscriptions]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscriptions {
    /// Events pushed to subscribed clients, in PascalCase.
    pub events: Vec<String>,
    /// Who may subscribe.
    #[serde(default = "default_sub_auth")]
    pub authorization: SubscriptionAuth,
}

fn default_sub_auth() -> SubscriptionAuth {
    SubscriptionAuth::Jwt
}

choice! {
    /// What happens when a run is due while the previous one still runs.
    pub enum OverlapPolicy {
        /// Skip the new run.
        Skip = "skip",
        /// Run it after the current one.
        Queue = "queue",
        /// Run both.
        Allow = "allow",
    }
}

/// `[services.schedule]`: defaults for the service's jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Cron expression (5 fields: minute hour day-of-month month day-of-week).
    pub cron: Option<String>,
    /// IANA time zone the expressions are read in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Deadline of one run, in minutes.
    #[serde(default = "default_timeout_minutes")]
    pub timeout_minutes: u32,
    /// Overlap policy.
    #[serde(default = "default_overlap")]
    pub overlap_policy: OverlapPolicy,
}

fn default_timezone() -> String {
    "UTC".to_owned()
}
fn default_timeout_minutes() -> u32 {
    30
}
fn default_overlap() -> OverlapPolicy {
    OverlapPolicy::Skip
}

/// One entry of `[services.jobs]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Cron expression (5 fields).
    pub cron: String,
    /// Deadline of one run, in minutes (default: the schedule's).
    pub timeout_minutes: Option<u32>,
    /// IANA time zone (default: the schedule's).
    pub timezone: Option<String>,
    /// Overlap policy (default: the schedule's).
    pub overlap_policy: Option<OverlapPolicy>,
}

choice! {
    /// The legacy upstream's protocol.
    pub enum AclProtocol {
        /// SOAP/XML.
        Soap = "soap",
        /// REST/JSON.
        Rest = "rest",
        /// gRPC.
        Grpc = "grpc",
        /// Anything else, spoken by user code.
        Custom = "custom",
    }
}

choice! {
    /// How changes are taken from the upstream.
    pub enum SyncStrategy {
        /// Poll every `polling_interval_seconds`.
        Polling = "polling",
        /// The upstream calls a webhook.
        Webhook = "webhook",
        /// Change data capture.
        Cdc = "cdc",
    }
}

/// `[services.acl]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// The upstream's URL (may use `${VAR}`).
    pub upstream: EnvString,
    /// The upstream's protocol.
    #[serde(default = "default_acl_protocol")]
    pub protocol: AclProtocol,
    /// A TOML file, relative to the service, mapping upstream fields to domain fields.
    pub translation_map: Option<String>,
    /// How changes are taken.
    #[serde(default = "default_sync")]
    pub sync_strategy: SyncStrategy,
    /// Polling period, in seconds.
    #[serde(default = "default_polling_interval")]
    pub polling_interval_seconds: u64,
}

fn default_acl_protocol() -> AclProtocol {
    AclProtocol::Rest
}
fn default_sync() -> SyncStrategy {
    SyncStrategy::Polling
}
fn default_polling_interval() -> u64 {
    60
}

choice! {
    /// A stream window.
    pub enum WindowType {
        /// Fixed, non-overlapping windows.
        Tumbling = "tumbling",
        /// Overlapping windows advancing by `slide_seconds`.
        Sliding = "sliding",
        /// Windows closed by a gap of inactivity.
        Session = "session",
    }
}

/// `windowing = { type, duration_seconds, slide_seconds }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Windowing {
    /// The window type.
    #[serde(rename = "type")]
    pub kind: WindowType,
    /// Window length (session windows: the inactivity gap), in seconds.
    pub duration_seconds: u64,
    /// Advance of a sliding window, in seconds.
    pub slide_seconds: Option<u64>,
}

/// `[services.stream]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Topics read.
    pub input_topics: Vec<String>,
    /// Topics written.
    #[serde(default)]
    pub output_topics: Vec<String>,
    /// Windowing.
    pub windowing: Option<Windowing>,
    /// How late an event may arrive and still count, in seconds.
    #[serde(default)]
    pub late_arrival_tolerance_seconds: u64,
}

choice! {
    /// A cache engine.
    pub enum CacheBackend {
        /// Redis.
        Redis = "redis",
        /// Memcached.
        Memcached = "memcached",
        /// Hazelcast.
        Hazelcast = "hazelcast",
    }
}

choice! {
    /// How the cache and its source of truth stay in step.
    pub enum CacheWriteStrategy {
        /// Write both synchronously.
        WriteThrough = "write-through",
        /// Write the cache, flush later.
        WriteBehind = "write-behind",
        /// Load on miss, invalidate on change.
        CacheAside = "cache-aside",
    }
}

/// `[services.cache]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// The engine.
    #[serde(default = "default_cache_backend")]
    pub backend: CacheBackend,
    /// The write strategy.
    #[serde(default = "default_cache_strategy")]
    pub strategy: CacheWriteStrategy,
    /// Entry lifetime, in seconds.
    #[serde(default = "default_cache_ttl")]
    pub ttl_seconds: u64,
    /// Events that invalidate entries, in PascalCase.
    #[serde(default)]
    pub invalidation: Vec<String>,
}

fn default_cache_backend() -> CacheBackend {
    CacheBackend::Redis
}
fn default_cache_strategy() -> CacheWriteStrategy {
    CacheWriteStrategy::CacheAside
}
fn default_cache_ttl() -> u64 {
    3600
}
