//! The `gateway` archetype: a REST service of the user's routes that calls the external
//! providers of `[services.integrations]`, each through a client behind the service's circuit
//! breaker, retry policy and timeout (`allframe::gateway`).
//!
//! Obligations:
//! - `Integrations`, a trait declared beside the user's struct with one associated type per
//!   provider: the client type the user writes over the runtime's `Provider` (it implements
//!   `allframe::gateway::Client`). A missing one is the compiler's own E0046 naming it at the
//!   user's `impl Integrations`; no impl at all is the trait's `on_unimplemented` at the struct.
//! - `allframe::Service` and `allframe::RestApi`, as for `stateless`.
//!
//! Derived: one accessor per provider on the user's struct, `fn stripe(cx: &Ctx) ->
//! Result<Self::Stripe, ApiError>`, building the client from the provider the runtime
//! configured at start-up (`<PROVIDER>_URL`).

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
    let items = integrations(args, item, plan);
    emit::service(args, item, loaded, plan, env, items)
}

/// The `Integrations` trait beside the user's struct (one client type per provider of
/// `[services.integrations]`) and an accessor per provider on the struct: what a gateway is
/// made of, and what a saga orchestrator calling participants over HTTP gets too.
pub(crate) fn integrations(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    plan: &ServicePlan<'_>,
) -> TokenStream {
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let ident = &item.ident;
    let span: Span = ident.span();
    let vis = &item.vis;
    let name = plan.service.name();
    let kind = plan.service.kind();

    let integrations = Obligation {
        name: "Integrations".into(),
        doc: format!(
            "How `{name}` calls its providers, as `{}` declares them: one client type per provider, built over the runtime's client for it (breaker, retries, timeout, `<PROVIDER>_URL`).",
            args.config
        ),
        message: format!("`{{Self}}` is the {kind} `{name}`, which calls providers, so it must implement `Integrations`"),
        label: "this service does not say how it calls its providers",
        items: plan
            .providers
            .iter()
            .map(|provider| Required {
                name: provider.client.clone(),
                shape: Shape::Type(quote!(#krate::gateway::Client)),
                doc: format!(
                    "The client of provider `{}`, whose base URL is `{}`.",
                    provider.name,
                    allframe_env::provider_url(provider.name)
                ),
            })
            .collect(),
    }
    .declare(vis, span);
    let accessors = plan.providers.iter().map(|provider| {
        let method = format_ident!("{}", provider.method, span = span);
        let client = format_ident!("{}", provider.client, span = span);
        let provider_name = provider.name;
        let doc = format!(
            "The client of provider `{provider_name}` (`{}`), behind the service's breaker, retries and timeout.",
            allframe_env::provider_url(provider_name)
        );
        quote_spanned! {span=>
            #[doc = #doc]
            #vis fn #method(
                cx: &#krate::Ctx,
            ) -> ::core::result::Result<<Self as Integrations>::#client, #krate::ApiError> {
                #p::provider_client(cx, #provider_name)
            }
        }
    });
    quote! {
        #integrations

        impl #ident {
            #(#accessors)*
        }
    }
}
