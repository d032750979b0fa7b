//! Everything that stops a command, as one typed error that miette renders with a help line.
//! Problems inside `architecture.toml` are carried by [`ConfigReport`], which renders each
//! diagnostic with its source snippet.

use std::path::PathBuf;

use miette::Diagnostic;

use crate::report::ConfigReport;

/// Why a `cargo allframe` command failed.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum CliError {
    /// The configuration file could not be read: missing, not a regular file, too large, not
    /// UTF-8, or unreadable.
    #[error("the architecture file {source}")]
    #[diagnostic(code(allframe::config_unreadable))]
    ReadConfig {
        /// Why.
        #[source]
        source: allframe_config::ReadError,
        /// A likely fix.
        #[help]
        help: &'static str,
    },

    /// The configuration file has errors.
    #[error(transparent)]
    #[diagnostic(transparent)]
    InvalidConfig(#[from] ConfigReport),

    /// The output directory holds files that ignite did not write.
    #[error(
        "the output directory `{}` is not empty and is not an AllFrame workspace (it has no `.allframe/manifest.json`)",
        dir.display()
    )]
    #[diagnostic(
        code(allframe::foreign_out_dir),
        help(
            "choose an empty or new directory with `--out DIR`, or pass `--force` to write into this one anyway"
        )
    )]
    ForeignOutDir {
        /// The directory.
        dir: PathBuf,
    },

    /// The output path exists and is not a directory.
    #[error("the output path `{}` exists and is not a directory", dir.display())]
    #[diagnostic(
        code(allframe::out_not_a_dir),
        help("choose a directory with `--out DIR`")
    )]
    OutNotADirectory {
        /// The path.
        dir: PathBuf,
    },

    /// The architecture's name cannot be the default output directory.
    #[error("the architecture name `{name}` cannot be used as a directory name")]
    #[diagnostic(
        code(allframe::bad_out_dir_name),
        help("choose the output directory with `--out DIR`")
    )]
    BadWorkspaceName {
        /// The name from `[architecture] name`.
        name: String,
    },

    /// `--runtime-path` does not point at a checkout of this repository.
    #[error(
        "`--runtime-path {}` is not a checkout of AllFrame: `{}` does not exist",
        dir.display(),
        manifest.display()
    )]
    #[diagnostic(
        code(allframe::bad_runtime_path),
        help(
            "pass the root of an AllFrame repository checkout (the directory holding allframe-runtime/), or omit the option to depend on the released runtime"
        )
    )]
    RuntimePath {
        /// The directory given.
        dir: PathBuf,
        /// The manifest looked for.
        manifest: PathBuf,
    },

    /// A path that cannot be written into a `Cargo.toml`.
    #[error("the path `{}` is not valid UTF-8 and cannot be written into Cargo.toml", path.display())]
    #[diagnostic(code(allframe::non_utf8_path))]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },

    /// `.allframe/manifest.json` is unreadable.
    #[error("cannot read the ignite manifest `{}`", path.display())]
    #[diagnostic(
        code(allframe::bad_manifest),
        help(
            "ignite records there what it wrote; delete the file and re-run with `--force` to regenerate every file"
        )
    )]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Why it could not be parsed.
        #[source]
        source: serde_json::Error,
    },

    /// A symbolic link below the output directory, where ignite reads or writes.
    #[error(
        "`{}` is a symbolic link inside the output directory: ignite never reads or writes through links there",
        path.display()
    )]
    #[diagnostic(
        code(allframe::symlink_in_out_dir),
        help(
            "replace the link with the real directory or file (or remove it) and run ignite again, or choose another `--out DIR`; only the output directory itself may be a link. Nothing was written"
        )
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },

    /// Something that is not what ignite needs sits where it reads or writes.
    #[error("`{}` is in the way: ignite needs {needed} there", path.display())]
    #[diagnostic(
        code(allframe::obstructed),
        help(
            "move it away and run ignite again, or choose another `--out DIR`. Nothing was written"
        )
    )]
    Obstructed {
        /// The path.
        path: PathBuf,
        /// What ignite needs there, e.g. `"a directory"`.
        needed: &'static str,
    },

    /// A planned path that would leave the output directory (a bug in cargo-allframe).
    #[error("refusing to write `{path}`: it is not a plain path inside the output directory")]
    #[diagnostic(
        code(allframe::unsafe_path),
        help("this is a bug in cargo-allframe; please report it with your architecture.toml")
    )]
    UnsafePath {
        /// The planned relative path.
        path: String,
    },

    /// Another ignite is using the output directory.
    #[error("another `cargo allframe ignite` is using this workspace: `{}` is locked", lock.display())]
    #[diagnostic(
        code(allframe::locked),
        help(
            "wait for the other ignite to finish, then run again (the lock is released when that process ends, even if it crashed)"
        )
    )]
    Locked {
        /// The lock file.
        lock: PathBuf,
    },

    /// A file-system operation failed before ignite changed anything in the workspace.
    #[error("cannot {action} `{}`; the workspace was left as it was", path.display())]
    #[diagnostic(
        code(allframe::write_failed),
        help("fix the cause (free space, permissions, a read-only mount) and run ignite again")
    )]
    StageFailed {
        /// What was attempted, e.g. `"write"`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// A file-system operation failed while ignite was putting staged files in place.
    #[error("cannot {action} `{}`: ignite stopped part-way through updating the workspace", path.display())]
    #[diagnostic(
        code(allframe::interrupted),
        help(
            "what was written is recorded in .allframe/manifest.json: fix the cause and run the same `cargo allframe ignite` again (no --force needed) to complete the workspace"
        )
    )]
    Interrupted {
        /// What was attempted, e.g. `"rename"`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// A workspace opened for a dry run was asked to write (a bug in cargo-allframe).
    #[error("the workspace `{}` was opened for a dry run and cannot be written", dir.display())]
    #[diagnostic(
        code(allframe::preview_only),
        help("this is a bug in cargo-allframe; please report it")
    )]
    PreviewOnly {
        /// The output directory.
        dir: PathBuf,
    },

    /// A service of a generated type that the macro could not expand either (the check lets
    /// through what the plan refuses: a bug in cargo-allframe).
    #[error("service `{service}` cannot be generated: {reason}")]
    #[diagnostic(
        code(allframe::plan),
        help(
            "this is a bug in cargo-allframe (the check should have refused it); please report it with your architecture.toml"
        )
    )]
    Plan {
        /// The service.
        service: String,
        /// The plan's errors.
        reason: String,
    },

    /// An archetype's `manifest.toml` does not describe its templates (a bug in
    /// cargo-allframe).
    #[error("the embedded scaffold is broken: {reason}")]
    #[diagnostic(
        code(allframe::scaffold),
        help("this is a bug in cargo-allframe; please report it")
    )]
    Scaffold {
        /// What is wrong.
        reason: String,
    },

    /// A template failed to render (a bug in cargo-allframe).
    #[error("cannot render the template `{template}`")]
    #[diagnostic(
        code(allframe::template),
        help("this is a bug in cargo-allframe; please report it with your architecture.toml")
    )]
    Template {
        /// The template.
        template: String,
        /// The minijinja error.
        #[source]
        source: minijinja::Error,
    },

    /// An operational command names a service the file does not have.
    #[error("`{name}` is not a service of the architecture file")]
    #[diagnostic(code(allframe::unknown_service), help("the services are: {known}"))]
    UnknownService {
        /// The name given.
        name: String,
        /// The file's services, comma-separated.
        known: String,
    },

    /// An operational command needs the admin token.
    #[error("ALLFRAME_ADMIN_TOKEN is not set")]
    #[diagnostic(
        code(allframe::admin_token),
        help("set ALLFRAME_ADMIN_TOKEN to the token the service was started with")
    )]
    AdminToken,

    /// The service's admin API could not be reached.
    #[error("cannot reach the admin API of `{service}` at {url}: {reason}")]
    #[diagnostic(
        code(allframe::admin_unreachable),
        help(
            "start the service with ALLFRAME_ADMIN_TOKEN set (the admin API is not served without it), or pass its address with --url"
        )
    )]
    AdminUnreachable {
        /// The service.
        service: String,
        /// The address tried.
        url: String,
        /// What failed.
        reason: String,
    },

    /// The service's admin API refused the request.
    #[error("the admin API of `{service}` answered {status}: {detail}")]
    #[diagnostic(code(allframe::admin_refused))]
    AdminRefused {
        /// The service.
        service: String,
        /// The HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
        /// A likely fix, when the status suggests one.
        #[help]
        help: Option<String>,
    },

    /// An operational command names a service of a type that does not serve it.
    #[error(
        "`{name}` is a `{kind}` service: `cargo allframe {command}` works on `{needed}` services only"
    )]
    #[diagnostic(code(allframe::wrong_service_type))]
    WrongServiceType {
        /// The name given.
        name: String,
        /// Its type.
        kind: &'static str,
        /// The type the command needs.
        needed: &'static str,
        /// The command, e.g. `sagas`.
        command: &'static str,
        /// The file's services of the needed type.
        #[help]
        help: String,
    },

    /// A dead-letter command that needs an id got none.
    #[error("`dlq {action}` needs the dead letter's id")]
    #[diagnostic(
        code(allframe::missing_id),
        help("list the dead letters and their ids with `cargo allframe dlq list --service …`")
    )]
    MissingId {
        /// The action, e.g. `show`.
        action: &'static str,
    },

    /// A saga command that needs an id got none.
    #[error("`sagas {action}` needs the saga's id")]
    #[diagnostic(
        code(allframe::missing_saga_id),
        help("list the sagas and their ids with `cargo allframe sagas list --service …`")
    )]
    MissingSagaId {
        /// The action, e.g. `show`.
        action: &'static str,
    },

    /// The orchestrator has no saga with this id.
    #[error("`{service}` has no saga `{id}`")]
    #[diagnostic(
        code(allframe::saga_not_found),
        help(
            "check the id (and --service): `cargo allframe sagas list --service {service}` lists its sagas, newest first"
        )
    )]
    SagaNotFound {
        /// The orchestrator.
        service: String,
        /// The id given.
        id: String,
    },

    /// `projections rebuild` named a projection the file does not declare for the service.
    #[error("`{service}` has no projection `{projection}` in the architecture file")]
    #[diagnostic(
        code(allframe::unknown_projection),
        help("{hint}; pass one of `[services.cqrs] projections` with --projection")
    )]
    UnknownProjection {
        /// The event-sourced service.
        service: String,
        /// The name given.
        projection: String,
        /// A likely fix: the nearest declared name, or the declared ones.
        hint: String,
    },

    /// Only a stuck saga can be retried.
    #[error("cannot retry saga `{id}` of `{service}`: {detail}")]
    #[diagnostic(
        code(allframe::saga_not_stuck),
        help(
            "only a `stuck` saga is retried (the others are still driven, or finished): `cargo allframe sagas show {id} --service {service}` shows where it is, `cargo allframe sagas list --status stuck --service {service}` lists the stuck ones"
        )
    )]
    SagaNotStuck {
        /// The orchestrator.
        service: String,
        /// The saga.
        id: String,
        /// The service's explanation (its status).
        detail: String,
    },

    /// An environment variable the CLI reads holds a value it cannot use.
    #[error("the environment variable {0}")]
    #[diagnostic(
        code(allframe::invalid_env),
        help("fix or unset it (unset, the CLI derives the value from the architecture file)")
    )]
    InvalidEnv(String),

    /// A destructive command was not confirmed.
    #[error("nothing was purged")]
    #[diagnostic(
        code(allframe::not_confirmed),
        help("answer `yes`, or pass --yes to purge without asking")
    )]
    NotConfirmed,

    /// A file-system operation failed.
    #[error("cannot {action} `{}`", path.display())]
    #[diagnostic(code(allframe::io))]
    Io {
        /// What was attempted, e.g. `"write"`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// The admin API of `service` refused a request with `status`; the help names the likely
    /// fix of the statuses that have one.
    pub fn refused(service: &str, status: u16, detail: String) -> Self {
        let help = match status {
            401 => Some(format!(
                "set ALLFRAME_ADMIN_TOKEN to the token `{service}` was started with"
            )),
            404 => Some(String::from(
                "check the id (the command's `list` shows them), --service and --url",
            )),
            _ => None,
        };
        Self::AdminRefused {
            service: service.to_owned(),
            status,
            detail,
            help,
        }
    }

    /// An I/O failure while doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
