//! The `stateless` archetype: a REST server (and gRPC when declared) over the user's routes,
//! health endpoints, telemetry, the embedded or configured database, graceful shutdown.
//!
//! Its obligations are the launcher's trait bounds, pointed at the user's struct:
//! `allframe::Service` (start-up), `allframe::RestApi` (routes), and `allframe::GrpcApi` when
//! the file lists `grpc` in `protocols`. It adds no items of its own.

use proc_macro2::TokenStream;

use crate::load::Loaded;
use crate::plan::ServicePlan;
use crate::{Env, ServiceArgs, emit};

pub(crate) fn expand(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
) -> Result<TokenStream, syn::Error> {
    emit::not_generic(item)?;
    emit::service(args, item, loaded, plan, env, TokenStream::new())
}
