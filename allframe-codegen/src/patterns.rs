//! The reliability patterns a service's file turns on, as launcher calls: the outbox relay,
//! direct or transactional publishing (`[services.messaging]`), the idempotency layer (`[services.idempotency]`),
//! the Prometheus endpoint (`[observability] metrics`), span export (`[observability] tracing`)
//! and the tenant header events carry (`[tenant]`). Each returns nothing when the file does not
//! ask for the pattern, so the expansion only wires what is declared.

use allframe_config::model::{
    IdempotencyStorage, MessagingPattern, MetricsBackend, Propagation, SamplingStrategy,
    TelemetryBackend,
};
use allframe_config::{Architecture, ResolvedService};
use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};

/// `.outbox(OutboxSettings { … })`, `.direct_publish()` or `.transactional_publish()`.
/// (`allframe check` already refused `transactional` on a bus without transactions.)
pub(crate) fn messaging(p: &TokenStream, service: &ResolvedService) -> Option<TokenStream> {
    let messaging = service.common.messaging.as_ref()?;
    match messaging.pattern {
        MessagingPattern::Outbox => {
            let polling = Literal::u64_unsuffixed(messaging.outbox_polling_ms);
            let r = service.common.resilience.retry;
            let (attempts, initial, max) = (
                Literal::u32_unsuffixed(r.max_attempts),
                Literal::u64_unsuffixed(r.initial_interval_ms),
                Literal::u64_unsuffixed(r.max_interval_ms),
            );
            let multiplier = Literal::f64_suffixed(r.multiplier);
            Some(quote! {
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
            })
        }
        MessagingPattern::Direct => Some(quote!(.direct_publish())),
        MessagingPattern::Transactional => Some(quote!(.transactional_publish())),
    }
}

/// `.idempotency(IdempotencySettings { … })` when the file enables it. Redis storage goes
/// through a function bounded on the runtime's `redis` feature, spanned at `span` (the user's
/// struct), so building without the feature is a compile error there.
pub(crate) fn idempotency(
    p: &TokenStream,
    service: &ResolvedService,
    span: Span,
) -> Option<TokenStream> {
    let policy = service.common.idempotency.as_ref()?;
    let header = &policy.key_header;
    let ttl = Literal::u32_unsuffixed(policy.ttl_hours);
    let storage = match policy.storage {
        IdempotencyStorage::Redis => {
            quote_spanned!(span=> #p::redis_idempotency_storage::<#p::RedisFeature>())
        }
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

/// `.metrics(MetricsSettings { port })` when `[observability] metrics = "prometheus"` (the
/// default): `/metrics` on the REST port, or on the service's declared `metrics` port. OTLP
/// push is not implemented: it is a compile error at `span` rather than a silent no-op.
pub(crate) fn metrics(
    p: &TokenStream,
    arch: &Architecture,
    service: &ResolvedService,
    span: Span,
) -> Result<Option<TokenStream>, syn::Error> {
    match arch.globals().observability.metrics {
        MetricsBackend::None => Ok(None),
        MetricsBackend::Otlp => Err(syn::Error::new(
            span,
            "`[observability] metrics = \"otlp\"` (push) is not implemented by this version of allframe yet; use `metrics = \"prometheus\"` (scraped at /metrics, e.g. by an OpenTelemetry collector's prometheus receiver) or `\"none\"`",
        )),
        MetricsBackend::Prometheus => {
            let port = match service.common.metrics_port.map(Literal::u16_unsuffixed) {
                Some(port) => quote!(::core::option::Option::Some(#port)),
                None => quote!(::core::option::Option::None),
            };
            Ok(Some(quote!(.metrics(#p::MetricsSettings { port: #port }))))
        }
    }
}

/// `.tracing(TracingSettings { … })` when `[observability] tracing = "opentelemetry"` (the
/// default): sampling as the file says, B3 and baggage propagation when `propagation` lists
/// them. Jaeger propagation is not implemented: a compile error at `span`, not a silent
/// no-op.
pub(crate) fn tracing(
    p: &TokenStream,
    arch: &Architecture,
    span: Span,
) -> Result<Option<TokenStream>, syn::Error> {
    let observability = &arch.globals().observability;
    if observability.tracing == TelemetryBackend::None {
        return Ok(None);
    }
    if observability.propagation.contains(&Propagation::Jaeger) {
        return Err(syn::Error::new(
            span,
            "`[observability] propagation` lists \"jaeger\", which this version of allframe does not implement; use \"traceparent\" (W3C trace context, which Jaeger reads) and, for Zipkin-style callers, \"b3\"",
        ));
    }
    let rate = Literal::f64_suffixed(observability.sampling.rate);
    let sampling = match observability.sampling.strategy {
        SamplingStrategy::Always => quote!(#p::TraceSampling::Always),
        SamplingStrategy::Never => quote!(#p::TraceSampling::Never),
        SamplingStrategy::Probabilistic => quote!(#p::TraceSampling::Ratio(#rate)),
        SamplingStrategy::ParentBased => quote!(#p::TraceSampling::ParentBased(#rate)),
    };
    let b3 = observability.propagation.contains(&Propagation::B3);
    let baggage = observability.propagation.contains(&Propagation::Baggage);
    Ok(Some(quote! {
        .tracing(#p::TracingSettings {
            sampling: #sampling,
            b3: #b3,
            baggage: #baggage,
        })
    }))
}

/// `.tenant_header("X-Tenant-ID")` when tenancy is on.
pub(crate) fn tenant(arch: &Architecture) -> Option<TokenStream> {
    let tenant = &arch.globals().tenant;
    if !tenant.enabled {
        return None;
    }
    let header = &tenant.header;
    Some(quote!(.tenant_header(#header)))
}
