//! The `producer` archetype: REST ingestion for each entity of `[services.domain]`, each input
//! validated into the entity's event and published per `[services.messaging]`.
//!
//! Obligations:
//! - `Produces`, a trait declared beside the user's struct with one associated type per
//!   entity: the input type of `POST /<entities>`. A missing one is the compiler's own E0046
//!   naming it at the user's `impl Produces`; no impl at all is the trait's
//!   `on_unimplemented` at the struct.
//! - each input implements `allframe::producer::Ingest` (the runtime's `on_unimplemented`);
//! - the input's event is the one the file names: a constant check fails the build when
//!   `Event::TYPE` differs from `events[i]`, so renaming an event in the file or in code alone
//!   does not compile.
//!
//! The crate's `RestApi` is derived: the ingestion routes of every entity.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use crate::load::Loaded;
use crate::obligations::{Obligation, Required, Shape};
use crate::plan::ServicePlan;
use crate::{Env, ServiceArgs, emit};

pub(crate) fn expand(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
) -> Result<TokenStream, syn::Error> {
    emit::not_generic(item)?;
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let ident = &item.ident;
    let span: Span = ident.span();
    let vis = &item.vis;
    let name = plan.service.name();

    let routes = plan.ingestions.iter().map(|ingestion| {
        let entity = format_ident!("{}", ingestion.entity, span = span);
        let path = &ingestion.path;
        quote_spanned! {span=>
            .merge(#krate::producer::routes::<Self, <Self as Produces>::#entity>(#path))
        }
    });
    let events_match = plan.ingestions.iter().enumerate().map(|(index, ingestion)| {
        let entity = format_ident!("{}", ingestion.entity, span = span);
        let event = ingestion.event;
        let message = format!(
            "architecture.toml: `{name}` publishes `{event}` (events[{index}]) for each `{entity}`, but the `Event::TYPE` of `<<{ident} as Produces>::{entity} as Ingest>::Event` is another name: make them the same"
        );
        quote_spanned! {span=>
            const _: () = {
                if !#p::str_eq(
                    <<<#ident as Produces>::#entity as #krate::producer::Ingest>::Event as #krate::Event>::TYPE,
                    #event,
                ) {
                    ::core::panic!(#message);
                }
            };
        }
    });
    let produces = Obligation {
        name: "Produces".into(),
        doc: format!(
            "What `{name}` ingests, as `{}` declares it: one input type per entity, each validated into the event published for it.",
            args.config
        ),
        message: format!("`{{Self}}` is the producer `{name}`, so it must implement `Produces`"),
        label: "this producer does not say what it ingests",
        items: plan
            .ingestions
            .iter()
            .map(|ingestion| Required {
                name: ingestion.entity.clone(),
                shape: Shape::Type(quote!(#krate::producer::Ingest)),
                doc: format!(
                    "The body of `POST {path}` (and each item of `POST {path}/batch`): validated by its `Ingest` impl into the `{event}` event published for it.",
                    path = ingestion.path,
                    event = ingestion.event,
                ),
            })
            .collect(),
    }
    .declare(vis, span);
    let items = quote! {
        #produces

        impl #krate::RestApi for #ident {
            fn routes() -> #krate::Router<Self> {
                #krate::Router::new() #(#routes)*
            }
        }

        #(#events_match)*
    };
    emit::service(args, item, loaded, plan, env, items)
}
