//! Projections: read models built from every event in commit order, each from a checkpoint
//! kept in the same transaction as its read model, so an event changes a read model exactly
//! once however often the service stops and resumes.
//!
//! A projection owns tables; the runtime names them per *version* of the read model
//! (`stock_levels` → `stock_levels_v1`) and hands the names to the projection's code through
//! [`ReadModel`]. [`Projections::rebuild`] starts the next version from position zero beside
//! the current one, which keeps serving reads ([`Projections::current`]); once the new version
//! has caught up with the last event it becomes current, in one transaction, and the tables of
//! the old one are dropped.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use sqlx::AnyConnection;

use super::{EventStore, EventStoreError, PAGE, RecordedEvent};
use crate::BoxError;
use crate::component::BoxFuture;
use crate::database::Database;
use tokio_util::sync::CancellationToken;

/// One version of a projection's read model: the names of its tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadModel {
    projection: &'static str,
    version: i64,
}

impl ReadModel {
    /// The name of table `base` in this version, e.g. `stock_levels_v2`.
    pub fn table(&self, base: &str) -> String {
        format!("{base}_v{}", self.version)
    }

    /// Its version, from 1.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The projection it belongs to.
    pub fn projection(&self) -> &'static str {
        self.projection
    }
}

/// A projection: the user's code building one read model from the events.
pub trait Projection: Send + Sync + 'static {
    /// Its name, e.g. `"StockLevels"`: by default the type's own name. A service generated
    /// from `architecture.toml` names each projection as `[services.cqrs] projections` does
    /// ([`declared`]), whatever this returns.
    fn name(&self) -> &'static str {
        let path = std::any::type_name::<Self>();
        let bare = path.split('<').next().unwrap_or(path);
        bare.rsplit("::").next().unwrap_or(bare)
    }

    /// The base names of the tables it owns (lowercase letters, digits and `_`): each
    /// version gets its own, named by [`ReadModel::table`], and the runtime drops a version's
    /// tables once another replaced it.
    fn tables(&self) -> &'static [&'static str];

    /// Creates the tables of `model` on `conn` (a transaction).
    fn create<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        model: &'a ReadModel,
    ) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Applies `event` to `model` on `conn`: the transaction that also moves the checkpoint
    /// past it. Events it has no use for are ignored here.
    fn apply<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        model: &'a ReadModel,
        event: &'a RecordedEvent,
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// `projection` under the name `name`, as the file declares it: what the macro hands the
/// runtime for each name of `[services.cqrs] projections`.
pub fn declared<P: Projection>(name: &'static str, projection: P) -> Arc<dyn Projection> {
    Arc::new(Declared { name, projection })
}

/// A projection named by the file.
struct Declared<P> {
    name: &'static str,
    projection: P,
}

impl<P: Projection> Projection for Declared<P> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn tables(&self) -> &'static [&'static str] {
        self.projection.tables()
    }

    fn create<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        model: &'a ReadModel,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        self.projection.create(conn, model)
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut AnyConnection,
        model: &'a ReadModel,
        event: &'a RecordedEvent,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        self.projection.apply(conn, model, event)
    }
}

/// Why a projection did not move on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// No projection of that name runs here.
    #[error("no projection `{0}` runs in this service")]
    Unknown(String),
    /// A table name a projection declared cannot be one.
    #[error(
        "projection `{projection}` declares the table `{table}`: use lowercase letters, digits and `_`"
    )]
    InvalidTable {
        /// The projection.
        projection: &'static str,
        /// The name.
        table: &'static str,
    },
    /// The projection's code failed on an event; its batch rolled back, and it is retried.
    #[error("projection `{projection}` failed at position {position}: {source}")]
    Apply {
        /// The projection.
        projection: &'static str,
        /// The event's position.
        position: i64,
        /// What its code said.
        source: BoxError,
    },
    /// Creating a version's tables failed.
    #[error("projection `{projection}` could not create its tables: {source}")]
    Create {
        /// The projection.
        projection: &'static str,
        /// What its code said.
        source: BoxError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] EventStoreError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where one version of a projection stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectionStatus {
    /// The projection.
    pub name: String,
    /// The version of its read model.
    pub version: i64,
    /// `active` (read by the service) or `building` (a rebuild catching up).
    pub state: String,
    /// The position of the last event applied.
    pub position: i64,
}

/// The projections of a service over its event store. Cheap to clone.
#[derive(Clone)]
pub struct Projections {
    store: EventStore,
    all: Arc<[Arc<dyn Projection>]>,
    retire_grace: Duration,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.all.iter().map(|p| p.name()).collect();
        f.debug_struct("Projections").field("all", &names).finish()
    }
}

impl Projections {
    /// `all` over `store`: version 1 of each projection that has none yet (its tables
    /// created, at position 0), recorded under the store's install lock so instances starting
    /// at once record it once.
    pub async fn open(
        store: &EventStore,
        all: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ProjectionError> {
        for projection in &all {
            if let Some(table) = projection.tables().iter().find(|t| !is_table_name(t)) {
                return Err(ProjectionError::InvalidTable {
                    projection: projection.name(),
                    table,
                });
            }
        }
        let mut tx = store
            .database()
            .begin_install(super::schema::INSTALL_LOCK_KEY)
            .await?;
        for projection in &all {
            let known: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM allframe_projections WHERE name = $1")
                    .bind(projection.name())
                    .fetch_one(&mut *tx)
                    .await?;
            if known == 0 {
                start_version(&mut tx, projection.as_ref(), 1, "active").await?;
            }
        }
        tx.commit().await?;
        Ok(Self {
            store: store.clone(),
            all: all.into(),
            retire_grace: Self::RETIRE_GRACE,
        })
    }

    /// How long a version replaced by a rebuild keeps its tables: a read that took its name
    /// just before the switch still finds them. 60 s.
    pub const RETIRE_GRACE: Duration = Duration::from_secs(60);

    /// These projections, dropping a replaced version's tables `grace` after the switch
    /// (at the first pass after it) instead of [`Self::RETIRE_GRACE`].
    pub fn with_retire_grace(mut self, grace: Duration) -> Self {
        self.retire_grace = grace;
        self
    }

    fn db(&self) -> &Database {
        self.store.database()
    }

    /// The read model the service serves of projection `name`: its active version.
    pub async fn current(&self, name: &str) -> Result<ReadModel, ProjectionError> {
        let projection = self.find(name)?;
        let version: i64 = sqlx::query_scalar(
            "SELECT version FROM allframe_projections WHERE name = $1 AND state = 'active'",
        )
        .bind(projection.name())
        .fetch_one(self.db().pool())
        .await?;
        Ok(ReadModel {
            projection: projection.name(),
            version,
        })
    }

    /// Every version of every projection, and where it stands.
    pub async fn status(&self) -> Result<Vec<ProjectionStatus>, ProjectionError> {
        let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT name, version, state, position FROM allframe_projections
             ORDER BY name, version",
        )
        .fetch_all(self.db().pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, version, state, position)| ProjectionStatus {
                name,
                version,
                state,
                position,
            })
            .collect())
    }

    /// Starts building the next version of projection `name` from position zero, beside the
    /// current one (which keeps serving reads until the new one has caught up). A rebuild
    /// already under way is started over. The new version.
    pub async fn rebuild(&self, name: &str) -> Result<i64, ProjectionError> {
        let projection = self.find(name)?;
        let mut tx = self.db().begin_write().await?;
        retire_all(&mut tx, projection.as_ref(), "building").await?;
        let last: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM allframe_projections WHERE name = $1")
                .bind(projection.name())
                .fetch_one(&mut *tx)
                .await?;
        let version = last + 1;
        start_version(&mut tx, projection.as_ref(), version, "building").await?;
        tx.commit().await?;
        tracing::info!(projection = name, version, "projection rebuild started");
        Ok(version)
    }

    /// Applies to every version of every projection at most `batch` events past its
    /// checkpoint, each version in one transaction with its checkpoint, and makes a rebuilt
    /// version current once it has caught up. How many events were applied in all.
    pub async fn catch_up(&self, batch: usize) -> Result<usize, ProjectionError> {
        let mut applied = 0;
        for projection in self.all.iter() {
            self.drop_retired(projection.as_ref()).await?;
            let versions: Vec<(i64, String, i64)> = sqlx::query_as(
                "SELECT version, state, position FROM allframe_projections WHERE name = $1
                 ORDER BY version",
            )
            .bind(projection.name())
            .fetch_all(self.db().pool())
            .await?;
            for (version, state, position) in versions {
                if state == "retired" {
                    continue;
                }
                let model = ReadModel {
                    projection: projection.name(),
                    version,
                };
                let (count, reached) = self
                    .advance(projection.as_ref(), &model, position, batch)
                    .await?;
                applied += count;
                if state == "building" && count < batch {
                    self.switch_if_caught_up(projection.as_ref(), &model, reached)
                        .await?;
                }
            }
        }
        Ok(applied)
    }

    /// Applies up to `batch` events after `position` to `model`, with its checkpoint, in one
    /// transaction; the count and the position reached.
    async fn advance(
        &self,
        projection: &dyn Projection,
        model: &ReadModel,
        position: i64,
        batch: usize,
    ) -> Result<(usize, i64), ProjectionError> {
        let events: Vec<RecordedEvent> = self
            .store
            .read_all(position)
            .take(batch)
            .try_collect()
            .await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok((0, position));
        };
        let mut tx = self.db().begin_write().await?;
        for event in &events {
            projection
                .apply(&mut tx, model, event)
                .await
                .map_err(|source| ProjectionError::Apply {
                    projection: projection.name(),
                    position: event.position,
                    source,
                })?;
        }
        crash_point!("projection-batch-applied");
        // Moves only from where this pass read: a second runner that got here first makes
        // this update miss, and the batch rolls back instead of applying twice.
        let moved = sqlx::query(
            "UPDATE allframe_projections SET position = $1
             WHERE name = $2 AND version = $3 AND position = $4",
        )
        .bind(last)
        .bind(projection.name())
        .bind(model.version)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok((0, position));
        }
        tx.commit().await?;
        crash_point!("projection-batch-committed");
        Ok((events.len(), last))
    }

    /// Makes the rebuilt `model` current when nothing is left past `reached`, retiring the
    /// version it replaces (its tables dropped after the grace), in one transaction.
    async fn switch_if_caught_up(
        &self,
        projection: &dyn Projection,
        model: &ReadModel,
        reached: i64,
    ) -> Result<(), ProjectionError> {
        let mut tx = self.db().begin_write().await?;
        let newer: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM allframe_events WHERE position > $1 ORDER BY position LIMIT 1",
        )
        .bind(reached)
        .fetch_optional(&mut *tx)
        .await?;
        if newer.is_some() {
            return Ok(());
        }
        retire_later(&mut tx, projection, now_millis()).await?;
        sqlx::query(
            "UPDATE allframe_projections SET state = 'active' WHERE name = $1 AND version = $2",
        )
        .bind(projection.name())
        .bind(model.version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            projection = projection.name(),
            version = model.version,
            "rebuilt projection caught up: it is current"
        );
        Ok(())
    }

    /// Keeps every projection caught up until `shutdown`: a pass whenever the last one applied
    /// events, or an append of this process committed, else every `idle` (appends of other
    /// instances are seen then). A failing pass is logged and retried after `idle` (its batch
    /// rolled back, so nothing is applied twice).
    pub async fn run(&self, shutdown: CancellationToken, idle: Duration) {
        let batch = usize::try_from(PAGE).unwrap_or(500);
        let appended = self.store.appended();
        loop {
            // Registered before the pass, so an append committing during it still wakes us.
            let woken = appended.notified();
            let wait = match self.catch_up(batch).await {
                Ok(applied) if applied > 0 => Duration::ZERO,
                Ok(_) => idle,
                Err(error) => {
                    tracing::error!(%error, "projection pass failed; retrying");
                    idle
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = woken => {}
            }
        }
    }

    fn find(&self, name: &str) -> Result<&Arc<dyn Projection>, ProjectionError> {
        self.all
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
    }
}

/// Records version `version` of `projection` in `state` at position 0 and creates its tables.
async fn start_version(
    tx: &mut AnyConnection,
    projection: &dyn Projection,
    version: i64,
    state: &str,
) -> Result<(), ProjectionError> {
    let model = ReadModel {
        projection: projection.name(),
        version,
    };
    for table in projection.tables() {
        drop_table(tx, &model.table(table)).await?;
    }
    projection
        .create(tx, &model)
        .await
        .map_err(|source| ProjectionError::Create {
            projection: projection.name(),
            source,
        })?;
    sqlx::query(
        "INSERT INTO allframe_projections (name, version, state, position) VALUES ($1, $2, $3, 0)",
    )
    .bind(projection.name())
    .bind(version)
    .bind(state)
    .execute(tx)
    .await?;
    Ok(())
}

/// Retires every version of `projection` in `state`.
async fn retire_all(
    tx: &mut AnyConnection,
    projection: &dyn Projection,
    state: &str,
) -> Result<(), ProjectionError> {
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM allframe_projections WHERE name = $1 AND state = $2",
    )
    .bind(projection.name())
    .bind(state)
    .fetch_all(&mut *tx)
    .await?;
    for version in versions {
        retire(tx, projection, version).await?;
    }
    Ok(())
}

impl Projections {
    /// Drops the tables of the versions of `projection` retired at least the grace ago.
    async fn drop_retired(&self, projection: &dyn Projection) -> Result<(), ProjectionError> {
        let grace = i64::try_from(self.retire_grace.as_millis()).unwrap_or(i64::MAX);
        let due: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM allframe_projection_retirements
             WHERE name = $1 AND retired_at <= $2",
        )
        .bind(projection.name())
        .bind(now_millis().saturating_sub(grace))
        .fetch_all(self.db().pool())
        .await?;
        if due.is_empty() {
            return Ok(());
        }
        let mut tx = self.db().begin_write().await?;
        for version in due {
            retire(&mut tx, projection, version).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Marks the active version of `projection` retired at `now` (Unix ms): it no longer serves
/// nor applies, and its tables are dropped once the grace has passed.
async fn retire_later(
    tx: &mut AnyConnection,
    projection: &dyn Projection,
    now: i64,
) -> Result<(), ProjectionError> {
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM allframe_projections WHERE name = $1 AND state = 'active'",
    )
    .bind(projection.name())
    .fetch_all(&mut *tx)
    .await?;
    for version in versions {
        sqlx::query(
            "UPDATE allframe_projections SET state = 'retired' WHERE name = $1 AND version = $2",
        )
        .bind(projection.name())
        .bind(version)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO allframe_projection_retirements (name, version, retired_at)
             VALUES ($1, $2, $3)",
        )
        .bind(projection.name())
        .bind(version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Now, in Unix milliseconds.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Forgets version `version` of `projection` and drops its tables.
async fn retire(
    tx: &mut AnyConnection,
    projection: &dyn Projection,
    version: i64,
) -> Result<(), ProjectionError> {
    let model = ReadModel {
        projection: projection.name(),
        version,
    };
    for table in projection.tables() {
        drop_table(tx, &model.table(table)).await?;
    }
    for table in ["allframe_projections", "allframe_projection_retirements"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE name = $1 AND version = $2"
        )))
        .bind(projection.name())
        .bind(version)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn drop_table(tx: &mut AnyConnection, table: &str) -> Result<(), sqlx::Error> {
    // `table` is a declared base name checked by `is_table_name`, and a version number.
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
        .execute(tx)
        .await?;
    Ok(())
}

/// Whether `name` may be a table's base name: 1 to 48 characters of `[a-z0-9_]`, starting
/// with a letter.
fn is_table_name(name: &str) -> bool {
    (1..=48).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
