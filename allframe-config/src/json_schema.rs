//! The JSON Schema of `architecture.toml`, generated from the model's types.
//!
//! Editors use it for completion and checks (Taplo / Even Better TOML read `#:schema` comments);
//! [`crate::parse`] walks the same schema to report unknown keys, wrong types and words outside
//! an enum, all at once, before serde sees the file.

use std::sync::OnceLock;

use crate::model::ArchitectureFile;

/// The schema as a JSON value.
pub fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(ArchitectureFile).to_value())
}

/// The schema, pretty-printed.
pub fn to_pretty_string() -> String {
    // A `serde_json::Value` always serializes.
    serde_json::to_string_pretty(schema()).unwrap_or_default()
}
