//! A `saga-orchestrator`: its saga's state lives in the service's database (`redis` is refused,
//! saying why), it needs a deadline and a trait name of its own; its retry policy is honoured
//! in full (no warning).

use allframe_config::diagnostic::Code;
use allframe_config::{Archetype, SourceFile, check};

use super::{HEAD, assert_at, diagnostics, find};

const CALLS: &str = "[services.integrations]\nproviders = [\"payment-gateway\"]\nretry = { max_attempts = 2 }\ncircuit_breaker = { failure_threshold = 4 }\n";

const ORCHESTRATOR: &str = "[[services]]\nname = \"order-service\"\ntype = \"saga-orchestrator\"\n";
const SAGA: &str = "[services.saga]\nname = \"CreateOrderSaga\"\nsteps = [\"ReservePayment\"]\ncompensation = [\"RefundPayment\"]\n";

#[test]
fn a_saga_with_postgres_state_and_a_retry_policy_is_honoured_without_warnings() {
    let text = format!(
        "{HEAD}{ORCHESTRATOR}retry = {{ max_attempts = 5 }}\n{SAGA}state_store = \"postgres\"\n"
    );
    let arch = check(&SourceFile::new("arch.toml", text)).expect("valid");
    assert_eq!(arch.warnings().count(), 0, "{:?}", arch.warning_report());
    let service = &arch.services()[0];
    let Archetype::SagaOrchestrator { saga, .. } = &service.archetype else {
        panic!("a saga orchestrator")
    };
    assert_eq!(saga.steps, ["ReservePayment"]);
    assert_eq!(service.common.resilience.retry.max_attempts, 5);
}

#[test]
fn a_saga_calling_participants_over_http_keeps_its_steps_retry_apart_from_its_calls() {
    let text = format!("{HEAD}{ORCHESTRATOR}retry = {{ max_attempts = 5 }}\n{SAGA}{CALLS}");
    let arch = check(&SourceFile::new("arch.toml", text)).expect("valid");
    assert_eq!(arch.warnings().count(), 0, "{:?}", arch.warning_report());
    let service = &arch.services()[0];
    let providers = service
        .archetype
        .integrations()
        .map(|i| i.providers.clone());
    assert_eq!(providers, Some(vec!["payment-gateway".to_owned()]));
    let resilience = &service.common.resilience;
    assert_eq!(resilience.retry.max_attempts, 5, "the steps' own policy");
    assert_eq!(resilience.call_retry.max_attempts, 2, "each call's");
    assert_eq!(resilience.circuit_breaker.failure_threshold, 4);

    let none = diagnostics(&format!(
        "{ORCHESTRATOR}{SAGA}[services.integrations]\nproviders = []\n"
    ));
    let e = find(&none, Code::MissingKey);
    assert!(
        e.message.contains("saga-orchestrator `order-service`"),
        "{e:?}"
    );
}

#[test]
fn redis_saga_state_is_an_error_saying_why() {
    let d = diagnostics(&format!("{ORCHESTRATOR}{SAGA}state_store = \"redis\"\n"));
    let e = find(&d, Code::Unsupported);
    assert_at(e, "services[0].saga.state_store", 10);
    assert!(e.message.contains("same transaction"), "{e:?}");
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("DATABASE_URL")),
        "{e:?}"
    );
}

#[test]
fn a_zero_deadline_and_a_saga_named_like_its_service_are_errors() {
    let d = diagnostics(&format!(
        "{ORCHESTRATOR}[services.saga]\nname = \"OrderService\"\nsteps = [\"A\"]\ncompensation = [\"UndoA\"]\ntimeout_seconds = 0\n"
    ));
    assert_at(
        find(&d, Code::InvalidValue),
        "services[0].saga.timeout_seconds",
        10,
    );
    let clash = find(&d, Code::NameClash);
    assert_at(clash, "services[0].saga.name", 7);
    assert!(clash.message.contains("OrderService"), "{clash:?}");
}

#[test]
fn replies_are_accepted_for_the_saga_s_steps() {
    let text = format!(
        "{HEAD}{ORCHESTRATOR}{SAGA}[services.saga.replies]\nReservePayment = {{ success = \"PaymentReserved\", failure = \"PaymentDeclined\" }}\n"
    );
    let arch = check(&SourceFile::new("arch.toml", text)).expect("valid");
    assert_eq!(arch.warnings().count(), 0, "{:?}", arch.warning_report());
    let Archetype::SagaOrchestrator { saga, .. } = &arch.services()[0].archetype else {
        panic!("a saga orchestrator")
    };
    let reply = &saga.replies["ReservePayment"];
    assert_eq!(reply.success, "PaymentReserved");
    assert_eq!(reply.failure.as_deref(), Some("PaymentDeclined"));
}

#[test]
fn a_reply_to_no_step_one_event_both_ways_or_for_two_steps_are_errors() {
    let d = diagnostics(&format!(
        "{ORCHESTRATOR}[services.saga]\nname = \"CreateOrderSaga\"\nsteps = [\"ReservePayment\", \"Ship\"]\ncompensation = [\"Refund\", \"Unship\"]\n[services.saga.replies]\nReservePaymnet = {{ success = \"Done\" }}\nShip = {{ success = \"Done\" }}\n"
    ));
    let unknown = d
        .iter()
        .find(|e| e.message.contains("`ReservePaymnet` is not a step"))
        .expect("the misspelt step");
    assert_at(unknown, "services[0].saga.replies.ReservePaymnet", 11);
    assert!(
        unknown
            .help
            .as_deref()
            .is_some_and(|h| h.contains("`ReservePayment`")),
        "{unknown:?}"
    );
    let twice = d
        .iter()
        .find(|e| e.message.contains("already answers step"))
        .expect("one event for two steps");
    assert_at(twice, "services[0].saga.replies.Ship.success", 12);

    let d = diagnostics(&format!(
        "{ORCHESTRATOR}{SAGA}[services.saga.replies]\nReservePayment = {{ success = \"Paid\", failure = \"Paid\" }}\n"
    ));
    assert_at(
        find(&d, Code::SagaMismatch),
        "services[0].saga.replies.ReservePayment.failure",
        11,
    );
    let d = diagnostics(&format!(
        "{ORCHESTRATOR}{SAGA}[services.saga.replies]\nReservePayment = {{ success = \"payment-ok\" }}\n"
    ));
    assert_at(
        find(&d, Code::InvalidName),
        "services[0].saga.replies.ReservePayment.success",
        11,
    );
}
