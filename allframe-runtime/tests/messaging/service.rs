//! A service started by the launcher with the outbox pattern: a handler's unit of work reaches
//! the local bus file under `ALLFRAME_DATA_DIR` through the relay the launcher spawned, with
//! the request's correlation and trace context; metrics are readable from `Ctx`; shutdown is
//! clean. Without messaging, `cx.begin()` is a plain transaction and publishing is a 500.
#![cfg(feature = "sqlite")]

use std::path::Path;
use std::time::Duration;

use crate::messaging_support::Deposited;
use crate::messaging_support::launch_env::test_env;
use crate::messaging_support::ledger::{Ledger, MIGRATIONS, SETTINGS};
use allframe_runtime::__private::{Launcher, MetricsSettings, OutboxSettings, RunningService};
use allframe_runtime::error::RuntimeError;
use allframe_runtime::messaging::{
    BusError, LocalBus, LocalBusOptions, MessagingError, SubscribeOptions, topic_name,
};
use allframe_runtime::sqlx;

async fn start(
    dir: &Path,
    outbox: bool,
    extra: &[(&str, &str)],
) -> Result<RunningService, RuntimeError> {
    let launcher = Launcher::<Ledger>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .metrics(MetricsSettings::default())
        .env(test_env(dir, extra));
    let launcher = if outbox {
        launcher
            .outbox(OutboxSettings::with_polling_ms(50))
            .tenant_header("X-Tenant-ID")
    } else {
        launcher
    };
    launcher.start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_events_reach_the_local_bus_through_the_launchers_relay() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), true, &[]).await.expect("starts");
    assert_eq!(running.ctx().bus().expect("bus").name(), "local");
    let client = reqwest::Client::new();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for n in 0..5 {
        let response = client
            .post(format!("http://{}/deposits/alice/{n}", running.rest_addr()))
            .header("x-correlation-id", "req-77")
            .header("traceparent", traceparent)
            .header("x-tenant-id", "acme")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
    }

    // Another "process" on the same machine reads the shared bus file.
    let bus = LocalBus::open(&temp.path().join("bus.db"), LocalBusOptions::default())
        .await
        .expect("bus file exists");
    let topic = topic_name("bank", "ledger-service", "Deposited");
    let mut sub = bus
        .subscribe(SubscribeOptions::new(
            "bank.audit-service",
            [topic.as_str()],
        ))
        .await
        .expect("subscribe");
    for n in 0..5 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("delivered in time")
            .expect("delivery");
        let envelope = delivery.envelope();
        assert_eq!(delivery.decode::<Deposited>().expect("decodes").n, n);
        assert_eq!(envelope.correlation_id, "req-77");
        assert_eq!(envelope.traceparent.as_deref(), Some(traceparent));
        assert_eq!(envelope.tenant_id.as_deref(), Some("acme"));
        assert_eq!(envelope.source, "ledger-service");
        sub.ack(&delivery).await.expect("ack");
    }

    // The launcher's Prometheus endpoint exposes the relay's throughput and the handler's
    // request count, labelled with the matched route template.
    let metrics = reqwest::get(format!("http://{}/metrics", running.rest_addr()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("allframe_outbox_published_total{service=\"ledger-service\"} 5\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "http_server_requests_total{service=\"ledger-service\",method=\"POST\",route=\"/deposits/{account}/{n}\",status=\"200\"} 5\n"
        ),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn requests_answered_before_shutdown_are_published_by_the_drain() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), true, &[]).await.expect("starts");
    let client = reqwest::Client::new();
    for n in 0..20 {
        client
            .post(format!("http://{}/deposits/bob/{n}", running.rest_addr()))
            .send()
            .await
            .expect("request")
            .error_for_status()
            .expect("200");
    }
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    let bus = LocalBus::open(&temp.path().join("bus.db"), LocalBusOptions::default())
        .await
        .expect("bus");
    assert_eq!(
        bus.len(&topic_name("bank", "ledger-service", "Deposited"))
            .await
            .expect("len"),
        20
    );
}

#[tokio::test]
async fn without_messaging_a_unit_of_work_is_a_plain_transaction() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), false, &[]).await.expect("starts");
    assert!(running.ctx().bus().is_none());
    let mut uow = running.ctx().begin().await.expect("begin");
    sqlx::query("INSERT INTO accounts (id, balance) VALUES ('x', 1)")
        .execute(uow.conn())
        .await
        .expect("insert");
    let error = uow
        .publish(Deposited {
            account: "x".into(),
            n: 0,
        })
        .expect_err("no messaging declared");
    assert!(
        matches!(error, MessagingError::NotConfigured { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("[services.messaging]"));
    uow.commit().await.expect("commit");

    let response = reqwest::Client::new()
        .post(format!("http://{}/deposits/y/0", running.rest_addr()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 500);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
        .fetch_one(running.ctx().db().pool())
        .await
        .expect("count");
    assert_eq!(
        count, 1,
        "the failed handler's state change was rolled back"
    );
    assert!(running.shutdown().await.is_clean());
}

/// The messaging error behind a start-up failure.
fn messaging_error(error: &RuntimeError) -> &MessagingError {
    let RuntimeError::Component {
        name: "messaging",
        source,
    } = error
    else {
        panic!("unexpected error: {error}");
    };
    source
        .downcast_ref::<MessagingError>()
        .expect("a typed messaging error")
}

#[tokio::test]
async fn an_unknown_bus_scheme_stops_start_up() {
    let temp = tempfile::tempdir().expect("temp dir");
    let error = start(
        temp.path(),
        true,
        &[("EVENT_BUS_URL", "redis://:hunter2@127.0.0.1")],
    )
    .await
    .expect_err("redis is no event bus here");
    assert!(matches!(
        messaging_error(&error),
        MessagingError::Bus(BusError::UnsupportedScheme { scheme }) if scheme == "redis"
    ));
    let message = error.to_string();
    assert!(
        message.contains("EVENT_BUS_URL") && !message.contains("hunter2"),
        "{message}"
    );
}

#[cfg(not(feature = "nats"))]
#[tokio::test]
async fn a_bus_whose_adapter_is_not_built_stops_start_up_naming_the_feature() {
    let temp = tempfile::tempdir().expect("temp dir");
    let error = start(
        temp.path(),
        true,
        &[("EVENT_BUS_URL", "nats://127.0.0.1:4222")],
    )
    .await
    .expect_err("no nats adapter");
    assert!(matches!(
        messaging_error(&error),
        MessagingError::Bus(BusError::FeatureDisabled {
            feature: "nats",
            ..
        })
    ));
    assert!(
        error.to_string().contains("features = [\"nats\"]"),
        "{error}"
    );
}
