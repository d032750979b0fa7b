//! Retries with exponential backoff and jitter (`[resilience] retry`): `max_attempts` in all,
//! delays from `initial_interval_ms` growing by `multiplier` up to `max_interval_ms` (the
//! schedule is backon's, with jitter), a server's `Retry-After` winning over the schedule.
//!
//! What is worth another attempt is the caller's [`Verdict`]; for HTTP answers
//! [`http_verdict`] says: 429 and 503 again after their `Retry-After`, 500, 502 and 504
//! again on the schedule, nothing else (never another 4xx). With `idempotent_only`,
//! [`RetryPolicy::may_retry`] lets only safe methods and requests carrying an idempotency key
//! be retried.

use std::future::Future;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode, header};
use backon::BackoffBuilder as _;

/// How a call is retried. Constant data: the macro emits it from the service's retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry, in ms.
    pub initial_interval_ms: u64,
    /// Upper bound of a delay, in ms (a `Retry-After` above it ends the retries).
    pub max_interval_ms: u64,
    /// Growth of the delay per retry (below 1 counts as 1).
    pub multiplier: f64,
    /// Retry only safe methods and requests carrying an idempotency key.
    pub idempotent_only: bool,
}

impl RetryPolicy {
    /// The built-in policy: 3 attempts, 100 ms doubling up to 10 s, idempotent calls only.
    pub const DEFAULT: Self = Self {
        max_attempts: 3,
        initial_interval_ms: 100,
        max_interval_ms: 10_000,
        multiplier: 2.0,
        idempotent_only: true,
    };

    /// The delays between attempts: `max_attempts - 1` of them, jittered, none above
    /// `max_interval_ms`.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let max = Duration::from_millis(self.max_interval_ms);
        let factor = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier as f32
        } else {
            1.0
        };
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.initial_interval_ms).min(max))
            .with_max_delay(max)
            .with_factor(factor)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
            .with_jitter()
            .build()
            .map(move |delay| delay.min(max))
    }

    /// Whether a request may be retried at all: always without `idempotent_only`; with it,
    /// only safe methods (GET, HEAD, OPTIONS, TRACE) or requests carrying `key_header`.
    pub fn may_retry(&self, method: &Method, headers: &HeaderMap, key_header: &str) -> bool {
        !self.idempotent_only || method.is_safe() || headers.contains_key(key_header)
    }

    /// Runs `attempt` (given the attempt number, 1 first) until `verdict` says its output is
    /// final or the attempts are spent; returns the last output. A `Retry-After` delays the
    /// next attempt to at least that long; one longer than `max_interval_ms` ends the retries
    /// with that output.
    pub async fn run<T, F, Fut>(&self, mut attempt: F, verdict: impl Fn(&T) -> Verdict) -> T
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = T>,
    {
        let max = Duration::from_millis(self.max_interval_ms);
        let mut delays = self.delays();
        let mut number = 1;
        loop {
            let output = attempt(number).await;
            let wait = match verdict(&output) {
                Verdict::Final => return output,
                Verdict::Retry => delays.next(),
                // The server's delay, never shorter than the schedule's: a `Retry-After: 0`
                // from an overloaded upstream must not turn into retries back to back.
                Verdict::RetryAfter(after) => delays.next().map(|scheduled| scheduled.max(after)),
            };
            match wait {
                Some(wait) if wait <= max => {
                    tracing::debug!(
                        attempt = number,
                        wait_ms = wait.as_millis() as u64,
                        "retrying"
                    );
                    tokio::time::sleep(wait).await;
                    number += 1;
                }
                _ => return output,
            }
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What an attempt's output calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep this output: it succeeded, or another attempt would fail the same way.
    Final,
    /// Try again after the schedule's next delay.
    Retry,
    /// Try again after this delay (the server's `Retry-After`).
    RetryAfter(Duration),
}

/// The verdict on an HTTP answer: 429 and 503 are retried after their `Retry-After` (on the
/// schedule without one), 500, 502 and 504 on the schedule; everything else is final.
pub fn http_verdict(status: StatusCode, headers: &HeaderMap) -> Verdict {
    match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            retry_after(headers).map_or(Verdict::Retry, Verdict::RetryAfter)
        }
        StatusCode::INTERNAL_SERVER_ERROR
        | StatusCode::BAD_GATEWAY
        | StatusCode::GATEWAY_TIMEOUT => Verdict::Retry,
        _ => Verdict::Final,
    }
}

/// A `Retry-After` header as a delay: whole seconds, or an HTTP date (a date in the past is no
/// delay).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(date.timestamp()).ok()?);
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::http::HeaderValue;

    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        initial_interval_ms: 100,
        max_interval_ms: 1_000,
        multiplier: 3.0,
        idempotent_only: true,
    };

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(retry_after).expect("value"),
        );
        headers
    }

    #[test]
    fn delays_grow_by_the_multiplier_with_jitter_and_stay_under_the_cap() {
        for _ in 0..50 {
            let delays: Vec<Duration> = POLICY.delays().collect();
            assert_eq!(delays.len(), 3, "4 attempts, 3 waits");
            let bounds = [(100, 200), (300, 600), (900, 1_000)];
            for (delay, (low, high)) in delays.iter().zip(bounds) {
                let ms = delay.as_millis() as u64;
                assert!((low..=high).contains(&ms), "{ms} ms not in {low}..={high}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_success_and_stops_at_the_budget() {
        let calls = AtomicU32::new(0);
        let output = POLICY
            .run(
                |n| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n < 3 {
                            StatusCode::BAD_GATEWAY
                        } else {
                            StatusCode::OK
                        }
                    }
                },
                |status| http_verdict(*status, &HeaderMap::new()),
            )
            .await;
        assert_eq!((output, calls.load(Ordering::SeqCst)), (StatusCode::OK, 3));

        calls.store(0, Ordering::SeqCst);
        let output = POLICY
            .run(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { StatusCode::GATEWAY_TIMEOUT }
                },
                |status| http_verdict(*status, &HeaderMap::new()),
            )
            .await;
        assert_eq!(output, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "max_attempts in all");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_other_client_errors_are_final() {
        let started = tokio::time::Instant::now();
        let calls = AtomicU32::new(0);
        let output = POLICY
            .run(
                |n| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move { if n == 1 { (429, "1") } else { (200, "") } }
                },
                |(status, after)| {
                    http_verdict(
                        StatusCode::from_u16(*status).expect("status"),
                        &headers(after),
                    )
                },
            )
            .await;
        assert_eq!(output.0, 200);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "waited Retry-After, not 100 ms"
        );

        for status in [400, 401, 404, 409, 422, 501] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(
                http_verdict(status, &HeaderMap::new()),
                Verdict::Final,
                "{status}"
            );
        }
        let started = tokio::time::Instant::now();
        let zero = POLICY
            .run(
                |n| async move { if n < 3 { 503 } else { 200 } },
                |status| match status {
                    503 => Verdict::RetryAfter(Duration::ZERO),
                    _ => Verdict::Final,
                },
            )
            .await;
        assert_eq!(zero, 200);
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "Retry-After: 0 keeps the schedule's delays (100 ms, then 300 ms): {:?}",
            started.elapsed()
        );
        let too_long = POLICY
            .run(
                |_| async { 503 },
                |_| Verdict::RetryAfter(Duration::from_secs(60)),
            )
            .await;
        assert_eq!(
            too_long, 503,
            "a Retry-After past max_interval_ms ends the retries"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        let past = retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(past, Some(Duration::ZERO));
        let in_30_s = std::time::SystemTime::now() + Duration::from_secs(30);
        let secs = in_30_s
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let soon = chrono::DateTime::from_timestamp(secs as i64, 0)
            .expect("date")
            .to_rfc2822();
        let wait = retry_after(&headers(&soon)).expect("date");
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        assert_eq!(retry_after(&headers("soon")), None);
    }

    #[test]
    fn idempotent_only_retries_safe_methods_and_keyed_requests() {
        let keyed = {
            let mut headers = HeaderMap::new();
            headers.insert("idempotency-key", HeaderValue::from_static("k1"));
            headers
        };
        let none = HeaderMap::new();
        assert!(POLICY.may_retry(&Method::GET, &none, "Idempotency-Key"));
        assert!(!POLICY.may_retry(&Method::POST, &none, "Idempotency-Key"));
        assert!(POLICY.may_retry(&Method::POST, &keyed, "Idempotency-Key"));
        let any = RetryPolicy {
            idempotent_only: false,
            ..POLICY
        };
        assert!(any.may_retry(&Method::POST, &none, "Idempotency-Key"));
    }
}
