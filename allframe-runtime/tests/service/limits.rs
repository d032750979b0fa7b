//! The limits on incoming requests (`[resilience] rate_limit | bulkhead`) on a service run
//! in-process: 429 and 503 with `Retry-After`, probes never limited, refusals counted in the
//! metrics, a bad `ALLFRAME_TRUSTED_PROXIES` refused at start-up.
#![cfg(feature = "sqlite")]

use std::time::Duration;

use crate::launch_env::{stateless_settings, test_env};
use allframe_runtime::__private::{
    BulkheadPolicy, InboundLimits, Launcher, MetricsSettings, RateLimitKey, RateLimitPolicy,
    RunningService, ServiceSettings,
};
use allframe_runtime::axum::routing::get;
use allframe_runtime::error::RuntimeError;
use allframe_runtime::extract::Path as UrlPath;
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service};

static SETTINGS: ServiceSettings = stateless_settings("shop", "limited-service");

struct Limited;

impl Service for Limited {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for Limited {
    fn routes() -> Router<Self> {
        Router::new().route(
            "/sleep/{ms}",
            get(|UrlPath(ms): UrlPath<u64>| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "slept"
            }),
        )
    }
}

async fn start(
    dir: &std::path::Path,
    limits: InboundLimits,
    extra: &[(&str, &str)],
) -> Result<RunningService, RuntimeError> {
    Launcher::<Limited>::new(&SETTINGS)
        .metrics(MetricsSettings { port: None })
        .limits(limits)
        .env(test_env(dir, extra))
        .start()
        .await
}

fn url(running: &RunningService, path: &str) -> String {
    format!("http://{}{path}", running.rest_addr())
}

#[tokio::test]
async fn over_the_rate_limit_routes_answer_429_and_probes_still_answer() {
    let temp = tempfile::tempdir().expect("temp dir");
    let limits = InboundLimits {
        bulkhead: None,
        rate_limit: Some(RateLimitPolicy {
            rps: 1,
            burst: 2,
            per: RateLimitKey::Global,
        }),
    };
    let running = start(temp.path(), limits, &[]).await.expect("starts");
    let client = reqwest::Client::new();
    let statuses = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let answer = client
                .get(url(&running, "/sleep/0"))
                .send()
                .await
                .expect("get");
            statuses.push((
                answer.status().as_u16(),
                answer.headers().get("retry-after").cloned(),
            ));
        }
        statuses
    };
    assert_eq!(
        (statuses[0].0, statuses[1].0, statuses[2].0),
        (200, 200, 429)
    );
    assert_eq!(
        statuses[2].1.as_ref().map(|v| v.to_str().expect("ascii")),
        Some("1")
    );
    for probe in ["/health/live", "/health/ready", "/metrics"] {
        let answer = client
            .get(url(&running, probe))
            .send()
            .await
            .expect("probe");
        assert_eq!(answer.status(), 200, "{probe} is not limited");
    }
    let text = client
        .get(url(&running, "/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    assert!(
        text.contains("allframe_resilience_rejections_total{service=\"limited-service\",policy=\"rate_limit\",target=\"inbound\"} 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("http_server_requests_total{")
                && l.contains("status=\"429\"")
                && l.ends_with(" 1")),
        "the refusal is counted by route: {text}"
    );
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test]
async fn past_the_bulkhead_queue_requests_answer_503() {
    let temp = tempfile::tempdir().expect("temp dir");
    let limits = InboundLimits {
        bulkhead: Some(BulkheadPolicy {
            max_concurrent: 1,
            max_queue: 0,
        }),
        rate_limit: None,
    };
    let running = start(temp.path(), limits, &[]).await.expect("starts");
    let slow = tokio::spawn(reqwest::get(url(&running, "/sleep/600")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = reqwest::get(url(&running, "/sleep/0")).await.expect("get");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let ready = reqwest::get(url(&running, "/health/ready"))
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200, "a busy service is still ready");
    let slow = slow.await.expect("task").expect("slow request");
    assert_eq!(slow.status(), 200);
    let after = reqwest::get(url(&running, "/sleep/0")).await.expect("get");
    assert_eq!(after.status(), 200, "the slot is free again");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test]
async fn an_invalid_trusted_proxy_list_fails_start_up() {
    let temp = tempfile::tempdir().expect("temp dir");
    let limits = InboundLimits {
        bulkhead: None,
        rate_limit: Some(RateLimitPolicy {
            rps: 10,
            burst: 10,
            per: RateLimitKey::Ip,
        }),
    };
    let started = start(
        temp.path(),
        limits,
        &[("ALLFRAME_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal")],
    )
    .await;
    let Err(error) = started else {
        panic!("a service with an invalid proxy list started");
    };
    let text = error.to_string();
    assert!(text.contains("ALLFRAME_TRUSTED_PROXIES"), "{text}");
    assert!(text.contains("CIDR"), "{text}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn while_redis_does_not_answer_each_replica_counts_on_its_own() {
    let temp = tempfile::tempdir().expect("temp dir");
    let limits = InboundLimits {
        bulkhead: None,
        rate_limit: Some(RateLimitPolicy {
            rps: 1,
            burst: 3,
            per: RateLimitKey::Global,
        }),
    };
    // Nothing listens on port 1: every Redis call fails at once.
    let running = start(temp.path(), limits, &[("REDIS_URL", "redis://127.0.0.1:1")])
        .await
        .expect("starts without Redis");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let answer = reqwest::get(url(&running, "/sleep/0")).await.expect("get");
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "the in-process limit holds");
    assert!(running.shutdown().await.is_clean());
}
