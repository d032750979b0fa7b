// A name the file does not declare suggests the nearest service.
#[allframe::service(config = "architecture.toml", name = "rest-onyl")]
pub struct RestOnly;
