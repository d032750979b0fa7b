//! A `cache` service's context: the entity it caches, its strategy, and the events that
//! invalidate it.

use allframe_codegen::plan::ServicePlan;
use serde::Serialize;

use super::ConsumedContext;
use crate::events::{Shape, SharedEvent};
use crate::names::EntityNames;

/// What a `cache` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct CacheContext {
    /// The cached entity: `pascal` is the value type, `plural_snake` the example source's
    /// table, `plural_kebab` the resource path.
    pub entity: EntityNames,
    /// Its resource path, `/products`.
    pub path: String,
    /// `cache-aside`, `write-through` or `write-behind`.
    pub strategy: &'static str,
    /// How long a value is served, in seconds.
    pub ttl_seconds: u64,
    /// One per event of `invalidation`, in the file's order.
    pub invalidations: Vec<InvalidationContext>,
}

/// One event that makes cached keys stale.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidationContext {
    /// `event`, `method` (of the `Caches` obligation, naming its stale keys:
    /// `on_product_updated`) and `producer`, as a consumer's events have them.
    #[serde(flatten)]
    pub consumed: ConsumedContext,
    /// The fields its shared type starts with (see [`CacheContext::shape_events`]).
    pub shape: Shape,
}

impl CacheContext {
    /// The context of the `cache` service `plan` is about; `None` for another type.
    pub fn new(plan: &ServicePlan<'_>) -> Option<Self> {
        let cache = plan.cache.as_ref()?;
        let invalidations = cache
            .invalidations
            .iter()
            .map(|consumed| InvalidationContext {
                consumed: ConsumedContext::new(consumed),
                shape: Shape::Plain,
            })
            .collect();
        Some(Self {
            entity: EntityNames::new(cache.entity),
            path: cache.path.clone(),
            strategy: cache.strategy.as_str(),
            ttl_seconds: cache.ttl_seconds,
            invalidations,
        })
    }

    /// Gives each invalidation event the shape its shared type has (known once every
    /// service's context is), so the scaffold's test can build one.
    pub fn shape_events(&mut self, shared: &[SharedEvent]) {
        for invalidation in &mut self.invalidations {
            if let Some(event) = shared
                .iter()
                .find(|event| event.names.name == invalidation.consumed.event.name)
            {
                invalidation.shape = event.shape;
            }
        }
    }
}
