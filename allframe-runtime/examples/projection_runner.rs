//! A projection runner process for the crash tests (`tests/messaging_support/projections.rs`):
//! it opens the event store at `DATABASE_URL` and the count-based `Counts` projection, starts a
//! rebuild of it when `REBUILD` is set, and catches up in batches of `BATCH` events (100 by
//! default) until nothing is left, then prints `caught up`. `PROJECTION_CRASH=<fail point>@<n>`
//! kills it the n-th time it reaches `projection-batch-applied` (a batch applied, its
//! transaction open) or `projection-batch-committed`.
//!
//! Run by the tests only: `cargo build -p allframe-runtime --example projection_runner
//! --features failpoints`.

use std::process::ExitCode;

use allframe_runtime::database::{Database, DatabaseTarget};
use allframe_runtime::eventstore::{EventStore, Projections};

#[path = "../tests/messaging_support/counts.rs"]
mod counts;
#[path = "support/crash.rs"]
mod crash;

async fn run() -> Result<(), allframe_runtime::BoxError> {
    crash::arm("PROJECTION_CRASH")?;
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let batch: usize = match std::env::var("BATCH") {
        Ok(batch) => batch.parse()?,
        Err(_) => 100,
    };
    let db = Database::connect(&DatabaseTarget::parse(&url)?).await?;
    let store = EventStore::open(&db).await?;
    let projections = Projections::open(&store, vec![counts::Counts::failing_at(0)]).await?;
    if std::env::var_os("REBUILD").is_some() {
        projections.rebuild("Counts").await?;
    }
    while projections.catch_up(batch).await? > 0 {}
    println!("caught up");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
