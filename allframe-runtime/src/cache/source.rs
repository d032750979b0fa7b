//! [`CacheSource`]: the user's side of a cache, over whatever the cache fronts.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ReadOnlySource;
use crate::BoxError;

/// What a [`super::Cache`] fronts: a read model, a table, another service's API. The cache
/// calls `load` on a miss and `store` to write values through (per the strategy).
///
/// `store` must be **idempotent**: the write-behind flusher stores a batch at least once,
/// and again after a crash between the source accepting it and the rows being deleted (an
/// upsert is the usual shape). It receives at most one entry per key, the key's latest value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is used as a cache source and must implement `allframe::cache::CacheSource`",
    label = "not a cache source",
    note = "add `impl allframe::cache::CacheSource for {Self} {{ type Value = …; async fn load(&self, key: &str) -> Result<Option<Self::Value>, allframe::BoxError> {{ … }} }}`"
)]
pub trait CacheSource: Send + Sync + 'static {
    /// The cached value; kept as JSON in the engine and in the write-behind table.
    type Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// The value of `key`, or `None` when there is none (`None` is not cached).
    fn load(&self, key: &str)
    -> impl Future<Output = Result<Option<Self::Value>, BoxError>> + Send;

    /// Writes `writes` (one entry per key) to the source. Write-through and cache-aside pass
    /// one entry; write-behind passes a batch. Must be idempotent (see the trait's docs).
    ///
    /// The default refuses with [`ReadOnlySource`]: a cache-aside source that is never
    /// written through the cache need not implement it.
    fn store(
        &self,
        writes: &[(String, Self::Value)],
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = writes;
        std::future::ready(Err(Box::new(ReadOnlySource) as BoxError))
    }
}
