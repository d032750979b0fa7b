//! End to end: ignite the quick-start architecture, lint and build the generated workspace, run
//! its own tests (and see its events crate's schema test catch a changed payload), start a
//! service on the embedded SQLite default, write through REST and read back (also after a
//! restart), see the write's event published through the outbox to the local bus and handled
//! once by the quick start's consumer, a repeated idempotent request replayed, then SIGTERM it
//! and expect exit code 0 within the deadline. Saga orchestrators are in `e2e/saga.rs`, the
//! event-sourced service in `e2e/event_sourced.rs`, the cache in `e2e/cache.rs`.
//!
//! The generated workspace builds into `<target dir>/e2e` (`CARGO_TARGET_DIR` when set, else
//! the repository's `target/`) so repeated runs reuse its dependencies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use allframe::messaging::{
    DEFAULT_BUS_FILE, Envelope, LocalBus, LocalBusOptions, OutboundMessage, PayloadFormat,
    SubscribeOptions, topic_name,
};
use allframe_tests::{free_port, repo_root};
use cargo_allframe::dlq::{Action, DlqArgs};
use cargo_allframe::ignite::{IgniteArgs, ignite};
use cargo_allframe::report::Reporter;

#[path = "e2e/cache.rs"]
mod cache;
#[path = "e2e/event_sourced.rs"]
mod event_sourced;
#[path = "e2e/saga.rs"]
mod saga;

fn e2e_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("e2e")
}

fn cargo(workspace: &Path, args: &[&str]) {
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", e2e_target_dir())
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "`cargo {}` failed in the generated workspace",
        args.join(" ")
    );
}

/// Ignites `config` into `out` against this repository's runtime (with `deny_warnings`, a
/// warning fails it); what it wrote to stderr (the warnings).
fn ignite_into(config: PathBuf, out: &Path, deny_warnings: bool) -> String {
    let args = IgniteArgs {
        config,
        out: Some(out.to_owned()),
        runtime_path: Some(repo_root()),
        dry_run: false,
        force: false,
        deny_warnings,
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut reporter = Reporter::new(&mut stdout, &mut stderr, false);
    ignite(&args, &mut reporter).expect("ignite succeeds");
    drop(reporter);
    String::from_utf8_lossy(&stderr).into_owned()
}

/// Lints the generated workspace: clippy on every target, warnings denied.
fn clippy(workspace: &Path) {
    cargo(
        workspace,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    );
}

struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(binary: &Path, data_dir: &Path) -> Self {
        Self::start_with(binary, data_dir, &[])
    }

    /// Starts `binary` on the embedded defaults in `data_dir`, with `vars` set besides.
    fn start_with(binary: &Path, data_dir: &Path, vars: &[(&str, &str)]) -> Self {
        let (port, grpc_port) = (free_port(), free_port());
        let child = Command::new(binary)
            .envs(vars.iter().copied())
            .env("PORT", port.to_string())
            .env("GRPC_PORT", grpc_port.to_string())
            .env("ALLFRAME_BIND_ADDR", "127.0.0.1")
            .env("ALLFRAME_DATA_DIR", data_dir)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("service starts");
        let service = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        service.wait_ready();
        service
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = reqwest::blocking::get(format!("{}/health/ready", self.base));
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{} never became ready", self.base);
    }

    /// SIGKILL: the process dies at once, wherever it was.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    fn terminate(mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(40) {
                let _ = self.child.kill();
                panic!("service did not exit within 40 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The `UserCreated` events on the local bus in `data_dir`, read by a fresh consumer group until
/// one is about `id` (20 s at most).
fn user_created_events_until(data_dir: &Path, id: &str) -> Vec<Envelope> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let bus = LocalBus::open(&data_dir.join(DEFAULT_BUS_FILE), LocalBusOptions::default())
            .await
            .expect("open the local bus");
        let topic = topic_name("quickstart", "user-service", "UserCreated");
        let mut subscription = bus
            .subscribe(SubscribeOptions::new("e2e-check", [topic]))
            .await
            .expect("subscribe");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut events: Vec<Envelope> = Vec::new();
        while !events.iter().any(|e| e.aggregate_id == id) {
            let delivery = tokio::time::timeout_at(deadline, subscription.next())
                .await
                .unwrap_or_else(|_| panic!("no UserCreated for {id} within 20 s: {events:?}"))
                .expect("read the bus");
            events.push(delivery.envelope().clone());
        }
        subscription.close().await.expect("leave the group");
        events
    })
}

/// Polls `query` (one number, bound to `bind`) on the consumer `service`'s SQLite file in
/// `data_dir` until `done` holds of its answer (`within` at most); its last answer.
fn poll_consumer(
    data_dir: &Path,
    service: &str,
    query: &'static str,
    bind: &str,
    done: impl Fn(i64) -> bool,
    within: Duration,
) -> i64 {
    use allframe::sqlx::sqlite::SqliteConnectOptions;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(format!("{service}.db")))
            .read_only(true);
        let pool = allframe::sqlx::SqlitePool::connect_with(options)
            .await
            .expect("open the consumer's database");
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let answer: i64 = allframe::sqlx::query_scalar(query)
                .bind(bind)
                .fetch_one(&pool)
                .await
                .expect("read received_events");
            if done(answer) || tokio::time::Instant::now() > deadline {
                pool.close().await;
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// How many events about `aggregate_id` the consumer `service` recorded in its
/// `received_events`, once there is one (20 s at most).
fn handled_until(data_dir: &Path, service: &str, aggregate_id: &str) -> i64 {
    poll_consumer(
        data_dir,
        service,
        "SELECT COUNT(*) FROM received_events WHERE aggregate_id = ?",
        aggregate_id,
        |count| count > 0,
        Duration::from_secs(20),
    )
}

#[test]
fn ignite_build_run_and_stop_a_stateless_service() {
    let work = tempfile::tempdir().expect("tempdir");
    let out: PathBuf = work.path().join("quickstart");
    let warnings = ignite_into(
        repo_root().join("examples/quickstart/architecture.toml"),
        &out,
        false,
    );
    assert!(
        !warnings.contains("are not generated by this version: `notification-service`"),
        "the consumer is generated: {warnings}"
    );

    clippy(&out);
    cargo(&out, &["build", "--workspace"]);
    cargo(&out, &["test", "--workspace"]);

    // The shared events crate keeps each payload's JSON Schema: the first test run wrote them,
    // and a changed payload now fails until the schema is updated.
    let schema = out.join("events/schemas/UserCreated.json");
    assert!(
        std::fs::read_to_string(&schema).is_ok_and(|s| s.contains("\"name\"")),
        "{} holds the payload's schema",
        schema.display()
    );
    let event = out.join("events/src/user_created.rs");
    let source = std::fs::read_to_string(&event).expect("the event type");
    let widened = source.replace(
        "    pub name: String,\n",
        "    pub name: String,\n    /// Added.\n    pub email: String,\n",
    );
    assert_ne!(widened, source, "the event type has a `name` field");
    std::fs::write(&event, widened).expect("change the payload");
    let run = Command::new(env!("CARGO"))
        .args(["test", "-p", "quickstart-events", "--quiet"])
        .current_dir(&out)
        .env("CARGO_TARGET_DIR", e2e_target_dir())
        .output()
        .expect("cargo runs");
    assert!(
        !run.status.success(),
        "a changed payload fails the schema test"
    );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        report.contains("the payload of UserCreated changed"),
        "the failure names the event: {report}"
    );
    std::fs::write(&event, source).expect("restore the payload");

    let binary = e2e_target_dir().join("debug/user-service");
    let data = work.path().join("data");
    let client = reqwest::blocking::Client::new();

    let service = Service::start(&binary, &data);
    let live = client
        .get(format!("{}/health/live", service.base))
        .send()
        .expect("live");
    assert_eq!(live.status(), 200);
    let created = client
        .post(format!("{}/users", service.base))
        .json(&serde_json::json!({ "name": "Ada" }))
        .send()
        .expect("POST /users");
    assert_eq!(created.status(), 201);
    let user: serde_json::Value = created.json().expect("json body");
    let id = user["id"].as_str().expect("id in the answer").to_owned();
    let read: serde_json::Value = client
        .get(format!("{}/users/{id}", service.base))
        .send()
        .expect("GET /users/{id}")
        .json()
        .expect("json");
    assert_eq!(read["name"], "Ada");
    let missing = client
        .get(format!("{}/users/nope", service.base))
        .send()
        .expect("GET");
    assert_eq!(missing.status(), 404);

    // The create handler's unit of work wrote `UserCreated` to the outbox; the relay published it.
    let events = user_created_events_until(&data, &id);
    let [event] = events.as_slice() else {
        panic!("exactly one event for one user: {events:?}");
    };
    assert_eq!(event.event_type, "UserCreated");
    assert_eq!(event.source, "user-service");
    let payload: serde_json::Value = serde_json::from_slice(&event.payload).expect("json payload");
    assert_eq!(payload, user, "the event carries the created user");

    // notification-service consumes `UserCreated` from the same local bus (`data/bus.db`) and
    // records it in its own database (`data/notification-service.db`), once.
    let notifications = Service::start(&e2e_target_dir().join("debug/notification-service"), &data);
    assert_eq!(handled_until(&data, "notification-service", &id), 1);
    let metrics = client
        .get(format!("{}/metrics", notifications.base))
        .send()
        .and_then(|r| r.text())
        .expect("GET /metrics");
    assert!(
        metrics.lines().any(|line| {
            line.starts_with("allframe_consumer_messages_total{")
                && line.contains("event=\"UserCreated\"")
                && line.contains("outcome=\"handled\"")
                && line.ends_with(" 1")
        }),
        "the consumer counts the handled event: {metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("allframe_consumer_lag{")
                && line
                    .rsplit_once(' ')
                    .is_some_and(|(_, value)| value.parse::<u64>().is_ok())),
        "the consumer reports its lag from the bus: {metrics}"
    );
    // Its handler mails (`channels = ["email"]`); with no SMTP_URL the mail is a file under
    // the data dir, named by its idempotency key.
    let mails = mails_until(&data, |n| n >= 1);
    assert_eq!(mails.len(), 1, "one mail for one event: {mails:?}");
    let key = mails[0]["idempotency_key"].as_str().expect("a key");
    assert!(key.ends_with(".email.1"), "{key}");
    assert_eq!(mails[0]["subject"], "UserCreated");
    let (status, _) = notifications.terminate();
    assert_eq!(status.code(), Some(0), "the consumer stops cleanly");

    // The file enables idempotency: the same key runs the request once.
    let keyed = |name: &str| {
        client
            .post(format!("{}/users", service.base))
            .header("Idempotency-Key", "e2e-grace")
            .json(&serde_json::json!({ "name": name }))
            .send()
            .expect("POST /users with a key")
    };
    let first = keyed("Grace");
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().expect("json");
    let again = keyed("Grace");
    assert_eq!(again.status(), 201);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(again.json::<serde_json::Value>().expect("json"), first);
    let other_body = keyed("Hopper");
    assert_eq!(other_body.status(), 422, "same key, another body");

    // `[observability] metrics = "prometheus"` is the default: the macro mounted `/metrics`,
    // counting the POSTs above by route template and exposing the relay's throughput.
    let metrics = client
        .get(format!("{}/metrics", service.base))
        .send()
        .expect("GET /metrics")
        .text()
        .expect("metrics text");
    let created = metrics
        .lines()
        .find(|line| {
            line.starts_with("http_server_requests_total{")
                && line.contains("method=\"POST\",route=\"/users\",status=\"201\"")
        })
        .unwrap_or_else(|| panic!("POST /users counted: {metrics}"));
    // Ada, Grace and Grace's replay: the idempotency layer's answers are counted by route too.
    assert!(created.ends_with(" 3"), "{created}");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("http_server_requests_total{")
                && line.contains("method=\"POST\",route=\"/users\",status=\"422\"")
                && line.ends_with(" 1")),
        "the 422 for another body under Grace's key: {metrics}"
    );
    let published = metrics
        .lines()
        .find(|line| line.starts_with("allframe_outbox_published_total{"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the relay's counter: {metrics}"));
    assert!(
        published >= 1,
        "UserCreated for Ada was published: {metrics}"
    );

    let (status, took) = service.terminate();
    assert_eq!(status.code(), Some(0), "clean shutdown exits 0");
    assert!(
        took < Duration::from_secs(30),
        "within the 30 s drain deadline: {took:?}"
    );

    // The write went to the embedded database on disk: a new process reads it back.
    let again = Service::start(&binary, &data);
    let read: serde_json::Value = client
        .get(format!("{}/users/{id}", again.base))
        .send()
        .expect("GET after restart")
        .json()
        .expect("json");
    assert_eq!(read["name"], "Ada");
    let (status, _) = again.terminate();
    assert_eq!(status.code(), Some(0));
}

/// Names that meet in one scope of the generated code: a producer `reading` (the type
/// `Reading`) whose entity `Reading` publishes the event `Reading`. The workspace lints clean,
/// so the entity's input type, the shared event type and the service type never shadow one
/// another.
#[test]
fn a_service_entity_and_event_of_one_name_build() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("architecture.toml");
    std::fs::write(
        &config,
        "[architecture]\nname = \"clash\"\n\n[[services]]\nname = \"reading\"\ntype = \"producer\"\n\
         [services.domain]\nentities = [\"Reading\"]\nevents = [\"Reading\"]\n\
         [services.messaging]\npattern = \"outbox\"\n[services.idempotency]\nenabled = true\n",
    )
    .expect("write the file");
    let out = work.path().join("clash");
    ignite_into(config, &out, true);
    clippy(&out);
}

/// The quick start's `UserCreated` reaches its consumer over NATS JetStream: the same binaries
/// as on the embedded default, with `EVENT_BUS_URL` set (real-services suite).
#[test]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222"]
fn a_created_user_reaches_the_consumer_over_nats() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("quickstart");
    ignite_into(
        repo_root().join("examples/quickstart/architecture.toml"),
        &out,
        false,
    );
    cargo(
        &out,
        &["build", "-p", "user-service", "-p", "notification-service"],
    );
    let nats = [("EVENT_BUS_URL", "nats://127.0.0.1:4222")];
    let data = work.path().join("data");
    let users = Service::start_with(&e2e_target_dir().join("debug/user-service"), &data, &nats);
    let notifications = Service::start_with(
        &e2e_target_dir().join("debug/notification-service"),
        &data,
        &nats,
    );
    let created: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{}/users", users.base))
        .json(&serde_json::json!({ "name": "Ada" }))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("POST /users");
    let id = created["id"].as_str().expect("an id");
    assert_eq!(handled_until(&data, "notification-service", id), 1);
    assert!(
        !data.join(DEFAULT_BUS_FILE).exists(),
        "the local bus was not used"
    );
    for service in [notifications, users] {
        let (status, _) = service.terminate();
        assert_eq!(status.code(), Some(0));
    }
}

/// Publishes `count` `UserCreated` events of users `u-0`… as `user-service` would, to the local
/// bus in `data_dir`.
fn publish_users_created(data_dir: &Path, count: usize) {
    let payloads = (0..count)
        .map(|n| serde_json::json!({ "id": format!("u-{n}"), "name": "Ada" }))
        .collect();
    publish_user_created_payloads(data_dir, payloads);
}

/// Publishes `messages` to the local bus in `data_dir`, as the services of the machine do.
fn publish(data_dir: &Path, messages: &[OutboundMessage]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let bus = LocalBus::open(&data_dir.join(DEFAULT_BUS_FILE), LocalBusOptions::default())
            .await
            .expect("open the local bus");
        bus.publish(messages).await.expect("publish");
    });
}

/// Publishes one `UserCreated` per payload (of user `u-<index>`) to the local bus in
/// `data_dir`, as `user-service` would.
fn publish_user_created_payloads(data_dir: &Path, payloads: Vec<serde_json::Value>) {
    let topic = topic_name("quickstart", "user-service", "UserCreated");
    let messages: Vec<OutboundMessage> = payloads
        .into_iter()
        .enumerate()
        .map(|(n, payload)| OutboundMessage {
            topic: topic.clone(),
            envelope: Envelope {
                id: uuid::Uuid::now_v7(),
                event_type: "UserCreated".into(),
                schema_version: 1,
                aggregate_type: "User".into(),
                aggregate_id: format!("u-{n}"),
                occurred_at: std::time::SystemTime::now(),
                source: "user-service".into(),
                correlation_id: format!("c-{n}"),
                causation_id: None,
                traceparent: None,
                tracestate: None,
                tenant_id: None,
                format: PayloadFormat::Json,
                payload: serde_json::to_vec(&payload).expect("json"),
            },
        })
        .collect();
    publish(data_dir, &messages);
}

/// The mails the quickstart's notification-service wrote under `data_dir/channels/email` (no
/// SMTP_URL set), once `enough` of them are there (at most 60 s).
fn mails_until(data_dir: &Path, enough: impl Fn(usize) -> bool) -> Vec<serde_json::Value> {
    let dir = data_dir.join("channels/email");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                    .collect()
            })
            .unwrap_or_default();
        if enough(files.len()) || Instant::now() > deadline {
            return files
                .iter()
                .map(|path| {
                    serde_json::from_slice(&std::fs::read(path).expect("a mail file"))
                        .expect("a mail is JSON")
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A consumer killed with SIGKILL in the middle of a backlog and started again: each event's
/// effect exists exactly once (a handler's rows commit with its inbox row, and what was handled
/// but not yet acknowledged comes back as a duplicate), none is lost.
#[test]
fn a_consumer_killed_mid_backlog_handles_each_event_exactly_once() {
    const EVENTS: usize = 1000;
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("quickstart");
    ignite_into(
        repo_root().join("examples/quickstart/architecture.toml"),
        &out,
        false,
    );
    cargo(&out, &["build", "-p", "notification-service"]);
    let data = work.path().join("data");
    publish_users_created(&data, EVENTS);
    let binary = e2e_target_dir().join("debug/notification-service");
    let all = "SELECT COUNT(*) FROM received_events WHERE event_type = ?";

    let first = Service::start(&binary, &data);
    let patience = Duration::from_secs(60);
    poll_consumer(
        &data,
        "notification-service",
        all,
        "UserCreated",
        |n| n >= 20,
        patience,
    );
    first.kill();
    let before = poll_consumer(
        &data,
        "notification-service",
        all,
        "UserCreated",
        |_| true,
        patience,
    );
    assert!(
        (20..EVENTS as i64).contains(&before),
        "killed in the middle of the backlog: {before} of {EVENTS} handled"
    );

    let second = Service::start(&binary, &data);
    let done = |n| n >= EVENTS as i64;
    let after = poll_consumer(
        &data,
        "notification-service",
        all,
        "UserCreated",
        done,
        patience,
    );
    // Each event mailed once: a mail enqueued before the kill is sent after the restart, one
    // sent twice (killed between the send and its row's removal) rewrites its own file.
    let mails = mails_until(&data, |n| n >= EVENTS);
    let (status, _) = second.terminate();
    assert_eq!(status.code(), Some(0));
    assert_eq!(mails.len(), EVENTS, "one mail per event");
    let distinct = poll_consumer(
        &data,
        "notification-service",
        "SELECT COUNT(DISTINCT aggregate_id) FROM received_events WHERE event_type = ?",
        "UserCreated",
        |_| true,
        patience,
    );
    assert_eq!(
        (after, distinct),
        (EVENTS as i64, EVENTS as i64),
        "every event handled once"
    );
}

/// `cargo allframe dlq` against a running consumer's admin API: the payload it cannot read is
/// listed with its reason, shown with its bytes, fails again on replay (it still cannot be
/// read), is refused without the right token, and is purged.
#[test]
fn dead_letters_are_listed_shown_replayed_and_purged_through_the_admin_api() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("quickstart");
    let config = repo_root().join("examples/quickstart/architecture.toml");
    ignite_into(config.clone(), &out, false);
    cargo(&out, &["build", "-p", "notification-service"]);
    let data = work.path().join("data");
    // `u-0`'s payload has a number for its id: no handler can read it.
    publish_user_created_payloads(
        &data,
        vec![
            serde_json::json!({ "id": 5, "name": "Ada" }),
            serde_json::json!({ "id": "u-1", "name": "Grace" }),
        ],
    );
    let admin_port = free_port().to_string();
    let consumer = Service::start_with(
        &e2e_target_dir().join("debug/notification-service"),
        &data,
        &[
            ("ALLFRAME_ADMIN_TOKEN", "s3cret"),
            ("ADMIN_PORT", &admin_port),
        ],
    );
    assert_eq!(handled_until(&data, "notification-service", "u-1"), 1);

    let dlq = |action: Action, id: Option<i64>, token: &str| {
        let args = DlqArgs {
            action,
            id,
            target: cargo_allframe::admin::Target {
                config: config.clone(),
                service: "notification-service".into(),
                url: Some(format!("http://127.0.0.1:{admin_port}")),
                json: true,
            },
            yes: true,
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut reporter = Reporter::new(&mut stdout, &mut stderr, false);
        let result = cargo_allframe::dlq::run_with_token(&args, token, &mut reporter);
        drop(reporter);
        result.map(|()| serde_json::from_slice::<serde_json::Value>(&stdout).expect("json"))
    };
    let listed = dlq(Action::List, None, "s3cret").expect("list");
    let [letter] = listed.as_array().expect("an array").as_slice() else {
        panic!("one dead letter: {listed}");
    };
    assert_eq!(
        (
            &letter["event_type"],
            &letter["reason"],
            &letter["attempts"]
        ),
        (
            &serde_json::json!("UserCreated"),
            &serde_json::json!("poison"),
            &serde_json::json!(1)
        )
    );
    let id = letter["id"].as_i64().expect("an id");
    let shown = dlq(Action::Show, Some(id), "s3cret").expect("show");
    assert_eq!(shown["payload"], r#"{"id":5,"name":"Ada"}"#);
    assert_eq!(shown["headers"]["ce-aggregateid"], "u-0");
    let replayed = dlq(Action::Replay, Some(id), "s3cret").expect("replay");
    assert_eq!(replayed["outcome"], "failed_again", "{replayed}");
    match dlq(Action::List, None, "wrong") {
        Err(cargo_allframe::CliError::AdminRefused { status, .. }) => assert_eq!(status, 401),
        other => panic!("a wrong token is refused: {other:?}"),
    }
    assert_eq!(
        dlq(Action::Purge, None, "s3cret").expect("purge")["purged"],
        1
    );
    assert_eq!(
        dlq(Action::List, None, "s3cret").expect("list"),
        serde_json::json!([])
    );
    let (status, _) = consumer.terminate();
    assert_eq!(status.code(), Some(0));
}
