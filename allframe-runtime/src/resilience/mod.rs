//! Resilience policies (`[resilience]`, overridden per service): a [`CircuitBreaker`], a
//! [`RetryPolicy`], a [`Bulkhead`] and a [`RateLimiter`], each usable around any async call;
//! on the REST routes of a service that declares a bulkhead or a rate limit, the
//! [`InboundLimitsLayer`] applies them as a tower layer, and [`CircuitBreakerLayer`] and
//! [`HttpRetry::layer`] put a breaker and retries around a client's tower service.
//!
//! State changes are logged and exported: `allframe_breaker_state{target}` (0 closed, 1 open,
//! 2 half-open) and `allframe_resilience_rejections_total{policy, target}`. See
//! docs/resilience.md for what each policy does and which parts are hand-written and why.

mod breaker;
mod breaker_layer;
mod bulkhead;
mod inbound;
mod metrics;
mod rate_limit;
mod retry;
mod retry_layer;
#[cfg(feature = "redis")]
mod shared_limit;

pub use breaker::{BreakerError, BreakerOpen, BreakerPolicy, BreakerState, CircuitBreaker, Permit};
pub use breaker_layer::{Breaking, CircuitBreakerLayer};
pub use bulkhead::{Bulkhead, BulkheadFull, BulkheadPolicy, Slot};
pub(crate) use inbound::LimitsComponent;
pub use inbound::{InboundLimits, InboundLimitsLayer, Limited, TrustedProxies};
pub use metrics::ResilienceMetrics;
pub use rate_limit::{Client, Limited as RateLimited, RateLimitKey, RateLimitPolicy, RateLimiter};
pub use retry::{RetryPolicy, Verdict, http_verdict, retry_after};
pub use retry_layer::HttpRetry;
#[cfg(feature = "redis")]
pub use shared_limit::{KEY_PREFIX as SHARED_LIMIT_KEY_PREFIX, SharedRateLimit};
