//! Names that would generate code that cannot compile, directories outside the workspace or
//! broken DNS labels are config errors; every suggestion printed is itself a valid name (each
//! test applies the suggestion and checks the file again).

use allframe_config::diagnostic::Code;
use allframe_config::{Diagnostic, Diagnostics, Severity, SourceFile, check};

fn errors(text: &str) -> Diagnostics {
    let source = SourceFile::new("arch.toml", text);
    match check(&source) {
        Err(d) => d,
        Ok(_) => panic!("expected errors for:\n{text}"),
    }
}

fn passes(text: &str) {
    let source = SourceFile::new("arch.toml", text);
    if let Err(d) = check(&source) {
        panic!("expected no error for:\n{text}\n{d}");
    }
}

/// A file with one stateless service whose `[services.domain]` body is `domain`.
fn with_domain(domain: &str) -> String {
    format!(
        "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\n\n[services.domain]\n{domain}\n"
    )
}

/// The only error of `d`, which must have `code` and be at `path`.
fn only_error<'a>(d: &'a Diagnostics, code: Code, path: &str) -> &'a Diagnostic {
    let errors: Vec<&Diagnostic> = d.errors().collect();
    assert_eq!(errors.len(), 1, "{d}");
    let e = errors[0];
    assert_eq!((e.code, e.path.to_string().as_str()), (code, path), "{d}");
    e
}

/// The name a help line suggests: its last `` `word` ``.
fn suggestion(d: &Diagnostic) -> String {
    let help = d
        .help
        .as_deref()
        .unwrap_or_else(|| panic!("no help: {d:?}"));
    let end = help.rfind('`').expect("a quoted suggestion");
    let start = help[..end].rfind('`').expect("a quoted suggestion") + 1;
    help[start..end].to_owned()
}

#[test]
fn reserved_type_names_are_errors_with_usable_suggestions() {
    for name in [
        "Self", "Result", "Option", "String", "Box", "Vec", "Some", "Type", "Match", "Json", "Ctx",
        "OK", "JSON", "Serde", "UUID",
    ] {
        let text = with_domain(&format!("entities = [\"{name}\"]"));
        let d = errors(&text);
        let e = only_error(&d, Code::InvalidName, "services[0].domain.entities[0]");
        assert_eq!(e.location.map(|l| l.line), Some(9), "{e:?}");
        let fixed = suggestion(e);
        passes(&with_domain(&format!("entities = [\"{fixed}\"]")));
    }
    let d = errors(&with_domain("events = [\"Result\"]"));
    let e = only_error(&d, Code::InvalidName, "services[0].domain.events[0]");
    assert_eq!(suggestion(e), "ResultHappened");
}

#[test]
fn names_that_are_not_pascal_case_get_a_valid_spelling() {
    for (written, expected) in [
        ("1abc", "Abc"),
        ("order placed", "OrderPlaced"),
        ("9", "Renamed"),
    ] {
        let text = with_domain(&format!("entities = [\"{written}\"]"));
        let d = errors(&text);
        let e = only_error(&d, Code::InvalidName, "services[0].domain.entities[0]");
        assert_eq!(suggestion(e), expected);
        passes(&with_domain(&format!("entities = [\"{expected}\"]")));
    }
}

#[test]
fn duplicates_and_case_collisions_are_errors() {
    let d = errors(&with_domain("entities = [\"User\", \"User\"]"));
    only_error(&d, Code::NameClash, "services[0].domain.entities[1]");

    let d = errors(&with_domain("entities = [\"HttpServer\", \"HTTPServer\"]"));
    let e = only_error(&d, Code::NameClash, "services[0].domain.entities[1]");
    assert!(e.message.contains("`http_server`"), "{e:?}");

    // An event named like an entity is spelt `UserEvent` in code, so that name is taken.
    passes(&with_domain("entities = [\"User\"]\nevents = [\"User\"]"));
    let d = errors(&with_domain(
        "entities = [\"User\"]\nevents = [\"User\", \"UserEvent\"]",
    ));
    let e = only_error(&d, Code::NameClash, "services[0].domain.events[1]");
    assert!(e.message.contains("`user_event`"), "{e:?}");
}

#[test]
fn one_event_spelt_two_ways_across_services_is_an_error() {
    let text = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"a\"\ntype = \"stateless\"\n[services.domain]\nevents = [\"UserCreated\"]\n\n[[services]]\nname = \"b\"\ntype = \"stateless\"\n[services.domain]\nevents = [\"USERCreated\"]\n";
    let d = errors(text);
    let e = only_error(&d, Code::NameClash, "services[1].domain.events[0]");
    assert_eq!(suggestion(e), "UserCreated");
    // The same spelling in two services is one event, not a clash.
    passes(&text.replace("USERCreated", "UserCreated"));
}

#[test]
fn saga_steps_and_jobs_must_become_distinct_methods() {
    let saga = |steps: &str, compensation: &str| {
        format!(
            "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"orders\"\ntype = \"saga-orchestrator\"\n\n[services.saga]\nname = \"PlaceOrder\"\nsteps = [{steps}]\ncompensation = [{compensation}]\n"
        )
    };
    let d = errors(&saga("\"Reserve\", \"Charge\"", "\"Release\", \"Reserve\""));
    only_error(&d, Code::NameClash, "services[0].saga.compensation[1]");
    let d = errors(&saga("\"Type\"", "\"Undo\""));
    let e = only_error(&d, Code::InvalidName, "services[0].saga.steps[0]");
    let fixed = suggestion(e);
    passes(&saga(&format!("\"{fixed}\""), "\"Undo\""));

    let jobs = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"nightly\"\ntype = \"scheduled\"\n\n[services.jobs.loop]\ncron = \"0 2 * * *\"\n";
    let d = errors(jobs);
    let e = only_error(&d, Code::InvalidName, "services[0].jobs.loop");
    assert_eq!(suggestion(e), "loop_job");
    passes(&jobs.replace(".loop]", ".loop_job]"));
}

#[test]
fn service_names_that_clash_with_crates_are_errors() {
    for name in [
        "std",
        "core",
        "alloc",
        "test",
        "allframe-runtime",
        "serde",
        "type",
        "deps",
        "result",
        "ok",
    ] {
        let text = format!(
            "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"{name}\"\ntype = \"stateless\"\n"
        );
        let d = errors(&text);
        let e = only_error(&d, Code::InvalidName, "services[0].name");
        let fixed = suggestion(e);
        passes(&text.replace(&format!("\"{name}\""), &format!("\"{fixed}\"")));
    }
}

#[test]
fn the_architecture_name_is_a_dns_label() {
    for written in [
        "shop\\nDROP DATABASE postgres;",
        "../../escape",
        "${VAR",
        "${}",
        "Shop Floor",
        "",
    ] {
        let text = format!(
            "[architecture]\nname = \"{written}\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\n"
        );
        let d = errors(&text);
        let e = only_error(&d, Code::InvalidName, "architecture.name");
        assert_eq!(e.location.map(|l| l.line), Some(2));
        assert!(!e.message.contains('\n'), "one line: {e:?}");
        let fixed = suggestion(e);
        passes(&text.replace(&format!("\"{written}\""), &format!("\"{fixed}\"")));
    }
}

#[test]
fn regions_name_files_so_they_must_be_plain_ids() {
    let text = "[architecture]\nname = \"shop\"\n\n[cloud]\nregions = [\"us-east-1\", \"../../etc\"]\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\n";
    let d = errors(text);
    let e = only_error(&d, Code::InvalidName, "cloud.regions[1]");
    assert_eq!(suggestion(e), "etc");
}

#[test]
fn an_architecture_without_services_is_an_error_with_a_hint() {
    let d = errors("[architecture]\nname = \"shop\"\n");
    let e = only_error(&d, Code::MissingTable, "");
    assert_eq!(e.severity, Severity::Error);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("[[services]]"))
    );
}

#[test]
fn type_errors_in_arrays_name_the_element() {
    let text = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\nprotocols = [\"rest\", 1]\n";
    let d = errors(text);
    let e = only_error(&d, Code::InvalidType, "services[0].protocols[1]");
    assert_eq!(
        e.help.as_deref(),
        Some("write `services[0].protocols[1]` as a string")
    );
}

#[test]
fn headers_topics_providers_and_fields_follow_their_protocols() {
    let service =
        |table: &str| format!("[[services]]\nname = \"orders\"\ntype = \"stateless\"\n\n{table}\n");
    let cases = [
        (
            "[tenant]\nheader = \"X Org\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\n"
                .to_owned(),
            "tenant.header",
            "\"X Org\"",
        ),
        (
            service("[services.idempotency]\nkey_header = \"Idempotency\\nKey\""),
            "services[0].idempotency.key_header",
            "\"Idempotency\\nKey\"",
        ),
        (
            "[compliance]\npii_fields = [\"e mail\"]\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\n"
                .to_owned(),
            "compliance.pii_fields[0]",
            "\"e mail\"",
        ),
    ];
    for (text, path, written) in cases {
        let text = format!("[architecture]\nname = \"shop\"\n\n{text}");
        let d = errors(&text);
        let e = only_error(&d, Code::InvalidName, path);
        let fixed = suggestion(e);
        passes(&text.replace(written, &format!("\"{fixed}\"")));
    }
    let stream = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"analytics\"\ntype = \"stream-processor\"\n\n[services.stream]\ninput_topics = [\"user events\"]\noutput_topics = [\"ok\"]\n";
    let d = errors(stream);
    let e = only_error(&d, Code::InvalidName, "services[0].stream.input_topics[0]");
    passes(&stream.replace("\"user events\"", &format!("\"{}\"", suggestion(e))));
    let gateway = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"payments\"\ntype = \"gateway\"\n\n[services.integrations]\nproviders = [\"pay pal\"]\n";
    let d = errors(gateway);
    let e = only_error(
        &d,
        Code::InvalidName,
        "services[0].integrations.providers[0]",
    );
    passes(&gateway.replace("\"pay pal\"", &format!("\"{}\"", suggestion(e))));

    let ttl = service("[services.idempotency]\nttl_hours = 0");
    let d = errors(&format!("[architecture]\nname = \"shop\"\n\n{ttl}"));
    only_error(&d, Code::InvalidValue, "services[0].idempotency.ttl_hours");
}

#[test]
fn services_differing_only_in_dashes_and_names_too_long_for_manifests_are_errors() {
    let two = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"a-b\"\ntype = \"stateless\"\n\n[[services]]\nname = \"a--b\"\ntype = \"stateless\"\n";
    let d = errors(two);
    only_error(&d, Code::NameClash, "services[1].name");

    // `<service>-preview` and `<architecture>-production` must stay DNS labels.
    let long = "s".repeat(56);
    let text = format!(
        "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"{long}\"\ntype = \"stateless\"\n"
    );
    only_error(&errors(&text), Code::InvalidName, "services[0].name");
    passes(&text.replace(&long, &"s".repeat(55)));
    let arch = "a".repeat(53);
    let text = format!(
        "[architecture]\nname = \"{arch}\"\n\n[[services]]\nname = \"orders\"\ntype = \"stateless\"\n"
    );
    only_error(&errors(&text), Code::InvalidName, "architecture.name");
}

#[test]
fn a_job_named_like_a_keyword_gets_a_usable_suggestion() {
    let jobs = "[architecture]\nname = \"shop\"\n\n[[services]]\nname = \"nightly\"\ntype = \"scheduled\"\n\n[services.jobs.Type]\ncron = \"0 2 * * *\"\n";
    let d = errors(jobs);
    let e = only_error(&d, Code::InvalidName, "services[0].jobs.Type");
    let fixed = suggestion(e);
    assert_eq!(fixed, "type_job");
    passes(&jobs.replace(".Type]", &format!(".{fixed}]")));
}
