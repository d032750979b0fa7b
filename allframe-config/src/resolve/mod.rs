//! Stage 2: defaults that need the whole file. Each service gets its ports (declared, or the
//! next free ones from 8080 for HTTP and 9090 for gRPC), its database (its own, else
//! `[settings] default_database`), its resilience (its tables over `[resilience]` over built-in
//! values, field by field) and its idempotency store (declared, else following its database).
//!
//! Resolution is total: malformed entries are skipped here and reported by [`crate::validate`].

mod archetype;
mod service;

pub(crate) use archetype::tables_present;
pub use archetype::{
    AggregateShape, Archetype, CacheService, EventSourced, Ingestion, Producer, TYPE_TABLES,
};
pub use service::{CommonService, IdempotencyPolicy, ResolvedService};

use std::collections::BTreeSet;

use crate::diagnostic::Diagnostics;
use crate::interpolate::EnvString;
use crate::model::{
    ArchitectureFile, ArchitectureInfo, Cloud, Compliance, DatabaseKind, Deployment, FeatureFlags,
    IdempotencyStorage, Observability, Protocol, ResiliencePolicy, Security, Service, ServiceType,
    Settings, Tenant, builtin,
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

/// The file-wide sections, as checked (`[resilience]` is folded into each service's
/// [`ResiliencePolicy`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Globals {
    /// `[architecture]`.
    pub architecture: ArchitectureInfo,
    /// `[settings]`.
    pub settings: Settings,
    /// `[security]`.
    pub security: Security,
    /// `[compliance]`.
    pub compliance: Compliance,
    /// `[observability]`.
    pub observability: Observability,
    /// `[feature_flags]`.
    pub feature_flags: FeatureFlags,
    /// `[tenant]`.
    pub tenant: Tenant,
    /// `[cloud]`.
    pub cloud: Cloud,
    /// `[deployment]`.
    pub deployment: Deployment,
}

/// A checked file: the file-wide sections and each service resolved. Only
/// [`crate::check`] builds one, so every `Architecture` has passed validation.
#[derive(Debug, Clone)]
pub struct Architecture {
    globals: Globals,
    services: Vec<ResolvedService>,
    warnings: Diagnostics,
}

impl Architecture {
    /// The file-wide sections.
    pub fn globals(&self) -> &Globals {
        &self.globals
    }

    /// The system's name.
    pub fn name(&self) -> &str {
        &self.globals.architecture.name
    }

    /// All services, in file order.
    pub fn services(&self) -> &[ResolvedService] {
        &self.services
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&ResolvedService> {
        self.services.iter().find(|s| s.name() == name)
    }

    /// Warnings found while checking.
    pub fn warnings(&self) -> impl Iterator<Item = &crate::Diagnostic> {
        self.warnings.warnings()
    }

    /// The full warning report, for rendering; `None` without warnings.
    pub fn warning_report(&self) -> Option<&Diagnostics> {
        Some(&self.warnings).filter(|d| !d.is_empty())
    }

    /// Every `${VAR}`-capable value that `service` needs at run time, with its key path:
    /// the file-wide ones plus the service's own.
    pub fn deferred_values<'a>(
        &'a self,
        service: &'a ResolvedService,
    ) -> Vec<(String, &'a EnvString)> {
        let g = &self.globals;
        let auth = g.security.authentication.as_ref();
        let acl = match &service.archetype {
            Archetype::AntiCorruptionLayer(acl) => Some(&acl.upstream),
            _ => None,
        };
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
                g.cloud.aws.as_ref().and_then(|a| a.account_id.as_ref()),
            ),
            (
                "cloud.gcp.project_id".into(),
                g.cloud.gcp.as_ref().and_then(|g| g.project_id.as_ref()),
            ),
            ("cloud.fly.org".into(), g.cloud.fly.as_ref().map(|c| &c.org)),
            (
                "cloud.shuttle.project".into(),
                g.cloud.shuttle.as_ref().map(|c| &c.project),
            ),
            (
                format!("services[{}].acl.upstream", service.common.index),
                acl,
            ),
        ];
        candidates
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| (key, v)))
            .collect()
    }
}

/// The file between resolution and validation: each service resolved next to the entry as
/// written, which the checks read. Never leaves the crate.
#[derive(Debug)]
pub(crate) struct Draft {
    pub(crate) file: ArchitectureFile,
    pub(crate) services: Vec<DraftService>,
}

/// One service between resolution and validation.
#[derive(Debug)]
pub(crate) struct DraftService {
    /// The entry as written.
    pub(crate) raw: Service,
    /// What every service has, resolved.
    pub(crate) common: CommonService,
    /// The archetype, or the table its type needs and lacks.
    pub(crate) archetype: Result<Archetype, &'static str>,
}

impl DraftService {
    pub(crate) fn name(&self) -> &str {
        &self.common.name
    }
    pub(crate) fn kind(&self) -> ServiceType {
        self.raw.kind
    }
    pub(crate) fn speaks(&self, protocol: Protocol) -> bool {
        self.common.speaks(protocol)
    }
    pub(crate) fn events(&self) -> &[String] {
        &self.common.events
    }
}

impl Draft {
    pub(crate) fn name(&self) -> &str {
        &self.file.architecture.name
    }
    pub(crate) fn file(&self) -> &ArchitectureFile {
        &self.file
    }
    pub(crate) fn services(&self) -> &[DraftService] {
        &self.services
    }

    /// The checked architecture; only called once validation found no error (a service
    /// whose archetype did not resolve has an error of its own).
    pub(crate) fn finish(self, warnings: Diagnostics) -> Architecture {
        let f = self.file;
        Architecture {
            globals: Globals {
                architecture: f.architecture,
                settings: f.settings,
                security: f.security,
                compliance: f.compliance,
                observability: f.observability,
                feature_flags: f.feature_flags,
                tenant: f.tenant,
                cloud: f.cloud,
                deployment: f.deployment,
            },
            services: self
                .services
                .into_iter()
                .filter_map(|s| {
                    Some(ResolvedService {
                        common: s.common,
                        archetype: s.archetype.ok()?,
                    })
                })
                .collect(),
            warnings,
        }
    }
}

/// Applies defaults to a parsed file.
pub(crate) fn resolve(file: ArchitectureFile) -> Draft {
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
        let idempotency =
            raw.idempotency
                .as_ref()
                .filter(|i| i.enabled)
                .map(|i| IdempotencyPolicy {
                    key_header: i.key_header.clone(),
                    ttl_hours: i.ttl_hours,
                    storage: i.storage.unwrap_or(match database {
                        DatabaseKind::Sqlite => IdempotencyStorage::Sqlite,
                        DatabaseKind::Postgres => IdempotencyStorage::Postgres,
                        _ => IdempotencyStorage::Redis,
                    }),
                });
        let domain = raw.domain.clone().unwrap_or_default();
        let common = CommonService {
            index,
            name: raw.name.clone(),
            responsibility: raw.responsibility.clone(),
            protocols,
            http_port,
            grpc_port,
            metrics_port: declared(Listener::Metrics),
            outbound: raw.ports.iter().flat_map(|p| p.outbound.clone()).collect(),
            entities: domain.entities,
            events: domain.events,
            database,
            resilience: resilience_of(&file, raw),
            messaging: raw.messaging.clone(),
            idempotency,
            graphql: raw.graphql.clone(),
        };
        services.push(DraftService {
            archetype: Archetype::resolve(raw),
            raw: raw.clone(),
            common,
        });
    }
    Draft { file, services }
}

fn resilience_of(file: &ArchitectureFile, service: &Service) -> ResiliencePolicy {
    let global = &file.resilience;
    let integrations = service.integrations.as_ref();
    let mut circuit_breaker = global.circuit_breaker.over(builtin::CIRCUIT_BREAKER);
    let mut retry = global.retry.over(builtin::RETRY);
    if let Some(own) = &service.circuit_breaker {
        circuit_breaker = own.over(circuit_breaker);
    }
    if let Some(own) = integrations.and_then(|i| i.circuit_breaker.as_ref()) {
        circuit_breaker = own.over(circuit_breaker);
    }
    if let Some(own) = &service.retry {
        retry = own.over(retry);
    }
    // Provider calls retry by their own table when it has one; a saga's steps keep the
    // service's policy, wrapped around the calls they make.
    let call_retry = match integrations.and_then(|i| i.retry.as_ref()) {
        Some(own) => own.over(retry),
        None => retry,
    };
    // Requests are limited only where the file declares a limit: each table over the last.
    let bulkhead = [global.bulkhead.as_ref(), service.bulkhead.as_ref()]
        .into_iter()
        .flatten()
        .fold(None, |base, own| {
            Some(own.over(base.unwrap_or(builtin::BULKHEAD)))
        });
    let bff_rate_limit = service.bff.as_ref().and_then(|b| b.rate_limit.as_ref());
    let rate_limit = [
        global.rate_limit.as_ref(),
        service.rate_limit.as_ref(),
        bff_rate_limit,
    ]
    .into_iter()
    .flatten()
    .fold(None, |base, own| {
        Some(own.over(base.unwrap_or(builtin::RATE_LIMIT)))
    });
    ResiliencePolicy {
        circuit_breaker,
        retry,
        call_retry,
        bulkhead,
        rate_limit,
    }
}
