//! The gRPC side of a service (feature `grpc`): the user's tonic routes plus the standard
//! `grpc.health.v1.Health` service, served by the runtime's own accept loop over HTTP/2.
//!
//! Health reports `SERVING` for the whole server (service name `""`) from start-up and
//! `NOT_SERVING` once shutdown begins. This module only assembles the router.

use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

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

/// The router serving `routes` and the health service, with request tracing.
pub(crate) async fn router(routes: Routes) -> (axum::Router, GrpcHealth) {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    // The health service is routed first and the user's routes are the fallback, so a user
    // service of the same name cannot make route registration panic; unknown methods still
    // answer UNIMPLEMENTED through the user's `Routes` fallback.
    let router = Routes::new(health_service)
        .into_axum_router()
        .fallback_service(routes.into_axum_router())
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
