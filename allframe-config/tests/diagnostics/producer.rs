//! A `producer`: entities to ingest, one event per entity, messaging to publish with; each
//! missing piece is an error at its line naming the fix, and a protocol it does not serve is
//! reported as not honoured.

use allframe_config::diagnostic::Code;
use allframe_config::{Archetype, SourceFile, check};

use super::{HEAD, assert_at, diagnostics, find};

const PRODUCER: &str = "[[services]]\nname = \"ingest\"\ntype = \"producer\"\n";
const MESSAGING: &str = "[services.messaging]\npattern = \"outbox\"\n";

#[test]
fn a_producer_pairs_each_entity_with_its_event() {
    let text = format!(
        "{HEAD}{PRODUCER}[services.domain]\nentities = [\"PositionReport\", \"Alert\"]\nevents = [\"PositionReported\", \"AlertRaised\"]\n{MESSAGING}"
    );
    let arch = check(&SourceFile::new("arch.toml", text)).expect("valid");
    let Archetype::Producer(producer) = &arch.services()[0].archetype else {
        panic!("a producer")
    };
    let pairs: Vec<(&str, &str)> = producer
        .ingests
        .iter()
        .map(|i| (i.entity.as_str(), i.event.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("PositionReport", "PositionReported"),
            ("Alert", "AlertRaised")
        ]
    );
}

#[test]
fn a_producer_without_entities_or_messaging_is_refused_at_its_type() {
    let d = diagnostics(PRODUCER);
    let missing: Vec<(Code, String)> = d.iter().map(|x| (x.code, x.path.to_string())).collect();
    assert_eq!(
        missing,
        [
            (Code::MissingKey, "services[0].type".to_owned()),
            (Code::MissingTable, "services[0].type".to_owned())
        ]
    );
    let no_entities = find(&d, Code::MissingKey);
    assert_at(no_entities, "services[0].type", 5);
    assert!(
        no_entities
            .help
            .as_deref()
            .is_some_and(|h| h.contains("entities = ["))
    );
    let no_messaging = find(&d, Code::MissingTable);
    assert!(
        no_messaging
            .help
            .as_deref()
            .is_some_and(|h| h.contains("[services.messaging]")),
        "{no_messaging:?}"
    );
}

#[test]
fn events_that_do_not_pair_with_entities_are_an_error_naming_the_missing_one() {
    let d = diagnostics(&format!(
        "{PRODUCER}[services.domain]\nentities = [\"PositionReport\", \"Alert\"]\nevents = [\"PositionReported\"]\n{MESSAGING}"
    ));
    let mismatch = find(&d, Code::EventMismatch);
    assert_at(mismatch, "services[0].domain.events", 8);
    assert!(
        mismatch
            .message
            .contains("2 entities and declares 1 events"),
        "{mismatch:?}"
    );
    assert!(
        mismatch
            .help
            .as_deref()
            .is_some_and(|h| h.contains("`AlertReceived`")),
        "{mismatch:?}"
    );
}

#[test]
fn a_producer_speaking_grpc_is_told_it_ingests_over_rest_only() {
    let d = diagnostics(&format!(
        "{PRODUCER}protocols = [\"rest\", \"grpc\"]\n[services.domain]\nentities = [\"Reading\"]\nevents = [\"ReadingTaken\"]\n{MESSAGING}"
    ));
    assert!(!d.has_errors(), "{d}");
    let warning = find(&d, Code::NotHonoured);
    assert_at(warning, "services[0].protocols", 6);
    assert!(warning.message.contains("REST only"), "{warning:?}");
}

#[test]
fn no_service_may_take_the_name_of_the_shared_events_crate() {
    let d = diagnostics("[[services]]\nname = \"shop-events\"\ntype = \"stateless\"\n");
    let clash = find(&d, Code::InvalidName);
    assert_at(clash, "services[0].name", 4);
    assert!(
        clash.message.contains("shared event-types crate"),
        "{clash:?}"
    );
}
