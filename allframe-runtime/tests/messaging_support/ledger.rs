//! The `ledger-service` of architecture `bank` that the launcher tests start: an `accounts`
//! table, and `POST /deposits/{account}/{n}`, whose unit of work adds to the account and
//! publishes `Deposited { account, n }` with the request's event context.

use allframe_runtime::__private::{EmbeddedMigration, ServiceSettings};
use allframe_runtime::axum::extract::Path as UrlPath;
use allframe_runtime::axum::routing::post;
use allframe_runtime::error::ApiError;
use allframe_runtime::messaging::EventContext;
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service, sqlx};

use super::Deposited;
use super::launch_env::stateless_settings;

pub static SETTINGS: ServiceSettings = stateless_settings("bank", "ledger-service");

pub static MIGRATIONS: [EmbeddedMigration; 1] = [EmbeddedMigration {
    version: 1,
    description: "create accounts",
    sql: "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL);",
}];

pub struct Ledger;

impl Service for Ledger {
    async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
        Ok(Ledger)
    }
}

impl RestApi for Ledger {
    fn routes() -> Router<Self> {
        Router::new().route("/deposits/{account}/{n}", post(deposit))
    }
}

async fn deposit(
    cx: Ctx,
    events: EventContext,
    UrlPath((account, n)): UrlPath<(String, u64)>,
) -> Result<&'static str, ApiError> {
    let mut uow = cx.begin_with(events).await?;
    sqlx::query(
        "INSERT INTO accounts (id, balance) VALUES ($1, 1)
         ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + 1",
    )
    .bind(&account)
    .execute(uow.conn())
    .await?;
    uow.publish(Deposited { account, n })?;
    uow.commit().await?;
    Ok("ok")
}
