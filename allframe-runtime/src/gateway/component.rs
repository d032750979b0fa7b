//! The gateway component: at start-up, one [`Provider`] per provider of the file, each at its
//! `<NAME>_URL` with the service's resilience, its breaker exported with the service's
//! metrics; left in the context as [`Providers`], from which handlers take their typed
//! [`Client`]s.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Provider, ProviderSettings};
use axum::http::StatusCode;

use crate::BoxError;
use crate::component::{BoxFuture, Component, Startup};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::resilience::ResilienceMetrics;

/// What `[services.integrations]` declares, as the macro bakes it in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatewaySettings {
    /// One entry per name in `providers`, in the file's order.
    pub providers: &'static [ProviderSettings],
}

/// A provider's client type, written by the user (the scaffold writes one per provider over
/// HTTP): built from the [`Provider`] the runtime configured, which carries the breaker, the
/// retry policy and the timeout.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a provider client, so it must implement `allframe::gateway::Client`",
    label = "not a provider client",
    note = "add `impl allframe::gateway::Client for {Self} {{ fn new(provider: allframe::gateway::Provider) -> Self {{ … }} }}`"
)]
pub trait Client: Send + Sync + 'static {
    /// The client calling through `provider`.
    fn new(provider: Provider) -> Self;
}

/// The service's providers by name, in the context: `cx.get::<Providers>()`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    by_name: Arc<BTreeMap<&'static str, Provider>>,
}

impl Providers {
    /// The provider named `name` in the file.
    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.by_name.get(name)
    }

    /// The client of type `C` over the provider named `name`.
    pub fn client<C: Client>(&self, name: &str) -> Option<C> {
        self.get(name).cloned().map(C::new)
    }

    /// The providers' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

/// The client `C` of the provider `name`, from the context of a running gateway: what the
/// accessors `#[allframe::service]` derives on a gateway's struct return (`Payments::stripe(&cx)?`).
pub fn client<C: Client>(cx: &Ctx, name: &str) -> Result<C, ApiError> {
    cx.get::<Providers>()
        .and_then(|providers| providers.client(name))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "provider `{name}` has no client: the service was not started as a gateway"
                ),
            )
        })
}

/// Builds the providers at start-up (a missing or invalid `<NAME>_URL` fails it, naming the
/// variable).
#[derive(Debug)]
pub(crate) struct GatewayComponent {
    pub(crate) settings: GatewaySettings,
}

impl Component for GatewayComponent {
    fn name(&self) -> &'static str {
        "gateway"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let metrics = startup.get::<ResilienceMetrics>().cloned();
            let mut by_name = BTreeMap::new();
            for settings in self.settings.providers {
                let provider = Provider::from_env(*settings, startup.env(), metrics.as_ref())?;
                tracing::info!(provider = settings.name, "provider client ready");
                by_name.insert(settings.name, provider);
            }
            startup.insert(Providers {
                by_name: Arc::new(by_name),
            });
            Ok(())
        })
    }
}
