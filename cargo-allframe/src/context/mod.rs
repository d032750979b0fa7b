//! What the templates see: a context built from each resolved service (names in every case,
//! ports, runtime features, and what its archetype adds, one module each) and the way generated
//! crates reach the runtime.
//!
//! Decisions about a service's crate (which features, which entity) are made here, once; the
//! templates only spell them out.

use std::path::Path;

use allframe_codegen::plan::{RuntimeFeature, ServicePlan};
use allframe_config::model::{IdempotencyStorage, ServiceType};
use serde::Serialize;

use crate::error::CliError;
use crate::events::{EventsCrate, SharedEvent};
use crate::names::ServiceNames;

mod cache;
mod consumer;
mod event_sourced;
mod gateway;
mod producer;
mod saga;
mod stateless;

pub use cache::{CacheContext, InvalidationContext};
pub use consumer::{ConsumedContext, ConsumerContext};
pub use event_sourced::{AggregateTemplate, EventSourcedContext, ProjectionTemplate};
pub use gateway::{GatewayContext, ProviderContext};
pub use producer::{IngestionContext, ProducerContext};
pub use saga::{SagaContext, SagaStepTemplate, SagaTemplate};
pub use stateless::StatelessContext;

/// The version of `allframe-runtime` generated crates depend on without `--runtime-path`:
/// this CLI's own version.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where generated crates take `allframe-runtime` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeSource {
    /// The registry, at this version.
    Version(String),
    /// A local checkout: the absolute path of its `allframe-runtime` directory.
    Path(String),
}

impl RuntimeSource {
    /// How a generated manifest names the runtime: `(Some(dir), _)` as a path, else
    /// `(None, version)`.
    pub fn dependency(&self) -> (Option<&str>, &str) {
        match self {
            RuntimeSource::Path(path) => (Some(path.as_str()), RUNTIME_VERSION),
            RuntimeSource::Version(version) => (None, version.as_str()),
        }
    }

    /// `--runtime-path DIR` (a checkout of the AllFrame repository), or the registry version.
    pub fn resolve(checkout: Option<&Path>) -> Result<Self, CliError> {
        let Some(dir) = checkout else {
            return Ok(Self::Version(RUNTIME_VERSION.to_owned()));
        };
        let missing = || CliError::RuntimePath {
            dir: dir.to_path_buf(),
            manifest: dir.join("allframe-runtime").join("Cargo.toml"),
        };
        let dir = dir.canonicalize().map_err(|_| missing())?;
        let crate_dir = dir.join("allframe-runtime");
        if !crate_dir.join("Cargo.toml").is_file() {
            return Err(missing());
        }
        crate_dir
            .to_str()
            .map(|s| Self::Path(s.to_owned()))
            .ok_or(CliError::NonUtf8Path { path: crate_dir })
    }
}

/// A service's part of every template context.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceContext {
    /// The service's type: which archetype folder renders its crate.
    #[serde(skip)]
    pub kind: ServiceType,
    /// `kebab`, `snake`, `pascal`, `proto_package`.
    #[serde(flatten)]
    pub names: ServiceNames,
    /// One line, without a final period: `User registration and profiles`.
    pub responsibility: String,
    /// The REST port from the file.
    pub http_port: u16,
    /// The gRPC port from the file, when the service speaks gRPC.
    pub grpc_port: Option<u16>,
    /// True when the service speaks gRPC.
    pub grpc: bool,
    /// The production database engine (`postgres`, `sqlite`, …).
    pub database: &'static str,
    /// The `allframe-runtime` features the crate needs.
    pub features: Vec<&'static str>,
    /// The `[architecture] name`: the first part of the service's topic names.
    pub architecture: String,
    /// How the service publishes, when it declares `[services.messaging]`.
    pub messaging: Option<MessagingContext>,
    /// The idempotency layer, when the file enables it.
    pub idempotency: Option<IdempotencyContext>,
    /// What its archetype adds (`archetype` names it: `stateless`, `producer`).
    #[serde(flatten)]
    pub archetype: ArchetypeContext,
}

/// What a service's archetype adds to its context: one module per archetype.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "archetype", rename_all = "kebab-case")]
pub enum ArchetypeContext {
    /// `type = "stateless"`.
    Stateless(Box<StatelessContext>),
    /// `type = "producer"`.
    Producer(ProducerContext),
    /// `type = "consumer"`.
    Consumer(ConsumerContext),
    /// `type = "gateway"`.
    Gateway(GatewayContext),
    /// `type = "saga-orchestrator"`.
    SagaOrchestrator(SagaContext),
    /// `type = "event-sourced"`.
    EventSourced(EventSourcedContext),
    /// `type = "cache"`.
    Cache(CacheContext),
}

impl ArchetypeContext {
    /// The context of the archetype `plan` is about; `None` for a type ignite does not
    /// generate.
    fn new(plan: &ServicePlan<'_>) -> Option<Self> {
        match plan.service.kind() {
            ServiceType::Stateless => Some(Self::Stateless(Box::new(StatelessContext::new(plan)))),
            ServiceType::Producer => Some(Self::Producer(ProducerContext::new(plan))),
            ServiceType::Consumer => Some(Self::Consumer(ConsumerContext::new(plan))),
            ServiceType::Gateway => Some(Self::Gateway(GatewayContext::new(plan))),
            ServiceType::SagaOrchestrator => SagaContext::new(plan).map(Self::SagaOrchestrator),
            ServiceType::EventSourced => EventSourcedContext::new(plan).map(Self::EventSourced),
            ServiceType::Cache => CacheContext::new(plan).map(Self::Cache),
            _ => None,
        }
    }

    /// The providers the service calls through clients (`[services.integrations]`).
    pub fn providers(&self) -> &[ProviderContext] {
        match self {
            Self::Gateway(gateway) => &gateway.providers,
            Self::SagaOrchestrator(saga) => &saga.providers,
            _ => &[],
        }
    }

    /// The items of the list `each` names, for a template rendered once per item
    /// (`each = "ingestion"` in a manifest); `None` when this archetype lists no such thing.
    pub fn items(&self, each: &str) -> Option<Vec<serde_json::Value>> {
        fn values<T: Serialize>(items: &[T]) -> Option<Vec<serde_json::Value>> {
            items
                .iter()
                .map(|item| serde_json::to_value(item).ok())
                .collect()
        }
        match (self, each) {
            (Self::Producer(producer), "ingestion") => values(&producer.ingestions),
            (Self::EventSourced(es), "aggregate") => values(&es.aggregates),
            (Self::EventSourced(es), "projection") => values(&es.projections),
            _ => None,
        }
    }

    /// The events the scaffold's own code publishes, for the shared event-types crate: a
    /// `stateless` service's create event, a `producer`'s event per entity, every event an
    /// `event-sourced` service's aggregates record. What a consumer
    /// takes comes from the file's declarations; a gateway, a saga orchestrator and a cache publish
    /// nothing of their own.
    pub fn published(&self) -> Vec<crate::events::Published<'_>> {
        use crate::events::{Published, Shape};
        match self {
            Self::Stateless(stateless) => stateless
                .event
                .iter()
                .map(|event| Published {
                    event,
                    aggregate: &stateless.entity.pascal,
                    shape: Shape::Created,
                })
                .collect(),
            Self::Producer(producer) => producer
                .ingestions
                .iter()
                .map(|ingestion| Published {
                    event: &ingestion.event,
                    aggregate: &ingestion.entity.pascal,
                    shape: Shape::Ingested,
                })
                .collect(),
            Self::EventSourced(es) => es
                .aggregates
                .iter()
                .flat_map(|aggregate| {
                    aggregate.events.iter().map(|event| Published {
                        event,
                        aggregate: &aggregate.entity.pascal,
                        shape: Shape::Recorded,
                    })
                })
                .collect(),
            Self::Consumer(_) | Self::Gateway(_) | Self::SagaOrchestrator(_) | Self::Cache(_) => {
                Vec::new()
            }
        }
    }
}

/// `[services.messaging]` as the example code needs it.
#[derive(Debug, Clone, Serialize)]
pub struct MessagingContext {
    /// `outbox`, `direct` or `transactional`.
    pub pattern: &'static str,
}

/// `[services.idempotency]` as the example code needs it.
#[derive(Debug, Clone, Serialize)]
pub struct IdempotencyContext {
    /// The request header carrying the key: `Idempotency-Key`.
    pub key_header: String,
    /// True when keys live in Redis (`REDIS_URL` must be set to run the service).
    pub redis: bool,
}

impl ServiceContext {
    /// The context of the service `plan` decides about, in the architecture named
    /// `architecture`: the runtime features are the plan's, as the macro expands it. `None`
    /// for a type ignite does not generate.
    pub fn new(plan: &ServicePlan<'_>, architecture: &str) -> Option<Self> {
        let service = plan.service;
        let grpc = plan.grpc;
        let features = plan
            .features()
            .into_iter()
            .map(RuntimeFeature::as_str)
            .collect();
        let responsibility = service
            .common
            .responsibility
            .as_deref()
            .map(one_line)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| {
                let kind = service.kind().as_str();
                let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "An"
                } else {
                    "A"
                };
                format!("{article} {kind} service")
            });
        let messaging = service.common.messaging.as_ref().map(|m| MessagingContext {
            pattern: m.pattern.as_str(),
        });
        let idempotency = service
            .common
            .idempotency
            .as_ref()
            .map(|policy| IdempotencyContext {
                key_header: policy.key_header.clone(),
                redis: policy.storage == IdempotencyStorage::Redis,
            });
        Some(Self {
            kind: service.kind(),
            names: ServiceNames::new(service.name()),
            responsibility,
            http_port: service.common.http_port,
            grpc_port: service.common.grpc_port.filter(|_| grpc),
            grpc,
            database: service.common.database.as_str(),
            features,
            architecture: architecture.to_owned(),
            messaging,
            idempotency,
            archetype: ArchetypeContext::new(plan)?,
        })
    }
}

/// One line of prose: whitespace (newlines included) collapsed, no final period.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.trim_end_matches('.').to_owned()
}

/// The context of the templates of one service crate.
#[derive(Debug, Serialize)]
pub struct CrateContext<'a> {
    /// The service.
    pub service: &'a ServiceContext,
    /// What its archetype adds, at the top level: `entity` and `event` of a `stateless`
    /// service, `ingestions` of a `producer`.
    #[serde(flatten)]
    pub archetype: &'a ArchetypeContext,
    /// Shorthand for `service.grpc`.
    pub grpc: bool,
    /// Shorthand for `service.responsibility`.
    pub responsibility: &'a str,
    /// Shorthand for `service.features`.
    pub features: &'a [&'static str],
    /// Shorthand for `service.messaging`.
    pub messaging: Option<&'a MessagingContext>,
    /// Shorthand for `service.idempotency`.
    pub idempotency: Option<&'a IdempotencyContext>,
    /// The item a per-item template renders (`each = "ingestion"`: `ingestion`), at the top
    /// level under its name; empty for other templates.
    #[serde(flatten)]
    pub each: std::collections::BTreeMap<&'static str, serde_json::Value>,
    /// The runtime's directory with `--runtime-path`.
    pub runtime_path: Option<&'a str>,
    /// The runtime's version otherwise.
    pub runtime_version: &'a str,
    /// The exact tonic, prost and build-dependency versions of a gRPC crate.
    pub versions: &'static crate::versions::GrpcVersions,
    /// The workspace's shared event-types crate, which the service's events come from.
    pub events_crate: &'a EventsCrate,
}

impl<'a> CrateContext<'a> {
    /// The context of `service`'s crate, depending on the runtime from `runtime`.
    pub fn new(
        service: &'a ServiceContext,
        runtime: &'a RuntimeSource,
        events_crate: &'a EventsCrate,
    ) -> Self {
        let (runtime_path, runtime_version) = runtime.dependency();
        Self {
            service,
            archetype: &service.archetype,
            grpc: service.grpc,
            responsibility: &service.responsibility,
            features: &service.features,
            messaging: service.messaging.as_ref(),
            idempotency: service.idempotency.as_ref(),
            each: std::collections::BTreeMap::new(),
            runtime_path,
            runtime_version,
            versions: crate::versions::grpc(),
            events_crate,
        }
    }
}

/// A service of the file that ignite does not generate (yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its name.
    pub name: String,
    /// Its type, as written.
    pub kind: &'static str,
}

/// The context of the workspace's own files.
#[derive(Debug, Serialize)]
pub struct WorkspaceContext<'a> {
    /// The architecture's name.
    pub architecture: &'a str,
    /// The generated services.
    pub services: &'a [ServiceContext],
    /// The services not generated.
    pub skipped: &'a [Skipped],
    /// The service types ignite generates, in the support stage's order.
    pub generated: Vec<&'static str>,
    /// The shared event-types crate.
    pub events_crate: &'a EventsCrate,
    /// Its event types.
    pub events: &'a [SharedEvent],
    /// The event a per-event template (`each = "event"`) renders.
    pub event: Option<&'a SharedEvent>,
    /// The runtime's directory with `--runtime-path`.
    pub runtime_path: Option<&'a str>,
    /// The runtime's version otherwise.
    pub runtime_version: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responsibilities_become_one_line_without_final_period() {
        assert_eq!(
            one_line("  User\nregistration,\n  and profiles.  "),
            "User registration, and profiles"
        );
    }

    #[test]
    fn runtime_path_must_hold_the_runtime_crate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = RuntimeSource::resolve(Some(dir.path())).expect_err("no runtime there");
        assert!(matches!(error, CliError::RuntimePath { .. }));

        let runtime = dir.path().join("allframe-runtime");
        std::fs::create_dir_all(&runtime).expect("mkdir");
        std::fs::write(runtime.join("Cargo.toml"), "[package]\n").expect("write");
        let source = RuntimeSource::resolve(Some(dir.path())).expect("a checkout");
        let expected = runtime.canonicalize().expect("canonical");
        assert_eq!(
            source,
            RuntimeSource::Path(expected.to_string_lossy().into_owned())
        );
        assert_eq!(
            RuntimeSource::resolve(None).expect("version"),
            RuntimeSource::Version(RUNTIME_VERSION.to_owned())
        );
    }
}
