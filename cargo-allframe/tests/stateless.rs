//! The example code of a `stateless` service crate for each way the file can declare messaging
//! and idempotency: the create command's unit of work, the event it publishes, the tests that
//! check both. Rendered through the plan (no file system), then formatted as ignite does.

mod common;

use std::collections::BTreeMap;

use allframe_config::SourceFile;
use cargo_allframe::context::RuntimeSource;
use cargo_allframe::plan;
use cargo_allframe::rustfmt;
use cargo_allframe::templates::Renderer;
use common::{read, repository};

/// The files of `service`'s crate, by path relative to the crate.
fn crate_files(toml: &str, service: &str) -> BTreeMap<String, String> {
    files_under(toml, &format!("services/{service}/"))
}

/// The files of the workspace's shared event-types crate, by path relative to it.
fn event_files(toml: &str) -> BTreeMap<String, String> {
    files_under(toml, "events/")
}

/// The files ignite plans under `prefix`, by path relative to it.
fn files_under(toml: &str, prefix: &str) -> BTreeMap<String, String> {
    let source = SourceFile::new("architecture.toml", toml);
    let architecture = allframe_config::check(&source).unwrap_or_else(|e| panic!("{e:?}"));
    let renderer = Renderer::new().expect("templates parse");
    let runtime = RuntimeSource::Version("0.1.0".into());
    let files = plan::plan(&architecture, toml.as_bytes(), &runtime, &renderer)
        .expect("plan")
        .files
        .into_iter()
        .filter_map(|f| {
            let path = f.path.strip_prefix(prefix)?.to_owned();
            Some((path, String::from_utf8(f.contents).expect("utf-8")))
        })
        .collect();
    formatted(files)
}

/// One stateless service `orders` with entity `Order` and the given extra sections.
fn orders(domain_events: &str, sections: &str) -> String {
    format!(
        "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\n\
         protocols = [\"rest\", \"grpc\"]\n\n[services.domain]\nentities = [\"Order\"]\n\
         events = [{domain_events}]\n\n{sections}"
    )
}

/// Formats every Rust file as ignite does (so each one must parse).
fn formatted(mut files: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let program = rustfmt::program();
    for (path, text) in files.iter_mut().filter(|(path, _)| path.ends_with(".rs")) {
        *text = rustfmt::format(&program, text)
            .unwrap_or_else(|e| panic!("{path} does not parse: {e:?}\n{text}"));
    }
    files
}

#[test]
fn the_quickstart_create_handler_publishes_user_created_in_its_unit_of_work() {
    let toml = read(&repository().join("examples/quickstart/architecture.toml"));
    let files = crate_files(&toml, "user-service");
    let events = event_files(&toml);
    let shown: String = [
        "src/domain/mod.rs",
        "src/application/commands.rs",
        "src/presentation/rest.rs",
        "migrations/0001_create_users.sql",
    ]
    .iter()
    .map(|path| format!("=== {path}\n{}", files[*path]))
    .chain(
        ["Cargo.toml", "src/lib.rs", "src/user_created.rs"]
            .iter()
            .map(|path| format!("=== events/{path}\n{}", events[*path])),
    )
    .collect();
    insta::assert_snapshot!("quickstart_user_service", shown);

    let tests = &files["src/tests.rs"];
    for expected in [
        "service.events(\"UserCreated\")",
        "a_taken_name_is_a_conflict_and_publishes_nothing",
        "a_repeated_idempotency_key_is_answered_with_the_first_response",
        "const KEY: &str = \"Idempotency-Key\";",
    ] {
        assert!(tests.contains(expected), "{expected} in\n{tests}");
    }
    let grpc = &files["src/presentation/grpc.rs"];
    assert!(
        grpc.contains("commands::create_user(cx, events, input)"),
        "{grpc}"
    );
}

#[test]
fn the_first_declared_event_is_published_else_entity_created() {
    let outbox = "[services.messaging]\npattern = \"outbox\"\n";
    let toml = orders("\"OrderPlaced\", \"OrderShipped\"", outbox);
    let events = event_files(&toml);
    let event = &events["src/order_placed.rs"];
    assert!(event.contains("pub struct OrderPlaced {"), "{event}");
    assert!(
        event.contains("pub name: String,"),
        "the created entity's fields: {event}"
    );
    assert!(
        event.contains("const TYPE: &'static str = \"OrderPlaced\";"),
        "{event}"
    );
    assert!(
        event.contains("const AGGREGATE_TYPE: &'static str = \"Order\";"),
        "{event}"
    );
    // Declared but not published by the create command: a type with an id to extend.
    let shipped = &events["src/order_shipped.rs"];
    assert!(!shipped.contains("pub name"), "{shipped}");
    let files = crate_files(&toml, "orders");
    assert!(
        files["src/application/commands.rs"].contains("uow.publish(shop_events::OrderPlaced {")
    );
    assert!(files["Cargo.toml"].contains("shop-events = { path = \"../../events\" }"));

    let toml = orders("", outbox);
    let event = &event_files(&toml)["src/order_created.rs"];
    assert!(
        event.contains("const TYPE: &'static str = \"OrderCreated\";"),
        "{event}"
    );
    let tests = &crate_files(&toml, "orders")["src/tests.rs"];
    assert!(tests.contains("\"OrderCreated\")"), "{tests}");

    // In the shared crate no entity type is in scope: an event named like the entity keeps
    // its name as a Rust type too.
    let event = &event_files(&orders("\"Order\"", outbox))["src/order.rs"];
    assert!(event.contains("pub struct Order {"), "{event}");
    assert!(
        event.contains("const TYPE: &'static str = \"Order\";"),
        "{event}"
    );
}

#[test]
fn direct_publishing_uses_the_same_unit_of_work() {
    let files = crate_files(
        &orders(
            "\"OrderPlaced\"",
            "[services.messaging]\npattern = \"direct\"\n",
        ),
        "orders",
    );
    let commands = &files["src/application/commands.rs"];
    assert!(commands.contains("cx.begin_with(events)"), "{commands}");
    assert!(commands.contains("uow.publish(shop_events::OrderPlaced {"));
    assert!(commands.contains("Pattern `direct`"), "{commands}");
    assert!(files["src/tests.rs"].contains("service.events(\"OrderPlaced\")"));
    // No idempotency declared: no replay test.
    assert!(!files["src/tests.rs"].contains("idempotency"));
}

#[test]
fn without_messaging_the_unit_of_work_publishes_nothing() {
    let files = crate_files(
        &orders(
            "\"OrderPlaced\"",
            "[services.idempotency]\nenabled = true\nkey_header = \"X-Request-Key\"\n",
        ),
        "orders",
    );
    assert!(!files.contains_key("src/domain/order_placed.rs"));
    let commands = &files["src/application/commands.rs"];
    assert!(
        commands.contains("let mut uow = cx.begin().await?;"),
        "{commands}"
    );
    assert!(!commands.contains("publish("), "{commands}");
    assert!(!files["src/domain/mod.rs"].contains("OrderPlaced"));
    let tests = &files["src/tests.rs"];
    assert!(!tests.contains("events("), "{tests}");
    assert!(
        tests.contains("const KEY: &str = \"X-Request-Key\";"),
        "{tests}"
    );
    assert!(tests.contains("a_taken_name_is_a_conflict()"), "{tests}");
}
