//! A `saga-orchestrator`: its saga's state lives in the service's database (`redis` is refused,
//! saying why), it needs a deadline and a trait name of its own; its retry policy is honoured
//! in full (no warning).

use allframe_config::diagnostic::Code;
use allframe_config::{Archetype, SourceFile, check};

use super::{HEAD, assert_at, diagnostics, find};

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
    let Archetype::SagaOrchestrator(saga) = &service.archetype else {
        panic!("a saga orchestrator")
    };
    assert_eq!(saga.steps, ["ReservePayment"]);
    assert_eq!(service.common.resilience.retry.max_attempts, 5);
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
