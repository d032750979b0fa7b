//! The one mapping between service types and the tables tied to them: which table belongs to
//! which type, which tables a type needs, and the typed [`Archetype`] a service resolves to.
//! Validation, the support stage and every consumer read it from here.

use std::collections::BTreeMap;

use crate::model::{
    Acl, Bff, Cache, Consumer, Cqrs, GraphQl, Integrations, Job, Saga, Schedule, Service,
    ServiceType, Stream, Subscriptions, WebSocket,
};

/// A service's archetype with its own tables resolved: what the type needs is present.
#[derive(Debug, Clone, PartialEq)]
pub enum Archetype {
    /// Request/response over its own tables.
    Stateless,
    /// Validates input and emits events; stores no entities.
    Producer(Producer),
    /// Event history with CQRS projections.
    EventSourced(EventSourced),
    /// Coordinates a distributed transaction.
    SagaOrchestrator {
        /// The saga it drives.
        saga: Saga,
        /// The participants its steps call over HTTP (`[services.integrations]`), when
        /// declared: each gets a client as a gateway's providers do.
        integrations: Option<Integrations>,
    },
    /// Integrates external providers.
    Gateway(Integrations),
    /// Processes events.
    Consumer(Consumer),
    /// Transforms event streams.
    StreamProcessor(Stream),
    /// Backend for a frontend.
    Bff {
        /// What it aggregates.
        bff: Bff,
        /// GraphQL options, when declared.
        graphql: Option<GraphQl>,
    },
    /// Real-time connections.
    WebsocketGateway {
        /// Connection options (defaults when the table is absent).
        websocket: Option<WebSocket>,
        /// Events pushed to clients.
        subscriptions: Option<Subscriptions>,
    },
    /// Cron jobs.
    Scheduled {
        /// The default schedule.
        schedule: Option<Schedule>,
        /// Named jobs.
        jobs: BTreeMap<String, Job>,
    },
    /// Adapts a legacy system.
    AntiCorruptionLayer(Acl),
    /// Distributed cache.
    Cache(CacheService),
}

impl Archetype {
    /// The service type this archetype is.
    pub fn kind(&self) -> ServiceType {
        use ServiceType as T;
        match self {
            Archetype::Stateless => T::Stateless,
            Archetype::Producer(_) => T::Producer,
            Archetype::EventSourced(_) => T::EventSourced,
            Archetype::SagaOrchestrator { .. } => T::SagaOrchestrator,
            Archetype::Gateway(_) => T::Gateway,
            Archetype::Consumer(_) => T::Consumer,
            Archetype::StreamProcessor(_) => T::StreamProcessor,
            Archetype::Bff { .. } => T::Bff,
            Archetype::WebsocketGateway { .. } => T::WebsocketGateway,
            Archetype::Scheduled { .. } => T::Scheduled,
            Archetype::AntiCorruptionLayer(_) => T::AntiCorruptionLayer,
            Archetype::Cache(_) => T::Cache,
        }
    }

    /// The events the archetype receives, in order: `[services.consumer] events`,
    /// `[services.subscriptions] events`, `[services.cache] invalidation`, or the events
    /// answering a saga's steps (`[services.saga.replies]`: each success, then its failure).
    pub fn consumed_events(&self) -> Vec<&str> {
        let listed: &[String] = match self {
            Archetype::Consumer(consumer) => &consumer.events,
            Archetype::WebsocketGateway {
                subscriptions: Some(subscriptions),
                ..
            } => &subscriptions.events,
            Archetype::Cache(cache) => &cache.table.invalidation,
            Archetype::SagaOrchestrator { saga, .. } => {
                return saga
                    .replies
                    .values()
                    .flat_map(|reply| std::iter::once(&reply.success).chain(&reply.failure))
                    .map(String::as_str)
                    .collect();
            }
            _ => &[],
        };
        listed.iter().map(String::as_str).collect()
    }

    /// What the service calls over HTTP through provider clients: a `gateway`'s
    /// `[services.integrations]`, or a saga orchestrator's when it declares one.
    pub fn integrations(&self) -> Option<&Integrations> {
        match self {
            Archetype::Gateway(integrations) => Some(integrations),
            Archetype::SagaOrchestrator { integrations, .. } => integrations.as_ref(),
            _ => None,
        }
    }

    /// The services a `bff` aggregates (empty for other types).
    pub fn aggregates(&self) -> &[String] {
        match self {
            Archetype::Bff { bff, .. } => &bff.aggregates,
            _ => &[],
        }
    }

    /// Resolves `service`'s archetype from its type and tables; `Err` names the table its
    /// type cannot do without.
    pub(crate) fn resolve(service: &Service) -> Result<Self, &'static str> {
        use ServiceType as T;
        let s = service;
        Ok(match s.kind {
            T::Stateless => Archetype::Stateless,
            T::Producer => Archetype::Producer(Producer::resolve(s)),
            T::EventSourced => Archetype::EventSourced(EventSourced::resolve(s)?),
            T::SagaOrchestrator => Archetype::SagaOrchestrator {
                saga: s.saga.clone().ok_or("saga")?,
                integrations: s.integrations.clone(),
            },
            T::Gateway => Archetype::Gateway(s.integrations.clone().ok_or("integrations")?),
            T::Consumer => Archetype::Consumer(s.consumer.clone().ok_or("consumer")?),
            T::StreamProcessor => Archetype::StreamProcessor(s.stream.clone().ok_or("stream")?),
            T::Bff => Archetype::Bff {
                bff: s.bff.clone().ok_or("bff")?,
                graphql: s.graphql.clone(),
            },
            T::WebsocketGateway => {
                if s.websocket.is_none() {
                    return Err("websocket");
                }
                Archetype::WebsocketGateway {
                    websocket: s.websocket.clone(),
                    subscriptions: s.subscriptions.clone(),
                }
            }
            T::Scheduled => {
                if s.jobs.is_none() && s.schedule.is_none() {
                    return Err("jobs");
                }
                Archetype::Scheduled {
                    schedule: s.schedule.clone(),
                    jobs: s.jobs.clone().unwrap_or_default(),
                }
            }
            T::AntiCorruptionLayer => Archetype::AntiCorruptionLayer(s.acl.clone().ok_or("acl")?),
            T::Cache => Archetype::Cache(CacheService::resolve(s)?),
        })
    }
}

/// A `producer`'s resolved shape: what it ingests and publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producer {
    /// One ingestion per entity of `[services.domain] entities`, in the file's order.
    pub ingests: Vec<Ingestion>,
}

/// One entity a producer ingests and the event it publishes for each accepted input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingestion {
    /// The entity (`entities[i]`), in PascalCase: the input of `POST /<entities>`.
    pub entity: String,
    /// The event published for it (`events[i]`).
    pub event: String,
}

impl Producer {
    /// `entities[i]` publishes `events[i]` (validation checks there is one event per entity).
    fn resolve(service: &Service) -> Self {
        let domain = service.domain.as_ref();
        let entities = domain.map(|d| d.entities.as_slice()).unwrap_or_default();
        let events = domain.map(|d| d.events.as_slice()).unwrap_or_default();
        Self {
            ingests: entities
                .iter()
                .zip(events)
                .map(|(entity, event)| Ingestion {
                    entity: entity.clone(),
                    event: event.clone(),
                })
                .collect(),
        }
    }
}

/// An `event-sourced` service's resolved shape: its store and projections, and its aggregates
/// with the events each records.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSourced {
    /// `[services.cqrs]`.
    pub cqrs: Cqrs,
    /// One aggregate per entity of `[services.domain] entities`, in the file's order; one named
    /// after the service (`ledger-service` → `Ledger`) when it declares none.
    pub aggregates: Vec<AggregateShape>,
}

/// One aggregate type of an `event-sourced` service and the events it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateShape {
    /// The entity in PascalCase: the aggregate's type and the type of its streams.
    pub entity: String,
    /// Its events, as written in `[services.domain] events`: each declared event belongs to
    /// the aggregate whose name is its longest prefix (`AccountOpened` → `Account`), or to the
    /// first aggregate. An aggregate given none records `<Entity>Created`.
    pub events: Vec<String>,
}

impl EventSourced {
    fn resolve(service: &Service) -> Result<Self, &'static str> {
        let cqrs = service.cqrs.clone().ok_or("cqrs")?;
        let domain = service.domain.as_ref();
        let declared = domain.map(|d| d.entities.as_slice()).unwrap_or_default();
        let entities: Vec<String> = if declared.is_empty() {
            let name = service.name.as_str();
            let stem = name.strip_suffix("-service").unwrap_or(name);
            vec![crate::names::pascal(stem)]
        } else {
            declared.iter().map(|e| crate::names::pascal(e)).collect()
        };
        let mut aggregates: Vec<AggregateShape> = entities
            .into_iter()
            .map(|entity| AggregateShape {
                entity,
                events: Vec::new(),
            })
            .collect();
        for event in domain.map(|d| d.events.as_slice()).unwrap_or_default() {
            let owner = aggregates
                .iter()
                .enumerate()
                .filter(|(_, a)| event.starts_with(a.entity.as_str()))
                .max_by_key(|(_, a)| a.entity.len())
                .map_or(0, |(index, _)| index);
            if !aggregates[owner].events.contains(event) {
                aggregates[owner].events.push(event.clone());
            }
        }
        for aggregate in &mut aggregates {
            if aggregate.events.is_empty() {
                aggregate
                    .events
                    .push(format!("{}Created", aggregate.entity));
            }
        }
        Ok(Self { cqrs, aggregates })
    }
}

/// A `cache` service's resolved shape: `[services.cache]` and the entity it caches.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheService {
    /// `[services.cache]`.
    pub table: Cache,
    /// The cached entity in PascalCase, served at `/<plural>/{key}`: the first of
    /// `[services.domain] entities`, or one named after the service (`product-cache` →
    /// `Product`) when it declares none.
    pub entity: String,
}

impl CacheService {
    fn resolve(service: &Service) -> Result<Self, &'static str> {
        let table = service.cache.clone().ok_or("cache")?;
        let declared = service.domain.as_ref().and_then(|d| d.entities.first());
        let entity = match declared {
            Some(entity) => crate::names::pascal(entity),
            None => {
                let name = service.name.as_str();
                let stem = ["-cache", "-service"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name);
                crate::names::pascal(stem)
            }
        };
        Ok(Self { table, entity })
    }
}

/// Each table tied to service types, with the types that may carry it, the one it is made
/// for first (`graphql` is not among them: any service speaking GraphQL may carry it).
pub const TYPE_TABLES: &[(&str, &[ServiceType])] = &[
    ("bff", &[ServiceType::Bff]),
    ("saga", &[ServiceType::SagaOrchestrator]),
    (
        "integrations",
        &[ServiceType::Gateway, ServiceType::SagaOrchestrator],
    ),
    ("cqrs", &[ServiceType::EventSourced]),
    ("consumer", &[ServiceType::Consumer]),
    ("websocket", &[ServiceType::WebsocketGateway]),
    ("subscriptions", &[ServiceType::WebsocketGateway]),
    ("schedule", &[ServiceType::Scheduled]),
    ("jobs", &[ServiceType::Scheduled]),
    ("acl", &[ServiceType::AntiCorruptionLayer]),
    ("stream", &[ServiceType::StreamProcessor]),
    ("cache", &[ServiceType::Cache]),
];

/// The type-tied tables `service` carries, in [`TYPE_TABLES`] order, with their owners.
pub(crate) fn tables_present(
    service: &Service,
) -> impl Iterator<Item = (&'static str, &'static [ServiceType])> {
    let s = service;
    let present = [
        s.bff.is_some(),
        s.saga.is_some(),
        s.integrations.is_some(),
        s.cqrs.is_some(),
        s.consumer.is_some(),
        s.websocket.is_some(),
        s.subscriptions.is_some(),
        s.schedule.is_some(),
        s.jobs.is_some(),
        s.acl.is_some(),
        s.stream.is_some(),
        s.cache.is_some(),
    ];
    TYPE_TABLES
        .iter()
        .zip(present)
        .filter_map(|(&table, present)| present.then_some(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_tied_table_resolves_into_its_owner() {
        for &(table, owners) in TYPE_TABLES {
            let owner = owners[0];
            let text = format!(
                "name = \"s\"\ntype = \"{owner}\"\n{}",
                match table {
                    "bff" => "[bff]\naggregates = []",
                    "saga" => "[saga]\nname = \"x\"\nsteps = []\ncompensation = []",
                    "integrations" => "[integrations]\nproviders = []",
                    "cqrs" => "[cqrs]\nprojections = []",
                    "consumer" => "[consumer]\nevents = []",
                    "websocket" => "[websocket]",
                    "subscriptions" => "[websocket]\n[subscriptions]\nevents = []",
                    "schedule" => "[schedule]",
                    "jobs" => "[jobs.nightly]\ncron = \"0 2 * * *\"",
                    "acl" => "[acl]\nupstream = \"http://legacy\"",
                    "stream" => "[stream]\ninput_topics = []",
                    "cache" => "[cache]",
                    other => panic!("a table without a sample: {other}"),
                }
            );
            let service: Service = toml::from_str(&text).expect(&text);
            let present: Vec<_> = tables_present(&service).collect();
            assert!(present.contains(&(table, owners)), "{table}: {present:?}");
            let archetype = Archetype::resolve(&service).expect(table);
            assert_eq!(archetype.kind(), owner);
        }
    }

    #[test]
    fn a_type_without_its_table_names_the_table_it_needs() {
        let service: Service =
            toml::from_str("name = \"s\"\ntype = \"consumer\"").expect("a service");
        assert_eq!(Archetype::resolve(&service), Err("consumer"));
        let service: Service =
            toml::from_str("name = \"s\"\ntype = \"stateless\"").expect("a service");
        assert_eq!(Archetype::resolve(&service), Ok(Archetype::Stateless));
    }

    #[test]
    fn a_saga_orchestrator_keeps_the_participants_it_calls() {
        let text = "name = \"s\"\ntype = \"saga-orchestrator\"\n[saga]\nname = \"x\"\nsteps = []\ncompensation = []\n[integrations]\nproviders = [\"payments\"]";
        let service: Service = toml::from_str(text).expect(text);
        let archetype = Archetype::resolve(&service).expect("a saga");
        let providers = archetype.integrations().map(|i| i.providers.clone());
        assert_eq!(providers, Some(vec!["payments".to_owned()]));
        let service: Service =
            toml::from_str("name = \"s\"\ntype = \"stateless\"").expect("a service");
        assert_eq!(
            Archetype::resolve(&service)
                .expect("stateless")
                .integrations(),
            None
        );
    }

    #[test]
    fn a_cache_caches_its_first_entity_or_one_named_after_it() {
        let resolve = |text: &str| {
            let service: Service = toml::from_str(text).expect(text);
            match Archetype::resolve(&service) {
                Ok(Archetype::Cache(cache)) => cache.entity,
                other => panic!("not a cache: {other:?}"),
            }
        };
        let named = "name = \"product-cache\"\ntype = \"cache\"\n[cache]";
        assert_eq!(resolve(named), "Product");
        let declared = "name = \"product-cache\"\ntype = \"cache\"\n[cache]\n[domain]\nentities = [\"sku_entry\", \"Other\"]";
        assert_eq!(resolve(declared), "SkuEntry");
    }
}
