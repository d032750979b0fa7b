//! Projections over the event store on one database, run on SQLite by the messaging binary and
//! on PostgreSQL by the real-services suite: a count-based read model resumes from its
//! checkpoint after a failed batch with no event applied twice, and a rebuild serves the old
//! version until the new one caught up, then equals a fresh run (the old version's tables kept
//! for a grace after the switch).

use allframe_runtime::eventstore::{
    EventStore, ExpectedVersion, NewEvent, ProjectionError, Projections, ReadModel, StreamId,
};
use allframe_runtime::{Database, sqlx};
use serde_json::json;

use super::counts::Counts;
use super::{RecordingBus, outbox_messaging};

/// `count` events `n = 1..=count` over three streams, in batches of 50 per unit of work.
async fn append_events(db: &Database, count: i64) -> EventStore {
    let store = EventStore::open(db).await.expect("the store");
    let messaging = outbox_messaging(db, &RecordingBus::new());
    for chunk in (1..=count).collect::<Vec<_>>().chunks(50) {
        let mut uow = messaging.begin().await.expect("begin");
        for &n in chunk {
            let stream = StreamId::new("Counter", format!("s{}", n % 3));
            let event = NewEvent {
                event_type: "Counted".into(),
                schema_version: 1,
                payload: json!({ "n": n }),
            };
            store
                .append(&mut uow, &stream, ExpectedVersion::Any, &[event])
                .await
                .expect("append");
        }
        uow.commit().await.expect("commit");
    }
    store
}

/// The read model of `model`: (stream, seen, total), by stream.
async fn rows(db: &Database, model: &ReadModel) -> Vec<(String, i64, i64)> {
    let table = model.table("counted");
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT stream, seen, total FROM {table} ORDER BY stream"
    )))
    .fetch_all(db.pool())
    .await
    .expect("the read model")
}

async fn until_idle(projections: &Projections) {
    while projections.catch_up(500).await.expect("a pass") > 0 {}
}

/// What a complete, once-only read model of `append_events(count)` holds.
fn expected(count: i64) -> Vec<(String, i64, i64)> {
    (0..3)
        .map(|s| {
            let ns: Vec<i64> = (1..=count).filter(|n| n % 3 == s).collect();
            (format!("s{s}"), ns.len() as i64, ns.iter().sum())
        })
        .collect()
}

/// Stopped after one batch, then failing in the middle of the next (its transaction rolled
/// back), a projection resumes from its checkpoint and applies every event exactly once.
pub async fn a_projection_resumes_from_its_checkpoint_applying_each_event_once(db: &Database) {
    let store = append_events(db, 1_203).await;
    let first = Projections::open(&store, vec![Counts::failing_at(0)])
        .await
        .expect("open");
    assert_eq!(first.catch_up(500).await.expect("a batch"), 500);
    drop(first);

    let crashing = Projections::open(&store, vec![Counts::failing_at(700)])
        .await
        .expect("open");
    let failed = crashing.catch_up(500).await;
    assert!(
        matches!(failed, Err(ProjectionError::Apply { position: 700, .. })),
        "{failed:?}"
    );
    let status = crashing.status().await.expect("status");
    assert_eq!(status[0].position, 500, "the failed batch moved nothing");

    let resumed = Projections::open(&store, vec![Counts::failing_at(0)])
        .await
        .expect("open");
    until_idle(&resumed).await;
    let model = resumed.current("Counts").await.expect("current");
    assert_eq!(rows(db, &model).await, expected(1_203));
    let last = store
        .version(&StreamId::new("Counter", "s0"))
        .await
        .expect("version");
    assert_eq!(last, 401);
    assert_eq!(resumed.status().await.expect("status")[0].position, 1_203);
}

/// A rebuild builds version 2 from position zero while version 1 keeps serving; once caught
/// up, version 2 is current, version 1's tables are gone, and it equals a fresh run.
pub async fn a_rebuild_serves_the_old_version_until_the_new_one_caught_up(db: &Database) {
    let store = append_events(db, 600).await;
    let grace = std::time::Duration::from_millis(300);
    let projections = Projections::open(&store, vec![Counts::failing_at(0)])
        .await
        .expect("open")
        .with_retire_grace(grace);
    until_idle(&projections).await;
    let v1 = projections.current("Counts").await.expect("current");
    let fresh = rows(db, &v1).await;
    assert_eq!(fresh, expected(600));

    assert_eq!(projections.rebuild("Counts").await.expect("rebuild"), 2);
    projections.catch_up(100).await.expect("a pass");
    assert_eq!(
        projections.current("Counts").await.expect("current"),
        v1,
        "still serving v1"
    );
    assert_eq!(rows(db, &v1).await, fresh);

    until_idle(&projections).await;
    let v2 = projections.current("Counts").await.expect("current");
    assert_eq!(v2.version(), 2);
    assert_eq!(
        rows(db, &v2).await,
        fresh,
        "the rebuilt read model equals the fresh run"
    );
    let states = |projections: Projections| async move {
        let status = projections.status().await.expect("status");
        status
            .into_iter()
            .map(|s| (s.version, s.state))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        states(projections.clone()).await,
        [(1, "retired".to_owned()), (2, "active".to_owned())]
    );
    assert_eq!(
        rows(db, &v1).await,
        fresh,
        "a read that took version 1's name before the switch still finds its table"
    );
    tokio::time::sleep(grace).await;
    projections.catch_up(100).await.expect("a pass");
    let gone = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {}",
        v1.table("counted")
    )))
    .fetch_one(db.pool())
    .await;
    assert!(
        gone.is_err(),
        "version 1's table is dropped after the grace"
    );
    assert_eq!(
        states(projections.clone()).await,
        [(2, "active".to_owned())]
    );
    assert!(matches!(
        projections.rebuild("Nope").await,
        Err(ProjectionError::Unknown(_))
    ));
}

/// Runs the projection runner process on `url` with `vars`; its exit status.
async fn run_projection_process(url: &str, vars: &[(&str, &str)]) -> std::process::ExitStatus {
    let mut command =
        tokio::process::Command::new(super::launch_env::example_binary("projection_runner"));
    command
        .env("DATABASE_URL", url)
        .env("BATCH", "100")
        .envs(vars.iter().copied())
        .kill_on_drop(true);
    tokio::time::timeout(std::time::Duration::from_secs(60), command.status())
        .await
        .expect("the projection runner ends")
        .expect("the projection runner runs")
}

/// The projection of `store` at `url`: where each version stands.
async fn standing(store: &EventStore) -> Vec<(i64, String, i64)> {
    let projections = Projections::open(store, vec![Counts::failing_at(0)])
        .await
        .expect("open");
    projections
        .status()
        .await
        .expect("status")
        .into_iter()
        .map(|s| (s.version, s.state, s.position))
        .collect()
}

/// The projection runner **process**, killed with SIGKILL with a batch applied but not
/// committed, then run again, resumes from its checkpoint; killed again just after a batch of a
/// rebuild committed, then run again, finishes the rebuild. Each time the count-based read
/// model holds every event exactly once.
pub async fn a_projection_process_killed_mid_catch_up_applies_each_event_once(
    db: &Database,
    url: &str,
) {
    use std::os::unix::process::ExitStatusExt as _;

    let store = append_events(db, 1_000).await;
    let killed =
        run_projection_process(url, &[("PROJECTION_CRASH", "projection-batch-applied@3")]).await;
    assert_eq!(
        killed.signal(),
        Some(9),
        "killed at the fail point: {killed:?}"
    );
    assert_eq!(
        standing(&store).await,
        [(1, "active".to_owned(), 200)],
        "the two committed batches, not the third"
    );
    assert!(run_projection_process(url, &[]).await.success());
    let projections = Projections::open(&store, vec![Counts::failing_at(0)])
        .await
        .expect("open");
    let v1 = projections.current("Counts").await.expect("current");
    assert_eq!(rows(db, &v1).await, expected(1_000));

    let killed = run_projection_process(
        url,
        &[
            ("REBUILD", "1"),
            ("PROJECTION_CRASH", "projection-batch-committed@4"),
        ],
    )
    .await;
    assert_eq!(
        killed.signal(),
        Some(9),
        "killed at the fail point: {killed:?}"
    );
    assert_eq!(
        standing(&store).await,
        [
            (1, "active".to_owned(), 1_000),
            (2, "building".to_owned(), 400)
        ],
        "version 1 serves while version 2 is built"
    );
    assert!(run_projection_process(url, &[]).await.success());
    let v2 = projections.current("Counts").await.expect("current");
    assert_eq!(v2.version(), 2);
    assert_eq!(rows(db, &v2).await, expected(1_000));
}

/// A runner idle for a minute applies an append of its own process as soon as it commits: the
/// append wakes it.
pub async fn a_committed_append_wakes_the_projection_runner(db: &Database) {
    let store = append_events(db, 3).await;
    let projections = Projections::open(&store, vec![Counts::failing_at(0)])
        .await
        .expect("open");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let runner = projections.clone();
    let stop = shutdown.clone();
    let running = tokio::spawn(async move {
        runner.run(stop, std::time::Duration::from_secs(60)).await;
    });
    let model = projections.current("Counts").await.expect("current");
    let caught_up = |count: i64| {
        let model = model.clone();
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while rows(db, &model).await != expected(count) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "not applied within 5 s of the commit, with the runner idle for 60 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    caught_up(3).await;

    let messaging = outbox_messaging(db, &RecordingBus::new());
    let mut uow = messaging.begin().await.expect("begin");
    let event = NewEvent {
        event_type: "Counted".into(),
        schema_version: 1,
        payload: json!({ "n": 4 }),
    };
    store
        .append(
            &mut uow,
            &StreamId::new("Counter", "s1"),
            ExpectedVersion::Any,
            &[event],
        )
        .await
        .expect("append");
    uow.commit().await.expect("commit");
    caught_up(4).await;
    shutdown.cancel();
    running.await.expect("the runner stops");
}
