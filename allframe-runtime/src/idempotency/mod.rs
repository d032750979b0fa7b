//! Idempotency keys: an unsafe request carrying a key runs at most once; repeats get the
//! first response back.
//!
//! `#[allframe::service]` turns this on when the service's `[services.idempotency]` says
//! `enabled = true`, by calling `Launcher::idempotency(IdempotencySettings { .. })`: the
//! idempotency component opens the store at start-up and leaves an [`IdempotencyLayer`] in
//! the context, which the HTTP host wraps the REST routes in. The layer can also be used on
//! any axum router by hand.
//!
//! | request | answer |
//! |---|---|
//! | `GET`/`HEAD`/`OPTIONS`/…, or no key header | passes through untouched |
//! | first `POST`/`PUT`/`PATCH`/`DELETE` with a key | runs; the response is stored (2xx, 3xx, 4xx except 429) |
//! | the same, refused before its handler ran (answer marked [`crate::extract::Rejected`]) | the refusal; nothing stored, the key is free |
//! | same key, same method + path + query + body | the stored response, with `Idempotent-Replayed: true` |
//! | same key while the first is still running | 409, `Retry-After: 1`; does not run |
//! | same key, different method, path, query or body | 422; does not run |
//! | malformed key (see [`fingerprint::parse_key`]) | 400; does not run |
//! | store unreachable or slower than 5 s | 503, `Retry-After: 1`; does not run |
//! | the handler answers 5xx or 429, or is cancelled | the key is released, so a retry runs |
//!
//! Keys are scoped by service and, when tenancy is on (`[tenant] header`, passed to the
//! launcher as `tenant_header`) and the request carries that header, by tenant. Stored
//! responses are replayed for `ttl_hours` after they were stored. See `docs/idempotency.md`
//! for the reasons behind each choice. This module wires things; the policy lives in
//! [`layer`], the record keeping in the stores.

use std::sync::Arc;
use std::time::Duration;

use crate::BoxError;
use crate::component::{BoxFuture, Component, Startup};
use crate::context::Ctx;
use crate::env::Environment;

pub mod fingerprint;
pub mod layer;
#[cfg(feature = "redis")]
pub mod redis_store;
pub mod sql_store;
pub mod store;

pub use layer::{Idempotency, IdempotencyConfig, IdempotencyLayer, IdempotencyOutcome};
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use sql_store::SqlStore;
pub use store::{Clock, IdempotencyStore, StoreError, StoredResponse, SystemClock};

/// The variable naming the Redis server when `storage = "redis"`.
pub const REDIS_URL: &str = allframe_env::REDIS_URL.name;
/// Overrides `ttl_hours` with a number of seconds (for tests and short-lived environments).
pub const ALLFRAME_IDEMPOTENCY_TTL_SECS: &str = allframe_env::ALLFRAME_IDEMPOTENCY_TTL_SECS.name;
/// The header marking a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// The header marking a replay whose body was too large to keep.
pub const BODY_OMITTED_HEADER: &str = "idempotent-body-omitted";
/// The response headers a replay repeats; others (`set-cookie`, `date`, tracing headers, …)
/// belong to the original exchange only.
pub const STORED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-language",
    "content-location",
    "location",
    "etag",
    "last-modified",
    "link",
];
/// How long an in-flight claim holds without being extended (the layer extends it every 20 s
/// while the handler runs).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// The largest request body accepted with a key (axum's default body limit).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// The largest response body stored for replay.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// How long one store operation may take before the request is answered 503.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the SQL stores delete expired records.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// `[services.idempotency]` as constant data, as the macro emits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencySettings {
    /// The request header carrying the key, e.g. `"Idempotency-Key"`.
    pub key_header: &'static str,
    /// How long stored responses are replayed, in hours (`ALLFRAME_IDEMPOTENCY_TTL_SECS`
    /// overrides it).
    pub ttl_hours: u32,
    /// Where keys are kept.
    pub storage: Storage,
}

/// Where idempotency keys and stored responses live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    /// Redis at `REDIS_URL` (feature `redis`).
    Redis,
    /// The service's own database (declared PostgreSQL; whatever `DATABASE_URL` selects).
    Postgres,
    /// The service's own database (declared SQLite; whatever `DATABASE_URL` selects).
    Sqlite,
}

impl Storage {
    /// The name used in `architecture.toml`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// Why the idempotency layer could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdempotencyError {
    /// `storage = "redis"` and `REDIS_URL` is unset or blank.
    #[error(
        "[services.idempotency] storage = \"redis\" needs the environment variable REDIS_URL \
         (e.g. REDIS_URL=redis://127.0.0.1:6379), and it is not set"
    )]
    MissingRedisUrl,
    /// `REDIS_URL` cannot be parsed.
    #[error("environment variable REDIS_URL is not a valid Redis URL: {reason}")]
    InvalidRedisUrl {
        /// What the parser objected to (never the URL, which may hold a password).
        reason: String,
    },
    /// `storage = "redis"` in a build without the `redis` feature.
    #[error(
        "[services.idempotency] storage = \"redis\", but allframe-runtime was built without its \
         `redis` feature; enable it: `allframe = {{ package = \"allframe-runtime\", features = [\"redis\"] }}`"
    )]
    RedisFeatureDisabled,
    /// `key_header` (or the `[tenant] header`) is not a valid HTTP header name.
    #[error("idempotency: `{header}` is not a valid HTTP header name")]
    InvalidHeader {
        /// The name as written.
        header: String,
    },
    /// `ttl_hours = 0`.
    #[error("[services.idempotency] ttl_hours must be at least 1")]
    ZeroTtl,
    /// `ALLFRAME_IDEMPOTENCY_TTL_SECS` is not a positive whole number.
    #[error(
        "environment variable ALLFRAME_IDEMPOTENCY_TTL_SECS has an invalid value `{value}`: \
         expected a whole number of seconds, at least 1"
    )]
    InvalidTtlOverride {
        /// The value found.
        value: String,
    },
    /// The SQL table could not be created.
    #[error(
        "cannot create the idempotency table `{}` in the service database: {source}",
        sql_store::TABLE
    )]
    Table {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

/// The TTL in effect: `ALLFRAME_IDEMPOTENCY_TTL_SECS` if set, else `ttl_hours`.
fn ttl(settings: &IdempotencySettings, env: &Environment) -> Result<Duration, IdempotencyError> {
    match env.get_non_empty(ALLFRAME_IDEMPOTENCY_TTL_SECS) {
        Some(value) => match allframe_env::ALLFRAME_IDEMPOTENCY_TTL_SECS.seconds(&value) {
            Ok(ttl) if !ttl.is_zero() => Ok(ttl),
            _ => Err(IdempotencyError::InvalidTtlOverride { value }),
        },
        None if settings.ttl_hours == 0 => Err(IdempotencyError::ZeroTtl),
        None => Ok(Duration::from_secs(u64::from(settings.ttl_hours) * 3600)),
    }
}

/// The idempotency component: [`start`] at start-up, its layer left for the HTTP host.
#[derive(Debug)]
pub(crate) struct IdempotencyComponent {
    pub(crate) settings: IdempotencySettings,
}

impl Component for IdempotencyComponent {
    fn name(&self) -> &'static str {
        "idempotency"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let layer = start(
                &self.settings,
                startup.env(),
                startup.ctx(),
                startup.tenant_header(),
            )
            .await?;
            startup.insert(layer);
            Ok(())
        })
    }
}

/// Opens the store `settings` names and builds the layer for the service of `ctx`, scoping keys
/// per tenant when `tenant_header` is given (tenancy on): reads
/// `REDIS_URL` for Redis (a missing one is an error; an unreachable one is logged and the layer
/// answers 503 until it is back), creates the table in the service database for the SQL stores
/// and spawns the task that purges their expired records.
pub(crate) async fn start(
    settings: &IdempotencySettings,
    env: &Environment,
    ctx: &Ctx,
    tenant_header: Option<&str>,
) -> Result<IdempotencyLayer, IdempotencyError> {
    let mut config = IdempotencyConfig::new(ctx.settings().name, settings.key_header)?;
    if let Some(header) = tenant_header {
        config = config.with_tenant_header(header)?;
    }
    config.ttl = ttl(settings, env)?;
    let store: Arc<dyn IdempotencyStore> = match settings.storage {
        Storage::Redis => redis(env).await?,
        Storage::Postgres | Storage::Sqlite => {
            let store = SqlStore::open(ctx.db())
                .await
                .map_err(|source| IdempotencyError::Table { source })?;
            if store.name() != settings.storage.as_str() {
                tracing::info!(
                    declared = settings.storage.as_str(),
                    using = store.name(),
                    "idempotency keys follow the service database"
                );
            }
            spawn_purge(ctx, store.clone());
            Arc::new(store)
        }
    };
    tracing::info!(
        store = store.name(),
        header = %config.key_header,
        tenant_header = config.tenant_header.as_ref().map(|h| h.as_str()),
        ttl_secs = config.ttl.as_secs(),
        "idempotency keys enabled"
    );
    Ok(IdempotencyLayer::new(store, config))
}

#[cfg(feature = "redis")]
async fn redis(env: &Environment) -> Result<Arc<dyn IdempotencyStore>, IdempotencyError> {
    let url = env
        .get_non_empty(REDIS_URL)
        .ok_or(IdempotencyError::MissingRedisUrl)?;
    let store = RedisStore::new(url.trim()).map_err(|error| IdempotencyError::InvalidRedisUrl {
        reason: error.to_string(),
    })?;
    if let Err(error) = store.ping().await {
        tracing::warn!(
            error = %error,
            "Redis (REDIS_URL) does not answer; requests with an idempotency key get 503 until it does"
        );
    }
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
async fn redis(_env: &Environment) -> Result<Arc<dyn IdempotencyStore>, IdempotencyError> {
    Err(IdempotencyError::RedisFeatureDisabled)
}

/// Deletes expired records every [`PURGE_INTERVAL`] (expired records are already ignored by
/// the store; this only bounds the table's size).
fn spawn_purge(ctx: &Ctx, store: SqlStore) {
    ctx.tasks().spawn("idempotency-purge", move |token| async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    match store.purge_expired(SystemClock.now_ms()).await {
                        Ok(0) => {}
                        Ok(purged) => tracing::debug!(purged, "expired idempotency keys deleted"),
                        Err(error) => tracing::warn!(error = %error, "could not purge expired idempotency keys"),
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: IdempotencySettings = IdempotencySettings {
        key_header: "Idempotency-Key",
        ttl_hours: 24,
        storage: Storage::Sqlite,
    };

    #[test]
    fn the_ttl_comes_from_the_file_unless_overridden() {
        let none = Environment::from_pairs::<_, String, String>([]);
        assert_eq!(
            ttl(&SETTINGS, &none).expect("ttl"),
            Duration::from_secs(86_400)
        );
        let short = Environment::from_pairs([(ALLFRAME_IDEMPOTENCY_TTL_SECS, "2")]);
        assert_eq!(ttl(&SETTINGS, &short).expect("ttl"), Duration::from_secs(2));
        for bad in ["0", "soon", "-1"] {
            let env = Environment::from_pairs([(ALLFRAME_IDEMPOTENCY_TTL_SECS, bad)]);
            let error = ttl(&SETTINGS, &env).expect_err("invalid");
            assert!(
                error.to_string().contains(ALLFRAME_IDEMPOTENCY_TTL_SECS),
                "{error}"
            );
        }
        let zero = IdempotencySettings {
            ttl_hours: 0,
            ..SETTINGS
        };
        assert!(matches!(ttl(&zero, &none), Err(IdempotencyError::ZeroTtl)));
    }

    #[test]
    fn header_names_are_checked() {
        assert!(IdempotencyConfig::new("s", "Idempotency-Key").is_ok());
        assert!(matches!(
            IdempotencyConfig::new("s", "Idempotency Key"),
            Err(IdempotencyError::InvalidHeader { .. })
        ));
        let config = IdempotencyConfig::new("s", "Idempotency-Key").expect("config");
        assert_eq!(config.tenant_header, None, "no tenant scoping by default");
        let scoped = config.clone().with_tenant_header("X-Org").expect("valid");
        assert_eq!(
            scoped.tenant_header.as_ref().map(|h| h.as_str()),
            Some("x-org")
        );
        assert!(matches!(
            config.with_tenant_header("X Org"),
            Err(IdempotencyError::InvalidHeader { .. })
        ));
    }

    #[test]
    fn start_up_errors_name_redis_url() {
        assert!(
            IdempotencyError::MissingRedisUrl
                .to_string()
                .contains("REDIS_URL")
        );
        let invalid = IdempotencyError::InvalidRedisUrl {
            reason: "bad".into(),
        };
        assert!(invalid.to_string().contains("REDIS_URL"));
    }
}
