//! The reliability patterns a service's file turns on, as launcher calls: the outbox relay or
//! direct publishing (`[services.messaging]`), the idempotency layer (`[services.idempotency]`)
//! and the tenant header events carry (`[tenant]`). Each returns nothing when the file does not
//! ask for the pattern, so the expansion only wires what is declared.

use allframe_config::model::{IdempotencyStorage, MessagingPattern};
use allframe_config::{Architecture, ResolvedService};
use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;

/// `.outbox(OutboxSettings { … })` or `.direct_publish()`.
pub(crate) fn messaging(
    p: &TokenStream,
    service: &ResolvedService,
    span: Span,
) -> Result<Option<TokenStream>, syn::Error> {
    let Some(messaging) = &service.messaging else {
        return Ok(None);
    };
    match messaging.pattern {
        MessagingPattern::Outbox => {
            let polling = Literal::u64_unsuffixed(messaging.outbox_polling_ms);
            let r = service.resilience.retry;
            let (attempts, initial, max) = (
                Literal::u32_unsuffixed(r.max_attempts),
                Literal::u64_unsuffixed(r.initial_interval_ms),
                Literal::u64_unsuffixed(r.max_interval_ms),
            );
            let multiplier = Literal::f64_suffixed(r.multiplier);
            Ok(Some(quote! {
                .outbox(#p::OutboxSettings {
                    polling_ms: #polling,
                    retry: #p::RetrySettings {
                        max_attempts: #attempts,
                        initial_interval_ms: #initial,
                        max_interval_ms: #max,
                        multiplier: #multiplier,
                    },
                    ..#p::OutboxSettings::DEFAULT
                })
            }))
        }
        MessagingPattern::Direct => Ok(Some(quote!(.direct_publish()))),
        MessagingPattern::Transactional => Err(syn::Error::new(
            span,
            format!(
                "service `{}` declares `[services.messaging] pattern = \"transactional\"`, which this version of allframe does not implement yet; use `pattern = \"outbox\"` for the same guarantee through the database",
                service.name()
            ),
        )),
    }
}

/// `.idempotency(IdempotencySettings { … })` when the file enables it.
pub(crate) fn idempotency(p: &TokenStream, service: &ResolvedService) -> Option<TokenStream> {
    let policy = service.idempotency.as_ref()?;
    let header = &policy.key_header;
    let ttl = Literal::u32_unsuffixed(policy.ttl_hours);
    let storage = match policy.storage {
        IdempotencyStorage::Redis => quote!(#p::IdempotencyStorage::Redis),
        IdempotencyStorage::Postgres => quote!(#p::IdempotencyStorage::Postgres),
        IdempotencyStorage::Sqlite => quote!(#p::IdempotencyStorage::Sqlite),
    };
    Some(quote! {
        .idempotency(#p::IdempotencySettings {
            key_header: #header,
            ttl_hours: #ttl,
            storage: #storage,
        })
    })
}

/// `.tenant_header("X-Tenant-ID")` when tenancy is on.
pub(crate) fn tenant(arch: &Architecture) -> Option<TokenStream> {
    let tenant = &arch.file().tenant;
    if !tenant.enabled {
        return None;
    }
    let header = &tenant.header;
    Some(quote!(.tenant_header(#header)))
}
