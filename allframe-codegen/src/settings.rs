//! The service's resolved settings as a `static` the runtime reads: ports, log format, the
//! declared database, and every `${VAR}` value as pre-parsed segments (resolved only at run time).

use allframe_config::model::LogFormat;
use allframe_config::{Architecture, ResolvedService, Segment};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// Seconds in-flight requests get to finish after SIGTERM before they are aborted.
pub(crate) const SHUTDOWN_TIMEOUT_SECS: u64 = 30;

/// `static __ALLFRAME_SETTINGS: ServiceSettings = …;`
pub(crate) fn settings(
    krate: &syn::Path,
    arch: &Architecture,
    service: &ResolvedService,
) -> TokenStream {
    let p = quote!(#krate::__private);
    let architecture = arch.name();
    let name = service.name();
    let archetype = service.kind().as_str();
    let rest_port = Literal::u16_unsuffixed(service.common.http_port);
    let shutdown = Literal::u64_unsuffixed(SHUTDOWN_TIMEOUT_SECS);
    let grpc_port = match service.common.grpc_port.map(Literal::u16_unsuffixed) {
        Some(port) => quote!(::core::option::Option::Some(#port)),
        None => quote!(::core::option::Option::None),
    };
    let logging = match arch.globals().observability.logging {
        LogFormat::Structured => quote!(#p::LogFormat::Structured),
        LogFormat::Json => quote!(#p::LogFormat::Json),
        LogFormat::Plain => quote!(#p::LogFormat::Plain),
    };
    let database = service.common.database.as_str();
    let deferred = arch.deferred_values(service).into_iter().map(|(key, value)| {
        let segments = value.segments().iter().map(|segment| match segment {
            Segment::Literal(text) => quote!(#p::Segment::Literal(#text)),
            Segment::Var { name, default: None } => {
                quote!(#p::Segment::Var { name: #name, default: ::core::option::Option::None })
            }
            Segment::Var { name, default: Some(default) } => {
                quote!(#p::Segment::Var { name: #name, default: ::core::option::Option::Some(#default) })
            }
        });
        quote!(#p::DeferredValue { key: #key, segments: &[#(#segments),*] })
    });
    quote! {
        /// This service's settings, resolved from the architecture file at compile time.
        static __ALLFRAME_SETTINGS: #p::ServiceSettings = #p::ServiceSettings {
            architecture: #architecture,
            name: #name,
            archetype: #archetype,
            rest_port: #rest_port,
            grpc_port: #grpc_port,
            logging: #logging,
            declared_database: #database,
            shutdown_timeout_secs: #shutdown,
            deferred: &[#(#deferred),*],
        };
    }
}
