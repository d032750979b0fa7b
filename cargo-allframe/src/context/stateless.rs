//! A `stateless` service's context: the entity of its example code and the event its create
//! command publishes.

use allframe_codegen::plan::ServicePlan;
use serde::Serialize;

use crate::names::{DEFAULT_ENTITY, EntityNames, EventNames};

/// What a `stateless` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct StatelessContext {
    /// The entity of the example code: the first of `[services.domain] entities`, else
    /// `Item`.
    pub entity: EntityNames,
    /// With `[services.messaging]`, the event the create command publishes: the first declared
    /// event, else `<Entity>Created`.
    pub event: Option<EventNames>,
}

impl StatelessContext {
    /// The context of the `stateless` service `plan` is about.
    pub fn new(plan: &ServicePlan<'_>) -> Self {
        let service = plan.service;
        let entity = service
            .entities()
            .first()
            .map_or(DEFAULT_ENTITY, String::as_str);
        let entity = EntityNames::new(entity);
        let event = service.common.messaging.as_ref().map(|_| {
            EventNames::shared(
                &service
                    .events()
                    .first()
                    .cloned()
                    .unwrap_or_else(|| format!("{}Created", entity.pascal)),
            )
        });
        Self { entity, event }
    }
}
