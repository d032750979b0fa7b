//! `cargo allframe …`: parses the arguments and hands over to [`cargo_allframe::run`].

use clap::Parser;

/// Cargo runs subcommands as `cargo-allframe allframe …`.
#[derive(Parser)]
#[command(bin_name = "cargo", version)]
enum Cli {
    /// AllFrame: ignite a workspace of services from architecture.toml.
    Allframe(cargo_allframe::Opt),
}

fn main() -> std::process::ExitCode {
    let Cli::Allframe(opt) = Cli::parse();
    cargo_allframe::run(opt)
}
