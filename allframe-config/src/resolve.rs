//! Stage 2: defaults that need the whole file. Each service gets its ports (declared, or the
//! next free ones from 8080 for HTTP and 9090 for gRPC), its database (its own, else
//! `[settings] default_database`), its resilience (its tables over `[resilience]` over built-in
//! values, field by field) and its idempotency store (declared, else following its database).
//!
//! Resolution is total: malformed entries are skipped here and reported by [`crate::validate`].

use std::collections::BTreeSet;

use crate::diagnostic::Diagnostics;
use crate::interpolate::EnvString;
use crate::model::{
    ArchitectureFile, DatabaseKind, IdempotencyStorage, Messaging, Protocol, ResiliencePolicy,
    Service, ServiceType, builtin,
};

/// First port tried for a service's HTTP listener.
pub const FIRST_HTTP_PORT: u16 = 8080;
/// First port tried for a service's gRPC listener.
pub const FIRST_GRPC_PORT: u16 = 9090;

/// What a `protocol:port` entry listens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The HTTP listener (REST, GraphQL, WebSocket and health share it).
    Http,
    /// The gRPC listener.
    Grpc,
    /// A separate metrics listener.
    Metrics,
}

/// Why a `protocol:port` entry is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// No `:` in the entry.
    #[error("`{0}` is not of the form `protocol:port`")]
    Shape(String),
    /// Unknown protocol word.
    #[error("unknown protocol `{0}` in a port entry")]
    Protocol(String),
    /// Not a number from 1 to 65535.
    #[error("`{0}` is not a port number from 1 to 65535")]
    Number(String),
}

/// The protocol words accepted before the `:` of a port entry.
pub const PORT_PROTOCOLS: &[&str] = &["rest", "http", "graphql", "websocket", "grpc", "metrics"];

/// Parses `rest:8080`.
pub fn parse_port(entry: &str) -> Result<(Listener, u16), PortError> {
    let (proto, number) = entry
        .split_once(':')
        .ok_or_else(|| PortError::Shape(entry.to_owned()))?;
    let listener = match proto.trim() {
        "rest" | "http" | "graphql" | "websocket" => Listener::Http,
        "grpc" => Listener::Grpc,
        "metrics" => Listener::Metrics,
        other => return Err(PortError::Protocol(other.to_owned())),
    };
    let port: u16 = number
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| PortError::Number(number.to_owned()))?;
    Ok((listener, port))
}

/// A service's idempotency settings with every value decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyPolicy {
    /// Request header with the key.
    pub key_header: String,
    /// Lifetime of keys, in hours.
    pub ttl_hours: u32,
    /// The store.
    pub storage: IdempotencyStorage,
}

/// One service with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedService {
    /// Position in `[[services]]`.
    pub index: usize,
    /// The service as written.
    pub raw: Service,
    /// Protocols served.
    pub protocols: Vec<Protocol>,
    /// HTTP port (REST, health).
    pub http_port: u16,
    /// gRPC port, when the service speaks gRPC.
    pub grpc_port: Option<u16>,
    /// Metrics port, when declared apart.
    pub metrics_port: Option<u16>,
    /// The production database engine.
    pub database: DatabaseKind,
    /// Resilience in effect.
    pub resilience: ResiliencePolicy,
    /// Publishing of events, when declared.
    pub messaging: Option<Messaging>,
    /// Idempotency, when enabled.
    pub idempotency: Option<IdempotencyPolicy>,
}

impl ResolvedService {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.raw.name
    }

    /// The service's type.
    pub fn kind(&self) -> ServiceType {
        self.raw.kind
    }

    /// True when `protocol` is served.
    pub fn speaks(&self, protocol: Protocol) -> bool {
        self.protocols.contains(&protocol)
    }

    /// Declared entities (empty when none).
    pub fn entities(&self) -> &[String] {
        self.raw.domain.as_ref().map_or(&[], |d| &d.entities)
    }

    /// Declared domain events (empty when none).
    pub fn events(&self) -> &[String] {
        self.raw.domain.as_ref().map_or(&[], |d| &d.events)
    }
}

/// A checked file: the model as written plus each service resolved.
#[derive(Debug, Clone)]
pub struct Architecture {
    file: ArchitectureFile,
    services: Vec<ResolvedService>,
    warnings: Option<Diagnostics>,
}

impl Architecture {
    /// The model as written (with serde defaults).
    pub fn file(&self) -> &ArchitectureFile {
        &self.file
    }

    /// The system's name.
    pub fn name(&self) -> &str {
        &self.file.architecture.name
    }

    /// All services, in file order.
    pub fn services(&self) -> &[ResolvedService] {
        &self.services
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&ResolvedService> {
        self.services.iter().find(|s| s.name() == name)
    }

    /// Warnings found while checking (none when built by [`resolve`] alone).
    pub fn warnings(&self) -> impl Iterator<Item = &crate::Diagnostic> {
        self.warnings.iter().flat_map(|d| d.warnings())
    }

    /// The full warning report, for rendering.
    pub fn warning_report(&self) -> Option<&Diagnostics> {
        self.warnings.as_ref().filter(|d| !d.is_empty())
    }

    pub(crate) fn with_warnings(mut self, warnings: Diagnostics) -> Self {
        self.warnings = Some(warnings);
        self
    }

    /// Every `${VAR}`-capable value that `service` needs at run time, with its key path:
    /// the file-wide ones plus the service's own.
    pub fn deferred_values<'a>(
        &'a self,
        service: &'a ResolvedService,
    ) -> Vec<(String, &'a EnvString)> {
        let f = &self.file;
        let auth = f.security.authentication.as_ref();
        let candidates: [(String, Option<&EnvString>); 7] = [
            (
                "security.authentication.jwt_issuer".into(),
                auth.and_then(|a| a.jwt_issuer.as_ref()),
            ),
            (
                "security.authentication.audience".into(),
                auth.and_then(|a| a.audience.as_ref()),
            ),
            (
                "cloud.aws.account_id".into(),
                f.cloud.aws.as_ref().and_then(|a| a.account_id.as_ref()),
            ),
            (
                "cloud.gcp.project_id".into(),
                f.cloud.gcp.as_ref().and_then(|g| g.project_id.as_ref()),
            ),
            ("cloud.fly.org".into(), f.cloud.fly.as_ref().map(|c| &c.org)),
            (
                "cloud.shuttle.project".into(),
                f.cloud.shuttle.as_ref().map(|c| &c.project),
            ),
            (
                format!("services[{}].acl.upstream", service.index),
                service.raw.acl.as_ref().map(|a| &a.upstream),
            ),
        ];
        let out: Vec<(String, &'a EnvString)> = candidates
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| (key, v)))
            .collect();
        out
    }
}

/// Applies defaults to a parsed file.
pub fn resolve(file: ArchitectureFile) -> Architecture {
    let mut used: BTreeSet<u16> = file
        .services
        .iter()
        .flat_map(|s| s.ports.iter().flat_map(|p| &p.inbound))
        .filter_map(|e| parse_port(e).ok().map(|(_, port)| port))
        .collect();
    let next_free = |from: u16, used: &mut BTreeSet<u16>| {
        let port = (from..=u16::MAX)
            .find(|p| !used.contains(p))
            .unwrap_or(from);
        used.insert(port);
        port
    };

    let mut services = Vec::with_capacity(file.services.len());
    for (index, raw) in file.services.iter().enumerate() {
        let protocols = raw
            .protocols
            .clone()
            .unwrap_or_else(|| vec![Protocol::Rest]);
        let declared = |want: Listener| {
            raw.ports
                .iter()
                .flat_map(|p| &p.inbound)
                .filter_map(|e| parse_port(e).ok())
                .find(|(l, _)| *l == want)
                .map(|(_, port)| port)
        };
        let http_port =
            declared(Listener::Http).unwrap_or_else(|| next_free(FIRST_HTTP_PORT, &mut used));
        let grpc_port = match declared(Listener::Grpc) {
            Some(port) => Some(port),
            None if protocols.contains(&Protocol::Grpc) => {
                Some(next_free(FIRST_GRPC_PORT, &mut used))
            }
            None => None,
        };
        let database = raw
            .database
            .as_ref()
            .and_then(|d| d.kind)
            .unwrap_or(file.settings.default_database);
        services.push(ResolvedService {
            index,
            protocols,
            http_port,
            grpc_port,
            metrics_port: declared(Listener::Metrics),
            database,
            resilience: resilience_of(&file, raw),
            messaging: raw.messaging.clone(),
            idempotency: raw.idempotency.as_ref().filter(|i| i.enabled).map(|i| {
                IdempotencyPolicy {
                    key_header: i.key_header.clone(),
                    ttl_hours: i.ttl_hours,
                    storage: i.storage.unwrap_or(match database {
                        DatabaseKind::Sqlite => IdempotencyStorage::Sqlite,
                        DatabaseKind::Postgres => IdempotencyStorage::Postgres,
                        _ => IdempotencyStorage::Redis,
                    }),
                }
            }),
            raw: raw.clone(),
        });
    }
    Architecture {
        file,
        services,
        warnings: None,
    }
}

fn resilience_of(file: &ArchitectureFile, service: &Service) -> ResiliencePolicy {
    let global = &file.resilience;
    let integrations = service.integrations.as_ref();
    let mut circuit_breaker = global.circuit_breaker.over(builtin::CIRCUIT_BREAKER);
    let mut retry = global.retry.over(builtin::RETRY);
    let mut bulkhead = global.bulkhead.over(builtin::BULKHEAD);
    let mut rate_limit = global.rate_limit.over(builtin::RATE_LIMIT);
    if let Some(own) = &service.circuit_breaker {
        circuit_breaker = own.over(circuit_breaker);
    }
    if let Some(own) = integrations.and_then(|i| i.circuit_breaker.as_ref()) {
        circuit_breaker = own.over(circuit_breaker);
    }
    if let Some(own) = &service.retry {
        retry = own.over(retry);
    }
    if let Some(own) = integrations.and_then(|i| i.retry.as_ref()) {
        retry = own.over(retry);
    }
    if let Some(own) = &service.bulkhead {
        bulkhead = own.over(bulkhead);
    }
    if let Some(own) = &service.rate_limit {
        rate_limit = own.over(rate_limit);
    }
    if let Some(own) = service.bff.as_ref().and_then(|b| b.rate_limit.as_ref()) {
        rate_limit = own.over(rate_limit);
    }
    ResiliencePolicy {
        circuit_breaker,
        retry,
        bulkhead,
        rate_limit,
    }
}
