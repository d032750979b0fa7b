// An archetype this version does not implement is a plain error at the attribute.
#[allframe::service(config = "architecture.toml", name = "web")]
pub struct Web;
