//! Panic catching for the user's routes: a panic in a handler (while it is called or polled)
//! becomes the 500 problem of [`super::panic_response`], as an axum response, so the layers
//! around it (the idempotency layer releasing the key, the metrics counting the 500) see an
//! ordinary answer. Written here rather than taken from tower-http because its layer re-boxes
//! every answer's body, on every request, panic or not.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};

/// The layer: see the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CatchPanicLayer;

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner }
    }
}

/// The service [`CatchPanicLayer`] makes.
#[derive(Debug, Clone)]
pub(crate) struct CatchPanic<S> {
    inner: S,
}

impl<S> tower::Service<Request> for CatchPanic<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, Caught<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(inner) => Either::Right(Caught { inner }),
            Err(panic) => Either::Left(ready(Ok(super::panic_response(panic)))),
        }
    }
}

pin_project_lite::pin_project! {
    /// A handler's answer being computed; a panic while polling it is the 500 problem.
    pub(crate) struct Caught<F> {
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for Caught<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        // A future that panicked is never polled again: the answer below ends it.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Ok(super::panic_response(panic))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::{Layer as _, ServiceExt as _};

    use super::*;

    fn request() -> Request {
        Request::new(Body::empty())
    }

    #[tokio::test]
    async fn a_panic_while_called_or_polled_is_a_500_and_answers_pass_through() {
        let when_called = CatchPanicLayer.layer(tower::service_fn(
            |_: Request| -> Ready<Result<Response, Infallible>> { panic!("in call") },
        ));
        let when_polled = CatchPanicLayer.layer(tower::service_fn(|_: Request| async {
            if true {
                panic!("in poll");
            }
            Ok::<Response, Infallible>(Response::new(Body::empty()))
        }));
        let fine = CatchPanicLayer.layer(tower::service_fn(|_: Request| async {
            Ok::<_, Infallible>(axum::response::IntoResponse::into_response(
                StatusCode::ACCEPTED,
            ))
        }));
        let Ok(called) = when_called.oneshot(request()).await;
        let Ok(polled) = when_polled.oneshot(request()).await;
        let Ok(answered) = fine.oneshot(request()).await;
        assert_eq!(called.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(polled.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answered.status(), StatusCode::ACCEPTED);
    }
}
