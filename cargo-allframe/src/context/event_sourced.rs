//! An `event-sourced` service's context: its aggregates, each with the events it records, and
//! its projections.

use allframe_codegen::plan::ServicePlan;
use serde::Serialize;

use crate::names::{EntityNames, EventNames};

/// What an `event-sourced` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct EventSourcedContext {
    /// One per aggregate, in the file's order (`each = "aggregate"` renders one file each).
    pub aggregates: Vec<AggregateTemplate>,
    /// One per name of `[services.cqrs] projections` (`each = "projection"`).
    pub projections: Vec<ProjectionTemplate>,
    /// Snapshot an aggregate every this many events.
    pub snapshot_frequency: u32,
}

/// One aggregate: its names, its resource path and its events.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateTemplate {
    /// The aggregate's names: `pascal` is its type (and its streams' type), `module` its file.
    pub entity: EntityNames,
    /// Its resource path, `/accounts`.
    pub path: String,
    /// The events it records, in the file's order, as the shared crate names them. The
    /// scaffold's `Create` command records the first; `Rename` the second, when there is one.
    pub events: Vec<EventNames>,
    /// Its command enum, `AccountCommand`.
    pub command: String,
    /// Its event enum, `AccountEvent`.
    pub event_enum: String,
    /// Why it refuses a command, `AccountRefused`.
    pub refusal: String,
}

/// One projection.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionTemplate {
    /// Its name as written and its type, `AccountBalances`.
    pub pascal: String,
    /// snake_case: the base name of its table and the accessor the macro derives,
    /// `account_balances`.
    pub snake: String,
    /// Its module (a raw identifier for keywords).
    pub module: String,
    /// The read endpoint, `/account-balances`.
    pub path: String,
}

impl EventSourcedContext {
    /// The context of the `event-sourced` service `plan` is about; `None` for another type.
    pub fn new(plan: &ServicePlan<'_>) -> Option<Self> {
        let es = plan.event_sourced.as_ref()?;
        let aggregates = es
            .aggregates
            .iter()
            .map(|aggregate| {
                let entity = EntityNames::new(aggregate.entity);
                AggregateTemplate {
                    path: aggregate.path.clone(),
                    events: aggregate
                        .events
                        .iter()
                        .map(|e| EventNames::shared(e))
                        .collect(),
                    command: format!("{}Command", entity.pascal),
                    event_enum: format!("{}Event", entity.pascal),
                    refusal: format!("{}Refused", entity.pascal),
                    entity,
                }
            })
            .collect();
        let projections = es
            .projections
            .iter()
            .map(|projection| {
                let names = EntityNames::new(projection.name);
                ProjectionTemplate {
                    pascal: projection.name.to_owned(),
                    path: format!("/{}", names.snake.replace('_', "-")),
                    snake: projection.method.clone(),
                    module: names.module,
                }
            })
            .collect();
        Some(Self {
            aggregates,
            projections,
            snapshot_frequency: es.snapshot_frequency,
        })
    }
}
