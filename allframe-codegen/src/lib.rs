//! **Semver exempt.** The expansion of `#[allframe::service]` as a normal library: an
//! architecture model plus a service name in, Rust tokens out. The proc-macro crate is a thin
//! shell over [`expand_service`], so every behaviour here is tested with plain `cargo test`.
//!
//! Stages, one module each: [`args`] (the attribute) → [`load`] (find, read, check and cache
//! the file) → an archetype module (`stateless`) → `fallback` (errors plus a skeleton, so one
//! mistake does not cascade). Generated code reaches the runtime only through
//! `<crate>::__private`.

pub mod args;
mod fallback;
pub mod load;
mod migrations;
mod patterns;
mod settings;
mod stateless;

use std::path::PathBuf;

use proc_macro2::TokenStream;

pub use args::ServiceArgs;

/// What the expansion needs from the compiler's environment.
#[derive(Debug, Clone)]
pub struct Env {
    /// The directory of the crate being compiled (`CARGO_MANIFEST_DIR`).
    pub manifest_dir: PathBuf,
    /// Print the expansion to stderr (`ALLFRAME_MACROS_DEBUG`).
    pub debug: bool,
}

impl Env {
    /// Reads the environment of the current compilation.
    pub fn from_process() -> Self {
        Self {
            manifest_dir: std::env::var_os("CARGO_MANIFEST_DIR")
                .map(PathBuf::from)
                .unwrap_or_default(),
            debug: std::env::var_os("ALLFRAME_MACROS_DEBUG").is_some_and(|v| v != "0"),
        }
    }
}

/// Expands `#[allframe::service(attr)] item`. Never panics: every problem becomes a spanned
/// `compile_error!` next to a skeleton of the item.
pub fn expand_service(attr: TokenStream, item: TokenStream, env: &Env) -> TokenStream {
    let tokens = match try_expand(attr, item.clone(), env) {
        Ok(tokens) => tokens,
        Err(errors) => fallback::skeleton(item, errors),
    };
    if env.debug {
        eprintln!("{}", pretty(&tokens));
    }
    tokens
}

fn try_expand(attr: TokenStream, item: TokenStream, env: &Env) -> Result<TokenStream, syn::Error> {
    let args = ServiceArgs::parse(attr)?;
    let item: syn::ItemStruct = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[allframe::service] goes on a struct: the service's own state, e.g. `pub struct UserService;`",
        )
    })?;
    let loaded = load::load(&args, env)?;
    let service = loaded.service(&args)?;
    match service.kind() {
        allframe_config::model::ServiceType::Stateless => {
            stateless::expand(&args, &item, &loaded, service, env)
        }
        other => Err(syn::Error::new(
            args.name_span,
            format!(
                "service `{}` is of type `{other}`, and this version of allframe implements only the `stateless` archetype; \
                 `{other}` services cannot be compiled yet",
                args.name
            ),
        )),
    }
}

/// Formats tokens as Rust source (for debugging and tests); falls back to the raw tokens.
pub fn pretty(tokens: &TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}
