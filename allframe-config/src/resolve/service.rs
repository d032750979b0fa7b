//! One service after resolution: what every service has ([`CommonService`]) and its typed
//! [`Archetype`].

use crate::model::{
    DatabaseKind, GraphQl, IdempotencyStorage, Messaging, Protocol, ResiliencePolicy, ServiceType,
};

use super::archetype::Archetype;

/// A service's idempotency settings with every value decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyPolicy {
    /// Request header with the key.
    pub key_header: String,
    /// Lifetime of keys, in hours.
    pub ttl_hours: u32,
    /// The store.
    pub storage: IdempotencyStorage,
}

/// What every service has, whatever its type, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonService {
    /// Position in `[[services]]`.
    pub index: usize,
    /// The name: a DNS label and crate name such as `user-service`.
    pub name: String,
    /// What it is responsible for, when written.
    pub responsibility: Option<String>,
    /// Protocols served.
    pub protocols: Vec<Protocol>,
    /// HTTP port (REST, health).
    pub http_port: u16,
    /// gRPC port, when the service speaks gRPC.
    pub grpc_port: Option<u16>,
    /// Metrics port, when declared apart.
    pub metrics_port: Option<u16>,
    /// What it calls (`ports.outbound`): other services and engines.
    pub outbound: Vec<String>,
    /// Entity names, in PascalCase.
    pub entities: Vec<String>,
    /// Domain events it produces, in PascalCase.
    pub events: Vec<String>,
    /// The production database engine.
    pub database: DatabaseKind,
    /// Resilience in effect.
    pub resilience: ResiliencePolicy,
    /// Publishing of events, when declared.
    pub messaging: Option<Messaging>,
    /// Idempotency, when enabled.
    pub idempotency: Option<IdempotencyPolicy>,
    /// GraphQL options, when declared (a `bff`, or a service speaking `graphql`).
    pub graphql: Option<GraphQl>,
}

impl CommonService {
    /// True when `protocol` is served.
    pub fn speaks(&self, protocol: Protocol) -> bool {
        self.protocols.contains(&protocol)
    }
}

/// One checked service: what every service has, and its archetype's own tables.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedService {
    /// What every service has.
    pub common: CommonService,
    /// The type with its tables.
    pub archetype: Archetype,
}

impl ResolvedService {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.common.name
    }

    /// The service's type.
    pub fn kind(&self) -> ServiceType {
        self.archetype.kind()
    }

    /// True when `protocol` is served.
    pub fn speaks(&self, protocol: Protocol) -> bool {
        self.common.speaks(protocol)
    }

    /// Declared entities (empty when none).
    pub fn entities(&self) -> &[String] {
        &self.common.entities
    }

    /// Declared domain events (empty when none).
    pub fn events(&self) -> &[String] {
        &self.common.events
    }

    /// True when the service publishes `event` on its own topic: it has `[services.messaging]`
    /// and declares the event, or it is a `stateless` service declaring no events, whose
    /// generated create command publishes `<Entity>Created`, or an `event-sourced` service
    /// whose aggregate records it (an aggregate given no declared event records
    /// `<Entity>Created`).
    pub fn publishes(&self, event: &str) -> bool {
        if self.common.messaging.is_none() {
            return false;
        }
        if self.common.events.is_empty() && self.kind() == ServiceType::Stateless {
            let entity = self
                .common
                .entities
                .first()
                .map_or(crate::names::DEFAULT_ENTITY, String::as_str);
            return event.strip_suffix("Created") == Some(crate::names::pascal(entity).as_str());
        }
        if let crate::Archetype::EventSourced(es) = &self.archetype {
            return es
                .aggregates
                .iter()
                .any(|a| a.events.iter().any(|e| e == event));
        }
        self.common.events.iter().any(|declared| declared == event)
    }
}
