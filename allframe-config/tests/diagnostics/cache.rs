//! A `cache` service: its engine is Redis (with the embedded default); Hazelcast and Memcached
//! are refused naming why and what to write, entries live at least a second, and the entity
//! named after the service must be able to be a type.

use allframe_config::diagnostic::Code;
use allframe_config::{SourceFile, check};

use super::{HEAD, assert_at, diagnostics, find};

const CATALOG: &str =
    "[[services]]\nname = \"catalog-cache\"\ntype = \"cache\"\n[services.cache]\n";

#[test]
fn an_engine_without_a_maintained_client_is_an_error_naming_redis() {
    for (backend, why) in [
        ("hazelcast", "no maintained Rust client"),
        ("memcached", "no maintained async Rust client"),
    ] {
        let d = diagnostics(&format!("{CATALOG}backend = \"{backend}\"\n"));
        let e = find(&d, Code::Unsupported);
        assert_at(e, "services[0].cache.backend", 7);
        assert!(e.message.contains(why), "{e:?}");
        assert!(
            e.help
                .as_deref()
                .is_some_and(|h| h.contains("backend = \"redis\"")),
            "{e:?}"
        );
    }
}

#[test]
fn entries_must_live_at_least_a_second() {
    let d = diagnostics(&format!("{CATALOG}ttl_seconds = 0\n"));
    assert_at(
        find(&d, Code::InvalidValue),
        "services[0].cache.ttl_seconds",
        7,
    );
}

#[test]
fn a_cache_named_after_a_type_the_code_uses_must_name_its_entity() {
    let d =
        diagnostics("[[services]]\nname = \"option-cache\"\ntype = \"cache\"\n[services.cache]\n");
    let e = find(&d, Code::InvalidName);
    assert_at(e, "services[0].name", 4);
    assert!(e.message.contains("`Option`"), "{e:?}");
    let named = format!(
        "{HEAD}[[services]]\nname = \"option-cache\"\ntype = \"cache\"\n[services.cache]\n[services.domain]\nentities = [\"Product\"]\n"
    );
    assert!(
        check(&SourceFile::new("arch.toml", named)).is_ok(),
        "a declared entity names what it caches"
    );
}

#[test]
fn a_cache_of_several_entities_is_warned_that_it_caches_the_first() {
    let d = diagnostics(&format!(
        "{CATALOG}[services.domain]\nentities = [\"Product\", \"Price\"]\n"
    ));
    let e = find(&d, Code::NotHonoured);
    assert_at(e, "services[0].domain.entities", 8);
    assert!(e.message.contains("caches its first entity"), "{e:?}");
    let one = format!("{HEAD}{CATALOG}[services.domain]\nentities = [\"Product\"]\n");
    let arch = check(&SourceFile::new("arch.toml", one)).expect("valid");
    assert_eq!(arch.warnings().count(), 0, "one entity is cached in full");
}
