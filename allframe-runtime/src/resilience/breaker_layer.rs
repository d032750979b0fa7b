//! The circuit breaker as a tower layer, for clients (a `tonic` channel, an HTTP client built
//! on tower): each call asks the breaker first, and its outcome is reported when the response
//! future ends (dropped early, it counts as cancelled).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::breaker::{BreakerOpen, CircuitBreaker, Permit};
use crate::BoxError;

/// Wraps a service in a [`CircuitBreaker`]. `is_failure` decides which outcomes count against
/// the circuit (for HTTP: transport errors and 5xx answers). A refused call fails with
/// [`super::BreakerOpen`] (inside the [`BoxError`]) without reaching the inner service.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C> {
    breaker: CircuitBreaker,
    is_failure: C,
}

impl<C> CircuitBreakerLayer<C> {
    /// A layer reporting to `breaker` (clones of one breaker share its state).
    pub fn new(breaker: CircuitBreaker, is_failure: C) -> Self {
        Self {
            breaker,
            is_failure,
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = Breaking<S, C>;

    fn layer(&self, inner: S) -> Breaking<S, C> {
        Breaking {
            inner,
            breaker: self.breaker.clone(),
            is_failure: self.is_failure.clone(),
            admission: Admission::Undecided,
        }
    }
}

/// The service [`CircuitBreakerLayer`] builds. The breaker decides in `poll_ready`: an open
/// circuit answers "ready" at once without polling the inner service (whose readiness may
/// wait on the very upstream that is failing), and the call then fails fast with
/// [`super::BreakerOpen`], as tower's load-shed does; an admitted call holds its permit from
/// `poll_ready` to the end of its response future.
#[derive(Debug)]
pub struct Breaking<S, C> {
    inner: S,
    breaker: CircuitBreaker,
    is_failure: C,
    admission: Admission,
}

/// What `poll_ready` decided for the next call.
#[derive(Debug, Default)]
enum Admission {
    /// Nothing yet.
    #[default]
    Undecided,
    /// Admitted: the permit, waiting for the inner service to be ready (or ready already).
    Admitted(Permit),
    /// Refused by the open circuit: the next call fails with this.
    Refused(BreakerOpen),
}

// A clone is a new handle on the same breaker and inner service, not yet readied (tower's
// convention): it does not share this one's admission.
impl<S: Clone, C: Clone> Clone for Breaking<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            is_failure: self.is_failure.clone(),
            admission: Admission::Undecided,
        }
    }
}

impl<S, C, Request> Service<Request> for Breaking<S, C>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    C: Fn(&Result<S::Response, S::Error>) -> bool + Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if let Admission::Undecided = self.admission {
            self.admission = match self.breaker.try_acquire() {
                Ok(permit) => Admission::Admitted(permit),
                Err(open) => Admission::Refused(open),
            };
        }
        match &self.admission {
            Admission::Refused(_) => Poll::Ready(Ok(())),
            _ => self.inner.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let permit = match std::mem::take(&mut self.admission) {
            Admission::Admitted(permit) => permit,
            Admission::Refused(open) => return Box::pin(std::future::ready(Err(open.into()))),
            // Called without `poll_ready` (a contract breach of the caller's): admit here.
            Admission::Undecided => match self.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(open) => return Box::pin(std::future::ready(Err(open.into()))),
            },
        };
        let call = self.inner.call(request);
        let is_failure = self.is_failure.clone();
        Box::pin(async move {
            let outcome = call.await;
            if is_failure(&outcome) {
                permit.failure();
            } else {
                permit.success();
            }
            outcome.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tower::ServiceExt as _;

    use super::*;
    use crate::resilience::{BreakerPolicy, BreakerState};

    #[tokio::test]
    async fn an_open_circuit_refuses_without_calling_the_inner_service() {
        let calls = Arc::new(AtomicU32::new(0));
        let inner = tower::service_fn({
            let calls = calls.clone();
            move |status: u16| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, BoxError>(status) }
            }
        });
        let policy = BreakerPolicy {
            failure_threshold: 2,
            success_threshold: 1,
            timeout_ms: 60_000,
        };
        let breaker = CircuitBreaker::new("upstream", policy);
        let layer = CircuitBreakerLayer::new(breaker.clone(), |outcome: &Result<u16, BoxError>| {
            outcome.as_ref().map_or(true, |status| *status >= 500)
        });
        let service = layer.layer(inner);
        assert_eq!(service.clone().oneshot(200).await.expect("ok"), 200);
        for _ in 0..2 {
            assert_eq!(service.clone().oneshot(503).await.expect("answered"), 503);
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let refused = service.clone().oneshot(200).await.expect_err("open");
        assert!(refused.downcast_ref::<BreakerOpen>().is_some(), "{refused}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "the refused call never went out"
        );
    }

    /// A service that is never ready, like a pool whose upstream is down.
    #[derive(Clone)]
    struct NeverReady;

    impl Service<u16> for NeverReady {
        type Response = u16;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u16, BoxError>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Pending
        }

        fn call(&mut self, _request: u16) -> Self::Future {
            panic!("called before it was ready")
        }
    }

    #[tokio::test]
    async fn an_open_circuit_fails_fast_even_when_the_inner_service_is_not_ready() {
        let policy = BreakerPolicy {
            failure_threshold: 1,
            success_threshold: 1,
            timeout_ms: 60_000,
        };
        let breaker = CircuitBreaker::new("upstream", policy);
        let layer = CircuitBreakerLayer::new(breaker.clone(), |outcome: &Result<u16, BoxError>| {
            outcome.is_err()
        });
        let mut service = layer.layer(NeverReady);
        // Closed: readiness is the inner service's, which never comes.
        let waited = tokio::time::timeout(Duration::from_millis(50), service.ready()).await;
        assert!(
            waited.is_err(),
            "a closed circuit waits for the inner service"
        );
        drop(service);

        breaker.try_acquire().expect("closed").failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        let refused =
            tokio::time::timeout(Duration::from_secs(1), layer.layer(NeverReady).oneshot(200))
                .await
                .expect("an open circuit answers at once")
                .expect_err("refused");
        assert!(refused.downcast_ref::<BreakerOpen>().is_some(), "{refused}");
    }
}
