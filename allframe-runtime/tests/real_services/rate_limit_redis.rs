//! Real-services suite: a rate limit shared through Redis (`REDIS_URL`) by two replicas of a
//! service run in-process, and budgets per client counted in Redis.
#![cfg(all(feature = "redis", feature = "sqlite"))]

use std::time::Duration;

use allframe_runtime::__private::{
    Environment, InboundLimits, Launcher, LogFormat, RateLimitKey, RateLimitPolicy, RunningService,
    ServiceSettings,
};
use allframe_runtime::axum::routing::get;
use allframe_runtime::resilience::{Client, SharedRateLimit};
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service};

static SETTINGS: ServiceSettings = ServiceSettings {
    architecture: "shop",
    name: "rate-limited",
    archetype: "stateless",
    rest_port: 8080,
    grpc_port: None,
    logging: LogFormat::Plain,
    declared_database: "sqlite",
    shutdown_timeout_secs: 5,
    deferred: &[],
};

const LIMITS: InboundLimits = InboundLimits {
    bulkhead: None,
    rate_limit: Some(RateLimitPolicy {
        rps: 1,
        burst: 3,
        per: RateLimitKey::Global,
    }),
};

struct Replica;

impl Service for Replica {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for Replica {
    fn routes() -> Router<Self> {
        Router::new().route("/hello", get(|| async { "hello" }))
    }
}

fn redis_url() -> String {
    std::env::var("ALLFRAME_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Deletes the service's budget key, failing the test unless Redis answers.
async fn fresh_budget() {
    let client = redis::Client::open(redis_url()).expect("Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must be running on 127.0.0.1:6379");
    let _: i64 = redis::cmd("DEL")
        .arg("allframe:ratelimit:rate-limited:global")
        .query_async(&mut connection)
        .await
        .expect("DEL");
}

async fn replica(dir: &std::path::Path, redis_url: &str) -> RunningService {
    let env = Environment::from_pairs([
        ("ALLFRAME_DATA_DIR", dir.to_string_lossy().into_owned()),
        ("PORT", "0".to_owned()),
        ("ALLFRAME_BIND_ADDR", "127.0.0.1".to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
    ]);
    Launcher::<Replica>::new(&SETTINGS)
        .limits(LIMITS)
        .env(env)
        .start()
        .await
        .expect("replica starts")
}

async fn status(running: &RunningService) -> u16 {
    reqwest::get(format!("http://{}/hello", running.rest_addr()))
        .await
        .expect("get")
        .status()
        .as_u16()
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379"]
async fn redis_replicas_share_one_rate_limit() {
    fresh_budget().await;
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, b) = (
        replica(a_dir.path(), &redis_url()).await,
        replica(b_dir.path(), &redis_url()).await,
    );
    let mut statuses = Vec::new();
    for running in [&a, &b, &a, &b] {
        statuses.push(status(running).await);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "a burst of 3 for both replicas together, not 3 each"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(status(&b).await, 200, "one more a second");
    assert!(a.shutdown().await.is_clean());
    assert!(b.shutdown().await.is_clean());
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379"]
async fn redis_budgets_follow_the_client_and_say_when_to_retry() {
    let policy = RateLimitPolicy {
        rps: 2,
        burst: 2,
        per: RateLimitKey::Ip,
    };
    let service = format!("limit-{}", uuid::Uuid::new_v4());
    let (one, two) = (
        SharedRateLimit::new(&redis_url(), &service, policy).expect("limit"),
        SharedRateLimit::new(&redis_url(), &service, policy).expect("limit"),
    );
    let ada = Client::Ip("203.0.113.1".parse().expect("ip"));
    let bob = Client::Ip("203.0.113.2".parse().expect("ip"));
    one.check(&ada).await.expect("Redis answers").expect("1st");
    two.check(&ada).await.expect("Redis answers").expect("2nd");
    let limited = one
        .check(&ada)
        .await
        .expect("Redis answers")
        .expect_err("3rd is over");
    assert!(
        limited.retry_after > Duration::ZERO && limited.retry_after <= Duration::from_millis(500),
        "{:?}",
        limited.retry_after
    );
    two.check(&bob)
        .await
        .expect("Redis answers")
        .expect("bob's own budget");
}
