//! A `saga-orchestrator`'s context: its saga, one entry per step with its compensation.

use allframe_codegen::plan::{EXTERNAL_PRODUCER, ServicePlan};
use serde::Serialize;

use super::ProviderContext;

/// What a `saga-orchestrator` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct SagaContext {
    /// The saga of `[services.saga]`.
    pub saga: SagaTemplate,
    /// The participants its steps call over HTTP (`[services.integrations] providers`), in
    /// order: the same shape as a gateway's providers, so both render one client module.
    pub providers: Vec<ProviderContext>,
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
    /// The participants the scaffold's step calls over HTTP. The providers are dealt in turn
    /// to the steps after the first that await no reply (to the first step when there are
    /// none), so each provider is called by one step.
    pub calls: Vec<ProviderContext>,
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
        let providers = ProviderContext::all(plan);
        let mut callers: Vec<usize> = (1..saga.steps.len())
            .filter(|&index| saga.steps[index].reply.is_none())
            .collect();
        if callers.is_empty() {
            callers.push(0);
        }
        let calls_of = |index: usize| -> Vec<ProviderContext> {
            providers
                .iter()
                .enumerate()
                .filter(|(turn, _)| callers[turn % callers.len()] == index)
                .map(|(_, provider)| provider.clone())
                .collect()
        };
        let steps = saga
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| SagaStepTemplate {
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
                calls: calls_of(index),
            })
            .collect();
        Some(Self {
            saga: SagaTemplate {
                name: saga.name.to_owned(),
                steps,
                timeout_seconds: saga.timeout_seconds,
                awaits_replies: saga.steps.iter().any(|step| step.reply.is_some()),
            },
            providers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allframe_config::SourceFile;

    /// Which providers each step of `steps` calls in the scaffold, with `replies` awaiting.
    fn dealt(steps: &[&str], replies: &str, providers: &[&str]) -> Vec<Vec<String>> {
        let quoted = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            names.join(", ")
        };
        let undo: Vec<String> = steps.iter().map(|s| format!("Undo{s}")).collect();
        let undo: Vec<&str> = undo.iter().map(String::as_str).collect();
        let text = format!(
            "[architecture]\nname = \"shop\"\n[[services]]\nname = \"orders\"\ntype = \"saga-orchestrator\"\n[services.saga]\nname = \"Checkout\"\nsteps = [{}]\ncompensation = [{}]\n{replies}[services.integrations]\nproviders = [{}]\n",
            quoted(steps),
            quoted(&undo),
            quoted(providers)
        );
        let arch = allframe_config::check(&SourceFile::new("a.toml", text)).expect("valid");
        let plan = allframe_codegen::plan::plan(&arch, &arch.services()[0]).expect("planned");
        let context = SagaContext::new(&plan).expect("a saga");
        context
            .saga
            .steps
            .iter()
            .map(|step| step.calls.iter().map(|c| c.name.clone()).collect())
            .collect()
    }

    #[test]
    fn every_provider_is_called_by_one_step_after_the_first_that_awaits_no_reply() {
        assert_eq!(
            dealt(
                &["Reserve", "Charge", "Ship"],
                "",
                &["pay", "courier", "fraud"]
            ),
            [vec![], vec!["pay", "fraud"], vec!["courier"]]
        );
        let replies = "[services.saga.replies]\nShip = { success = \"Shipped\" }\n";
        assert_eq!(
            dealt(&["Reserve", "Charge", "Ship"], replies, &["pay", "courier"]),
            [vec![], vec!["pay", "courier"], vec![]]
        );
        assert_eq!(
            dealt(&["Reserve"], "", &["pay"]),
            [vec!["pay"]],
            "a saga of one step calls from its first"
        );
    }
}
