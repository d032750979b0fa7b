//! Shared by the Kafka real-services tests: a tansu broker each test starts on a free
//! loopback port (binary from `TANSU_BIN`, default `/root/.cache/allframe/tansu/bin/tansu`),
//! and fresh names.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use allframe_runtime::messaging::{EventBus, Uuid};

const DEFAULT_TANSU: &str = "/root/.cache/allframe/tansu/bin/tansu";

/// A tansu broker, killed when dropped.
pub struct Broker {
    child: Child,
    port: u16,
    bin: PathBuf,
    storage: &'static str,
    /// The broker's working directory; `sqlite://` storage lives in it.
    dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// A broker with in-memory storage.
    pub fn start() -> Self {
        Self::start_with("memory://tansu/")
    }

    /// A broker with durable SQLite storage in its own directory: a restart keeps the data.
    pub fn start_durable() -> Self {
        Self::start_with("sqlite://tansu.db")
    }

    pub fn start_with(storage: &'static str) -> Self {
        let bin =
            PathBuf::from(std::env::var("TANSU_BIN").unwrap_or_else(|_| DEFAULT_TANSU.into()));
        assert!(
            bin.is_file(),
            "the Kafka-compatible broker is missing at {}: build it with \
             `cargo install tansu --locked --features dynostore,libsql \
             --root /root/.cache/allframe/tansu` (or set TANSU_BIN)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("a broker directory");
        let child = Self::spawn(&bin, port, storage, dir.path());
        let broker = Self {
            child,
            port,
            bin,
            storage,
            dir,
        };
        broker.wait_listening();
        broker
    }

    fn spawn(bin: &Path, port: u16, storage: &str, dir: &Path) -> Child {
        let listener = format!("tcp://127.0.0.1:{port}");
        Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
                "--storage-engine",
                storage,
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu")
    }

    fn wait_listening(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "tansu did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the broker process (no clean shutdown).
    pub fn kill(&mut self) {
        self.child.kill().expect("kill tansu");
        self.child.wait().expect("reap tansu");
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.bin, self.port, self.storage, self.dir.path());
        self.wait_listening();
    }

    pub fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(&self.bin)
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
            ])
            .stdout(Stdio::null())
            .status()
            .expect("run tansu topic create");
        assert!(status.success(), "creating topic {name} failed: {status}");
    }

    pub async fn bus(&self) -> EventBus {
        EventBus::connect(Some(&self.url()), &std::env::temp_dir())
            .await
            .expect("connect to tansu")
    }
}

/// `prefix` followed by a fresh UUID.
pub fn fresh(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::now_v7().simple())
}
