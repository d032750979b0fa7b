//! The saga crash tests, run on SQLite by the default suite and on PostgreSQL by the
//! real-services suite: the orchestrator **process** (`examples/saga_orchestrator.rs`) is
//! killed with SIGKILL at each fail point of each step and compensation, then restarted; every
//! saga ends completed or fully compensated, and the recording participant (an HTTP server in
//! this process) sees each step applied once. And an orchestrator paused (SIGSTOP) after a
//! step, whose saga another instance took over, is refused its stale write when it resumes.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allframe_runtime::axum;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

#[path = "../launch_env/mod.rs"]
mod launch_env;

const STEPS: [&str; 3] = ["ValidateInventory", "ReservePayment", "CreateShipment"];
const FORWARD_POINTS: [&str; 3] = [
    "saga-step-started",
    "saga-step-applied",
    "saga-step-committed",
];
const BACKWARD_POINTS: [&str; 3] = [
    "saga-compensation-started",
    "saga-compensation-applied",
    "saga-compensation-committed",
];

/// Where one case's orchestrators keep their state: the variables to set, and how to remove it
/// when the case ends (a temporary directory, a scratch schema).
pub struct Store {
    /// `ALLFRAME_DATA_DIR` or `DATABASE_URL`.
    pub vars: Vec<(String, String)>,
    /// Removes the store.
    pub remove: Box<dyn FnOnce() -> futures_util::future::BoxFuture<'static, ()> + Send>,
}

/// A participant that applies each key once, as one deduplicating by idempotency key does,
/// and records every call.
#[derive(Clone, Default)]
struct Participant {
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl Participant {
    async fn serve(&self) -> String {
        let calls = Arc::clone(&self.calls);
        let app = axum::Router::new().route(
            "/apply",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let calls = Arc::clone(&calls);
                async move {
                    let key = body["key"].as_str().unwrap_or_default().to_owned();
                    let name = body["name"].as_str().unwrap_or_default().to_owned();
                    calls.lock().expect("calls").push((key, name));
                    "applied"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// How often each name of saga `id` was called.
    fn calls(&self, id: &str) -> BTreeMap<String, usize> {
        let prefix = format!("{id}:");
        let mut counts = BTreeMap::new();
        for (key, name) in self.calls.lock().expect("calls").iter() {
            if key.starts_with(&prefix) {
                *counts.entry(name.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// The names of saga `id` in the order they were first applied.
    fn applied(&self, id: &str) -> Vec<String> {
        let prefix = format!("{id}:");
        let mut applied: Vec<String> = Vec::new();
        for (key, name) in self.calls.lock().expect("calls").iter() {
            if key.starts_with(&prefix) && !applied.contains(name) {
                applied.push(name.clone());
            }
        }
        applied
    }
}

/// The orchestrator example, built by `cargo test` beside this test binary.
fn binary() -> PathBuf {
    launch_env::example_binary("saga_orchestrator")
}

/// One orchestrator process and its REST address.
struct Orchestrator {
    child: Child,
    base: String,
    output: Arc<Mutex<String>>,
}

/// Appends what `pipe` carries to `output` until it closes.
async fn collect(mut pipe: impl tokio::io::AsyncRead + Unpin, output: Arc<Mutex<String>>) {
    let mut buffer = [0_u8; 4096];
    while let Ok(read) = pipe.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        output
            .lock()
            .expect("output")
            .push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

impl Orchestrator {
    async fn start(store: &Store, participant: &str, crash: Option<&str>) -> Self {
        let mut command = Command::new(binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // Any free port, read back from its log: a port probed here could be taken by one
            // of the other orchestrators starting at the same time.
            .env("PORT", "0")
            .env("ALLFRAME_BIND_ADDR", "127.0.0.1")
            .env("ALLFRAME_SAGA_LEASE_SECS", "1")
            .env("ALLFRAME_SHUTDOWN_DELAY_SECS", "0")
            .env("PARTICIPANT_URL", participant)
            .env("RUST_LOG", "info")
            .envs(store.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(crash) = crash {
            command.env("SAGA_CRASH", crash);
        }
        let mut child = command.spawn().expect("spawn the orchestrator");
        // Logs go to stdout, the fail point's word to stderr: both are kept, in one text.
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        tokio::spawn(collect(stdout, Arc::clone(&output)));
        tokio::spawn(collect(stderr, Arc::clone(&output)));
        let mut orchestrator = Self {
            child,
            base: String::new(),
            output,
        };
        orchestrator.base = orchestrator.listening().await;
        orchestrator.ready().await;
        orchestrator
    }

    /// The REST address the process logged, once it listens.
    async fn listening(&self) -> String {
        const MARK: &str = "listening protocol=\"rest\" addr=";
        for _ in 0..500 {
            let output = self.output();
            if let Some((_, rest)) = output.split_once(MARK)
                && let Some(addr) = rest.split_whitespace().next()
            {
                return format!("http://{addr}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the orchestrator did not listen:\n{}", self.output());
    }

    async fn ready(&self) {
        for _ in 0..300 {
            if let Ok(answer) = reqwest::get(format!("{}/health/ready", self.base)).await
                && answer.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the orchestrator did not get ready:\n{}", self.output());
    }

    /// What the process printed so far.
    fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Posts a saga whose driving may kill this process before it answers.
    async fn post_saga(&self, input: Value) {
        let _ = reqwest::Client::new()
            .post(format!("{}/sagas", self.base))
            .json(&input)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
    }

    /// The id of the one saga of this store.
    async fn only_saga(&self) -> String {
        let listed: Value = reqwest::get(format!("{}/sagas", self.base))
            .await
            .expect("GET /sagas")
            .json()
            .await
            .expect("json");
        let sagas = listed["sagas"].as_array().expect("sagas");
        assert_eq!(sagas.len(), 1, "{listed}");
        sagas[0]["id"].as_str().expect("id").to_owned()
    }

    async fn saga(&self, id: &str) -> Value {
        reqwest::get(format!("{}/sagas/{id}", self.base))
            .await
            .expect("GET /sagas/{id}")
            .json()
            .await
            .expect("json")
    }

    /// Polls the saga until it is no longer running or compensating.
    async fn settled(&self, id: &str) -> Value {
        for _ in 0..1500 {
            let saga = self.saga(id).await;
            if !matches!(saga["status"].as_str(), Some("running" | "compensating")) {
                return saga;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("saga {id} did not settle:\n{}", self.output());
    }

    /// Waits for the process to be killed by a fail point.
    async fn killed(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the fail point was not reached:\n{}", self.output()))
            .expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "killed by SIGKILL:\n{}",
            self.output()
        );
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Whether process `pid` is stopped (state `T` in `/proc/<pid>/stat`).
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
    })
}

/// One crash: at the `nth` time the orchestrator reaches `point`.
struct Case {
    point: &'static str,
    nth: usize,
}

impl Case {
    fn all() -> Vec<Self> {
        let forward = FORWARD_POINTS
            .iter()
            .flat_map(|&point| (1..=3).map(move |nth| Self { point, nth }));
        let backward = BACKWARD_POINTS
            .iter()
            .flat_map(|&point| (1..=2).map(move |nth| Self { point, nth }));
        forward.chain(backward).collect()
    }

    fn compensates(&self) -> bool {
        self.point.starts_with("saga-compensation")
    }

    /// The invocation the crash cuts, and how often its participant is called in all: again
    /// after a crash between its call and its commit, once otherwise.
    fn cut(&self) -> (&'static str, usize) {
        let name = if self.compensates() {
            ["RefundPayment", "ReleaseInventory"][self.nth - 1]
        } else {
            STEPS[self.nth - 1]
        };
        let calls = if self.point.ends_with("-applied") {
            2
        } else {
            1
        };
        (name, calls)
    }

    async fn run(&self, store: Store, participant: &Participant, url: &str) {
        let crash = format!("{}@{}", self.point, self.nth);
        let first = Orchestrator::start(&store, url, Some(&crash)).await;
        let input = if self.compensates() {
            json!({ "order_id": crash, "fail_at": 2 })
        } else {
            json!({ "order_id": crash })
        };
        // The crash may come before the answer: the saga's id is read back afterwards.
        first.post_saga(input).await;
        first.killed().await;

        let second = Orchestrator::start(&store, url, None).await;
        let id = second.only_saga().await;
        let saga = second.settled(&id).await;
        let (expected, status) = if self.compensates() {
            (
                vec![
                    "ValidateInventory",
                    "ReservePayment",
                    "RefundPayment",
                    "ReleaseInventory",
                ],
                "compensated",
            )
        } else {
            (STEPS.to_vec(), "completed")
        };
        assert_eq!(
            saga["status"],
            status,
            "{crash}: {saga}\n{}",
            second.output()
        );
        assert_eq!(participant.applied(&id), expected, "{crash}");
        let (cut, calls) = self.cut();
        for (name, count) in participant.calls(&id) {
            let want = if name == cut { calls } else { 1 };
            assert_eq!(count, want, "{crash}: calls of {name}");
        }
        second.stop().await;
        (store.remove)().await;
    }
}

/// Every crash point of every step and compensation, each on a store of its own from
/// `store`: the saga resumes after a restart and ends as it should, no step applied twice.
pub async fn every_crash_resumes<F, Fut>(store: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Store>,
{
    let participant = Participant::default();
    let url = participant.serve().await;
    let cases = Case::all();
    futures_util::stream::iter(&cases)
        .for_each_concurrent(4, |case| {
            let (store, participant, url) = (&store, &participant, &url);
            async move {
                let tag = format!("{}-{}", case.point, case.nth);
                case.run(store(tag).await, participant, url).await;
            }
        })
        .await;
}

/// An orchestrator paused right after a step's participant call, past its lease: another
/// instance takes the saga over and completes it; when the first resumes, its commit is
/// refused by the fencing epoch and it stops driving the saga.
pub async fn a_paused_orchestrator_is_fenced_after_a_takeover(store: Store) {
    let participant = Participant::default();
    let url = participant.serve().await;
    let paused = Orchestrator::start(&store, &url, Some("saga-step-applied@2:stop")).await;
    paused.post_saga(json!({ "order_id": "paused" })).await;
    for _ in 0..500 {
        if stopped(paused.pid()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped(paused.pid()), "not paused:\n{}", paused.output());

    let other = Orchestrator::start(&store, &url, None).await;
    let id = other.only_saga().await;
    let saga = other.settled(&id).await;
    assert_eq!(saga["status"], "completed", "{saga}");
    assert_eq!(saga["epoch"], 2, "taken over once: {saga}");

    signal(paused.pid(), "-CONT");
    for _ in 0..500 {
        if paused.output().contains("taken over by another instance") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        paused.output().contains("taken over by another instance"),
        "{}",
        paused.output()
    );
    let after = other.saga(&id).await;
    assert_eq!(after["status"], "completed");
    assert_eq!(after["epoch"], 2);
    assert_eq!(after["steps"][1]["attempts"], 2, "{after}");
    assert_eq!(
        after["steps"], saga["steps"],
        "the stale owner wrote nothing"
    );
    assert_eq!(participant.applied(&id), STEPS);
    let calls = participant.calls(&id);
    assert_eq!(calls["ReservePayment"], 2, "called again, applied once");
    assert_eq!(calls["CreateShipment"], 1, "the stale owner did not go on");
    paused.stop().await;
    other.stop().await;
    (store.remove)().await;
}
