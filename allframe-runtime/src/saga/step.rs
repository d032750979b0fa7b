//! What a step or compensation is given: the saga's input, its stable key, the outputs of the
//! steps before it, and a transaction that commits with the saga's progress.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::BoxError;
use crate::context::Ctx;
use crate::messaging::{EventContext, Messaging, UnitOfWork};

/// One invocation of a step or compensation.
///
/// ```ignore
/// async fn reserve_payment(&self, step: &mut SagaStep<Order>) -> Result<(), BoxError> {
///     let payments = OrderService::payments(step.ctx())?;          // a gateway-style client
///     let charge: Charge = payments.charge(step.key(), &step.input().payment).await?;
///     step.record(&charge)?;                                       // kept in the saga log
///     Ok(())
/// }
/// ```
pub struct SagaStep<I> {
    saga_id: Arc<str>,
    name: &'static str,
    key: String,
    attempt: u32,
    input: Arc<I>,
    outputs: Arc<BTreeMap<String, String>>,
    ctx: Ctx,
    publisher: Option<Messaging>,
    // In a mutex only to make the step `Sync` (a transaction is not): a step may hold
    // `&SagaStep` across an await. Reached through `&mut self` only, never locked.
    uow: Mutex<Option<UnitOfWork>>,
    output: Option<String>,
}

impl<I> std::fmt::Debug for SagaStep<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaStep")
            .field("saga_id", &self.saga_id)
            .field("name", &self.name)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// What the driver gives a new [`SagaStep`].
pub(crate) struct StepSetup<I> {
    pub(crate) saga_id: Arc<str>,
    pub(crate) name: &'static str,
    pub(crate) attempt: u32,
    pub(crate) input: Arc<I>,
    pub(crate) outputs: Arc<BTreeMap<String, String>>,
    pub(crate) ctx: Ctx,
    pub(crate) publisher: Option<Messaging>,
}

impl<I> SagaStep<I> {
    pub(crate) fn new(setup: StepSetup<I>) -> Self {
        Self {
            key: format!("{}:{}", setup.saga_id, setup.name),
            saga_id: setup.saga_id,
            name: setup.name,
            attempt: setup.attempt,
            input: setup.input,
            outputs: setup.outputs,
            ctx: setup.ctx,
            publisher: setup.publisher,
            uow: Mutex::new(None),
            output: None,
        }
    }

    /// The saga's id.
    pub fn saga_id(&self) -> &str {
        &self.saga_id
    }

    /// The step's (or compensation's) name as the file spells it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The idempotency key of this invocation: `<saga id>:<name>`, the same on every attempt
    /// and after a crash. Send it to the participant, which applies a key once.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Which attempt this is (1 first; attempts cut short by a crash count).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The saga's input.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// The service's context (its database, its providers' clients, …).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// What the completed step `step` recorded, decoded; `None` when it recorded nothing (or
    /// has not completed).
    pub fn output<T: DeserializeOwned>(&self, step: &str) -> Result<Option<T>, BoxError> {
        self.outputs
            .get(step)
            .map(|text| serde_json::from_str(text))
            .transpose()
            .map_err(|error| format!("the output of step `{step}` does not decode: {error}").into())
    }

    /// Records `output` in the saga log; later steps read it with [`SagaStep::output`]. It is
    /// stored with the step's completion.
    pub fn record<T: Serialize>(&mut self, output: &T) -> Result<(), BoxError> {
        self.output = Some(serde_json::to_string(output)?);
        Ok(())
    }

    /// The step's transaction in the service's database, opened on first use: what the step
    /// writes through it (and the events it publishes) commits together with the saga's
    /// progress, or not at all — a local step runs exactly once.
    pub async fn uow(&mut self) -> Result<&mut UnitOfWork, BoxError> {
        let slot = self.uow.get_mut().unwrap_or_else(PoisonError::into_inner);
        let uow = match slot.take() {
            Some(uow) => uow,
            None => {
                let context = EventContext {
                    correlation_id: Some(self.saga_id.to_string()),
                    causation_id: Some(self.key.clone()),
                    ..EventContext::default()
                };
                UnitOfWork::begin(
                    self.ctx.db(),
                    self.publisher.clone(),
                    self.ctx.settings().name,
                    context,
                )
                .await?
            }
        };
        Ok(slot.insert(uow))
    }

    /// The transaction the step opened, and what it recorded.
    pub(crate) fn finish(self) -> (Option<UnitOfWork>, Option<String>) {
        let uow = self
            .uow
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        (uow, self.output)
    }
}

// A step future holding `&SagaStep` across an await must be `Send`: the step must be `Sync`.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<SagaStep<serde_json::Value>>();
};
