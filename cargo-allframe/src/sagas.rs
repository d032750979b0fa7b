//! `cargo allframe sagas list|show|retry`: a `saga-orchestrator`'s sagas, through the running
//! service's admin API (so the CLI needs no database driver). `list` shows the newest sagas
//! (`--status stuck` the ones an operator must look at), `show` one saga with its step log, and
//! `retry` hands a stuck saga back to its driver, which compensates it again. The address and
//! the token are found as [`crate::admin`] says.

use std::fmt::Write as _;

use allframe_config::model::ServiceType;
use serde::Deserialize;
use serde_json::Value;

use crate::admin::{self, Method};

use crate::error::CliError;
use crate::report::Reporter;

/// How many sagas the service lists when `--limit` is not given.
const DEFAULT_LIMIT: u32 = 100;

/// What to do with the sagas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// List them, newest first (`--status`, `--limit`).
    List,
    /// Show one with its step log.
    Show,
    /// Retry a stuck one: its driver compensates it again.
    Retry,
}

impl Action {
    /// Its name on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Show => "show",
            Self::Retry => "retry",
        }
    }
}

/// Where a saga is (`--status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    /// Its steps are running.
    Running,
    /// Every step completed.
    Completed,
    /// Its completed steps are being undone.
    Compensating,
    /// Every completed step was undone.
    Compensated,
    /// A compensation failed past its retries: an operator must look, then retry it.
    Stuck,
}

impl Status {
    /// Its name in the admin API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Compensating => "compensating",
            Self::Compensated => "compensated",
            Self::Stuck => "stuck",
        }
    }
}

/// The options of `cargo allframe sagas`.
#[derive(Debug, Clone, clap::Args)]
pub struct SagasArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: Action,
    /// The saga's id (`show` and `retry` need one).
    #[arg(required_if_eq_any([("action", "show"), ("action", "retry")]))]
    pub id: Option<String>,
    /// The file, the service, its admin API, JSON output.
    #[command(flatten)]
    pub target: admin::Target,
    /// `list`: only the sagas in this status.
    #[arg(long, value_enum)]
    pub status: Option<Status>,
    /// `list`: at most this many sagas, newest first (default 100).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
}

/// Runs `cargo allframe sagas` with the token in `ALLFRAME_ADMIN_TOKEN`.
pub fn run(args: &SagasArgs, reporter: &mut Reporter<'_>) -> Result<(), CliError> {
    run_with_token(args, &admin::token_from_env()?, reporter)
}

/// Runs `cargo allframe sagas` with `token`.
pub fn run_with_token(
    args: &SagasArgs,
    token: &str,
    reporter: &mut Reporter<'_>,
) -> Result<(), CliError> {
    let (_, admin) = args
        .target
        .open(ServiceType::SagaOrchestrator, "sagas", token)?;
    let id = args
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let id = match (args.action, id) {
        (Action::List, _) => "",
        (_, Some(id)) => id,
        (action, None) => {
            return Err(CliError::MissingSagaId {
                action: action.as_str(),
            });
        }
    };
    match args.action {
        Action::List => {
            let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
            let mut url = admin.url(&["sagas"]);
            {
                let mut query = url.query_pairs_mut();
                if let Some(status) = args.status {
                    query.append_pair("status", status.as_str());
                }
                query.append_pair("limit", &limit.to_string());
            }
            let answer = admin.send(Method::GET, url)?;
            if args.target.json {
                return admin::print_json(&answer, reporter);
            }
            let listing: Listing = admin.parse(answer, "a list of sagas")?;
            print_list(&listing.sagas, args.status, reporter);
            if listing.sagas.len() >= limit as usize {
                reporter.note(format!(
                    "these are the newest {limit}: pass --limit (up to 1000) or --status to see others"
                ));
            }
        }
        Action::Show => {
            let answer = admin
                .send(Method::GET, admin.url(&["sagas", id]))
                .map_err(|error| for_saga(error, id))?;
            if args.target.json {
                return admin::print_json(&answer, reporter);
            }
            let saga: Saga = admin.parse(answer, "a saga")?;
            print_saga(&saga, reporter);
            if saga.status == Status::Stuck.as_str() {
                reporter.note(format!(
                    "once the cause is fixed, `cargo allframe sagas retry {} --service {}` compensates it again",
                    saga.id, args.target.service
                ));
            }
        }
        Action::Retry => {
            let answer = admin
                .send(Method::POST, admin.url(&["sagas", id, "retry"]))
                .map_err(|error| for_saga(error, id))?;
            if args.target.json {
                return admin::print_json(&answer, reporter);
            }
            let status = answer["status"].as_str().unwrap_or("compensating");
            reporter.line(format!(
                "saga {id} retried: it is {status} again; `cargo allframe sagas show {id} --service {}` follows it",
                args.target.service
            ));
        }
    }
    Ok(())
}

/// Maps the statuses that concern one saga: `404` is an unknown saga, `409` one not stuck.
fn for_saga(error: CliError, id: &str) -> CliError {
    match error {
        CliError::AdminRefused {
            service,
            status: 404,
            ..
        } => CliError::SagaNotFound {
            service,
            id: id.to_owned(),
        },
        CliError::AdminRefused {
            service,
            status: 409,
            detail,
            ..
        } => CliError::SagaNotStuck {
            service,
            id: id.to_owned(),
            detail,
        },
        other => other,
    }
}

/// The answer of `GET /sagas`.
#[derive(Debug, Deserialize)]
struct Listing {
    sagas: Vec<Saga>,
}

/// A saga as the admin API shows it (the fields the CLI prints).
#[derive(Debug, Deserialize)]
struct Saga {
    id: String,
    #[serde(default)]
    saga: String,
    status: String,
    #[serde(default)]
    input: Value,
    next_position: Option<i64>,
    failure: Option<String>,
    owner: Option<String>,
    epoch: Option<i64>,
    deadline: Option<i64>,
    retries: Option<i64>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
    #[serde(default)]
    steps: Vec<Step>,
}

/// One row of a saga's log.
#[derive(Debug, Deserialize)]
struct Step {
    name: String,
    phase: String,
    index: i64,
    status: String,
    attempts: Option<i64>,
    output: Option<Value>,
    error: Option<String>,
    finished_at: Option<i64>,
}

fn print_list(sagas: &[Saga], status: Option<Status>, reporter: &mut Reporter<'_>) {
    if sagas.is_empty() {
        reporter.line(match status {
            Some(status) => format!("no {} sagas", status.as_str()),
            None => "no sagas".to_owned(),
        });
        return;
    }
    let rows: Vec<[String; 4]> = sagas
        .iter()
        .map(|saga| {
            [
                saga.id.clone(),
                saga.status.clone(),
                time(saga.updated_at),
                one_line(saga.failure.as_deref().unwrap_or("-")),
            ]
        })
        .collect();
    let header = ["ID", "STATUS", "UPDATED", "FAILURE"].map(str::to_owned);
    for line in table(std::iter::once(&header).chain(&rows)) {
        reporter.line(line);
    }
}

fn print_saga(saga: &Saga, reporter: &mut Reporter<'_>) {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let fields = [
        ("saga", format!("{} ({})", saga.id, saga.saga)),
        ("status", saga.status.clone()),
        ("failure", or_dash(saga.failure.as_deref().map(one_line))),
        ("input", compact(&saga.input)),
        (
            "next step",
            or_dash(saga.next_position.map(|n| n.to_string())),
        ),
        ("started", time(saga.created_at)),
        ("updated", time(saga.updated_at)),
        ("deadline", time(saga.deadline)),
        ("owner", or_dash(saga.owner.clone())),
        ("epoch", or_dash(saga.epoch.map(|n| n.to_string()))),
        ("retries", or_dash(saga.retries.map(|n| n.to_string()))),
    ];
    for (name, value) in fields {
        reporter.line(format!("{:<10} {value}", format!("{name}:")));
    }
    if saga.steps.is_empty() {
        reporter.line("no step has run");
        return;
    }
    reporter.line("");
    let rows: Vec<[String; 7]> = saga
        .steps
        .iter()
        .map(|step| {
            let attempts = step.attempts.unwrap_or(0);
            [
                step.index.to_string(),
                step.phase.clone(),
                step.name.clone(),
                step.status.clone(),
                attempts.to_string(),
                time(step.finished_at),
                match (&step.error, &step.output) {
                    (Some(error), _) => format!("error: {}", one_line(error)),
                    (None, Some(output)) if !output.is_null() => {
                        format!("output: {}", compact(output))
                    }
                    _ => "-".to_owned(),
                },
            ]
        })
        .collect();
    let header = [
        "#", "PHASE", "NAME", "STATUS", "ATTEMPTS", "FINISHED", "DETAIL",
    ]
    .map(str::to_owned);
    for line in table(std::iter::once(&header).chain(&rows)) {
        reporter.line(line);
    }
}

/// The rows as lines, each column padded to its widest cell (the last one is not padded).
fn table<'a, const N: usize>(rows: impl Iterator<Item = &'a [String; N]> + Clone) -> Vec<String> {
    let mut widths = [0; N];
    for row in rows.clone() {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.map(|row| {
        let mut line = String::new();
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            if column + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        line.trim_end().to_owned()
    })
    .collect()
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `value` as compact JSON (`-` for null).
fn compact(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Unix milliseconds as a UTC time, `YYYY-MM-DD HH:MM:SS UTC` (`-` for none).
fn time(millis: Option<i64>) -> String {
    let Some(millis) = millis else {
        return "-".to_owned();
    };
    let seconds = millis.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use serde_json::json;

    use super::*;
    use crate::admin::stand_in::{StandIn, problem};

    /// An orchestrator, and a service of another type.
    const FILE: &str = r#"
[architecture]
name = "shop"
version = "0.1.0"

[[services]]
name = "order-service"
type = "saga-orchestrator"
responsibility = "Orders across payment and shipping"

[services.saga]
name = "CreateOrderSaga"
steps = ["ReservePayment", "CreateShipment"]
compensation = ["RefundPayment", "CancelShipment"]
timeout_seconds = 300

[[services]]
name = "user-service"
type = "stateless"
responsibility = "Users"
"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        config: std::path::PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("architecture.toml");
        std::fs::write(&config, FILE).expect("the file");
        Fixture { _dir: dir, config }
    }

    fn args(fixture: &Fixture, action: Action, id: Option<&str>, url: &str) -> SagasArgs {
        SagasArgs {
            action,
            id: id.map(str::to_owned),
            target: admin::Target {
                config: fixture.config.clone(),
                service: "order-service".into(),
                url: Some(url.into()),
                json: false,
            },
            status: None,
            limit: None,
        }
    }

    /// Runs `args` with the token `s3cret`: the outcome, stdout and stderr.
    fn run_args(args: &SagasArgs) -> (Result<(), CliError>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = run_with_token(
            args,
            "s3cret",
            &mut Reporter::new(&mut out, &mut err, false),
        );
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8");
        (result, text(out), text(err))
    }

    fn stuck_saga() -> Value {
        json!({
            "id": "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "saga": "CreateOrderSaga",
            "status": "stuck",
            "input": { "amount": 42, "order": "o-1" },
            "next_position": 0,
            "failure": "step `CreateShipment` failed:\n carrier down",
            "owner": null,
            "epoch": 3,
            "deadline": 1_700_000_300_000_i64,
            "retries": 0,
            "created_at": 1_700_000_000_000_i64,
            "updated_at": 1_700_000_060_000_i64,
            "steps": [
                { "name": "ReservePayment", "phase": "step", "index": 0, "status": "completed",
                  "attempts": 1, "input": {}, "output": { "payment": "p-9" }, "error": null,
                  "started_at": 1_700_000_000_000_i64, "finished_at": 1_700_000_001_000_i64 },
                { "name": "CreateShipment", "phase": "step", "index": 1, "status": "failed",
                  "attempts": 3, "input": {}, "output": null, "error": "carrier down",
                  "started_at": 1_700_000_001_000_i64, "finished_at": 1_700_000_010_000_i64 },
                { "name": "RefundPayment", "phase": "compensation", "index": 0,
                  "status": "failed", "attempts": 5, "input": {}, "output": null,
                  "error": "bank unavailable", "started_at": 1_700_000_010_000_i64,
                  "finished_at": null }
            ]
        })
    }

    #[test]
    fn list_asks_with_the_token_and_filters_and_prints_a_table() {
        let fixture = fixture();
        let mut saga = stuck_saga();
        saga["steps"] = json!([]);
        let stand_in = StandIn::serve(vec![(200, json!({ "sagas": [saga] }).to_string())]);
        let mut list = args(&fixture, Action::List, None, &stand_in.url);
        list.status = Some(Status::Stuck);
        list.limit = Some(5);
        let (result, out, err) = run_args(&list);
        result.expect("listed");
        let received = stand_in.received();
        assert_eq!(received.method, "GET");
        assert_eq!(received.target, "/sagas?status=stuck&limit=5");
        assert_eq!(received.authorization.as_deref(), Some("Bearer s3cret"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "a header and one saga:\n{out}");
        for column in ["ID", "STATUS", "UPDATED", "FAILURE"] {
            assert!(lines[0].contains(column), "{}", lines[0]);
        }
        assert_eq!(
            lines[1],
            "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b  stuck   2023-11-14 22:14:20 UTC  \
             step `CreateShipment` failed: carrier down"
        );
        assert!(err.is_empty(), "fewer than the limit: no note\n{err}");
    }

    #[test]
    fn list_without_options_asks_for_the_default_limit_and_says_when_there_may_be_more() {
        let fixture = fixture();
        let stand_in = StandIn::serve(vec![
            (200, json!({ "sagas": [] }).to_string()),
            (200, json!({ "sagas": [stuck_saga()] }).to_string()),
        ]);
        let (result, out, _) = run_args(&args(&fixture, Action::List, None, &stand_in.url));
        result.expect("listed");
        assert_eq!(stand_in.received().target, "/sagas?limit=100");
        assert_eq!(out, "no sagas\n");

        let mut one = args(&fixture, Action::List, None, &stand_in.url);
        one.limit = Some(1);
        let (result, _, err) = run_args(&one);
        result.expect("listed");
        assert_eq!(stand_in.received().target, "/sagas?limit=1");
        assert!(err.contains("--limit"), "{err}");
    }

    #[test]
    fn json_prints_the_answer_as_the_service_gave_it() {
        let fixture = fixture();
        let answer = json!({ "sagas": [stuck_saga()] });
        let stand_in = StandIn::serve(vec![(200, answer.to_string())]);
        let mut list = args(&fixture, Action::List, None, &stand_in.url);
        list.target.json = true;
        let (result, out, _) = run_args(&list);
        result.expect("listed");
        assert_eq!(serde_json::from_str::<Value>(&out).expect("JSON"), answer);
    }

    #[test]
    fn show_prints_the_saga_and_its_step_log() {
        let fixture = fixture();
        let stand_in = StandIn::serve(vec![(200, stuck_saga().to_string())]);
        let id = "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let (result, out, err) = run_args(&args(&fixture, Action::Show, Some(id), &stand_in.url));
        result.expect("shown");
        let received = stand_in.received();
        assert_eq!(
            (received.method.as_str(), received.target.as_str()),
            ("GET", &*format!("/sagas/{id}"))
        );
        assert_eq!(received.authorization.as_deref(), Some("Bearer s3cret"));
        for expected in [
            &format!("saga:      {id} (CreateOrderSaga)"),
            "status:    stuck",
            "failure:   step `CreateShipment` failed: carrier down",
            r#"input:     {"amount":42,"order":"o-1"}"#,
            "started:   2023-11-14 22:13:20 UTC",
            "deadline:  2023-11-14 22:18:20 UTC",
            "epoch:     3",
        ] {
            assert!(
                out.lines().any(|line| line == expected),
                "{expected:?} in\n{out}"
            );
        }
        let log: Vec<Vec<&str>> = out
            .lines()
            .skip_while(|line| !line.starts_with('#'))
            .map(|line| {
                line.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            log,
            vec![
                vec![
                    "#", "PHASE", "NAME", "STATUS", "ATTEMPTS", "FINISHED", "DETAIL"
                ],
                vec![
                    "0",
                    "step",
                    "ReservePayment",
                    "completed",
                    "1",
                    "2023-11-14 22:13:21 UTC",
                    r#"output: {"payment":"p-9"}"#
                ],
                vec![
                    "1",
                    "step",
                    "CreateShipment",
                    "failed",
                    "3",
                    "2023-11-14 22:13:30 UTC",
                    "error: carrier down"
                ],
                vec![
                    "0",
                    "compensation",
                    "RefundPayment",
                    "failed",
                    "5",
                    "-",
                    "error: bank unavailable"
                ],
            ]
        );
        assert!(
            err.contains(&format!(
                "cargo allframe sagas retry {id} --service order-service"
            )),
            "a stuck saga says how to retry it: {err}"
        );
    }

    #[test]
    fn show_of_an_unknown_saga_is_not_found_with_how_to_list_them() {
        let fixture = fixture();
        let stand_in = StandIn::serve(vec![(404, problem(404, "no saga has the id `nope`"))]);
        let (result, out, _) = run_args(&args(&fixture, Action::Show, Some("nope"), &stand_in.url));
        assert_eq!(stand_in.received().target, "/sagas/nope");
        match result {
            Err(error @ CliError::SagaNotFound { .. }) => {
                assert_eq!(error.to_string(), "`order-service` has no saga `nope`");
                let help = miette::Diagnostic::help(&error)
                    .expect("a help")
                    .to_string();
                assert!(
                    help.contains("cargo allframe sagas list --service order-service"),
                    "{help}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(out.is_empty(), "{out}");
    }

    #[test]
    fn retry_posts_and_says_the_saga_compensates_again() {
        let fixture = fixture();
        let stand_in = StandIn::serve(vec![(
            202,
            json!({ "id": "s-1", "status": "compensating" }).to_string(),
        )]);
        let (result, out, _) =
            run_args(&args(&fixture, Action::Retry, Some(" s-1 "), &stand_in.url));
        result.expect("retried");
        let received = stand_in.received();
        assert_eq!(
            (received.method.as_str(), received.target.as_str()),
            ("POST", "/sagas/s-1/retry")
        );
        assert_eq!(received.authorization.as_deref(), Some("Bearer s3cret"));
        assert!(
            out.starts_with("saga s-1 retried: it is compensating again"),
            "{out}"
        );
    }

    #[test]
    fn retry_of_a_saga_that_is_not_stuck_is_a_conflict_naming_its_status() {
        let fixture = fixture();
        let detail = "saga `s-1` is running, not stuck: only a stuck saga can be retried";
        let stand_in = StandIn::serve(vec![
            (409, problem(409, detail)),
            (404, problem(404, "no saga has the id `s-2`")),
        ]);
        match run_args(&args(&fixture, Action::Retry, Some("s-1"), &stand_in.url)).0 {
            Err(error @ CliError::SagaNotStuck { .. }) => {
                assert_eq!(
                    error.to_string(),
                    format!("cannot retry saga `s-1` of `order-service`: {detail}")
                );
                let help = miette::Diagnostic::help(&error)
                    .expect("a help")
                    .to_string();
                assert!(help.contains("--status stuck"), "{help}");
            }
            other => panic!("{other:?}"),
        }
        match run_args(&args(&fixture, Action::Retry, Some("s-2"), &stand_in.url)).0 {
            Err(CliError::SagaNotFound { service, id }) => {
                assert_eq!((service.as_str(), id.as_str()), ("order-service", "s-2"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_token_is_refused_with_how_to_set_it() {
        let fixture = fixture();
        let stand_in = StandIn::serve(vec![(
            401,
            problem(
                401,
                "the admin API needs `Authorization: Bearer <ALLFRAME_ADMIN_TOKEN>`",
            ),
        )]);
        match run_args(&args(&fixture, Action::List, None, &stand_in.url)).0 {
            Err(error @ CliError::AdminRefused { status: 401, .. }) => {
                assert!(error.to_string().contains("answered 401"), "{error}");
                let help = miette::Diagnostic::help(&error)
                    .expect("a help")
                    .to_string();
                assert!(help.contains("ALLFRAME_ADMIN_TOKEN"), "{help}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_answer_that_is_not_a_saga_is_an_error_not_a_panic() {
        let fixture = fixture();
        let stand_in = StandIn::serve(vec![(200, json!([1, 2]).to_string())]);
        match run_args(&args(&fixture, Action::List, None, &stand_in.url)).0 {
            Err(CliError::AdminRefused { detail, .. }) => {
                assert!(
                    detail.starts_with("the answer is not a list of sagas"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_service_of_another_type_is_refused_naming_the_orchestrators() {
        let fixture = fixture();
        let stand_in = StandIn::serve(vec![(200, "{}".to_owned())]);
        let mut other = args(&fixture, Action::List, None, &stand_in.url);
        other.target.service = "user-service".into();
        match run_args(&other).0 {
            Err(error @ CliError::WrongServiceType { .. }) => {
                assert_eq!(
                    error.to_string(),
                    "`user-service` is a `stateless` service: `cargo allframe sagas` works on \
                     `saga-orchestrator` services only"
                );
                let help = miette::Diagnostic::help(&error)
                    .expect("a help")
                    .to_string();
                assert!(help.contains("order-service"), "{help}");
            }
            other => panic!("{other:?}"),
        }
        other.target.service = "order-servce".into();
        match run_args(&other).0 {
            Err(CliError::UnknownService { known, .. }) => {
                assert_eq!(known, "order-service, user-service");
            }
            other => panic!("{other:?}"),
        }
        assert!(stand_in.idle(), "nothing was asked of the service");
    }

    #[test]
    fn show_and_retry_without_an_id_say_so_before_calling_the_service() {
        let fixture = fixture();
        let stand_in = StandIn::serve(vec![(200, "{}".to_owned())]);
        for (action, id) in [(Action::Show, None), (Action::Retry, Some(" "))] {
            match run_args(&args(&fixture, action, id, &stand_in.url)).0 {
                Err(error @ CliError::MissingSagaId { .. }) => {
                    assert_eq!(
                        error.to_string(),
                        format!("`sagas {}` needs the saga's id", action.as_str())
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(stand_in.idle(), "nothing was asked of the service");
    }

    #[test]
    fn a_service_that_does_not_answer_is_a_clear_error() {
        let fixture = fixture();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a port")
            .port();
        let url = format!("http://127.0.0.1:{closed}");
        match run_args(&args(&fixture, Action::List, None, &url)).0 {
            Err(error @ CliError::AdminUnreachable { .. }) => {
                assert!(error.to_string().contains(&url), "{error}");
                let help = miette::Diagnostic::help(&error)
                    .expect("a help")
                    .to_string();
                assert!(help.contains("ALLFRAME_ADMIN_TOKEN"), "{help}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_command_line_needs_an_id_for_show_and_retry_and_bounds_the_limit() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            sagas: SagasArgs,
        }
        let parse = |line: &str| Cli::try_parse_from(line.split_whitespace()).map(|cli| cli.sagas);
        let list = parse("sagas list --service o --status stuck --limit 5").expect("list");
        assert_eq!(
            (list.action, list.status, list.limit, list.id),
            (Action::List, Some(Status::Stuck), Some(5), None)
        );
        let retry = parse("sagas retry s-1 --service o").expect("retry");
        assert_eq!(
            (retry.action, retry.id.as_deref()),
            (Action::Retry, Some("s-1"))
        );
        for wrong in [
            "sagas show --service o",
            "sagas retry --service o",
            "sagas list --service o --limit 0",
            "sagas list --service o --limit 1001",
            "sagas list --service o --status failed",
            "sagas list",
        ] {
            assert!(parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(Some(1_700_000_000_999)), "2023-11-14 22:13:20 UTC");
        assert_eq!(time(Some(951_782_400_000)), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(Some(-1)), "1969-12-31 23:59:59 UTC");
        assert_eq!(time(None), "-");
    }
}
