//! What can go wrong in a cache: settings, the engine, the source, the write-behind table.
//! Messages never include a Redis URL (it may hold a password) nor a cached value.

use std::sync::Arc;

use crate::BoxError;

/// A failure of a [`super::Cache`] operation or of opening one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The settings cannot work (see [`super::CacheSettings::validate`]).
    #[error("[services.cache] {reason}")]
    InvalidSettings {
        /// What is wrong.
        reason: &'static str,
    },
    /// `REDIS_URL` is set in a build without the `redis` feature.
    #[error(
        "REDIS_URL is set, so the cache would use Redis, but allframe-runtime was built without \
         its `redis` feature; enable it: `allframe = {{ package = \"allframe-runtime\", \
         features = [\"redis\"] }}`, or unset REDIS_URL for the embedded cache"
    )]
    RedisFeatureDisabled,
    /// `REDIS_URL` cannot be parsed.
    #[error("environment variable REDIS_URL is not a valid Redis URL: {reason}")]
    InvalidRedisUrl {
        /// What the parser objected to (never the URL).
        reason: String,
    },
    /// The engine (Redis) failed or did not answer.
    #[error("the cache engine ({engine}) failed: {reason}")]
    Engine {
        /// `"redis"` or `"embedded"`.
        engine: &'static str,
        /// The engine's error, as text.
        reason: String,
    },
    /// The source's `load` failed (every caller waiting on that load gets this error).
    #[error("loading `{key}` from the cache source failed: {source}")]
    Load {
        /// The key.
        key: String,
        /// The source's error, shared by the callers that awaited the same load.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The source's `store` failed (cache-aside and write-through `put`, write-behind
    /// `flush`); for write-behind the writes stay pending.
    #[error("storing {writes} write(s) through the cache source failed: {source}")]
    Store {
        /// How many keys the refused batch held.
        writes: usize,
        /// The source's error.
        #[source]
        source: BoxError,
    },
    /// A value could not be turned into JSON (on `put`), or a stored one back (a pending
    /// write whose type changed shape).
    #[error("the cached value of `{key}` cannot be (de)serialised as JSON: {source}")]
    Serde {
        /// The key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// `strategy = "write-behind"` and no database was given to record pending writes in.
    #[error(
        "[services.cache] strategy = \"write-behind\" records pending writes in the service \
         database, and Cache::open was given none"
    )]
    WriteBehindNeedsDatabase,
    /// The write-behind table could not be created, written or read.
    #[error("the cache's write-behind table `allframe_cache_writes` failed: {0}")]
    Database(#[source] sqlx::Error),
}

/// The error [`super::CacheSource::store`]'s default returns: the source only loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error(
    "this cache source is read-only: implement `CacheSource::store` to put values through \
     the cache (cache-aside and write-through store through it, write-behind flushes to it)"
)]
pub struct ReadOnlySource;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_to_do() {
        let disabled = CacheError::RedisFeatureDisabled.to_string();
        assert!(disabled.contains("REDIS_URL"), "{disabled}");
        assert!(disabled.contains("features = [\"redis\"]"), "{disabled}");
        assert!(ReadOnlySource.to_string().contains("read-only"));
        let store = CacheError::Store {
            writes: 1,
            source: Box::new(ReadOnlySource),
        };
        assert!(store.to_string().contains("read-only"), "{store}");
        let table = CacheError::Database(sqlx::Error::PoolClosed).to_string();
        assert!(table.contains(super::super::write_behind::TABLE), "{table}");
    }
}
