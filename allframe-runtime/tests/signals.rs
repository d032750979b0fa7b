//! `Launcher::run` as generated `main()` uses it: it owns the runtime, serves until SIGTERM,
//! drains, and returns exit code 0. Alone in its test binary because it signals the process.
#![cfg(all(unix, feature = "sqlite"))]

use std::process::ExitCode;
use std::time::Duration;

use allframe_runtime::__private::{Environment, Launcher, LogFormat, ServiceSettings};
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service};

static SETTINGS: ServiceSettings = ServiceSettings {
    architecture: "shop",
    name: "signal-service",
    archetype: "stateless",
    rest_port: 8080,
    grpc_port: None,
    logging: LogFormat::Json,
    declared_database: "sqlite",
    shutdown_timeout_secs: 5,
    deferred: &[],
};

struct SignalService;

impl Service for SignalService {
    async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for SignalService {
    fn routes() -> Router<Self> {
        Router::new()
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).is_ok() && response.starts_with("HTTP/1.1 200")
}

#[test]
fn sigterm_drains_and_exits_with_code_0() {
    let temp = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let launcher = Launcher::<SignalService>::new(&SETTINGS).env(Environment::from_pairs([
        (
            "ALLFRAME_DATA_DIR",
            temp.path().to_string_lossy().into_owned(),
        ),
        ("ALLFRAME_BIND_ADDR", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
    ]));
    let service = std::thread::spawn(move || launcher.run());

    let mut serving = false;
    for _ in 0..300 {
        if ready(port) {
            serving = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(serving, "the service never became ready on port {port}");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let code = service.join().expect("run returns");
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(!ready(port), "the server stopped");
}
