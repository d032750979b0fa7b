//! [`RetryPolicy`] as a tower layer for HTTP clients: tower's own `Retry` middleware, driven by
//! [`HttpRetry`] — the policy's schedule, `Retry-After`, [`http_verdict`] and
//! `idempotent_only`.

use std::time::Duration;

use axum::http::{HeaderName, Request, Response};

use super::retry::{RetryPolicy, Verdict, http_verdict};

/// Retries one HTTP request as a [`RetryPolicy`] says: 429 and 503 after their `Retry-After`
/// (never sooner than the schedule), 500, 502, 504 and transport errors on the schedule,
/// nothing else; with `idempotent_only`, only safe methods and requests carrying the
/// idempotency key header. Cloned by tower's `Retry` for each request, so the attempts counted
/// are that request's.
#[derive(Debug, Clone)]
pub struct HttpRetry {
    policy: RetryPolicy,
    key_header: HeaderName,
    retries: u32,
}

impl HttpRetry {
    /// Retries as `policy` says; `key_header` names the idempotency key that makes an unsafe
    /// request retryable under `idempotent_only`.
    pub fn new(policy: RetryPolicy, key_header: HeaderName) -> Self {
        Self {
            policy,
            key_header,
            retries: 0,
        }
    }

    /// The layer: `ServiceBuilder::new().layer(HttpRetry::layer(policy, key_header))`.
    pub fn layer(policy: RetryPolicy, key_header: HeaderName) -> tower::retry::RetryLayer<Self> {
        tower::retry::RetryLayer::new(Self::new(policy, key_header))
    }

    /// The wait before the next attempt, or `None` when the answer is final or the attempts
    /// are spent.
    fn next_wait(&mut self, verdict: Verdict) -> Option<Duration> {
        let scheduled = self.policy.delays().nth(self.retries as usize)?;
        let wait = match verdict {
            Verdict::Final => return None,
            Verdict::Retry => scheduled,
            Verdict::RetryAfter(after) => scheduled.max(after),
        };
        if wait > Duration::from_millis(self.policy.max_interval_ms) {
            return None;
        }
        self.retries += 1;
        Some(wait)
    }
}

impl<B: Clone, R, E> tower::retry::Policy<Request<B>, Response<R>, E> for HttpRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut Request<B>,
        result: &mut Result<Response<R>, E>,
    ) -> Option<Self::Future> {
        if !self.policy.may_retry(
            request.method(),
            request.headers(),
            self.key_header.as_str(),
        ) {
            return None;
        }
        let verdict = match result {
            Ok(response) => http_verdict(response.status(), response.headers()),
            Err(_) => Verdict::Retry,
        };
        let wait = self.next_wait(verdict)?;
        tracing::debug!(
            attempt = self.retries,
            wait_ms = wait.as_millis() as u64,
            "retrying"
        );
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        let mut clone = Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.version_mut() = request.version();
        *clone.headers_mut() = request.headers().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::http::{Method, StatusCode, header};
    use tower::{ServiceBuilder, ServiceExt as _};

    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        initial_interval_ms: 1,
        max_interval_ms: 50,
        multiplier: 2.0,
        idempotent_only: true,
    };

    /// Calls a service answering `statuses` in turn (the last one from then on); returns the
    /// final status and how many calls it took.
    async fn call(statuses: &'static [u16], request: Request<String>) -> (StatusCode, u32) {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls);
        let inner = tower::service_fn(move |_: Request<String>| {
            let n = seen.fetch_add(1, Ordering::SeqCst) as usize;
            let status = statuses[n.min(statuses.len() - 1)];
            async move {
                let mut response = Response::new(String::new());
                *response.status_mut() = StatusCode::from_u16(status).expect("status");
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, "0".parse().expect("value"));
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let service = ServiceBuilder::new()
            .layer(HttpRetry::layer(
                POLICY,
                HeaderName::from_static("idempotency-key"),
            ))
            .service(inner);
        let response = service.oneshot(request).await.expect("infallible");
        (response.status(), calls.load(Ordering::SeqCst))
    }

    fn get() -> Request<String> {
        Request::get("http://provider/charges")
            .body(String::new())
            .expect("request")
    }

    fn post(key: Option<&str>) -> Request<String> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("http://provider/charges");
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        builder.body("{}".to_owned()).expect("request")
    }

    #[tokio::test]
    async fn refusals_are_retried_until_one_succeeds_and_no_further() {
        assert_eq!(call(&[503, 429, 200], get()).await, (StatusCode::OK, 3));
        assert_eq!(
            call(&[502, 201], post(Some("k-1"))).await,
            (StatusCode::CREATED, 2)
        );
    }

    #[tokio::test]
    async fn the_budget_ends_the_retries_and_a_4xx_is_never_retried() {
        assert_eq!(
            call(&[503], get()).await,
            (StatusCode::SERVICE_UNAVAILABLE, 3)
        );
        assert_eq!(call(&[404, 200], get()).await, (StatusCode::NOT_FOUND, 1));
    }

    #[tokio::test]
    async fn an_unsafe_request_without_a_key_is_not_retried_under_idempotent_only() {
        assert_eq!(
            call(&[503, 200], post(None)).await,
            (StatusCode::SERVICE_UNAVAILABLE, 1)
        );
    }
}
