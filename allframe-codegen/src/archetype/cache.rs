//! The `cache` archetype: a cache in front of a source the user writes, per `[services.cache]`
//! (the runtime's `allframe::cache`: Redis with `REDIS_URL`, else embedded; stampede
//! protection; cache-aside, write-through or write-behind; evictions on every instance).
//!
//! Obligations:
//! - `Caches`, a trait declared beside the user's struct with `type Source` (an
//!   `allframe::cache::CacheSource`: load, and store for the write strategies), `source(cx)`
//!   opening it at start-up, and, per event of `invalidation`, its payload type and a method
//!   `on_<event>(&self, event)` answering the keys it makes stale. A missing item is the
//!   compiler's own E0046 naming it at the user's `impl Caches`; no impl at all is the
//!   trait's `on_unimplemented` at the struct. A payload whose `Event::TYPE` is not the
//!   event's name fails the build.
//! - `allframe::Service` and `allframe::RestApi`, as for `stateless`.
//!
//! Derived: `allframe::cache::CacheService` (routing each invalidation event by type to its
//! method), `cache_routes()` on the user's struct (`GET`/`PUT`/`DELETE /<plural>/{key}`, as
//! `allframe::cache::cache_routes`), `cache(cx)` (the open cache, for the user's own
//! handlers), and the launcher's `.cache(…)` with the file's strategy, TTL and invalidations.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use crate::load::Loaded;
use crate::obligations::{Obligation, Required, Shape};
use crate::plan::{CachePlan, ServicePlan};
use crate::{Env, ServiceArgs, emit};

pub(crate) fn expand(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
) -> Result<TokenStream, syn::Error> {
    emit::not_generic(item)?;
    let Some(cache) = &plan.cache else {
        return Err(syn::Error::new(
            args.name_span,
            "a cache service's plan has no `[services.cache]`",
        ));
    };
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let ident = &item.ident;
    let vis = &item.vis;
    let span: Span = ident.span();
    let name = plan.service.name();

    let obligation = obligation(args, cache, name).declare(vis, span);
    let arms = cache.invalidations.iter().map(|consumed| {
        let event = consumed.event;
        let payload = format_ident!("{}", event, span = span);
        let method = format_ident!("{}", consumed.method, span = span);
        quote_spanned! {span=>
            #event => {
                let event = delivery.decode::<<Self as Caches>::#payload>()?;
                <Self as Caches>::#method(self, event)
                    .await
                    .map_err(#p::HandleError::Failed)
            }
        }
    });
    let type_checks = cache.invalidations.iter().enumerate().map(|(index, consumed)| {
        let event = consumed.event;
        let message = format!(
            "{}: `{name}` is invalidated by `{event}` (invalidation[{index}]), but the `Event::TYPE` of `<{ident} as Caches>::{event}` is another name: use the `{event}` type of the event-types crate",
            args.config
        );
        super::consumer::payload_check(krate, ident, "Caches", event, &message)
    });
    let path = &cache.path;
    let routes_doc = format!(
        "The REST endpoints of the cached `{}` at `{path}/{{key}}`: `GET` through the cache (loaded from the source on a miss, `404` when it has none), `PUT` a value as JSON (written per the strategy, `{}`), `DELETE` to evict.",
        cache.entity,
        cache.strategy.as_str()
    );
    let items = quote! {
        #obligation

        impl #p::CacheService for #ident {
            type Source = <Self as Caches>::Source;

            fn open_source(
                cx: &#krate::Ctx,
            ) -> #p::BoxFuture<'_, ::core::result::Result<Self::Source, #krate::BoxError>> {
                ::std::boxed::Box::pin(<Self as Caches>::source(cx))
            }

            fn stale_keys<'a>(
                &'a self,
                delivery: &'a #p::Delivery,
            ) -> #p::BoxFuture<
                'a,
                ::core::result::Result<::std::vec::Vec<::std::string::String>, #p::HandleError>,
            > {
                ::std::boxed::Box::pin(async move {
                    match delivery.envelope().event_type.as_str() {
                        #(#arms)*
                        other => ::core::result::Result::Err(
                            #p::HandleError::UnknownEvent(::std::borrow::ToOwned::to_owned(other)),
                        ),
                    }
                })
            }
        }

        #(#type_checks)*

        impl #ident {
            #[doc = #routes_doc]
            #vis fn cache_routes() -> #krate::Router<Self> {
                #krate::cache::cache_routes::<Self, <Self as Caches>::Source>(#path)
            }

            /// The open cache, for handlers of the service's own: `get`, `put`, `evict`.
            #vis fn cache(
                cx: &#krate::Ctx,
            ) -> ::core::result::Result<
                &#krate::cache::Cache<<Self as Caches>::Source>,
                #krate::ApiError,
            > {
                #krate::cache::cache_of::<<Self as Caches>::Source>(cx)
            }
        }
    };
    emit::service(args, item, loaded, plan, env, items)
}

/// `Caches`: the source and how it opens, then per invalidation event its payload and the
/// method naming the keys it makes stale.
fn obligation(args: &ServiceArgs, cache: &CachePlan<'_>, name: &str) -> Obligation {
    let krate = &args.krate;
    let mut items = vec![
        Required {
            name: "Source".to_owned(),
            shape: Shape::Type(quote!(#krate::cache::CacheSource)),
            doc: format!(
                "What the cache of `{}` fronts: `load` on a miss{}.",
                cache.entity,
                match cache.strategy.as_str() {
                    "cache-aside" => ", `store` for a `PUT` (then the key is evicted)",
                    "write-through" => ", `store` for a `PUT` before the value is cached",
                    _ => ", `store` for batches of `PUT`s written behind (idempotent: a batch may be stored again after a crash)",
                }
            ),
        },
        Required {
            name: "source".to_owned(),
            shape: Shape::Method(quote! {
                (
                    cx: &#krate::Ctx,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<Self::Source, #krate::BoxError>,
                > + ::core::marker::Send
            }),
            doc: "Opens the source, once at start-up (before `Service::init`); an `Err` stops the service with it.".to_owned(),
        },
    ];
    for consumed in &cache.invalidations {
        let event = consumed.event;
        let payload = format_ident!("{}", event);
        items.push(super::consumer::payload_type(krate, consumed));
        items.push(Required {
            name: consumed.method.clone(),
            shape: Shape::Method(quote! {
                (
                    &self,
                    event: Self::#payload,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<
                        ::std::vec::Vec<::std::string::String>,
                        #krate::BoxError,
                    >,
                > + ::core::marker::Send
            }),
            doc: format!(
                "The keys one `{event}` makes stale: every instance evicts them (at least once). An `Err` is retried after a pause."
            ),
        });
    }
    Obligation {
        name: "Caches".into(),
        doc: format!(
            "What `{name}` caches, as `{}` declares it in `[services.cache]`: its source, and the keys each `invalidation` event makes stale.",
            args.config
        ),
        message: format!("`{{Self}}` is the cache `{name}`, so it must implement `Caches`"),
        label: "this cache does not say what it fronts",
        items,
    }
}
