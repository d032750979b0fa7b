//! What the infrastructure and documentation templates see: the whole architecture, every
//! service (with or without a generated crate), the engines the file uses with their local
//! host ports, the event flows and the deployment settings.
//!
//! Every decision about infrastructure (which engine a service needs, which URL it gets, which
//! host port an engine takes) is made here, once; templates only spell the decisions out. No
//! secret is ever put in this model: credentials come from the environment or the cloud's
//! secret store at deploy or run time.

use allframe_env as vars;
use std::collections::{BTreeMap, BTreeSet};

use allframe_config::model::{
    DatabaseKind, DeploymentStrategy, EventBus, MetricsBackend, TelemetryBackend,
};
use allframe_config::{Archetype, Architecture, ResolvedService};
use heck::ToSnakeCase;
use serde::Serialize;

pub use super::shutdown::ShutdownContext;

use super::compose_env::ComposeWiring;
use super::engines::{condition, dependencies, engines_of, uses_redis, variables};

/// The host port tried first for each engine in `docker-compose.yml`.
pub mod preferred_port {
    /// PostgreSQL.
    pub const POSTGRES: u16 = 5432;
    /// MySQL.
    pub const MYSQL: u16 = 3306;
    /// Redis.
    pub const REDIS: u16 = 6379;
    /// Memcached.
    pub const MEMCACHED: u16 = 11211;
    /// Hazelcast.
    pub const HAZELCAST: u16 = 5701;
    /// DynamoDB Local.
    pub const DYNAMODB: u16 = 8000;
    /// The Firestore emulator.
    pub const FIRESTORE: u16 = 8200;
    /// Kafka (the listener for clients on the host).
    pub const KAFKA: u16 = 9092;
    /// NATS.
    pub const NATS: u16 = 4222;
    /// RabbitMQ (AMQP).
    pub const RABBITMQ: u16 = 5672;
    /// RabbitMQ's management UI.
    pub const RABBITMQ_UI: u16 = 15672;
    /// The schema registry.
    pub const SCHEMA_REGISTRY: u16 = 8081;
    /// The OpenTelemetry collector (OTLP over gRPC).
    pub const OTEL_GRPC: u16 = 4317;
    /// The OpenTelemetry collector (OTLP over HTTP).
    pub const OTEL_HTTP: u16 = 4318;
}

/// One environment variable of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// The name, e.g. `DATABASE_URL`.
    pub name: String,
    /// The value, e.g. `postgres://allframe@postgres:5432/user_service`.
    pub value: String,
    /// Compose takes the value from the developer's shell (`${NAME:-}`): meaningless on a
    /// cloud, where the variable is set as a secret or setting of the deployment instead.
    pub from_shell: bool,
}

pub(super) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: value.into(),
        from_shell: false,
    }
}

/// `name`, which Compose takes from the developer's shell (empty when unset there).
pub(super) fn shell_env(name: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: format!("${{{name}:-}}"),
        from_shell: true,
    }
}

/// A value of the file written as `${VAR}`: which variables it needs at deploy or run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deferred {
    /// The key path, e.g. `security.authentication.jwt_issuer`.
    pub key: String,
    /// The variables it references, in order, without duplicates.
    pub variables: Vec<String>,
}

/// An event a service publishes or receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventFlow {
    /// The event's name (PascalCase) or a stream topic.
    pub name: String,
    /// The services on the other side (producers for consumed events, consumers for produced
    /// ones); empty when the other side is outside the file.
    pub peers: Vec<String>,
}

/// A compose `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The compose service.
    pub name: &'static str,
    /// `service_healthy` for engines with a health check, else `service_started`.
    pub condition: &'static str,
}

/// One service of the file, as the infrastructure sees it.
#[derive(Debug, Clone, Serialize)]
pub struct InfraService {
    /// The name (`user-service`): container, binary, crate directory and DNS name.
    pub name: String,
    /// snake_case (`user_service`): database and Terraform names.
    pub snake: String,
    /// The type, as written.
    pub kind: &'static str,
    /// True when ignite generates its crate (only then does its image build).
    pub has_crate: bool,
    /// One line, no final period.
    pub responsibility: String,
    /// Protocols served, as written.
    pub protocols: Vec<&'static str>,
    /// The HTTP port (REST, GraphQL, WebSocket, health).
    pub http_port: u16,
    /// The gRPC port.
    pub grpc_port: Option<u16>,
    /// A separate metrics port.
    pub metrics_port: Option<u16>,
    /// The admin API's port, for a service whose runtime serves one (consumers: their dead
    /// letters): HTTP port + 1000, where `cargo allframe dlq` looks. Published on the host's
    /// loopback only; served only when `ALLFRAME_ADMIN_TOKEN` is set.
    pub admin_port: Option<u16>,
    /// The production database engine.
    pub database: &'static str,
    /// The database's name (snake_case of the service), when it has a server database.
    pub database_name: Option<String>,
    /// True when it talks to Redis.
    pub redis: bool,
    /// True when it publishes or consumes events.
    pub bus: bool,
    /// Events it declares (its domain events).
    pub produces: Vec<EventFlow>,
    /// Events it receives (consumer events, subscriptions, cache invalidations).
    pub consumes: Vec<EventFlow>,
    /// Stream topics read and written (stream processors).
    pub input_topics: Vec<String>,
    /// Stream topics written.
    pub output_topics: Vec<String>,
    /// True when failed events go to a dead letter queue.
    pub dlq: bool,
    /// Deliveries before an event goes to the dead letter queue.
    pub max_retries: u32,
    /// Services of this file it calls (BFF aggregates, `ports.outbound`).
    pub calls: Vec<String>,
    /// Services it calls that are not in this file.
    pub external_calls: Vec<String>,
    /// Services of this file that call it.
    pub callers: Vec<String>,
    /// True when it faces clients from outside the system (BFF, gateway, WebSocket).
    pub public: bool,
    /// Environment of its container in `docker-compose.yml`.
    pub compose_env: Vec<EnvVar>,
    /// The engines it waits for in `docker-compose.yml`.
    pub depends_on: Vec<Dependency>,
    /// Its `${VAR}` values.
    pub deferred: Vec<Deferred>,
    /// The resilience in effect.
    pub resilience: allframe_config::model::ResiliencePolicy,
    /// Idempotency key lifetime in hours, when idempotency is on.
    pub idempotency_ttl_hours: Option<u32>,
    /// Inbound rate limit, requests per second (the built-in 1000 when none is declared: the
    /// WAF's per-client rule exists either way).
    pub rate_limit_rps: u32,
}

/// A host port mapping of an engine container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Engine {
    /// The port on the host.
    pub host: u16,
}

/// The engines `docker-compose.yml` runs: exactly those the file uses.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Engines {
    /// PostgreSQL, with the databases to create.
    pub postgres: Option<Engine>,
    /// MySQL.
    pub mysql: Option<Engine>,
    /// Redis.
    pub redis: Option<Engine>,
    /// Memcached.
    pub memcached: Option<Engine>,
    /// Hazelcast.
    pub hazelcast: Option<Engine>,
    /// DynamoDB Local.
    pub dynamodb: Option<Engine>,
    /// The Firestore emulator.
    pub firestore: Option<Engine>,
    /// Kafka (KRaft, one node).
    pub kafka: Option<Engine>,
    /// NATS with JetStream.
    pub nats: Option<Engine>,
    /// RabbitMQ.
    pub rabbitmq: Option<Engine>,
    /// RabbitMQ's management UI.
    pub rabbitmq_ui: Option<Engine>,
    /// Confluent Schema Registry.
    pub confluent_registry: Option<Engine>,
    /// Apicurio Registry.
    pub apicurio_registry: Option<Engine>,
    /// OpenTelemetry collector, OTLP/gRPC.
    pub otel: Option<Engine>,
    /// OpenTelemetry collector, OTLP/HTTP.
    pub otel_http: Option<Engine>,
    /// Names of the compose services that are engines, in file order of the template.
    pub names: Vec<&'static str>,
    /// Databases to create in PostgreSQL.
    pub postgres_databases: Vec<String>,
    /// Databases to create in MySQL.
    pub mysql_databases: Vec<String>,
}

/// `[deployment]` with defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentContext {
    /// `canary`, `blue-green`, `rolling` or `recreate`.
    pub strategy: &'static str,
    /// Share of traffic sent to a canary, in percent.
    pub canary_percentage: u8,
    /// How long a canary is watched, in minutes.
    pub canary_duration_minutes: u32,
    /// Highest error rate at which a canary is promoted.
    pub error_rate_max: f64,
    /// Highest p99 latency at which a canary is promoted, in milliseconds.
    pub latency_p99_ms: u32,
    /// Roll back automatically.
    pub rollback_on_failure: bool,
}

/// The clouds present in `[cloud]`.
#[derive(Debug, Clone, Serialize)]
pub struct CloudContext {
    /// `[cloud] primary`.
    pub primary: Option<&'static str>,
    /// `[cloud] regions`.
    pub regions: Vec<String>,
    /// `[cloud.aws] runtime`, when AWS is configured.
    pub aws: Option<&'static str>,
    /// `[cloud.gcp] runtime`, when Google Cloud is configured.
    pub gcp: Option<&'static str>,
    /// True when `[cloud.fly]` is configured.
    pub fly: bool,
    /// True when `[cloud.shuttle]` is configured.
    pub shuttle: bool,
}

/// A Terraform input variable standing for a `${VAR}` of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TfVariable {
    /// The variable's name: the environment variable in snake_case (`aws_account_id`).
    pub name: String,
    /// The environment variable (`AWS_ACCOUNT_ID`): set it as `TF_VAR_aws_account_id`.
    pub env: String,
    /// Where the file uses it.
    pub keys: Vec<String>,
    /// The `${VAR:-default}` default, when every use gives the same one.
    pub default: Option<String>,
}

/// The context of every infrastructure and documentation template.
#[derive(Debug, Clone, Serialize)]
pub struct InfraContext {
    /// `[architecture] name`.
    pub architecture: String,
    /// The name as a Terraform/SQL identifier.
    pub architecture_snake: String,
    /// `[architecture] version`.
    pub version: String,
    /// Every service of the file, in file order.
    pub services: Vec<InfraService>,
    /// The engines the file uses locally.
    pub engines: Engines,
    /// `[settings] event_bus`, when any service publishes or consumes.
    pub event_bus: Option<&'static str>,
    /// The URL services get as `EVENT_BUS_URL` in compose.
    pub event_bus_url: Option<String>,
    /// `[settings.events] schema_registry`.
    pub schema_registry: &'static str,
    /// `[settings.events] format`.
    pub event_format: &'static str,
    /// `[settings.events] compatibility`.
    pub compatibility: &'static str,
    /// Every event declared by a service, sorted.
    pub events: Vec<String>,
    /// True when traces go to OpenTelemetry.
    pub otel: bool,
    /// True when metrics are scraped by Prometheus.
    pub prometheus: bool,
    /// `[security] secrets_manager`.
    pub secrets_manager: &'static str,
    /// `[security] api_key_rotation_days`.
    pub rotation_days: Option<u32>,
    /// `[security] mtls`.
    pub mtls: bool,
    /// `[deployment]`.
    pub deployment: DeploymentContext,
    /// How Kubernetes workloads stop a pod.
    pub shutdown: ShutdownContext,
    /// `[cloud]`.
    pub cloud: CloudContext,
    /// Terraform variables for every `${VAR}` of the file.
    pub variables: Vec<TfVariable>,
    /// Services of the file left out of this context: in the deployable infrastructure, those
    /// ignite generates no crate for (their images could not be built).
    pub skipped: Vec<SkippedService>,
    /// Environment of the `tests` container of `docker-compose.test.yml`.
    pub test_env: Vec<EnvVar>,
    /// What the `tests` container waits for.
    pub test_dependencies: Vec<Dependency>,
}

/// A service of the file that a context leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedService {
    /// Its name.
    pub name: String,
    /// Its type, as written.
    pub kind: &'static str,
}

/// Which services of the file a context describes.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The services whose crates ignite generates (compose, images, manifests, clouds): nothing
    /// may reference an image that cannot be built.
    Deployable(&'a BTreeSet<String>),
    /// Every service of the file (the diagram and the architecture document), with
    /// `has_crate` telling which ones ignite generates.
    Whole(&'a BTreeSet<String>),
}

impl Scope<'_> {
    fn generated(&self) -> &BTreeSet<String> {
        match self {
            Scope::Deployable(generated) | Scope::Whole(generated) => generated,
        }
    }

    fn includes(&self, service: &ResolvedService) -> bool {
        match self {
            Scope::Deployable(generated) => generated.contains(service.name()),
            Scope::Whole(_) => true,
        }
    }
}

/// The events a service receives (`[services.consumer] events`, `[services.subscriptions]
/// events`, `[services.cache] invalidation`, a saga's replies), in order, without duplicates.
fn consumed_by(service: &ResolvedService) -> Vec<String> {
    let mut events: Vec<String> = Vec::new();
    for event in service.archetype.consumed_events() {
        if !events.iter().any(|known| known == event) {
            events.push(event.to_owned());
        }
    }
    events
}

/// Builds the infrastructure context of `architecture` for the services of `scope`.
pub fn build(architecture: &Architecture, scope: Scope<'_>) -> InfraContext {
    let globals = architecture.globals();
    let settings = &globals.settings;
    let all: Vec<&ResolvedService> = architecture
        .services()
        .iter()
        .filter(|s| scope.includes(s))
        .collect();
    let by_name: BTreeMap<&str, &ResolvedService> = all.iter().map(|s| (s.name(), *s)).collect();
    let names: BTreeSet<&str> = by_name.keys().copied().collect();
    let consumed: BTreeMap<&str, Vec<String>> =
        all.iter().map(|s| (s.name(), consumed_by(s))).collect();
    // Event → the services producing it, and → those receiving it, in file order.
    let mut producers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut receivers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for service in &all {
        for event in service.events() {
            producers
                .entry(event)
                .or_default()
                .push(service.name().to_owned());
        }
        for event in &consumed[service.name()] {
            receivers
                .entry(event)
                .or_default()
                .push(service.name().to_owned());
        }
    }

    let uses_bus = |s: &ResolvedService| {
        let outbound = s.common.outbound.iter();
        !s.events().is_empty()
            || !consumed[s.name()].is_empty()
            || matches!(s.archetype, Archetype::StreamProcessor(_))
            || s.common.messaging.is_some()
            || outbound.clone().any(|o| {
                matches!(
                    o.as_str(),
                    "event-bus" | "kafka" | "rabbitmq" | "nats" | "sqs" | "pubsub"
                )
            })
    };
    let any_bus = all.iter().any(|s| uses_bus(s));
    let event_bus = any_bus.then_some(settings.event_bus);
    let otel = settings.observability == TelemetryBackend::Opentelemetry
        || globals.observability.tracing == TelemetryBackend::Opentelemetry;

    let mut engines = engines_of(architecture, &all, event_bus, otel, &uses_bus);
    let event_bus_url = event_bus.and_then(|bus| match bus {
        EventBus::Kafka => Some("kafka://kafka:9092".to_owned()),
        EventBus::Nats => Some("nats://nats:4222".to_owned()),
        EventBus::Rabbitmq => Some("amqp://guest:guest@rabbitmq:5672/%2f".to_owned()),
        EventBus::Sqs | EventBus::Pubsub => None,
    });

    let wiring = ComposeWiring {
        by_name: &by_name,
        event_bus_url: event_bus_url.as_deref(),
        schema_registry: settings.events.schema_registry,
        engines: &engines,
        otel,
    };
    let mut services = Vec::with_capacity(all.len());
    for &s in &all {
        let outbound: Vec<&str> = s.common.outbound.iter().map(String::as_str).collect();
        let mut calls: Vec<String> = Vec::new();
        let mut external_calls: Vec<String> = Vec::new();
        let targets = s
            .archetype
            .aggregates()
            .iter()
            .map(String::as_str)
            .chain(outbound.iter().copied().filter(|o| names.contains(o)));
        for target in targets {
            let list = if names.contains(target) {
                &mut calls
            } else {
                &mut external_calls
            };
            if target != s.name() && !list.iter().any(|t| t == target) {
                list.push(target.to_owned());
            }
        }
        let database_name = matches!(
            s.common.database,
            DatabaseKind::Postgres | DatabaseKind::Mysql
        )
        .then(|| s.name().to_snake_case());
        let redis = uses_redis(s);
        let bus = uses_bus(s);
        let consumer = match &s.archetype {
            Archetype::Consumer(consumer) => Some(consumer),
            _ => None,
        };
        let stream = match &s.archetype {
            Archetype::StreamProcessor(stream) => Some(stream),
            _ => None,
        };
        let produces = s
            .events()
            .iter()
            .map(|e| EventFlow {
                name: e.clone(),
                peers: receivers.get(e.as_str()).cloned().unwrap_or_default(),
            })
            .collect();
        let consumes = consumed[s.name()]
            .iter()
            .map(|e| EventFlow {
                peers: producers.get(e.as_str()).cloned().unwrap_or_default(),
                name: e.clone(),
            })
            .collect();

        let admin_port = consumer.map(|_| vars::default_admin_port(s.common.http_port));
        let compose_env =
            wiring.compose_env(s, database_name.as_deref(), bus, redis, admin_port, &calls);

        services.push(InfraService {
            name: s.name().to_owned(),
            snake: s.name().to_snake_case(),
            kind: s.kind().as_str(),
            has_crate: scope.generated().contains(s.name()),
            responsibility: responsibility(s),
            protocols: s.common.protocols.iter().map(|p| p.as_str()).collect(),
            http_port: s.common.http_port,
            grpc_port: s.common.grpc_port,
            metrics_port: s.common.metrics_port,
            admin_port,
            database: s.common.database.as_str(),
            database_name,
            redis,
            bus,
            produces,
            consumes,
            input_topics: stream.map_or_else(Vec::new, |st| st.input_topics.clone()),
            output_topics: stream.map_or_else(Vec::new, |st| st.output_topics.clone()),
            dlq: consumer.is_some_and(|c| c.dlq),
            max_retries: consumer.map_or(0, |c| c.max_retries),
            calls,
            external_calls,
            callers: Vec::new(),
            public: matches!(
                s.kind(),
                allframe_config::model::ServiceType::Bff
                    | allframe_config::model::ServiceType::Gateway
                    | allframe_config::model::ServiceType::WebsocketGateway
            ),
            depends_on: dependencies(&compose_env, &engines),
            compose_env,
            deferred: architecture
                .deferred_values(s)
                .into_iter()
                .filter(|(key, _)| key.starts_with("services["))
                .filter(|(_, value)| value.variables().next().is_some())
                .map(|(key, value)| Deferred {
                    key,
                    variables: dedup(value.variables().map(str::to_owned)),
                })
                .collect(),
            resilience: s.common.resilience,
            idempotency_ttl_hours: s.common.idempotency.as_ref().map(|i| i.ttl_hours),
            rate_limit_rps: s
                .common
                .resilience
                .rate_limit
                .map_or(allframe_config::model::builtin::RATE_LIMIT.rps, |r| r.rps),
        });
    }
    let callers: BTreeMap<String, Vec<String>> = services
        .iter()
        .flat_map(|s| s.calls.iter().map(|t| (t.clone(), s.name.clone())))
        .fold(BTreeMap::new(), |mut map, (target, caller)| {
            map.entry(target).or_insert_with(Vec::new).push(caller);
            map
        });
    for service in &mut services {
        service.callers = callers.get(&service.name).cloned().unwrap_or_default();
    }
    engines.postgres_databases = services
        .iter()
        .filter(|s| s.database == "postgres")
        .filter_map(|s| s.database_name.clone())
        .collect();
    engines.mysql_databases = services
        .iter()
        .filter(|s| s.database == "mysql")
        .filter_map(|s| s.database_name.clone())
        .collect();

    let mut events: Vec<String> = all.iter().flat_map(|s| s.events().to_vec()).collect();
    events.sort();
    events.dedup();

    let mut test_env = Vec::new();
    if engines.postgres.is_some() {
        test_env.push(env(
            vars::DATABASE_URL.name,
            "postgres://allframe@postgres:5432/allframe",
        ));
    }
    if let Some(url) = &event_bus_url {
        test_env.push(env(vars::EVENT_BUS_URL.name, url.clone()));
    }
    if engines.redis.is_some() {
        test_env.push(env(vars::REDIS_URL.name, "redis://redis:6379"));
    }
    let test_dependencies = engines
        .names
        .iter()
        .map(|name| Dependency {
            name,
            condition: condition(name),
        })
        .collect();

    let deployment = &globals.deployment;
    let cloud = &globals.cloud;
    InfraContext {
        test_env,
        test_dependencies,
        architecture: architecture.name().to_owned(),
        architecture_snake: architecture.name().to_snake_case(),
        version: globals.architecture.version.clone(),
        skipped: architecture
            .services()
            .iter()
            .filter(|s| !scope.includes(s))
            .map(|s| SkippedService {
                name: s.name().to_owned(),
                kind: s.kind().as_str(),
            })
            .collect(),
        services,
        engines,
        event_bus: event_bus.map(EventBus::as_str),
        event_bus_url,
        schema_registry: settings.events.schema_registry.as_str(),
        event_format: settings.events.format.as_str(),
        compatibility: settings.events.compatibility.as_str(),
        events,
        otel,
        prometheus: globals.observability.metrics == MetricsBackend::Prometheus,
        secrets_manager: globals.security.secrets_manager.as_str(),
        rotation_days: globals.security.api_key_rotation_days,
        mtls: globals.security.mtls,
        deployment: DeploymentContext {
            strategy: deployment.strategy.as_str(),
            canary_percentage: deployment.canary_percentage,
            canary_duration_minutes: deployment.canary_duration_minutes,
            error_rate_max: deployment.promotion_criteria.error_rate_max,
            latency_p99_ms: deployment.promotion_criteria.latency_p99_ms,
            rollback_on_failure: deployment.rollback_on_failure,
        },
        shutdown: ShutdownContext::KUBERNETES,
        cloud: CloudContext {
            primary: cloud.primary.map(|p| p.as_str()),
            regions: cloud.regions.clone(),
            aws: cloud.aws.as_ref().map(|a| a.runtime.as_str()),
            gcp: cloud.gcp.as_ref().map(|g| g.runtime.as_str()),
            fly: cloud.fly.is_some(),
            shuttle: cloud.shuttle.is_some(),
        },
        variables: variables(architecture, &all),
    }
}

/// True when the deployment shifts traffic gradually or switches it (Argo Rollouts in k8s).
pub fn progressive(strategy: DeploymentStrategy) -> bool {
    matches!(
        strategy,
        DeploymentStrategy::Canary | DeploymentStrategy::BlueGreen
    )
}

fn responsibility(service: &ResolvedService) -> String {
    service
        .common
        .responsibility
        .as_deref()
        .map(|r| {
            r.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .trim_end_matches('.')
                .to_owned()
        })
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| format!("A {} service", service.kind().as_str()))
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}
