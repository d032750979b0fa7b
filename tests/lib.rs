//! Shared helpers of the end-to-end tests: the repository's paths and free loopback ports.

use std::net::TcpListener;
use std::path::PathBuf;

/// This crate's directory: `CARGO_MANIFEST_DIR` as `cargo test` sets it when running the
/// test, not as it was when this library was compiled (cargo does not rebuild for a moved
/// checkout, so a target directory shared by two checkouts would point at the other one).
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    manifest_dir()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
