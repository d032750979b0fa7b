//! The `consumer` archetype: each event of `[services.consumer] events` handled by a method of
//! the user's, exactly once in its effects, retried with backoff, then parked as a dead
//! letter (the runtime's `allframe::consumer`).
//!
//! Obligations:
//! - `Consumes`, a trait declared beside the user's struct with, per event, an associated
//!   type (its payload, an `allframe::consumer::Payload`: the type from the architecture's
//!   event-types crate) and a method `on_<event>(&self, uow, event)`. A missing method is the
//!   compiler's own E0046 naming it at the user's `impl Consumes`; a method for an event the
//!   file does not list is E0407; no impl at all is the trait's `on_unimplemented`.
//! - the payload is the event the file names: a constant check fails the build when
//!   `Event::TYPE` differs from the event's name.
//!
//! Derived: `allframe::consumer::Consume` (routing each delivery by event type to its method,
//! the payload decoded) and `RestApi` (a consumer serves only its health and metrics).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use allframe_config::model::Channel;

use crate::load::Loaded;
use crate::obligations::{Obligation, Required, Shape};
use crate::plan::{ChannelApi, ConsumedPlan, ConsumerPlan, ServicePlan};
use crate::{Env, ServiceArgs, emit};

pub(crate) fn expand(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
) -> Result<TokenStream, syn::Error> {
    emit::not_generic(item)?;
    let Some(consumer) = &plan.consumer else {
        return Err(syn::Error::new(
            args.name_span,
            "a consumer's plan has no `[services.consumer]`",
        ));
    };
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let ident = &item.ident;
    let span: Span = ident.span();
    let name = plan.service.name();

    let consumes = obligation(args, consumer, name).declare(&item.vis, span);
    let channels = channels_trait(krate, &item.vis, name, &consumer.channels);
    // The handlers take the channel outbox only when the file declares channels.
    let (notify, pass_notify) = if consumer.channels.is_empty() {
        (quote_spanned!(span=> _notify), quote!())
    } else {
        (
            quote_spanned!(span=> notify),
            quote_spanned!(span=> , notify),
        )
    };
    let arms = consumer.events.iter().map(|consumed| {
        let event = consumed.event;
        let payload = format_ident!("{}", event, span = span);
        let method = format_ident!("{}", consumed.method, span = span);
        quote_spanned! {span=>
            #event => {
                let event = delivery.decode::<<Self as Consumes>::#payload>()?;
                <Self as Consumes>::#method(self, uow, event #pass_notify)
                    .await
                    .map_err(#p::HandleError::Failed)
            }
        }
    });
    let type_checks = consumer.events.iter().enumerate().map(|(index, consumed)| {
        let event = consumed.event;
        let message = format!(
            "architecture.toml: `{name}` consumes `{event}` (events[{index}]), but the `Event::TYPE` of `<{ident} as Consumes>::{event}` is another name: use the `{event}` type of the event-types crate"
        );
        payload_check(krate, ident, "Consumes", event, &message)
    });
    let items = quote! {
        #consumes
        #channels

        impl #p::Consume for #ident {
            fn consume<'a>(
                &'a self,
                uow: &'a mut #p::UnitOfWork,
                delivery: &'a #p::Delivery,
                #notify: &'a mut #p::Notifications,
            ) -> #p::BoxFuture<'a, ::core::result::Result<(), #p::HandleError>> {
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

        impl #krate::RestApi for #ident {
            fn routes() -> #krate::Router<Self> {
                #krate::Router::new()
            }
        }

        #(#type_checks)*
    };
    emit::service(args, item, loaded, plan, env, items)
}

/// `Consumes`: per event, its payload type and its handler.
fn obligation(args: &ServiceArgs, consumer: &ConsumerPlan<'_>, name: &str) -> Obligation {
    let krate = &args.krate;
    let notify = channels_parameter(krate, &consumer.channels);
    let sends = if consumer.channels.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = consumer.channels.iter().map(|c| c.as_str()).collect();
        format!(
            " What it sends through `notify` ({}) is enqueued in the same transaction and sent once it commits.",
            names.join(", ")
        )
    };
    let mut items = Vec::new();
    for consumed in &consumer.events {
        let event = consumed.event;
        let payload = format_ident!("{}", event);
        items.push(payload_type(krate, consumed));
        items.push(Required {
            name: consumed.method.clone(),
            shape: Shape::Method(quote! {
                (
                    &self,
                    uow: &mut #krate::UnitOfWork,
                    event: Self::#payload
                    #notify
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<(), #krate::BoxError>,
                > + ::core::marker::Send
            }),
            doc: format!(
                "Handles one `{event}`: its changes (through `uow.conn()`), the events it publishes and the inbox row that marks it handled commit together.{sends} An `Err` or a panic is retried with backoff, then parked as a dead letter."
            ),
        });
    }
    Obligation {
        name: "Consumes".into(),
        doc: format!(
            "The events `{name}` handles, as `{}` declares them in `[services.consumer] events`: per event, its payload type and its handler.",
            args.config
        ),
        message: format!("`{{Self}}` is the consumer `{name}`, so it must implement `Consumes`"),
        label: "this consumer does not say how it handles its events",
        items,
    }
}

/// The payload type of a consumed event: an associated type named after it, bound by
/// `allframe::consumer::Payload` (a consumer's handlers, a cache's invalidations).
pub(super) fn payload_type(krate: &syn::Path, consumed: &ConsumedPlan<'_>) -> Required {
    let event = consumed.event;
    let from = if consumed.is_external() {
        "published outside this architecture".to_owned()
    } else {
        format!("published by {}", consumed.producers.join(", "))
    };
    Required {
        name: event.to_owned(),
        shape: Shape::Type(quote!(#krate::consumer::Payload)),
        doc: format!("The payload of `{event}` ({from}): its type in the event-types crate."),
    }
}

/// A constant check failing the build with `message` when the `Event::TYPE` of the payload
/// type `<ident as obligation>::<event>` is not `event`, spanned at the user's struct.
pub(super) fn payload_check(
    krate: &syn::Path,
    ident: &syn::Ident,
    obligation: &str,
    event: &str,
    message: &str,
) -> TokenStream {
    let span = ident.span();
    let obligation = format_ident!("{}", obligation, span = span);
    let payload = format_ident!("{}", event, span = span);
    quote_spanned! {span=>
        const _: () = {
            if !#krate::__private::str_eq(<<#ident as #obligation>::#payload as #krate::Event>::TYPE, #event) {
                ::core::panic!(#message);
            }
        };
    }
}

/// The channel traits of `channels`, e.g. `allframe::channel::SendEmail`.
fn channel_traits(krate: &syn::Path, channels: &[Channel]) -> Vec<TokenStream> {
    channels
        .iter()
        .map(|&channel| {
            let ident = format_ident!("{}", ChannelApi::of(channel).send_trait);
            quote!(#krate::channel::#ident)
        })
        .collect()
}

/// The handlers' view of the channels the file declares: `, notify: &mut dyn SendEmail` for
/// one, `, notify: &mut dyn Channels` for several (see [`channels_trait`]); nothing without.
fn channels_parameter(krate: &syn::Path, channels: &[Channel]) -> TokenStream {
    match channel_traits(krate, channels).as_slice() {
        [] => TokenStream::new(),
        [one] => quote!(, notify: &mut dyn #one),
        _ => quote!(, notify: &mut dyn Channels),
    }
}

/// `Channels`, declared beside the user's struct when the file gives the consumer several
/// channels: one trait object for all of them.
fn channels_trait(
    krate: &syn::Path,
    vis: &syn::Visibility,
    name: &str,
    channels: &[Channel],
) -> TokenStream {
    if channels.len() < 2 {
        return TokenStream::new();
    }
    let traits = channel_traits(krate, channels);
    let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    let doc = format!(
        "The channels `{name}` sends notifications through, as `[services.consumer] channels` declares them: {}. Each handler gets them as `notify`.",
        names.join(", ")
    );
    quote! {
        #[doc = #doc]
        #vis trait Channels: #(#traits)+* {}

        impl<T: ?::core::marker::Sized #(+ #traits)*> Channels for T {}
    }
}
