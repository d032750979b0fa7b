//! `cargo allframe ignite`: check the file, plan the workspace, format the Rust files, decide
//! per file against the manifest, find the orphans, write (unless `--dry-run`) and summarise.

use std::path::{Path, PathBuf};

use crate::config::{self, DEFAULT_CONFIG};
use crate::context::{RuntimeSource, Skipped};
use crate::error::CliError;
use crate::plan;
use crate::report::{IgniteWarning, Reporter, count};
use crate::rustfmt::{self, FormatError};
use crate::templates::Renderer;
use crate::workspace::{Action, Decision, PlannedFile, Workspace};

/// The options of `cargo allframe ignite`.
#[derive(Debug, Clone, clap::Args)]
pub struct IgniteArgs {
    /// The architecture file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The workspace directory to create or update (default: `./<architecture name>`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A local checkout of AllFrame: generated crates depend on its allframe-runtime by path
    /// instead of the released version.
    #[arg(long, value_name = "DIR")]
    pub runtime_path: Option<PathBuf>,
    /// Print what would be written, updated and kept; write nothing (not even the output
    /// directory or the lock).
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite files edited since ignite wrote them, and write into a non-empty directory
    /// that is not an AllFrame workspace.
    #[arg(long)]
    pub force: bool,
    /// Treat the file's warnings as errors (as `[settings] deny_warnings = true` does).
    #[arg(long)]
    pub deny_warnings: bool,
}

/// What ignite did (or would do).
#[derive(Debug)]
pub struct Outcome {
    /// The workspace directory.
    pub root: PathBuf,
    /// One decision per planned file.
    pub decisions: Vec<Decision>,
    /// The generated services.
    pub services: Vec<String>,
    /// The services not generated.
    pub skipped: Vec<Skipped>,
    /// Files written by an earlier run that are no longer generated (kept).
    pub orphans: Orphans,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// Where the service crates live in a workspace.
const SERVICES_DIR: &str = "services/";

/// Files ignite wrote earlier that the architecture no longer produces: kept on disk and in
/// the manifest, and reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Orphans {
    /// Service crates no longer generated at all.
    pub services: Vec<OrphanedService>,
    /// Every other file no longer generated, sorted.
    pub files: Vec<String>,
}

/// A service crate directory (`services/<name>/`) of which nothing is generated any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedService {
    /// The directory's name.
    pub name: String,
    /// The recorded files in it, sorted.
    pub files: Vec<String>,
}

impl OrphanedService {
    /// `services/<name>/`.
    pub fn dir(&self) -> String {
        format!("{SERVICES_DIR}{}/", self.name)
    }
}

impl Orphans {
    /// Groups the orphaned `paths` against `plan`: a `services/<name>/` directory holding no
    /// planned file is an orphaned service crate; everything else is listed file by file.
    pub fn group(paths: Vec<String>, plan: &[PlannedFile]) -> Self {
        let crate_of = |path: &str| {
            path.strip_prefix(SERVICES_DIR)
                .and_then(|rest| rest.split_once('/'))
                .map(|(name, _)| name.to_owned())
        };
        let planned: std::collections::BTreeSet<String> =
            plan.iter().filter_map(|f| crate_of(&f.path)).collect();
        let mut services: Vec<OrphanedService> = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            match crate_of(&path).filter(|name| !planned.contains(name)) {
                Some(name) => match services.iter_mut().find(|s| s.name == name) {
                    Some(service) => service.files.push(path),
                    None => services.push(OrphanedService {
                        name,
                        files: vec![path],
                    }),
                },
                None => files.push(path),
            }
        }
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Self { services, files }
    }

    /// How many files are orphaned.
    pub fn len(&self) -> usize {
        self.files.len() + self.services.iter().map(|s| s.files.len()).sum::<usize>()
    }

    /// True when nothing is orphaned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One warning per orphaned service crate, and one for the other files.
    pub fn warnings(&self) -> Vec<IgniteWarning> {
        let mut warnings: Vec<IgniteWarning> = self
            .services
            .iter()
            .map(|service| IgniteWarning::OrphanedService {
                name: service.name.clone(),
                dir: service.dir(),
                files: service.files.len(),
            })
            .collect();
        if !self.files.is_empty() {
            warnings.push(IgniteWarning::OrphanedFiles {
                files: self.files.len(),
                list: self.files.join(", "),
            });
        }
        warnings
    }
}

impl Outcome {
    /// How many files got `action`.
    pub fn count(&self, action: Action) -> usize {
        self.decisions.iter().filter(|d| d.action == action).count()
    }
}

/// Runs ignite, rendering warnings to `reporter`.
pub fn ignite(args: &IgniteArgs, reporter: &mut Reporter<'_>) -> Result<Outcome, CliError> {
    let loaded = config::load(&args.config, args.deny_warnings)?;
    loaded.report_warnings(reporter);
    let architecture = &loaded.architecture;
    let root = match &args.out {
        Some(out) => out.clone(),
        None => default_out(architecture.name())?,
    };
    let runtime = RuntimeSource::resolve(args.runtime_path.as_deref())?;
    // Held (and locked) from here to the end of the run; a dry run creates nothing.
    let mut workspace = if args.dry_run {
        Workspace::preview(&root, args.force, Some(&args.config))?
    } else {
        Workspace::open(&root, args.force, Some(&args.config))?
    };

    let renderer = Renderer::new()?;
    let plan = plan::plan(architecture, &loaded.bytes, &runtime, &renderer)?;
    let mut files = plan.files;
    for warning in format_rust(&mut files) {
        reporter.diagnostic(&warning);
    }

    let decisions = workspace.decide(&files, args.force)?;
    let orphans = Orphans::group(workspace.orphans(&files)?, &files);
    for warning in orphans.warnings() {
        reporter.diagnostic(&warning);
    }
    if !args.dry_run {
        let generator = format!("cargo-allframe {}", env!("CARGO_PKG_VERSION"));
        workspace.apply(&files, &decisions, &generator)?;
    }
    Ok(Outcome {
        root,
        decisions,
        services: plan.services.into_iter().map(|s| s.names.kebab).collect(),
        skipped: plan.skipped,
        orphans,
        dry_run: args.dry_run,
    })
}

/// `./<name>`, when the architecture's name is a plain directory name.
fn default_out(name: &str) -> Result<PathBuf, CliError> {
    let plain =
        !name.trim().is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(Path::new(".").join(name))
    } else {
        Err(CliError::BadWorkspaceName {
            name: name.to_owned(),
        })
    }
}

/// Formats every `.rs` file with one rustfmt run; returns the warnings (rustfmt missing: one
/// warning, and the files are left as rendered).
fn format_rust(files: &mut [PlannedFile]) -> Vec<IgniteWarning> {
    let program = rustfmt::program();
    let mut rust: Vec<&mut PlannedFile> = files
        .iter_mut()
        .filter(|f| f.path.ends_with(".rs") && std::str::from_utf8(&f.contents).is_ok())
        .collect();
    let owned: Vec<(String, String)> = rust
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                String::from_utf8_lossy(&f.contents).into_owned(),
            )
        })
        .collect();
    let sources: Vec<(&str, &str)> = owned
        .iter()
        .map(|(path, source)| (path.as_str(), source.as_str()))
        .collect();
    let mut warnings = Vec::new();
    for (file, result) in rust.iter_mut().zip(rustfmt::format_all(&program, &sources)) {
        match result {
            Ok(formatted) => file.contents = formatted.into_bytes(),
            Err(FormatError::Unavailable(reason)) => {
                warnings.push(IgniteWarning::RustfmtUnavailable { reason });
                break;
            }
            Err(FormatError::Rejected(stderr)) => warnings.push(IgniteWarning::RustfmtFailed {
                file: file.path.clone(),
                stderr,
            }),
        }
    }
    warnings
}

/// Prints what ignite did, file by file (unchanged files only counted), and the totals.
pub fn print_summary(outcome: &Outcome, reporter: &mut Reporter<'_>) {
    let root = outcome.root.display();
    if outcome.dry_run {
        reporter.line(format!("Dry run: nothing was written to {root}."));
    } else {
        reporter.line(format!(
            "Ignited {} into {root}.",
            count(outcome.services.len(), "service")
        ));
    }
    for decision in &outcome.decisions {
        let note = match decision.action {
            Action::Unchanged => continue,
            Action::Keep => " (user-modified, not overwritten)",
            Action::Overwrite => " (user-modified, overwritten because of --force)",
            Action::Create | Action::Update => "",
        };
        let label = match (outcome.dry_run, decision.action) {
            (false, action) => action.to_string(),
            (true, Action::Create) => "would write".into(),
            (true, Action::Update) => "would update".into(),
            (true, Action::Keep) => "would keep".into(),
            (true, _) => "would overwrite".into(),
        };
        reporter.line(format!("  {label:<15} {}{note}", decision.path));
    }
    for service in &outcome.orphans.services {
        reporter.line(format!(
            "  {:<15} {} ({}; service no longer generated, kept)",
            "orphaned",
            service.dir(),
            count(service.files.len(), "file")
        ));
    }
    for file in &outcome.orphans.files {
        reporter.line(format!(
            "  {:<15} {file} (no longer generated, kept)",
            "orphaned"
        ));
    }
    let totals = [
        Action::Create,
        Action::Update,
        Action::Overwrite,
        Action::Keep,
        Action::Unchanged,
    ]
    .into_iter()
    .filter_map(|action| {
        let n = outcome.count(action);
        (n > 0 || matches!(action, Action::Create | Action::Update | Action::Keep))
            .then(|| format!("{n} {action}"))
    })
    .chain((!outcome.orphans.is_empty()).then(|| format!("{} orphaned", outcome.orphans.len())))
    .collect::<Vec<_>>()
    .join(", ");
    let prefix = if outcome.dry_run { "Would be: " } else { "" };
    reporter.line(format!("{prefix}{totals}."));
    if !outcome.dry_run && !outcome.services.is_empty() {
        reporter.line(format!(
            "Next: cd {root} && cargo test (see README.md for how to run each service)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_group_into_crates_no_longer_generated_and_other_files() {
        let plan = [
            PlannedFile::new("services/users/Cargo.toml", ""),
            PlannedFile::new("README.md", ""),
        ];
        let orphans = Orphans::group(
            vec![
                "infrastructure/docker/services/orders/Dockerfile".into(),
                "services/orders/Cargo.toml".into(),
                "services/orders/src/main.rs".into(),
                "services/users/proto/users.proto".into(),
                "services/audit/Cargo.toml".into(),
                "services/stray.txt".into(),
            ],
            &plan,
        );
        assert_eq!(
            orphans.services,
            [
                OrphanedService {
                    name: "audit".into(),
                    files: vec!["services/audit/Cargo.toml".into()],
                },
                OrphanedService {
                    name: "orders".into(),
                    files: vec![
                        "services/orders/Cargo.toml".into(),
                        "services/orders/src/main.rs".into()
                    ],
                },
            ]
        );
        // A crate still generated keeps its orphaned files listed one by one.
        assert_eq!(
            orphans.files,
            [
                "infrastructure/docker/services/orders/Dockerfile",
                "services/users/proto/users.proto",
                "services/stray.txt",
            ]
        );
        assert_eq!(orphans.len(), 6);
        let warnings: Vec<String> = orphans.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 3, "{warnings:#?}");
        assert!(warnings[1].starts_with("`services/orders/` is no longer generated"));
        assert!(
            warnings[1].ends_with("its 2 files are kept"),
            "{}",
            warnings[1]
        );
        assert!(warnings[2].starts_with("3 files ignite wrote earlier are no longer generated"));
        assert!(Orphans::group(Vec::new(), &plan).warnings().is_empty());
    }

    #[test]
    fn default_out_dir_is_the_architecture_name_when_it_is_a_plain_name() {
        assert_eq!(
            default_out("shop").expect("plain"),
            Path::new(".").join("shop")
        );
        for bad in ["", "..", "a/b", r"a\b"] {
            assert!(matches!(
                default_out(bad),
                Err(CliError::BadWorkspaceName { .. })
            ));
        }
    }
}
