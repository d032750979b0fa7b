//! The checks of a `producer`: it ingests the entities of `[services.domain]`, publishes one
//! event per entity (`events[i]` for `entities[i]`), and so needs `[services.messaging]`.

use std::collections::BTreeMap;

use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::ServiceType;
use crate::names::{is_pascal, pascal};
use crate::plural::plural_kebab;
use crate::resolve::DraftService;

pub(super) fn producer(c: &mut Checker<'_>, service: &DraftService) {
    if service.kind() != ServiceType::Producer {
        return;
    }
    let path = service_path(service);
    let name = service.name();
    let entities = &service.common.entities;
    let events = service.events();
    if entities.is_empty() {
        c.push(
            Diagnostic::error(
                Code::MissingKey,
                path.key("type"),
                format!("producer `{name}` ingests the entities of `[services.domain] entities`, and declares none"),
            )
            .with_help("add `[services.domain]` with `entities = [\"PositionReport\"]` and `events = [\"PositionReported\"]`: each entity gets `POST /<entities>` and publishes its event"),
        );
    }
    if service.common.messaging.is_none() {
        c.push(
            Diagnostic::error(
                Code::MissingTable,
                path.key("type"),
                format!("producer `{name}` publishes an event per accepted input, and has no `[services.messaging]`"),
            )
            .with_help("add `[services.messaging]` with `pattern = \"outbox\"` (events stored with nothing else, then relayed) or `\"direct\"` (straight to the bus; 503 when it is down)"),
        );
    }
    if !entities.is_empty() && entities.len() != events.len() {
        let domain = path.key("domain");
        let at = if events.is_empty() {
            domain.key("entities")
        } else {
            domain.key("events")
        };
        c.push(
            Diagnostic::error(
                Code::EventMismatch,
                at,
                format!(
                    "producer `{name}` ingests {} entities and declares {} events: `events[i]` is published for `entities[i]`, so it needs one event per entity",
                    entities.len(),
                    events.len()
                ),
            )
            .with_help(match entities.get(events.len()) {
                Some(entity) => format!("add the event published for `{entity}` to `events`, e.g. `{entity}Received`"),
                None => "remove the events no entity publishes, or add their entities".to_owned(),
            }),
        );
    }
    let mut paths: BTreeMap<String, &str> = BTreeMap::new();
    let at = path.key("domain").key("entities");
    for (i, entity) in entities.iter().enumerate().filter(|(_, e)| is_pascal(e)) {
        let endpoint = format!("/{}", plural_kebab(&pascal(entity)));
        match paths.get(&endpoint) {
            Some(other) if *other != entity.as_str() => c.push(
                Diagnostic::error(
                    Code::NameClash,
                    at.index(i),
                    format!("producer `{name}` would take `{entity}` and `{other}` at the same endpoint, `POST {endpoint}`"),
                )
                .with_help(format!("give one of them a name whose plural differs, e.g. `{entity}Entry`")),
            ),
            _ => {
                paths.insert(endpoint, entity);
            }
        }
    }
}
