//! Stage 5: the launcher call every archetype's `main()` makes, and the items around it (the
//! user's struct, the rebuild trigger, the settings, the embedded migrations). An archetype
//! module adds its own obligations and items, then hands them here.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use crate::load::Loaded;
use crate::plan::ServicePlan;
use crate::{Env, ServiceArgs, migrations, patterns, settings};

/// The user's struct, the archetype's `items`, the settings and migrations, the launcher as
/// `plan` says (`allframe::__private::Launch`, which tests start in-process too) and a `main()`
/// that runs it. Launcher calls are spanned at the user's struct:
/// an unmet obligation (`Service`, `RestApi`, `GrpcApi`) is reported there, once, with the
/// runtime's `on_unimplemented` message.
pub(crate) fn service(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
    items: TokenStream,
) -> Result<TokenStream, syn::Error> {
    let service = plan.service;
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let ident = &item.ident;
    let span: Span = ident.span();
    let config_path = loaded.path.to_string_lossy().into_owned();
    let settings = settings::settings(krate, &loaded.architecture, service);
    let migrations = migrations::migrations(krate, &env.manifest_dir, args.config_span)?;

    let grpc = plan
        .grpc
        .then(|| quote_spanned!(span=> .grpc(#p::grpc_routes::<#ident>)));
    let messaging = patterns::messaging(&p, plan);
    let consumer = patterns::consumer(&p, plan);
    let idempotency = patterns::idempotency(&p, plan, span);
    let metrics = patterns::metrics(&p, plan);
    let limits = patterns::limits(&p, plan);
    let gateway = patterns::gateway(&p, plan);
    let saga = patterns::saga(&p, plan);
    let event_sourced = patterns::event_sourced(&p, plan);
    let cache = patterns::cache(&p, plan);
    let tracing = patterns::tracing(&p, plan);
    let tenant = patterns::tenant(plan);
    let launcher = quote_spanned! {span=>
        #p::Launcher::<Self>::new(&__ALLFRAME_SETTINGS)
            .migrations(__ALLFRAME_MIGRATIONS)
            #grpc
            #messaging
            #consumer
            #idempotency
            #metrics
            #gateway
            #saga
            #event_sourced
            #cache
            #limits
            #tracing
            #tenant
    };
    let run = quote_spanned!(span=> <#ident as #p::Launch>::launcher().run());
    let doc = format!(
        "Starts `{}` as declared in `{}`: servers, health, telemetry, database, graceful shutdown.",
        service.name(),
        args.config
    );

    Ok(quote! {
        #item

        /// Rebuild this crate whenever the architecture file changes.
        const _: &[u8] = ::core::include_bytes!(#config_path);

        #items

        #settings

        #migrations

        impl #p::Launch for #ident {
            fn launcher() -> #p::Launcher<Self> {
                #launcher
            }
        }

        #[doc = #doc]
        fn main() -> ::std::process::ExitCode {
            #run
        }
    })
}

/// A service struct cannot be generic: the runtime builds exactly one instance of it.
pub(crate) fn not_generic(item: &syn::ItemStruct) -> Result<(), syn::Error> {
    use syn::spanned::Spanned;
    if item.generics.params.is_empty() {
        Ok(())
    } else {
        Err(syn::Error::new(
            item.generics.span(),
            "a service struct cannot be generic: the runtime builds exactly one instance of it",
        ))
    }
}
