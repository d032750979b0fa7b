//! The proc-macro crate behind `#[allframe::service]`. **Semver exempt**: use it through
//! `allframe-runtime`, which re-exports the attribute and pins this crate's exact version.
//! All logic lives in `allframe-codegen`, where it is unit-tested in-process.

use proc_macro::TokenStream;

/// Derives a service's `main` and pattern wiring from `architecture.toml`.
///
/// ```ignore
/// #[allframe::service(config = "../../architecture.toml", name = "user-service")]
/// pub struct UserService;
/// ```
///
/// - `config`: the architecture file, relative to the crate's `Cargo.toml`.
/// - `name`: the service's name in `[[services]]`.
/// - `crate` (optional): the path of the runtime crate when it is not named `allframe`.
///
/// Set `ALLFRAME_MACROS_DEBUG=1` to print the expansion while compiling.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    allframe_codegen::expand_service(
        attr.into(),
        item.into(),
        &allframe_codegen::Env::from_process(),
    )
    .into()
}
