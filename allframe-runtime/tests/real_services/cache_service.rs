//! Real-services suite: a `type = "cache"` service (`Launcher::cache`) twice in this process,
//! its invalidation events on NATS JetStream (127.0.0.1:4222). With the in-process cache each
//! instance follows the events as a group of its own, so both evict; with Redis (127.0.0.1:6379)
//! they share their entries and one durable group, so an event is handled once. A missing
//! NATS or Redis fails these tests.
#![cfg(all(
    feature = "nats",
    feature = "redis",
    feature = "sqlite",
    feature = "testing"
))]

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use allframe_runtime::__private::{
    CacheService, CacheServiceSettings, ConsumedEvent, HandleError, Launch, Launcher, LogFormat,
    ServiceSettings, WriteStrategy,
};
use allframe_runtime::cache::{Cache, CacheSource, cache_routes};
use allframe_runtime::component::BoxFuture;
use allframe_runtime::messaging::Delivery;
use allframe_runtime::testing::{TestService, eventually};
use allframe_runtime::{BoxError, Ctx, Event, RestApi, Router, Service};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bus_nats::{BROKER, url};

/// What the caches front: names by shelf id, shared by every instance of this binary (each
/// test uses ids of its own).
static NAMES: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);

fn set_name(id: &str, name: &str) {
    NAMES
        .lock()
        .expect("names")
        .insert(id.to_owned(), name.to_owned());
}

struct Names;

impl CacheSource for Names {
    type Value = String;

    async fn load(&self, key: &str) -> Result<Option<String>, BoxError> {
        Ok(NAMES.lock().expect("names").get(key).cloned())
    }
}

/// The event that makes a shelf's cached name stale.
#[derive(Debug, Serialize, Deserialize)]
struct ShelfRenamed {
    id: String,
}

impl Event for ShelfRenamed {
    const TYPE: &'static str = "ShelfRenamed";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Shelf";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
}

const INVALIDATIONS: &[ConsumedEvent] = &[ConsumedEvent {
    event: "ShelfRenamed",
    producer: "shelf-service",
}];

/// A fresh architecture per run: its own stream, topics and groups.
static SETTINGS: LazyLock<ServiceSettings> = LazyLock::new(|| ServiceSettings {
    architecture: crate::bus_support::architecture().leak(),
    name: "shelf-cache",
    archetype: "cache",
    rest_port: 0,
    grpc_port: None,
    logging: LogFormat::Plain,
    declared_database: "sqlite",
    shutdown_timeout_secs: 5,
    deferred: &[],
});

struct ShelfCache;

impl Service for ShelfCache {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for ShelfCache {
    fn routes() -> Router<Self> {
        cache_routes::<Self, Names>("/shelves")
    }
}

impl CacheService for ShelfCache {
    type Source = Names;

    fn open_source(_: &Ctx) -> BoxFuture<'_, Result<Names, BoxError>> {
        Box::pin(async { Ok(Names) })
    }

    fn stale_keys<'a>(
        &'a self,
        delivery: &'a Delivery,
    ) -> BoxFuture<'a, Result<Vec<String>, HandleError>> {
        Box::pin(async move { Ok(vec![delivery.decode::<ShelfRenamed>()?.id]) })
    }
}

impl Launch for ShelfCache {
    fn launcher() -> Launcher<Self> {
        Launcher::new(&SETTINGS).cache(CacheServiceSettings {
            strategy: WriteStrategy::CacheAside,
            ttl_seconds: 3600,
            invalidations: INVALIDATIONS,
        })
    }
}

async fn name(service: &TestService, id: &str) -> Value {
    service.get(&format!("/shelves/{id}")).await.json()
}

fn evictions(service: &TestService) -> u64 {
    let cache = service.ctx().get::<Cache<Names>>().expect("the cache");
    cache.stats().evictions
}

/// Two instances cache `id`, its name changes behind them, one `ShelfRenamed` is published;
/// `done` when both serve the new name. Answers the evictions of both.
async fn rename_behind_two_instances(vars: &[(&str, &str)], id: &str) -> (u64, u64) {
    // Both tests share the architecture (its stream): one at a time, so that a single
    // service creates it.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let (a, b) = (
        TestService::start_with::<ShelfCache>(vars).await,
        TestService::start_with::<ShelfCache>(vars).await,
    );
    set_name(id, "Oak");
    assert_eq!(
        (name(&a, id).await, name(&b, id).await),
        ("Oak".into(), "Oak".into())
    );
    set_name(id, "Birch");
    assert_eq!(name(&b, id).await, "Oak", "cached");

    a.publish_as("shelf-service", &ShelfRenamed { id: id.to_owned() })
        .await;
    eventually("both instances serve the new name", || async {
        name(&a, id).await == "Birch" && name(&b, id).await == "Birch"
    })
    .await;
    // Room for a second handling of the event, were the group shared by mistake (or not).
    tokio::time::sleep(Duration::from_millis(500)).await;
    (evictions(&a), evictions(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222"]
async fn with_the_in_process_cache_every_instance_evicts() {
    let _shared = BROKER.read().await;
    let vars = [("EVENT_BUS_URL", url())];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let evicted = rename_behind_two_instances(&vars, "in-process-1").await;
    assert_eq!(evicted, (1, 1), "each instance evicts its own entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222 and Redis at 127.0.0.1:6379"]
async fn with_redis_the_instances_share_one_group() {
    let _shared = BROKER.read().await;
    let redis = std::env::var("ALLFRAME_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let vars = [("EVENT_BUS_URL", url()), ("REDIS_URL", redis)];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let id = format!("redis-{}", uuid::Uuid::new_v4().simple());
    let (a, b) = rename_behind_two_instances(&vars, &id).await;
    assert_eq!(a + b, 1, "one shared entry, evicted once: {a} + {b}");
}
