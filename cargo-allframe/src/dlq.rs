//! `cargo allframe dlq list|show|replay|purge`: a consumer's dead letters, through the running
//! service's admin API (so the CLI needs no bus or database driver, and works the same on every
//! bus). Only a `consumer` has dead letters. The address and the token are found as
//! [`crate::admin`] says.

use std::io::BufRead as _;

use allframe_config::model::ServiceType;
use serde_json::Value;

use crate::admin::{self, Method};

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
    /// The file, the service, its admin API, JSON output.
    #[command(flatten)]
    pub target: admin::Target,
    /// Purge without asking.
    #[arg(long)]
    pub yes: bool,
}

/// Runs `cargo allframe dlq` with the token in `ALLFRAME_ADMIN_TOKEN`.
pub fn run(args: &DlqArgs, reporter: &mut Reporter<'_>) -> Result<(), CliError> {
    run_with_token(args, &admin::token_from_env()?, reporter)
}

/// Runs `cargo allframe dlq` with `token`.
pub fn run_with_token(
    args: &DlqArgs,
    token: &str,
    reporter: &mut Reporter<'_>,
) -> Result<(), CliError> {
    let (_, admin) = args.target.open(ServiceType::Consumer, "dlq", token)?;
    if let (Action::Show, None) = (args.action, args.id) {
        return Err(CliError::MissingId { action: "show" });
    }
    let one = |id: i64, rest: &[&str]| {
        let id = id.to_string();
        let mut segments = vec!["dead-letters", id.as_str()];
        segments.extend_from_slice(rest);
        admin.url(&segments)
    };
    let answer = match (args.action, args.id) {
        (Action::List, _) => admin.send(Method::GET, admin.url(&["dead-letters"]))?,
        (Action::Show, Some(id)) => admin.send(Method::GET, one(id, &[]))?,
        (Action::Show, None) => return Err(CliError::MissingId { action: "show" }),
        (Action::Replay, Some(id)) => admin.send(Method::POST, one(id, &["replay"]))?,
        (Action::Replay, None) => {
            admin.send(Method::POST, admin.url(&["dead-letters", "replay"]))?
        }
        (Action::Purge, id) => {
            if !args.yes && !confirmed(&args.target.service, id, reporter) {
                return Err(CliError::NotConfirmed);
            }
            match id {
                Some(id) => admin.send(Method::DELETE, one(id, &[]))?,
                None => admin.send(Method::DELETE, admin.url(&["dead-letters"]))?,
            }
        }
    };
    if args.target.json {
        reporter.line(serde_json::to_string_pretty(&answer).unwrap_or_default());
    } else {
        print_human(args.action, args.id, &answer, reporter);
    }
    Ok(())
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
    use crate::admin::stand_in::{StandIn, problem};

    fn args(service: &str, url: &str) -> DlqArgs {
        DlqArgs {
            action: Action::List,
            id: None,
            target: admin::Target {
                config: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../examples/quickstart/architecture.toml"),
                service: service.into(),
                url: Some(url.into()),
                json: true,
            },
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
    fn a_service_that_is_not_a_consumer_is_refused_before_calling_it() {
        match run_args(&args("user-service", "http://127.0.0.1:1")) {
            Err(error @ CliError::WrongServiceType { .. }) => {
                assert!(
                    error
                        .to_string()
                        .starts_with("`user-service` is a `stateless` service"),
                    "{error}"
                );
                let help = miette::Diagnostic::help(&error)
                    .expect("a help")
                    .to_string();
                assert!(help.contains("notification-service"), "{help}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_request_carries_the_token_and_a_404_says_what_to_check() {
        let stand_in = StandIn::serve(vec![
            (
                200,
                r#"[{"id": 7, "event_type": "UserCreated"}]"#.to_owned(),
            ),
            (404, problem(404, "no dead letter has the id 8")),
        ]);
        let mut list = args("notification-service", &stand_in.url);
        list.target.json = false;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run_with_token(&list, "t", &mut Reporter::new(&mut out, &mut err, false)).expect("list");
        let received = stand_in.received();
        assert_eq!(
            (received.method.as_str(), received.target.as_str()),
            ("GET", "/dead-letters")
        );
        assert_eq!(received.authorization.as_deref(), Some("Bearer t"));
        let out = String::from_utf8(out).expect("UTF-8");
        assert!(out.contains("UserCreated"), "{out}");

        let mut show = args("notification-service", &stand_in.url);
        show.action = Action::Show;
        show.id = Some(8);
        match run_args(&show) {
            Err(error @ CliError::AdminRefused { status: 404, .. }) => {
                assert!(
                    error.to_string().ends_with("no dead letter has the id 8"),
                    "{error}"
                );
                let help = miette::Diagnostic::help(&error)
                    .expect("a help")
                    .to_string();
                assert!(help.contains("check the id"), "{help}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stand_in.received().target, "/dead-letters/8");
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
