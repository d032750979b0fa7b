//! Names from the file that become code: how they are spelled in Rust (one case conversion for
//! the CLI, the macro and the checks, so a collision seen by one is seen by all) and which words
//! they must not be, because the code generated from them would not compile.
//!
//! Only word lists and pure functions live here; [`crate::validate`] reports the problems.

use std::borrow::Cow;

use heck::{ToKebabCase, ToSnakeCase, ToUpperCamelCase};

/// Rust's keywords (strict and reserved, edition 2024), which no generated name may be.
pub const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield", "union",
];

/// The names of Rust's prelude (edition 2024) that are written in PascalCase: a type of the same
/// name would shadow them in every generated module and break the code that uses them.
pub const PRELUDE: &[&str] = &[
    "AsMut",
    "AsRef",
    "AsyncFn",
    "AsyncFnMut",
    "AsyncFnOnce",
    "Box",
    "Clone",
    "Copy",
    "Default",
    "DoubleEndedIterator",
    "Drop",
    "Eq",
    "Err",
    "ExactSizeIterator",
    "Extend",
    "Fn",
    "FnMut",
    "FnOnce",
    "From",
    "FromIterator",
    "Future",
    "Into",
    "IntoFuture",
    "IntoIterator",
    "Iterator",
    "None",
    "Ok",
    "Option",
    "Ord",
    "PartialEq",
    "PartialOrd",
    "Result",
    "Send",
    "Sized",
    "Some",
    "String",
    "Sync",
    "ToOwned",
    "ToString",
    "TryFrom",
    "TryInto",
    "Unpin",
    "Vec",
];

/// The PascalCase names the generated code imports or defines next to the types named in the
/// file (entities, events): a type of the same name would clash with the import. The CLI's
/// tests check that every name the scaffold brings into scope is listed here.
pub const GENERATED_NAMES: &[&str] = &[
    "Aggregate",
    "AnyConnection",
    "ApiError",
    "App",
    "AssertSqlSafe",
    "BoxError",
    "BoxFuture",
    "Cache",
    "CacheSource",
    "Caches",
    "Ctx",
    "Deserialize",
    "Duration",
    "Event",
    "EventContext",
    "EventSourced",
    "Json",
    "Path",
    "Produces",
    "Projection",
    "ReadModel",
    "RecordedEvent",
    "Request",
    "Response",
    "Router",
    "Row",
    "Serialize",
    "Status",
    "StatusCode",
    "Uuid",
    "Value",
];

/// The names a producer's input files import beside the entity's input type
/// (`allframe::producer::{Ingest, Invalid}`): an entity of that name would clash. Service
/// structs never meet them.
pub const INPUT_NAMES: &[&str] = &["Ingest", "Invalid"];

/// Crate names a service may not take: Rust's own crates, the crates every generated service
/// depends on, and AllFrame's.
pub const RESERVED_CRATES: &[&str] = &[
    "alloc",
    "allframe",
    "allframe-codegen",
    "allframe-config",
    "allframe-macros",
    "allframe-runtime",
    "cargo-allframe",
    "core",
    "proc-macro",
    "prost",
    "protox",
    "schemars",
    "serde",
    "serde-json",
    "std",
    "test",
    "tokio",
    "tonic",
    "tonic-prost",
    "tonic-prost-build",
    "uuid",
];

/// Crates every generated service has in scope by name (`use serde::…`): a module of the same
/// name (an entity `Serde` lives in `mod serde`) makes their paths ambiguous.
pub const CRATES_IN_SCOPE: &[&str] = &[
    "alloc",
    "allframe",
    "core",
    "proc_macro",
    "prost",
    "schemars",
    "serde",
    "serde_json",
    "std",
    "test",
    "tokio",
    "tonic",
    "uuid",
];

/// The entity a service's example code is written for when `[services.domain] entities` names
/// none: a `stateless` service with messaging then publishes `ItemCreated`.
pub const DEFAULT_ENTITY: &str = "Item";

/// The longest service name: 63 (a DNS label) less the longest suffix the generated manifests
/// add to it (`-preview`).
pub const MAX_SERVICE_NAME: usize = 55;

/// The longest architecture name: 63 less the longest suffix the generated manifests add to it
/// (`-production`, a namespace).
pub const MAX_ARCHITECTURE_NAME: usize = 52;

/// Binary names Cargo refuses (they are directories of its build output).
pub const CARGO_RESERVED_BINARIES: &[&str] = &["build", "deps", "examples", "incremental"];

/// File names Windows cannot create, whatever the extension: a crate directory or source file
/// with one of these names would not check out there.
pub const WINDOWS_RESERVED: &[&str] = &[
    "aux", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9", "con", "lpt1",
    "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9", "nul", "prn",
];

/// The snake_case spelling of a name from the file (`APIKeyIssued` → `api_key_issued`): module,
/// file and method names.
pub fn snake(name: &str) -> String {
    name.to_snake_case()
}

/// The UpperCamelCase spelling of a name from the file (`APIKey` → `ApiKey`): the Rust type.
pub fn pascal(name: &str) -> String {
    name.to_upper_camel_case()
}

/// True for a PascalCase name: an ASCII uppercase letter, then ASCII letters and digits.
pub fn is_pascal(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

/// True for a snake_case name: an ASCII lowercase letter, then lowercase letters, digits and `_`.
pub fn is_snake(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// True when `word` is a Rust keyword.
pub fn is_keyword(word: &str) -> bool {
    RUST_KEYWORDS.contains(&word)
}

/// Why a PascalCase name cannot name a generated type or method, if it cannot: it is a keyword
/// (as written, as the type it is spelt as in code — `OK` is `Ok` —, or as the snake_case module
/// or method it becomes), a prelude name, a name the generated code already uses, or its module
/// would shadow a crate the generated code uses.
pub fn type_name_conflict(name: &str) -> Option<&'static str> {
    type_name_conflict_spelt(name, &snake(name))
}

/// [`type_name_conflict`] of `name` whose snake_case spelling, `snake(name)`, the caller already
/// has (it needs it for the module or method the name becomes).
pub(crate) fn type_name_conflict_spelt(name: &str, snake_name: &str) -> Option<&'static str> {
    let ty = pascal(name);
    // A name already in UpperCamelCase is its own type name, so its module is `snake_name`:
    // one case conversion less for most names of a file.
    let module = if ty == name {
        Cow::Borrowed(snake_name)
    } else {
        Cow::Owned(snake(&ty))
    };
    if [name, &ty, snake_name, &module]
        .iter()
        .any(|w| is_keyword(w))
    {
        Some("a Rust keyword")
    } else if PRELUDE.contains(&name) || PRELUDE.contains(&ty.as_str()) {
        Some("a name of Rust's prelude")
    } else if [GENERATED_NAMES, INPUT_NAMES]
        .iter()
        .any(|names| names.contains(&name) || names.contains(&ty.as_str()))
    {
        Some("a name the generated code imports")
    } else if CRATES_IN_SCOPE.contains(&module.as_ref()) {
        Some("the name of a crate the generated code uses, which its module would shadow")
    } else {
        None
    }
}

/// Why a valid service name cannot name a crate, if it cannot.
pub fn crate_name_conflict(name: &str) -> Option<&'static str> {
    let ty = pascal(name);
    if RESERVED_CRATES.contains(&name) {
        Some("the name of a crate every generated service depends on or of Rust's own")
    } else if is_keyword(&name.replace('-', "_")) {
        Some("a Rust keyword, which Cargo refuses as a package name")
    } else if CARGO_RESERVED_BINARIES.contains(&name) {
        Some("a directory of Cargo's build output, which Cargo refuses as a binary name")
    } else if WINDOWS_RESERVED.contains(&name) {
        Some("a device name on Windows, where its directory could not be created")
    } else if PRELUDE.contains(&ty.as_str()) || GENERATED_NAMES.contains(&ty.as_str()) {
        Some(
            "spelt in code as a type that shadows a name the generated code uses (`result` → `Result`)",
        )
    } else {
        None
    }
}

/// A PascalCase spelling of anything written in the file (`order placed` → `OrderPlaced`,
/// `1abc` → `Abc`), or `fallback` when nothing of it can start a type name. The result is always
/// a valid PascalCase name.
pub fn suggest_pascal(name: &str, fallback: &str) -> String {
    let words = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let p = p.trim_start_matches(|c: char| c.is_ascii_digit());
            let mut chars = p.chars();
            chars
                .next()
                .map(|f| f.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        });
    let joined: String = words.collect();
    if is_pascal(&joined) {
        joined
    } else {
        fallback.to_owned()
    }
}

/// A valid service name (a DNS label and a crate name) close to anything written in the file:
/// lowercase words joined by `-`, starting with a letter, at most 63 characters; `fallback` when
/// nothing of it can be used.
pub fn suggest_kebab(name: &str, fallback: &str) -> String {
    let mut out = String::new();
    for ch in name.to_kebab_case().chars() {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            out.push(ch);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
    let mut result: String = trimmed.chars().take(63).collect();
    while result.ends_with('-') {
        result.pop();
    }
    if result.is_empty() {
        return fallback.to_owned();
    }
    if crate_name_conflict(&result).is_some() {
        result = format!("{}-service", &result[..result.len().min(55)]);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_follow_heck() {
        assert_eq!(snake("APIKeyIssued"), "api_key_issued");
        assert_eq!(snake("HTTPServer"), snake("HttpServer"));
        assert_eq!(pascal("APIKey"), "ApiKey");
    }

    #[test]
    fn conflicts_name_their_reason() {
        for name in ["Self", "Type", "Match", "Box"] {
            assert_eq!(type_name_conflict(name), Some("a Rust keyword"), "{name}");
        }
        for name in ["Result", "Option", "String", "Vec", "Some"] {
            assert_eq!(
                type_name_conflict(name),
                Some("a name of Rust's prelude"),
                "{name}"
            );
        }
        assert!(type_name_conflict("Json").is_some());
        // As spelt in code (`OK` is `Ok`), and modules that would shadow crates.
        for name in [
            "OK", "JSON", "CTX", "APP", "STATUS", "Serde", "Tonic", "UUID", "Std",
        ] {
            assert!(type_name_conflict(name).is_some(), "{name}");
        }
        assert_eq!(type_name_conflict("User"), None);
        for name in [
            "std",
            "core",
            "alloc",
            "test",
            "allframe-runtime",
            "type",
            "deps",
            "con",
            "result",
            "ok",
        ] {
            assert!(crate_name_conflict(name).is_some(), "{name}");
        }
        assert_eq!(crate_name_conflict("user-service"), None);
    }

    #[test]
    fn suggestions_are_always_valid() {
        for (written, expected) in [
            ("1abc", "Abc"),
            ("order placed", "OrderPlaced"),
            ("reserve_stock", "ReserveStock"),
            ("123", "Fallback"),
            ("", "Fallback"),
            ("é", "Fallback"),
        ] {
            let suggested = suggest_pascal(written, "Fallback");
            assert_eq!(suggested, expected);
            assert!(is_pascal(&suggested));
        }
        for (written, expected) in [
            ("User_Service", "user-service"),
            ("1abc", "abc"),
            ("-9-x-", "x"),
            ("../../escape", "escape"),
            ("${VAR", "var"),
            ("${}", "fallback"),
            ("std", "std-service"),
        ] {
            assert_eq!(suggest_kebab(written, "fallback"), expected, "{written}");
        }
    }
}
