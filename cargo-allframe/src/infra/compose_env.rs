//! The environment each service's container gets under Compose: its ports, data directory,
//! database, bus, registry, cache and peer URLs, the collector, the log filter, a consumer's
//! admin API and where its notification channels deliver.

use std::collections::BTreeMap;

use allframe_config::Archetype;
use allframe_config::ResolvedService;
use allframe_config::model::{CacheBackend, Channel, DatabaseKind, SchemaRegistry};
use allframe_env as vars;
use heck::ToSnakeCase;

use super::model::{Engines, EnvVar, env, shell_env};

/// What every service's Compose environment is made from, decided once for the architecture.
pub(super) struct ComposeWiring<'a> {
    /// Every service in scope, by name (peer URLs).
    pub(super) by_name: &'a BTreeMap<&'a str, &'a ResolvedService>,
    /// The bus's URL inside the Compose network, when the file uses a bus Compose runs.
    pub(super) event_bus_url: Option<&'a str>,
    /// The schema registry the file names.
    pub(super) schema_registry: SchemaRegistry,
    /// The engines Compose runs.
    pub(super) engines: &'a Engines,
    /// Whether traces go to the OpenTelemetry collector.
    pub(super) otel: bool,
}

impl ComposeWiring<'_> {
    /// The environment of service `s` (its database named `database_name`; `bus` and `redis`
    /// when it uses them; `admin_port` when its runtime serves an admin API; `calls` the
    /// services it calls).
    pub(super) fn compose_env(
        &self,
        s: &ResolvedService,
        database_name: Option<&str>,
        bus: bool,
        redis: bool,
        admin_port: Option<u16>,
        calls: &[String],
    ) -> Vec<EnvVar> {
        let mut compose_env = vec![env(vars::PORT.name, s.common.http_port.to_string())];
        if let Some(port) = s.common.grpc_port {
            compose_env.push(env(vars::GRPC_PORT.name, port.to_string()));
        }
        if let Some(port) = s.common.metrics_port {
            compose_env.push(env(vars::METRICS_PORT.name, port.to_string()));
        }
        compose_env.push(env(vars::ALLFRAME_DATA_DIR.name, "/data"));
        match (s.common.database, database_name) {
            (DatabaseKind::Postgres, Some(db)) => {
                compose_env.push(env(
                    vars::DATABASE_URL.name,
                    format!("postgres://allframe@postgres:5432/{db}"),
                ));
            }
            (DatabaseKind::Mysql, Some(db)) => {
                compose_env.push(env(
                    vars::DATABASE_URL.name,
                    format!("mysql://root@mysql:3306/{db}"),
                ));
            }
            (DatabaseKind::Dynamodb, _) => {
                compose_env.push(env(vars::DYNAMODB_ENDPOINT.name, "http://dynamodb:8000"));
            }
            (DatabaseKind::Firestore, _) => {
                compose_env.push(env(vars::FIRESTORE_EMULATOR_HOST.name, "firestore:8200"));
            }
            _ => {}
        }
        if bus && let Some(url) = self.event_bus_url {
            compose_env.push(env(vars::EVENT_BUS_URL.name, url));
        }
        if bus {
            match self.schema_registry {
                SchemaRegistry::Confluent if self.engines.confluent_registry.is_some() => {
                    compose_env.push(env(
                        vars::SCHEMA_REGISTRY_URL.name,
                        "http://schema-registry:8081",
                    ));
                }
                SchemaRegistry::Apicurio if self.engines.apicurio_registry.is_some() => {
                    compose_env.push(env(
                        vars::SCHEMA_REGISTRY_URL.name,
                        "http://schema-registry:8080/apis/ccompat/v7",
                    ));
                }
                _ => {}
            }
        }
        if redis {
            compose_env.push(env(vars::REDIS_URL.name, "redis://redis:6379"));
        }
        if let Some(integrations) = s.archetype.integrations() {
            // A provider's base URL (a sandbox, a stand-in) comes from the developer's shell.
            for provider in &integrations.providers {
                compose_env.push(shell_env(&vars::provider_url(provider)));
            }
        }
        if let Archetype::Cache(cache) = &s.archetype {
            match cache.table.backend {
                CacheBackend::Memcached => {
                    compose_env.push(env(vars::MEMCACHED_URL.name, "memcache://memcached:11211"));
                }
                CacheBackend::Hazelcast => {
                    compose_env.push(env(vars::HAZELCAST_ADDRESS.name, "hazelcast:5701"));
                }
                CacheBackend::Redis => {}
            }
        }
        for target in calls {
            let var = format!("{}_URL", target.to_snake_case().to_uppercase());
            // A provider of the same name keeps its URL from the shell: a provider client's
            // base URL may carry a path (a gateway's `/<provider>` route).
            if compose_env.iter().any(|set| set.name == var) {
                continue;
            }
            if let Some(peer) = self.by_name.get(target.as_str()) {
                compose_env.push(env(
                    &var,
                    format!("http://{target}:{}", peer.common.http_port),
                ));
            }
        }
        if self.otel {
            compose_env.push(env(
                vars::OTEL_EXPORTER_OTLP_ENDPOINT.name,
                "http://otel-collector:4317",
            ));
        }
        compose_env.push(env(vars::RUST_LOG.name, "info"));
        if let Archetype::Consumer(consumer) = &s.archetype {
            // Where each notification channel delivers comes from the developer's shell; unset,
            // the service writes each message to a file under /data/channels.
            let mut passed = Vec::new();
            for channel in &consumer.channels {
                if let Some(var) = vars::channel_url(channel.as_str())
                    && !passed.contains(&var.name)
                {
                    passed.push(var.name);
                    if *channel == Channel::Email {
                        passed.push(vars::EMAIL_FROM.name);
                    }
                }
            }
            compose_env.extend(passed.into_iter().map(shell_env));
        }
        if let Some(port) = admin_port {
            // Inside the container loopback would be unreachable; the host port mapping keeps
            // it on the host's loopback. The token comes from the developer's shell.
            compose_env.push(env(vars::ADMIN_PORT.name, port.to_string()));
            compose_env.push(env(vars::ALLFRAME_ADMIN_BIND_ADDR.name, "0.0.0.0"));
            compose_env.push(shell_env(vars::ALLFRAME_ADMIN_TOKEN.name));
        }
        compose_env
    }
}
