//! Arbitrary input never panics: random text, and random TOML built from the schema's own words.

use allframe_config::{SourceFile, check};
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "name",
    "type",
    "protocols",
    "services",
    "saga",
    "steps",
    "compensation",
    "ports",
    "inbound",
    "cron",
    "timezone",
    "jobs",
    "event_bus",
    "events",
    "aggregates",
    "bff",
    "cloud",
    "primary",
    "x",
];
const VALUES: &[&str] = &[
    "\"a\"",
    "\"stateless\"",
    "\"saga-orchestrator\"",
    "\"rest:8080\"",
    "[\"rest:0\"]",
    "1",
    "-1",
    "99999999999",
    "1.5",
    "true",
    "[]",
    "[1, \"a\"]",
    "{}",
    "{ a = 1 }",
    "\"${X\"",
    "\"0 2 * * *\"",
    "\"Mars/Base\"",
    "[\"A\", \"B\"]",
];

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..KEYS.len(), 0..VALUES.len()).prop_map(|(k, v)| format!("{} = {}", KEYS[k], VALUES[v])),
        (0..KEYS.len()).prop_map(|k| format!("[{}]", KEYS[k])),
        (0..KEYS.len()).prop_map(|k| format!("[[{}]]", KEYS[k])),
        (0..KEYS.len(), 0..KEYS.len()).prop_map(|(a, b)| format!("[{}.{}]", KEYS[a], KEYS[b])),
        Just("[[services]]".to_owned()),
        Just("[architecture]\nname = \"x\"".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_text_never_panics(text in ".{0,400}") {
        let _ = check(&SourceFile::new("f.toml", text));
    }

    #[test]
    fn random_toml_never_panics(lines in proptest::collection::vec(line(), 0..30)) {
        let text = format!("[architecture]\nname = \"x\"\n{}", lines.join("\n"));
        let source = SourceFile::new("f.toml", text);
        if let Err(d) = check(&source) {
            prop_assert!(d.has_errors());
            // Rendering every diagnostic must not panic either.
            let _ = d.to_string();
        }
    }
}
