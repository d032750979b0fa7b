//! The support stage: keys accepted without full effect are warnings at their line, values
//! this version refuses are errors, and `deny_warnings` (the file's key or the option) makes
//! every warning an error.

use allframe_config::diagnostic::Code;
use allframe_config::{CheckOptions, Diagnostics, Severity, SourceFile, check, check_with};

use super::{HEAD, diagnostics, find};

const SERVICE: &str = "[[services]]\nname = \"api\"\ntype = \"stateless\"\n";

fn not_honoured(d: &Diagnostics) -> Vec<String> {
    d.iter()
        .filter(|x| x.code == Code::NotHonoured)
        .map(|x| x.path.to_string())
        .collect()
}

#[test]
fn keys_without_full_effect_are_warnings_at_their_line() {
    let body = format!(
        "[resilience.circuit_breaker]\nfailure_threshold = 5\n[security]\nmtls = true\n{SERVICE}[services.database]\ntype = \"postgres\"\nmigrations = \"diesel\"\n"
    );
    let d = diagnostics(&body);
    assert!(!d.has_errors(), "{d}");
    assert_eq!(
        not_honoured(&d),
        [
            "resilience.circuit_breaker",
            "security.mtls",
            "services[0].database.migrations"
        ]
    );
    let breaker = find(&d, Code::NotHonoured);
    assert_eq!(breaker.severity, Severity::Warning);
    assert_eq!(breaker.location.map(|l| l.line), Some(3));
    assert!(
        breaker.message.contains("only provider calls"),
        "{breaker:?}"
    );
}

#[test]
fn defaults_the_file_does_not_write_are_not_reported() {
    let d = check(&SourceFile::new("arch.toml", format!("{HEAD}{SERVICE}"))).expect("valid");
    assert_eq!(d.warnings().count(), 0, "{:?}", d.warning_report());
}

#[test]
fn infrastructure_only_keys_say_so() {
    let d = diagnostics(&format!(
        "[security]\napi_key_rotation_days = 30\n{SERVICE}"
    ));
    let rotation = find(&d, Code::NotHonoured);
    assert!(
        rotation
            .message
            .starts_with("honoured by the generated infrastructure only"),
        "{rotation:?}"
    );
    assert!(rotation.message.contains("rotation"), "{rotation:?}");
}

#[test]
fn request_limits_are_honoured_on_rest_and_their_gaps_are_reported() {
    let silent = |body: String| {
        let arch = check(&SourceFile::new("arch.toml", format!("{HEAD}{body}"))).expect("valid");
        assert_eq!(arch.warnings().count(), 0, "{:?}", arch.warning_report());
    };
    silent(format!(
        "[resilience]\nrate_limit = {{ rps = 10 }}\nbulkhead = {{ max_concurrent = 4 }}\n{SERVICE}"
    ));

    silent(format!(
        "{SERVICE}protocols = [\"rest\", \"grpc\"]\n[services.bulkhead]\nmax_concurrent = 4\n"
    ));

    let per_user = diagnostics(&format!(
        "[resilience.rate_limit]\nrps = 10\nper = \"user\"\n{SERVICE}"
    ));
    assert_eq!(not_honoured(&per_user), ["resilience.rate_limit"]);
    assert!(
        find(&per_user, Code::NotHonoured)
            .message
            .contains("client IP")
    );

    let per_tenant = format!("{SERVICE}[services.rate_limit]\nrps = 10\nper = \"tenant\"\n");
    let untenanted = diagnostics(&per_tenant);
    assert_eq!(not_honoured(&untenanted), ["services[0].rate_limit"]);
    let tenanted = format!("[tenant]\nenabled = true\n{per_tenant}");
    let tenanted = diagnostics(&tenanted);
    assert!(
        !not_honoured(&tenanted).contains(&"services[0].rate_limit".to_owned()),
        "{tenanted}"
    );
}

#[test]
fn a_type_not_generated_yet_is_a_warning_at_its_type_and_tables() {
    let d = diagnostics(
        "[[services]]\nname = \"web\"\ntype = \"bff\"\n[services.database]\ntype = \"mysql\"\n[services.bff]\naggregates = []\n",
    );
    assert!(
        !d.has_errors(),
        "a skipped service's engine is not refused: {d}"
    );
    assert_eq!(not_honoured(&d), ["services[0].type", "services[0].bff"]);
}

#[test]
fn an_engine_the_runtime_cannot_open_is_an_error_where_it_is_chosen() {
    let own = diagnostics(&format!("{SERVICE}[services.database]\ntype = \"mysql\"\n"));
    let e = find(&own, Code::Unsupported);
    assert_eq!(
        (e.severity, e.path.to_string()),
        (Severity::Error, "services[0].database.type".to_owned())
    );
    let inherited = diagnostics(&format!(
        "[settings]\ndefault_database = \"dynamodb\"\n{SERVICE}"
    ));
    let e = find(&inherited, Code::Unsupported);
    assert_eq!(e.path.to_string(), "settings.default_database");
    assert_eq!(e.location.map(|l| l.line), Some(4));
    let sqs = diagnostics(&format!(
        "[settings]\nevent_bus = \"sqs\"\n{SERVICE}[services.messaging]\npattern = \"outbox\"\n"
    ));
    assert_eq!(
        find(&sqs, Code::Unsupported).path.to_string(),
        "settings.event_bus"
    );
}

#[test]
fn observability_values_the_macro_cannot_expand_fail_the_check_too() {
    let otlp = diagnostics(&format!("[observability]\nmetrics = \"otlp\"\n{SERVICE}"));
    assert_eq!(
        find(&otlp, Code::Unsupported).path.to_string(),
        "observability.metrics"
    );
    let jaeger = diagnostics(&format!(
        "[observability]\npropagation = [\"traceparent\", \"jaeger\"]\n{SERVICE}"
    ));
    let e = find(&jaeger, Code::Unsupported);
    assert_eq!(e.path.to_string(), "observability.propagation[1]");
    assert!(e.help.as_deref().is_some_and(|h| h.contains("traceparent")));
    let untraced = diagnostics(&format!(
        "[observability]\ntracing = \"none\"\npropagation = [\"jaeger\"]\n{SERVICE}"
    ));
    assert!(!untraced.has_errors(), "{untraced}");
    assert_eq!(not_honoured(&untraced), ["observability.propagation"]);
}

#[test]
fn deny_warnings_in_the_file_or_the_options_makes_them_errors() {
    let body = format!("[resilience.circuit_breaker]\nfailure_threshold = 10\n{SERVICE}");
    let lenient = SourceFile::new("arch.toml", format!("{HEAD}{body}"));
    assert!(check(&lenient).is_ok());
    let denied = check_with(
        &lenient,
        CheckOptions {
            deny_warnings: true,
        },
    )
    .expect_err("denied");
    let e = find(&denied, Code::NotHonoured);
    assert_eq!(e.severity, Severity::Error);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("--deny-warnings")),
        "{e:?}"
    );

    let strict = SourceFile::new(
        "arch.toml",
        format!("{HEAD}[settings]\ndeny_warnings = true\n{body}"),
    );
    let e = check(&strict).expect_err("the file's key denies warnings");
    let e = find(&e, Code::NotHonoured);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("deny_warnings = true")),
        "{e:?}"
    );
}

#[test]
fn every_rule_names_a_key_of_the_schema_and_the_docs_list_it() {
    let schema = allframe_config::json_schema::to_pretty_string();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/support.md"))
        .expect("docs/support.md");
    for (path, _) in allframe_config::support::key_rules() {
        let last = path.rsplit('.').next().expect("a key");
        assert!(
            schema.contains(&format!("\"{last}\"")),
            "{path} is not a key of the schema"
        );
        assert!(
            docs.contains(&format!("`{path}`")),
            "docs/support.md does not list `{path}`"
        );
    }
}
