//! How the local bus forgets per-instance groups ([`SubscribeOptions::per_instance`]): a
//! subscriber that closes deletes its group's rows, and the hourly pruning deletes the rows of
//! per-instance groups whose every lease lapsed more than [`DEAD_INSTANCE_HORIZON`] ago (the
//! process died without closing), so a killed process leaks nothing for good. Ordinary groups
//! are never deleted here: their offsets are what they have handled.
//!
//! [`SubscribeOptions::per_instance`]: super::SubscribeOptions::per_instance

use std::time::{Duration, SystemTime};

use super::super::topic::is_per_instance_group;
use super::{BusError, LocalBus};
use crate::messaging::envelope::unix_millis;

/// How long after its last lease lapsed a per-instance group is taken for dead. A live
/// subscriber renews its leases on every poll, even while idle, so only a process that
/// stopped (or a handler stuck for this long) lets them lapse.
pub(super) const DEAD_INSTANCE_HORIZON: Duration = Duration::from_secs(24 * 60 * 60);

impl LocalBus {
    /// The consumer groups that hold offsets on this bus (per-instance groups included, under
    /// their unique names), sorted.
    pub async fn groups(&self) -> Result<Vec<String>, BusError> {
        sqlx::query_scalar(
            "SELECT DISTINCT group_name FROM bus_partition_offsets
             UNION SELECT DISTINCT group_name FROM bus_offsets
             ORDER BY 1",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(BusError::Local)
    }

    /// Deletes the offsets and leases of `group` (a closing per-instance subscriber's own).
    pub(super) async fn forget_group(&self, group: &str) -> Result<(), BusError> {
        sqlx::query("DELETE FROM bus_partition_offsets WHERE group_name = $1")
            .bind(group)
            .execute(&self.inner.pool)
            .await
            .map_err(BusError::Local)?;
        Ok(())
    }

    /// Deletes the rows of per-instance groups whose every lease lapsed more than `lapsed_for`
    /// ago; returns how many groups. Ordinary groups are left alone. The hourly pruning runs
    /// it with a day.
    pub async fn forget_dead_per_instance_groups(
        &self,
        lapsed_for: Duration,
    ) -> Result<u64, BusError> {
        let cutoff = unix_millis(SystemTime::now() - lapsed_for);
        // Candidates by the name's marker (`~` never occurs in an ordinary group's name), then
        // checked exactly, then deleted only if still lapsed.
        let candidates: Vec<String> = sqlx::query_scalar(
            "SELECT group_name FROM bus_partition_offsets WHERE instr(group_name, '~') > 0
             GROUP BY group_name HAVING MAX(lease_until) < $1",
        )
        .bind(cutoff)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(BusError::Local)?;
        let mut forgotten = 0;
        for group in candidates.iter().filter(|g| is_per_instance_group(g)) {
            let done = sqlx::query(
                "DELETE FROM bus_partition_offsets WHERE group_name = $1 AND NOT EXISTS (
                     SELECT 1 FROM bus_partition_offsets WHERE group_name = $1
                         AND lease_until >= $2)",
            )
            .bind(group)
            .bind(cutoff)
            .execute(&self.inner.pool)
            .await
            .map_err(BusError::Local)?;
            if done.rows_affected() > 0 {
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// [`LocalBus::forget_dead_per_instance_groups`] with [`DEAD_INSTANCE_HORIZON`], logging
    /// what it did.
    pub(super) async fn forget_dead_instances(&self) {
        match self
            .forget_dead_per_instance_groups(DEAD_INSTANCE_HORIZON)
            .await
        {
            Ok(0) => {}
            Ok(groups) => {
                tracing::info!(
                    groups,
                    "local event bus: dead per-instance groups forgotten"
                );
            }
            Err(error) => {
                tracing::warn!(error = %error, "local event bus: forgetting dead per-instance groups failed; retrying in an hour");
            }
        }
    }
}
