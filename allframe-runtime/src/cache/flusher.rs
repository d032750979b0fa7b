//! The write-behind flusher: stores pending writes through the source in batches, deleting
//! the rows it stored; on failure it keeps them and retries with backoff.
//!
//! One background task per write-behind [`super::Cache`]: it flushes at start (rows left by
//! a previous run), then every `flush_interval`, or sooner once `max_batch` writes are
//! pending. Flushes of one namespace in one process take turns (a process-wide lock), so a
//! key's writes reach the source in order; across processes PostgreSQL's advisory lock does
//! the same (see [`super::write_behind`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::error::CacheError;
use super::handle::Core;
use super::source::CacheSource;
use super::stats::Counters;
use super::write_behind::{Claim, PendingTable};

/// The first pause after a failed flush; it doubles per failure in a row.
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest pause between retries.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(30);
/// How many times `shutdown_flush` retries a failing flush before giving up (the rows stay,
/// for the next start).
pub(super) const SHUTDOWN_RETRIES: u32 = 3;
/// How long a flush waits when another process is flushing the namespace.
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// Per-namespace flush turns, shared by every cache of this process.
static TURNS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// The write-behind state of one cache.
pub(super) struct WriteBehind {
    pub(super) table: PendingTable,
    /// Wakes the flusher before its interval (enough writes are pending).
    pub(super) wake: Notify,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl WriteBehind {
    pub(super) fn new(table: PendingTable, namespace: &str) -> Self {
        let turn = TURNS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(namespace.to_owned())
            .or_default()
            .clone();
        Self {
            table,
            wake: Notify::new(),
            turn,
        }
    }
}

/// What one flush did.
enum Flushed {
    /// Stored this many keys (0: nothing was pending).
    Keys(usize),
    /// Another process is flushing the namespace.
    Busy,
}

/// Stores one batch and deletes its rows.
async fn flush_batch<S: CacheSource>(
    core: &Core<S>,
    write_behind: &WriteBehind,
) -> Result<Flushed, CacheError> {
    let _turn = write_behind.turn.lock().await;
    let max_batch = core.settings.write_behind.max_batch;
    let claimed = match write_behind.table.claim(max_batch).await {
        Ok(Claim::Batch(claimed)) => claimed,
        Ok(Claim::Busy) => return Ok(Flushed::Busy),
        Err(error) => return Err(CacheError::Database(error)),
    };
    if claimed.rows.is_empty() {
        return Ok(Flushed::Keys(0));
    }
    let mut batch = Vec::with_capacity(claimed.rows.len());
    for row in &claimed.rows {
        let value = serde_json::from_str(&row.json).map_err(|source| CacheError::Serde {
            key: row.key.clone(),
            source,
        })?;
        batch.push((row.key.clone(), value));
    }
    if let Err(source) = core.source.store(&batch).await {
        Counters::add(&core.counters.flush_failures, 1);
        return Err(CacheError::Store {
            writes: batch.len(),
            source,
        });
    }
    let deleted = write_behind
        .table
        .complete(claimed)
        .await
        .map_err(CacheError::Database)?;
    core.counters.flushed(deleted);
    Ok(Flushed::Keys(batch.len()))
}

/// Stores everything pending when it is called (batches until one is not full).
pub(super) async fn drain<S: CacheSource>(
    core: &Core<S>,
    write_behind: &WriteBehind,
) -> Result<(), CacheError> {
    loop {
        match flush_batch(core, write_behind).await? {
            Flushed::Keys(keys) if keys < core.settings.write_behind.max_batch => return Ok(()),
            Flushed::Keys(_) => {}
            Flushed::Busy => tokio::time::sleep(BUSY_PAUSE).await,
        }
    }
}

/// The pause after `failures` failed flushes in a row: doubling from [`FIRST_RETRY`] up to
/// [`MAX_RETRY`], give or take a quarter.
pub(super) fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_RETRY).mul_f64(0.75 + fastrand::f64() / 2.0)
}

/// The background flusher of `core`, until `stop` is cancelled; it starts with a flush when
/// writes were pending at open (`drain_first`), else with a wait. A flush in progress when
/// `stop` fires is abandoned: its rows stay and are stored by the next flush (here or after a
/// restart).
pub(super) async fn run<S: CacheSource>(
    core: Arc<Core<S>>,
    stop: CancellationToken,
    drain_first: bool,
) {
    let Some(write_behind) = core.write_behind.as_ref() else {
        return;
    };
    let interval = core.settings.write_behind.flush_interval;
    let mut failures = 0_u32;
    if !drain_first {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = write_behind.wake.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
    }
    loop {
        let outcome = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            outcome = drain(&core, write_behind) => outcome,
        };
        match outcome {
            Ok(()) => {
                failures = 0;
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    () = write_behind.wake.notified() => {}
                    () = tokio::time::sleep(interval) => {}
                }
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let pause = backoff(failures);
                tracing::warn!(
                    cache = %core.settings.namespace,
                    error = %error,
                    failures,
                    retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    "write-behind flush failed; the writes stay pending and will be retried"
                );
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        for failures in 1..40 {
            let pause = backoff(failures);
            assert!(pause >= FIRST_RETRY.mul_f64(0.75), "{pause:?}");
            assert!(pause <= MAX_RETRY.mul_f64(1.25), "{pause:?}");
        }
        assert!(backoff(3) > backoff(1).mul_f64(1.5));
    }
}
