//! The quick start's cache service as its binary, twice, on the embedded defaults (one SQLite
//! file, the local bus, an in-process cache each) beside the event-sourced inventory-service:
//! both instances serve what they cached after the source changed, until inventory renames the
//! stock item and each evicts it on its own (within a bound derived from the bus's poll
//! interval); a `PUT` written behind is stored through the source when the instance gets
//! SIGTERM, none lost.

use reqwest::blocking::Client;
use serde_json::{Value, json};

use super::*;

/// The name `GET {base}/stock-items/{id}` answers.
fn cached_name(client: &Client, base: &str, id: &str) -> Value {
    let value: Value = client
        .get(format!("{base}/stock-items/{id}"))
        .send()
        .and_then(|r| r.json())
        .expect("GET a stock item");
    value["name"].clone()
}

/// Runs `sql` on the cache's SQLite file (the source of the quick start's stock-cache),
/// answering the rows' first column.
fn source(data: &Path, sql: &'static str) -> Vec<String> {
    use allframe::sqlx::sqlite::SqliteConnectOptions;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let options = SqliteConnectOptions::new().filename(data.join("stock-cache.db"));
        let pool = allframe::sqlx::SqlitePool::connect_with(options)
            .await
            .expect("open the cache's database");
        let rows = allframe::sqlx::query_scalar(sql)
            .fetch_all(&pool)
            .await
            .expect("query the source");
        pool.close().await;
        rows
    })
}

#[test]
fn every_instance_evicts_what_an_event_makes_stale_and_writes_behind_survive_sigterm() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("quickstart");
    ignite_into(
        repo_root().join("examples/quickstart/architecture.toml"),
        &out,
        false,
    );
    cargo(
        &out,
        &["build", "-p", "stock-cache", "-p", "inventory-service"],
    );
    let data = work.path().join("data");
    let cache_binary = e2e_target_dir().join("debug/stock-cache");
    let inventory = Service::start(&e2e_target_dir().join("debug/inventory-service"), &data);
    let (a, b) = (
        Service::start(&cache_binary, &data),
        Service::start(&cache_binary, &data),
    );
    let client = Client::new();

    // Written behind through `a`, then cached by both (`b` loads it once stored).
    let put = client
        .put(format!("{}/stock-items/widget-1", a.base))
        .json(&json!({"name": "Widget"}))
        .send()
        .expect("PUT");
    assert_eq!(put.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    while source(&data, "SELECT name FROM stock_items WHERE id = 'widget-1'") != ["Widget"] {
        assert!(Instant::now() < deadline, "the write was never stored");
        std::thread::sleep(Duration::from_millis(50));
    }
    for instance in [&a, &b] {
        assert_eq!(cached_name(&client, &instance.base, "widget-1"), "Widget");
    }

    // The source changes behind the caches: both keep serving what they hold...
    source(
        &data,
        "UPDATE stock_items SET name = 'Widget XL' WHERE id = 'widget-1' RETURNING name",
    );
    for instance in [&a, &b] {
        assert_eq!(cached_name(&client, &instance.base, "widget-1"), "Widget");
    }

    // ... until inventory renames the stock item: each instance follows the event on its own.
    for command in [
        json!({"Create": {"name": "Widget"}}),
        json!({"Rename": {"name": "Widget XL"}}),
    ] {
        let reply = client
            .post(format!("{}/stock-items/widget-1/commands", inventory.base))
            .json(&command)
            .send()
            .expect("POST a command");
        assert_eq!(reply.status(), 200);
    }
    let renamed = Instant::now();
    // The relay is woken by the commit, and each instance polls the local bus every 50 ms:
    // forty polls is ample on a loaded machine, and far below the one-hour TTL.
    let bound = allframe::messaging::LocalBusOptions::default().poll_interval * 40;
    for instance in [&a, &b] {
        while cached_name(&client, &instance.base, "widget-1") != "Widget XL" {
            assert!(
                renamed.elapsed() < bound,
                "{} still served the stale name after {bound:?}",
                instance.base
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // Writes behind are stored when the instance stops: SIGTERM right after the PUTs.
    for n in 1..=20 {
        let put = client
            .put(format!("{}/stock-items/part-{n}", b.base))
            .json(&json!({"name": format!("Part {n}")}))
            .send()
            .expect("PUT");
        assert_eq!(put.status(), 204);
    }
    a.terminate();
    let (status, _) = b.terminate();
    assert!(status.success(), "{status:?}");
    let stored = source(
        &data,
        "SELECT name FROM stock_items WHERE id LIKE 'part-%' ORDER BY id",
    );
    assert_eq!(stored.len(), 20, "{stored:?}");
    let pending = source(
        &data,
        "SELECT CAST(COUNT(*) AS TEXT) FROM allframe_cache_writes",
    );
    assert_eq!(pending, ["0"], "nothing left pending");
}
