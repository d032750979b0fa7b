//! The quick start's event-sourced service as its binary, on the embedded default, beside the
//! quick start's consumer: commands over REST change a stock item at the version `If-Match`
//! names (a stale one is a 409 naming the current version), the `StockLevels` projection
//! follows, notification-service handles the `StockItemAdded` events the outbox published, the
//! state survives a SIGKILL, and a projection rebuilt through the CLI serves the same read
//! model.

use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

use super::*;

/// `POST {base}/stock-items/{id}/commands` with `command`, at the version `if_match` names.
fn send(client: &Client, base: &str, id: &str, command: Value, if_match: Option<&str>) -> Response {
    let mut request = client
        .post(format!("{base}/stock-items/{id}/commands"))
        .json(&command);
    if let Some(version) = if_match {
        request = request.header("if-match", format!("\"{version}\""));
    }
    request.send().expect("POST a command")
}

fn etag(response: &Response) -> Option<&str> {
    response.headers().get("etag").and_then(|v| v.to_str().ok())
}

/// `GET {base}/stock-levels` until `done` holds of its rows (20 s at most); the rows then.
fn stock_levels_until(client: &Client, base: &str, done: &dyn Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<Value> = client
            .get(format!("{base}/stock-levels"))
            .send()
            .and_then(|r| r.json())
            .expect("GET /stock-levels");
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "the projection never got there: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `cargo allframe projections <action>` against inventory-service's admin API, as JSON.
fn projections(
    config: &Path,
    admin_port: &str,
    action: cargo_allframe::projections::Action,
    projection: Option<&str>,
) -> Value {
    let args = cargo_allframe::projections::ProjectionsArgs {
        action,
        projection: projection.map(str::to_owned),
        target: cargo_allframe::admin::Target {
            config: config.to_owned(),
            service: "inventory-service".into(),
            url: Some(format!("http://127.0.0.1:{admin_port}")),
            json: true,
        },
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut reporter = Reporter::new(&mut stdout, &mut stderr, false);
    cargo_allframe::projections::run_with_token(&args, "s3cret", &mut reporter)
        .expect("projections");
    drop(reporter);
    serde_json::from_slice(&stdout).expect("json")
}

#[test]
fn commands_change_aggregates_at_their_version_and_the_projection_and_a_consumer_follow() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("quickstart");
    let config = repo_root().join("examples/quickstart/architecture.toml");
    ignite_into(config.clone(), &out, false);
    cargo(
        &out,
        &[
            "build",
            "-p",
            "inventory-service",
            "-p",
            "notification-service",
        ],
    );
    let binary = e2e_target_dir().join("debug/inventory-service");
    let data = work.path().join("data");
    let admin_port = free_port().to_string();
    let vars = [
        ("ALLFRAME_ADMIN_TOKEN", "s3cret"),
        ("ADMIN_PORT", admin_port.as_str()),
    ];
    let client = Client::new();

    let first = Service::start_with(&binary, &data, &vars);
    let base = first.base.clone();
    let created = send(
        &client,
        &base,
        "widget-1",
        json!({"Create": {"name": "Widget"}}),
        None,
    );
    assert_eq!(created.status(), 200);
    assert_eq!(etag(&created), Some("\"1\""));
    let renamed = send(
        &client,
        &base,
        "widget-1",
        json!({"Rename": {"name": "Widget XL"}}),
        Some("1"),
    );
    assert_eq!(renamed.status(), 200);
    assert_eq!(etag(&renamed), Some("\"2\""));
    // Another writer still at version 1 is refused, told the version it missed.
    let stale = send(
        &client,
        &base,
        "widget-1",
        json!({"Rename": {"name": "Widget S"}}),
        Some("1"),
    );
    assert_eq!(stale.status(), 409);
    assert_eq!(etag(&stale), Some("\"2\""));
    assert_eq!(stale.json::<Value>().expect("json")["version"], 2);
    for n in 2..=4 {
        let name = format!("Part {n}");
        let reply = send(
            &client,
            &base,
            &format!("widget-{n}"),
            json!({"Create": {"name": name}}),
            None,
        );
        assert_eq!(reply.status(), 200);
    }

    let rows = stock_levels_until(&client, &base, &|rows| rows.len() == 4);
    assert_eq!(rows[0]["aggregate_id"], "widget-1");
    assert_eq!(rows[0]["name"], "Widget XL");
    assert_eq!(rows[0]["events"], 2, "each event applied once: {rows:?}");

    // The consumer takes `StockItemAdded` from the same local bus, once per stock item.
    let notifications = Service::start(&e2e_target_dir().join("debug/notification-service"), &data);
    for n in 1..=4 {
        assert_eq!(
            handled_until(&data, "notification-service", &format!("widget-{n}")),
            1
        );
    }

    // The events are the state: a SIGKILL loses nothing, and commands go on at the next version.
    first.kill();
    let second = Service::start_with(&binary, &data, &vars);
    let state: Value = client
        .get(format!("{}/stock-items/widget-1", second.base))
        .send()
        .and_then(|r| r.json())
        .expect("GET the stock item");
    assert_eq!(
        (state["version"].as_u64(), state["state"]["name"].as_str()),
        (Some(2), Some("Widget XL"))
    );
    let again = send(
        &client,
        &second.base,
        "widget-1",
        json!({"Rename": {"name": "Widget"}}),
        Some("2"),
    );
    assert_eq!(etag(&again), Some("\"3\""));

    // A rebuild replays every event into version 2 of the read model, which then serves reads.
    use cargo_allframe::projections::Action;
    let started = projections(&config, &admin_port, Action::Rebuild, Some("StockLevels"));
    assert_eq!(started["version"], 2, "{started}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = projections(&config, &admin_port, Action::List, None);
        let versions: Vec<(i64, String)> = listed["projections"]
            .as_array()
            .expect("projections")
            .iter()
            .map(|p| {
                (
                    p["version"].as_i64().unwrap_or_default(),
                    p["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        // Version 1 is retired: its tables stay for a grace (reads that took its name).
        if versions == [(1, "retired".to_owned()), (2, "active".to_owned())] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rebuild never switched: {listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rebuilt = stock_levels_until(&client, &second.base, &|rows| rows.len() == 4);
    assert_eq!(
        (rebuilt[0]["name"].as_str(), rebuilt[0]["events"].as_i64()),
        (Some("Widget"), Some(3))
    );
    assert_eq!(
        rebuilt[1..],
        rows[1..],
        "the same read model as the one built live"
    );

    for service in [notifications, second] {
        let (status, _) = service.terminate();
        assert_eq!(status.code(), Some(0));
    }
}
