//! How a consumer retries: `max_retries`, `retry_backoff` and `dlq` of `[services.consumer]`,
//! with the intervals of the service's retry policy (`[resilience] retry`).

use std::time::Duration;

use crate::messaging::RetrySettings;

/// How the wait between attempts grows (`retry_backoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backoff {
    /// `initial × multiplier^(n−1)` after the n-th failure.
    #[default]
    Exponential,
    /// `initial × n` after the n-th failure.
    Linear,
    /// `initial` after every failure.
    Fixed,
}

/// A consumer's retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt: a message is attempted `max_retries + 1` times before
    /// it becomes a dead letter.
    pub max_retries: u32,
    /// How the wait grows.
    pub backoff: Backoff,
    /// The intervals: `initial_interval_ms`, `max_interval_ms` (the cap) and `multiplier`.
    pub intervals: RetrySettings,
    /// Whether exhausted messages become dead letters; without, they are retried forever at
    /// the capped interval.
    pub dlq: bool,
}

impl RetryPolicy {
    /// Three retries, exponential, the built-in intervals (100 ms doubling up to 10 s), with
    /// dead letters.
    pub const DEFAULT: Self = Self {
        max_retries: 3,
        backoff: Backoff::Exponential,
        intervals: RetrySettings::DEFAULT,
        dlq: true,
    };

    /// The wait after `failures` failed attempts (1 = the first), with ±20 % jitter, never
    /// above the cap nor below 1 ms.
    pub fn delay(&self, failures: u32) -> Duration {
        let initial = self.intervals.initial_interval_ms as f64;
        let base = match self.backoff {
            Backoff::Exponential => return self.intervals.jittered(failures),
            Backoff::Linear => initial * f64::from(failures.max(1)),
            Backoff::Fixed => initial,
        };
        let factor = 0.8 + 0.4 * fastrand::f64();
        let millis = (base * factor)
            .min(self.intervals.max_interval_ms.max(1) as f64)
            .max(1.0);
        Duration::from_millis(millis as u64)
    }

    /// The longest wait: the cap of the intervals.
    pub fn ceiling(&self) -> Duration {
        Duration::from_millis(self.intervals.max_interval_ms.max(1))
    }

    /// How long the bus should let a delivery stay unacknowledged before handing it out again,
    /// where it does so on its own (NATS's `ack_wait`): the longest wait between attempts plus
    /// [`ATTEMPT_ALLOWANCE`] for the attempt. The consumer holds a delivery while it waits to
    /// retry it; with less, the bus would give the message to another member meanwhile.
    pub fn redelivery_after(&self) -> Duration {
        self.ceiling() + ATTEMPT_ALLOWANCE
    }
}

/// What [`RetryPolicy::redelivery_after`] allows one attempt (the handler and its commit).
pub const ATTEMPT_ALLOWANCE: Duration = Duration::from_secs(30);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            backoff,
            intervals: RetrySettings {
                max_attempts: 3,
                initial_interval_ms: 100,
                max_interval_ms: 1_000,
                multiplier: 2.0,
            },
            ..RetryPolicy::DEFAULT
        }
    }

    fn within(delay: Duration, expected_ms: f64) -> bool {
        let ms = delay.as_millis() as f64;
        ms >= (expected_ms * 0.8).floor() && ms <= (expected_ms * 1.2).ceil()
    }

    #[test]
    fn each_backoff_grows_as_named_and_stays_under_the_cap() {
        for _ in 0..50 {
            let exponential = policy(Backoff::Exponential);
            assert!(within(exponential.delay(1), 100.0));
            assert!(within(exponential.delay(3), 400.0));
            assert!(exponential.delay(10) <= Duration::from_secs(1));
            let linear = policy(Backoff::Linear);
            assert!(within(linear.delay(1), 100.0));
            assert!(within(linear.delay(3), 300.0));
            assert!(linear.delay(50) <= Duration::from_secs(1));
            let fixed = policy(Backoff::Fixed);
            assert!(within(fixed.delay(1), 100.0));
            assert!(within(fixed.delay(7), 100.0));
        }
    }
}
