//! Which engines an architecture needs locally (databases, buses, caches, collectors), the host
//! port each gets, the Terraform variables its services read, and what a service waits for
//! before it starts: the decisions behind [`super::model::InfraContext`]'s engines.

use std::collections::{BTreeMap, BTreeSet};

use allframe_config::model::{
    CacheBackend, DatabaseKind, EventBus, IdempotencyStorage, SagaStateStore, SchemaRegistry,
    WsScaling,
};
use allframe_config::{Archetype, Architecture, ResolvedService, Segment};

use super::model::{Dependency, Engine, Engines, EnvVar, TfVariable, preferred_port};

pub(super) fn uses_redis(service: &ResolvedService) -> bool {
    let archetype_uses_redis = match &service.archetype {
        Archetype::SagaOrchestrator { saga, .. } => saga.state_store == Some(SagaStateStore::Redis),
        Archetype::Cache(cache) => cache.table.backend == CacheBackend::Redis,
        Archetype::WebsocketGateway {
            websocket: Some(websocket),
            ..
        } => websocket.scaling == WsScaling::RedisAdapter,
        _ => false,
    };
    archetype_uses_redis
        || service
            .common
            .idempotency
            .as_ref()
            .is_some_and(|i| i.storage == IdempotencyStorage::Redis)
        || service.common.outbound.iter().any(|o| o == "redis")
}

/// Decides which engines run locally and gives each a host port no service listens on.
pub(super) fn engines_of(
    architecture: &Architecture,
    all: &[&ResolvedService],
    bus: Option<EventBus>,
    otel: bool,
    uses_bus: &dyn Fn(&ResolvedService) -> bool,
) -> Engines {
    let mut used: BTreeSet<u16> = all
        .iter()
        .flat_map(|s| {
            [
                Some(s.common.http_port),
                s.common.grpc_port,
                s.common.metrics_port,
            ]
        })
        .flatten()
        .collect();
    let db = |kind: DatabaseKind| all.iter().any(|s| s.common.database == kind);
    let cache = |backend: CacheBackend| {
        all.iter()
            .any(|s| matches!(&s.archetype, Archetype::Cache(c) if c.table.backend == backend))
    };
    // A registry is only useful next to a local broker with a Confluent-compatible API.
    let local_bus = matches!(
        bus,
        Some(EventBus::Kafka | EventBus::Rabbitmq | EventBus::Nats)
    ) && all.iter().any(|s| uses_bus(s));
    let registry = architecture.globals().settings.events.schema_registry;
    let rabbit = bus == Some(EventBus::Rabbitmq);
    use preferred_port as p;
    let mut e = Engines::default();
    // (compose service, in use, slot, preferred host port), in the order the template lists them.
    let wanted: [(&'static str, bool, &mut Option<Engine>, u16); 15] = [
        (
            "postgres",
            db(DatabaseKind::Postgres),
            &mut e.postgres,
            p::POSTGRES,
        ),
        ("mysql", db(DatabaseKind::Mysql), &mut e.mysql, p::MYSQL),
        (
            "dynamodb",
            db(DatabaseKind::Dynamodb),
            &mut e.dynamodb,
            p::DYNAMODB,
        ),
        (
            "firestore",
            db(DatabaseKind::Firestore),
            &mut e.firestore,
            p::FIRESTORE,
        ),
        (
            "redis",
            all.iter().any(|s| uses_redis(s)),
            &mut e.redis,
            p::REDIS,
        ),
        (
            "memcached",
            cache(CacheBackend::Memcached),
            &mut e.memcached,
            p::MEMCACHED,
        ),
        (
            "hazelcast",
            cache(CacheBackend::Hazelcast),
            &mut e.hazelcast,
            p::HAZELCAST,
        ),
        (
            "kafka",
            bus == Some(EventBus::Kafka),
            &mut e.kafka,
            p::KAFKA,
        ),
        (
            "schema-registry",
            local_bus && registry == SchemaRegistry::Confluent && bus == Some(EventBus::Kafka),
            &mut e.confluent_registry,
            p::SCHEMA_REGISTRY,
        ),
        (
            "schema-registry",
            local_bus && registry == SchemaRegistry::Apicurio,
            &mut e.apicurio_registry,
            p::SCHEMA_REGISTRY,
        ),
        ("nats", bus == Some(EventBus::Nats), &mut e.nats, p::NATS),
        ("rabbitmq", rabbit, &mut e.rabbitmq, p::RABBITMQ),
        ("", rabbit, &mut e.rabbitmq_ui, p::RABBITMQ_UI),
        ("otel-collector", otel, &mut e.otel, p::OTEL_GRPC),
        ("", otel, &mut e.otel_http, p::OTEL_HTTP),
    ];
    let mut names = Vec::new();
    for (name, on, slot, preferred) in wanted {
        if !on {
            continue;
        }
        let host = (preferred..=u16::MAX)
            .find(|port| !used.contains(port))
            .unwrap_or(preferred);
        used.insert(host);
        *slot = Some(Engine { host });
        if !name.is_empty() {
            names.push(name);
        }
    }
    e.names = names;
    e
}

/// One Terraform variable per environment variable the `${VAR}` values of the file and of
/// `services` reference.
pub(super) fn variables(
    architecture: &Architecture,
    services: &[&ResolvedService],
) -> Vec<TfVariable> {
    let mut by_name: BTreeMap<String, TfVariable> = BTreeMap::new();
    let mut seen_keys = BTreeSet::new();
    for &service in services {
        for (key, value) in architecture.deferred_values(service) {
            if !seen_keys.insert(key.clone()) {
                continue;
            }
            for segment in value.segments() {
                let Segment::Var { name, default } = segment else {
                    continue;
                };
                let entry = by_name.entry(name.clone()).or_insert_with(|| TfVariable {
                    name: name.to_lowercase(),
                    env: name.clone(),
                    keys: Vec::new(),
                    default: default.clone(),
                });
                if !entry.keys.contains(&key) {
                    entry.keys.push(key.clone());
                }
                if entry.default != *default {
                    entry.default = None;
                }
            }
        }
    }
    by_name.into_values().collect()
}

/// Engines with a health check in the compose files; the others are waited for until started.
const HEALTHY: &[&str] = &[
    "postgres",
    "mysql",
    "redis",
    "kafka",
    "schema-registry",
    "nats",
    "rabbitmq",
];

pub(super) fn condition(engine: &str) -> &'static str {
    if engine == "schema-registry" || HEALTHY.contains(&engine) {
        "service_healthy"
    } else {
        "service_started"
    }
}

/// The engines a container's environment points at (each URL names its engine's host).
pub(super) fn dependencies(environment: &[EnvVar], engines: &Engines) -> Vec<Dependency> {
    engines
        .names
        .iter()
        .filter(|engine| {
            environment.iter().any(|var| {
                var.value.contains(&format!("@{engine}:"))
                    || var.value.contains(&format!("//{engine}:"))
                    || var.value.starts_with(&format!("{engine}:"))
            })
        })
        .map(|name| Dependency {
            name,
            condition: condition(name),
        })
        .collect()
}
