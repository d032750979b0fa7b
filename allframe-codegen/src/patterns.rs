//! The reliability patterns a service's file turns on, as launcher calls: the outbox relay,
//! direct or transactional publishing (`[services.messaging]`), the idempotency layer (`[services.idempotency]`),
//! the Prometheus endpoint (`[observability] metrics`), the limits on incoming requests
//! (`[resilience] bulkhead | rate_limit`), span export (`[observability] tracing`)
//! and the tenant header events carry (`[tenant]`). Each returns nothing when the file does not
//! ask for the pattern, so the expansion only wires what is declared.

use allframe_config::model::{
    Backoff, CacheWriteStrategy, Channel, IdempotencyStorage, MessagingPattern, RateLimitKey,
    SamplingStrategy,
};
use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens as _, quote, quote_spanned};

use crate::plan::ServicePlan;

/// `.outbox(OutboxSettings { … })`, `.direct_publish()` or `.transactional_publish()`.
/// (`allframe check` already refused `transactional` on a bus without transactions.)
pub(crate) fn messaging(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let messaging = plan.messaging?;
    match messaging.pattern {
        MessagingPattern::Outbox => {
            let polling = Literal::u64_unsuffixed(messaging.outbox_polling_ms);
            let retry = retry_settings(p, plan);
            Some(quote! {
                .outbox(#p::OutboxSettings {
                    polling_ms: #polling,
                    retry: #retry,
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
    plan: &ServicePlan<'_>,
    span: Span,
) -> Option<TokenStream> {
    let policy = plan.idempotency?;
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
/// default): `/metrics` on the REST port, or on the service's declared `metrics` port.
pub(crate) fn metrics(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let port = match plan.metrics?.map(Literal::u16_unsuffixed) {
        Some(port) => quote!(::core::option::Option::Some(#port)),
        None => quote!(::core::option::Option::None),
    };
    Some(quote!(.metrics(#p::MetricsSettings { port: #port })))
}

/// `.tracing(TracingSettings { … })` when `[observability] tracing = "opentelemetry"` (the
/// default): sampling as the file says, B3 and baggage propagation when `propagation` lists
/// them.
pub(crate) fn tracing(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let tracing = plan.tracing?;
    let rate = Literal::f64_suffixed(tracing.rate);
    let sampling = match tracing.strategy {
        SamplingStrategy::Always => quote!(#p::TraceSampling::Always),
        SamplingStrategy::Never => quote!(#p::TraceSampling::Never),
        SamplingStrategy::Probabilistic => quote!(#p::TraceSampling::Ratio(#rate)),
        SamplingStrategy::ParentBased => quote!(#p::TraceSampling::ParentBased(#rate)),
    };
    let (b3, baggage) = (tracing.b3, tracing.baggage);
    Some(quote! {
        .tracing(#p::TracingSettings {
            sampling: #sampling,
            b3: #b3,
            baggage: #baggage,
        })
    })
}

/// `.limits(InboundLimits { … })` when the file declares a bulkhead or a rate limit for the
/// service (in `[resilience]` or its own tables); a service declaring neither is not limited.
pub(crate) fn limits(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let resilience = plan.service.common.resilience;
    if resilience.bulkhead.is_none() && resilience.rate_limit.is_none() {
        return None;
    }
    let some = |tokens: Option<TokenStream>| match tokens {
        Some(tokens) => quote!(::core::option::Option::Some(#tokens)),
        None => quote!(::core::option::Option::None),
    };
    let bulkhead = some(resilience.bulkhead.map(|b| {
        let (running, queue) = (
            Literal::u32_unsuffixed(b.max_concurrent),
            Literal::u32_unsuffixed(b.max_queue),
        );
        quote!(#p::BulkheadPolicy { max_concurrent: #running, max_queue: #queue })
    }));
    let rate_limit = some(resilience.rate_limit.map(|r| {
        let (rps, burst) = (
            Literal::u32_unsuffixed(r.rps),
            Literal::u32_unsuffixed(r.burst),
        );
        let per = match r.per {
            RateLimitKey::Global => quote!(#p::RateLimitKey::Global),
            RateLimitKey::Ip => quote!(#p::RateLimitKey::Ip),
            RateLimitKey::Tenant => quote!(#p::RateLimitKey::Tenant),
            RateLimitKey::User => quote!(#p::RateLimitKey::User),
        };
        quote!(#p::RateLimitPolicy { rps: #rps, burst: #burst, per: #per })
    }));
    Some(quote! {
        .limits(#p::InboundLimits {
            bulkhead: #bulkhead,
            rate_limit: #rate_limit,
        })
    })
}

/// `.gateway(GatewaySettings { providers: &[…] })` for a `gateway`: one provider per name in
/// `[services.integrations] providers`, each with the service's breaker and retry policy
/// (`[services.integrations]` over `[resilience]`).
pub(crate) fn gateway(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    if plan.providers.is_empty() {
        return None;
    }
    let resilience = plan.service.common.resilience;
    let b = resilience.circuit_breaker;
    let (failures, successes, open_ms) = (
        Literal::u32_unsuffixed(b.failure_threshold),
        Literal::u32_unsuffixed(b.success_threshold),
        Literal::u64_unsuffixed(b.timeout_ms),
    );
    let retry = call_retry(p, &resilience.call_retry);
    let providers = plan.providers.iter().map(|provider| {
        let name = provider.name;
        let timeout = match provider.timeout_ms {
            Some(ms) => Literal::u64_unsuffixed(ms).into_token_stream(),
            None => quote!(#p::ProviderSettings::DEFAULT_TIMEOUT_MS),
        };
        quote! {
            #p::ProviderSettings {
                name: #name,
                circuit_breaker: #p::BreakerPolicy {
                    failure_threshold: #failures,
                    success_threshold: #successes,
                    timeout_ms: #open_ms,
                },
                retry: #retry,
                timeout_ms: #timeout,
                idempotency_header: #p::ProviderSettings::DEFAULT_IDEMPOTENCY_HEADER,
            }
        }
    });
    Some(quote! {
        .gateway(#p::GatewaySettings {
            providers: &[#(#providers),*],
        })
    })
}

/// `.saga(SagaSettings { … })` for a `saga-orchestrator`: its steps and compensations as the
/// file names them, its deadline, and the service's retry policy for both.
pub(crate) fn saga(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let saga = plan.saga.as_ref()?;
    let name = saga.name;
    let timeout = Literal::u64_unsuffixed(saga.timeout_seconds);
    let steps = saga.steps.iter().map(|step| {
        let (names, compensation) = (step.step, step.compensation);
        let reply = match step.reply {
            Some((success, failure)) => {
                let failure = match failure {
                    Some(failure) => quote!(::core::option::Option::Some(#failure)),
                    None => quote!(::core::option::Option::None),
                };
                quote!(::core::option::Option::Some(#p::Reply { success: #success, failure: #failure }))
            }
            None => quote!(::core::option::Option::None),
        };
        quote!(#p::StepNames { step: #names, compensation: #compensation, reply: #reply })
    });
    // Each reply event once per service publishing it: one topic each.
    let replies = saga.replies.iter().flat_map(|reply| {
        let event = reply.event;
        reply
            .producers
            .iter()
            .map(move |producer| quote!(#p::ConsumedEvent { event: #event, producer: #producer }))
    });
    let retry = call_retry(p, &plan.service.common.resilience.retry);
    Some(quote! {
        .saga(#p::SagaSettings {
            name: #name,
            steps: &[#(#steps),*],
            timeout_seconds: #timeout,
            retry: #retry,
            replies: &[#(#replies),*],
        })
    })
}

/// `.event_sourced(EventSourcedSettings { … }, || vec![…])` for an `event-sourced` service: its
/// snapshot frequency, and each projection of `[services.cqrs] projections` built by its
/// `Default` and named as the file names it.
pub(crate) fn event_sourced(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let es = plan.event_sourced.as_ref()?;
    let frequency = Literal::u64_unsuffixed(u64::from(es.snapshot_frequency));
    let projections = es.projections.iter().map(|projection| {
        let name = projection.name;
        let assoc = quote::format_ident!("{}", name);
        quote! {
            #p::declared_projection(
                #name,
                <<Self as EventSourced>::#assoc as ::core::default::Default>::default(),
            )
        }
    });
    Some(quote! {
        .event_sourced(
            #p::EventSourcedSettings {
                snapshot_frequency: #frequency,
                projection_idle: #p::EventSourcedSettings::DEFAULT_PROJECTION_IDLE,
            },
            || ::std::vec![#(#projections),*],
        )
    })
}

/// `.cache(CacheServiceSettings { … })` for a `cache` service: its strategy, TTL, and each
/// invalidation event with its publishers.
pub(crate) fn cache(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let cache = plan.cache.as_ref()?;
    let strategy = match cache.strategy {
        CacheWriteStrategy::CacheAside => quote!(#p::WriteStrategy::CacheAside),
        CacheWriteStrategy::WriteThrough => quote!(#p::WriteStrategy::WriteThrough),
        CacheWriteStrategy::WriteBehind => quote!(#p::WriteStrategy::WriteBehind),
    };
    let ttl = Literal::u64_unsuffixed(cache.ttl_seconds);
    let invalidations = cache.invalidations.iter().flat_map(|consumed| {
        let event = consumed.event;
        consumed
            .producers
            .iter()
            .map(move |producer| quote!(#p::ConsumedEvent { event: #event, producer: #producer }))
    });
    Some(quote! {
        .cache(#p::CacheServiceSettings {
            strategy: #strategy,
            ttl_seconds: #ttl,
            invalidations: &[#(#invalidations),*],
        })
    })
}

/// A resolved retry policy (the service's, or its provider calls') as the runtime's
/// `CallRetryPolicy { … }`.
fn call_retry(p: &TokenStream, r: &allframe_config::model::RetryPolicy) -> TokenStream {
    let (attempts, initial, max) = (
        Literal::u32_unsuffixed(r.max_attempts),
        Literal::u64_unsuffixed(r.initial_interval_ms),
        Literal::u64_unsuffixed(r.max_interval_ms),
    );
    let (multiplier, idempotent_only) = (Literal::f64_suffixed(r.multiplier), r.idempotent_only);
    quote! {
        #p::CallRetryPolicy {
            max_attempts: #attempts,
            initial_interval_ms: #initial,
            max_interval_ms: #max,
            multiplier: #multiplier,
            idempotent_only: #idempotent_only,
        }
    }
}

/// `.tenant_header("X-Tenant-ID")` when tenancy is on.
pub(crate) fn tenant(plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let header = plan.tenant_header?;
    Some(quote!(.tenant_header(#header)))
}

/// `.consumer(ConsumerSettings { … })` for a `consumer`: its events with their publishers,
/// `concurrency`, and the retry policy (`max_retries`, `retry_backoff`, `dlq`, with the
/// service's retry intervals).
pub(crate) fn consumer(p: &TokenStream, plan: &ServicePlan<'_>) -> Option<TokenStream> {
    let consumer = plan.consumer.as_ref()?;
    let events = consumer.events.iter().flat_map(|consumed| {
        let event = consumed.event;
        consumed
            .producers
            .iter()
            .map(move |producer| quote!(#p::ConsumedEvent { event: #event, producer: #producer }))
    });
    let channels = consumer.channels.iter().map(|channel| match channel {
        Channel::Email => quote!(#p::Channel::Email),
        Channel::Sms => quote!(#p::Channel::Sms),
        Channel::Push => quote!(#p::Channel::Push),
        Channel::Webhook => quote!(#p::Channel::Webhook),
    });
    let table = consumer.table;
    let concurrency = Literal::u32_unsuffixed(table.concurrency);
    let max_retries = Literal::u32_unsuffixed(table.max_retries);
    let backoff = match table.retry_backoff {
        Backoff::Exponential => quote!(#p::Backoff::Exponential),
        Backoff::Linear => quote!(#p::Backoff::Linear),
        Backoff::Fixed => quote!(#p::Backoff::Fixed),
    };
    let dlq = table.dlq;
    let intervals = retry_settings(p, plan);
    Some(quote! {
        .consumer(#p::ConsumerSettings {
            events: &[#(#events),*],
            channels: &[#(#channels),*],
            concurrency: #concurrency,
            policy: #p::RetryPolicy {
                max_retries: #max_retries,
                backoff: #backoff,
                intervals: #intervals,
                dlq: #dlq,
            },
        })
    })
}

/// The service's retry policy (`[resilience] retry`, overridden per service) as
/// `RetrySettings { … }`.
fn retry_settings(p: &TokenStream, plan: &ServicePlan<'_>) -> TokenStream {
    let r = plan.service.common.resilience.retry;
    let (attempts, initial, max) = (
        Literal::u32_unsuffixed(r.max_attempts),
        Literal::u64_unsuffixed(r.initial_interval_ms),
        Literal::u64_unsuffixed(r.max_interval_ms),
    );
    let multiplier = Literal::f64_suffixed(r.multiplier);
    quote! {
        #p::RetrySettings {
            max_attempts: #attempts,
            initial_interval_ms: #initial,
            max_interval_ms: #max,
            multiplier: #multiplier,
        }
    }
}
