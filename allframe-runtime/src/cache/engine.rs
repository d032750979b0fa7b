//! Which engine holds cached values ([`CacheEngine`], chosen from the environment), and the
//! storage abstraction a [`super::Cache`] talks to: get/set/delete of serialised values with
//! a TTL, the same on both engines.

use std::time::Duration;

use super::embedded::EmbeddedStore;
use super::error::CacheError;
#[cfg(feature = "redis")]
use super::redis_store::RedisStore;
use super::{DEFAULT_MAX_ENTRIES, REDIS_URL};
use crate::env::Environment;

/// Where cached values live. Cheap to clone; one engine may serve several caches.
///
/// - [`CacheEngine::embedded`]: in this process. Each [`super::Cache`] opened on it gets
///   entries of its own, so every replica (and every cache) needs its own eviction.
/// - [`CacheEngine::redis`] (feature `redis`): one Redis; caches of one namespace share
///   their entries across processes, and one eviction reaches them all.
#[derive(Clone, Debug)]
pub struct CacheEngine {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Embedded {
        max_entries: u64,
    },
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

impl CacheEngine {
    /// The embedded engine, keeping at most [`DEFAULT_MAX_ENTRIES`] values per cache.
    pub fn embedded() -> Self {
        Self::embedded_with_capacity(DEFAULT_MAX_ENTRIES)
    }

    /// The embedded engine, keeping at most `max_entries` values per cache.
    pub fn embedded_with_capacity(max_entries: u64) -> Self {
        Self {
            kind: Kind::Embedded { max_entries },
        }
    }

    /// Redis at `url` (`redis://[user:password@]host:port[/db]`). Nothing is connected yet:
    /// the first command connects. Fails only when `url` cannot be parsed. Must be called
    /// inside a tokio runtime.
    #[cfg(feature = "redis")]
    pub fn redis(url: &str) -> Result<Self, CacheError> {
        Ok(Self {
            kind: Kind::Redis(RedisStore::new(url.trim())?),
        })
    }

    /// Redis when `REDIS_URL` is set (an error naming the `redis` feature in a build without
    /// it), else the embedded engine. Must be called inside a tokio runtime.
    pub fn from_env(env: &Environment) -> Result<Self, CacheError> {
        match env.get_non_empty(REDIS_URL) {
            None => Ok(Self::embedded()),
            #[cfg(feature = "redis")]
            Some(url) => Self::redis(&url),
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(CacheError::RedisFeatureDisabled),
        }
    }

    /// [`CacheEngine::from_env`] on the process environment.
    pub fn from_process_env() -> Result<Self, CacheError> {
        Self::from_env(&Environment::process())
    }

    /// `"embedded"` or `"redis"`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Embedded { .. } => "embedded",
            #[cfg(feature = "redis")]
            Kind::Redis(_) => "redis",
        }
    }

    /// True when caches of one namespace share their entries across processes (Redis): one
    /// eviction reaches every instance.
    pub fn is_shared(&self) -> bool {
        !matches!(self.kind, Kind::Embedded { .. })
    }

    /// Checks that the engine answers (Redis `PING`; the embedded engine always does).
    pub async fn ping(&self) -> Result<(), CacheError> {
        match &self.kind {
            Kind::Embedded { .. } => Ok(()),
            #[cfg(feature = "redis")]
            Kind::Redis(redis) => redis.ping().await,
        }
    }

    /// The storage of one cache of `namespace`.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(super) fn storage(&self, namespace: &str) -> Storage {
        match &self.kind {
            Kind::Embedded { max_entries } => Storage::Embedded(EmbeddedStore::new(*max_entries)),
            #[cfg(feature = "redis")]
            Kind::Redis(redis) => Storage::Redis {
                store: redis.clone(),
                prefix: format!("{namespace}:cache:"),
            },
        }
    }
}

/// The entries of one cache: get/set/delete of serialised values, each with a TTL.
#[derive(Clone)]
pub(super) enum Storage {
    Embedded(EmbeddedStore),
    #[cfg(feature = "redis")]
    Redis {
        store: RedisStore,
        /// `<namespace>:cache:`.
        prefix: String,
    },
}

impl Storage {
    /// The engine's name, for errors and logs.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            #[cfg(feature = "redis")]
            Self::Redis { .. } => "redis",
        }
    }

    /// `decode` applied to the bytes of `key`, if cached.
    pub(super) async fn get_with<T>(
        &self,
        key: &str,
        decode: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, CacheError> {
        match self {
            Self::Embedded(store) => Ok(store.get_with(key, decode)),
            #[cfg(feature = "redis")]
            Self::Redis { store, prefix } => {
                store.get_with(&format!("{prefix}{key}"), decode).await
            }
        }
    }

    /// Caches `bytes` at `key` for `ttl`.
    pub(super) async fn set(
        &self,
        key: &str,
        bytes: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        match self {
            Self::Embedded(store) => {
                store.set(key, bytes, ttl);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Self::Redis { store, prefix } => {
                store.set(&format!("{prefix}{key}"), &bytes, ttl).await
            }
        }
    }

    /// Removes `keys`; how many were cached.
    pub(super) async fn delete(&self, keys: &[&str]) -> Result<u64, CacheError> {
        match self {
            Self::Embedded(store) => Ok(keys.iter().filter(|key| store.delete(key)).count() as u64),
            #[cfg(feature = "redis")]
            Self::Redis { store, prefix } => {
                let keys: Vec<String> = keys.iter().map(|key| format!("{prefix}{key}")).collect();
                store.delete(&keys).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_engine_follows_redis_url() {
        let none = Environment::from_pairs::<_, String, String>([]);
        assert_eq!(
            CacheEngine::from_env(&none).expect("embedded").name(),
            "embedded"
        );
        let blank = Environment::from_pairs([(REDIS_URL, " ")]);
        assert_eq!(
            CacheEngine::from_env(&blank).expect("embedded").name(),
            "embedded"
        );
        let set = Environment::from_pairs([(REDIS_URL, "redis://127.0.0.1:6379")]);
        let chosen = CacheEngine::from_env(&set);
        if cfg!(feature = "redis") {
            assert_eq!(chosen.expect("redis").name(), "redis");
        } else {
            let error = chosen.expect_err("no redis feature");
            assert!(matches!(error, CacheError::RedisFeatureDisabled));
            assert!(error.to_string().contains("`redis` feature"), "{error}");
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_malformed_url_names_the_variable_not_the_password() {
        let env = Environment::from_pairs([(REDIS_URL, "http://:hunter2@cache")]);
        let error = CacheEngine::from_env(&env).expect_err("not a Redis URL");
        let message = error.to_string();
        assert!(message.contains("REDIS_URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
