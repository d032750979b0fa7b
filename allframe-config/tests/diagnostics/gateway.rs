//! A `gateway`: providers to call, each making a client of its own name; its breaker and retry
//! tables are honoured (no warning), a missing or clashing provider is an error at its line.

use allframe_config::diagnostic::Code;
use allframe_config::{Archetype, SourceFile, check};

use super::{HEAD, diagnostics, find};

const GATEWAY: &str = "[[services]]\nname = \"payments\"\ntype = \"gateway\"\n";

#[test]
fn a_gateways_breaker_and_retry_are_honoured_without_warnings() {
    let text = format!(
        "{HEAD}{GATEWAY}[services.integrations]\nproviders = [\"stripe\", \"legacy-erp\"]\ncircuit_breaker = {{ failure_threshold = 2 }}\nretry = {{ max_attempts = 5 }}\n"
    );
    let arch = check(&SourceFile::new("arch.toml", text)).expect("valid");
    assert_eq!(arch.warnings().count(), 0, "{:?}", arch.warning_report());
    let service = &arch.services()[0];
    let Archetype::Gateway(integrations) = &service.archetype else {
        panic!("a gateway")
    };
    assert_eq!(integrations.providers, ["stripe", "legacy-erp"]);
    assert_eq!(
        service.common.resilience.circuit_breaker.failure_threshold,
        2
    );
    assert_eq!(service.common.resilience.call_retry.max_attempts, 5);
}

#[test]
fn a_gateway_needs_providers_whose_clients_differ() {
    let none = diagnostics(&format!(
        "{GATEWAY}[services.integrations]\nproviders = []\n"
    ));
    let e = find(&none, Code::MissingKey);
    assert_eq!(e.path.to_string(), "services[0].integrations.providers");
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("stripe")),
        "{e:?}"
    );

    let clash = diagnostics(&format!(
        "{GATEWAY}[services.integrations]\nproviders = [\"pay-pal\", \"pay_pal\"]\n"
    ));
    let e = find(&clash, Code::NameClash);
    assert_eq!(e.path.to_string(), "services[0].integrations.providers[1]");
    assert!(e.message.contains("`PayPal`"), "{e:?}");

    let keyword = diagnostics(&format!(
        "{GATEWAY}[services.integrations]\nproviders = [\"self\"]\n"
    ));
    let e = find(&keyword, Code::InvalidName);
    assert!(e.message.contains("keyword"), "{e:?}");
}

#[test]
fn breaker_tables_of_services_that_call_nothing_are_still_reported() {
    let d = diagnostics(
        "[[services]]\nname = \"api\"\ntype = \"stateless\"\n[services.circuit_breaker]\nfailure_threshold = 3\n",
    );
    let e = find(&d, Code::NotHonoured);
    assert_eq!(e.path.to_string(), "services[0].circuit_breaker");
}

#[test]
fn a_retry_multiplier_that_would_not_grow_the_delays_is_refused_where_it_is_written() {
    let d = diagnostics(&format!(
        "[resilience]\nretry = {{ multiplier = nan }}\n{GATEWAY}[services.integrations]\nproviders = [\"stripe\"]\nretry = {{ multiplier = 0.5 }}\n"
    ));
    let refused: Vec<String> = d
        .iter()
        .filter(|x| x.code == Code::InvalidValue)
        .map(|x| x.path.to_string())
        .collect();
    assert_eq!(
        refused,
        [
            "resilience.retry.multiplier",
            "services[0].integrations.retry.multiplier"
        ]
    );
}

#[test]
fn a_provider_call_timeout_of_zero_is_an_error() {
    let d = diagnostics(&format!(
        "{GATEWAY}[services.integrations]\nproviders = [\"stripe\"]\ntimeout_ms = 0\n"
    ));
    let e = find(&d, Code::InvalidValue);
    assert_eq!(e.path.to_string(), "services[0].integrations.timeout_ms");
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains("5000")),
        "{e:?}"
    );
}
