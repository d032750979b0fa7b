//! An `event-sourced` service: its events live in the service's own database (`allsource` and
//! `eventstore` are refused, naming the supported values), leave through the outbox only, and
//! are snapshotted every N ≥ 1 events.

use allframe_config::diagnostic::Code;
use allframe_config::model::EventStoreKind;
use allframe_config::{Archetype, SourceFile, check};

use super::{HEAD, assert_at, diagnostics, find};

const INVENTORY: &str =
    "[[services]]\nname = \"inventory\"\ntype = \"event-sourced\"\n[services.cqrs]\n";

#[test]
fn the_event_store_defaults_to_the_services_database_and_may_name_it() {
    for (line, store) in [
        ("", None),
        ("event_store = \"sqlite\"\n", Some(EventStoreKind::Sqlite)),
    ] {
        let text = format!("{HEAD}{INVENTORY}{line}projections = [\"Stock\"]\n");
        let arch = check(&SourceFile::new("arch.toml", text)).expect("valid");
        let Archetype::EventSourced(cqrs) = &arch.services()[0].archetype else {
            panic!("an event-sourced service")
        };
        assert_eq!(cqrs.event_store, store);
        assert_eq!(cqrs.snapshot_frequency, 100);
    }
}

#[test]
fn an_event_store_outside_the_services_database_is_an_error_naming_the_supported_ones() {
    for store in ["allsource", "eventstore"] {
        let d = diagnostics(&format!("{INVENTORY}event_store = \"{store}\"\n"));
        let e = find(&d, Code::Unsupported);
        assert_at(e, "services[0].cqrs.event_store", 7);
        assert!(
            e.message.contains("same transaction as the outbox"),
            "{e:?}"
        );
        assert!(
            e.help
                .as_deref()
                .is_some_and(|h| h.contains("\"sqlite\"") && h.contains("\"postgres\"")),
            "{e:?}"
        );
    }
}

#[test]
fn events_leave_through_the_outbox_only_and_snapshots_need_a_frequency() {
    for pattern in ["direct", "transactional"] {
        let d = diagnostics(&format!(
            "{INVENTORY}[services.messaging]\npattern = \"{pattern}\"\n"
        ));
        let e = find(&d, Code::Unsupported);
        assert_at(e, "services[0].messaging.pattern", 8);
        assert!(
            e.help
                .as_deref()
                .is_some_and(|h| h.contains("pattern = \"outbox\"")),
            "{e:?}"
        );
    }
    let d = diagnostics(&format!("{INVENTORY}snapshot_frequency = 0\n"));
    assert_at(
        find(&d, Code::InvalidValue),
        "services[0].cqrs.snapshot_frequency",
        7,
    );
}
