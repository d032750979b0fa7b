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

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::error::ErrorKind;

/// Failed unit-of-work transactions in a row that make readiness fail.
pub const WRITE_FAILURE_THRESHOLD: u32 = 3;

/// The write record of one database: failed transactions since the last success. Cheap to
/// clone; every clone shares the count.
#[derive(Debug, Clone, Default)]
pub struct WriteHealth {
    consecutive_failures: Arc<AtomicU32>,
}

impl WriteHealth {
    /// A write committed (or a probe succeeded): the count starts again from zero.
    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
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
    fn load_and_shutdown_do_not_count() {
        let writes = WriteHealth::default();
        for _ in 0..10 {
            writes.record_failure(&sqlx::Error::PoolTimedOut);
            writes.record_failure(&sqlx::Error::PoolClosed);
        }
        assert_eq!(writes.consecutive_failures(), 0);
    }
}
