//! The workspace's shared event types: one crate, `<architecture>-events`, with one type per
//! event the architecture names — published by a generated service, declared in
//! `[services.domain] events`, or consumed from outside — so that producers and consumers share
//! one definition. Decides which events and what example fields each starts with; the
//! templates in `archetypes/workspace/events/` spell them out.

use std::collections::BTreeSet;

use allframe_config::Architecture;
use serde::Serialize;

use crate::context::ServiceContext;
use crate::names::EventNames;

/// The shared crate's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventsCrate {
    /// The package and directory name: `quickstart-events` (in `events/`).
    pub kebab: String,
    /// The library name in paths: `quickstart_events`.
    pub snake: String,
}

impl EventsCrate {
    /// The events crate of the architecture `name` (a DNS label, so a valid crate name).
    pub fn new(architecture: &str) -> Self {
        let kebab = format!("{architecture}-events");
        Self {
            snake: kebab.replace('-', "_"),
            kebab,
        }
    }
}

/// The fields an event type starts with, after who publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// A `stateless` service's create event: the new entity's `id` and `name`.
    Created,
    /// An `event-sourced` aggregate's event: the aggregate's `id` and its `name`.
    Recorded,
    /// A `producer`'s event: the input's `id` and `value`.
    Ingested,
    /// Declared or consumed only: an `id` to extend.
    Plain,
}

/// An event a generated service's own code publishes (its archetype says which).
#[derive(Debug, Clone, Copy)]
pub struct Published<'a> {
    /// The event.
    pub event: &'a EventNames,
    /// The entity it is about.
    pub aggregate: &'a str,
    /// The fields it starts with.
    pub shape: Shape,
}

/// One event type of the shared crate.
#[derive(Debug, Clone, Serialize)]
pub struct SharedEvent {
    /// Its names (`name` on the bus, the Rust type, the module).
    #[serde(flatten)]
    pub names: EventNames,
    /// `Event::AGGREGATE_TYPE`: the entity it is about (the event's own name when no service
    /// of the file says).
    pub aggregate: String,
    /// The fields it starts with.
    pub shape: Shape,
    /// The service that publishes it, when one of the file does.
    pub source: Option<String>,
}

/// Every event of `architecture`, once, in the order the file first names them: what the
/// generated services publish, then what services declare, then what they consume.
pub fn shared_events(architecture: &Architecture, services: &[ServiceContext]) -> Vec<SharedEvent> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut add = |name: &str, aggregate: &str, shape: Shape, source: Option<&str>| {
        if seen.insert(name.to_owned()) {
            out.push(SharedEvent {
                names: EventNames::shared(name),
                aggregate: aggregate.to_owned(),
                shape,
                source: source.map(str::to_owned),
            });
        }
    };
    for service in services {
        let source = Some(service.names.kebab.as_str());
        for published in service.archetype.published() {
            add(
                &published.event.name,
                published.aggregate,
                published.shape,
                source,
            );
        }
    }
    for service in architecture.services() {
        let aggregate = service
            .entities()
            .first()
            .map(|e| allframe_config::names::pascal(e));
        for event in service.events() {
            let aggregate = aggregate.clone().unwrap_or_else(|| event.clone());
            add(event, &aggregate, Shape::Plain, Some(service.name()));
        }
    }
    for service in architecture.services() {
        for event in service.archetype.consumed_events() {
            add(event, event, Shape::Plain, None);
        }
    }
    out
}
