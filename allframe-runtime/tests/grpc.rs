//! The gRPC server (feature `grpc`): a service registering gRPC routes gets the standard
//! `grpc.health.v1` service reporting SERVING, next to its REST server.
#![cfg(all(feature = "grpc", feature = "sqlite"))]

use allframe_runtime::__private::tonic_health::pb::HealthCheckRequest;
use allframe_runtime::__private::tonic_health::pb::health_check_response::ServingStatus;
use allframe_runtime::__private::tonic_health::pb::health_client::HealthClient;
use allframe_runtime::__private::{Environment, Launcher, LogFormat, ServiceSettings, grpc_routes};
use allframe_runtime::tonic::service::Routes;
use allframe_runtime::{App, BoxError, Ctx, GrpcApi, RestApi, Router, Service};

static SETTINGS: ServiceSettings = ServiceSettings {
    architecture: "shop",
    name: "grpc-service",
    archetype: "stateless",
    rest_port: 8080,
    grpc_port: Some(9090),
    logging: LogFormat::Structured,
    declared_database: "sqlite",
    shutdown_timeout_secs: 5,
    deferred: &[],
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
        Routes::default()
    }
}

#[tokio::test]
async fn grpc_health_reports_serving() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = Launcher::<GrpcService>::new(&SETTINGS)
        .grpc(grpc_routes::<GrpcService>)
        .env(Environment::from_pairs([
            (
                "ALLFRAME_DATA_DIR",
                temp.path().to_string_lossy().into_owned(),
            ),
            ("ALLFRAME_BIND_ADDR", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("GRPC_PORT", "0".to_owned()),
        ]))
        .start()
        .await
        .expect("service starts");
    let grpc_addr = running.grpc_addr().expect("gRPC is served");
    assert_ne!(grpc_addr.port(), 0);
    assert_ne!(grpc_addr, running.rest_addr());

    let channel =
        allframe_runtime::tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
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
    let running = Launcher::<GrpcService>::new(&SETTINGS)
        .grpc(grpc_routes::<GrpcService>)
        .env(Environment::from_pairs([
            (
                "ALLFRAME_DATA_DIR",
                temp.path().to_string_lossy().into_owned(),
            ),
            ("ALLFRAME_BIND_ADDR", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
            ("GRPC_PORT", "0".to_owned()),
            ("ALLFRAME_SHUTDOWN_DELAY_SECS", "2".to_owned()),
        ]))
        .start()
        .await
        .expect("service starts");
    let grpc_addr = running.grpc_addr().expect("gRPC is served");
    running.shutdown_handle().trigger();
    // Wait for the sequence to flip health (it does so first), then connect anew.
    let mut status = ServingStatus::Serving as i32;
    for _ in 0..50 {
        let channel =
            allframe_runtime::tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("a new channel connects during the delay");
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
