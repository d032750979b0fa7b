//! A `cache` service: its engine is Redis (with the embedded default); Hazelcast and Memcached
//! are refused naming why and what to write, and entries live at least a second.

use allframe_config::diagnostic::Code;

use super::{assert_at, diagnostics, find};

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
