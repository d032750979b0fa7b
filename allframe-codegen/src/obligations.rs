//! The obligations stage: what the file declares that the user must write, as traits declared
//! beside the user's struct. Each archetype module says which trait and which items (one per
//! thing the file declares: an ingested entity's input type today; a consumed event's
//! handler, a saga step, a job to come); this module spells the trait so that the compiler
//! reports what is missing the way a user reads best:
//!
//! - a missing item is the compiler's own E0046 naming it, at the user's `impl`;
//! - no `impl` at all is the trait's `on_unimplemented` at the struct, with a note listing
//!   every item to write.

use std::borrow::Cow;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};

/// A trait the file makes the user implement.
pub(crate) struct Obligation {
    /// The trait's name, e.g. `Produces` (or the saga's name, from the file).
    pub(crate) name: Cow<'static, str>,
    /// Its doc comment: what it is and which part of the file it comes from.
    pub(crate) doc: String,
    /// `on_unimplemented` message, with `{Self}`.
    pub(crate) message: String,
    /// `on_unimplemented` label at the struct.
    pub(crate) label: &'static str,
    /// The items, in the file's order.
    pub(crate) items: Vec<Required>,
}

/// One item of an [`Obligation`].
pub(crate) struct Required {
    /// The item's name as the file spells it (a checked identifier).
    pub(crate) name: String,
    /// What kind of item it is.
    pub(crate) shape: Shape,
    /// Its doc comment.
    pub(crate) doc: String,
}

/// The kind of a [`Required`] item.
pub(crate) enum Shape {
    /// An associated type with this bound, e.g. `allframe::producer::Ingest`.
    Type(TokenStream),
    /// A method with this signature after its name: `(&self, …) -> impl Future<…> + Send`.
    /// The user writes it as an `async fn`.
    Method(TokenStream),
}

impl Obligation {
    /// The note of the trait's `on_unimplemented`: the impl to add, every item named.
    fn note(&self) -> String {
        let items: Vec<String> = self
            .items
            .iter()
            .map(|item| match item.shape {
                Shape::Type(_) => format!("type {} = …;", item.name),
                Shape::Method(_) => format!("async fn {}(…) {{{{ … }}}}", item.name),
            })
            .collect();
        format!(
            "add `impl {} for {{Self}} {{{{ {} }}}}`",
            self.name,
            items.join(" ")
        )
    }

    /// The trait's declaration, visible as `vis`, its items spanned at `span` (the user's
    /// struct) so that errors about them point there.
    pub(crate) fn declare(&self, vis: &syn::Visibility, span: Span) -> TokenStream {
        let name = format_ident!("{}", self.name);
        let (doc, message, label, note) = (&self.doc, &self.message, self.label, self.note());
        let items = self.items.iter().map(|item| {
            let ident = format_ident!("{}", item.name, span = span);
            let doc = &item.doc;
            match &item.shape {
                Shape::Type(bound) => quote! {
                    #[doc = #doc]
                    type #ident: #bound;
                },
                Shape::Method(signature) => quote! {
                    #[doc = #doc]
                    fn #ident #signature;
                },
            }
        });
        quote! {
            #[doc = #doc]
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            #vis trait #name {
                #(#items)*
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_every_item_to_write() {
        let obligation = Obligation {
            name: "Produces".into(),
            doc: String::new(),
            message: String::new(),
            label: "",
            items: ["PositionReport", "Alert"]
                .into_iter()
                .map(|name| Required {
                    name: name.to_owned(),
                    shape: Shape::Type(quote!(Ingest)),
                    doc: String::new(),
                })
                .collect(),
        };
        assert_eq!(
            obligation.note(),
            "add `impl Produces for {Self} {{ type PositionReport = …; type Alert = …; }}`"
        );
    }
}
