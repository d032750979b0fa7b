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
