//! The events of the whole file, which share one crate of types (`<architecture>-events`): each
//! spelling becomes one module there, each event has one payload, and no service module
//! shadows the crate's name.

use std::collections::BTreeMap;

use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::ServiceType;
use crate::names::{DEFAULT_ENTITY, is_pascal, pascal, snake};
use crate::resolve::DraftService;
use crate::source::KeyPath;

/// What a generated publisher puts in an event's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A `stateless` service's create command: the new entity's id and name.
    Created,
    /// A `producer`: the validated input.
    Ingested,
}

impl Shape {
    fn carries(self) -> &'static str {
        match self {
            Shape::Created => "with the new entity's id and name",
            Shape::Ingested => "with the ingested input",
        }
    }
}

/// One event named in the file, where, and whether that service publishes it.
struct Named<'a> {
    name: String,
    path: KeyPath,
    service: &'a str,
    /// The payload the generated code publishes it with, when it does.
    published: Option<Shape>,
    /// The `<Entity>Created` of a `stateless` service that declares no events.
    implicit: bool,
}

/// The events `service` names: what it declares (`[services.domain] events`), the
/// `<Entity>Created` a `stateless` service with messaging publishes when it declares none, and
/// what it receives.
fn named(service: &DraftService) -> Vec<Named<'_>> {
    let base = service_path(service);
    let mut out = Vec::new();
    let mut add = |name: &str, path: KeyPath, published: Option<Shape>, implicit: bool| {
        out.push(Named {
            name: name.to_owned(),
            path,
            service: service.name(),
            published,
            implicit,
        });
    };
    // What the generated code publishes: a producer each of its events, a `stateless`
    // service with messaging its first (its create command's); the rest are declared only.
    let (publishes, shape) = match service.kind() {
        ServiceType::Producer => (service.events().len(), Shape::Ingested),
        ServiceType::Stateless if service.common.messaging.is_some() => (1, Shape::Created),
        _ => (0, Shape::Created),
    };
    let events = base.key("domain").key("events");
    for (i, name) in service.events().iter().enumerate() {
        add(
            name,
            events.index(i),
            (i < publishes).then_some(shape),
            false,
        );
    }
    if service.kind() == ServiceType::Stateless
        && service.common.messaging.is_some()
        && service.events().is_empty()
    {
        let entity = service
            .common
            .entities
            .first()
            .map_or(DEFAULT_ENTITY, String::as_str);
        add(
            &format!("{}Created", pascal(entity)),
            base.key("messaging"),
            Some(Shape::Created),
            true,
        );
    }
    let raw = &service.raw;
    let consumed = [
        raw.consumer
            .as_ref()
            .map(|c| ("consumer", "events", &c.events)),
        raw.subscriptions
            .as_ref()
            .map(|s| ("subscriptions", "events", &s.events)),
        raw.cache
            .as_ref()
            .map(|c| ("cache", "invalidation", &c.invalidation)),
    ];
    for (table, key, names) in consumed.into_iter().flatten() {
        let path = base.key(table).key(key);
        for (i, name) in names.iter().enumerate() {
            add(name, path.index(i), None, false);
        }
    }
    out
}

/// Two spellings that become one module of the shared crate, and one event published by a
/// `stateless` service and a `producer` (whose payloads differ: the shared crate has one type
/// per event), are errors. Services of one kind may publish the same event: each on its own
/// topic, with one payload type.
pub(super) fn events_across_services(c: &mut Checker<'_>) {
    let all: Vec<Named<'_>> = c.arch.services().iter().flat_map(named).collect();
    let mut modules: BTreeMap<String, &Named<'_>> = BTreeMap::new();
    let mut publishers: BTreeMap<&str, &Named<'_>> = BTreeMap::new();
    let mut found = Vec::new();
    for event in all.iter().filter(|e| is_pascal(&e.name)) {
        let module = snake(&event.name);
        match modules.get(&module) {
            Some(other) if other.name != event.name => found.push(
                Diagnostic::error(
                    Code::NameClash,
                    event.path.clone(),
                    format!(
                        "event `{}` and event `{}` ({}) differ only in letter case; both become the module `{module}` of the shared event types",
                        event.name, other.name, other.path
                    ),
                )
                .with_help(format!("spell the event the same way everywhere, e.g. `{}`", other.name)),
            ),
            Some(_) => {}
            None => {
                modules.insert(module, event);
            }
        }
        let Some(shape) = event.published else {
            continue;
        };
        match publishers.get(event.name.as_str()) {
            Some(other) if other.published != Some(shape) => found.push(
                Diagnostic::error(
                    Code::NameClash,
                    event.path.clone(),
                    format!(
                        "event `{}` is published by `{}` ({}) {} and by `{}` {}; its one type in the shared event crate cannot be both",
                        event.name,
                        other.service,
                        other.path,
                        other.published.map_or("", Shape::carries),
                        event.service,
                        shape.carries()
                    ),
                )
                .with_help(if event.implicit {
                    format!("name `{}`'s entity in `[services.domain] entities`: it then publishes `<Entity>Created`", event.service)
                } else {
                    format!(
                        "give one of them another name, or let `{}` publish it and list it under the other's `[services.consumer] events`",
                        other.service
                    )
                }),
            ),
            Some(_) => {}
            None => {
                publishers.insert(&event.name, event);
            }
        }
    }
    for diagnostic in found {
        c.push(diagnostic);
    }
}

/// An entity module named like the shared event crate (`QuickstartEvents` in the architecture
/// `quickstart`) would make that crate's paths ambiguous in the service.
pub(super) fn entity_shadowing_events_crate(c: &mut Checker<'_>, service: &DraftService) {
    let events_crate = format!("{}_events", snake(c.arch.name()));
    let path = service_path(service).key("domain").key("entities");
    for (i, entity) in service.common.entities.iter().enumerate() {
        if is_pascal(entity) && snake(entity) == events_crate {
            c.push(
                Diagnostic::error(
                    Code::NameClash,
                    path.index(i),
                    format!(
                        "entity `{entity}` becomes the module `{events_crate}`, the name of the workspace's shared event types crate"
                    ),
                )
                .with_help(format!("choose a more specific name, e.g. `{entity}Record`")),
            );
        }
    }
}
