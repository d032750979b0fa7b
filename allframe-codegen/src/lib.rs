//! **Semver exempt.** The expansion of `#[allframe::service]` as a normal library: an
//! architecture model plus a service name in, Rust tokens out. The proc-macro crate is a thin
//! shell over [`expand_service`], so every behaviour here is tested with plain `cargo test`.
//!
//! Stages, one module each: [`args`] (the attribute) → [`load`] (find, read, check and cache
//! the file) → [`plan`] (the decisions about the crate, as data, shared with ignite) → an
//! archetype module (`archetype`: one per generated type) emitting launcher calls through
//! `patterns` → `fallback`
//! (errors plus a skeleton, so one mistake does not cascade). Generated code reaches the runtime only through
//! `<crate>::__private`.
//!
//! [`expand_aggregate_event`] is `#[derive(allframe::AggregateEvent)]` (module `derive_event`).

mod archetype;
pub mod args;
mod derive_event;
mod emit;
mod fallback;
pub mod load;
mod migrations;
mod obligations;
mod patterns;
pub mod plan;
mod settings;

use std::path::PathBuf;

use proc_macro2::TokenStream;

pub use args::ServiceArgs;
pub use derive_event::expand_aggregate_event;

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
    let plan = plan::plan(&loaded.architecture, service).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| syn::Error::new(args.name_span, e.message))
            .reduce(|mut all, next| {
                all.combine(next);
                all
            })
            .unwrap_or_else(|| syn::Error::new(args.name_span, "the service cannot be planned"))
    })?;
    archetype::expand(&args, &item, &loaded, &plan, env)
}

/// Formats tokens as Rust source (for debugging and tests); falls back to the raw tokens.
pub fn pretty(tokens: &TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}
