//! The events of the whole file, which share one crate of types (`<architecture>-events`): each
//! spelling becomes one module there, each event has one payload, and no service module
//! shadows the crate's name.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

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

/// Where an event is named in its service's entry (its key path is built only for a
/// diagnostic: the check runs over every event of files with thousands of services).
#[derive(Clone, Copy)]
enum At {
    /// `[services.domain] events[i]`.
    Declared(usize),
    /// The `<Entity>Created` of a `stateless` service with messaging and no events: its
    /// `[services.messaging]`.
    Implicit,
    /// `[services.<table>] <key>[i]`: consumer, subscriptions or cache invalidation events.
    Consumed(&'static str, &'static str, usize),
}

/// One event named in the file, where, and whether that service publishes it.
struct Named<'a> {
    name: Cow<'a, str>,
    service: &'a DraftService,
    at: At,
    /// The payload the generated code publishes it with, when it does.
    published: Option<Shape>,
}

impl Named<'_> {
    fn path(&self) -> KeyPath {
        let base = service_path(self.service);
        match self.at {
            At::Declared(i) => base.key("domain").key("events").index(i),
            At::Implicit => base.key("messaging"),
            At::Consumed(table, key, i) => base.key(table).key(key).index(i),
        }
    }
}

/// The events `service` names: what it declares (`[services.domain] events`), the
/// `<Entity>Created` a `stateless` service with messaging publishes when it declares none, and
/// what it receives.
fn named<'a>(service: &'a DraftService, out: &mut Vec<Named<'a>>) {
    let mut add = |name: Cow<'a, str>, at: At, published: Option<Shape>| {
        out.push(Named {
            name,
            service,
            at,
            published,
        });
    };
    // What the generated code publishes: a producer each of its events, a `stateless`
    // service with messaging its first (its create command's); the rest are declared only.
    let (publishes, shape) = match service.kind() {
        ServiceType::Producer => (service.events().len(), Shape::Ingested),
        ServiceType::Stateless if service.common.messaging.is_some() => (1, Shape::Created),
        _ => (0, Shape::Created),
    };
    for (i, name) in service.events().iter().enumerate() {
        add(
            Cow::Borrowed(name),
            At::Declared(i),
            (i < publishes).then_some(shape),
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
            Cow::Owned(format!("{}Created", pascal(entity))),
            At::Implicit,
            Some(Shape::Created),
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
        for (i, name) in names.iter().enumerate() {
            add(Cow::Borrowed(name), At::Consumed(table, key, i), None);
        }
    }
}

/// Two spellings that become one module of the shared crate, and one event published by a
/// `stateless` service and a `producer` (whose payloads differ: the shared crate has one type
/// per event), are errors. Services of one kind may publish the same event: each on its own
/// topic, with one payload type.
pub(super) fn events_across_services(c: &mut Checker<'_>) {
    let mut all = Vec::new();
    for service in c.arch.services() {
        named(service, &mut all);
    }
    // Each distinct spelling once: most events are named by their publisher and again by
    // each consumer.
    let mut spellings: HashSet<&str> = HashSet::new();
    let mut modules: HashMap<String, &Named<'_>> = HashMap::new();
    let mut publishers: HashMap<&str, &Named<'_>> = HashMap::new();
    let mut found = Vec::new();
    for event in all.iter().filter(|e| is_pascal(&e.name)) {
        if spellings.insert(&event.name) {
            let module = snake(&event.name);
            match modules.get(&module) {
                Some(other) => found.push(
                    Diagnostic::error(
                        Code::NameClash,
                        event.path(),
                        format!(
                            "event `{}` and event `{}` ({}) differ only in letter case; both become the module `{module}` of the shared event types",
                            event.name, other.name, other.path()
                        ),
                    )
                    .with_help(format!("spell the event the same way everywhere, e.g. `{}`", other.name)),
                ),
                None => {
                    modules.insert(module, event);
                }
            }
        }
        let Some(shape) = event.published else {
            continue;
        };
        match publishers.get(event.name.as_ref()) {
            Some(other) if other.published != Some(shape) => found.push(
                Diagnostic::error(
                    Code::NameClash,
                    event.path(),
                    format!(
                        "event `{}` is published by `{}` ({}) {} and by `{}` {}; its one type in the shared event crate cannot be both",
                        event.name,
                        other.service.name(),
                        other.path(),
                        other.published.map_or("", Shape::carries),
                        event.service.name(),
                        shape.carries()
                    ),
                )
                .with_help(if matches!(event.at, At::Implicit) {
                    format!("name `{}`'s entity in `[services.domain] entities`: it then publishes `<Entity>Created`", event.service.name())
                } else {
                    format!(
                        "give one of them another name, or let `{}` publish it and list it under the other's `[services.consumer] events`",
                        other.service.name()
                    )
                }),
            ),
            Some(_) => {}
            None => {
                publishers.insert(event.name.as_ref(), event);
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
    for (i, entity) in service.common.entities.iter().enumerate() {
        // The crate's module ends in `_events`, so only an entity ending in `Events` can be it.
        if !entity.ends_with("Events") || !is_pascal(entity) {
            continue;
        }
        let events_crate = format!("{}_events", snake(c.arch.name()));
        if snake(entity) == events_crate {
            let path = service_path(service).key("domain").key("entities");
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
