//! Helpers of the CLI tests: run the built `cargo-allframe` binary and read what it wrote.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small architecture: a REST+gRPC service on PostgreSQL, a REST service on the default
/// SQLite database, and a saga orchestrator ignite does not generate yet.
pub const SHOP: &str = r#"[architecture]
name = "shop"

[settings]
default_database = "sqlite"

[[services]]
name = "user-service"
type = "stateless"
responsibility = "User registration and profiles"
protocols = ["rest", "grpc"]

[services.domain]
entities = ["User", "Profile"]

[services.database]
type = "postgres"

[[services]]
name = "catalog"
type = "stateless"

[services.domain]
entities = ["SensorSummary"]

[[services]]
name = "order-saga"
type = "saga-orchestrator"

[services.saga]
name = "PlaceOrder"
steps = ["Reserve"]
compensation = ["Release"]
"#;

/// The result of one run.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Run {
    /// Asserts a zero exit status.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success:\n{self:#?}");
        self
    }

    /// Asserts exit status 1.
    pub fn failed(self) -> Self {
        assert_eq!(self.code, Some(1), "expected failure:\n{self:#?}");
        self
    }
}

/// Runs `cargo-allframe allframe ARGS…` in `dir`, as cargo would.
pub fn cargo_allframe(dir: &Path, args: &[&str]) -> Run {
    cargo_allframe_with_env(dir, args, &[])
}

/// Like [`cargo_allframe`], with extra environment variables.
pub fn cargo_allframe_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_cargo-allframe"))
        .arg("allframe")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run cargo-allframe");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// This crate's directory: `CARGO_MANIFEST_DIR` as `cargo test` sets it when running the
/// test, not as it was when the binary was compiled (a target directory shared by two
/// checkouts can hand one a binary built from the other).
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The root of this repository (holding allframe-runtime/).
pub fn repository() -> PathBuf {
    manifest_dir()
        .parent()
        .expect("the crate lives in the repository")
        .to_path_buf()
}

/// Parses a TOML file.
pub fn toml_file(path: &Path) -> toml::Table {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Reads a text file.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every file under `dir` with its content, sorted by path.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

/// The workspace members of a generated `Cargo.toml`.
pub fn members(workspace: &Path) -> Vec<String> {
    let manifest = toml_file(&workspace.join("Cargo.toml"));
    manifest["workspace"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_str().expect("a path").to_owned())
        .collect()
}

/// The files an ignite summary lists, with their labels (`written`, `kept`, `would update`…).
pub fn listed(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter(|line| line.len() > 16)
        .map(|line| {
            let (label, rest) = line.split_at(16);
            let path = rest.split(" (").next().unwrap_or(rest);
            (path.to_owned(), label.trim().to_owned())
        })
        .collect()
}
