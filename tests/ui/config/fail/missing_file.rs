// A config path that does not exist says where it was looked for.
#[allframe::service(config = "nowhere/architecture.toml", name = "api")]
pub struct Api;
