//! The database layer on SQLite (no external service): DATABASE_URL handling, WAL, embedded
//! migrations through sqlx's migrator on the `Any` pool, and `$1` placeholders through `Any`.
#![cfg(feature = "sqlite")]

use allframe_runtime::__private::{EmbeddedMigration, Environment};
use allframe_runtime::database::{Backend, Database, DatabaseTarget, DbError};
use allframe_runtime::sqlx;

static MIGRATIONS: [EmbeddedMigration; 2] = [
    EmbeddedMigration {
        version: 20240101000000,
        description: "create users",
        sql: "CREATE TABLE users (\
                id BIGINT PRIMARY KEY,\
                email TEXT NOT NULL UNIQUE,\
                karma BIGINT NOT NULL DEFAULT 0\
              );",
    },
    EmbeddedMigration {
        version: 20240102000000,
        description: "add display name",
        sql: "ALTER TABLE users ADD COLUMN display_name TEXT;\
              CREATE INDEX users_karma ON users (karma);",
    },
];

async fn open(dir: &std::path::Path) -> (DatabaseTarget, Database) {
    let env = Environment::from_pairs([("ALLFRAME_DATA_DIR", dir.to_string_lossy())]);
    let target = DatabaseTarget::from_env(&env, "user-service").expect("default target");
    let db = Database::connect(&target).await.expect("sqlite connects");
    (target, db)
}

#[tokio::test]
async fn unset_database_url_creates_a_wal_sqlite_file_in_the_data_dir() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let (target, db) = open(&dir).await;
    let file = dir.join("user-service.db");
    assert_eq!(target.sqlite_file(), Some(file.as_path()));
    assert!(file.is_file(), "the SQLite file is created on first start");
    assert_eq!(db.backend(), Backend::Sqlite);
    db.ping().await.expect("ping");

    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(db.pool())
        .await
        .expect("journal mode");
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    db.close().await;
}

#[tokio::test]
async fn bad_schemes_are_typed_errors() {
    let env = Environment::from_pairs([("DATABASE_URL", "redis://:hunter2@127.0.0.1:6379")]);
    let error = DatabaseTarget::from_env(&env, "svc").expect_err("redis is no database here");
    assert!(matches!(&error, DbError::UnsupportedScheme { scheme } if scheme == "redis"));
    let message = error.to_string();
    assert!(
        message.contains("DATABASE_URL") && message.contains("sqlite:"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn migrations_apply_once_and_dollar_placeholders_work_through_any() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (_, db) = open(temp.path()).await;
    db.migrate(&MIGRATIONS).await.expect("migrations apply");
    // Applying again is a no-op, not a failure (the migrator records what it applied).
    db.migrate(&MIGRATIONS)
        .await
        .expect("re-applying is idempotent");

    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(db.pool())
            .await
            .expect("migration table");
    assert_eq!(applied, vec![20240101000000, 20240102000000]);

    // `$1`-style placeholders, the PostgreSQL spelling, on SQLite through `Any`.
    sqlx::query("INSERT INTO users (id, email, karma, display_name) VALUES ($1, $2, $3, $4)")
        .bind(7_i64)
        .bind("ada@example.com")
        .bind(42_i64)
        .bind("Ada")
        .execute(db.pool())
        .await
        .expect("insert with $n placeholders");
    let (email, karma, name): (String, i64, Option<String>) =
        sqlx::query_as("SELECT email, karma, display_name FROM users WHERE id = $1 AND karma > $2")
            .bind(7_i64)
            .bind(41_i64)
            .fetch_one(db.pool())
            .await
            .expect("select with $n placeholders");
    assert_eq!(
        (email.as_str(), karma, name.as_deref()),
        ("ada@example.com", 42, Some("Ada"))
    );

    // A placeholder reused in one statement binds once, as on PostgreSQL.
    let same: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1 OR karma = $1")
        .bind(7_i64)
        .fetch_one(db.pool())
        .await
        .expect("reused placeholder");
    assert_eq!(same, 1);
    db.close().await;
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused() {
    static CHANGED: [EmbeddedMigration; 1] = [EmbeddedMigration {
        version: 20240101000000,
        description: "create users",
        sql: "CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT);",
    }];
    let temp = tempfile::tempdir().expect("temp dir");
    let (_, db) = open(temp.path()).await;
    db.migrate(&MIGRATIONS[..1])
        .await
        .expect("first version applies");
    let error = db.migrate(&CHANGED).await.expect_err("checksum differs");
    assert!(matches!(error, DbError::Migrate(_)), "{error:?}");
    assert!(error.to_string().contains("20240101000000"), "{error}");
    db.close().await;
}

#[tokio::test]
async fn a_failing_migration_is_a_typed_error_and_leaves_no_record() {
    static BROKEN: [EmbeddedMigration; 1] = [EmbeddedMigration {
        version: 1,
        description: "broken",
        sql: "CREATE TABLE t (id BIGINT); INSERT INTO no_such_table VALUES (1);",
    }];
    let temp = tempfile::tempdir().expect("temp dir");
    let (_, db) = open(temp.path()).await;
    let error = db.migrate(&BROKEN).await.expect_err("broken SQL");
    assert!(matches!(error, DbError::Migrate(_)), "{error:?}");
    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = $1")
        .bind("t")
        .fetch_one(db.pool())
        .await
        .expect("catalog");
    assert_eq!(
        tables, 0,
        "the migration ran in a transaction and was rolled back"
    );
    db.close().await;
}

#[tokio::test]
async fn in_memory_sqlite_is_one_database_for_the_whole_pool() {
    let target = DatabaseTarget::parse("sqlite::memory:").expect("target");
    let db = Database::connect(&target).await.expect("connect");
    db.migrate(&MIGRATIONS).await.expect("migrations apply");
    let inserts = (0..8_i64).map(|id| {
        let db = db.clone();
        async move {
            sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
                .bind(id)
                .bind(format!("user{id}@example.com"))
                .execute(db.pool())
                .await
        }
    });
    for result in futures_util::future::join_all(inserts).await {
        result.expect("every insert sees the migrated table");
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(count, 8);
    db.close().await;
}
