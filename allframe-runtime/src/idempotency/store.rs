//! The contract between the idempotency layer and the engines that keep keys: claim a key,
//! then either store the response under it or release it.
//!
//! A store only records and reports; it never decides what the client is answered (that is
//! the layer's job, in [`super::layer`]). Every operation is atomic in the engine, so two
//! processes serving the same service can share one store. Records carry an owner token:
//! only the request that claimed a key can complete, release or extend it.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;

use super::fingerprint::Fingerprint;

/// The future every store operation returns (boxed, so stores can sit behind `dyn`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where idempotency records live: SQL ([`super::SqlStore`]) or Redis (`RedisStore`, feature
/// `redis`). Implement it to plug in another engine.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// A short name for logs: `"sqlite"`, `"postgres"`, `"redis"`.
    fn name(&self) -> &'static str;

    /// Claims `claim.id` for `claim.owner` when no live record holds it: the record is created
    /// in flight, living until `claim.now_ms + claim.lease`. Otherwise reports the live record.
    /// Expired records count as absent and are replaced.
    fn begin<'a>(&'a self, claim: Claim<'a>) -> StoreFuture<'a, Begin>;

    /// Stores `response` under the in-flight record `lock` owns, to be replayed until
    /// `now_ms + ttl`. `false` when the record is no longer `lock.owner`'s (its lease ran out
    /// and another request claimed it, or it expired).
    fn complete<'a>(
        &'a self,
        lock: Lock<'a>,
        response: &'a StoredResponse,
        now_ms: i64,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Deletes the in-flight record `lock` owns, so the key can be used again. `false` when it
    /// was not `lock.owner`'s any more.
    fn release<'a>(&'a self, lock: Lock<'a>) -> StoreFuture<'a, bool>;

    /// Extends the lease of the in-flight record `lock` owns to `now_ms + lease`. `false` when
    /// it was not `lock.owner`'s any more.
    fn refresh<'a>(&'a self, lock: Lock<'a>, now_ms: i64, lease: Duration)
    -> StoreFuture<'a, bool>;
}

/// A request to claim a key.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The scoped id (see [`super::fingerprint::scoped_id`]).
    pub id: &'a str,
    /// The fingerprint of the request.
    pub fingerprint: &'a Fingerprint,
    /// A token unique to this request.
    pub owner: &'a str,
    /// The current time, in Unix milliseconds.
    pub now_ms: i64,
    /// How long the claim holds without a [`IdempotencyStore::refresh`].
    pub lease: Duration,
}

/// A claimed record: its id and the token of the request that owns it.
#[derive(Debug, Clone, Copy)]
pub struct Lock<'a> {
    /// The scoped id.
    pub id: &'a str,
    /// The owner token given to [`IdempotencyStore::begin`].
    pub owner: &'a str,
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key was free: the caller owns it now and must complete or release it.
    Started,
    /// A live record holds the key.
    Existing(Existing),
}

/// A live record found under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// The fingerprint of the request that claimed the key.
    pub fingerprint: Fingerprint,
    /// Its stored response; `None` while that request is still in flight.
    pub response: Option<StoredResponse>,
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The selected headers (see [`super::STORED_HEADERS`]), in order.
    pub headers: Vec<(String, String)>,
    /// The body; `None` when it was larger than the layer's `max_response_bytes` and so was
    /// not kept (the replay then has the status and headers and an empty body).
    pub body: Option<Bytes>,
}

impl StoredResponse {
    /// The headers as JSON text (`[["content-type","application/json"],…]`), as stores keep them.
    pub fn headers_json(&self) -> String {
        // Serialising strings cannot fail.
        serde_json::to_string(&self.headers).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Rebuilds a response read back from a store. `id` names the record in the error.
    pub fn from_parts(
        id: &str,
        status: i64,
        headers_json: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: id.to_owned(),
            reason,
        };
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (100..=999).contains(s))
            .ok_or_else(|| corrupt(format!("status {status} is not an HTTP status")))?;
        let headers: Vec<(String, String)> = serde_json::from_str(headers_json)
            .map_err(|error| corrupt(format!("headers are not a JSON list of pairs: {error}")))?;
        Ok(Self {
            status,
            headers,
            body: body.map(Bytes::from),
        })
    }
}

/// A store operation failed: the layer answers 503 and does not run the request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A SQL statement failed (the database is down, the pool is closed, …).
    #[error("idempotency store query failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// A Redis command failed.
    #[cfg(feature = "redis")]
    #[error("idempotency store (Redis) failed: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The store did not answer in time.
    #[error("idempotency store did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// A record could not be decoded.
    #[error("idempotency record `{id}` is malformed: {reason}")]
    Corrupt {
        /// The scoped id of the record.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The time source of the layer, in Unix milliseconds. Replace it in tests to move time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            })
    }
}

/// `now_ms + duration`, saturating.
pub fn deadline_ms(now_ms: i64, duration: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

/// A duration in whole milliseconds for a store (at least 1, so a zero lease still expires).
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_responses_round_trip_through_their_parts() {
        let response = StoredResponse {
            status: 201,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("location".into(), "/orders/7".into()),
            ],
            body: Some(Bytes::from_static(b"{\"id\":7}")),
        };
        let back = StoredResponse::from_parts(
            "id",
            201,
            &response.headers_json(),
            Some(b"{\"id\":7}".to_vec()),
        )
        .expect("decodes");
        assert_eq!(back, response);
        assert!(matches!(
            StoredResponse::from_parts("id", 70_000, "[]", None),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            StoredResponse::from_parts("id", 200, "{", None),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn deadlines_saturate() {
        assert_eq!(deadline_ms(1_000, Duration::from_secs(2)), 3_000);
        assert_eq!(deadline_ms(i64::MAX, Duration::from_secs(1)), i64::MAX);
        assert_eq!(millis(Duration::ZERO), 1);
        assert!(SystemClock.now_ms() > 1_600_000_000_000);
    }
}
