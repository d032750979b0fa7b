//! What the macro emits when something is wrong: every error as a spanned `compile_error!`, the
//! user's item unchanged, and an empty `main`, so one mistake yields its own message and not a
//! cascade of "main not found" or "type not found" errors.

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn skeleton(item: TokenStream, errors: syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    quote! {
        #errors
        #item
        fn main() {}
    }
}
