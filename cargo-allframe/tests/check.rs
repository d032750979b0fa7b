//! `cargo allframe check` and `schema` through the built binary: exit statuses, and error
//! messages that name the file, the line and the key.

mod common;

use common::{SHOP, cargo_allframe};

#[test]
fn a_valid_file_passes_and_its_warnings_are_printed() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("architecture.toml"), SHOP).expect("write");
    let run = cargo_allframe(dir.path(), &["check"]).ok();
    // Every key of the file has its full effect (the saga orchestrator included).
    assert!(
        run.stdout.contains("3 services, 0 warnings"),
        "{}",
        run.stdout
    );

    // `multi_tenant` disagreeing with `[tenant] enabled` is a warning, not an error; and the
    // key is not honoured on its own (`[tenant] enabled` decides): a second warning.
    let warned = SHOP.replace(
        "name = \"shop\"\n",
        "name = \"shop\"\nmulti_tenant = true\n",
    );
    std::fs::write(dir.path().join("warned.toml"), warned).expect("write");
    let run = cargo_allframe(dir.path(), &["check", "--config", "warned.toml"]).ok();
    assert!(run.stderr.contains("tenant.enabled"), "{}", run.stderr);
    assert!(run.stderr.contains("warned.toml:3:"), "{}", run.stderr);
    assert!(run.stderr.contains("not-honoured"), "{}", run.stderr);
    assert!(run.stdout.contains("2 warnings"), "{}", run.stdout);
}

#[test]
fn deny_warnings_fails_the_check_on_a_key_without_full_effect() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = SHOP.replace(
        "[settings]\n",
        "[resilience.circuit_breaker]\nfailure_threshold = 5\n\n[settings]\n",
    );
    std::fs::write(dir.path().join("architecture.toml"), &file).expect("write");
    let run = cargo_allframe(dir.path(), &["check"]).ok();
    assert!(
        run.stderr.contains("resilience.circuit_breaker"),
        "{}",
        run.stderr
    );
    let run = cargo_allframe(dir.path(), &["check", "--deny-warnings"]).failed();
    assert!(
        run.stderr.contains("architecture.toml:4:"),
        "names the file and line: {}",
        run.stderr
    );
    assert!(run.stderr.contains("--deny-warnings"), "{}", run.stderr);
    let run = cargo_allframe(dir.path(), &["ignite", "--deny-warnings", "--dry-run"]).failed();
    assert!(
        run.stderr.contains("resilience.circuit_breaker"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_file_is_named_and_the_option_suggested() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = cargo_allframe(dir.path(), &["check", "--config", "nowhere/arch.toml"]).failed();
    assert!(run.stderr.contains("nowhere/arch.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(run.stderr.contains("--config"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn devices_fifos_and_oversized_files_are_refused_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    std::fs::write(
        dir.path().join("huge.toml"),
        vec![b'#'; allframe_config::MAX_FILE_BYTES as usize + 1],
    )
    .expect("write");
    for (config, says) in [
        ("/dev/zero", "is a character device, not a regular file"),
        ("fifo.toml", "is a FIFO, not a regular file"),
        ("huge.toml", "is larger than 4 MiB"),
    ] {
        let run = cargo_allframe(dir.path(), &["check", "--config", config]).failed();
        assert!(run.stderr.contains(says), "{config}: {}", run.stderr);
        assert!(run.stderr.contains(config), "{}", run.stderr);
    }
}

#[test]
fn a_file_that_is_not_toml_shows_the_syntax_error_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = "[architecture]\nname = \"shop\"\n\n[[services]\nname = \"api\"\n";
    std::fs::write(dir.path().join("broken.toml"), text).expect("write");
    let run = cargo_allframe(dir.path(), &["check", "--config", "broken.toml"]).failed();
    assert!(run.stderr.contains("broken.toml:4:"), "{}", run.stderr);
    assert!(run.stderr.contains("allframe::syntax"), "{}", run.stderr);
    assert!(
        run.stderr.contains("[[services]"),
        "the snippet: {}",
        run.stderr
    );
}

#[test]
fn an_invalid_file_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = SHOP
        .replace(
            "type = \"stateless\"\nresponsibility",
            "type = \"stateles\"\nresponsibility",
        )
        .replace("name = \"catalog\"", "name = \"catalog\"\nport = 80");
    std::fs::write(dir.path().join("architecture.toml"), &text).expect("write");
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("present")
            + 1
    };
    let run = cargo_allframe(dir.path(), &["check"]).failed();
    let stderr = &run.stderr;
    assert!(stderr.contains("2 errors"), "{stderr}");
    assert!(
        stderr.contains(&format!("architecture.toml:{}:", line_of("stateles"))),
        "{stderr}"
    );
    assert!(stderr.contains("services[0].type"), "{stderr}");
    assert!(
        stderr.contains(&format!("architecture.toml:{}:", line_of("port = 80"))),
        "{stderr}"
    );
    assert!(stderr.contains("services[1].port"), "{stderr}");
}

#[test]
fn schema_prints_the_json_schema_of_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = cargo_allframe(dir.path(), &["schema"]).ok();
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert!(schema["properties"]["services"].is_object(), "{schema:#}");
    assert!(
        schema["properties"]["architecture"].is_object(),
        "{schema:#}"
    );
}
