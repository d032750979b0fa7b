//! The Redis engine (feature `redis`): `SET <namespace>:cache:<key> <json> PX <ttl>`, `GET`,
//! `DEL`. Redis expires entries itself; every cache of a namespace on one Redis shares them.
//!
//! The connection is a redis-rs `ConnectionManager` created lazily, as the idempotency store
//! does: an unreachable Redis does not stop start-up, commands fail until it is back (and a
//! lost connection is re-established on a later command).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::error::CacheError;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to one Redis; cheap to clone (clones share the connection).
#[derive(Clone)]
pub(super) struct RedisStore {
    connection: ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection info may hold a password: do not print it.
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn failed(error: &redis::RedisError) -> CacheError {
    CacheError::Engine {
        engine: "redis",
        reason: error.to_string(),
    }
}

impl RedisStore {
    /// A store for the Redis at `url`; nothing is connected yet. Fails only when `url`
    /// cannot be parsed.
    pub(super) fn new(url: &str) -> Result<Self, CacheError> {
        let invalid = |error: redis::RedisError| CacheError::InvalidRedisUrl {
            reason: error.to_string(),
        };
        let client = redis::Client::open(url).map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?;
        Ok(Self { connection })
    }

    /// Sends `PING`.
    pub(super) async fn ping(&self) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(|error| failed(&error))
    }

    /// The bytes at `key`, decoded by `decode`.
    pub(super) async fn get_with<T>(
        &self,
        key: &str,
        decode: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, CacheError> {
        let mut connection = self.connection.clone();
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut connection)
            .await
            .map_err(|error| failed(&error))?;
        Ok(bytes.map(|bytes| decode(&bytes)))
    }

    /// Sets `key` to `bytes`, expiring after `ttl`.
    pub(super) async fn set(
        &self,
        key: &str,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::cmd("SET")
            .arg(key)
            .arg(bytes)
            .arg("PX")
            .arg(millis)
            .query_async::<()>(&mut connection)
            .await
            .map_err(|error| failed(&error))
    }

    /// Deletes `keys` in one round trip (a pipeline of `DEL`s, so keys of different cluster
    /// slots are fine); how many were there.
    pub(super) async fn delete(&self, keys: &[String]) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipeline = redis::pipe();
        for key in keys {
            pipeline.cmd("DEL").arg(key);
        }
        let mut connection = self.connection.clone();
        let removed: Vec<u64> = pipeline
            .query_async(&mut connection)
            .await
            .map_err(|error| failed(&error))?;
        Ok(removed.iter().sum())
    }
}
