//! A `producer`'s context: what it ingests, one entry per entity.

use allframe_codegen::plan::ServicePlan;
use serde::Serialize;

use crate::names::{EntityNames, EventNames};

/// What a `producer` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct ProducerContext {
    /// One per entity, in the file's order.
    pub ingestions: Vec<IngestionContext>,
}

/// One entity a `producer` ingests: its input type, endpoint and event.
#[derive(Debug, Clone, Serialize)]
pub struct IngestionContext {
    /// The entity: the input type's names.
    pub entity: EntityNames,
    /// The event published for each input.
    pub event: EventNames,
    /// The endpoint, `/position-reports` (the batch endpoint adds `/batch`).
    pub path: String,
}

impl ProducerContext {
    /// The context of the `producer` `plan` is about.
    pub fn new(plan: &ServicePlan<'_>) -> Self {
        let ingestions = plan
            .ingestions
            .iter()
            .map(|ingestion| IngestionContext {
                entity: EntityNames::new(&ingestion.entity),
                event: EventNames::shared(ingestion.event),
                path: ingestion.path.clone(),
            })
            .collect();
        Self { ingestions }
    }
}
