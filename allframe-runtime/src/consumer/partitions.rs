//! Which partitions each member of a consumer group consumes, on a bus where the members must
//! agree on it themselves ([`PartitionSharing::ByMembers`]: RabbitMQ): leases in the
//! consumer's own database.
//!
//! Every member heartbeats a row in [`MEMBERS_TABLE`]; the live rows give the group's size and
//! so each member's fair share, `ceil(BUS_PARTITIONS / members)`. A partition is a row in
//! [`PARTITIONS_TABLE`] with an owner and a lease. Each round (every `renew_every`) a member
//! renews its leases, gives up what it holds beyond its share and claims free or expired
//! partitions up to it. A member that must give partitions up first ends its session — its
//! running handlers finish and what is done is acknowledged — and only then releases them, so
//! the next owner starts where it stopped: order per aggregate holds across a rebalance. A
//! member that dies stops renewing; its partitions are claimed once their lease runs out, and
//! the bus hands their unacknowledged messages to the new owner.
//!
//! The leases decide who *should* consume a partition; the bus's single active consumer per
//! partition queue is what keeps order if two members ever believe they hold one (a lease that
//! expired under a member that cannot reach its database). Members share leases only if they
//! share a database: instances on their own embedded SQLite files each take every partition,
//! and the bus serves one of them at a time.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::OnceCell;

use crate::database::Database;
use crate::messaging::BUS_PARTITIONS;
#[cfg(doc)]
use crate::messaging::PartitionSharing;
use crate::messaging::envelope::unix_millis;

/// The members of each group and when their heartbeat runs out.
pub const MEMBERS_TABLE: &str = "allframe_consumer_members";
/// The partition leases of each group.
pub const PARTITIONS_TABLE: &str = "allframe_consumer_partitions";

/// The tables, created with the consumer's others (see [`super::store::install`]).
pub(crate) const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS allframe_consumer_members (
        consumer_group TEXT NOT NULL,
        member TEXT NOT NULL,
        seen_until BIGINT NOT NULL,
        PRIMARY KEY (consumer_group, member)
    )",
    "CREATE TABLE IF NOT EXISTS allframe_consumer_partitions (
        consumer_group TEXT NOT NULL,
        partition_no BIGINT NOT NULL,
        owner TEXT,
        lease_until BIGINT NOT NULL,
        PRIMARY KEY (consumer_group, partition_no)
    )",
];

/// How long leases last and how often they are renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a lease (and a heartbeat) lasts without renewal: how long a dead member's
    /// partitions wait for a new owner.
    pub lease: Duration,
    /// How often a member renews and rebalances (well under `lease`).
    pub renew_every: Duration,
}

impl Default for LeaseSettings {
    /// 15 s leases renewed every 3 s.
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(3),
        }
    }
}

/// One member's view of the group's leases.
#[derive(Debug, Clone)]
pub struct PartitionLeases {
    db: Database,
    group: String,
    member: String,
    settings: LeaseSettings,
    /// Set once the group's partition rows exist (written by the first claim).
    seeded: Arc<OnceCell<()>>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

impl PartitionLeases {
    /// The leases of `member` (unique per process, e.g. a UUID) in `group`.
    pub fn new(db: Database, group: &str, member: &str, settings: LeaseSettings) -> Self {
        Self {
            db,
            group: group.to_owned(),
            member: member.to_owned(),
            settings,
            seeded: Arc::default(),
        }
    }

    /// The lease timing.
    pub fn settings(&self) -> LeaseSettings {
        self.settings
    }

    /// One round: heartbeats, renews what this member holds, and returns the partitions it
    /// should consume from now on — what it holds within its fair share, plus free or expired
    /// partitions it claimed up to that share. Partitions held beyond the share are not in the
    /// result but stay leased until [`PartitionLeases::release`].
    pub async fn round(&self) -> Result<BTreeSet<u32>, sqlx::Error> {
        let now = unix_millis(SystemTime::now());
        let until = now.saturating_add(millis(self.settings.lease));
        let pool = self.db.pool();
        sqlx::query(
            "INSERT INTO allframe_consumer_members (consumer_group, member, seen_until)
             VALUES ($1, $2, $3)
             ON CONFLICT (consumer_group, member) DO UPDATE SET seen_until = excluded.seen_until",
        )
        .bind(&self.group)
        .bind(&self.member)
        .bind(until)
        .execute(pool)
        .await?;
        let (members,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM allframe_consumer_members
             WHERE consumer_group = $1 AND seen_until > $2",
        )
        .bind(&self.group)
        .bind(now)
        .fetch_one(pool)
        .await?;
        let held: Vec<(i64,)> = sqlx::query_as(
            "UPDATE allframe_consumer_partitions SET lease_until = $3
             WHERE consumer_group = $1 AND owner = $2 RETURNING partition_no",
        )
        .bind(&self.group)
        .bind(&self.member)
        .bind(until)
        .fetch_all(pool)
        .await?;
        let share = fair_share(u32::try_from(members.max(1)).unwrap_or(u32::MAX));
        let mut keep: BTreeSet<u32> = held
            .into_iter()
            .filter_map(|(partition,)| u32::try_from(partition).ok())
            .collect();
        while keep.len() > share {
            keep.pop_last();
        }
        if keep.len() < share {
            self.claim(&mut keep, share, now, until).await?;
        }
        Ok(keep)
    }

    /// Claims free or expired partitions into `keep` until it holds `share`.
    async fn claim(
        &self,
        keep: &mut BTreeSet<u32>,
        share: usize,
        now: i64,
        until: i64,
    ) -> Result<(), sqlx::Error> {
        let pool = self.db.pool();
        self.seeded
            .get_or_try_init(|| async {
                sqlx::query(sqlx::AssertSqlSafe(seed_statement()))
                    .bind(&self.group)
                    .execute(pool)
                    .await
                    .map(drop)
            })
            .await?;
        let free: Vec<(i64,)> = sqlx::query_as(
            "SELECT partition_no FROM allframe_consumer_partitions
             WHERE consumer_group = $1 AND (owner IS NULL OR lease_until < $2)
             ORDER BY partition_no",
        )
        .bind(&self.group)
        .bind(now)
        .fetch_all(pool)
        .await?;
        for (partition,) in free {
            if keep.len() >= share {
                break;
            }
            // Conditional: another member may have claimed it since the SELECT.
            let claimed = sqlx::query(
                "UPDATE allframe_consumer_partitions SET owner = $3, lease_until = $4
                 WHERE consumer_group = $1 AND partition_no = $2
                   AND (owner IS NULL OR lease_until < $5)",
            )
            .bind(&self.group)
            .bind(partition)
            .bind(&self.member)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await?;
            if claimed.rows_affected() == 1
                && let Ok(partition) = u32::try_from(partition)
            {
                keep.insert(partition);
            }
        }
        Ok(())
    }

    /// Gives up every partition this member holds but `keep`: their next owner may start.
    pub async fn release(&self, keep: &BTreeSet<u32>) -> Result<(), sqlx::Error> {
        let held: Vec<(i64,)> = sqlx::query_as(
            "SELECT partition_no FROM allframe_consumer_partitions
             WHERE consumer_group = $1 AND owner = $2",
        )
        .bind(&self.group)
        .bind(&self.member)
        .fetch_all(self.db.pool())
        .await?;
        for (partition,) in held {
            if u32::try_from(partition).is_ok_and(|p| keep.contains(&p)) {
                continue;
            }
            sqlx::query(
                "UPDATE allframe_consumer_partitions SET owner = NULL, lease_until = 0
                 WHERE consumer_group = $1 AND partition_no = $2 AND owner = $3",
            )
            .bind(&self.group)
            .bind(partition)
            .bind(&self.member)
            .execute(self.db.pool())
            .await?;
        }
        Ok(())
    }

    /// Leaves the group: releases every partition and removes the heartbeat, so the others
    /// rebalance at their next round.
    pub async fn leave(&self) -> Result<(), sqlx::Error> {
        self.release(&BTreeSet::new()).await?;
        sqlx::query(
            "DELETE FROM allframe_consumer_members WHERE consumer_group = $1 AND member = $2",
        )
        .bind(&self.group)
        .bind(&self.member)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

/// Inserts the rows of the partitions of group `$1` that do not exist yet, in one statement.
fn seed_statement() -> String {
    let mut statement = String::from(
        "INSERT INTO allframe_consumer_partitions (consumer_group, partition_no, owner, lease_until) VALUES ",
    );
    for partition in 0..BUS_PARTITIONS {
        let separator = if partition == 0 { "" } else { ", " };
        let _ = write!(statement, "{separator}($1, {partition}, NULL, 0)");
    }
    statement.push_str(" ON CONFLICT (consumer_group, partition_no) DO NOTHING");
    statement
}

/// The partitions one of `members` members consumes: `ceil(BUS_PARTITIONS / members)`.
fn fair_share(members: u32) -> usize {
    BUS_PARTITIONS.div_ceil(members.max(1)) as usize
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::database::DatabaseTarget;

    async fn database() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = DatabaseTarget::parse(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("leases.db").display()
        ))
        .expect("target");
        let db = Database::connect(&target).await.expect("connect");
        super::super::store::install(&db).await.expect("install");
        (dir, db)
    }

    fn member(db: &Database, name: &str) -> PartitionLeases {
        PartitionLeases::new(db.clone(), "shop.billing", name, LeaseSettings::default())
    }

    #[test]
    fn shares_cover_every_partition() {
        assert_eq!(fair_share(1), 16);
        assert_eq!(fair_share(3), 6);
        assert_eq!(fair_share(16), 1);
        assert_eq!(fair_share(40), 1);
    }

    #[tokio::test]
    async fn members_converge_on_disjoint_fair_shares_and_a_leaver_hands_over() {
        let (_dir, db) = database().await;
        let (a, b, c) = (member(&db, "a"), member(&db, "b"), member(&db, "c"));
        let alone = a.round().await.expect("round");
        assert_eq!(alone.len(), 16, "a lone member takes every partition");

        // b joins: a keeps its share of two members and releases the rest after its session.
        let b_first = b.round().await.expect("round");
        assert!(b_first.is_empty(), "nothing is free yet");
        let a_keeps = a.round().await.expect("round");
        assert_eq!(a_keeps.len(), 8);
        a.release(&a_keeps).await.expect("release");
        let b_gets = b.round().await.expect("round");
        assert_eq!(b_gets.len(), 8);
        assert!(a_keeps.is_disjoint(&b_gets));

        // c joins; after a few rounds the three hold disjoint shares of at most six.
        c.round().await.expect("round");
        let mut held = Vec::new();
        for _ in 0..3 {
            held.clear();
            for leases in [&a, &b, &c] {
                let keep = leases.round().await.expect("round");
                leases.release(&keep).await.expect("release");
                held.push(keep);
            }
        }
        let all: BTreeSet<u32> = held.iter().flatten().copied().collect();
        assert_eq!(all.len(), 16, "every partition has an owner: {held:?}");
        assert_eq!(
            held.iter().map(BTreeSet::len).sum::<usize>(),
            16,
            "no partition twice"
        );
        assert!(held.iter().all(|keep| keep.len() <= 6), "{held:?}");

        // c leaves: its partitions go to the others at their next rounds.
        c.leave().await.expect("leave");
        let mut remaining = BTreeSet::new();
        for _ in 0..2 {
            remaining.clear();
            for leases in [&a, &b] {
                let keep = leases.round().await.expect("round");
                leases.release(&keep).await.expect("release");
                remaining.extend(keep);
            }
        }
        assert_eq!(remaining.len(), 16);
    }
}
