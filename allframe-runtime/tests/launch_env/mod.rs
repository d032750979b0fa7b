//! The settings and environment every in-process test service starts with, shared by the
//! launcher tests (`service.rs` includes it directly; `messaging_support` and
//! `idempotency_support` by path).
#![allow(dead_code)]

use std::path::Path;

use allframe_runtime::__private::{Environment, LogFormat, ServiceSettings};

/// Data under `dir`, any free port on loopback, and `extra` variables.
pub fn test_env(dir: &Path, extra: &[(&str, &str)]) -> Environment {
    let mut pairs = vec![
        (
            "ALLFRAME_DATA_DIR".to_owned(),
            dir.to_string_lossy().into_owned(),
        ),
        ("PORT".to_owned(), "0".to_owned()),
        ("ALLFRAME_BIND_ADDR".to_owned(), "127.0.0.1".to_owned()),
    ];
    pairs.extend(
        extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    );
    Environment::from_pairs(pairs)
}

/// A stateless service `name` of `architecture`, as the generated code declares it: REST on
/// 8080 (the tests' `PORT=0` overrides it), no gRPC, plain logs, PostgreSQL declared (the
/// tests run on the embedded SQLite default), 5 s to drain, no deferred values. A test that
/// needs more overrides fields with `..stateless_settings(…)`.
pub const fn stateless_settings(architecture: &'static str, name: &'static str) -> ServiceSettings {
    ServiceSettings {
        architecture,
        name,
        archetype: "stateless",
        rest_port: 8080,
        grpc_port: None,
        logging: LogFormat::Plain,
        declared_database: "postgres",
        shutdown_timeout_secs: 5,
        deferred: &[],
    }
}

/// A TCP port free on loopback right now (for an admin API).
pub fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .expect("free port")
        .port()
        .to_string()
}

/// The runtime's example `name` (a crash-test process), built by `cargo test` beside the test
/// binary.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let binary = profile.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: `cargo test --all-features` builds it (alone: `cargo build -p allframe-runtime --example {name} --all-features`)",
        binary.display()
    );
    binary
}
