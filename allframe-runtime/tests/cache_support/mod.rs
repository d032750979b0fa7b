//! Shared by the cache suites (the embedded engine on SQLite in `messaging/cache.rs`; Redis on
//! PostgreSQL in `real_services/cache_redis.rs`): a source that records what the cache asks
//! of it, a fixture naming the engine and database under test, and the scenarios every engine
//! must pass (`scenarios.rs`).
#![allow(dead_code)] // each suite uses what its engine supports

mod scenarios;
pub mod source;

pub use scenarios::*;
pub use source::{ReadOnly, Recorder};

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use allframe_runtime::Database;
use allframe_runtime::cache::{
    Cache, CacheEngine, CacheSettings, WriteBehindSettings, WriteStrategy,
};

/// The engine and database one test runs on.
pub struct Fixture {
    /// The engine under test.
    pub engine: CacheEngine,
    /// The service database (the write-behind table lives there).
    pub db: Database,
    /// A namespace no other test or run uses.
    pub namespace: String,
    /// Whether two caches on this engine share their entries (Redis) or not (embedded).
    pub shared: bool,
}

impl Fixture {
    /// The fixture's settings with `strategy`, the TTL at an hour, the flusher at an hour
    /// and batches of 100 (so that only the test decides when writes are flushed).
    pub fn settings(&self, strategy: WriteStrategy) -> CacheSettings {
        CacheSettings {
            strategy,
            namespace: self.namespace.clone().into(),
            write_behind: WriteBehindSettings {
                max_batch: 100,
                flush_interval: Duration::from_secs(3600),
            },
            ..CacheSettings::DEFAULT
        }
    }

    /// Opens a cache of `source` on the fixture's engine and database.
    pub async fn open(&self, source: Recorder, settings: CacheSettings) -> Cache<Recorder> {
        Cache::open(source, settings, &self.engine, Some(&self.db))
            .await
            .expect("the cache opens")
    }
}

/// A fresh suffix, so namespaces never collide across tests or runs (Redis outlives them).
pub fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// Waits up to 10 s for `done`, polling every 10 ms.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
