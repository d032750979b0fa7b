//! The Redis idempotency store (feature `redis`): one hash per key, expired by Redis itself.
//!
//! Each operation is one Lua script, which Redis runs atomically: claiming checks for the key
//! and creates it (in flight, `PEXPIRE` = the lease) or returns the existing record in the same
//! round trip, the moral equivalent of `SET NX PX` followed by a `GET` without the race
//! between them. Completing, releasing and extending check the owner token first. Keys are
//! `allframe:idempotency:<scoped id>`; in-flight records live for the lease, completed ones for
//! the TTL. The connection is a redis-rs `ConnectionManager` created lazily, so an unreachable
//! Redis does not stop start-up: requests carrying a key then fail with 503 until it is back.

use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::fingerprint::Fingerprint;
use super::store::{
    Begin, Claim, Existing, IdempotencyStore, Lock, StoreError, StoreFuture, StoredResponse, millis,
};

/// The prefix of every key this store writes.
pub const KEY_PREFIX: &str = "allframe:idempotency:";

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// `KEYS[1]` = key; `ARGV` = fingerprint, owner, lease ms. Returns `{"started"}` or
/// `{"exists", fingerprint, state, status, headers, body, stored}`.
const BEGIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', '0', 'owner', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'started'}
end
local r = redis.call('HMGET', KEYS[1], 'fp', 'state', 'status', 'headers', 'body', 'stored')
return {'exists', r[1] or '', r[2] or '', r[3] or '', r[4] or '', r[5] or '', r[6] or ''}
";

/// `KEYS[1]` = key; `ARGV` = owner, status, headers, body, stored (1/0), ttl ms.
const COMPLETE: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= '0' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', '1', 'status', ARGV[2], 'headers', ARGV[3], 'body', ARGV[4], 'stored', ARGV[5])
redis.call('HDEL', KEYS[1], 'owner')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
";

/// `KEYS[1]` = key; `ARGV` = owner.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= '0' then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
";

/// `KEYS[1]` = key; `ARGV` = owner, lease ms.
const REFRESH: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'state') ~= '0' then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Idempotency records in Redis.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    begin: Script,
    complete: Script,
    release: Script,
    refresh: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection info may hold a password: do not print it.
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for the Redis at `url` (`redis://[user:password@]host:port[/db]`). Nothing is
    /// connected yet: the first command connects, and a lost connection is re-established on
    /// a later command. Fails only when `url` cannot be parsed.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            scripts: std::sync::Arc::new(Scripts {
                begin: Script::new(BEGIN),
                complete: Script::new(COMPLETE),
                release: Script::new(RELEASE),
                refresh: Script::new(REFRESH),
            }),
        })
    }

    /// Sends `PING`; for start-up diagnostics.
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
    }

    fn key(id: &str) -> String {
        format!("{KEY_PREFIX}{id}")
    }

    async fn begin_inner(&self, claim: Claim<'_>) -> Result<Begin, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.scripts.begin.key(Self::key(claim.id));
        invocation
            .arg(claim.fingerprint.as_str())
            .arg(claim.owner)
            .arg(millis(claim.lease));
        let reply: Vec<Vec<u8>> = invocation.invoke_async(&mut connection).await?;
        let corrupt = |reason: &str| StoreError::Corrupt {
            id: claim.id.to_owned(),
            reason: reason.to_owned(),
        };
        match reply.as_slice() {
            [tag] if tag.as_slice() == b"started" => Ok(Begin::Started),
            [tag, fingerprint, state, status, headers, body, stored]
                if tag.as_slice() == b"exists" =>
            {
                let fingerprint = String::from_utf8(fingerprint.clone())
                    .map_err(|_| corrupt("the fingerprint is not text"))?;
                let response = match state.as_slice() {
                    b"0" => None,
                    b"1" => {
                        let status: i64 = std::str::from_utf8(status)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| corrupt("the status is not a number"))?;
                        let headers = std::str::from_utf8(headers)
                            .map_err(|_| corrupt("the headers are not text"))?;
                        let body = (stored.as_slice() == b"1").then(|| body.clone());
                        Some(StoredResponse::from_parts(claim.id, status, headers, body)?)
                    }
                    _ => return Err(corrupt("unknown state")),
                };
                Ok(Begin::Existing(Existing {
                    fingerprint: Fingerprint::from_stored(fingerprint),
                    response,
                }))
            }
            _ => Err(corrupt("unexpected reply to the claim script")),
        }
    }
}

impl IdempotencyStore for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn begin<'a>(&'a self, claim: Claim<'a>) -> StoreFuture<'a, Begin> {
        Box::pin(self.begin_inner(claim))
    }

    fn complete<'a>(
        &'a self,
        lock: Lock<'a>,
        response: &'a StoredResponse,
        _now_ms: i64,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut invocation = self.scripts.complete.key(Self::key(lock.id));
            invocation
                .arg(lock.owner)
                .arg(response.status)
                .arg(response.headers_json())
                .arg(response.body.as_deref().unwrap_or_default())
                .arg(if response.body.is_some() { "1" } else { "0" })
                .arg(millis(ttl));
            let done: i64 = invocation.invoke_async(&mut connection).await?;
            Ok(done == 1)
        })
    }

    fn release<'a>(&'a self, lock: Lock<'a>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut invocation = self.scripts.release.key(Self::key(lock.id));
            invocation.arg(lock.owner);
            let done: i64 = invocation.invoke_async(&mut connection).await?;
            Ok(done == 1)
        })
    }

    fn refresh<'a>(
        &'a self,
        lock: Lock<'a>,
        _now_ms: i64,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut invocation = self.scripts.refresh.key(Self::key(lock.id));
            invocation.arg(lock.owner).arg(millis(lease));
            let done: i64 = invocation.invoke_async(&mut connection).await?;
            Ok(done == 1)
        })
    }
}
