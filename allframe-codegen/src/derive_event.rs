//! `#[derive(allframe::AggregateEvent)]`: an aggregate's events as an enum with one variant per
//! shared event type (`Opened(AccountOpened)`), each variant's stored type name, schema
//! version and upcasting taken from its type's `allframe::messaging::Event` impl.
//!
//! The expansion is one `impl <crate>::eventstore::AggregateEvent` whose methods match on the
//! variants (by `Event::TYPE` when reading), plus, for two variants or more, a constant that
//! fails the build when two variants hold events of the same `Event::TYPE`. serde and
//! serde_json are reached through `<crate>::__private`, so the user's crate needs neither.

use darling::FromAttributes;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;

/// What every variant must look like, repeated in each refusal of a variant.
const ONE_EVENT_PER_VARIANT: &str =
    "each variant of an aggregate's events holds one event type: `Opened(AccountOpened)`";

/// The container attribute: `#[allframe(crate = path)]`.
#[derive(FromAttributes)]
#[darling(attributes(allframe))]
struct ContainerOptions {
    /// The runtime crate's path when it is not `::allframe`.
    #[darling(rename = "crate")]
    krate: Option<syn::Path>,
}

/// One variant: its name and the event type it holds.
struct EventVariant {
    name: syn::Ident,
    event: syn::Type,
}

/// The checked input: a non-generic enum whose variants each hold one event type.
struct AggregateEvents {
    name: syn::Ident,
    krate: syn::Path,
    variants: Vec<EventVariant>,
}

/// Expands `#[derive(AggregateEvent)]` on `input`. Never panics: a refused input becomes
/// spanned `compile_error!`s.
pub fn expand_aggregate_event(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    match check(&input) {
        Ok(events) => implement(&events),
        Err(error) => error.to_compile_error(),
    }
}

/// The input as [`AggregateEvents`], or every reason it is refused.
fn check(input: &syn::DeriveInput) -> Result<AggregateEvents, syn::Error> {
    let mut errors = Errors::default();
    let krate = match ContainerOptions::from_attributes(&input.attrs) {
        Ok(options) => options.krate,
        Err(error) => {
            errors.push(error.into());
            None
        }
    };
    let generics = &input.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            generics,
            "an aggregate's events are an enum without generics or lifetimes: each variant holds \
             one concrete event type, e.g. `Opened(AccountOpened)`",
        ));
    }
    let data = match &input.data {
        syn::Data::Enum(data) => data,
        syn::Data::Struct(syn::DataStruct { struct_token, .. }) => {
            return Err(errors.with(not_an_enum(struct_token.span)));
        }
        syn::Data::Union(syn::DataUnion { union_token, .. }) => {
            return Err(errors.with(not_an_enum(union_token.span)));
        }
    };
    if data.variants.is_empty() {
        errors.push(syn::Error::new(
            input.ident.span(),
            format!(
                "`{}` has no variant: an aggregate's events are an enum with one variant per \
                 event type, e.g. `Opened(AccountOpened)`",
                input.ident.unraw()
            ),
        ));
    }
    let mut variants = Vec::with_capacity(data.variants.len());
    for variant in &data.variants {
        match event_variant(variant) {
            Ok(checked) => variants.push(checked),
            Err(error) => errors.push(error),
        }
    }
    errors.finish()?;
    Ok(AggregateEvents {
        name: input.ident.clone(),
        krate: krate.unwrap_or_else(|| syn::parse_quote!(::allframe)),
        variants,
    })
}

/// `variant` as the event type it holds, or why it holds none.
fn event_variant(variant: &syn::Variant) -> Result<EventVariant, syn::Error> {
    let mut errors = Errors::default();
    let field_attrs = variant.fields.iter().flat_map(|field| &field.attrs);
    for attr in variant.attrs.iter().chain(field_attrs) {
        if attr.path().is_ident("allframe") {
            errors.push(syn::Error::new_spanned(
                attr,
                "`#[allframe(..)]` goes on the enum (`#[allframe(crate = path)]`), not on a \
                 variant or its field",
            ));
        }
    }
    let name = variant.ident.unraw();
    let wrong_shape = |span: Span, shape: String| {
        syn::Error::new(span, format!("`{name}` {shape}: {ONE_EVENT_PER_VARIANT}"))
    };
    let event = match &variant.fields {
        syn::Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
            Ok(fields.unnamed[0].ty.clone())
        }
        syn::Fields::Unnamed(fields) => Err(wrong_shape(
            fields.paren_token.span.join(),
            format!("holds {} fields", fields.unnamed.len()),
        )),
        syn::Fields::Named(fields) => Err(wrong_shape(
            fields.brace_token.span.join(),
            "has named fields".to_owned(),
        )),
        syn::Fields::Unit => Err(wrong_shape(
            variant.ident.span(),
            "holds no event".to_owned(),
        )),
    };
    match event {
        Ok(event) => errors.finish().map(|()| EventVariant {
            name: variant.ident.clone(),
            event,
        }),
        Err(error) => Err(errors.with(error)),
    }
}

/// The refusal of a struct or union.
fn not_an_enum(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "#[derive(AggregateEvent)] goes on an enum with one variant per event type, e.g. \
         `enum AccountEvent { Opened(AccountOpened), Renamed(AccountRenamed) }`",
    )
}

/// The errors found so far, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// All errors so far, then `error`.
    fn with(self, error: syn::Error) -> syn::Error {
        match self.0 {
            Some(mut all) => {
                all.combine(error);
                all
            }
            None => error,
        }
    }

    fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The impl of `AggregateEvent` for the checked enum, and the check that no two variants
/// hold the same event type.
fn implement(events: &AggregateEvents) -> TokenStream {
    let AggregateEvents {
        name,
        krate,
        variants,
    } = events;
    let json = quote!(#krate::__private::serde_json);
    let upcast_error = quote!(#krate::messaging::UpcastError);
    let option = quote!(::core::option::Option);
    let result = quote!(::core::result::Result);
    let str_type = quote!(::core::primitive::str);
    let u32_type = quote!(::core::primitive::u32);

    // `<AccountOpened as ::allframe::messaging::Event>`, spanned at the variant's type so that
    // a type that is not an event is reported there.
    let as_event: Vec<TokenStream> = variants
        .iter()
        .map(|variant| {
            let event = &variant.event;
            quote_spanned!(event.span()=> <#event as #krate::messaging::Event>)
        })
        .collect();
    let variant_names: Vec<&syn::Ident> = variants.iter().map(|variant| &variant.name).collect();
    let event_types: Vec<&syn::Type> = variants.iter().map(|variant| &variant.event).collect();

    let unknown_type = format!(
        "`{}` has no event type `{{event_type}}`; it knows `{{known}}`",
        name.unraw()
    );
    let distinct_types = distinct_types_check(events, &as_event);

    quote! {
        #[automatically_derived]
        impl #krate::eventstore::AggregateEvent for #name {
            fn event_type(&self) -> &'static #str_type {
                match self {
                    #( Self::#variant_names(_) => #as_event::TYPE, )*
                }
            }

            fn schema_version(event_type: &#str_type) -> #option<#u32_type> {
                match event_type {
                    #( #as_event::TYPE => #option::Some(#as_event::VERSION), )*
                    _ => #option::None,
                }
            }

            fn to_payload(&self) -> #result<#json::Value, #json::Error> {
                match self {
                    #( Self::#variant_names(event) => #json::to_value(event), )*
                }
            }

            fn decode(
                event_type: &#str_type,
                payload: #json::Value,
            ) -> #result<Self, #json::Error> {
                match event_type {
                    #(
                        #as_event::TYPE => {
                            #json::from_value::<#event_types>(payload).map(Self::#variant_names)
                        }
                    )*
                    _ => {
                        let known = [#( #as_event::TYPE ),*].join("`, `");
                        #result::Err(<#json::Error as #krate::__private::serde::de::Error>::custom(
                            ::core::format_args!(#unknown_type),
                        ))
                    }
                }
            }

            fn upcast(
                event_type: &#str_type,
                from: #u32_type,
                payload: #json::Value,
            ) -> #result<#json::Value, #upcast_error> {
                match event_type {
                    #( #as_event::TYPE => #as_event::upcast(from, payload), )*
                    _ => #result::Err(#upcast_error::Missing {
                        event_type: ::std::string::String::from(event_type),
                        from,
                    }),
                }
            }
        }

        #distinct_types
    }
}

/// For two variants or more, a constant whose evaluation fails the build when two of them
/// hold events of the same `Event::TYPE` (the second would never be read back).
fn distinct_types_check(events: &AggregateEvents, as_event: &[TokenStream]) -> TokenStream {
    let AggregateEvents {
        name,
        krate,
        variants,
    } = events;
    let mut assertions = Vec::new();
    for (first_index, first) in variants.iter().enumerate() {
        for (second_index, second) in variants.iter().enumerate().skip(first_index + 1) {
            let message = format!(
                "`{name}::{}` and `{name}::{}` hold events of the same type (`Event::TYPE`): \
                 each event type belongs to one variant",
                first.name.unraw(),
                second.name.unraw(),
                name = name.unraw(),
            );
            let (first_event, second_event) = (&as_event[first_index], &as_event[second_index]);
            assertions.push(quote! {
                if #krate::__private::str_eq(#first_event::TYPE, #second_event::TYPE) {
                    ::core::panic!(#message);
                }
            });
        }
    }
    if assertions.is_empty() {
        return TokenStream::new();
    }
    quote! {
        const _: () = {
            #( #assertions )*
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: TokenStream) -> syn::DeriveInput {
        syn::parse2(tokens).expect("a type definition")
    }

    /// The messages of every error `input` is refused with.
    fn refusals(input: TokenStream) -> Vec<String> {
        match check(&parse(input)) {
            Ok(_) => panic!("the input was accepted"),
            Err(error) => error.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    fn expanded(input: TokenStream) -> String {
        crate::pretty(&expand_aggregate_event(input))
    }

    #[test]
    fn a_struct_is_refused() {
        assert_eq!(
            refusals(quote!(
                struct AccountEvent(AccountOpened);
            )),
            [
                "#[derive(AggregateEvent)] goes on an enum with one variant per event type, e.g. \
              `enum AccountEvent { Opened(AccountOpened), Renamed(AccountRenamed) }`"
            ]
        );
    }

    #[test]
    fn a_unit_variant_is_refused() {
        assert_eq!(
            refusals(quote!(
                enum AccountEvent {
                    Opened(AccountOpened),
                    Closed,
                }
            )),
            [format!("`Closed` holds no event: {ONE_EVENT_PER_VARIANT}")]
        );
    }

    #[test]
    fn a_variant_of_two_fields_or_named_fields_is_refused() {
        assert_eq!(
            refusals(quote!(
                enum AccountEvent {
                    Moved(AccountMoved, Extra),
                    Renamed { event: AccountRenamed },
                }
            )),
            [
                format!("`Moved` holds 2 fields: {ONE_EVENT_PER_VARIANT}"),
                format!("`Renamed` has named fields: {ONE_EVENT_PER_VARIANT}"),
            ]
        );
    }

    #[test]
    fn generics_and_empty_enums_are_refused() {
        assert_eq!(
            refusals(quote!(
                enum AccountEvent<E> {
                    Opened(E),
                }
            )),
            [
                "an aggregate's events are an enum without generics or lifetimes: each variant \
              holds one concrete event type, e.g. `Opened(AccountOpened)`"
            ]
        );
        assert_eq!(
            refusals(quote!(
                enum AccountEvent {}
            )),
            [
                "`AccountEvent` has no variant: an aggregate's events are an enum with one variant \
              per event type, e.g. `Opened(AccountOpened)`"
            ]
        );
    }

    #[test]
    fn allframe_attributes_are_checked() {
        let unknown = refusals(quote!(
            #[allframe(krate = my_runtime)]
            enum AccountEvent {
                Opened(AccountOpened),
            }
        ));
        assert!(unknown[0].contains("Unknown field: `krate`"), "{unknown:?}");
        assert_eq!(
            refusals(quote!(
                enum AccountEvent {
                    #[allframe(crate = my_runtime)]
                    Opened(AccountOpened),
                }
            )),
            [
                "`#[allframe(..)]` goes on the enum (`#[allframe(crate = path)]`), not on a variant \
              or its field"
            ]
        );
    }

    #[test]
    fn a_refusal_is_a_compile_error_and_nothing_else() {
        let tokens = expand_aggregate_event(quote!(
            enum AccountEvent {
                Closed,
            }
        ))
        .to_string();
        assert!(tokens.contains("compile_error"), "{tokens}");
        assert!(!tokens.contains("impl"), "{tokens}");
        let not_a_type = expand_aggregate_event(quote!(
            fn opened() {}
        ))
        .to_string();
        assert!(not_a_type.contains("compile_error"), "{not_a_type}");
    }

    #[test]
    fn each_variant_reads_and_writes_its_event_type() {
        let code = expanded(quote!(
            enum AccountEvent {
                Opened(shop_events::AccountOpened),
                Renamed(shop_events::AccountRenamed),
            }
        ));
        for expected in [
            "impl ::allframe::eventstore::AggregateEvent for AccountEvent",
            "Self::Opened(_) => {\n                <shop_events::AccountOpened as ::allframe::messaging::Event>::TYPE\n",
            "<shop_events::AccountRenamed as ::allframe::messaging::Event>::TYPE => {\n",
            "Some(\n                    <shop_events::AccountRenamed as ::allframe::messaging::Event>::VERSION,",
            "shop_events::AccountRenamed,\n                >(payload)\n                    .map(Self::Renamed)",
            "<shop_events::AccountOpened as ::allframe::messaging::Event>::upcast(\n",
            "\"`AccountEvent` has no event type `{event_type}`; it knows `{known}`\"",
            "UpcastError::Missing {\n",
            "if ::allframe::__private::str_eq(",
            "\"`AccountEvent::Opened` and `AccountEvent::Renamed` hold events of the same type",
        ] {
            assert!(code.contains(expected), "no {expected:?} in\n{code}");
        }
    }

    #[test]
    fn the_runtime_crate_can_be_renamed() {
        let code = expanded(quote!(
            #[allframe(crate = my_runtime)]
            enum AccountEvent {
                Opened(AccountOpened),
            }
        ));
        assert!(
            code.contains("impl my_runtime::eventstore::AggregateEvent for AccountEvent"),
            "{code}"
        );
        assert!(!code.contains("::allframe"), "{code}");
        assert!(
            !code.contains("str_eq"),
            "one variant needs no check: {code}"
        );
    }
}
