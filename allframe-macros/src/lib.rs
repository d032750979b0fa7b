//! The proc-macro crate behind `#[allframe::service]` and `#[derive(allframe::AggregateEvent)]`.
//! **Semver exempt**: use them through `allframe-runtime`, which re-exports them and pins this
//! crate's exact version.
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

/// Implements `allframe::eventstore::AggregateEvent` for an aggregate's events: an enum with
/// one tuple variant per event type, each holding a type that implements
/// `allframe::messaging::Event` and `serde::Deserialize`.
///
/// ```ignore
/// #[derive(Debug, Clone, allframe::AggregateEvent)]
/// pub enum AccountEvent {
///     Opened(shop_events::AccountOpened),
///     Renamed(shop_events::AccountRenamed),
/// }
/// ```
///
/// Each variant is stored under its type's `Event::TYPE` at `Event::VERSION`, and a payload
/// written at an older version is carried forward by `Event::upcast` when it is read. Two
/// variants holding events of the same `TYPE` fail the build.
///
/// - `#[allframe(crate = path)]` (optional, on the enum): the path of the runtime crate when it
///   is not named `allframe`.
#[proc_macro_derive(AggregateEvent, attributes(allframe))]
pub fn derive_aggregate_event(input: TokenStream) -> TokenStream {
    allframe_codegen::expand_aggregate_event(input.into()).into()
}
