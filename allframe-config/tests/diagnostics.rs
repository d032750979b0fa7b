//! One small bad file per diagnostic class: each asserts the code, severity, key path, line and
//! the help a user would follow.

use allframe_config::diagnostic::Code;
use allframe_config::{Diagnostic, Diagnostics, Severity, SourceFile, check};

#[path = "diagnostics/cache.rs"]
mod cache;
#[path = "diagnostics/event_sourced.rs"]
mod event_sourced;
#[path = "diagnostics/events.rs"]
mod events;
#[path = "diagnostics/gateway.rs"]
mod gateway;
#[path = "diagnostics/producer.rs"]
mod producer;
#[path = "diagnostics/saga.rs"]
mod saga;
#[path = "diagnostics/support.rs"]
mod support;

const HEAD: &str = "[architecture]\nname = \"shop\"\n";

fn diagnostics(body: &str) -> Diagnostics {
    let text = format!("{HEAD}{body}");
    let source = SourceFile::new("arch.toml", text);
    match check(&source) {
        Err(d) => d,
        Ok(arch) => arch
            .warning_report()
            .cloned()
            .unwrap_or_else(|| panic!("expected diagnostics for:\n{body}")),
    }
}

fn find(d: &Diagnostics, code: Code) -> &Diagnostic {
    d.iter()
        .find(|x| x.code == code)
        .unwrap_or_else(|| panic!("no {code:?} in:\n{d}"))
}

fn assert_at(d: &Diagnostic, path: &str, line: usize) {
    assert_eq!(d.path.to_string(), path, "{d:?}");
    assert_eq!(d.location.map(|l| l.line), Some(line), "{d:?}");
}

#[test]
fn syntax_error_names_line() {
    let d = diagnostics("[[services]\nname = \"a\"\n");
    let e = find(&d, Code::Syntax);
    assert_eq!(e.location.map(|l| l.line), Some(3));
    assert!(d.to_string().starts_with("arch.toml:3:"), "{d}");
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let d =
        diagnostics("[[services]]\nname = \"a\"\ntype = \"stateless\"\nprotocol = [\"rest\"]\n");
    let e = find(&d, Code::UnknownKey);
    assert_at(e, "services[0].protocol", 6);
    assert_eq!(e.help.as_deref(), Some("did you mean `protocols`?"));
}

#[test]
fn unknown_section_is_an_error() {
    let d = diagnostics("[setings]\nevent_bus = \"kafka\"\n");
    assert_at(find(&d, Code::UnknownKey), "setings", 3);
}

#[test]
fn missing_required_key() {
    let d = diagnostics("[[services]]\nname = \"a\"\n");
    let e = find(&d, Code::MissingKey);
    assert_eq!(e.path.to_string(), "services[0]");
    assert!(e.message.contains("`type`"), "{}", e.message);
}

#[test]
fn wrong_type() {
    let d = diagnostics("[[services]]\nname = \"a\"\ntype = \"stateless\"\nprotocols = \"rest\"\n");
    let e = find(&d, Code::InvalidType);
    assert_at(e, "services[0].protocols", 6);
    assert!(
        e.message.contains("expected an array, found a string"),
        "{}",
        e.message
    );
}

#[test]
fn enum_word_with_did_you_mean() {
    let d = diagnostics("[settings]\nevent_bus = \"kafak\"\n");
    let e = find(&d, Code::InvalidValue);
    assert_at(e, "settings.event_bus", 4);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.starts_with("did you mean `kafka`?")),
        "{e:?}"
    );
}

#[test]
fn out_of_range_number() {
    let d = diagnostics("[deployment]\ncanary_percentage = 300\n");
    assert_at(
        find(&d, Code::InvalidValue),
        "deployment.canary_percentage",
        4,
    );
}

#[test]
fn malformed_template() {
    let d = diagnostics(
        "[security.authentication]\nprovider = \"custom\"\njwt_issuer = \"${AUTH_ISSUER\"\n",
    );
    assert_at(
        find(&d, Code::InvalidTemplate),
        "security.authentication.jwt_issuer",
        5,
    );
}

#[test]
fn duplicate_service_names() {
    let d = diagnostics(
        "[[services]]\nname = \"a\"\ntype = \"stateless\"\n[[services]]\nname = \"a\"\ntype = \"stateless\"\n",
    );
    let e = find(&d, Code::DuplicateService);
    assert_at(e, "services[1].name", 7);
    assert!(e.message.contains("services[0]"));
}

#[test]
fn invalid_service_name_suggests_kebab_case() {
    let d = diagnostics("[[services]]\nname = \"User_Service\"\ntype = \"stateless\"\n");
    let e = find(&d, Code::InvalidName);
    assert_at(e, "services[0].name", 4);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("`user-service`")),
        "{e:?}"
    );
}

#[test]
fn table_on_the_wrong_type() {
    let d = diagnostics(
        "[[services]]\nname = \"a\"\ntype = \"stateless\"\n[services.consumer]\nevents = [\"X\"]\n",
    );
    let e = find(&d, Code::MisplacedTable);
    assert_eq!(e.path.to_string(), "services[0].consumer");
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("type = \"consumer\""))
    );
}

#[test]
fn a_table_of_several_types_names_them_all_on_another() {
    let d = diagnostics(
        "[[services]]\nname = \"a\"\ntype = \"stateless\"\n[services.integrations]\nproviders = [\"x\"]\n",
    );
    let e = find(&d, Code::MisplacedTable);
    assert!(
        e.message.contains("type `gateway` or `saga-orchestrator`"),
        "{e:?}"
    );
}

#[test]
fn table_missing_for_the_type() {
    let d = diagnostics("[[services]]\nname = \"orders\"\ntype = \"saga-orchestrator\"\n");
    let e = find(&d, Code::MissingTable);
    assert_at(e, "services[0].type", 5);
    assert!(e.message.contains("[services.saga]"));
}

#[test]
fn saga_steps_and_compensations_differ() {
    let d = diagnostics(
        "[[services]]\nname = \"orders\"\ntype = \"saga-orchestrator\"\n[services.saga]\nname = \"CreateOrder\"\nsteps = [\"A\", \"B\"]\ncompensation = [\"C\"]\n",
    );
    let e = find(&d, Code::SagaMismatch);
    assert_at(e, "services[0].saga.compensation", 9);
    assert!(e.message.contains("2 steps but 1 compensations"));
}

#[test]
fn bad_port_entries() {
    let d = diagnostics(
        "[[services]]\nname = \"a\"\ntype = \"stateless\"\n[services.ports]\ninbound = [\"rest8080\", \"ftp:21\", \"rest:0\", \"grpc:9090\"]\n",
    );
    let bad: Vec<String> = d
        .iter()
        .filter(|x| x.code == Code::InvalidPort)
        .map(|x| x.path.to_string())
        .collect();
    assert_eq!(
        bad,
        [
            "services[0].ports.inbound[0]",
            "services[0].ports.inbound[1]",
            "services[0].ports.inbound[2]",
            "services[0].ports.inbound[3]"
        ]
    );
}

#[test]
fn port_clash_between_services() {
    let d = diagnostics(
        "[[services]]\nname = \"a\"\ntype = \"stateless\"\n[services.ports]\ninbound = [\"rest:8000\"]\n[[services]]\nname = \"b\"\ntype = \"stateless\"\n[services.ports]\ninbound = [\"rest:8000\"]\n",
    );
    let e = find(&d, Code::PortClash);
    assert_at(e, "services[1].ports.inbound[0]", 12);
    assert!(e.message.contains("`a`"));
}

#[test]
fn invalid_cron_and_timezone() {
    let d = diagnostics(
        "[[services]]\nname = \"r\"\ntype = \"scheduled\"\n[services.schedule]\ntimezone = \"Europe/Pari\"\n[services.jobs]\ndaily = { cron = \"0 99 * * *\" }\n",
    );
    assert_at(
        find(&d, Code::InvalidCron),
        "services[0].jobs.daily.cron",
        9,
    );
    let tz = find(&d, Code::InvalidTimezone);
    assert_at(tz, "services[0].schedule.timezone", 7);
    assert!(
        tz.help
            .as_deref()
            .is_some_and(|h| h.contains("`Europe/Paris`"))
    );
}

#[test]
fn external_service_is_a_warning_unknown_engine_an_error() {
    let d = diagnostics(
        "[[services]]\nname = \"web\"\ntype = \"bff\"\n[services.bff]\naggregates = [\"user-servce\"]\n[[services]]\nname = \"user-service\"\ntype = \"stateless\"\n",
    );
    let w = find(&d, Code::UnknownReference);
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.help.as_deref(), Some("did you mean `user-service`?"));

    let d = diagnostics(
        "[[services]]\nname = \"a\"\ntype = \"stateless\"\n[services.ports]\noutbound = [\"postgress\"]\n",
    );
    let e = find(&d, Code::UnknownReference);
    assert_eq!(e.severity, Severity::Error);
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("did you mean `postgres`?"))
    );
}

#[test]
fn consumed_event_nobody_produces_is_a_warning() {
    let d = diagnostics(
        "[[services]]\nname = \"n\"\ntype = \"consumer\"\n[services.consumer]\nevents = [\"UserCreatd\"]\n[[services]]\nname = \"u\"\ntype = \"stateless\"\n[services.domain]\nevents = [\"UserCreated\"]\n",
    );
    let w = find(&d, Code::UnknownReference);
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.help.as_deref(), Some("did you mean `UserCreated`?"));
}

#[test]
fn transactional_needs_kafka() {
    let d = diagnostics(
        "[settings]\nevent_bus = \"nats\"\n[[services]]\nname = \"a\"\ntype = \"stateless\"\n[services.messaging]\npattern = \"transactional\"\n",
    );
    assert_at(
        find(&d, Code::Unsupported),
        "services[0].messaging.pattern",
        9,
    );
}

#[test]
fn several_problems_are_reported_at_once() {
    let d = diagnostics(
        "[[services]]\nname = \"a\"\ntype = \"stateles\"\nprotocol = []\n[[services]]\nname = \"b\"\ntype = \"cache\"\n[services.cache]\nbackend = \"redis\"\nttl = 5\n",
    );
    let codes: Vec<Code> = d.iter().map(|x| x.code).collect();
    assert_eq!(
        codes,
        [Code::InvalidValue, Code::UnknownKey, Code::UnknownKey],
        "{d}"
    );
    let d = diagnostics(
        "[[services]]\nname = \"A\"\ntype = \"stateless\"\n[[services]]\nname = \"A\"\ntype = \"saga-orchestrator\"\n",
    );
    assert!(
        d.iter().filter(|x| x.severity == Severity::Error).count() >= 3,
        "{d}"
    );
}
