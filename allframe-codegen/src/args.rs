//! The attribute's arguments: `config = "…"`, `name = "…"`, optional `crate = "…"`.
//! Unknown keys are errors that list the accepted ones and suggest the nearest.

use darling::FromMeta;
use darling::ast::NestedMeta;
use darling::util::SpannedValue;
use proc_macro2::{Span, TokenStream};

#[derive(FromMeta)]
struct RawArgs {
    config: SpannedValue<String>,
    name: SpannedValue<String>,
    #[darling(rename = "crate")]
    krate: Option<syn::Path>,
}

/// Parsed arguments of `#[allframe::service(...)]`.
#[derive(Debug, Clone)]
pub struct ServiceArgs {
    /// The architecture file, relative to the crate's manifest directory.
    pub config: String,
    /// Where `config` was written.
    pub config_span: Span,
    /// The service's name.
    pub name: String,
    /// Where `name` was written.
    pub name_span: Span,
    /// The runtime crate's path (default `::allframe`).
    pub krate: syn::Path,
}

impl ServiceArgs {
    /// Parses the attribute's tokens.
    pub fn parse(attr: TokenStream) -> Result<Self, syn::Error> {
        let list = NestedMeta::parse_meta_list(attr)?;
        let raw = RawArgs::from_list(&list).map_err(syn::Error::from)?;
        Ok(Self {
            config_span: raw.config.span(),
            config: raw.config.as_ref().clone(),
            name_span: raw.name.span(),
            name: raw.name.as_ref().clone(),
            krate: raw.krate.unwrap_or_else(|| syn::parse_quote!(::allframe)),
        })
    }
}
