//! The events of the whole file share one crate of types: two spellings of one module, one
//! event published with two payloads and an entity named like that crate are errors at the
//! second name.

use allframe_config::diagnostic::Code;

use super::{HEAD, assert_at, diagnostics, find};

const MESSAGING: &str = "[services.messaging]\npattern = \"outbox\"\n";

fn stateless(name: &str, domain: &str) -> String {
    format!("[[services]]\nname = \"{name}\"\ntype = \"stateless\"\n{domain}{MESSAGING}")
}

fn producer(name: &str, entity: &str, event: &str) -> String {
    format!(
        "[[services]]\nname = \"{name}\"\ntype = \"producer\"\n[services.domain]\nentities = [\"{entity}\"]\nevents = [\"{event}\"]\n{MESSAGING}"
    )
}

#[test]
fn a_consumed_event_spelled_like_another_in_other_letters_is_refused() {
    let consumer = "[[services]]\nname = \"mailer\"\ntype = \"consumer\"\n[services.consumer]\nevents = [\"HTTPRequested\"]\n";
    let d = diagnostics(&format!(
        "{}{consumer}",
        producer("ingest", "Request", "HttpRequested")
    ));
    let clash = find(&d, Code::NameClash);
    assert_at(clash, "services[1].consumer.events[0]", 15);
    assert!(
        clash.message.contains("module `http_requested`"),
        "{clash:?}"
    );
    assert!(
        clash
            .help
            .as_deref()
            .is_some_and(|h| h.contains("`HttpRequested`")),
        "{clash:?}"
    );
}

#[test]
fn an_event_published_by_two_services_is_refused_at_the_second() {
    let users = stateless(
        "user-service",
        "[services.domain]\nentities = [\"User\"]\nevents = [\"UserCreated\"]\n",
    );
    let d = diagnostics(&format!(
        "{users}{}",
        producer("import", "User", "UserCreated")
    ));
    let clash = find(&d, Code::NameClash);
    assert_at(clash, "services[1].domain.events[0]", 16);
    assert!(
        clash.message.contains("published by `user-service`"),
        "{clash:?}"
    );
    assert!(
        clash
            .help
            .as_deref()
            .is_some_and(|h| h.contains("[services.consumer] events")),
        "{clash:?}"
    );
}

#[test]
fn a_stateless_default_event_a_producer_publishes_too_is_refused_at_the_second() {
    let users = stateless("user-service", "[services.domain]\nentities = [\"User\"]\n");
    let d = diagnostics(&format!(
        "{}{users}",
        producer("import", "Row", "UserCreated")
    ));
    let clash = find(&d, Code::NameClash);
    assert_eq!(clash.path.to_string(), "services[1].messaging");
    assert!(clash.message.contains("`UserCreated`"), "{clash:?}");
    assert!(
        clash
            .help
            .as_deref()
            .is_some_and(|h| h.contains("entities")),
        "{clash:?}"
    );
}

#[test]
fn services_of_one_kind_may_publish_one_event() {
    let text = format!("{HEAD}{}{}", stateless("a", ""), stateless("b", ""));
    let source = allframe_config::SourceFile::new("arch.toml", text);
    allframe_config::check(&source).expect("both publish ItemCreated, each on its own topic");
}

#[test]
fn an_entity_named_like_the_shared_event_crate_is_refused() {
    let d = diagnostics(&stateless(
        "user-service",
        "[services.domain]\nentities = [\"ShopEvents\"]\n",
    ));
    let clash = find(&d, Code::NameClash);
    assert_at(clash, "services[0].domain.entities[0]", 7);
    assert!(clash.message.contains("`shop_events`"), "{clash:?}");
}

#[test]
fn producer_entities_with_one_plural_would_share_an_endpoint() {
    let text = "[[services]]\nname = \"ingest\"\ntype = \"producer\"\n[services.domain]\nentities = [\"Datum\", \"Data\"]\nevents = [\"DatumSeen\", \"DataSeen\"]\n";
    let d = diagnostics(&format!("{text}{MESSAGING}"));
    let clash = find(&d, Code::NameClash);
    assert_at(clash, "services[0].domain.entities[1]", 7);
    assert!(clash.message.contains("`POST /data`"), "{clash:?}");
}
