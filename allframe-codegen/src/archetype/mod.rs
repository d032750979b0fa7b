//! One expansion module per generated service type; [`expand`] picks the module of the
//! planned service's type. Adding an archetype is adding its module and its arm here (and
//! accepting its type in [`crate::plan`]).

mod cache;
mod consumer;
mod event_sourced;
mod gateway;
mod producer;
mod saga;
mod stateless;

use allframe_config::Archetype;
use proc_macro2::TokenStream;

use crate::load::Loaded;
use crate::plan::ServicePlan;
use crate::{Env, ServiceArgs};

/// Expands `item` as the service `plan` describes.
pub(crate) fn expand(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
) -> Result<TokenStream, syn::Error> {
    match &plan.service.archetype {
        Archetype::Stateless => stateless::expand(args, item, loaded, plan, env),
        Archetype::Producer(_) => producer::expand(args, item, loaded, plan, env),
        Archetype::Consumer(_) => consumer::expand(args, item, loaded, plan, env),
        Archetype::Gateway(_) => gateway::expand(args, item, loaded, plan, env),
        Archetype::SagaOrchestrator { .. } => saga::expand(args, item, loaded, plan, env),
        Archetype::EventSourced(_) => event_sourced::expand(args, item, loaded, plan, env),
        Archetype::Cache(_) => cache::expand(args, item, loaded, plan, env),
        // `plan` refuses every type without a module above.
        other => Err(syn::Error::new(
            args.name_span,
            format!("`{}` services have no expansion", other.kind()),
        )),
    }
}
