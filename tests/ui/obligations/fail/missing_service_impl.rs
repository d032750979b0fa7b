// The start-up obligation: `allframe::Service`.
#[allframe::service(config = "architecture.toml", name = "rest-only")]
pub struct RestOnly;
