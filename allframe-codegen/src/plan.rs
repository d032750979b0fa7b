//! Stage 3: a checked service → a [`ServicePlan`], the decisions about its crate as data:
//! which archetype is expanded, which patterns are wired with which settings, and the runtime
//! features the crate needs. The macro emits tokens from it; ignite writes `Cargo.toml` from
//! the same plan, so the two can never disagree about a feature.
//!
//! Planning collects every problem before it returns (serde_derive's `Ctxt` style): two
//! mistakes give two errors.

use allframe_config::model::{
    CacheWriteStrategy, Channel, DatabaseKind, EventBus, IdempotencyStorage, Messaging,
    MetricsBackend, Propagation, SamplingStrategy, ServiceType, TelemetryBackend,
};
use allframe_config::resolve::IdempotencyPolicy;
use allframe_config::{Archetype, Architecture, ResolvedService, names, plural, support};

/// A feature of `allframe-runtime` a generated crate enables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuntimeFeature {
    /// The embedded SQLite database (every service: the default without `DATABASE_URL`).
    Sqlite,
    /// PostgreSQL from `DATABASE_URL`.
    Postgres,
    /// The gRPC server.
    Grpc,
    /// Redis idempotency storage.
    Redis,
    /// OpenTelemetry span export.
    Otel,
    /// The NATS JetStream bus.
    Nats,
    /// The RabbitMQ bus.
    Rabbitmq,
    /// The Kafka bus.
    Kafka,
    /// The `email` channel over SMTP.
    Email,
    /// The `sms`, `push` and `webhook` channels over HTTP.
    Webhook,
    /// A gateway's provider clients over HTTP.
    Gateway,
    /// A `cache` service's cache.
    Cache,
}

impl RuntimeFeature {
    /// The feature's name in `allframe-runtime`'s manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeFeature::Sqlite => "sqlite",
            RuntimeFeature::Postgres => "postgres",
            RuntimeFeature::Grpc => "grpc",
            RuntimeFeature::Redis => "redis",
            RuntimeFeature::Otel => "otel",
            RuntimeFeature::Nats => "nats",
            RuntimeFeature::Rabbitmq => "rabbitmq",
            RuntimeFeature::Kafka => "kafka",
            RuntimeFeature::Email => "email",
            RuntimeFeature::Webhook => "webhook",
            RuntimeFeature::Gateway => "gateway",
            RuntimeFeature::Cache => "cache",
        }
    }
}

/// Span export, when `[observability] tracing = "opentelemetry"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracingPlan {
    /// The sampling strategy.
    pub strategy: SamplingStrategy,
    /// The sampling rate (for `probabilistic` and `parent-based`).
    pub rate: f64,
    /// B3 headers are read and written beside `traceparent`.
    pub b3: bool,
    /// W3C baggage travels.
    pub baggage: bool,
}

/// One ingestion endpoint pair of a `producer`: `POST {path}` and `POST {path}/batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestionPlan<'a> {
    /// The entity's type name (normalised UpperCamelCase): the associated type of the
    /// `Produces` obligation naming the input.
    pub entity: String,
    /// The resource path, `/position-reports`.
    pub path: String,
    /// The event published for each input, as written in `events`.
    pub event: &'a str,
}

/// One event a `consumer` takes: a handler method and the topics it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedPlan<'a> {
    /// The event type as written in `events` (a PascalCase identifier): the associated type
    /// of the `Consumes` obligation naming its payload.
    pub event: &'a str,
    /// The handler method, `on_<event in snake_case>`.
    pub method: String,
    /// The services of the file that publish it (each on its own topic); [`EXTERNAL_PRODUCER`]
    /// alone when none does.
    pub producers: Vec<&'a str>,
}

/// The producer part of the topic of an event published outside the file:
/// `<architecture>.external.<Event>`.
pub const EXTERNAL_PRODUCER: &str = "external";

impl ConsumedPlan<'_> {
    /// True when no service of the file publishes the event.
    pub fn is_external(&self) -> bool {
        self.producers == [EXTERNAL_PRODUCER]
    }
}

/// One provider of `[services.integrations] providers`: a gateway's, or a participant a saga
/// orchestrator calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPlan<'a> {
    /// The name as written, e.g. `legacy-erp`: the runtime's provider name and `<NAME>_URL`.
    pub name: &'a str,
    /// The client type's name, `LegacyErp`: the associated type of the `Integrations`
    /// obligation.
    pub client: String,
    /// The accessor and module name, `legacy_erp`.
    pub method: String,
    /// How long one attempt of a call may take (`[services.integrations] timeout_ms`); the
    /// runtime's default when absent.
    pub timeout_ms: Option<u64>,
}

/// A `saga-orchestrator`'s saga (`[services.saga]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaPlan<'a> {
    /// The saga's name, `CreateOrderSaga`: the trait of its steps.
    pub name: &'a str,
    /// Its steps in order, each with its compensation.
    pub steps: Vec<SagaStepPlan<'a>>,
    /// Deadline of a whole saga, in seconds.
    pub timeout_seconds: u64,
    /// The events answering its steps (`[services.saga.replies]`), each with its publishers:
    /// the topics the orchestrator consumes.
    pub replies: Vec<ReplyEventPlan<'a>>,
}

/// An event answering a saga step, and who publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyEventPlan<'a> {
    /// The event type, `ShipmentCreated`.
    pub event: &'a str,
    /// The services of the file that publish it; [`EXTERNAL_PRODUCER`] alone when none does.
    pub producers: Vec<&'a str>,
}

/// One step of a saga and the compensation undoing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaStepPlan<'a> {
    /// The step as written, `ReservePayment`.
    pub step: &'a str,
    /// Its method, `reserve_payment`.
    pub step_method: String,
    /// The compensation as written, `RefundPayment`.
    pub compensation: &'a str,
    /// Its method, `refund_payment`.
    pub compensation_method: String,
    /// The events answering it when its participant replies on the bus: success, and
    /// failure when declared.
    pub reply: Option<(&'a str, Option<&'a str>)>,
}

/// An `event-sourced` service's aggregates and projections (`[services.cqrs]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSourcedPlan<'a> {
    /// Its aggregates, in the file's order.
    pub aggregates: Vec<AggregatePlan<'a>>,
    /// Its projections, in the file's order.
    pub projections: Vec<ProjectionPlan<'a>>,
    /// Snapshot an aggregate every this many events.
    pub snapshot_frequency: u32,
}

/// One aggregate type: an associated type of the `EventSourced` obligation, and its routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatePlan<'a> {
    /// Its type name, `Account`: the associated type, and the type of its streams.
    pub entity: &'a str,
    /// Its resource path, `/accounts`.
    pub path: String,
    /// The events it records, as written in the file.
    pub events: &'a [String],
}

/// One projection of `[services.cqrs] projections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionPlan<'a> {
    /// Its name as written, `AccountBalances`: the associated type and the runtime's name.
    pub name: &'a str,
    /// The accessor of its current read model, `account_balances`.
    pub method: String,
}

/// A `cache` service's entity, strategy and invalidations (`[services.cache]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePlan<'a> {
    /// The cached entity, `Product`: what its routes serve.
    pub entity: &'a str,
    /// Its resource path, `/products`.
    pub path: String,
    /// How a write reaches the source.
    pub strategy: CacheWriteStrategy,
    /// How long a cached value is served, in seconds.
    pub ttl_seconds: u64,
    /// The events of `invalidation`, each with the method naming the keys it makes stale
    /// (`on_product_updated`) and its publishers: the topics every instance follows.
    pub invalidations: Vec<ConsumedPlan<'a>>,
}

/// How a notification channel is spelt in `allframe::channel`: what the macro declares and the
/// scaffold writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelApi {
    /// The trait a handler gets: `SendEmail`.
    pub send_trait: &'static str,
    /// Its method: `send_email`.
    pub method: &'static str,
    /// The message type: `Email`.
    pub message: &'static str,
}

impl ChannelApi {
    /// The API of `channel`.
    pub const fn of(channel: Channel) -> Self {
        let (send_trait, method, message) = match channel {
            Channel::Email => ("SendEmail", "send_email", "Email"),
            Channel::Sms => ("SendSms", "send_sms", "Sms"),
            Channel::Push => ("SendPush", "send_push", "Push"),
            Channel::Webhook => ("SendWebhook", "send_webhook", "Webhook"),
        };
        Self {
            send_trait,
            method,
            message,
        }
    }
}

/// A `consumer`'s events and delivery policy (`[services.consumer]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerPlan<'a> {
    /// The events, in the file's order.
    pub events: Vec<ConsumedPlan<'a>>,
    /// The notification channels, in the file's order, each once.
    pub channels: Vec<Channel>,
    /// The table itself: `concurrency`, `max_retries`, `retry_backoff`, `dlq`.
    pub table: &'a allframe_config::model::Consumer,
}

/// Everything decided about one service's crate.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan<'a> {
    /// The service.
    pub service: &'a ResolvedService,
    /// The production event bus (for the bus feature).
    pub bus: EventBus,
    /// The gRPC server is wired.
    pub grpc: bool,
    /// Publishing, when `[services.messaging]` is declared.
    pub messaging: Option<&'a Messaging>,
    /// The idempotency layer, when enabled.
    pub idempotency: Option<&'a IdempotencyPolicy>,
    /// `/metrics`, when `[observability] metrics = "prometheus"`: `Some(port)` for a port of
    /// its own, `None` inside for the REST port.
    pub metrics: Option<Option<u16>>,
    /// Span export.
    pub tracing: Option<TracingPlan>,
    /// The tenant header events carry, when `[tenant] enabled`.
    pub tenant_header: Option<&'a str>,
    /// A `producer`'s ingestion endpoints, one per entity (empty for other types).
    pub ingestions: Vec<IngestionPlan<'a>>,
    /// A `consumer`'s events and policy.
    pub consumer: Option<ConsumerPlan<'a>>,
    /// The providers of `[services.integrations]`, in the file's order (empty without one).
    pub providers: Vec<ProviderPlan<'a>>,
    /// A `saga-orchestrator`'s saga.
    pub saga: Option<SagaPlan<'a>>,
    /// An `event-sourced` service's aggregates and projections.
    pub event_sourced: Option<EventSourcedPlan<'a>>,
    /// A `cache` service's entity, strategy and invalidations.
    pub cache: Option<CachePlan<'a>>,
}

/// A problem found while planning, for the macro to report at its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// What is wrong.
    pub message: String,
}

/// Plans `service` of `arch`, or every reason it cannot be planned.
pub fn plan<'a>(
    arch: &'a Architecture,
    service: &'a ResolvedService,
) -> Result<ServicePlan<'a>, Vec<PlanError>> {
    let mut errors = Vec::new();
    // The support stage's list of generated types is the one list: each has a module in
    // `crate::archetype`.
    let kind = service.kind();
    if !support::is_generated(kind) {
        let generated: Vec<&str> = support::GENERATED_TYPES
            .iter()
            .map(|t| t.as_str())
            .collect();
        errors.push(PlanError {
            message: format!(
                "service `{}` is of type `{kind}`, which this version of allframe does not generate yet (it generates: {}); `{kind}` services cannot be compiled yet",
                service.name(),
                generated.join(", ")
            ),
        });
    }
    let observability = &arch.globals().observability;
    let metrics = match observability.metrics {
        MetricsBackend::None => None,
        MetricsBackend::Prometheus => Some(service.common.metrics_port),
        MetricsBackend::Otlp => {
            errors.push(PlanError {
                message: support::OTLP_METRICS.to_owned(),
            });
            None
        }
    };
    let tracing = (observability.tracing == TelemetryBackend::Opentelemetry).then(|| {
        if observability.propagation.contains(&Propagation::Jaeger) {
            errors.push(PlanError {
                message: support::JAEGER_PROPAGATION.to_owned(),
            });
        }
        TracingPlan {
            strategy: observability.sampling.strategy,
            rate: observability.sampling.rate,
            b3: observability.propagation.contains(&Propagation::B3),
            baggage: observability.propagation.contains(&Propagation::Baggage),
        }
    });
    let tenant = &arch.globals().tenant;
    let plan = ServicePlan {
        service,
        bus: arch.globals().settings.event_bus,
        // Only `stateless` serves the user's gRPC services; a producer's `grpc` is reported
        // by the support stage.
        grpc: kind == ServiceType::Stateless
            && service.speaks(allframe_config::model::Protocol::Grpc),
        messaging: service.common.messaging.as_ref(),
        idempotency: service.common.idempotency.as_ref(),
        metrics,
        tracing,
        tenant_header: tenant.enabled.then_some(tenant.header.as_str()),
        ingestions: ingestions(service),
        consumer: consumer(arch, service),
        providers: providers(service),
        saga: saga(arch, service),
        event_sourced: event_sourced(service),
        cache: cache(arch, service),
    };
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors)
    }
}

/// A producer's endpoints: `entities[i]` at `/<plural>`, publishing `events[i]`.
fn ingestions(service: &ResolvedService) -> Vec<IngestionPlan<'_>> {
    let Archetype::Producer(producer) = &service.archetype else {
        return Vec::new();
    };
    producer
        .ingests
        .iter()
        .map(|ingestion| {
            let entity = names::pascal(&ingestion.entity);
            IngestionPlan {
                path: format!("/{}", plural::plural_kebab(&entity)),
                entity,
                event: &ingestion.event,
            }
        })
        .collect()
}

/// The providers of `[services.integrations]` (a gateway's, or the participants a saga
/// orchestrator calls), each with its client type and accessor.
fn providers(service: &ResolvedService) -> Vec<ProviderPlan<'_>> {
    let Some(integrations) = service.archetype.integrations() else {
        return Vec::new();
    };
    integrations
        .providers
        .iter()
        .map(|name| ProviderPlan {
            name,
            client: names::pascal(name),
            method: names::snake(name),
            timeout_ms: integrations.timeout_ms,
        })
        .collect()
}

/// A saga orchestrator's steps, each with its method, its compensation's and its reply.
fn saga<'a>(arch: &'a Architecture, service: &'a ResolvedService) -> Option<SagaPlan<'a>> {
    let Archetype::SagaOrchestrator { saga, .. } = &service.archetype else {
        return None;
    };
    let steps = saga
        .steps
        .iter()
        .zip(&saga.compensation)
        .map(|(step, compensation)| SagaStepPlan {
            step,
            step_method: names::snake(step),
            compensation,
            compensation_method: names::snake(compensation),
            reply: saga
                .replies
                .get(step)
                .map(|reply| (reply.success.as_str(), reply.failure.as_deref())),
        })
        .collect();
    let replies = saga
        .replies
        .values()
        .flat_map(|reply| std::iter::once(&reply.success).chain(&reply.failure))
        .map(|event| ReplyEventPlan {
            event,
            producers: producers(arch, event),
        })
        .collect();
    Some(SagaPlan {
        name: &saga.name,
        steps,
        timeout_seconds: saga.timeout_seconds,
        replies,
    })
}

/// An event-sourced service's aggregates, each at `/<plural>`, and its projections.
fn event_sourced(service: &ResolvedService) -> Option<EventSourcedPlan<'_>> {
    let Archetype::EventSourced(es) = &service.archetype else {
        return None;
    };
    let aggregates = es
        .aggregates
        .iter()
        .map(|aggregate| AggregatePlan {
            entity: &aggregate.entity,
            path: format!("/{}", plural::plural_kebab(&aggregate.entity)),
            events: &aggregate.events,
        })
        .collect();
    let projections = es
        .cqrs
        .projections
        .iter()
        .map(|name| ProjectionPlan {
            name,
            method: names::snake(name),
        })
        .collect();
    Some(EventSourcedPlan {
        aggregates,
        projections,
        snapshot_frequency: es.cqrs.snapshot_frequency,
    })
}

/// A cache's entity at `/<plural>`, and each invalidation event with its publishers.
fn cache<'a>(arch: &'a Architecture, service: &'a ResolvedService) -> Option<CachePlan<'a>> {
    let Archetype::Cache(cache) = &service.archetype else {
        return None;
    };
    let invalidations = cache
        .table
        .invalidation
        .iter()
        .map(|event| ConsumedPlan {
            event,
            method: format!("on_{}", names::snake(event)),
            producers: producers(arch, event),
        })
        .collect();
    Some(CachePlan {
        entity: &cache.entity,
        path: format!("/{}", plural::plural_kebab(&cache.entity)),
        strategy: cache.table.strategy,
        ttl_seconds: cache.table.ttl_seconds,
        invalidations,
    })
}

/// The services of `arch` publishing `event`, or [`EXTERNAL_PRODUCER`] alone when none does.
fn producers<'a>(arch: &'a Architecture, event: &str) -> Vec<&'a str> {
    let mut producers: Vec<&str> = arch
        .services()
        .iter()
        .filter(|s| s.publishes(event))
        .map(ResolvedService::name)
        .collect();
    if producers.is_empty() {
        producers.push(EXTERNAL_PRODUCER);
    }
    producers
}

/// A consumer's events, each with its handler method and publishers.
fn consumer<'a>(arch: &'a Architecture, service: &'a ResolvedService) -> Option<ConsumerPlan<'a>> {
    let Archetype::Consumer(table) = &service.archetype else {
        return None;
    };
    let events = table
        .events
        .iter()
        .map(|event| ConsumedPlan {
            event,
            method: format!("on_{}", names::snake(event)),
            producers: producers(arch, event),
        })
        .collect();
    let mut channels: Vec<Channel> = Vec::with_capacity(table.channels.len());
    for channel in &table.channels {
        if !channels.contains(channel) {
            channels.push(*channel);
        }
    }
    Some(ConsumerPlan {
        events,
        channels,
        table,
    })
}

impl ServicePlan<'_> {
    /// The `allframe-runtime` features the crate needs, in a stable order: SQLite always (the
    /// embedded default), the production database, gRPC, Redis idempotency, span export, and
    /// the production bus when the service publishes or consumes (the embedded local bus needs
    /// none), the transports of a consumer's channels (SMTP for `email`, HTTP for the
    /// others), a gateway's clients, and a cache service's cache.
    pub fn features(&self) -> Vec<RuntimeFeature> {
        let mut features = vec![RuntimeFeature::Sqlite];
        if self.service.common.database == DatabaseKind::Postgres {
            features.push(RuntimeFeature::Postgres);
        }
        if self.grpc {
            features.push(RuntimeFeature::Grpc);
        }
        // A rate limit is shared by the replicas through Redis when `REDIS_URL` is set, and
        // so is a cache's engine.
        if self.cache.is_some()
            || self
                .idempotency
                .is_some_and(|i| i.storage == IdempotencyStorage::Redis)
            || self.service.common.resilience.rate_limit.is_some()
        {
            features.push(RuntimeFeature::Redis);
        }
        if self.tracing.is_some() {
            features.push(RuntimeFeature::Otel);
        }
        let consumes = self.consumer.is_some()
            || self
                .cache
                .as_ref()
                .is_some_and(|cache| !cache.invalidations.is_empty())
            || self
                .saga
                .as_ref()
                .is_some_and(|saga| !saga.replies.is_empty());
        if self.messaging.is_some() || consumes {
            match self.bus {
                EventBus::Nats => features.push(RuntimeFeature::Nats),
                EventBus::Rabbitmq => features.push(RuntimeFeature::Rabbitmq),
                EventBus::Kafka => features.push(RuntimeFeature::Kafka),
                EventBus::Sqs | EventBus::Pubsub => {}
            }
        }
        if !self.providers.is_empty() {
            features.push(RuntimeFeature::Gateway);
        }
        if self.cache.is_some() {
            features.push(RuntimeFeature::Cache);
        }
        if let Some(consumer) = &self.consumer {
            if consumer.channels.contains(&Channel::Email) {
                features.push(RuntimeFeature::Email);
            }
            if consumer.channels.iter().any(|c| *c != Channel::Email) {
                features.push(RuntimeFeature::Webhook);
            }
        }
        features
    }

    /// The service's type.
    pub fn kind(&self) -> ServiceType {
        self.service.kind()
    }
}

#[cfg(test)]
mod tests {
    use allframe_config::{SourceFile, check};

    use super::*;

    fn planned(text: &str, test: impl FnOnce(Result<ServicePlan<'_>, Vec<PlanError>>)) {
        let arch = check(&SourceFile::new("a.toml", text)).expect("a valid file");
        test(plan(&arch, &arch.services()[0]));
    }

    #[test]
    fn a_saga_awaiting_replies_reads_them_from_their_publishers_on_the_production_bus() {
        let text = r#"[architecture]
name = "shop"
[settings]
event_bus = "kafka"
[observability]
tracing = "none"
[[services]]
name = "order-service"
type = "saga-orchestrator"
[services.saga]
name = "CreateOrderSaga"
steps = ["Reserve", "Ship"]
compensation = ["Release", "Unship"]
[services.saga.replies]
Ship = { success = "Shipped", failure = "ShipRefused" }
[[services]]
name = "shipping"
type = "stateless"
[services.domain]
entities = ["Shipment"]
events = ["Shipped"]
[services.messaging]
"#;
        planned(text, |plan| {
            let plan = plan.expect("planned");
            let saga = plan.saga.as_ref().expect("a saga");
            assert_eq!(saga.steps[0].reply, None);
            assert_eq!(saga.steps[1].reply, Some(("Shipped", Some("ShipRefused"))));
            let replies: Vec<(&str, &[&str])> = saga
                .replies
                .iter()
                .map(|reply| (reply.event, reply.producers.as_slice()))
                .collect();
            assert_eq!(
                replies,
                [
                    ("Shipped", ["shipping"].as_slice()),
                    ("ShipRefused", [EXTERNAL_PRODUCER].as_slice())
                ]
            );
            assert!(
                plan.features().contains(&RuntimeFeature::Kafka),
                "the replies are consumed from the production bus"
            );
        });
    }

    #[test]
    fn features_follow_what_the_file_declares() {
        let text = r#"[architecture]
name = "shop"
[settings]
event_bus = "nats"
[[services]]
name = "users"
type = "stateless"
protocols = ["rest", "grpc"]
[services.database]
type = "postgres"
[services.idempotency]
storage = "redis"
[services.messaging]
pattern = "outbox"
"#;
        planned(text, |plan| {
            let features = plan.expect("planned").features();
            assert_eq!(
                features,
                [
                    RuntimeFeature::Sqlite,
                    RuntimeFeature::Postgres,
                    RuntimeFeature::Grpc,
                    RuntimeFeature::Redis,
                    RuntimeFeature::Otel,
                    RuntimeFeature::Nats,
                ]
            );
        });
        let quiet = "[architecture]\nname = \"shop\"\n[observability]\ntracing = \"none\"\nmetrics = \"none\"\n[[services]]\nname = \"users\"\ntype = \"stateless\"\n";
        planned(quiet, |plan| {
            let plan = plan.expect("planned");
            // PostgreSQL is the default production database.
            assert_eq!(
                plan.features(),
                [RuntimeFeature::Sqlite, RuntimeFeature::Postgres]
            );
            assert_eq!((plan.metrics, plan.tracing), (None, None));
        });
        let limited = format!("{quiet}[services.rate_limit]\nrps = 50\n");
        planned(&limited, |plan| {
            assert!(
                plan.expect("planned")
                    .features()
                    .contains(&RuntimeFeature::Redis),
                "a rate limit can be shared through Redis"
            );
        });
    }

    #[test]
    fn a_consumers_channels_bring_their_transports_once_each() {
        let text = "[architecture]\nname = \"shop\"\n[observability]\ntracing = \"none\"\n[[services]]\nname = \"mailer\"\ntype = \"consumer\"\n[services.database]\ntype = \"sqlite\"\n[services.consumer]\nevents = [\"UserCreated\"]\nchannels = [\"sms\", \"email\", \"push\", \"sms\"]\n";
        planned(text, |plan| {
            let plan = plan.expect("planned");
            let consumer = plan.consumer.as_ref().expect("a consumer plan");
            assert_eq!(
                consumer.channels,
                [Channel::Sms, Channel::Email, Channel::Push]
            );
            let features = plan.features();
            assert_eq!(
                features[features.len() - 2..],
                [RuntimeFeature::Email, RuntimeFeature::Webhook]
            );
        });
    }

    #[test]
    fn a_cache_follows_its_invalidations_from_their_publishers_on_the_production_bus() {
        let text = "[architecture]\nname = \"shop\"\n[settings]\nevent_bus = \"kafka\"\n\
            [[services]]\nname = \"catalog\"\ntype = \"stateless\"\n[services.domain]\nentities = [\"Product\"]\nevents = [\"ProductUpdated\"]\n[services.messaging]\npattern = \"outbox\"\n\
            [[services]]\nname = \"product-cache\"\ntype = \"cache\"\n[services.cache]\nstrategy = \"write-behind\"\nttl_seconds = 60\ninvalidation = [\"ProductUpdated\", \"PriceChanged\"]\n";
        let arch = check(&SourceFile::new("a.toml", text)).expect("a valid file");
        let plan = plan(&arch, &arch.services()[1]).expect("a cache is generated");
        let cache = plan.cache.as_ref().expect("a cache plan");
        assert_eq!(
            (cache.entity, cache.path.as_str()),
            ("Product", "/products")
        );
        assert_eq!(
            (cache.strategy, cache.ttl_seconds),
            (CacheWriteStrategy::WriteBehind, 60)
        );
        let invalidations: Vec<_> = cache
            .invalidations
            .iter()
            .map(|i| (i.event, i.method.as_str(), i.producers.clone()))
            .collect();
        assert_eq!(
            invalidations,
            [
                ("ProductUpdated", "on_product_updated", vec!["catalog"]),
                ("PriceChanged", "on_price_changed", vec![EXTERNAL_PRODUCER]),
            ]
        );
        let features = plan.features();
        assert!(
            [
                RuntimeFeature::Cache,
                RuntimeFeature::Redis,
                RuntimeFeature::Kafka
            ]
            .iter()
            .all(|feature| features.contains(feature)),
            "the cache, Redis when REDIS_URL is set, the bus its invalidations come on: {features:?}"
        );
    }

    #[test]
    fn a_type_without_an_expansion_is_refused_with_the_types_there_are() {
        let text = "[architecture]\nname = \"shop\"\n[[services]]\nname = \"web\"\ntype = \"bff\"\n[services.bff]\naggregates = []\n";
        planned(text, |plan| {
            let errors = plan.expect_err("bff is not generated");
            assert_eq!(errors.len(), 1);
            assert!(
                errors[0].message.contains(
                    "(it generates: stateless, producer, consumer, gateway, saga-orchestrator, event-sourced, cache)"
                ),
                "{errors:?}"
            );
        });
    }

    #[test]
    fn a_gateway_gets_a_client_per_provider_and_the_gateway_feature() {
        let text = "[architecture]\nname = \"shop\"\n[[services]]\nname = \"payments\"\ntype = \"gateway\"\n[services.integrations]\nproviders = [\"stripe\", \"legacy-erp\"]\n";
        planned(text, |plan| {
            let plan = plan.expect("planned");
            let clients: Vec<(&str, &str, &str)> = plan
                .providers
                .iter()
                .map(|p| (p.name, p.client.as_str(), p.method.as_str()))
                .collect();
            assert_eq!(
                clients,
                [
                    ("stripe", "Stripe", "stripe"),
                    ("legacy-erp", "LegacyErp", "legacy_erp")
                ]
            );
            assert!(plan.features().contains(&RuntimeFeature::Gateway));
            assert!(plan.providers.iter().all(|p| p.timeout_ms.is_none()));
        });
        let timed = text.replace("providers =", "timeout_ms = 2500\nproviders =");
        planned(&timed, |plan| {
            let plan = plan.expect("planned");
            assert!(plan.providers.iter().all(|p| p.timeout_ms == Some(2500)));
        });
    }

    #[test]
    fn a_saga_calling_participants_gets_their_clients_and_the_gateway_feature() {
        let text = "[architecture]\nname = \"shop\"\n[[services]]\nname = \"orders\"\ntype = \"saga-orchestrator\"\n[services.saga]\nname = \"Checkout\"\nsteps = [\"Pay\"]\ncompensation = [\"Refund\"]\n[services.integrations]\nproviders = [\"payment-gateway\"]\n";
        planned(text, |plan| {
            let plan = plan.expect("planned");
            let clients: Vec<&str> = plan.providers.iter().map(|p| p.client.as_str()).collect();
            assert_eq!(clients, ["PaymentGateway"]);
            assert!(plan.features().contains(&RuntimeFeature::Gateway));
        });
        let alone = text.replace(
            "[services.integrations]\nproviders = [\"payment-gateway\"]\n",
            "",
        );
        planned(&alone, |plan| {
            let plan = plan.expect("planned");
            assert!(plan.providers.is_empty());
            assert!(!plan.features().contains(&RuntimeFeature::Gateway));
        });
    }
}
