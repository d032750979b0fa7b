//! Resilience policies: `[resilience]` gives the defaults, a service's own tables override them
//! field by field (see [`crate::resolve`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::choice::choice;

/// `circuit_breaker = { failure_threshold, success_threshold, timeout_ms }`; omitted fields inherit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: Option<u32>,
    /// Consecutive successes in half-open state that close it again.
    pub success_threshold: Option<u32>,
    /// How long the circuit stays open before a trial call, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// `retry = { max_attempts, initial_interval_ms, max_interval_ms, multiplier, idempotent_only }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in total, the first included.
    pub max_attempts: Option<u32>,
    /// Delay before the first retry, in milliseconds.
    pub initial_interval_ms: Option<u64>,
    /// Upper bound of the delay, in milliseconds.
    pub max_interval_ms: Option<u64>,
    /// Growth factor of the delay between attempts.
    pub multiplier: Option<f64>,
    /// Retry only idempotent operations (safe methods or requests with an idempotency key).
    pub idempotent_only: Option<bool>,
}

/// `bulkhead = { max_concurrent, max_queue }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkheadConfig {
    /// Calls allowed to run at once.
    pub max_concurrent: Option<u32>,
    /// Calls allowed to wait for a slot; beyond that they are rejected.
    pub max_queue: Option<u32>,
}

choice! {
    /// What a rate limit counts requests by.
    pub enum RateLimitKey {
        /// One budget for the whole service instance.
        Global = "global",
        /// One budget per authenticated user.
        User = "user",
        /// One budget per client IP address.
        Ip = "ip",
        /// One budget per tenant.
        Tenant = "tenant",
    }
}

/// `rate_limit = { rps, burst, per }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub rps: Option<u32>,
    /// Requests allowed above the sustained rate in a burst.
    pub burst: Option<u32>,
    /// What the budget is counted by (default `global`).
    pub per: Option<RateLimitKey>,
}

/// `[resilience]`: the defaults every service starts from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resilience {
    /// Default circuit breaker.
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Default retry policy.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Default bulkhead; without one (here or in the service) requests are not limited.
    pub bulkhead: Option<BulkheadConfig>,
    /// Default inbound rate limit; without one (here or in the service) requests are not
    /// limited.
    pub rate_limit: Option<RateLimitConfig>,
}

/// A circuit breaker with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CircuitBreakerPolicy {
    /// See [`CircuitBreakerConfig::failure_threshold`].
    pub failure_threshold: u32,
    /// See [`CircuitBreakerConfig::success_threshold`].
    pub success_threshold: u32,
    /// See [`CircuitBreakerConfig::timeout_ms`].
    pub timeout_ms: u64,
}

/// A retry policy with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// See [`RetryConfig::max_attempts`].
    pub max_attempts: u32,
    /// See [`RetryConfig::initial_interval_ms`].
    pub initial_interval_ms: u64,
    /// See [`RetryConfig::max_interval_ms`].
    pub max_interval_ms: u64,
    /// See [`RetryConfig::multiplier`].
    pub multiplier: f64,
    /// See [`RetryConfig::idempotent_only`].
    pub idempotent_only: bool,
}

/// A bulkhead with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BulkheadPolicy {
    /// See [`BulkheadConfig::max_concurrent`].
    pub max_concurrent: u32,
    /// See [`BulkheadConfig::max_queue`].
    pub max_queue: u32,
}

/// A rate limit with every value decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimitPolicy {
    /// See [`RateLimitConfig::rps`].
    pub rps: u32,
    /// See [`RateLimitConfig::burst`].
    pub burst: u32,
    /// See [`RateLimitConfig::per`].
    pub per: RateLimitKey,
}

/// The resilience settings in effect for one service.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResiliencePolicy {
    /// Circuit breaker for outbound calls.
    pub circuit_breaker: CircuitBreakerPolicy,
    /// The service's retry policy (`[resilience] retry`, then the service's `retry`): a saga's
    /// steps, a consumer's redeliveries, the outbox relay's publish backoff.
    pub retry: RetryPolicy,
    /// The retry policy of provider calls (`[services.integrations] retry` over `retry`).
    pub call_retry: RetryPolicy,
    /// Concurrency limit for inbound requests, when declared (`[resilience]` or the
    /// service's own table; fields not given there take the built-in values).
    pub bulkhead: Option<BulkheadPolicy>,
    /// Inbound rate limit, when declared (as for `bulkhead`).
    pub rate_limit: Option<RateLimitPolicy>,
}

/// Built-in values used when neither the service nor `[resilience]` sets a field.
pub mod builtin {
    /// Default [`super::CircuitBreakerPolicy`].
    pub const CIRCUIT_BREAKER: super::CircuitBreakerPolicy = super::CircuitBreakerPolicy {
        failure_threshold: 5,
        success_threshold: 3,
        timeout_ms: 30_000,
    };
    /// Default [`super::RetryPolicy`].
    pub const RETRY: super::RetryPolicy = super::RetryPolicy {
        max_attempts: 3,
        initial_interval_ms: 100,
        max_interval_ms: 10_000,
        multiplier: 2.0,
        idempotent_only: true,
    };
    /// Default [`super::BulkheadPolicy`].
    pub const BULKHEAD: super::BulkheadPolicy = super::BulkheadPolicy {
        max_concurrent: 100,
        max_queue: 50,
    };
    /// Default [`super::RateLimitPolicy`].
    pub const RATE_LIMIT: super::RateLimitPolicy = super::RateLimitPolicy {
        rps: 1000,
        burst: 100,
        per: super::RateLimitKey::Global,
    };
}

impl CircuitBreakerConfig {
    /// Layers `self` over `base`: fields set here win.
    pub fn over(&self, base: CircuitBreakerPolicy) -> CircuitBreakerPolicy {
        CircuitBreakerPolicy {
            failure_threshold: self.failure_threshold.unwrap_or(base.failure_threshold),
            success_threshold: self.success_threshold.unwrap_or(base.success_threshold),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
        }
    }
}

impl RetryConfig {
    /// Layers `self` over `base`: fields set here win.
    pub fn over(&self, base: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_interval_ms: self.initial_interval_ms.unwrap_or(base.initial_interval_ms),
            max_interval_ms: self.max_interval_ms.unwrap_or(base.max_interval_ms),
            multiplier: self.multiplier.unwrap_or(base.multiplier),
            idempotent_only: self.idempotent_only.unwrap_or(base.idempotent_only),
        }
    }
}

impl BulkheadConfig {
    /// Layers `self` over `base`: fields set here win.
    pub fn over(&self, base: BulkheadPolicy) -> BulkheadPolicy {
        BulkheadPolicy {
            max_concurrent: self.max_concurrent.unwrap_or(base.max_concurrent),
            max_queue: self.max_queue.unwrap_or(base.max_queue),
        }
    }
}

impl RateLimitConfig {
    /// Layers `self` over `base`: fields set here win.
    pub fn over(&self, base: RateLimitPolicy) -> RateLimitPolicy {
        RateLimitPolicy {
            rps: self.rps.unwrap_or(base.rps),
            burst: self.burst.unwrap_or(base.burst),
            per: self.per.unwrap_or(base.per),
        }
    }
}
