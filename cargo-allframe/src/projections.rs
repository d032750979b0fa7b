//! `cargo allframe projections list|rebuild`: an `event-sourced` service's projections,
//! through the running service's admin API. `list` shows each version of each read model with
//! its state and position; `rebuild` starts the next version of one from position zero beside
//! the current one, which keeps serving until the new one has caught up. The address and the
//! token are found as [`crate::admin`] says.

use allframe_config::Archetype;
use allframe_config::model::ServiceType;
use serde::Deserialize;

use crate::admin::{self, Method};

use crate::error::CliError;
use crate::report::Reporter;

/// What to do with the projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// List every version of every projection: its state and the position it reached.
    List,
    /// Rebuild one (`--projection`) from position zero beside the current version.
    Rebuild,
}

/// The options of `cargo allframe projections`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectionsArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: Action,
    /// The projection to rebuild, as `[services.cqrs] projections` names it.
    #[arg(long, value_name = "NAME", required_if_eq("action", "rebuild"))]
    pub projection: Option<String>,
    /// The file, the service, its admin API, JSON output.
    #[command(flatten)]
    pub target: admin::Target,
}

/// Runs `cargo allframe projections` with the token in `ALLFRAME_ADMIN_TOKEN`.
pub fn run(args: &ProjectionsArgs, reporter: &mut Reporter<'_>) -> Result<(), CliError> {
    run_with_token(args, &admin::token_from_env()?, reporter)
}

/// Runs `cargo allframe projections` with `token`.
pub fn run_with_token(
    args: &ProjectionsArgs,
    token: &str,
    reporter: &mut Reporter<'_>,
) -> Result<(), CliError> {
    let target = &args.target;
    let (loaded, admin) = target.open(ServiceType::EventSourced, "projections", token)?;
    let service = loaded.architecture.service(&target.service);
    let declared: Vec<&str> = match service.map(|s| &s.archetype) {
        Some(Archetype::EventSourced(es)) => {
            es.cqrs.projections.iter().map(String::as_str).collect()
        }
        _ => Vec::new(),
    };
    // Checked against the file before anything is sent.
    let projection = match (args.action, args.projection.as_deref().map(str::trim)) {
        (Action::List, _) => None,
        (Action::Rebuild, Some(name)) if declared.contains(&name) => Some(name),
        (Action::Rebuild, given) => {
            let given = given.unwrap_or_default();
            let hint = match allframe_config::suggest::closest(given, declared.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None if declared.is_empty() => {
                    "its `[services.cqrs] projections` lists none".to_owned()
                }
                None => format!("its projections: {}", declared.join(", ")),
            };
            return Err(CliError::UnknownProjection {
                service: target.service.clone(),
                projection: given.to_owned(),
                hint,
            });
        }
    };
    match projection {
        None => {
            let answer = admin.send(Method::GET, admin.url(&["projections"]))?;
            if target.json {
                return admin::print_json(&answer, reporter);
            }
            let listing: Listing = admin.parse(answer, "a list of projections")?;
            print_list(&listing.projections, reporter);
        }
        Some(name) => {
            let answer = admin.send(Method::POST, admin.url(&["projections", name, "rebuild"]))?;
            if target.json {
                return admin::print_json(&answer, reporter);
            }
            let version = answer["version"].as_i64().unwrap_or_default();
            reporter.line(format!(
                "projection {name}: version {version} is being built from the first event; the current version serves reads until it has caught up, then is retired (its tables dropped a minute later). `cargo allframe projections list --service {}` follows it",
                target.service
            ));
        }
    }
    Ok(())
}

/// The answer of `GET /projections`.
#[derive(Debug, Deserialize)]
struct Listing {
    projections: Vec<Status>,
}

/// One version of one projection.
#[derive(Debug, Deserialize)]
struct Status {
    name: String,
    version: i64,
    state: String,
    position: i64,
}

fn print_list(all: &[Status], reporter: &mut Reporter<'_>) {
    if all.is_empty() {
        reporter.line("no projections");
        return;
    }
    let width = all.iter().map(|s| s.name.len()).max().unwrap_or(0).max(10);
    reporter.line(format!(
        "{:<width$}  {:>7}  {:<8}  {:>10}",
        "PROJECTION", "VERSION", "STATE", "POSITION"
    ));
    for status in all {
        reporter.line(format!(
            "{:<width$}  {:>7}  {:<8}  {:>10}",
            status.name, status.version, status.state, status.position
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admin::stand_in::StandIn;

    const FILE: &str = r#"
[architecture]
name = "shop"

[[services]]
name = "inventory"
type = "event-sourced"

[services.cqrs]
projections = ["StockLevels", "StockHistory"]
"#;

    /// Runs `action` (rebuilding `projection`) against the admin API at `url` with the token
    /// `s3cret`: the outcome and stdout.
    fn run_action(
        action: Action,
        projection: Option<&str>,
        url: &str,
    ) -> (Result<(), CliError>, String) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("architecture.toml");
        std::fs::write(&config, FILE).expect("the file");
        let args = ProjectionsArgs {
            action,
            projection: projection.map(str::to_owned),
            target: admin::Target {
                config,
                service: "inventory".into(),
                url: Some(url.into()),
                json: false,
            },
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = run_with_token(
            &args,
            "s3cret",
            &mut Reporter::new(&mut out, &mut err, false),
        );
        (result, String::from_utf8(out).expect("UTF-8"))
    }

    #[test]
    fn list_prints_each_version_with_its_state_and_position() {
        let listing = json!({ "projections": [
            { "name": "StockLevels", "version": 1, "state": "active", "position": 1200 },
            { "name": "StockLevels", "version": 2, "state": "building", "position": 300 },
        ] });
        let stand_in = StandIn::serve(vec![(200, listing.to_string())]);
        let (result, out) = run_action(Action::List, None, &stand_in.url);
        result.expect("listed");
        let received = stand_in.received();
        assert_eq!(
            (received.method.as_str(), received.target.as_str()),
            ("GET", "/projections")
        );
        assert_eq!(received.authorization.as_deref(), Some("Bearer s3cret"));
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["PROJECTION", "VERSION", "STATE", "POSITION"]);
        assert_eq!(lines[2], ["StockLevels", "2", "building", "300"]);
    }

    #[test]
    fn rebuild_posts_for_a_declared_projection_and_refuses_an_undeclared_one_before_asking() {
        let stand_in = StandIn::serve(vec![(
            202,
            json!({ "projection": "StockLevels", "version": 3 }).to_string(),
        )]);
        let (result, out) = run_action(Action::Rebuild, Some("StockLevels"), &stand_in.url);
        result.expect("rebuilt");
        let received = stand_in.received();
        assert_eq!(
            (received.method.as_str(), received.target.as_str()),
            ("POST", "/projections/StockLevels/rebuild")
        );
        assert!(out.contains("version 3 is being built"), "{out}");

        let idle = StandIn::serve(Vec::new());
        let (result, _) = run_action(Action::Rebuild, Some("StockLevel"), &idle.url);
        let Err(CliError::UnknownProjection { hint, .. }) = result else {
            panic!("not refused: {result:?}");
        };
        assert_eq!(hint, "did you mean `StockLevels`?");
        assert!(idle.idle(), "nothing was sent");
    }
}
