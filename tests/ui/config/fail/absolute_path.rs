// Absolute paths are refused so the crate builds on every machine.
#[allframe::service(config = "/etc/architecture.toml", name = "api")]
pub struct Api;
