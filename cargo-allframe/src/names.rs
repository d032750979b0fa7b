//! Every spelling of a service's and an entity's name that the templates need, derived once
//! from the names in `architecture.toml`. Pure functions; nothing here touches the file system.

use allframe_config::names::{is_keyword, pascal as to_pascal, snake as to_snake};
use serde::Serialize;

use allframe_config::plural;

pub use allframe_config::names::DEFAULT_ENTITY;

/// Keywords that cannot be raw identifiers.
const NOT_RAW: &[&str] = &["crate", "self", "super", "Self"];

/// A name usable as a Rust identifier: keywords become raw identifiers (`r#type`); the few
/// that cannot (`self`, `crate`, …) get a trailing underscore. The checked file names no keyword
/// (`allframe_config::names`); this keeps the spelling total for the default entity.
pub fn rust_ident(name: &str) -> String {
    if NOT_RAW.contains(&name) {
        format!("{name}_")
    } else if is_keyword(name) {
        format!("r#{name}")
    } else {
        name.to_owned()
    }
}

/// The snake_case module name tonic generates for a gRPC service (`UsersServer` lives in
/// `users_server`): a `_` before every uppercase letter that follows another character.
pub fn tonic_snake(name: &str) -> String {
    let mut out = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c.to_ascii_lowercase());
        if chars.peek().is_some_and(|next| next.is_uppercase()) {
            out.push('_');
        }
    }
    out
}

/// The spellings of one entity, e.g. `SensorSummary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntityNames {
    /// The type name, normalised to UpperCamelCase: `SensorSummary` (`APIKey` → `ApiKey`, as
    /// prost would name the protobuf message).
    pub pascal: String,
    /// snake_case: `sensor_summary`.
    pub snake: String,
    /// The module name: `sensor_summary` (a raw identifier for keywords: `r#type`).
    pub module: String,
    /// Lowercase words for prose: `sensor summary`.
    pub words: String,
    /// Plural, snake_case (the table name): `sensor_summaries`.
    pub plural_snake: String,
    /// Plural, kebab-case (the resource path): `sensor-summaries`.
    pub plural_kebab: String,
    /// Plural, PascalCase: `SensorSummaries`.
    pub plural_pascal: String,
    /// The gRPC service name: the plural, or `<Entity>Service` when the plural is the same
    /// word as the singular (`Data`), so the service and the message never share a name.
    pub grpc_service: String,
    /// The module tonic generates for the gRPC server: `sensor_summaries_server`.
    pub grpc_server_module: String,
}

impl EntityNames {
    /// The spellings of `name` (written in PascalCase in the file).
    pub fn new(name: &str) -> Self {
        let pascal = to_pascal(name);
        let snake = to_snake(&pascal);
        let plural_pascal = plural::plural_pascal(&pascal);
        let grpc_service = if plural_pascal == pascal {
            format!("{pascal}Service")
        } else {
            plural_pascal.clone()
        };
        Self {
            module: rust_ident(&snake),
            words: snake.replace('_', " "),
            plural_snake: plural::plural_snake(&pascal),
            plural_kebab: plural::plural_kebab(&pascal),
            grpc_server_module: format!("{}_server", tonic_snake(&grpc_service)),
            grpc_service,
            plural_pascal,
            snake,
            pascal,
        }
    }
}

/// The spellings of the domain event the example code publishes, e.g. `UserCreated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventNames {
    /// The stable type name on the bus (`Event::TYPE`), as written in the file: `UserCreated`.
    pub name: String,
    /// The Rust type, UpperCamelCase: `UserCreated`; `<Name>Event` when that would be the
    /// entity's own type (or its module), or `Self`.
    pub pascal: String,
    /// snake_case (the file name): `user_created`.
    pub snake: String,
    /// The module name: `user_created` (a raw identifier for keywords).
    pub module: String,
}

impl EventNames {
    /// The spellings of the event `name` in the shared event-types crate, where no entity
    /// type is in scope: `name` in UpperCamelCase (`<Name>Event` only for `Self`, `Crate`, …).
    pub fn shared(name: &str) -> Self {
        let mut pascal = to_pascal(name);
        if NOT_RAW.contains(&pascal.as_str()) {
            pascal.push_str("Event");
        }
        let snake = to_snake(&pascal);
        Self {
            name: name.to_owned(),
            module: rust_ident(&snake),
            snake,
            pascal,
        }
    }
}

/// The spellings of a service's name, e.g. `user-service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceNames {
    /// As written: `user-service` (the crate, binary and directory name).
    pub kebab: String,
    /// snake_case: `user_service`.
    pub snake: String,
    /// The type the user's code is attached to: `UserService`.
    pub pascal: String,
    /// The protobuf package: `user_service.v1`.
    pub proto_package: String,
}

impl ServiceNames {
    /// The spellings of `name` (a valid service name: lowercase, digits and `-`).
    pub fn new(name: &str) -> Self {
        let snake = to_snake(name);
        let mut pascal = to_pascal(name);
        if NOT_RAW.contains(&pascal.as_str()) {
            pascal.push_str("Service");
        }
        Self {
            kebab: name.to_owned(),
            proto_package: format!("{snake}.v1"),
            snake,
            pascal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_spellings() {
        let e = EntityNames::new("SensorSummary");
        assert_eq!(e.pascal, "SensorSummary");
        assert_eq!(e.snake, "sensor_summary");
        assert_eq!(e.words, "sensor summary");
        assert_eq!(e.plural_snake, "sensor_summaries");
        assert_eq!(e.plural_kebab, "sensor-summaries");
        assert_eq!(e.grpc_service, "SensorSummaries");
        assert_eq!(e.grpc_server_module, "sensor_summaries_server");
    }

    #[test]
    fn acronyms_keywords_and_uncountables() {
        let e = EntityNames::new("APIKey");
        assert_eq!(e.pascal, "ApiKey");
        assert_eq!(e.plural_kebab, "api-keys");
        let e = EntityNames::new("Type");
        assert_eq!(e.module, "r#type");
        assert_eq!(e.plural_snake, "types");
        let e = EntityNames::new("Data");
        assert_eq!(e.grpc_service, "DataService");
        assert_eq!(e.grpc_server_module, "data_service_server");
    }

    #[test]
    fn event_spellings_in_the_shared_crate() {
        let e = EventNames::shared("UserCreated");
        assert_eq!(
            (e.name.as_str(), e.pascal.as_str()),
            ("UserCreated", "UserCreated")
        );
        assert_eq!(e.module, "user_created");
        // No entity type is in scope there: an event named like one keeps its name.
        assert_eq!(EventNames::shared("User").pascal, "User");
        let e = EventNames::shared("APIKeyIssued");
        assert_eq!(
            (e.name.as_str(), e.pascal.as_str()),
            ("APIKeyIssued", "ApiKeyIssued")
        );
        assert_eq!(EventNames::shared("Self").pascal, "SelfEvent");
        assert_eq!(EventNames::shared("Match").module, "r#match");
    }

    #[test]
    fn service_spellings() {
        let s = ServiceNames::new("user-service");
        assert_eq!(s.pascal, "UserService");
        assert_eq!(s.snake, "user_service");
        assert_eq!(s.proto_package, "user_service.v1");
        assert_eq!(ServiceNames::new("self").pascal, "SelfService");
        assert_eq!(ServiceNames::new("api2").pascal, "Api2");
    }
}
