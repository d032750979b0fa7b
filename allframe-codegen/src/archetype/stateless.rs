//! The `stateless` archetype: a REST server (and gRPC when declared) over the user's routes,
//! health endpoints, telemetry, the embedded or configured database, graceful shutdown.
//!
//! Obligations on the user's type are the launcher's trait bounds, pointed at the user's struct: `allframe::Service` (start-up), `allframe::RestApi` (routes), and
//! `allframe::GrpcApi` when the file lists `grpc` in `protocols`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::load::Loaded;
use crate::plan::ServicePlan;
use crate::{Env, ServiceArgs, migrations, patterns, settings};

pub(crate) fn expand(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
) -> Result<TokenStream, syn::Error> {
    let service = plan.service;
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let ident = &item.ident;
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "a service struct cannot be generic: the runtime builds exactly one instance of it",
        ));
    }
    let config_path = loaded.path.to_string_lossy().into_owned();
    let settings = settings::settings(krate, &loaded.architecture, service);
    let migrations = migrations::migrations(krate, &env.manifest_dir, args.config_span)?;

    // Spanned at the user's struct: an unmet obligation (`Service`, `RestApi`, `GrpcApi`) is
    // reported there, once, with the runtime's `on_unimplemented` message.
    let grpc = plan
        .grpc
        .then(|| quote_spanned!(ident.span()=> .grpc(#p::grpc_routes::<#ident>)));
    let messaging = patterns::messaging(&p, plan);
    let idempotency = patterns::idempotency(&p, plan, ident.span());
    let metrics = patterns::metrics(&p, plan);
    let tracing = patterns::tracing(&p, plan);
    let tenant = patterns::tenant(plan);
    let launch = quote_spanned! {ident.span()=>
        #p::Launcher::<#ident>::new(&__ALLFRAME_SETTINGS)
            .migrations(__ALLFRAME_MIGRATIONS)
            #grpc
            #messaging
            #idempotency
            #metrics
            #tracing
            #tenant
            .run()
    };
    let doc = format!(
        "Starts `{}` as declared in `{}`: servers, health, telemetry, database, graceful shutdown.",
        service.name(),
        args.config
    );

    Ok(quote! {
        #item

        /// Rebuild this crate whenever the architecture file changes.
        const _: &[u8] = ::core::include_bytes!(#config_path);

        #settings

        #migrations

        #[doc = #doc]
        fn main() -> ::std::process::ExitCode {
            #launch
        }
    })
}
