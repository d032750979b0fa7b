//! Idempotency keys on the embedded SQLite store, through the real REST server on port 0:
//! replay, 422, 400, TTL expiry (by a short TTL, and by an injected clock), 409 in flight,
//! 200 concurrent duplicates run once, 5xx releases, tenants, large bodies, store down → 503.
//! Also the SQL store's record keeping with a moved clock, and start-up errors.
#![cfg(feature = "sqlite")]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::idempotency_support as support;
use allframe_runtime::__private::IdempotencyStorage;
use allframe_runtime::axum::body::Body;
use allframe_runtime::axum::http::{Request, StatusCode};
use allframe_runtime::axum::routing::post;
use allframe_runtime::database::DatabaseTarget;
use allframe_runtime::error::RuntimeError;
use allframe_runtime::idempotency::fingerprint::Fingerprint;
use allframe_runtime::idempotency::store::{Begin, Claim, Lock};
use allframe_runtime::idempotency::{
    Clock, IdempotencyConfig, IdempotencyError, IdempotencyLayer, IdempotencyStore, SqlStore,
    StoredResponse,
};
use allframe_runtime::{Database, sqlx};
use support::Harness;
use tower::ServiceExt as _;

async fn sqlite(extra: &[(&str, &str)]) -> (tempfile::TempDir, Harness) {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = Harness::start(IdempotencyStorage::Sqlite, dir.path(), extra).await;
    (dir, harness)
}

#[tokio::test]
async fn replays_the_first_response() {
    let (_dir, h) = sqlite(&[]).await;
    support::replays_the_first_response(&h).await;
    support::passes_through_without_a_key_or_for_safe_methods(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_422() {
    let (_dir, h) = sqlite(&[]).await;
    support::refuses_a_key_reused_for_another_request(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn malformed_keys_are_400() {
    let (_dir, h) = sqlite(&[]).await;
    support::refuses_malformed_keys(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn keys_expire_after_the_ttl() {
    let (_dir, h) = sqlite(&[("ALLFRAME_IDEMPOTENCY_TTL_SECS", "1")]).await;
    support::forgets_keys_after_the_ttl(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_duplicate_in_flight_is_409() {
    let (_dir, h) = sqlite(&[]).await;
    support::answers_409_while_the_first_is_in_flight(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn two_hundred_concurrent_duplicates_run_once() {
    let (_dir, h) = sqlite(&[]).await;
    support::runs_once_under_200_concurrent_duplicates(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_5xx_releases_the_key_and_tenants_scope_keys() {
    let (_dir, h) = sqlite(&[]).await;
    support::releases_the_key_after_a_5xx(&h).await;
    support::scopes_keys_per_tenant(&h).await;
    support::handles_large_bodies(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_rejected_request_releases_its_key_and_handler_refusals_are_kept() {
    let (_dir, h) = sqlite(&[]).await;
    support::releases_the_key_of_a_rejected_request(&h).await;
    support::stores_the_handlers_own_refusals(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn without_tenancy_no_header_scopes_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = Harness::start_with(IdempotencyStorage::Sqlite, dir.path(), &[], None).await;
    support::ignores_tenant_headers_when_tenancy_is_off(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn the_store_down_is_503_and_nothing_runs() {
    let (_dir, h) = sqlite(&[]).await;
    // The store is the service database: close its pool.
    h.running.ctx().db().close().await;
    support::refuses_with_503_when_the_store_is_down(&h).await;
    h.stop().await;
}

#[tokio::test]
async fn the_table_lives_in_the_service_database() {
    let (dir, h) = sqlite(&[]).await;
    let path = format!("/payments/{}", h.unique("table"));
    assert_eq!(
        h.post(&path, Some(&h.unique("k")), "{}").await.status(),
        201
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM allframe_idempotency WHERE state = 1")
        .fetch_one(h.running.ctx().db().pool())
        .await
        .expect("count");
    assert_eq!(rows, 1);
    h.stop().await;
    assert!(dir.path().join("payment-service.db").is_file());
}

#[tokio::test]
async fn start_up_errors_are_typed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = support::try_start(IdempotencyStorage::Redis, dir.path(), &[])
        .await
        .expect_err("no REDIS_URL");
    let RuntimeError::Component {
        name: "idempotency",
        source,
    } = &error
    else {
        panic!("not the idempotency component's error: {error:?}");
    };
    let typed = source.downcast_ref::<IdempotencyError>();
    if cfg!(feature = "redis") {
        assert!(
            matches!(typed, Some(IdempotencyError::MissingRedisUrl)),
            "{error:?}"
        );
        assert!(error.to_string().contains("REDIS_URL"), "{error}");
    } else {
        assert!(
            matches!(typed, Some(IdempotencyError::RedisFeatureDisabled)),
            "{error:?}"
        );
        assert!(error.to_string().contains("features = [\"redis\"]"));
    }
    let error = support::try_start(
        IdempotencyStorage::Sqlite,
        dir.path(),
        &[("ALLFRAME_IDEMPOTENCY_TTL_SECS", "soon")],
    )
    .await
    .expect_err("bad TTL");
    assert!(
        error.to_string().contains("ALLFRAME_IDEMPOTENCY_TTL_SECS"),
        "{error}"
    );
}

/// A clock the test moves by hand.
#[derive(Debug, Default)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).expect("millis");
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A claim of the key `svc:k` with a 60 s lease.
fn claim<'a>(owner: &'a str, fingerprint: &'a Fingerprint, now_ms: i64) -> Claim<'a> {
    Claim {
        id: "svc:k",
        fingerprint,
        owner,
        now_ms,
        lease: Duration::from_secs(60),
    }
}

async fn scratch_db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = DatabaseTarget::default_sqlite(dir.path(), "store").expect("target");
    let db = Database::connect(&target).await.expect("connect");
    (dir, db)
}

#[tokio::test]
async fn the_layer_forgets_keys_when_an_injected_clock_passes_the_ttl() {
    let (_dir, db) = scratch_db().await;
    let store = SqlStore::open(&db).await.expect("store");
    let clock = Arc::new(ManualClock(AtomicI64::new(1_700_000_000_000)));
    let config = IdempotencyConfig::new("clocked", "Idempotency-Key").expect("config");
    let layer = IdempotencyLayer::new(Arc::new(store), config).with_clock(clock.clone());
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let app = allframe_runtime::axum::Router::new()
        .route(
            "/charge",
            post(move || {
                let counter = Arc::clone(&counter);
                async move { counter.fetch_add(1, Ordering::SeqCst).to_string() }
            }),
        )
        .layer(layer);
    let send = |app: allframe_runtime::axum::Router| async move {
        let request = Request::post("/charge")
            .header("Idempotency-Key", "k-1")
            .body(Body::from("{}"))
            .expect("request");
        app.oneshot(request).await.expect("infallible")
    };
    assert_eq!(send(app.clone()).await.status(), StatusCode::OK);
    clock.advance(Duration::from_secs(23 * 3600));
    let replay = send(app.clone()).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(3600));
    let after = send(app.clone()).await;
    assert!(after.headers().get("idempotent-replayed").is_none());
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "24 h later the key ran again"
    );
    db.close().await;
}

#[tokio::test]
async fn the_sql_store_keeps_owners_leases_and_ttls() {
    let (_dir, db) = scratch_db().await;
    let store = SqlStore::open(&db).await.expect("store");
    SqlStore::open(&db).await.expect("opening twice is fine");
    let fp = &Fingerprint::from_stored("f".repeat(64));
    let other_fp = &Fingerprint::from_stored("e".repeat(64));
    let lease = Duration::from_secs(60);

    assert_eq!(
        store.begin(claim("a", fp, 0)).await.expect("begin"),
        Begin::Started
    );
    let Begin::Existing(existing) = store.begin(claim("b", other_fp, 1)).await.expect("begin")
    else {
        panic!("the key is held");
    };
    assert_eq!(&existing.fingerprint, fp, "reports the first fingerprint");
    assert_eq!(existing.response, None, "in flight");

    // The lease is extended by its owner only.
    let a = Lock {
        id: "svc:k",
        owner: "a",
    };
    let b = Lock {
        id: "svc:k",
        owner: "b",
    };
    assert!(!store.refresh(b, 30_000, lease).await.expect("refresh"));
    assert!(store.refresh(a, 30_000, lease).await.expect("refresh"));
    assert!(matches!(
        store.begin(claim("b", fp, 61_000)).await.expect("begin"),
        Begin::Existing(_)
    ));
    // Past the extended lease, a dead owner's claim is taken over; the old owner lost it.
    assert_eq!(
        store.begin(claim("b", fp, 90_001)).await.expect("begin"),
        Begin::Started
    );
    let response = StoredResponse {
        status: 201,
        headers: vec![("location".into(), "/x".into())],
        body: Some(b"{}".as_slice().into()),
    };
    let ttl = Duration::from_secs(3600);
    assert!(
        !store
            .complete(a, &response, 90_002, ttl)
            .await
            .expect("complete")
    );
    assert!(!store.release(a).await.expect("release"));
    assert!(
        store
            .complete(b, &response, 90_002, ttl)
            .await
            .expect("complete")
    );
    let Begin::Existing(done) = store.begin(claim("c", fp, 100_000)).await.expect("begin") else {
        panic!("completed");
    };
    assert_eq!(done.response, Some(response));
    assert!(
        !store
            .release(b)
            .await
            .expect("completed records are not released")
    );
    // The TTL counts from completion.
    assert!(matches!(
        store
            .begin(claim("c", fp, 90_002 + 3_599_999))
            .await
            .expect("begin"),
        Begin::Existing(_)
    ));
    assert_eq!(
        store
            .begin(claim("c", fp, 90_002 + 3_600_000))
            .await
            .expect("begin"),
        Begin::Started
    );
    assert!(
        store
            .release(Lock {
                id: "svc:k",
                owner: "c"
            })
            .await
            .expect("release")
    );
    assert_eq!(
        store
            .begin(claim("d", fp, 90_002 + 3_600_001))
            .await
            .expect("begin"),
        Begin::Started,
        "a released key is free at once"
    );
    assert_eq!(store.purge_expired(i64::MAX).await.expect("purge"), 1);
    db.close().await;
}

#[tokio::test]
async fn concurrent_claims_of_an_expired_key_have_one_winner() {
    let (_dir, db) = scratch_db().await;
    let store = Arc::new(SqlStore::open(&db).await.expect("store"));
    let fp = Fingerprint::from_stored("f".repeat(64));
    assert_eq!(
        store.begin(claim("dead", &fp, 0)).await.expect("begin"),
        Begin::Started
    );
    let mut claims = tokio::task::JoinSet::new();
    for n in 0..50 {
        let store = Arc::clone(&store);
        let fp = fp.clone();
        claims.spawn(async move {
            let owner = format!("owner-{n}");
            store
                .begin(claim(&owner, &fp, 61_000))
                .await
                .expect("begin")
        });
    }
    let mut started = 0;
    while let Some(outcome) = claims.join_next().await {
        match outcome.expect("join") {
            Begin::Started => started += 1,
            Begin::Existing(existing) => assert_eq!(existing.response, None, "in flight"),
        }
    }
    assert_eq!(
        started, 1,
        "exactly one request takes over the expired claim"
    );
    db.close().await;
}

/// A router whose `POST /work` counts its runs in `runs` and sleeps for the milliseconds in
/// its `x-sleep-ms` header (headers are not part of the fingerprint), behind the layer with a
/// `lease` of its own.
async fn leased_router(
    lease: Duration,
    runs: Arc<AtomicUsize>,
) -> (tempfile::TempDir, Database, allframe_runtime::axum::Router) {
    let (dir, db) = scratch_db().await;
    let store = SqlStore::open(&db).await.expect("store");
    let mut config = IdempotencyConfig::new("leased", "Idempotency-Key").expect("config");
    config.lease = lease;
    let layer = IdempotencyLayer::new(Arc::new(store), config);
    let handler = move |headers: allframe_runtime::axum::http::HeaderMap| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let ms: u64 = headers
                .get("x-sleep-ms")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            "done"
        }
    };
    let app = allframe_runtime::axum::Router::new()
        .route("/work", post(handler))
        .layer(layer);
    (dir, db, app)
}

fn work(sleep_ms: u64) -> Request<Body> {
    Request::post("/work")
        .header("Idempotency-Key", "long-job")
        .header("x-sleep-ms", sleep_ms.to_string())
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn a_handler_outliving_its_lease_keeps_its_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (_dir, db, app) = leased_router(Duration::from_millis(300), Arc::clone(&runs)).await;
    let first = tokio::spawn(app.clone().oneshot(work(1_200)));
    // Three leases later the first request is still running: its lease was extended.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let duplicate = app.clone().oneshot(work(0)).await.expect("infallible");
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let first = first.await.expect("join").expect("infallible");
    assert_eq!(first.status(), StatusCode::OK);
    let replay = app.clone().oneshot(work(0)).await.expect("infallible");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    db.close().await;
}

#[tokio::test]
async fn a_cancelled_request_releases_its_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (_dir, db, app) = leased_router(Duration::from_secs(60), Arc::clone(&runs)).await;
    // The client gives up: the request's future is dropped mid-handler.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(200), app.clone().oneshot(work(5_000))).await;
    assert!(gave_up.is_err());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // The release happens in the background; until then the retry sees 409.
    let mut retried = None;
    for _ in 0..50 {
        let answer = app.clone().oneshot(work(0)).await.expect("infallible");
        if answer.status() != StatusCode::CONFLICT {
            retried = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let retried = retried.expect("the key was released within a second");
    assert_eq!(retried.status(), StatusCode::OK);
    assert!(retried.headers().get("idempotent-replayed").is_none());
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the retry ran");
    db.close().await;
}
