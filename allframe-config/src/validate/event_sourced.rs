//! The checks of an `event-sourced` service (`[services.cqrs]`): its event store is the
//! service's own database, its events leave through the outbox only, and it snapshots every
//! N > 0 events.

use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{EventStoreKind, MessagingPattern, ServiceType};
use crate::resolve::DraftService;

pub(super) fn event_sourced(c: &mut Checker<'_>, service: &DraftService) {
    if service.kind() != ServiceType::EventSourced {
        return;
    }
    let name = service.name();
    let base = service_path(service);
    if let Some(cqrs) = &service.raw.cqrs {
        if let Some(kind @ (EventStoreKind::Allsource | EventStoreKind::Eventstore)) =
            cqrs.event_store
        {
            c.push(
                Diagnostic::error(
                    Code::Unsupported,
                    base.key("cqrs").key("event_store"),
                    format!("`{name}` cannot keep its events in `{kind}`: an append commits in the same transaction as the outbox that publishes it, so the events live in the service's own database"),
                )
                .with_help("write `event_store = \"sqlite\"` (the embedded default) or `\"postgres\"` (with DATABASE_URL), or remove the key"),
            );
        }
        let database = service.common.database;
        if let Some(kind @ (EventStoreKind::Postgres | EventStoreKind::Sqlite)) = cqrs.event_store
            && kind.as_str() != database.as_str()
        {
            c.push(
                Diagnostic::error(
                    Code::Unsupported,
                    base.key("cqrs").key("event_store"),
                    format!("`{name}` keeps its events in its own database, which is `{database}`, not `{kind}`: an append commits in the same transaction as the outbox"),
                )
                .with_help(format!("write `event_store = \"{database}\"`, or remove the key (the event store is the service's database)")),
            );
        }
        if cqrs.snapshot_frequency == 0 {
            c.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    base.key("cqrs").key("snapshot_frequency"),
                    format!("`{name}` has `snapshot_frequency = 0`: an aggregate is snapshotted every N events, and N must be at least 1"),
                )
                .with_help("snapshot every 100 events (`snapshot_frequency = 100`, the default), or remove the key"),
            );
        }
    }
    // Without entities, the aggregate is named after the service: that name must be a type.
    if let Ok(crate::Archetype::EventSourced(es)) = &service.archetype
        && service
            .raw
            .domain
            .as_ref()
            .is_none_or(|d| d.entities.is_empty())
        && let Some(aggregate) = es.aggregates.first()
        && let Some(why) = crate::names::type_name_conflict(&aggregate.entity)
    {
        c.push(
            Diagnostic::error(
                Code::InvalidName,
                base.key("name"),
                format!("`{name}` declares no entity, so its aggregate is named after it, `{}`, which is {why}", aggregate.entity),
            )
            .with_help("name its aggregates in `[services.domain] entities`, e.g. `entities = [\"Account\"]`"),
        );
    }
    if let Some(messaging) = &service.raw.messaging
        && messaging.pattern != MessagingPattern::Outbox
    {
        c.push(
            Diagnostic::error(
                Code::Unsupported,
                base.key("messaging").key("pattern"),
                format!("`{name}` is event-sourced, and its events go out through the outbox only: with `{}` a subscriber could see an event whose append rolled back", messaging.pattern),
            )
            .with_help("write `pattern = \"outbox\"`: the events are published once their append has committed"),
        );
    }
}
