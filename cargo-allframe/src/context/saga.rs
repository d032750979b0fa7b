//! A `saga-orchestrator`'s context: its saga, one entry per step with its compensation.

use allframe_codegen::plan::{EXTERNAL_PRODUCER, ServicePlan};
use serde::Serialize;

/// What a `saga-orchestrator` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct SagaContext {
    /// The saga of `[services.saga]`.
    pub saga: SagaTemplate,
}

/// `[services.saga]` as the templates use it.
#[derive(Debug, Clone, Serialize)]
pub struct SagaTemplate {
    /// The saga's name, `CreateOrderSaga`: the trait the scaffold implements.
    pub name: String,
    /// Its steps in order.
    pub steps: Vec<SagaStepTemplate>,
    /// Deadline of a whole saga, in seconds.
    pub timeout_seconds: u64,
    /// Whether a step awaits a reply on the bus.
    pub awaits_replies: bool,
}

/// One step and its compensation.
#[derive(Debug, Clone, Serialize)]
pub struct SagaStepTemplate {
    /// `ReservePayment`.
    pub step: String,
    /// `reserve_payment`.
    pub step_method: String,
    /// `RefundPayment`.
    pub compensation: String,
    /// `refund_payment`.
    pub compensation_method: String,
    /// The events answering it, when its participant replies on the bus.
    pub reply: Option<ReplyTemplate>,
}

/// The events answering a step (`[services.saga.replies]`).
#[derive(Debug, Clone, Serialize)]
pub struct ReplyTemplate {
    /// The success event, `ShipmentCreated`.
    pub success: String,
    /// The decline event, when declared.
    pub failure: Option<String>,
    /// The service publishing the success event (the first one of the file; `external` when
    /// none does): the topic a test answers on.
    pub producer: String,
}

impl SagaContext {
    /// The context of the `saga-orchestrator` `plan` is about; `None` without a saga (which
    /// validation refuses).
    pub fn new(plan: &ServicePlan<'_>) -> Option<Self> {
        let saga = plan.saga.as_ref()?;
        Some(Self {
            saga: SagaTemplate {
                name: saga.name.to_owned(),
                steps: saga
                    .steps
                    .iter()
                    .map(|step| SagaStepTemplate {
                        step: step.step.to_owned(),
                        step_method: step.step_method.clone(),
                        compensation: step.compensation.to_owned(),
                        compensation_method: step.compensation_method.clone(),
                        reply: step.reply.map(|(success, failure)| ReplyTemplate {
                            success: success.to_owned(),
                            failure: failure.map(str::to_owned),
                            producer: saga
                                .replies
                                .iter()
                                .find(|reply| reply.event == success)
                                .and_then(|reply| reply.producers.first())
                                .map_or(EXTERNAL_PRODUCER, |producer| *producer)
                                .to_owned(),
                        }),
                    })
                    .collect(),
                timeout_seconds: saga.timeout_seconds,
                awaits_replies: saga.steps.iter().any(|step| step.reply.is_some()),
            },
        })
    }
}
