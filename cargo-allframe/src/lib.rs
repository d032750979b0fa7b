//! `cargo allframe`: turns one `architecture.toml` into a workspace of service crates
//! (`ignite`) with its infrastructure and docs, checks a file with source-snippet diagnostics
//! (`check`), prints its JSON Schema (`schema`) and its diagram (`graph`), and operates running
//! services through their admin API ([`admin`]): a consumer's dead letters (`dlq`), a saga
//! orchestrator's sagas (`sagas`) and an event-sourced service's projections (`projections`).
//!
//! The binary only parses arguments and calls [`run`]. One module per stage of ignite:
//! [`config`] (read + check) → [`plan`] (render [`templates`] with a [`context`]) →
//! [`infra`] (compose, images, k8s, clouds, CI, docs; [`graph`] draws the diagram) →
//! [`rustfmt`] → [`workspace`] (decide per file against the manifest, write) → summary in
//! [`ignite`]. Everything printed goes through [`report::Reporter`].

#![warn(missing_docs)]

pub mod admin;
pub mod config;
pub mod context;
pub mod dlq;
pub mod error;
pub mod escape;
pub mod events;
pub mod graph;
pub mod ignite;
pub mod infra;
pub mod names;
pub mod plan;
pub mod projections;
pub mod report;
pub mod rustfmt;
pub mod sagas;
pub mod scaffold;
pub mod templates;
pub mod versions;
pub mod workspace;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

pub use error::CliError;
pub use ignite::IgniteArgs;
use report::{Reporter, count};

/// `cargo allframe`: the subcommand's options.
#[derive(Debug, clap::Args)]
#[command(version, about, long_about = None, display_name = "cargo-allframe")]
pub struct Opt {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `cargo allframe`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Generate (or update) a workspace of service crates from an architecture file.
    Ignite(IgniteArgs),
    /// Check an architecture file and print every problem with its location.
    Check(CheckArgs),
    /// Print the JSON Schema of architecture.toml (for editor completion and checks).
    Schema,
    /// Print the diagram of the architecture: services, event bus, data stores and flows.
    Graph(GraphArgs),
    /// List, show, replay or purge a consumer's dead letters, through its admin API.
    Dlq(dlq::DlqArgs),
    /// List, show or retry a saga orchestrator's sagas, through its admin API.
    Sagas(sagas::SagasArgs),
    /// List an event-sourced service's projections or rebuild one, through its admin API.
    Projections(projections::ProjectionsArgs),
}

/// The options of `cargo allframe graph`.
#[derive(Debug, Clone, clap::Args)]
pub struct GraphArgs {
    /// The architecture file.
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The output format.
    #[arg(long, value_enum, default_value = "mermaid")]
    pub format: graph::Format,
}

/// The options of `cargo allframe check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The architecture file.
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Treat warnings as errors (as `[settings] deny_warnings = true` does): keys this version
    /// accepts without honouring them fully fail the check.
    #[arg(long)]
    pub deny_warnings: bool,
}

/// Runs `opt` against the process's stdout and stderr; the exit status is 1 on any error.
pub fn run(opt: Opt) -> ExitCode {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut reporter = Reporter::new(&mut out, &mut err, color);
    match execute(opt.command, &mut reporter) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            reporter.diagnostic(&error);
            ExitCode::FAILURE
        }
    }
}

/// Runs one command, reporting to `reporter`.
pub fn execute(command: Command, reporter: &mut Reporter<'_>) -> Result<(), CliError> {
    match command {
        Command::Ignite(args) => {
            let outcome = ignite::ignite(&args, reporter)?;
            ignite::print_summary(&outcome, reporter);
        }
        Command::Check(args) => {
            let loaded = config::load(&args.config, args.deny_warnings)?;
            let warnings = loaded.report_warnings(reporter);
            let architecture = &loaded.architecture;
            reporter.line(format!(
                "{}: `{}` is valid ({}, {})",
                loaded.path.display(),
                architecture.name(),
                count(architecture.services().len(), "service"),
                count(warnings, "warning"),
            ));
        }
        Command::Schema => reporter.line(allframe_config::json_schema::to_pretty_string()),
        Command::Graph(args) => {
            let loaded = config::load(&args.config, false)?;
            loaded.report_warnings(reporter);
            let renderer = templates::Renderer::new()?;
            let generated = plan::generated_services(&loaded.architecture);
            let infra =
                infra::model::build(&loaded.architecture, infra::model::Scope::Whole(&generated));
            let text = infra::graph(&infra, args.format, &renderer)?;
            reporter.line(text.trim_end());
        }
        Command::Dlq(args) => dlq::run(&args, reporter)?,
        Command::Sagas(args) => sagas::run(&args, reporter)?,
        Command::Projections(args) => projections::run(&args, reporter)?,
    }
    Ok(())
}
