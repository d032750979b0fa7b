//! The gRPC server of a service (feature `grpc`): the user's tonic routes plus the standard
//! `grpc.health.v1.Health` service, served by the runtime's own accept loop over HTTP/2.
//!
//! Health reports `SERVING` for the whole server (service name `""`) from start-up and
//! `NOT_SERVING` once shutdown begins. Every request message is checked against the server's
//! limit (`ALLFRAME_GRPC_MAX_MESSAGE_BYTES`, 4 MiB by default) as it arrives, before any service
//! decodes it: a larger one is refused with `RESOURCE_EXHAUSTED`. This module only assembles
//! the router; the codec generated services use is [`crate::grpc::ProtoCodec`].

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The length of a gRPC message's prefix: a compression flag and a big-endian `u32` length.
const PREFIX_LEN: usize = 5;

/// The health reporter of a running gRPC server.
#[derive(Debug, Clone)]
pub(crate) struct GrpcHealth {
    reporter: HealthReporter,
}

impl GrpcHealth {
    /// Marks the whole server `NOT_SERVING`.
    pub(crate) async fn set_not_serving(&self) {
        self.reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
    }
}

/// The router serving `routes` and the health service, with request tracing, refusing request
/// messages over `max_message_bytes`.
pub(crate) async fn router(
    routes: Routes,
    max_message_bytes: usize,
    limits: Option<crate::resilience::InboundLimitsLayer>,
) -> (axum::Router, GrpcHealth) {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    // The health service is routed first and the user's routes are the fallback, so a user
    // service of the same name cannot make route registration panic; unknown methods still
    // answer UNIMPLEMENTED through the user's `Routes` fallback. The inbound limits (when
    // declared) wrap the user's services only: health checks are never limited.
    let user = routes.into_axum_router();
    let user = match limits {
        Some(limits) => user.layer(limits),
        None => user,
    };
    let router = Routes::new(health_service)
        .into_axum_router()
        .fallback_service(user)
        .layer(tower::util::MapRequestLayer::new(
            move |request: Request| {
                request.map(|body| Body::new(MessageLimit::new(body, max_message_bytes)))
            },
        ))
        .layer(
            TraceLayer::new_for_grpc()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        );
    (router, GrpcHealth { reporter })
}

/// What generated code registers: `S::grpc` as a plain function pointer.
pub fn grpc_routes<S: crate::GrpcApi>(app: &crate::App<S>) -> Routes {
    S::grpc(app)
}

/// A request body that fails with `RESOURCE_EXHAUSTED` as soon as a message prefix announces
/// more than `limit` bytes; the bytes themselves pass through untouched. tonic turns the
/// body's error into the call's status.
struct MessageLimit {
    inner: Body,
    limit: usize,
    /// The prefix read so far of the next message.
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl MessageLimit {
    fn new(inner: Body, limit: usize) -> Self {
        Self {
            inner,
            limit,
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
            remaining: 0,
        }
    }

    /// Follows the message boundaries through `data`, refusing the first message over the limit.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skipped = self.remaining.min(data.len());
                self.remaining -= skipped;
                data = &data[skipped..];
                continue;
            }
            let taken = (PREFIX_LEN - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + taken].copy_from_slice(&data[..taken]);
            self.prefix_len += taken;
            data = &data[taken..];
            if self.prefix_len == PREFIX_LEN {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                let length =
                    usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
                if length > self.limit {
                    return Err(Status::resource_exhausted(format!(
                        "a request message of {length} bytes is over this server's limit of {} bytes",
                        self.limit
                    )));
                }
                self.remaining = length;
            }
        }
        Ok(())
    }
}

impl HttpBody for MessageLimit {
    type Data = Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = this.scan(data)
                {
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => Poll::Ready(Some(Err(Box::new(error)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(length: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes
    }

    #[test]
    fn messages_are_followed_across_chunks_and_the_first_over_the_limit_is_refused() {
        let mut limit = MessageLimit::new(Body::empty(), 10);
        let mut stream = framed(10);
        stream.extend_from_slice(&[7; 10]);
        stream.extend_from_slice(&framed(0));
        stream.extend_from_slice(&framed(3));
        stream.extend_from_slice(&[1, 2, 3]);
        // One byte at a time: prefixes and payloads split anywhere.
        for byte in &stream {
            limit
                .scan(std::slice::from_ref(byte))
                .expect("within the limit");
        }
        let over = framed(11);
        let status = limit.scan(&over).expect_err("11 bytes is over 10");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }
}
