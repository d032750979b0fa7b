//! `cargo allframe dlq list|show|replay|purge`: a consumer's dead letters, through the running
//! service's admin API (so the CLI needs no bus or database driver, and works the same on every
//! bus). The address is `--url`, else `http://127.0.0.1:<ADMIN_PORT>` with the port the
//! service's runtime derives from the file (`allframe_env::default_admin_port`) unless
//! `ADMIN_PORT` is set; the token is `ALLFRAME_ADMIN_TOKEN`, as the service reads it.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::config;
use crate::error::CliError;
use crate::report::Reporter;

/// What to do with the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// List them, oldest first.
    List,
    /// Show one, with its original headers and payload.
    Show,
    /// Hand one (or, without an id, every one) back to the consumer.
    Replay,
    /// Delete one (or, without an id, every one).
    Purge,
}

/// The options of `cargo allframe dlq`.
#[derive(Debug, Clone, clap::Args)]
pub struct DlqArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: Action,
    /// The dead letter's id (`show` needs one; `replay` and `purge` without one take all).
    pub id: Option<i64>,
    /// The architecture file.
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The consumer service.
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// The service's admin API (default: loopback at its admin port).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Purge without asking.
    #[arg(long)]
    pub yes: bool,
}

/// Runs `cargo allframe dlq` with the token in `ALLFRAME_ADMIN_TOKEN`.
pub fn run(args: &DlqArgs, reporter: &mut Reporter<'_>) -> Result<(), CliError> {
    let token = std::env::var(allframe_env::ALLFRAME_ADMIN_TOKEN.name)
        .ok()
        .filter(|token| !token.trim().is_empty())
        .ok_or(CliError::AdminToken)?;
    run_with_token(args, &token, reporter)
}

/// Runs `cargo allframe dlq` with `token`.
pub fn run_with_token(
    args: &DlqArgs,
    token: &str,
    reporter: &mut Reporter<'_>,
) -> Result<(), CliError> {
    let loaded = config::load(&args.config, false)?;
    let architecture = &loaded.architecture;
    let Some(service) = architecture.service(&args.service) else {
        let known: Vec<&str> = architecture.services().iter().map(|s| s.name()).collect();
        return Err(CliError::UnknownService {
            name: args.service.clone(),
            known: known.join(", "),
        });
    };
    if let (Action::Show, None) = (args.action, args.id) {
        return Err(CliError::MissingId { action: "show" });
    }
    let base = admin_base(
        args.url.as_deref(),
        std::env::var(allframe_env::ADMIN_PORT.name).ok().as_deref(),
        service.common.http_port,
    )?;
    let admin = Admin {
        client: Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| admin_unreachable(&args.service, &base, &error))?,
        base,
        token: token.trim().to_owned(),
        service: args.service.clone(),
    };
    let answer = match (args.action, args.id) {
        (Action::List, _) => admin.send(|c, url| c.get(format!("{url}/dead-letters")))?,
        (Action::Show, Some(id)) => {
            admin.send(|c, url| c.get(format!("{url}/dead-letters/{id}")))?
        }
        (Action::Show, None) => return Err(CliError::MissingId { action: "show" }),
        (Action::Replay, Some(id)) => {
            admin.send(|c, url| c.post(format!("{url}/dead-letters/{id}/replay")))?
        }
        (Action::Replay, None) => {
            admin.send(|c, url| c.post(format!("{url}/dead-letters/replay")))?
        }
        (Action::Purge, id) => {
            if !args.yes && !confirmed(&args.service, id, reporter) {
                return Err(CliError::NotConfirmed);
            }
            match id {
                Some(id) => admin.send(|c, url| c.delete(format!("{url}/dead-letters/{id}")))?,
                None => admin.send(|c, url| c.delete(format!("{url}/dead-letters")))?,
            }
        }
    };
    if args.json {
        reporter.line(serde_json::to_string_pretty(&answer).unwrap_or_default());
    } else {
        print_human(args.action, args.id, &answer, reporter);
    }
    Ok(())
}

/// The admin API's address: `url`, else loopback at `ADMIN_PORT` (`admin_port`, when set and
/// not empty), else at the port the runtime derives from the file's `http_port`.
fn admin_base(
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
struct Admin {
    client: Client,
    base: String,
    token: String,
    service: String,
}

impl Admin {
    /// Sends the request `build` makes; the JSON answer (`null` for an empty one).
    fn send(&self, build: impl Fn(&Client, &str) -> RequestBuilder) -> Result<Value, CliError> {
        let response = build(&self.client, &self.base)
            .bearer_auth(&self.token)
            .send()
            .map_err(|error| admin_unreachable(&self.service, &self.base, &error))?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        if !status.is_success() {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Err(CliError::AdminRefused {
                service: self.service.clone(),
                status: status.as_u16(),
                detail,
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|error| CliError::AdminRefused {
            service: self.service.clone(),
            status: status.as_u16(),
            detail: format!("the answer is not JSON: {error}"),
        })
    }
}

fn admin_unreachable(service: &str, url: &str, error: &reqwest::Error) -> CliError {
    // reqwest's own message names the URL already; keep the cause chain readable.
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    CliError::AdminUnreachable {
        service: service.to_owned(),
        url: url.to_owned(),
        reason,
    }
}

/// Asks on the terminal whether to purge; `false` unless the answer is `yes`.
fn confirmed(service: &str, id: Option<i64>, reporter: &mut Reporter<'_>) -> bool {
    let what = id.map_or_else(
        || "every dead letter".to_owned(),
        |id| format!("dead letter {id}"),
    );
    reporter.note(format!(
        "purge {what} of `{service}`? type `yes` to confirm:"
    ));
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

fn print_human(action: Action, id: Option<i64>, answer: &Value, reporter: &mut Reporter<'_>) {
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    match action {
        Action::List => {
            let letters = answer.as_array().map(Vec::as_slice).unwrap_or_default();
            if letters.is_empty() {
                reporter.line("no dead letters");
            }
            for letter in letters {
                reporter.line(format!(
                    "{:>6}  {:<24} {:<8} {:>3} attempts  {}",
                    text(&letter["id"]),
                    text(&letter["event_type"]),
                    text(&letter["reason"]),
                    text(&letter["attempts"]),
                    text(&letter["error"]),
                ));
            }
        }
        Action::Show => reporter.line(serde_json::to_string_pretty(answer).unwrap_or_default()),
        Action::Replay => {
            let outcomes = match answer {
                Value::Array(items) => items.clone(),
                single => vec![single.clone()],
            };
            if outcomes.is_empty() {
                reporter.line("no dead letters to replay");
            }
            for outcome in outcomes {
                let error = outcome["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                reporter.line(format!(
                    "{}: {}{error}",
                    text(&outcome["id"]),
                    text(&outcome["outcome"])
                ));
            }
        }
        Action::Purge => match id {
            Some(id) => reporter.line(format!("purged dead letter {id}")),
            None => reporter.line(format!("purged {} dead letters", text(&answer["purged"]))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(service: &str, url: &str) -> DlqArgs {
        DlqArgs {
            action: Action::List,
            id: None,
            config: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/quickstart/architecture.toml"),
            service: service.into(),
            url: Some(url.into()),
            json: true,
            yes: false,
        }
    }

    fn run_args(args: &DlqArgs) -> Result<(), CliError> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run_with_token(args, "t", &mut Reporter::new(&mut out, &mut err, false))
    }

    #[test]
    fn an_unknown_service_is_named_with_the_services_there_are() {
        match run_args(&args("notification-servce", "http://127.0.0.1:1")) {
            Err(CliError::UnknownService { name, known }) => {
                assert_eq!(name, "notification-servce");
                assert!(known.contains("notification-service"), "{known}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn show_without_an_id_says_so_before_calling_the_service() {
        let mut show = args("notification-service", "http://127.0.0.1:1");
        show.action = Action::Show;
        match run_args(&show) {
            Err(error @ CliError::MissingId { action: "show" }) => {
                assert_eq!(error.to_string(), "`dlq show` needs the dead letter's id");
            }
            other => panic!("{other:?}"),
        }
    }

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
    fn a_service_that_does_not_answer_is_a_clear_error() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a port")
            .port();
        let url = format!("http://127.0.0.1:{closed}");
        match run_args(&args("notification-service", &url)) {
            Err(error @ CliError::AdminUnreachable { .. }) => {
                assert!(error.to_string().contains(&url), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }
}
