//! Whether the database takes writes: consecutive failed units of work, and the probe that
//! readiness runs once they pile up.
//!
//! A ping proves the database answers, not that it accepts writes: a locked SQLite file, a
//! PostgreSQL that failed over to a read-only replica or ran out of disk all answer pings while
//! every write fails. So units of work ([`crate::UnitOfWork`]) report how opening and committing
//! their transactions went; after [`WRITE_FAILURE_THRESHOLD`] failures in a row, readiness
//! fails. Since an unready instance gets no traffic, and so no writes that could succeed,
//! readiness then probes for itself (open a writing transaction, roll it back): the first
//! success, a probe's or a unit of work's, makes the instance ready again.
//!
//! What does not count: constraint violations (the request was wrong, not the database), pool
//! exhaustion (load, which readiness must not turn into a cascade) and a closed pool
//! (shutdown). The event bus never counts: the outbox exists so that writes succeed while the
//! bus is down.
//!
//! A statement that fails inside a transaction (an `INSERT` on a read-only replica) is not seen
//! here: the handler returns its error and drops the unit of work. So units of work dropped
//! without a commit or an explicit rollback count as *abandoned*; after as many in a row,
//! readiness probes too. A probe runs to completion in a task of its own (a cancelled probe
//! never leaves a connection inside a transaction), one at a time, and its answer is reused
//! for [`PROBE_REUSE`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::error::ErrorKind;

/// Failed unit-of-work transactions in a row that make readiness fail.
pub const WRITE_FAILURE_THRESHOLD: u32 = 3;

/// How long a probe's answer is reused by the next readiness checks.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);

/// The write record of one database: failed and abandoned transactions since the last
/// success, and the last probe. Cheap to clone; every clone shares the record.
#[derive(Debug, Clone, Default)]
pub struct WriteHealth {
    consecutive_failures: Arc<AtomicU32>,
    consecutive_abandoned: Arc<AtomicU32>,
    last_probe: Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>,
}

impl WriteHealth {
    /// A write committed (or a probe succeeded): the counts start again from zero.
    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.consecutive_abandoned.store(0, Ordering::Relaxed);
    }

    /// A unit of work was dropped without a commit or an explicit rollback.
    pub fn record_abandoned(&self) {
        self.consecutive_abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether [`WRITE_FAILURE_THRESHOLD`] units of work in a row were abandoned: their
    /// statements may have failed, so readiness probes.
    pub fn is_suspect(&self) -> bool {
        self.consecutive_abandoned.load(Ordering::Relaxed) >= WRITE_FAILURE_THRESHOLD
    }

    /// Whether writes work, by `probe` when the record is failing or suspect: one probe at a
    /// time, its answer reused for [`PROBE_REUSE`]; a success resets the record.
    pub async fn check<F, E>(&self, probe: impl FnOnce() -> F) -> Result<(), Option<E>>
    where
        F: Future<Output = Result<(), E>>,
    {
        if !self.is_failing() && !self.is_suspect() {
            return Ok(());
        }
        let mut last = self.last_probe.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < PROBE_REUSE
        {
            return if ok { Ok(()) } else { Err(None) };
        }
        let result = probe().await;
        *last = Some((Instant::now(), result.is_ok()));
        match result {
            Ok(()) => {
                self.record_success();
                Ok(())
            }
            Err(error) => Err(Some(error)),
        }
    }

    /// The unit of work about to use a transaction: dropped before it is settled, it counts
    /// as abandoned.
    pub(crate) fn pending(&self) -> PendingWrite {
        PendingWrite {
            health: self.clone(),
            settled: false,
        }
    }

    /// Opening or committing a transaction failed with `error`; counted unless the error says
    /// nothing about the database's health (see the module docs).
    pub fn record_failure(&self, error: &sqlx::Error) {
        if counts_against_writes(error) {
            let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures == WRITE_FAILURE_THRESHOLD {
                tracing::error!(
                    failures,
                    error = %error,
                    "database writes keep failing; readiness now fails until a write succeeds"
                );
            }
        }
    }

    /// Failed transactions since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Whether [`WRITE_FAILURE_THRESHOLD`] transactions in a row have failed.
    pub fn is_failing(&self) -> bool {
        self.consecutive_failures() >= WRITE_FAILURE_THRESHOLD
    }
}

/// Whether `error`, from opening or committing a transaction, says the database does not take
/// writes.
fn counts_against_writes(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => !matches!(
            db.kind(),
            ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
                | ErrorKind::ExclusionViolation
        ),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => false,
        _ => true,
    }
}

/// A unit of work's transaction, until committed or rolled back on purpose.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    health: WriteHealth,
    settled: bool,
}

impl PendingWrite {
    /// The transaction committed, or failed to: recorded as such.
    pub(crate) fn committed(mut self, result: &Result<(), sqlx::Error>) {
        self.settled = true;
        match result {
            Ok(()) => self.health.record_success(),
            Err(error) => self.health.record_failure(error),
        }
    }

    /// The handler rolled back on purpose: nothing to record.
    pub(crate) fn rolled_back(mut self) {
        self.settled = true;
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if !self.settled {
            self.health.record_abandoned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_fail_and_one_success_resets() {
        let writes = WriteHealth::default();
        let shared = writes.clone();
        for _ in 0..WRITE_FAILURE_THRESHOLD - 1 {
            writes.record_failure(&sqlx::Error::Protocol("disk I/O error".into()));
        }
        assert!(!shared.is_failing());
        writes.record_failure(&sqlx::Error::WorkerCrashed);
        assert!(shared.is_failing(), "clones share the count");
        shared.record_success();
        assert_eq!(writes.consecutive_failures(), 0);
    }

    #[test]
    fn abandoned_units_make_the_record_suspect_until_a_success() {
        let writes = WriteHealth::default();
        for _ in 0..WRITE_FAILURE_THRESHOLD {
            drop(writes.pending());
        }
        assert!(writes.is_suspect() && !writes.is_failing());
        writes.pending().rolled_back();
        writes.pending().committed(&Ok(()));
        assert!(!writes.is_suspect());
    }

    #[tokio::test]
    async fn one_probe_answers_the_checks_of_its_second() {
        let writes = WriteHealth::default();
        assert_eq!(
            writes.check(|| async { Err::<(), _>("never asked") }).await,
            Ok(())
        );
        for _ in 0..WRITE_FAILURE_THRESHOLD {
            writes.record_failure(&sqlx::Error::WorkerCrashed);
        }
        let probes = std::sync::atomic::AtomicU32::new(0);
        let failing = || async {
            probes.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>("read-only")
        };
        assert_eq!(writes.check(failing).await, Err(Some("read-only")));
        assert_eq!(writes.check(failing).await, Err(None), "reused");
        assert_eq!(probes.load(Ordering::Relaxed), 1);
        *writes.last_probe.lock().await = None;
        assert_eq!(writes.check(|| async { Ok::<(), &str>(()) }).await, Ok(()));
        assert!(!writes.is_failing(), "a successful probe resets the record");
    }

    #[test]
    fn load_and_shutdown_do_not_count() {
        let writes = WriteHealth::default();
        for _ in 0..10 {
            writes.record_failure(&sqlx::Error::PoolTimedOut);
            writes.record_failure(&sqlx::Error::PoolClosed);
        }
        assert_eq!(writes.consecutive_failures(), 0);
    }
}
