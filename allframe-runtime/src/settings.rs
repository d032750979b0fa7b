//! The constant data `#[allframe::service]` bakes into a service binary.
//!
//! Everything here is built by generated code with struct literals inside a `static`, so every
//! field is `pub` and holds only `&'static` data, integers, `Option`s and enums. Values that
//! differ per environment (secrets, URLs) are *not* baked in: they travel as [`DeferredValue`]
//! templates and are resolved from the environment at start-up (see [`crate::deferred`]).
//! This module must stay free of behaviour beyond small accessors.

/// What the architecture file says about one service, as constant data.
///
/// Generated code emits one `static SETTINGS: ServiceSettings = ServiceSettings { … };` per
/// service and hands it to the launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSettings {
    /// The `[architecture] name` of the file the service belongs to.
    pub architecture: &'static str,
    /// The service name, e.g. `"user-service"`; also the default SQLite file name.
    pub name: &'static str,
    /// The archetype of the service, e.g. `"stateless"`.
    pub archetype: &'static str,
    /// Default REST port from the file; the `PORT` environment variable overrides it.
    pub rest_port: u16,
    /// Default gRPC port, `Some` when `"grpc"` is declared; `GRPC_PORT` overrides it.
    pub grpc_port: Option<u16>,
    /// How log lines are written.
    pub logging: LogFormat,
    /// The production database named in the file, e.g. `"postgres"`. Informational only:
    /// `DATABASE_URL` decides the backend at run time.
    pub declared_database: &'static str,
    /// How long in-flight requests may take to finish once shutdown begins, in seconds;
    /// `ALLFRAME_SHUTDOWN_TIMEOUT_SECS` overrides it.
    pub shutdown_timeout_secs: u64,
    /// Values written as `${VAR}` templates in the file, resolved at start-up.
    pub deferred: &'static [DeferredValue],
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// `key=value` text lines (logfmt-like), no colours: easy to grep and to parse.
    #[default]
    Structured,
    /// One JSON object per line, for log collectors.
    Json,
    /// Compact human-readable text without ANSI colours.
    Plain,
}

impl LogFormat {
    /// The name used in `architecture.toml` (`"structured"`, `"json"`, `"plain"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Structured => "structured",
            Self::Json => "json",
            Self::Plain => "plain",
        }
    }
}

/// A configuration value whose text contains `${VAR}` / `${VAR:-default}` references, parsed at
/// compile time into [`Segment`]s and resolved from the environment at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeferredValue {
    /// The key path in the file, e.g. `"security.authentication.jwt_issuer"`; handlers read the
    /// resolved value with `ctx.value(key)`.
    pub key: &'static str,
    /// The template, in order.
    pub segments: &'static [Segment],
}

/// One piece of a [`DeferredValue`] template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as is.
    Literal(&'static str),
    /// An environment variable reference: `${name}` or `${name:-default}`.
    Var {
        /// The variable's name.
        name: &'static str,
        /// The text used when the variable is unset or empty (`:-` in the file).
        default: Option<&'static str>,
    },
}

/// One SQL migration embedded in the binary (read from the service's `migrations/` directory at
/// compile time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedMigration {
    /// The version, e.g. `20240101120000` from `20240101120000_create_users.sql`; applied in
    /// increasing order, each exactly once.
    pub version: i64,
    /// A human description, e.g. `"create users"`.
    pub description: &'static str,
    /// The SQL to run; several statements may be separated by `;`.
    pub sql: &'static str,
}
