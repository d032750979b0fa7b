//! The rate limit (`[resilience] rate_limit`): `rps` requests per second sustained, up to
//! `burst` at once, counted for the whole instance (`per = "global"`), per client IP
//! (`per = "ip"`) or per tenant (`per = "tenant"`). The counting is governor's (GCRA).
//!
//! The limit holds per replica: three replicas of a service with `rps = 100` let 300 requests
//! a second through. docs/resilience.md says how to size it.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

/// What a rate limit counts requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitKey {
    /// One budget for the whole service instance.
    Global,
    /// One budget per client IP address (behind trusted proxies, the client's address from
    /// `X-Forwarded-For`).
    Ip,
    /// One budget per tenant (the tenant header; requests without one share a budget). The
    /// header is believed as sent: the service belongs behind what sets it (an authenticating
    /// gateway), or a client could give itself a fresh budget per request.
    Tenant,
    /// One budget per verified user. Users are not verified yet (authentication comes in a
    /// later release): counted per client IP until then, as `allframe check` warns.
    User,
}

/// How many requests pass. Constant data: the macro emits it from the service's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Requests per second sustained (at least 1).
    pub rps: u32,
    /// Requests allowed at once above the sustained rate (at least 1).
    pub burst: u32,
    /// What the budget is counted by.
    pub per: RateLimitKey,
}

/// A request over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded; try again in {} ms", retry_after.as_millis())]
pub struct Limited {
    /// When the budget has room for one more request.
    pub retry_after: Duration,
}

/// The budget a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// The instance's one budget (`per = "global"`).
    Instance,
    /// A client address.
    Ip(IpAddr),
    /// A tenant id (empty for requests without one).
    Tenant(Box<str>),
}

/// A rate limiter of one policy.
#[derive(Debug)]
pub struct RateLimiter {
    policy: RateLimitPolicy,
    counter: Counter,
}

#[derive(Debug)]
enum Counter {
    Instance(DefaultDirectRateLimiter),
    PerClient(DefaultKeyedRateLimiter<Client>),
}

impl RateLimiter {
    /// A limiter of `policy` (`rps` and `burst` of 0 count as 1).
    pub fn new(policy: RateLimitPolicy) -> Self {
        let rps = NonZeroU32::new(policy.rps).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(policy.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(rps).allow_burst(burst);
        let counter = match policy.per {
            RateLimitKey::Global => Counter::Instance(DefaultDirectRateLimiter::direct(quota)),
            RateLimitKey::Ip | RateLimitKey::Tenant | RateLimitKey::User => {
                Counter::PerClient(DefaultKeyedRateLimiter::keyed(quota))
            }
        };
        Self { policy, counter }
    }

    /// The policy.
    pub fn policy(&self) -> RateLimitPolicy {
        self.policy
    }

    /// Counts one request of `client` (ignored for a global limit), or says when to retry.
    pub fn check(&self, client: &Client) -> Result<(), Limited> {
        let (outcome, now) = match &self.counter {
            Counter::Instance(limiter) => (limiter.check(), limiter.clock().now()),
            Counter::PerClient(limiter) => (limiter.check_key(client), limiter.clock().now()),
        };
        outcome.map_err(|not_until| Limited {
            retry_after: not_until.wait_time_from(now),
        })
    }

    /// Forgets clients whose budget is full again, so the per-client table does not grow
    /// with every address ever seen; the HTTP layer calls it every few seconds.
    pub fn forget_idle_clients(&self) {
        if let Counter::PerClient(limiter) = &self.counter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Clients with a budget in use (0 for a global limit).
    pub fn tracked_clients(&self) -> usize {
        match &self.counter {
            Counter::Instance(_) => 0,
            Counter::PerClient(limiter) => limiter.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per: RateLimitKey) -> RateLimiter {
        RateLimiter::new(RateLimitPolicy {
            rps: 10,
            burst: 3,
            per,
        })
    }

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_sustained_rate() {
        let limiter = limiter(RateLimitKey::Global);
        for _ in 0..3 {
            limiter.check(&Client::Instance).expect("within the burst");
        }
        let limited = limiter.check(&Client::Instance).expect_err("over");
        assert!(
            limited.retry_after > Duration::from_millis(50)
                && limited.retry_after <= Duration::from_millis(100),
            "one request per 100 ms: {:?}",
            limited.retry_after
        );
        std::thread::sleep(limited.retry_after);
        limiter.check(&Client::Instance).expect("room again");
    }

    #[test]
    fn per_client_budgets_are_separate() {
        let limiter = limiter(RateLimitKey::Ip);
        let (a, b) = (
            Client::Ip("10.0.0.1".parse().expect("ip")),
            Client::Ip("10.0.0.2".parse().expect("ip")),
        );
        for _ in 0..3 {
            limiter.check(&a).expect("a's burst");
        }
        assert!(limiter.check(&a).is_err());
        limiter.check(&b).expect("b has its own budget");
        assert_eq!(limiter.tracked_clients(), 2);
    }
}
