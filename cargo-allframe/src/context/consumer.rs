//! A `consumer`'s context: the events it handles, one entry per event, and the channels its
//! handlers send through.

use allframe_codegen::plan::{ChannelApi, ConsumedPlan, EXTERNAL_PRODUCER, ServicePlan};
use allframe_config::model::Channel;
use serde::Serialize;

use crate::names::EventNames;

/// What a `consumer` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerContext {
    /// One per event of `[services.consumer] events`, in the file's order.
    pub consumed: Vec<ConsumedContext>,
    /// One per channel of `[services.consumer] channels`, in the file's order.
    pub channels: Vec<ChannelContext>,
}

/// One notification channel a `consumer`'s handlers send through.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelContext {
    /// The channel's name: `email`.
    pub name: &'static str,
    /// Its trait in `allframe::channel`: `SendEmail`.
    pub send_trait: &'static str,
    /// The trait's method: `send_email`.
    pub method: &'static str,
    /// Its message type in `allframe::channel`: `Email`.
    pub message: &'static str,
}

impl ChannelContext {
    fn new(channel: Channel) -> Self {
        let api = ChannelApi::of(channel);
        Self {
            name: channel.as_str(),
            send_trait: api.send_trait,
            method: api.method,
            message: api.message,
        }
    }
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

impl ConsumedContext {
    /// The context of one consumed event (a consumer's, or a cache's invalidation).
    pub fn new(consumed: &ConsumedPlan<'_>) -> Self {
        Self {
            event: EventNames::shared(consumed.event),
            method: consumed.method.clone(),
            producer: consumed
                .producers
                .first()
                .copied()
                .unwrap_or(EXTERNAL_PRODUCER)
                .to_owned(),
        }
    }
}

impl ConsumerContext {
    /// The context of the `consumer` `plan` is about.
    pub fn new(plan: &ServicePlan<'_>) -> Self {
        let consumed = plan
            .consumer
            .iter()
            .flat_map(|consumer| &consumer.events)
            .map(ConsumedContext::new)
            .collect();
        let channels = plan
            .consumer
            .iter()
            .flat_map(|consumer| consumer.channels.iter().copied().map(ChannelContext::new))
            .collect();
        Self { consumed, channels }
    }
}
