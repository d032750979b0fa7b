//! The client side of a running service's admin API, shared by the operational commands
//! (`cargo allframe dlq`, `sagas`, `projections`): their common options ([`Target`]), which
//! service of the file a command may talk to, where its admin API listens, the token, and one
//! request with its answer or a typed error.
//!
//! The address is `--url`, else `http://127.0.0.1:<ADMIN_PORT>` with the port the service's
//! runtime derives from the file (`allframe_env::default_admin_port`) unless `ADMIN_PORT` is
//! set; the token is `ALLFRAME_ADMIN_TOKEN`, as the service reads it.

use std::path::PathBuf;
use std::time::Duration;

use allframe_config::model::ServiceType;
use allframe_config::{Architecture, ResolvedService};
use reqwest::Url;
use reqwest::blocking::Client;
use serde_json::Value;

pub use reqwest::Method;

use crate::config::{self, Loaded};
use crate::error::CliError;
use crate::report::Reporter;

/// How long one admin request may take (a replay of every dead letter can be slow).
const TIMEOUT: Duration = Duration::from_secs(60);

/// The admin token from `ALLFRAME_ADMIN_TOKEN` (set and not blank), as the service reads it.
pub fn token_from_env() -> Result<String, CliError> {
    std::env::var(allframe_env::ALLFRAME_ADMIN_TOKEN.name)
        .ok()
        .filter(|token| !token.trim().is_empty())
        .ok_or(CliError::AdminToken)
}

/// The options every operational command shares: the file, the service, its admin API, and
/// JSON output.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The architecture file.
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The service (of the type the command works on).
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// The service's admin API (default: loopback at its admin port).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Target {
    /// Reads the file, checks that `--service` is of type `needed` (the type whose admin
    /// routes `command` calls), and readies its admin API with `token`; the file is returned
    /// too, for what the command checks in it.
    pub fn open(
        &self,
        needed: ServiceType,
        command: &'static str,
        token: &str,
    ) -> Result<(Loaded, Admin), CliError> {
        let loaded = config::load(&self.config, false)?;
        let service = target(&loaded.architecture, &self.service, needed, command)?;
        let admin = Admin::connect(
            &self.service,
            self.url.as_deref(),
            service.common.http_port,
            token,
        )?;
        Ok((loaded, admin))
    }
}

/// Prints the admin API's `answer` as indented JSON (`--json`).
pub fn print_json(answer: &Value, reporter: &mut Reporter<'_>) -> Result<(), CliError> {
    reporter.line(serde_json::to_string_pretty(answer).unwrap_or_default());
    Ok(())
}

/// The service `name` of `architecture`, which `cargo allframe <command>` only works on when it
/// is of type `needed` (only that type serves the command's admin routes).
pub fn target<'a>(
    architecture: &'a Architecture,
    name: &str,
    needed: ServiceType,
    command: &'static str,
) -> Result<&'a ResolvedService, CliError> {
    let Some(service) = architecture.service(name) else {
        let known: Vec<&str> = architecture.services().iter().map(|s| s.name()).collect();
        return Err(CliError::UnknownService {
            name: name.to_owned(),
            known: known.join(", "),
        });
    };
    if service.kind() != needed {
        let fitting: Vec<&str> = architecture
            .services()
            .iter()
            .filter(|s| s.kind() == needed)
            .map(|s| s.name())
            .collect();
        let help = if fitting.is_empty() {
            format!("the architecture file has no service of type `{needed}`")
        } else {
            format!(
                "pass a service of type `{needed}` with --service: {}",
                fitting.join(", ")
            )
        };
        return Err(CliError::WrongServiceType {
            name: name.to_owned(),
            kind: service.kind().as_str(),
            needed: needed.as_str(),
            command,
            help,
        });
    }
    Ok(service)
}

/// The admin API's address: `url`, else loopback at `ADMIN_PORT` (`admin_port`, when set and
/// not empty), else at the port the runtime derives from the file's `http_port`.
pub fn admin_base(
    url: Option<&str>,
    admin_port: Option<&str>,
    http_port: u16,
) -> Result<String, CliError> {
    if let Some(url) = url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let port = match admin_port.filter(|value| !value.trim().is_empty()) {
        Some(value) => allframe_env::ADMIN_PORT
            .port(value)
            .map_err(|invalid| CliError::InvalidEnv(invalid.to_string()))?,
        None => allframe_env::default_admin_port(http_port),
    };
    Ok(format!("http://127.0.0.1:{port}"))
}

/// One service's admin API.
#[derive(Debug)]
pub struct Admin {
    client: Client,
    base: Url,
    /// `base` as given, for messages.
    shown: String,
    token: String,
    service: String,
}

impl Admin {
    /// The admin API of `service` (whose file gives it `http_port`) at `--url` or where
    /// [`admin_base`] finds it with the process's `ADMIN_PORT`, called with `token`.
    pub fn connect(
        service: &str,
        url: Option<&str>,
        http_port: u16,
        token: &str,
    ) -> Result<Self, CliError> {
        let shown = admin_base(
            url,
            std::env::var(allframe_env::ADMIN_PORT.name).ok().as_deref(),
            http_port,
        )?;
        let unreachable = |reason: String| CliError::AdminUnreachable {
            service: service.to_owned(),
            url: shown.clone(),
            reason,
        };
        let base = Url::parse(&shown)
            .ok()
            .filter(|base| matches!(base.scheme(), "http" | "https") && !base.cannot_be_a_base())
            .ok_or_else(|| unreachable("it is not an http:// or https:// address".to_owned()))?;
        let client = Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|error| unreachable(causes(&error)))?;
        Ok(Self {
            client,
            base,
            shown,
            token: token.trim().to_owned(),
            service: service.to_owned(),
        })
    }

    /// The address of `segments` below the admin API, each segment percent-encoded (an id
    /// holding `/` or `?` stays one segment).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `connect` refused the addresses that cannot be a base.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends `method url` with the token; the JSON answer (`null` for an empty one). A status
    /// other than 2xx is [`CliError::AdminRefused`] with the problem's detail.
    pub fn send(&self, method: Method, url: Url) -> Result<Value, CliError> {
        let response = self
            .client
            .request(method, url)
            .bearer_auth(&self.token)
            .send()
            .map_err(|error| CliError::AdminUnreachable {
                service: self.service.clone(),
                url: self.shown.clone(),
                reason: causes(&error),
            })?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(CliError::refused(&self.service, status.as_u16(), detail));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|error| {
            CliError::refused(
                &self.service,
                status.as_u16(),
                format!("the answer is not JSON: {error}"),
            )
        })
    }

    /// `answer` as `T`, or an error saying it is not `what`.
    pub fn parse<T: serde::de::DeserializeOwned>(
        &self,
        answer: Value,
        what: &str,
    ) -> Result<T, CliError> {
        serde_json::from_value(answer).map_err(|error| {
            CliError::refused(
                self.service(),
                200,
                format!("the answer is not {what}: {error}"),
            )
        })
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.service
    }
}

/// An error with its causes, `: `-separated (reqwest's own message names the URL already).
fn causes(error: &reqwest::Error) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

#[cfg(test)]
pub(crate) mod stand_in {
    //! A stand-in admin API on loopback for the commands' tests: it answers each connection
    //! with the next canned answer and records what it was asked.

    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;

    /// One request as the stand-in received it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Received {
        /// `GET`, `POST`, …
        pub method: String,
        /// The path and query, as sent.
        pub target: String,
        /// The `Authorization` header, when there was one.
        pub authorization: Option<String>,
    }

    /// A stand-in serving `answers` (status, JSON body) in order, one per connection.
    pub(crate) struct StandIn {
        /// Its address, for `--url`.
        pub url: String,
        received: mpsc::Receiver<Received>,
    }

    impl StandIn {
        /// Serves `answers`, then stops.
        pub(crate) fn serve(answers: Vec<(u16, String)>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            let url = format!("http://{}", listener.local_addr().expect("its address"));
            let (sender, received) = mpsc::channel();
            std::thread::spawn(move || {
                for (status, body) in answers {
                    let Ok((stream, _)) = listener.accept() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let target = parts.next().unwrap_or_default().to_owned();
                    let (mut authorization, mut length) = (None, 0_usize);
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            break;
                        }
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            match name.trim().to_ascii_lowercase().as_str() {
                                "authorization" => authorization = Some(value.trim().to_owned()),
                                "content-length" => length = value.trim().parse().unwrap_or(0),
                                _ => {}
                            }
                        }
                    }
                    let mut request_body = vec![0; length];
                    let _ = reader.read_exact(&mut request_body);
                    let _ = sender.send(Received {
                        method,
                        target,
                        authorization,
                    });
                    let kind = if (200..300).contains(&status) {
                        "application/json"
                    } else {
                        "application/problem+json"
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} Stand-in\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let mut stream = reader.into_inner();
                    let _ = stream.write_all(answer.as_bytes());
                    let _ = stream.flush();
                }
            });
            Self { url, received }
        }

        /// The next request it received.
        pub(crate) fn received(&self) -> Received {
            self.received
                .recv_timeout(Duration::from_secs(10))
                .expect("the stand-in was called")
        }

        /// Whether it received nothing (more).
        pub(crate) fn idle(&self) -> bool {
            self.received.try_recv().is_err()
        }
    }

    /// A problem document with `detail`.
    pub(crate) fn problem(status: u16, detail: &str) -> String {
        serde_json::json!({ "type": "about:blank", "title": "", "status": status, "detail": detail })
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_address_comes_from_the_url_the_env_or_the_file() {
        assert_eq!(
            admin_base(Some("http://h:1/"), Some("x"), 8083).expect("url"),
            "http://h:1"
        );
        assert_eq!(
            admin_base(None, Some("9999"), 8083).expect("env"),
            "http://127.0.0.1:9999"
        );
        assert_eq!(
            admin_base(None, Some(" "), 8083).expect("file"),
            "http://127.0.0.1:9083"
        );
        match admin_base(None, Some("90000"), 8083) {
            Err(error @ CliError::InvalidEnv(_)) => {
                assert!(
                    error.to_string().contains("ADMIN_PORT=\"90000\""),
                    "{error}"
                );
            }
            other => panic!("an invalid ADMIN_PORT is an error, not ignored: {other:?}"),
        }
    }

    #[test]
    fn each_path_segment_is_encoded_whole_below_the_base() {
        let admin = Admin::connect("s", Some("http://h:1/ops/"), 8080, " t ").expect("an address");
        assert_eq!(
            admin.url(&["sagas", "a b/c?d"]).as_str(),
            "http://h:1/ops/sagas/a%20b%2Fc%3Fd"
        );
        let root = Admin::connect("s", Some("http://h:1"), 8080, "t").expect("an address");
        assert_eq!(root.url(&["sagas"]).as_str(), "http://h:1/sagas");
        assert_eq!(
            admin.token, "t",
            "the token is sent trimmed, as the service reads it"
        );
    }

    #[test]
    fn an_address_that_is_not_http_is_refused_before_any_request() {
        for url in ["127.0.0.1:9083", "mailto:ops@example.com", "not a url"] {
            match Admin::connect("s", Some(url), 8080, "t") {
                Err(error @ CliError::AdminUnreachable { .. }) => {
                    assert!(error.to_string().contains("not an http"), "{error}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_refusal_carries_the_problems_detail_and_401_says_which_token() {
        let stand_in = stand_in::StandIn::serve(vec![(
            401,
            stand_in::problem(401, "the admin API needs a token"),
        )]);
        let admin = Admin::connect("svc", Some(&stand_in.url), 8080, "s3cret").expect("address");
        let error = admin
            .send(Method::GET, admin.url(&["anything"]))
            .expect_err("401");
        let received = stand_in.received();
        assert_eq!(received.authorization.as_deref(), Some("Bearer s3cret"));
        assert_eq!(
            (received.method.as_str(), received.target.as_str()),
            ("GET", "/anything")
        );
        match &error {
            CliError::AdminRefused {
                service,
                status: 401,
                detail,
                help: Some(help),
            } => {
                assert_eq!(service, "svc");
                assert_eq!(detail, "the admin API needs a token");
                assert!(help.contains("ALLFRAME_ADMIN_TOKEN"), "{help}");
            }
            other => panic!("{other:?}"),
        }
    }
}
