//! The gRPC server (feature `grpc`): a service registering gRPC routes gets the standard
//! `grpc.health.v1` service reporting SERVING, next to its REST server; messages over the
//! server's limit are RESOURCE_EXHAUSTED and undecodable ones INVALID_ARGUMENT.
#![cfg(all(feature = "grpc", feature = "sqlite"))]

use crate::launch_env::{stateless_settings, test_env};
use allframe_runtime::__private::tonic_health::pb::HealthCheckRequest;
use allframe_runtime::__private::tonic_health::pb::health_check_response::ServingStatus;
use allframe_runtime::__private::tonic_health::pb::health_client::HealthClient;
use allframe_runtime::__private::{
    InboundLimits, Launcher, LogFormat, RateLimitKey, RateLimitPolicy, RunningService,
    ServiceSettings, grpc_routes,
};
use allframe_runtime::axum::http;
use allframe_runtime::grpc::ProtoCodec;
use allframe_runtime::tonic::service::Routes;
use allframe_runtime::tonic::{Code, Request, Response, Status};
use allframe_runtime::{App, BoxError, Ctx, GrpcApi, RestApi, Router, Service};

static SETTINGS: ServiceSettings = ServiceSettings {
    grpc_port: Some(9090),
    logging: LogFormat::Structured,
    declared_database: "sqlite",
    ..stateless_settings("shop", "grpc-service")
};

struct GrpcService;

impl Service for GrpcService {
    async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for GrpcService {
    fn routes() -> Router<Self> {
        Router::new()
    }
}

impl GrpcApi for GrpcService {
    fn grpc(_app: &App<Self>) -> Routes {
        Routes::new(EchoServer)
    }
}

/// What `/test.Echo/Echo` takes and answers.
#[derive(Clone, PartialEq, prost::Message)]
struct Named {
    #[prost(string, tag = "1")]
    name: String,
}

/// Field 1 as a number: on the wire, not a `Named`.
#[derive(Clone, PartialEq, prost::Message)]
struct Numbered {
    #[prost(uint64, tag = "1")]
    number: u64,
}

/// Field 1 as raw bytes: a `Named` only when they are UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct Raw {
    #[prost(bytes = "vec", tag = "1")]
    bytes: Vec<u8>,
}

/// `test.Echo`, written as tonic-build would generate it, with the runtime's codec.
#[derive(Debug, Clone)]
struct EchoServer;

impl allframe_runtime::tonic::server::NamedService for EchoServer {
    const NAME: &'static str = "test.Echo";
}

type GrpcBody = allframe_runtime::tonic::body::Body;

impl tower::Service<http::Request<GrpcBody>> for EchoServer {
    type Response = http::Response<GrpcBody>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<GrpcBody>) -> Self::Future {
        Box::pin(async move {
            let echo = tower::service_fn(|request: Request<Named>| async move {
                Ok::<_, Status>(Response::new(request.into_inner()))
            });
            let mut grpc =
                allframe_runtime::tonic::server::Grpc::new(ProtoCodec::<Named, Named>::default());
            Ok(grpc.unary(echo, request).await)
        })
    }
}

/// A connected channel to the gRPC server at `addr`.
async fn channel(addr: std::net::SocketAddr) -> allframe_runtime::tonic::transport::Channel {
    allframe_runtime::tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

/// Calls `/test.Echo/Echo` with `message` (whatever its type) and decodes a `Named`.
async fn echo<M>(addr: std::net::SocketAddr, message: M) -> Result<Named, Status>
where
    M: prost::Message + Send + Sync + 'static,
{
    let channel = channel(addr).await;
    let mut client = allframe_runtime::tonic::client::Grpc::new(channel);
    client.ready().await.expect("ready");
    client
        .unary(
            Request::new(message),
            http::uri::PathAndQuery::from_static("/test.Echo/Echo"),
            ProtoCodec::<M, Named>::default(),
        )
        .await
        .map(Response::into_inner)
}

async fn start_grpc(dir: &std::path::Path, extra: &[(&str, &str)]) -> RunningService {
    let mut pairs = vec![("GRPC_PORT", "0")];
    pairs.extend_from_slice(extra);
    Launcher::<GrpcService>::new(&SETTINGS)
        .grpc(grpc_routes::<GrpcService>)
        .env(test_env(dir, &pairs))
        .start()
        .await
        .expect("service starts")
}

#[tokio::test]
async fn undecodable_messages_are_invalid_argument() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start_grpc(temp.path(), &[]).await;
    let addr = running.grpc_addr().expect("gRPC is served");
    let named = echo(addr, Named { name: "Ada".into() })
        .await
        .expect("a Named echoes");
    assert_eq!(named.name, "Ada");

    let wrong_type = echo(addr, Numbered { number: 7 })
        .await
        .expect_err("not a Named");
    assert_eq!(wrong_type.code(), Code::InvalidArgument, "{wrong_type:?}");
    let not_utf8 = echo(
        addr,
        Raw {
            bytes: vec![0xff, 0xfe, 0x00],
        },
    )
    .await
    .expect_err("a string that is not UTF-8");
    assert_eq!(not_utf8.code(), Code::InvalidArgument, "{not_utf8:?}");
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn messages_over_the_servers_limit_are_resource_exhausted() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start_grpc(temp.path(), &[("ALLFRAME_GRPC_MAX_MESSAGE_BYTES", "1024")]).await;
    assert_eq!(running.ctx().grpc_max_message_bytes(), 1024);
    let addr = running.grpc_addr().expect("gRPC is served");
    let fits = echo(
        addr,
        Named {
            name: "x".repeat(1000),
        },
    )
    .await
    .expect("within the limit");
    assert_eq!(fits.name.len(), 1000);

    let over = echo(
        addr,
        Named {
            name: "x".repeat(4096),
        },
    )
    .await
    .expect_err("over the limit");
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    // Every service of the server, the runtime's own health service included (whose tonic
    // default alone would take 4 MiB).
    let channel = channel(addr).await;
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "s".repeat(2048),
        })
        .await
        .expect_err("over the limit");
    assert_eq!(health.code(), Code::ResourceExhausted, "{health:?}");
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn over_the_rate_limit_calls_are_resource_exhausted_and_health_still_answers() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = Launcher::<GrpcService>::new(&SETTINGS)
        .grpc(grpc_routes::<GrpcService>)
        .limits(InboundLimits {
            bulkhead: None,
            rate_limit: Some(RateLimitPolicy {
                rps: 1,
                burst: 1,
                per: RateLimitKey::Global,
            }),
        })
        .env(test_env(temp.path(), &[("GRPC_PORT", "0")]))
        .start()
        .await
        .expect("service starts");
    let addr = running.grpc_addr().expect("gRPC is served");
    let named = || Named {
        name: "ada".to_owned(),
    };
    echo(addr, named()).await.expect("within the limit");
    let over = echo(addr, named()).await.expect_err("over the limit");
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert!(over.message().contains("rate limit"), "{over:?}");
    assert!(
        over.metadata().get("grpc-retry-pushback-ms").is_some(),
        "{over:?}"
    );
    for _ in 0..3 {
        let health = HealthClient::new(channel(addr).await)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health is never limited");
        assert_eq!(health.into_inner().status, ServingStatus::Serving as i32);
    }
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test]
async fn grpc_health_reports_serving() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start_grpc(temp.path(), &[]).await;
    let grpc_addr = running.grpc_addr().expect("gRPC is served");
    assert_ne!(grpc_addr.port(), 0);
    assert_ne!(grpc_addr, running.rest_addr());

    let channel = channel(grpc_addr).await;
    let mut client = HealthClient::new(channel);
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check");
    assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);

    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await
        .expect_err("unknown services are NOT_FOUND");
    assert_eq!(unknown.code(), allframe_runtime::tonic::Code::NotFound);

    let rest = reqwest::get(format!("http://{}/health/live", running.rest_addr()))
        .await
        .expect("rest");
    assert_eq!(rest.status(), 200);
    drop(client);
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn grpc_health_is_not_serving_during_the_shutdown_delay_and_new_channels_connect() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start_grpc(temp.path(), &[("ALLFRAME_SHUTDOWN_DELAY_SECS", "2")]).await;
    let grpc_addr = running.grpc_addr().expect("gRPC is served");
    running.shutdown_handle().trigger();
    // Wait for the sequence to flip health (it does so first), then connect anew.
    let mut status = ServingStatus::Serving as i32;
    for _ in 0..50 {
        let channel = channel(grpc_addr).await;
        status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, ServingStatus::NotServing as i32);
    let report = running.wait().await;
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.elapsed >= std::time::Duration::from_secs(2),
        "{report:?}"
    );
}
