//! [`Cache`]: get with stampede protection, put per strategy, idempotent eviction, and the
//! write-behind flusher's lifecycle.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::engine::{CacheEngine, Storage};
use super::error::CacheError;
use super::flight::{Flight, Flights, Shared, Stripes};
use super::flusher::{self, WriteBehind};
use super::source::CacheSource;
use super::stats::{CacheCollector, CacheStats, Counters};
use super::write_behind::PendingTable;
use super::{CacheSettings, WriteStrategy};
use crate::database::Database;
use crate::tasks::TaskRegistry;

/// What every clone of a cache and its flusher share.
pub(super) struct Core<S: CacheSource> {
    pub(super) source: S,
    pub(super) settings: CacheSettings,
    pub(super) counters: Arc<Counters>,
    pub(super) write_behind: Option<WriteBehind>,
    storage: Storage,
    flights: Flights<S::Value>,
    stripes: Stripes,
}

/// The caches' shared handle: dropping the last clone stops the flusher.
struct Handle<S: CacheSource> {
    core: Arc<Core<S>>,
    stop: CancellationToken,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl<S: CacheSource> Drop for Handle<S> {
    fn drop(&mut self) {
        // Pending writes stay in the table; the next open stores them.
        self.stop.cancel();
    }
}

/// A cache in front of the source `S`. Cheap to clone: clones share entries, loads in
/// progress, counters and the write-behind flusher.
///
/// Dropping the last clone stops the flusher without storing what is pending (those writes
/// stay in the table and the next [`Cache::open`] on the database stores them); call
/// [`Cache::shutdown_flush`] to store them first.
pub struct Cache<S: CacheSource> {
    handle: Arc<Handle<S>>,
}

impl<S: CacheSource> Clone for Cache<S> {
    fn clone(&self) -> Self {
        Self {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<S: CacheSource> std::fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = &self.handle.core;
        f.debug_struct("Cache")
            .field("namespace", &core.settings.namespace)
            .field("strategy", &core.settings.strategy)
            .field("engine", &core.storage.name())
            .field("stats", &core.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl<S: CacheSource> Cache<S> {
    /// Opens a cache of `source` on `engine`. `db` is the service database, required for
    /// write-behind (its pending writes are recorded there, in
    /// [`super::write_behind::TABLE`], created if missing) and unused otherwise.
    /// Write-behind starts the flusher, which first stores any writes a previous run left.
    /// Must be called inside a tokio runtime.
    pub async fn open(
        source: S,
        settings: CacheSettings,
        engine: &CacheEngine,
        db: Option<&Database>,
    ) -> Result<Self, CacheError> {
        settings.validate()?;
        let counters = Arc::new(Counters::default());
        let write_behind = match (settings.strategy, db) {
            (WriteStrategy::WriteBehind, None) => return Err(CacheError::WriteBehindNeedsDatabase),
            (WriteStrategy::WriteBehind, Some(db)) => {
                let table = PendingTable::open(db, &settings.namespace)
                    .await
                    .map_err(CacheError::Database)?;
                let pending = table.count().await.map_err(CacheError::Database)?;
                Counters::add(&counters.pending_writes, pending);
                Some(WriteBehind::new(table, &settings.namespace))
            }
            _ => None,
        };
        let core = Arc::new(Core {
            storage: engine.storage(&settings.namespace),
            source,
            settings,
            counters,
            write_behind,
            flights: Flights::default(),
            stripes: Stripes::default(),
        });
        let stop = CancellationToken::new();
        let pending_at_open = core.counters.snapshot().pending_writes > 0;
        let flusher = core.write_behind.is_some().then(|| {
            tokio::spawn(flusher::run(
                Arc::clone(&core),
                stop.clone(),
                pending_at_open,
            ))
        });
        tracing::debug!(
            cache = %core.settings.namespace,
            engine = core.storage.name(),
            strategy = %core.settings.strategy,
            "cache opened"
        );
        Ok(Self {
            handle: Arc::new(Handle {
                core,
                stop,
                flusher: Mutex::new(flusher),
            }),
        })
    }

    fn core(&self) -> &Core<S> {
        &self.handle.core
    }

    /// The value of `key`: from the engine on a hit; on a miss, loaded from the source once
    /// per key however many callers miss at once (they all await that load), and cached for
    /// the TTL when found. Write-behind serves a pending write of `key` before the source.
    /// An engine failure is logged and answered from the source.
    pub async fn get(&self, key: &str) -> Result<Option<S::Value>, CacheError> {
        let core = self.core();
        match core.storage.get_with(key, decode::<S::Value>).await {
            Ok(Some(Ok(value))) => {
                Counters::add(&core.counters.hits, 1);
                return Ok(Some(value));
            }
            Ok(Some(Err(error))) => {
                tracing::warn!(cache = %core.settings.namespace, key, error = %error, "a cached value no longer decodes; loading it again");
            }
            Ok(None) => {}
            Err(error) => core.engine_failed(&error),
        }
        Counters::add(&core.counters.misses, 1);
        let flight = core.flights.join(key);
        let outcome = flight.outcome(|| core.fill(key, &flight)).await;
        outcome.clone().map_err(|source| CacheError::Load {
            key: key.to_owned(),
            source,
        })
    }

    /// Writes `value` at `key` per the strategy:
    ///
    /// - cache-aside: `source.store`, then evicts the key;
    /// - write-through: `source.store`, then caches the value;
    /// - write-behind: records the write in the service database, then caches the value;
    ///   the flusher stores it later.
    ///
    /// Writes to one key (and loads caching it) take turns, so the cached value is the last
    /// one written. An error after the source took the write (or, for write-behind, after it
    /// was recorded) comes from the engine: the write itself is not undone.
    pub async fn put(&self, key: &str, value: S::Value) -> Result<(), CacheError> {
        let core = self.core();
        let _turn = core.stripes.lock(key).await;
        match core.settings.strategy {
            WriteStrategy::CacheAside => {
                core.store_one(key, value).await?;
                core.flights.invalidate(key);
                core.delete(&[key]).await
            }
            WriteStrategy::WriteThrough => {
                let json = encode(key, &value)?;
                core.store_one(key, value).await?;
                core.flights.invalidate(key);
                core.storage
                    .set(key, json.into_bytes(), core.settings.ttl)
                    .await
            }
            WriteStrategy::WriteBehind => {
                let json = encode(key, &value)?;
                if let Some(write_behind) = &core.write_behind {
                    write_behind
                        .table
                        .record(key, &json)
                        .await
                        .map_err(CacheError::Database)?;
                    Counters::add(&core.counters.pending_writes, 1);
                    let pending = core.counters.snapshot().pending_writes;
                    if pending
                        >= u64::try_from(core.settings.write_behind.max_batch).unwrap_or(u64::MAX)
                    {
                        write_behind.wake.notify_one();
                    }
                }
                core.flights.invalidate(key);
                core.storage
                    .set(key, json.into_bytes(), core.settings.ttl)
                    .await
            }
        }
    }

    /// Removes `key` from the cache (idempotent: evicting an absent key succeeds). A load of
    /// `key` in progress is not cached. A write-behind write still pending is kept (and
    /// served by the next `get`).
    pub async fn evict(&self, key: &str) -> Result<(), CacheError> {
        self.evict_all([key]).await
    }

    /// Removes every key of `keys` (one round trip on Redis); idempotent like [`Cache::evict`].
    pub async fn evict_all<I, K>(&self, keys: I) -> Result<(), CacheError>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let keys: Vec<K> = keys.into_iter().collect();
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let core = self.core();
        let _turns = core.stripes.lock_many(&keys).await;
        for key in &keys {
            core.flights.invalidate(key);
        }
        core.delete(&keys).await
    }

    /// Write-behind: stores every write pending now, in batches, and returns when they are
    /// stored (or with the source's error; the writes then stay pending). Other strategies
    /// have nothing pending.
    pub async fn flush(&self) -> Result<(), CacheError> {
        match &self.core().write_behind {
            Some(write_behind) => flusher::drain(self.core(), write_behind).await,
            None => Ok(()),
        }
    }

    /// Stops the background flusher, then stores everything pending, retrying a failing
    /// source a few times with backoff. On an error the writes stay in the table and the next
    /// start stores them. The service's component calls it on SIGTERM; `put` still records
    /// writes afterwards, for the next start (or a [`Cache::flush`]).
    pub async fn shutdown_flush(&self) -> Result<(), CacheError> {
        self.handle.stop.cancel();
        let task = self
            .handle
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::warn!(error = %error, "the write-behind flusher ended abnormally");
        }
        let mut failures = 0;
        loop {
            match self.flush().await {
                Ok(()) => return Ok(()),
                Err(error) if failures < flusher::SHUTDOWN_RETRIES => {
                    failures += 1;
                    tracing::warn!(error = %error, failures, "write-behind flush at shutdown failed; retrying");
                    tokio::time::sleep(flusher::backoff(failures)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Spawns a task in `tasks` that calls [`Cache::shutdown_flush`] when shutdown begins
    /// (what the service's component does with the launcher's registry).
    pub fn flush_on_shutdown(&self, tasks: &TaskRegistry) {
        let cache = self.clone();
        tasks.spawn("cache-write-behind", move |token| async move {
            token.cancelled().await;
            cache.shutdown_flush().await.map_err(Into::into)
        });
    }

    /// The counters since the cache was opened.
    pub fn stats(&self) -> CacheStats {
        self.core().counters.snapshot()
    }

    /// How many write-behind writes the table holds for this cache's namespace now (every
    /// process's, unlike [`CacheStats::pending_writes`]); 0 for other strategies.
    pub async fn pending_writes(&self) -> Result<u64, CacheError> {
        match &self.core().write_behind {
            Some(write_behind) => write_behind
                .table
                .count()
                .await
                .map_err(CacheError::Database),
            None => Ok(0),
        }
    }

    /// The Prometheus collector of this cache's counters.
    pub fn collector(&self) -> CacheCollector {
        let core = self.core();
        CacheCollector::new(core.settings.namespace.clone(), Arc::clone(&core.counters))
    }

    /// Registers [`Cache::collector`] in `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(self.collector()));
    }

    /// The settings the cache was opened with.
    pub fn settings(&self) -> &CacheSettings {
        &self.core().settings
    }

    /// The source behind the cache.
    pub fn source(&self) -> &S {
        &self.core().source
    }

    /// The engine's name: `"embedded"` or `"redis"`.
    pub fn engine(&self) -> &'static str {
        self.core().storage.name()
    }
}

impl<S: CacheSource> Core<S> {
    /// Loads `key` for its flight: checks the engine again (another flight may have just
    /// filled it), then a pending write-behind write, then the source; caches a found value
    /// unless a write touched the key meanwhile.
    async fn fill(&self, key: &str, flight: &Arc<Flight<S::Value>>) -> Shared<S::Value> {
        if let Ok(Some(Ok(value))) = self.storage.get_with(key, decode::<S::Value>).await {
            self.flights.finish(key, flight);
            return Ok(Some(value));
        }
        Counters::add(&self.counters.loads, 1);
        let loaded = self.load(key).await;
        let value = match loaded {
            Ok(Some(value)) => value,
            Ok(None) => {
                self.flights.finish(key, flight);
                return Ok(None);
            }
            Err(error) => {
                Counters::add(&self.counters.load_failures, 1);
                self.flights.finish(key, flight);
                return Err(Arc::from(error));
            }
        };
        match encode(key, &value) {
            Ok(json) => {
                let _turn = self.stripes.lock(key).await;
                if !flight.is_invalidated()
                    && let Err(error) = self
                        .storage
                        .set(key, json.into_bytes(), self.settings.ttl)
                        .await
                {
                    self.engine_failed(&error);
                }
                self.flights.finish(key, flight);
            }
            Err(error) => {
                tracing::warn!(cache = %self.settings.namespace, key, error = %error, "a loaded value cannot be cached");
                self.flights.finish(key, flight);
            }
        }
        Ok(Some(value))
    }

    /// A pending write-behind write of `key`, else the source's value.
    async fn load(&self, key: &str) -> Result<Option<S::Value>, crate::BoxError> {
        if let Some(write_behind) = &self.write_behind
            && let Some(json) = write_behind.table.latest(key).await?
        {
            return Ok(Some(serde_json::from_str(&json)?));
        }
        self.source.load(key).await
    }

    /// `source.store` of one write.
    async fn store_one(&self, key: &str, value: S::Value) -> Result<(), CacheError> {
        self.source
            .store(&[(key.to_owned(), value)])
            .await
            .map_err(|source| CacheError::Store { writes: 1, source })
    }

    /// Removes `keys` from the engine, counting what was there.
    async fn delete(&self, keys: &[&str]) -> Result<(), CacheError> {
        let removed = self.storage.delete(keys).await?;
        Counters::add(&self.counters.evictions, removed);
        Ok(())
    }

    fn engine_failed(&self, error: &CacheError) {
        Counters::add(&self.counters.engine_errors, 1);
        tracing::warn!(cache = %self.settings.namespace, error = %error, "cache engine failed; answering from the source");
    }
}

/// A cached JSON value back to `V`.
fn decode<V: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<V, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// `value` as JSON.
fn encode<V: serde::Serialize>(key: &str, value: &V) -> Result<String, CacheError> {
    serde_json::to_string(value).map_err(|source| CacheError::Serde {
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Numbers;

    impl CacheSource for Numbers {
        type Value = u64;

        async fn load(&self, key: &str) -> Result<Option<u64>, crate::BoxError> {
            Ok(key.parse().ok())
        }
    }

    fn is_send<T: Send>(_: &T) {}

    #[tokio::test]
    async fn every_operation_can_run_on_a_spawned_task() {
        let settings = CacheSettings::new("numbers");
        let cache = Cache::open(Numbers, settings, &CacheEngine::embedded(), None)
            .await
            .expect("open");
        is_send(&cache.get("1"));
        is_send(&cache.put("1", 1));
        is_send(&cache.evict_all(["1"]));
        is_send(&cache.flush());
        is_send(&cache.shutdown_flush());
        assert_eq!(cache.get("42").await.expect("get"), Some(42));
        assert_eq!(cache.get("nan").await.expect("get"), None);
        assert_eq!(cache.engine(), "embedded");
    }
}
