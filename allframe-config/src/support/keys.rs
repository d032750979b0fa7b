//! The keys this version accepts without giving them full effect, one row each. A row goes
//! when the key becomes real; by the last archetype, the table is empty.

use super::Support::{self, InfraOnly, NotHonoured, Partial};
use crate::model::{
    FlagProvider, MigrationStrategy, MigrationTool, Protocol, RateLimitKey, SchemaRegistry,
    ServiceType, TenantRouting,
};
use crate::resolve::{Draft, DraftService};

/// When a written key lacks full effect: given the file, and the service for `services[]`
/// rules. A key written with the value this version honours (`mtls = false`,
/// `migrations = "sqlx"`) gets no warning.
pub(super) type Lacks = fn(&Draft, Option<&DraftService>) -> bool;

/// A key (or table) and how far this version honours it. `services[]` stands for every
/// service of a generated type.
pub(super) struct KeyRule {
    /// The key path, e.g. `resilience.circuit_breaker` or `services[].database.migrations`.
    pub path: &'static str,
    /// How far it is honoured.
    pub support: Support,
    /// When, written, it lacks that effect.
    pub lacks: Lacks,
}

const fn row(path: &'static str, support: Support) -> KeyRule {
    KeyRule {
        path,
        support,
        lacks: |_, _| true,
    }
}

const fn row_if(path: &'static str, support: Support, lacks: Lacks) -> KeyRule {
    KeyRule {
        path,
        support,
        lacks,
    }
}

fn database(service: Option<&DraftService>) -> Option<&crate::model::ServiceDatabase> {
    service.and_then(|s| s.raw.database.as_ref())
}

const RETRY: Support = Partial(
    "a gateway's provider calls and a saga's steps follow it in full; this service makes no outgoing calls, so only its intervals are used (the outbox relay's publish backoff, a consumer's redeliveries)",
);
const CIRCUIT_BREAKER: Support = NotHonoured(
    "only provider calls (`[services.integrations]` of a gateway or a saga orchestrator) go through a circuit breaker; this service makes no outgoing calls to guard",
);

/// A generated service without provider clients: it makes no outgoing calls for a breaker or
/// a retry policy to act on (the relay's publish retries aside).
fn calls_out_through_nothing(service: &DraftService) -> bool {
    let calls_out = match &service.archetype {
        Ok(archetype) => archetype.integrations().is_some(),
        Err(_) => service.kind() == ServiceType::Gateway,
    };
    !calls_out && super::is_generated(service.kind())
}

/// A generated service whose calls the retry policy does not govern (a gateway's provider
/// calls and a saga orchestrator's steps follow it).
fn retries_nothing(service: &DraftService) -> bool {
    calls_out_through_nothing(service) && service.kind() != ServiceType::SagaOrchestrator
}

fn retry_unused(draft: &Draft, service: Option<&DraftService>) -> bool {
    match service {
        Some(service) => retries_nothing(service),
        None => draft.services().iter().any(retries_nothing),
    }
}

fn breaker_unused(draft: &Draft, service: Option<&DraftService>) -> bool {
    match service {
        Some(service) => calls_out_through_nothing(service),
        None => draft.services().iter().any(calls_out_through_nothing),
    }
}
const PER_USER: Support = Partial(
    "`per = \"user\"` counts per client IP until authentication verifies users (a later release)",
);
const PER_TENANT_WITHOUT_TENANCY: Support = Partial(
    "`per = \"tenant\"` needs `[tenant] enabled = true` for a tenant header; without it every request counts against one budget",
);

/// The `per` of the rate limit in effect for `service`, or of `[resilience]` without one.
fn rate_limit_per(draft: &Draft, service: Option<&DraftService>) -> Option<RateLimitKey> {
    match service {
        Some(service) => service.common.resilience.rate_limit.map(|r| r.per),
        None => draft
            .file()
            .resilience
            .rate_limit
            .as_ref()
            .map(|r| r.per.unwrap_or(RateLimitKey::Global)),
    }
}

fn counts_per_user(draft: &Draft, service: Option<&DraftService>) -> bool {
    rate_limit_per(draft, service) == Some(RateLimitKey::User)
}

fn counts_per_missing_tenant(draft: &Draft, service: Option<&DraftService>) -> bool {
    rate_limit_per(draft, service) == Some(RateLimitKey::Tenant) && !draft.file().tenant.enabled
}

/// Every key accepted without full effect.
pub(super) const KEY_RULES: &[KeyRule] = &[
    row_if(
        "architecture.multi_tenant",
        NotHonoured("`[tenant] enabled` decides multi-tenancy; this key is only compared with it"),
        |d, _| d.file().architecture.multi_tenant,
    ),
    row(
        "settings.observability",
        InfraOnly(
            "it decides whether an OpenTelemetry collector is generated; the service exports traces per `[observability] tracing`",
        ),
    ),
    row_if(
        "settings.events.schema_registry",
        InfraOnly(
            "the registry is provisioned; services send JSON envelopes and register no schema",
        ),
        |d, _| d.file().settings.events.schema_registry != SchemaRegistry::None,
    ),
    row_if(
        "settings.events.format",
        InfraOnly("it sets the registry's data format; services always send JSON envelopes"),
        |d, _| d.file().settings.events.schema_registry != SchemaRegistry::None,
    ),
    row_if(
        "settings.events.compatibility",
        InfraOnly("it sets the registry's compatibility level; services do not check schemas"),
        |d, _| d.file().settings.events.schema_registry != SchemaRegistry::None,
    ),
    row_if(
        "resilience.circuit_breaker",
        CIRCUIT_BREAKER,
        breaker_unused,
    ),
    row_if("resilience.retry", RETRY, retry_unused),
    row_if("resilience.rate_limit", PER_USER, counts_per_user),
    row_if(
        "resilience.rate_limit",
        PER_TENANT_WITHOUT_TENANCY,
        counts_per_missing_tenant,
    ),
    row(
        "security.authentication",
        Partial(
            "`jwt_issuer` and `audience` are resolved at start-up and readable by handlers, but no token is verified and `provider` has no effect",
        ),
    ),
    row_if(
        "security.mtls",
        NotHonoured("services talk plain HTTP/gRPC; no certificate is issued or checked"),
        |d, _| d.file().security.mtls,
    ),
    row(
        "security.secrets_manager",
        NotHonoured(
            "the secret store follows the cloud (AWS Secrets Manager, GCP Secret Manager); services read secrets from their environment",
        ),
    ),
    row(
        "security.api_key_rotation_days",
        InfraOnly("it sets the rotation of the cloud secret; services do not rotate keys"),
    ),
    row_if(
        "compliance.audit_logging",
        NotHonoured("no audit log is written yet"),
        |d, _| d.file().compliance.audit_logging,
    ),
    row(
        "compliance.pii_fields",
        NotHonoured("the named fields are not masked in logs yet"),
    ),
    row(
        "compliance.data_retention_days",
        InfraOnly("it sets the retention of cloud logs; no service data is deleted"),
    ),
    row_if(
        "compliance.gdpr_enabled",
        NotHonoured("nothing is generated for GDPR yet"),
        |d, _| d.file().compliance.gdpr_enabled,
    ),
    row_if(
        "compliance.hipaa_enabled",
        NotHonoured("nothing is generated for HIPAA yet"),
        |d, _| d.file().compliance.hipaa_enabled,
    ),
    row(
        "observability.baggage",
        NotHonoured(
            "baggage travels when `propagation` lists \"baggage\"; which entries are added is not configurable yet",
        ),
    ),
    row(
        "testing",
        NotHonoured("nothing is generated from `[testing]` yet"),
    ),
    row_if(
        "feature_flags",
        InfraOnly(
            "the flag service is provisioned and its SDK key handed to each service; the runtime has no flag client, so `default_strategy` and `sync_interval_seconds` reach no code",
        ),
        |d, _| d.file().feature_flags.provider != FlagProvider::Env,
    ),
    row_if(
        "tenant.enabled",
        Partial(
            "the tenant header tags events and scopes idempotency keys; data is not isolated per tenant",
        ),
        |d, _| d.file().tenant.enabled,
    ),
    row(
        "tenant.isolation",
        NotHonoured("data is not isolated per tenant yet"),
    ),
    row_if(
        "tenant.routing",
        NotHonoured("the tenant is always read from `[tenant] header`"),
        |d, _| d.file().tenant.routing != TenantRouting::Header,
    ),
    row(
        "cloud.primary",
        NotHonoured("every configured cloud gets its files; `primary` only labels the documents"),
    ),
    row(
        "services[].ports.outbound",
        InfraOnly(
            "calls become `<SERVICE>_URL` variables and network policies; no client is generated",
        ),
    ),
    row_if(
        "services[].database.migrations",
        NotHonoured("migrations are sqlx's `migrations/*.sql`, applied at start-up"),
        |_, s| database(s).is_some_and(|d| d.migrations != MigrationTool::Sqlx),
    ),
    row_if(
        "services[].database.strategy",
        NotHonoured("each migration is applied as written, at start-up"),
        |_, s| database(s).is_some_and(|d| d.strategy != MigrationStrategy::Direct),
    ),
    row_if(
        "services[].protocols",
        NotHonoured(
            "only a stateless service serves gRPC: a producer, gateway, saga orchestrator, event-sourced service and cache serve REST only, and a consumer only its health and metrics over HTTP; no gRPC, GraphQL or WebSocket endpoint is generated for them",
        ),
        |_, s| {
            s.is_some_and(|s| {
                s.kind() != ServiceType::Stateless
                    && s.common.protocols.iter().any(|p| *p != Protocol::Rest)
            })
        },
    ),
    row_if(
        "services[].domain.entities",
        Partial("a cache service caches its first entity; the others get no cache or routes"),
        |_, s| {
            s.is_some_and(|s| {
                s.kind() == ServiceType::Cache
                    && s.raw.domain.as_ref().is_some_and(|d| d.entities.len() > 1)
            })
        },
    ),
    row_if(
        "services[].circuit_breaker",
        CIRCUIT_BREAKER,
        breaker_unused,
    ),
    row_if("services[].retry", RETRY, retry_unused),
    row_if("services[].rate_limit", PER_USER, counts_per_user),
    row_if(
        "services[].rate_limit",
        PER_TENANT_WITHOUT_TENANCY,
        counts_per_missing_tenant,
    ),
    row(
        "services[].graphql",
        NotHonoured("no GraphQL endpoint is generated yet"),
    ),
];
