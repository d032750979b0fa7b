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
        let database = match store {
            Some(_) => "[services.database]\ntype = \"sqlite\"\n",
            None => "",
        };
        let text = format!("{HEAD}{INVENTORY}{line}projections = [\"Stock\"]\n{database}");
        let arch = check(&SourceFile::new("arch.toml", text)).expect("valid");
        let Archetype::EventSourced(es) = &arch.services()[0].archetype else {
            panic!("an event-sourced service")
        };
        assert_eq!(es.cqrs.event_store, store);
        assert_eq!(es.cqrs.snapshot_frequency, 100);
    }
}

#[test]
fn aggregates_come_from_the_entities_or_the_service_and_each_declared_event_has_one_owner() {
    let shapes = |text: String| {
        let arch = check(&SourceFile::new("arch.toml", text)).expect("valid");
        let Archetype::EventSourced(es) = &arch.services()[0].archetype else {
            panic!("an event-sourced service")
        };
        es.aggregates
            .iter()
            .map(|a| (a.entity.clone(), a.events.clone()))
            .collect::<Vec<_>>()
    };
    let alone =
        "[[services]]\nname = \"ledger-service\"\ntype = \"event-sourced\"\n[services.cqrs]\n";
    assert_eq!(
        shapes(format!("{HEAD}{alone}")),
        [("Ledger".to_owned(), vec!["LedgerCreated".to_owned()])],
        "no entity: one aggregate named after the service, recording `<Entity>Created`"
    );
    let domain = "[services.domain]\nentities = [\"Account\", \"AccountHold\", \"Card\"]\nevents = [\"AccountOpened\", \"AccountHoldPlaced\", \"Audited\"]\n";
    assert_eq!(
        shapes(format!("{HEAD}{alone}{domain}")),
        [
            (
                "Account".to_owned(),
                vec!["AccountOpened".to_owned(), "Audited".to_owned()]
            ),
            (
                "AccountHold".to_owned(),
                vec!["AccountHoldPlaced".to_owned()]
            ),
            ("Card".to_owned(), vec!["CardCreated".to_owned()]),
        ],
        "the longest name prefix owns an event; the first aggregate takes the rest"
    );
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

#[test]
fn an_event_store_naming_another_engine_than_the_services_database_is_an_error() {
    let text =
        format!("{INVENTORY}event_store = \"postgres\"\n[services.database]\ntype = \"sqlite\"\n");
    let d = diagnostics(&text);
    let e = find(&d, Code::Unsupported);
    assert_at(e, "services[0].cqrs.event_store", 7);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("event_store = \"sqlite\"")),
        "{e:?}"
    );
}

#[test]
fn an_aggregate_named_after_a_service_must_be_a_type_name() {
    let text =
        "[[services]]\nname = \"option-service\"\ntype = \"event-sourced\"\n[services.cqrs]\n";
    let d = diagnostics(text);
    let e = find(&d, Code::InvalidName);
    assert_at(e, "services[0].name", 4);
    assert!(e.message.contains("`Option`"), "{e:?}");
    let named = format!("{HEAD}{text}[services.domain]\nentities = [\"Account\"]\n");
    assert!(
        check(&SourceFile::new("arch.toml", named)).is_ok(),
        "declared entities name the aggregates"
    );
}
