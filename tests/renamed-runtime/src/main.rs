//! A service built against the runtime under another name: `runtime = { package =
//! "allframe-runtime" }` in Cargo.toml and `crate = "::runtime"` in the attribute. `cargo test`
//! builds this crate, so the override is checked by the compiler on every run.

#[runtime::service(
    config = "../../examples/quickstart/architecture.toml",
    name = "telemetry-service",
    crate = "::runtime"
)]
pub struct TelemetryService;

impl runtime::Service for TelemetryService {
    async fn init(_cx: &runtime::Ctx) -> Result<Self, runtime::BoxError> {
        Ok(Self)
    }
}

impl runtime::RestApi for TelemetryService {
    fn routes() -> runtime::Router<Self> {
        runtime::Router::new()
    }
}
