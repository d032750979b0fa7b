// `name` is required.
#[allframe::service(config = "architecture.toml")]
pub struct RestOnly;
