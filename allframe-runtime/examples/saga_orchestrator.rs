//! A saga orchestrator process for the crash tests (`tests/saga_support`): three steps and
//! their compensations, each applied at a participant over HTTP (`PARTICIPANT_URL`) with the
//! step's key. `SAGA_CRASH=<fail point>@<n>` sends this process SIGKILL the n-th time it reaches
//! the fail point; `SAGA_CRASH=<fail point>@<n>:stop` sends it SIGSTOP instead (a paused
//! instance, resumed by the test with SIGCONT).
//!
//! Run by the tests only: `cargo build -p allframe-runtime --example saga_orchestrator
//! --features failpoints`.

use std::process::ExitCode;

use allframe_runtime::__private::{Launcher, ServiceSettings};
use allframe_runtime::resilience::RetryPolicy;
use allframe_runtime::saga::{Orchestrate, SagaSettings, SagaStep, StepNames};
use allframe_runtime::{BoxError, Ctx, LogFormat, RestApi, Router, Service};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

#[path = "support/crash.rs"]
mod crash;

static SETTINGS: ServiceSettings = ServiceSettings {
    architecture: "crash",
    name: "orders",
    archetype: "saga-orchestrator",
    rest_port: 8080,
    grpc_port: None,
    logging: LogFormat::Plain,
    declared_database: "postgres",
    shutdown_timeout_secs: 2,
    deferred: &[],
};

static STEPS: [StepNames; 3] = [
    StepNames {
        step: "ValidateInventory",
        compensation: "ReleaseInventory",
        reply: None,
    },
    StepNames {
        step: "ReservePayment",
        compensation: "RefundPayment",
        reply: None,
    },
    StepNames {
        step: "CreateShipment",
        compensation: "CancelShipment",
        reply: None,
    },
];

/// The saga's input: the step that refuses (to make the saga compensate).
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    order_id: String,
    fail_at: Option<usize>,
}

struct Orders {
    participant: String,
    client: reqwest::Client,
}

impl Service for Orders {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self {
            participant: std::env::var("PARTICIPANT_URL")?,
            client: reqwest::Client::new(),
        })
    }
}

impl RestApi for Orders {
    fn routes() -> Router<Self> {
        allframe_runtime::saga::routes::<Self>()
    }
}

impl Orders {
    /// Applies `step` at the participant, under its key.
    async fn apply(&self, step: &SagaStep<Order>) -> Result<(), BoxError> {
        self.client
            .post(format!("{}/apply", self.participant))
            .json(&serde_json::json!({ "key": step.key(), "name": step.name() }))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

impl Orchestrate for Orders {
    type Input = Order;

    fn step<'a>(
        &'a self,
        index: usize,
        step: &'a mut SagaStep<Order>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            if step.input().fail_at == Some(index) {
                return Err(format!("{} refused", step.name()).into());
            }
            self.apply(step).await
        })
    }

    fn compensate<'a>(
        &'a self,
        _index: usize,
        step: &'a mut SagaStep<Order>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move { self.apply(step).await })
    }
}

fn main() -> ExitCode {
    if let Err(error) = crash::arm("SAGA_CRASH") {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    Launcher::<Orders>::new(&SETTINGS)
        .saga(SagaSettings {
            name: "CreateOrderSaga",
            steps: &STEPS,
            timeout_seconds: 60,
            retry: RetryPolicy {
                max_attempts: 3,
                initial_interval_ms: 20,
                max_interval_ms: 100,
                multiplier: 2.0,
                idempotent_only: false,
            },
            replies: &[],
        })
        .run()
}
