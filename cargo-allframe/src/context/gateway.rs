//! A `gateway`'s context: the providers it calls, one entry per name in `providers`.

use allframe_codegen::plan::ServicePlan;
use serde::Serialize;

/// What a `gateway` crate's templates see besides the service (at their top level).
#[derive(Debug, Clone, Serialize)]
pub struct GatewayContext {
    /// The request header whose idempotency key is forwarded: the service's
    /// `[services.idempotency] key_header`, else `Idempotency-Key`.
    pub key_header: String,
    /// One per provider, in the file's order.
    pub providers: Vec<ProviderContext>,
}

/// One provider a `gateway` (or a saga orchestrator's step) calls.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderContext {
    /// The name as written, `legacy-erp`.
    pub name: String,
    /// The client type, `LegacyErp` (the `Integrations` associated type).
    pub client: String,
    /// The accessor the macro derives, `legacy_erp`.
    pub method: String,
    /// The gateway's route forwarding to it, `/legacy-erp/calls`.
    pub path: String,
    /// Its base URL's variable, `LEGACY_ERP_URL`.
    pub url_var: String,
}

impl ProviderContext {
    /// The providers of `[services.integrations]` of the service `plan` is about, in order.
    pub fn all(plan: &ServicePlan<'_>) -> Vec<Self> {
        plan.providers
            .iter()
            .map(|provider| ProviderContext {
                name: provider.name.to_owned(),
                client: provider.client.clone(),
                method: provider.method.clone(),
                path: format!("/{}/calls", provider.method.replace('_', "-")),
                url_var: allframe_env::provider_url(provider.name),
            })
            .collect()
    }
}

impl GatewayContext {
    /// The context of the `gateway` `plan` is about.
    pub fn new(plan: &ServicePlan<'_>) -> Self {
        let providers = ProviderContext::all(plan);
        let key_header = plan
            .idempotency
            .map_or("Idempotency-Key", |policy| policy.key_header.as_str())
            .to_owned();
        Self {
            key_header,
            providers,
        }
    }
}
