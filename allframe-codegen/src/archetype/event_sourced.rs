//! The `event-sourced` archetype: aggregates whose state is their events, kept in the
//! service's own database by the runtime's `allframe::eventstore` (expected versions,
//! commit-ordered positions, snapshots every `snapshot_frequency` events, events published
//! through the outbox), and projections building read models from every event.
//!
//! Obligations:
//! - `EventSourced`, a trait declared beside the user's struct with one associated type per
//!   aggregate (`[services.domain] entities`, or one named after the service), bound by
//!   `allframe::eventstore::Aggregate` with a command read from JSON, and one per name of
//!   `[services.cqrs] projections`, bound by `allframe::eventstore::Projection + Default`. A
//!   missing one is the compiler's own E0046 naming it at the user's `impl EventSourced`; no
//!   impl at all is the trait's `on_unimplemented` at the struct. An aggregate whose `TYPE`
//!   is not the entity's name is a compile error naming both.
//! - `allframe::Service` and `allframe::RestApi`, as for `stateless`.
//!
//! Derived: `aggregate_routes()` on the user's struct (each aggregate's commands and state
//! at `/<plural>`, as `allframe::eventstore::aggregate_routes`), an accessor per projection
//! (`account_balances(cx)`: the read model serving reads), and the launcher's
//! `.event_sourced(…)` with every projection under the name the file gives it.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use crate::load::Loaded;
use crate::obligations::{Obligation, Required, Shape};
use crate::plan::{EventSourcedPlan, ServicePlan};
use crate::{Env, ServiceArgs, emit};

pub(crate) fn expand(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
) -> Result<TokenStream, syn::Error> {
    emit::not_generic(item)?;
    let Some(es) = &plan.event_sourced else {
        return Err(syn::Error::new(
            args.name_span,
            "an event-sourced service's plan has no `[services.cqrs]`",
        ));
    };
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let ident = &item.ident;
    let vis = &item.vis;
    let span: Span = ident.span();
    let name = plan.service.name();

    let obligation = obligation(args, es, name).declare(vis, span);
    // Each aggregate's `TYPE` is the entity the file names: its streams and its events'
    // aggregate type.
    let checks = es.aggregates.iter().map(|aggregate| {
        let entity = aggregate.entity;
        let assoc = format_ident!("{}", entity, span = span);
        let message = format!(
            "the aggregate `{entity}` of `{name}` must have `const TYPE: &'static str = \"{entity}\";`: the type of its streams is the entity `{}` names",
            args.config
        );
        quote_spanned! {span=>
            const _: () = ::core::assert!(
                #p::str_eq(
                    <<#ident as EventSourced>::#assoc as #krate::eventstore::Aggregate>::TYPE,
                    #entity,
                ),
                #message,
            );
        }
    });
    let routes = es.aggregates.iter().map(|aggregate| {
        let assoc = format_ident!("{}", aggregate.entity, span = span);
        let path = &aggregate.path;
        quote_spanned! {span=>
            .merge(#krate::eventstore::aggregate_routes::<Self, <Self as EventSourced>::#assoc>(#path))
        }
    });
    let listed: Vec<String> = es
        .aggregates
        .iter()
        .map(|a| format!("`{}` at `{}`", a.entity, a.path))
        .collect();
    let routes_doc = format!(
        "The REST endpoints of every aggregate ({}): `POST <path>/{{id}}/commands` with a command as JSON, `GET <path>/{{id}}` for its state, each with its version as an `ETag` (`If-Match` makes a command conditional; a conflict is `409` with the current version).",
        listed.join(", ")
    );
    let accessors = es.projections.iter().map(|projection| {
        let method = format_ident!("{}", projection.method, span = span);
        let projection_name = projection.name;
        let doc = format!(
            "The read model of projection `{projection_name}` that serves reads: `model.table(\"…\")` names its tables in that version (a rebuild switches versions once caught up)."
        );
        quote_spanned! {span=>
            #[doc = #doc]
            #vis async fn #method(
                cx: &#krate::Ctx,
            ) -> ::core::result::Result<#krate::eventstore::ReadModel, #krate::ApiError> {
                #krate::eventstore::read_model(cx, #projection_name).await
            }
        }
    });
    let items = quote! {
        #obligation

        #(#checks)*

        impl #ident {
            #[doc = #routes_doc]
            #vis fn aggregate_routes() -> #krate::Router<Self> {
                #krate::Router::new()
                    #(#routes)*
            }

            #(#accessors)*
        }
    };
    emit::service(args, item, loaded, plan, env, items)
}

/// The `EventSourced` trait: an aggregate type per entity, then a projection type per name.
fn obligation(args: &ServiceArgs, es: &EventSourcedPlan<'_>, name: &str) -> Obligation {
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let aggregates = es.aggregates.iter().map(|aggregate| Required {
        name: aggregate.entity.to_owned(),
        shape: Shape::Type(quote! {
            #krate::eventstore::Aggregate<Command: #p::serde::de::DeserializeOwned>
        }),
        doc: format!(
            "The aggregate `{}`: its state, the commands it takes (from JSON, at `POST {}/{{id}}/commands`) and the events it records ({}). Its `TYPE` is `\"{}\"`.",
            aggregate.entity,
            aggregate.path,
            aggregate
                .events
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", "),
            aggregate.entity
        ),
    });
    let projections = es.projections.iter().map(|projection| Required {
        name: projection.name.to_owned(),
        shape: Shape::Type(quote! {
            #krate::eventstore::Projection + ::core::default::Default
        }),
        doc: format!(
            "The projection `{}`: builds its read model from every event, in commit order, exactly once per event; rebuilt with `cargo allframe projections rebuild --projection {}`.",
            projection.name, projection.name
        ),
    });
    Obligation {
        name: "EventSourced".into(),
        doc: format!(
            "What `{name}` is made of, as `{}` declares it: one aggregate type per entity and one projection type per name of `[services.cqrs] projections`.",
            args.config
        ),
        message: format!(
            "`{{Self}}` is the event-sourced service `{name}`, so it must implement `EventSourced`"
        ),
        label: "this service does not say which aggregates and projections it has",
        items: aggregates.chain(projections).collect(),
    }
}
