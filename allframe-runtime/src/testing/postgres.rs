//! PostgreSQL scratch schemas (features `testing` and `postgres`): each test works in a schema
//! of its own on a shared server, reached through the connection's `search_path`, and drops it
//! at the end, so tests run in parallel against one database without seeing each other's
//! tables.
//!
//! ```text
//! let schema = allframe::testing::PgSchema::create("orders").await;
//! let service = TestService::start_with::<Orders>(&[("DATABASE_URL", schema.url())]).await;
//! …
//! schema.remove().await;
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use crate::database::{Backend, Database, DatabaseTarget};

/// The variable naming the server and database tests use (no query string); default
/// [`DEFAULT_TEST_POSTGRES_URL`].
pub const ALLFRAME_TEST_POSTGRES_URL: &str = "ALLFRAME_TEST_POSTGRES_URL";

/// The server tests use when [`ALLFRAME_TEST_POSTGRES_URL`] is unset: trust auth on loopback,
/// database `test`.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of one test's own, and the database URL that uses it.
#[derive(Debug)]
pub struct PgSchema {
    admin: Database,
    name: String,
    url: String,
}

impl PgSchema {
    /// The server and database tests use ([`ALLFRAME_TEST_POSTGRES_URL`]).
    pub fn server_url() -> String {
        std::env::var(ALLFRAME_TEST_POSTGRES_URL)
            .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_owned())
    }

    /// Creates a schema named after `tag` (lowercase letters, digits and `_`), the process and
    /// the time. Panics, naming the server, when PostgreSQL does not answer: a test that needs
    /// it must fail, never skip.
    pub async fn create(tag: &str) -> Self {
        assert!(
            tag.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "a schema tag is lowercase letters, digits and `_`: {tag:?}"
        );
        let base = Self::server_url();
        let target = DatabaseTarget::parse(&base)
            .unwrap_or_else(|e| panic!("{ALLFRAME_TEST_POSTGRES_URL}: {e}"));
        let admin = Database::connect(&target)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must run at {} for this test: {e}", target));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("allframe_{tag}_{}_{nanos}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(admin.pool())
            .await
            .unwrap_or_else(|e| panic!("creating schema {name}: {e}"));
        let url = format!("{base}?options=-c%20search_path%3D{name}");
        Self { admin, name, url }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A database URL whose connections work in this schema (for `DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool on the server's own schemas (for catalog queries about this one).
    pub fn admin(&self) -> &Database {
        &self.admin
    }

    /// A new pool on this schema.
    pub async fn connect(&self) -> Database {
        let target = DatabaseTarget::parse(&self.url).unwrap_or_else(|e| panic!("{e}"));
        let db = Database::connect(&target)
            .await
            .unwrap_or_else(|e| panic!("connecting to schema {}: {e}", self.name));
        assert_eq!(db.backend(), Backend::Postgres);
        db
    }

    /// Drops the schema and everything in it.
    pub async fn remove(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(self.admin.pool())
        .await
        .unwrap_or_else(|e| panic!("dropping schema {}: {e}", self.name));
        self.admin.close().await;
    }
}
