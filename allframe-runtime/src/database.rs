//! The service database: one sqlx `Any` pool that talks to SQLite or PostgreSQL.
//!
//! `DATABASE_URL` picks the backend at run time; unset, the service uses an embedded SQLite file
//! so it runs with no external service. This module parses the URL, connects, switches SQLite
//! files to WAL, runs the embedded migrations through sqlx's migrator, and answers readiness
//! pings. It never logs or returns a URL with its password: [`DatabaseTarget`]'s `Display` and
//! `Debug` are redacted.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Connection as _;
use sqlx::SqlSafeStr as _;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};

use crate::env::Environment;
use crate::settings::EmbeddedMigration;

mod writes;

pub(crate) use writes::PendingWrite;
pub use writes::{PROBE_REUSE, WRITE_FAILURE_THRESHOLD, WriteHealth};

/// The variable naming the database.
pub const DATABASE_URL: &str = allframe_env::DATABASE_URL.name;
/// The variable naming the directory of the default SQLite file.
pub const ALLFRAME_DATA_DIR: &str = allframe_env::ALLFRAME_DATA_DIR.name;
/// The data directory used when `ALLFRAME_DATA_DIR` is unset.
pub const DEFAULT_DATA_DIR: &str = "./.data";

/// The service's data directory: `ALLFRAME_DATA_DIR`, else [`DEFAULT_DATA_DIR`] (not created
/// here).
pub fn data_dir(env: &Environment) -> PathBuf {
    PathBuf::from(
        env.get_non_empty(ALLFRAME_DATA_DIR)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()),
    )
}
/// The URL schemes `DATABASE_URL` accepts.
pub const ACCEPTED_SCHEMES: &str = "`sqlite:`, `postgres://`, `postgresql://`";

/// How long start-up waits for the first connection (PostgreSQL may still be booting).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a readiness ping may take before the database counts as down.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Which engine a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite (embedded, the default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// A short lowercase name: `"sqlite"` or `"postgres"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Database failures: configuration, connection, migration, ping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// `DATABASE_URL` could not be parsed as a URL.
    #[error("DATABASE_URL is not a valid URL ({reason}); accepted schemes: {ACCEPTED_SCHEMES}")]
    InvalidUrl {
        /// What the URL parser objected to (never the URL itself).
        reason: String,
    },
    /// `DATABASE_URL` names an engine the runtime does not support.
    #[error(
        "DATABASE_URL has the unsupported scheme `{scheme}`; accepted schemes: {ACCEPTED_SCHEMES}"
    )]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// The URL names an engine whose cargo feature is off.
    #[error(
        "DATABASE_URL names {backend}, but allframe-runtime was built without its `{feature}` \
         feature; enable it: `allframe = {{ package = \"allframe-runtime\", features = [\"{feature}\"] }}`"
    )]
    FeatureDisabled {
        /// The engine's name.
        backend: &'static str,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// The directory of the default SQLite file could not be created.
    #[error("cannot create the data directory `{}` (set ALLFRAME_DATA_DIR to a writable directory): {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot connect to the {backend} database at {target}: {source}")]
    Connect {
        /// The engine.
        backend: Backend,
        /// The redacted URL.
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Switching SQLite to WAL failed.
    #[error("cannot switch the SQLite database to WAL mode: {0}")]
    Wal(#[source] sqlx::Error),
    /// Two embedded migrations share a version.
    #[error("two embedded migrations have version {version}; versions must be unique")]
    DuplicateMigration {
        /// The repeated version.
        version: i64,
    },
    /// Running migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] MigrateError),
    /// A ping failed.
    #[error("database ping failed: {0}")]
    Ping(#[source] sqlx::Error),
    /// A ping did not answer in time.
    #[error("database ping did not answer within {} ms", .0.as_millis())]
    PingTimeout(Duration),
    /// The database answers but takes no writes: a replica, or read-only transactions.
    #[error("the database is read-only (a replica, or `default_transaction_read_only` is on)")]
    ReadOnly,
}

/// Where the database is, as decided from the environment. Holds the URL, which may contain a
/// password: `Display` and `Debug` show the redacted form only.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseTarget {
    backend: Backend,
    url: String,
    redacted: String,
    sqlite_file: Option<PathBuf>,
    in_memory: bool,
    read_only: bool,
}

impl DatabaseTarget {
    /// Decides the database from `DATABASE_URL` (and `ALLFRAME_DATA_DIR` when it is unset).
    ///
    /// Unset or blank: the SQLite file `<data dir>/<service name>.db`, its directory created
    /// if missing. `sqlite:…`: SQLite. `postgres://…` / `postgresql://…`: PostgreSQL.
    pub fn from_env(env: &Environment, service_name: &str) -> Result<Self, DbError> {
        match env.get_non_empty(DATABASE_URL) {
            None => Self::default_sqlite(&data_dir(env), service_name),
            Some(url) => Self::parse(url.trim()),
        }
    }

    /// The default SQLite file of `service_name` inside `dir`, creating `dir` if needed.
    pub fn default_sqlite(dir: &Path, service_name: &str) -> Result<Self, DbError> {
        require_sqlite_feature()?;
        let data_dir_error = |source| DbError::DataDir {
            path: dir.to_path_buf(),
            source,
        };
        let dir = std::path::absolute(dir).map_err(data_dir_error)?;
        std::fs::create_dir_all(&dir).map_err(data_dir_error)?;
        let file = dir.join(format!("{}.db", file_stem(service_name)));
        let file_url = url::Url::from_file_path(&file).map_err(|()| DbError::DataDir {
            path: dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path cannot be written as a URL",
            ),
        })?;
        let url = format!("sqlite://{}?mode=rwc", file_url.path());
        Ok(Self {
            backend: Backend::Sqlite,
            redacted: url.clone(),
            url,
            sqlite_file: Some(file),
            in_memory: false,
            read_only: false,
        })
    }

    /// Parses an explicit database URL.
    pub fn parse(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            require_sqlite_feature()?;
            let query = url.split_once('?').map_or("", |(_, query)| query);
            let in_memory = url.contains(":memory:") || has_param(query, "mode", "memory");
            let read_only = has_param(query, "mode", "ro") || has_param(query, "immutable", "true");
            return Ok(Self {
                backend: Backend::Sqlite,
                url: url.to_owned(),
                redacted: url.to_owned(),
                sqlite_file: None,
                in_memory,
                read_only,
            });
        }
        let parsed = url::Url::parse(url).map_err(|error| DbError::InvalidUrl {
            reason: error.to_string(),
        })?;
        match parsed.scheme() {
            "postgres" | "postgresql" => {
                if !cfg!(feature = "postgres") {
                    return Err(DbError::FeatureDisabled {
                        backend: "PostgreSQL",
                        feature: "postgres",
                    });
                }
                Ok(Self {
                    backend: Backend::Postgres,
                    url: url.to_owned(),
                    redacted: redact(&parsed),
                    sqlite_file: None,
                    in_memory: false,
                    read_only: false,
                })
            }
            scheme => Err(DbError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite file, when the default file was chosen.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    /// The URL with any password replaced by `***`: safe to log.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseTarget")
            .field("backend", &self.backend)
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

fn require_sqlite_feature() -> Result<(), DbError> {
    if cfg!(feature = "sqlite") {
        Ok(())
    } else {
        Err(DbError::FeatureDisabled {
            backend: "SQLite",
            feature: "sqlite",
        })
    }
}

/// A file name made only of `[A-Za-z0-9._-]`, so a service name can never escape the directory.
fn file_stem(service_name: &str) -> String {
    let stem: String = service_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.trim_matches('.').is_empty() {
        "service".to_owned()
    } else {
        stem
    }
}

fn has_param(query: &str, key: &str, value: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == key && v == value)
}

/// The URL with its password (and any `password`-like query parameter) replaced by `***`.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Cannot fail: a URL with a password has a host.
        let _ = shown.set_password(Some("***"));
    }
    if shown.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if key.to_ascii_lowercase().contains("password") {
                    Cow::Borrowed("***")
                } else {
                    value
                };
                (key.into_owned(), value.into_owned())
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// Whether the pool pings a connection each time it hands it out. On PostgreSQL the ping finds
/// connections the server or the network dropped while they sat idle. A SQLite connection is
/// a worker thread in this process: its ping only asks that thread whether it runs, a round
/// trip to it (two thread wake-ups) before every query, and a thread that stopped fails the
/// query itself.
fn test_before_acquire(backend: Backend) -> bool {
    backend == Backend::Postgres
}

/// A readiness write probe waits at most a second for SQLite's write lock…
const SQLITE_PROBE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 1000";
/// …then gives its connection back with sqlx's default wait (5 s).
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// The service database: a sqlx `Any` pool, the engine behind it, and its write record.
/// Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    embedded_default: bool,
    /// A SQLite database in memory: one connection holds all of it.
    in_memory: bool,
    writes: WriteHealth,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .field("embedded_default", &self.embedded_default)
            .field("connections", &self.pool.size())
            .field(
                "consecutive_write_failures",
                &self.writes.consecutive_failures(),
            )
            .finish()
    }
}

impl Database {
    /// Opens a pool to `target` (at least one connection is established before returning) and
    /// switches file-backed SQLite databases to WAL.
    pub async fn connect(target: &DatabaseTarget) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let mut options = AnyPoolOptions::new()
            .acquire_timeout(CONNECT_TIMEOUT)
            .test_before_acquire(test_before_acquire(target.backend));
        if target.in_memory {
            // Through `Any`, the SQLite options are re-parsed from the URL for every new
            // connection, and each parse of `:memory:` names a fresh database: so one
            // connection, kept forever, is the only way all queries see the same data.
            options = options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = options
            .connect(&target.url)
            .await
            .map_err(|source| DbError::Connect {
                backend: target.backend,
                target: target.redacted.clone(),
                source,
            })?;
        let database = Self {
            pool,
            backend: target.backend,
            embedded_default: target.sqlite_file.is_some(),
            in_memory: target.in_memory,
            writes: WriteHealth::default(),
        };
        if target.backend == Backend::Sqlite && !target.in_memory && !target.read_only {
            // The journal mode is stored in the file: setting it once covers every connection.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&database.pool)
                .await
                .map_err(DbError::Wal)?;
        }
        Ok(database)
    }

    /// The connection pool, for `sqlx::query(..).execute(db.pool())`.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Opens a transaction that will write: on SQLite `BEGIN IMMEDIATE`, so the write lock is
    /// taken (or waited for) up front rather than failing at the first write.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// A write transaction for creating tables: on PostgreSQL it first takes the advisory
    /// lock `lock_key` (held until it ends), so instances starting at once do not race on
    /// `CREATE TABLE IF NOT EXISTS`; SQLite's write lock serialises them already.
    pub(crate) async fn begin_install(
        &self,
        lock_key: i64,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(lock_key)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether this is the embedded SQLite file chosen because `DATABASE_URL` is unset.
    pub fn is_embedded_default(&self) -> bool {
        self.embedded_default
    }

    /// Whether this is a SQLite database in memory, held by its one connection (closing that
    /// connection loses the data).
    pub(crate) fn is_in_memory(&self) -> bool {
        self.in_memory
    }

    /// How the units of work's transactions went: readiness fails after
    /// [`WRITE_FAILURE_THRESHOLD`] failures in a row.
    pub fn writes(&self) -> &WriteHealth {
        &self.writes
    }

    /// Checks that the database would take a write, within [`PING_TIMEOUT`], without writing
    /// anything: on SQLite, takes the write lock (`BEGIN IMMEDIATE`, waiting at most a second)
    /// and rolls back; on PostgreSQL, asks in a transaction whether it is read-only (a replica,
    /// or `default_transaction_read_only`) and rolls back. The probe runs to its end in a task
    /// of its own, so a caller that gives up never leaves a connection inside a transaction;
    /// one it leaves in doubt is closed rather than returned to the pool. Readiness runs it
    /// (through [`WriteHealth::check`]) while [`Database::writes`] is failing or suspect.
    pub async fn probe_write(&self) -> Result<(), DbError> {
        let db = self.clone();
        let probe = tokio::spawn(async move { db.probe_write_to_the_end().await });
        match tokio::time::timeout(PING_TIMEOUT, probe).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(DbError::Ping(sqlx::Error::Protocol(format!(
                "the write probe stopped: {join}"
            )))),
            Err(_) => Err(DbError::PingTimeout(PING_TIMEOUT)),
        }
    }

    async fn probe_write_to_the_end(&self) -> Result<(), DbError> {
        let mut connection = self.pool.acquire().await.map_err(DbError::Ping)?;
        match self.backend {
            Backend::Sqlite => {
                sqlx::raw_sql(SQLITE_PROBE_BUSY_TIMEOUT)
                    .execute(&mut *connection)
                    .await
                    .map_err(DbError::Ping)?;
                let locked = sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut *connection)
                    .await;
                let unlocked = match locked {
                    Ok(_) => sqlx::raw_sql("ROLLBACK")
                        .execute(&mut *connection)
                        .await
                        .map(drop),
                    Err(_) => Ok(()),
                };
                let restored = sqlx::raw_sql(SQLITE_BUSY_TIMEOUT)
                    .execute(&mut *connection)
                    .await;
                if unlocked.is_err() || restored.is_err() {
                    // Never hand the pool a connection in an unknown state.
                    let _ = connection.close().await;
                }
                locked.map(drop).map_err(DbError::Ping)
            }
            Backend::Postgres => {
                let read_only = async {
                    let mut tx = sqlx::Connection::begin(&mut *connection).await?;
                    let read_only: bool = sqlx::query_scalar(
                        "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'",
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    tx.rollback().await?;
                    Ok::<bool, sqlx::Error>(read_only)
                }
                .await;
                match read_only {
                    Ok(false) => Ok(()),
                    Ok(true) => Err(DbError::ReadOnly),
                    Err(error) => {
                        let _ = connection.close().await;
                        Err(DbError::Ping(error))
                    }
                }
            }
        }
    }

    /// Checks that the database answers, within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), DbError> {
        let ping = async {
            let mut connection = self.pool.acquire().await?;
            connection.ping().await
        };
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(DbError::Ping(error)),
            Err(_) => Err(DbError::PingTimeout(PING_TIMEOUT)),
        }
    }

    /// Applies the embedded migrations not yet applied, in version order, through sqlx's
    /// migrator (which records them in `_sqlx_migrations`, checks checksums of applied ones and,
    /// on PostgreSQL, holds an advisory lock so concurrent instances do not race).
    pub async fn migrate(&self, migrations: &'static [EmbeddedMigration]) -> Result<(), DbError> {
        let migrator = migrator(migrations)?;
        migrator.run(&self.pool).await.map_err(DbError::Migrate)
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A sqlx migrator over the embedded migrations.
fn migrator(migrations: &'static [EmbeddedMigration]) -> Result<Migrator, DbError> {
    let mut versions: Vec<i64> = migrations.iter().map(|m| m.version).collect();
    versions.sort_unstable();
    if let Some(pair) = versions.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(DbError::DuplicateMigration { version: pair[0] });
    }
    let list = migrations
        .iter()
        .map(|m| {
            Migration::new(
                m.version,
                Cow::Borrowed(m.description),
                MigrationType::Simple,
                m.sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Ok(Migrator::with_migrations(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[cfg(feature = "sqlite")]
    async fn sqlite_connections_are_handed_out_without_a_ping() {
        let temp = tempfile::tempdir().expect("temp dir");
        let env = Environment::from_pairs([(ALLFRAME_DATA_DIR, temp.path().to_string_lossy())]);
        let target = DatabaseTarget::from_env(&env, "user-service").expect("default target");
        let db = Database::connect(&target).await.expect("sqlite connects");
        assert!(!db.pool().options().get_test_before_acquire());
        sqlx::query("SELECT 1")
            .execute(db.pool())
            .await
            .expect("a query on a connection handed out unpinged");
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn unset_url_means_a_sqlite_file_in_the_data_dir() {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("nested").join("data");
        let env = Environment::from_pairs([(ALLFRAME_DATA_DIR, data_dir.to_string_lossy())]);
        let target = DatabaseTarget::from_env(&env, "user-service").expect("default target");
        assert_eq!(target.backend(), Backend::Sqlite);
        assert_eq!(
            target.sqlite_file(),
            Some(data_dir.join("user-service.db").as_path())
        );
        assert!(data_dir.is_dir(), "the data directory is created");
        assert!(target.redacted().ends_with("user-service.db?mode=rwc"));
    }

    #[test]
    fn service_names_cannot_escape_the_data_dir() {
        assert_eq!(file_stem("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(file_stem(".."), "service");
        assert_eq!(file_stem("user-service"), "user-service");
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn sqlite_urls_are_sqlite() {
        let target = DatabaseTarget::parse("sqlite::memory:").expect("sqlite");
        assert_eq!(target.backend(), Backend::Sqlite);
        assert!(target.in_memory);
        let target = DatabaseTarget::parse("sqlite:///tmp/x.db?mode=ro").expect("sqlite");
        assert!(target.read_only && !target.in_memory);
    }

    #[test]
    #[cfg(not(feature = "sqlite"))]
    fn sqlite_needs_its_feature() {
        let error = DatabaseTarget::parse("sqlite::memory:").expect_err("feature off");
        assert!(matches!(
            error,
            DbError::FeatureDisabled {
                feature: "sqlite",
                ..
            }
        ));
        let env = Environment::from_pairs([(ALLFRAME_DATA_DIR, "/nonexistent")]);
        assert!(DatabaseTarget::from_env(&env, "svc").is_err());
    }

    #[test]
    fn other_schemes_are_rejected_naming_the_variable_and_the_accepted_schemes() {
        let error = DatabaseTarget::parse("mysql://root:hunter2@db/app").expect_err("mysql");
        assert!(matches!(&error, DbError::UnsupportedScheme { scheme } if scheme == "mysql"));
        let message = error.to_string();
        assert!(message.contains("DATABASE_URL"), "{message}");
        assert!(message.contains("postgres://"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");

        let error = DatabaseTarget::parse("not a url").expect_err("garbage");
        assert!(matches!(error, DbError::InvalidUrl { .. }));
        assert!(error.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn postgres_urls_follow_the_feature() {
        let result = DatabaseTarget::parse("postgresql://app:hunter2@db:5432/app?sslmode=require");
        if cfg!(feature = "postgres") {
            let target = result.expect("postgres");
            assert_eq!(target.backend(), Backend::Postgres);
            assert_eq!(
                target.redacted(),
                "postgresql://app:***@db:5432/app?sslmode=require"
            );
            let shown = format!("{target} {target:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        } else {
            let error = result.expect_err("feature off");
            assert!(matches!(
                error,
                DbError::FeatureDisabled {
                    feature: "postgres",
                    ..
                }
            ));
            assert!(error.to_string().contains("features = [\"postgres\"]"));
        }
    }

    #[test]
    fn password_query_parameters_are_redacted() {
        let parsed = url::Url::parse("postgres://db/app?user=a&password=hunter2").expect("url");
        let shown = redact(&parsed);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user=a"), "{shown}");
    }

    #[test]
    fn duplicate_migration_versions_are_rejected() {
        static TWICE: [EmbeddedMigration; 2] = [
            EmbeddedMigration {
                version: 1,
                description: "a",
                sql: "SELECT 1",
            },
            EmbeddedMigration {
                version: 1,
                description: "b",
                sql: "SELECT 2",
            },
        ];
        assert!(matches!(
            migrator(&TWICE),
            Err(DbError::DuplicateMigration { version: 1 })
        ));
    }
}
