//! A rate limit shared by every replica of a service through Redis (feature `redis`, used when
//! `REDIS_URL` is set): the same GCRA as the in-process limiter, one Lua script per request
//! that reads and moves the client's theoretical arrival time atomically, on Redis's clock
//! (`TIME`), so replicas with skewed clocks still share one budget.
//!
//! Keys are `allframe:ratelimit:<service>:<client>` and expire once the client's budget is
//! full again. When Redis does not answer, each replica falls back to its own in-process
//! limit (logged at most once a minute): a limiter outage never refuses every request.

use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest as _, Sha256};

use super::rate_limit::{Client, Limited, RateLimitPolicy};

/// The prefix of every key the shared limit writes.
pub const KEY_PREFIX: &str = "allframe:ratelimit:";

/// `KEYS[1]` = key; `ARGV` = emission interval µs, burst tolerance µs. Returns 0 when the
/// request passes, else the µs until it would.
const GCRA: &str = r"
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

/// How long one command may take before the replica counts on its own.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

/// A rate limit counted in Redis.
#[derive(Clone)]
pub struct SharedRateLimit {
    connection: ConnectionManager,
    script: std::sync::Arc<Script>,
    prefix: String,
    interval_us: u64,
    tolerance_us: u64,
}

impl std::fmt::Debug for SharedRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection info may hold a password: do not print it.
        f.debug_struct("SharedRateLimit")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedRateLimit {
    /// A limit of `policy` for `service`, counted in the Redis at `url`. Nothing is connected
    /// yet; fails only when `url` cannot be parsed.
    pub fn new(
        url: &str,
        service: &str,
        policy: RateLimitPolicy,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(0)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        // Rounded up, never 0: a budget above a million requests a second counts as that.
        let interval_us = 1_000_000_u64.div_ceil(u64::from(policy.rps.max(1))).max(1);
        Ok(Self {
            connection,
            script: std::sync::Arc::new(Script::new(GCRA)),
            prefix: format!("{KEY_PREFIX}{service}:"),
            interval_us,
            tolerance_us: interval_us * u64::from(policy.burst.max(1) - 1),
        })
    }

    /// The Redis key of `client`'s budget (a tenant id longer than 64 bytes is hashed).
    fn key(&self, client: &Client) -> String {
        let prefix = &self.prefix;
        match client {
            Client::Instance => format!("{prefix}global"),
            Client::Ip(ip) => format!("{prefix}ip:{ip}"),
            Client::Tenant(tenant) if tenant.len() <= 64 => format!("{prefix}tenant:{tenant}"),
            Client::Tenant(tenant) => {
                let digest = Sha256::digest(tenant.as_bytes());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("{prefix}tenant-sha256:{hex}")
            }
        }
    }

    /// Counts one request of `client` in Redis: `Ok(Err(_))` when it is over the limit,
    /// `Err(_)` when Redis did not answer.
    pub async fn check(&self, client: &Client) -> Result<Result<(), Limited>, redis::RedisError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(self.key(client));
        invocation.arg(self.interval_us).arg(self.tolerance_us);
        let wait_us: u64 = invocation.invoke_async(&mut connection).await?;
        Ok(match wait_us {
            0 => Ok(()),
            us => Err(Limited {
                retry_after: Duration::from_micros(us),
            }),
        })
    }
}
