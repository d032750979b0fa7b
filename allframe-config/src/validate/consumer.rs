//! The checks of a `consumer`: it takes at least one event, and handles at least one at a time.

use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::resolve::{Archetype, DraftService};

pub(super) fn consumer(c: &mut Checker<'_>, service: &DraftService) {
    let Ok(Archetype::Consumer(consumer)) = &service.archetype else {
        return;
    };
    let table = service_path(service).key("consumer");
    let name = service.name();
    if consumer.events.is_empty() {
        c.push(
            Diagnostic::error(
                Code::MissingKey,
                table.key("events"),
                format!("consumer `{name}` takes no events: each event in `events` becomes a handler method, and with none there is nothing to run"),
            )
            .with_help("list the events it handles, e.g. `events = [\"UserCreated\"]`; each becomes `on_user_created` in its `Consumes` impl"),
        );
    }
    if consumer.concurrency == 0 {
        c.push(
            Diagnostic::error(
                Code::InvalidValue,
                table.key("concurrency"),
                format!("consumer `{name}` would handle no event at all with `concurrency = 0`"),
            )
            .with_help("use 1 to handle events one at a time, or more to handle different aggregates in parallel (each aggregate's events stay in order)"),
        );
    }
}
