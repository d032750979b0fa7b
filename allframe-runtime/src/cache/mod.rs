//! The runtime of the `cache` archetype (`type = "cache"`, `[services.cache]`): a read-through
//! cache in front of whatever the user's [`CacheSource`] reads and writes.
//!
//! ```text
//! struct Catalog { db: allframe::Database }
//! impl allframe::cache::CacheSource for Catalog {
//!     type Value = Product;
//!     async fn load(&self, key: &str) -> Result<Option<Product>, allframe::BoxError> { … }
//!     async fn store(&self, writes: &[(String, Product)]) -> Result<(), allframe::BoxError> { … }
//! }
//!
//! let engine = CacheEngine::from_process_env()?;          // Redis if REDIS_URL, else embedded
//! let cache = Cache::open(Catalog { .. }, settings, &engine, Some(cx.db())).await?;
//! let product = cache.get("sku-42").await?;              // hit, or one load per key
//! cache.put("sku-42", product).await?;                   // per the file's strategy
//! cache.evict("sku-42").await?;                          // on ProductUpdated
//! ```
//!
//! - [`Cache::get`]: a hit answers from the engine; a miss loads from the source with
//!   stampede protection (one load per key per process, concurrent callers await it) and
//!   keeps a found value for the TTL. `None` is not cached.
//! - [`Cache::put`] follows [`WriteStrategy`]: cache-aside stores through the source then
//!   evicts, write-through stores then caches, write-behind caches at once and records the
//!   write in the service database (`allframe_cache_writes`) before returning; a background
//!   flusher stores pending writes in batches, coalesced per key (last write wins), retrying
//!   with backoff and keeping the rows until the source took them. See [`write_behind`].
//! - [`Cache::evict`] / [`Cache::evict_all`]: idempotent eviction, for the events the file's
//!   `invalidation` list names.
//!
//! A `type = "cache"` service ([`CacheService`], [`Launcher::cache`](crate::__private::Launcher::cache)) opens one cache
//! at start-up, serves it at `/<plural>/{key}` ([`cache_routes`]) and evicts what each
//! invalidation event makes stale, on every instance (see [`service`'s docs](CacheService)).
//!
//! Engines ([`CacheEngine`]): **embedded** (in this process, `moka`; each [`Cache`] has its
//! own entries) or **Redis** (feature `redis`, when `REDIS_URL` is set; every cache of a
//! namespace shares its entries, keys `<namespace>:cache:<key>`, values JSON).
//!
//! The cache never talks to the source except through [`CacheSource`].

use std::borrow::Cow;
use std::time::Duration;

mod embedded;
mod engine;
mod error;
mod flight;
mod flusher;
mod handle;
mod http;
#[cfg(feature = "redis")]
mod redis_store;
mod service;
mod source;
mod stats;
pub mod write_behind;

pub use engine::CacheEngine;
pub use error::{CacheError, ReadOnlySource};
pub use handle::Cache;
pub use http::cache_routes;
pub(crate) use service::{CacheComponent, InvalidationHost};
pub use service::{CacheService, CacheServiceSettings, cache_of};
pub use source::CacheSource;
pub(crate) use stats::CacheMetricsSlot;
pub use stats::{CacheCollector, CacheStats};

/// The variable naming the Redis server; set, the cache uses Redis (feature `redis`).
pub const REDIS_URL: &str = allframe_env::REDIS_URL.name;
/// The TTL when the file sets none (`ttl_seconds = 3600`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// How many entries the embedded engine keeps at most by default (least recently and
/// frequently used ones are dropped first).
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// The largest `max_batch` accepted (one batch's rows are deleted with bound parameters).
pub const MAX_BATCH_LIMIT: usize = 10_000;

/// How [`Cache::put`] reaches the source (`strategy` in `[services.cache]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WriteStrategy {
    /// `"cache-aside"`: store through the source, then evict the key; the next `get` loads.
    #[default]
    CacheAside,
    /// `"write-through"`: store through the source, then cache the value.
    WriteThrough,
    /// `"write-behind"`: cache the value and record the write in the service database at
    /// once; the flusher stores it later, in batches.
    WriteBehind,
}

impl WriteStrategy {
    /// The name used in `architecture.toml`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CacheAside => "cache-aside",
            Self::WriteThrough => "write-through",
            Self::WriteBehind => "write-behind",
        }
    }
}

impl std::fmt::Display for WriteStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the write-behind flusher works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBehindSettings {
    /// The most keys one `store` call receives (writes to one key are coalesced first).
    /// The flusher also runs early once this many writes are pending.
    pub max_batch: usize,
    /// How often the flusher stores what is pending.
    pub flush_interval: Duration,
}

impl WriteBehindSettings {
    /// 100 keys a batch, every second.
    pub const DEFAULT: Self = Self {
        max_batch: 100,
        flush_interval: Duration::from_secs(1),
    };
}

impl Default for WriteBehindSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `[services.cache]` as the runtime needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// How `put` reaches the source.
    pub strategy: WriteStrategy,
    /// How long a cached value is served (`ttl_seconds`).
    pub ttl: Duration,
    /// Scopes keys: `<namespace>:cache:<key>` in Redis, and the rows of the write-behind
    /// table. Usually the service's name, so services sharing a Redis never collide.
    pub namespace: Cow<'static, str>,
    /// The flusher's batch size and interval (write-behind only).
    pub write_behind: WriteBehindSettings,
}

impl CacheSettings {
    /// Cache-aside, one hour, namespace `"allframe"`, [`WriteBehindSettings::DEFAULT`].
    pub const DEFAULT: Self = Self {
        strategy: WriteStrategy::CacheAside,
        ttl: DEFAULT_TTL,
        namespace: Cow::Borrowed("allframe"),
        write_behind: WriteBehindSettings::DEFAULT,
    };

    /// The defaults with `namespace` (e.g. the service's name).
    pub fn new(namespace: impl Into<Cow<'static, str>>) -> Self {
        Self {
            namespace: namespace.into(),
            ..Self::DEFAULT
        }
    }

    /// Checks the values [`Cache::open`] cannot work with.
    pub fn validate(&self) -> Result<(), CacheError> {
        let invalid = |reason: &'static str| Err(CacheError::InvalidSettings { reason });
        if self.namespace.trim().is_empty() {
            return invalid("the namespace is empty");
        }
        if self.ttl < Duration::from_millis(1) {
            return invalid("ttl must be at least one millisecond");
        }
        if self.strategy == WriteStrategy::WriteBehind {
            if self.write_behind.max_batch == 0 || self.write_behind.max_batch > MAX_BATCH_LIMIT {
                return invalid("write_behind.max_batch must be between 1 and 10000");
            }
            if self.write_behind.flush_interval.is_zero() {
                return invalid("write_behind.flush_interval must be more than zero");
            }
        }
        Ok(())
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_file() {
        let settings = CacheSettings::new("product-cache");
        assert_eq!(settings.ttl, Duration::from_secs(3600));
        assert_eq!(settings.strategy, WriteStrategy::CacheAside);
        assert_eq!(settings.namespace, "product-cache");
        assert!(settings.validate().is_ok());
        assert_eq!(WriteStrategy::WriteBehind.to_string(), "write-behind");
    }

    #[test]
    fn unusable_settings_are_refused() {
        let zero_ttl = CacheSettings {
            ttl: Duration::ZERO,
            ..CacheSettings::DEFAULT
        };
        assert!(matches!(
            zero_ttl.validate(),
            Err(CacheError::InvalidSettings { .. })
        ));
        let empty_batch = CacheSettings {
            strategy: WriteStrategy::WriteBehind,
            write_behind: WriteBehindSettings {
                max_batch: 0,
                ..WriteBehindSettings::DEFAULT
            },
            ..CacheSettings::DEFAULT
        };
        assert!(empty_batch.validate().is_err());
        assert!(CacheSettings::new(" ").validate().is_err());
    }
}
