//! A `consumer`'s context: the events it handles, one entry per event.

use allframe_codegen::plan::{EXTERNAL_PRODUCER, ServicePlan};
use serde::Serialize;

use crate::names::EventNames;

/// What a `consumer` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerContext {
    /// One per event of `[services.consumer] events`, in the file's order.
    pub consumed: Vec<ConsumedContext>,
}

/// One event a `consumer` handles.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumedContext {
    /// The event's names in the shared event-types crate.
    pub event: EventNames,
    /// The handler method of the `Consumes` obligation: `on_user_created`.
    pub method: String,
    /// The first service of the file publishing it, or `external` (see
    /// [`allframe_codegen::plan::EXTERNAL_PRODUCER`]).
    pub producer: String,
}

impl ConsumerContext {
    /// The context of the `consumer` `plan` is about.
    pub fn new(plan: &ServicePlan<'_>) -> Self {
        let consumed = plan
            .consumer
            .iter()
            .flat_map(|consumer| &consumer.events)
            .map(|consumed| ConsumedContext {
                event: EventNames::shared(consumed.event),
                method: consumed.method.clone(),
                producer: consumed
                    .producers
                    .first()
                    .copied()
                    .unwrap_or(EXTERNAL_PRODUCER)
                    .to_owned(),
            })
            .collect();
        Self { consumed }
    }
}
