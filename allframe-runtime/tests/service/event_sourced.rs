//! An event-sourced service run in-process on SQLite: commands over REST change an aggregate
//! and answer its version as an `ETag`; `If-Match` makes them conditional, and a conflict is a
//! 409 with the current version that frees the idempotency key, so the retry succeeds; a
//! refused command is a 422, a malformed one a 400 naming the field; the projection follows,
//! and is rebuilt through the admin API.
#![cfg(feature = "sqlite")]

use std::sync::Arc;
use std::time::Duration;

use allframe_runtime::__private::{
    IdempotencySettings, IdempotencyStorage, Launcher, MetricsSettings, RunningService,
    ServiceSettings,
};
use allframe_runtime::component::BoxFuture;
use allframe_runtime::eventstore::{
    Aggregate, AggregateEvent, EventSourcedSettings, Projection, Projections, ReadModel,
    RecordedEvent, aggregate_routes,
};
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service, sqlx};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::launch_env::{free_port, stateless_settings, test_env};

static SETTINGS: ServiceSettings = ServiceSettings {
    archetype: "event-sourced",
    ..stateless_settings("shop", "tally-service")
};

/// A running total that only goes up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tally {
    total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Added {
    amount: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
enum TallyCommand {
    Add { amount: i64 },
}

#[derive(Debug, thiserror::Error)]
#[error("only a positive amount can be added, not {0}")]
struct NotPositive(i64);

impl AggregateEvent for Added {
    fn event_type(&self) -> &'static str {
        "Added"
    }
    fn schema_version(event_type: &str) -> Option<u32> {
        (event_type == "Added").then_some(1)
    }
    fn to_payload(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
    fn decode(_: &str, payload: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(payload)
    }
}

impl Aggregate for Tally {
    const TYPE: &'static str = "Tally";
    type Event = Added;
    type Command = TallyCommand;
    type Error = NotPositive;

    fn handle(&self, _id: &str, command: TallyCommand) -> Result<Vec<Added>, NotPositive> {
        let TallyCommand::Add { amount } = command;
        if amount <= 0 {
            return Err(NotPositive(amount));
        }
        Ok(vec![Added { amount }])
    }

    fn apply(&mut self, event: &Added) {
        self.total += event.amount;
    }
}

/// The sum of every tally, one row.
struct GrandTotal;

impl Projection for GrandTotal {
    fn name(&self) -> &'static str {
        "GrandTotal"
    }
    fn tables(&self) -> &'static [&'static str] {
        &["grand_total"]
    }
    fn create<'a>(
        &'a self,
        conn: &'a mut sqlx::AnyConnection,
        model: &'a ReadModel,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let table = model.table("grand_total");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} (total BIGINT NOT NULL)"
            )))
            .execute(&mut *conn)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (total) VALUES (0)"
            )))
            .execute(conn)
            .await?;
            Ok(())
        })
    }
    fn apply<'a>(
        &'a self,
        conn: &'a mut sqlx::AnyConnection,
        model: &'a ReadModel,
        event: &'a RecordedEvent,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let table = model.table("grand_total");
            let amount = event.payload["amount"].as_i64().unwrap_or_default();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET total = total + $1"
            )))
            .bind(amount)
            .execute(conn)
            .await?;
            Ok(())
        })
    }
}

struct TallyService;

impl Service for TallyService {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for TallyService {
    fn routes() -> Router<Self> {
        aggregate_routes::<Self, Tally>("/tallies")
    }
}

fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(GrandTotal)]
}

async fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> RunningService {
    Launcher::<TallyService>::new(&SETTINGS)
        .metrics(MetricsSettings { port: None })
        .idempotency(IdempotencySettings {
            key_header: "Idempotency-Key",
            ttl_hours: 24,
            storage: IdempotencyStorage::Sqlite,
        })
        .event_sourced(
            EventSourcedSettings {
                snapshot_frequency: 2,
                projection_idle: Duration::from_millis(20),
            },
            projections,
        )
        .env(test_env(dir, extra))
        .start()
        .await
        .expect("the service starts")
}

async fn send(
    running: &RunningService,
    id: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!(
            "http://{}/tallies/{id}/commands",
            running.rest_addr()
        ))
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("POST")
}

fn etag(response: &reqwest::Response) -> String {
    let value = response.headers().get("etag").expect("an ETag");
    value.to_str().expect("text").to_owned()
}

#[tokio::test]
async fn commands_change_the_aggregate_at_the_version_they_expect_and_the_projection_follows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = start(dir.path(), &[]).await;
    let add = |amount: i64| json!({ "Add": { "amount": amount } });

    let first = send(&running, "t-1", add(5), &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(etag(&first), "\"1\"");
    let second = send(&running, "t-1", add(7), &[("If-Match", "\"1\"")]).await;
    assert_eq!(etag(&second), "\"2\"");
    let body: Value = second.json().await.expect("json");
    assert_eq!(
        (body["version"].clone(), body["state"]["total"].clone()),
        (json!(2), json!(12))
    );

    // A stale version is a conflict naming the current one, and it frees the key.
    let key = [("If-Match", "\"1\""), ("Idempotency-Key", "retry-me")];
    let stale = send(&running, "t-1", add(1), &key).await;
    assert_eq!(stale.status(), 409);
    assert_eq!(etag(&stale), "\"2\"");
    let conflict: Value = stale.json().await.expect("json");
    assert_eq!(conflict["version"], 2);
    let retried = [("If-Match", "\"2\""), ("Idempotency-Key", "retry-me")];
    let retry = send(&running, "t-1", add(1), &retried).await;
    assert_eq!(retry.status(), 200, "the retry under the same key runs");
    assert_eq!(etag(&retry), "\"3\"");

    let refused = send(&running, "t-1", add(0), &[]).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.expect("text").contains("not 0"));
    let malformed = send(&running, "t-1", json!({ "Add": { "amount": "x" } }), &[]).await;
    assert_eq!(malformed.status(), 400);
    let said = malformed.text().await.expect("text");
    assert!(said.contains("Add.amount"), "{said}");

    let read = reqwest::get(format!("http://{}/tallies/t-1", running.rest_addr()))
        .await
        .expect("GET");
    assert_eq!(etag(&read), "\"3\"");
    let shown: Value = read.json().await.expect("json");
    assert_eq!(shown["state"]["total"], 13);
    let missing = reqwest::get(format!("http://{}/tallies/none", running.rest_addr()))
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);

    let projections = running
        .ctx()
        .get::<Projections>()
        .cloned()
        .expect("projections");
    let model = projections.current("GrandTotal").await.expect("current");
    let total = || async {
        let sql = format!("SELECT total FROM {}", model.table("grand_total"));
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(running.ctx().db().pool())
            .await
            .expect("the read model");
        total
    };
    for _ in 0..200 {
        if total().await == 13 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        total().await,
        13,
        "the projection followed every command once"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_lists_the_projections_and_rebuilds_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let admin = [
        ("ALLFRAME_ADMIN_TOKEN", "s3cret"),
        ("ADMIN_PORT", port.as_str()),
    ];
    let running = start(dir.path(), &admin).await;
    send(&running, "t-1", json!({ "Add": { "amount": 4 } }), &[]).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let anonymous = client.get(url("/projections")).send().await.expect("GET");
    assert_eq!(anonymous.status(), 401);

    let rebuild = client
        .post(url("/projections/GrandTotal/rebuild"))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("POST");
    assert_eq!(rebuild.status(), 202);
    assert_eq!(rebuild.json::<Value>().await.expect("json")["version"], 2);
    let unknown = client
        .post(url("/projections/Nope/rebuild"))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("POST");
    assert_eq!(unknown.status(), 404);

    // Version 1 keeps its tables for a grace after the switch (reads that took its name).
    let switched = json!([
        { "name": "GrandTotal", "version": 1, "state": "retired", "position": 1 },
        { "name": "GrandTotal", "version": 2, "state": "active", "position": 1 },
    ]);
    let mut listed = Value::Null;
    for _ in 0..200 {
        listed = client
            .get(url("/projections"))
            .bearer_auth("s3cret")
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        if listed["projections"] == switched {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        listed["projections"], switched,
        "the rebuilt version caught up and is current"
    );
    running.shutdown().await;
}
