//! `cargo allframe ignite` through the built binary: what the generated manifests declare,
//! how re-runs treat edited and untouched files, `--force`, `--dry-run`, and the directories
//! it refuses.

mod common;
#[path = "ignite/hostile.rs"]
mod hostile;

use std::path::Path;

use common::{
    SHOP, cargo_allframe, cargo_allframe_with_env, listed, members, read, repository, snapshot,
    toml_file,
};

fn shop_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("architecture.toml");
    std::fs::write(&config, SHOP).expect("write the architecture");
    (dir, config)
}

fn features(manifest: &toml::Table) -> Vec<&str> {
    manifest["dependencies"]["allframe"]["features"]
        .as_array()
        .expect("allframe features")
        .iter()
        .map(|f| f.as_str().expect("a feature"))
        .collect()
}

fn table<'a>(manifest: &'a toml::Table, key: &str) -> &'a toml::Table {
    manifest
        .get(key)
        .and_then(toml::Value::as_table)
        .unwrap_or_else(|| panic!("[{key}] in {manifest:#?}"))
}

#[test]
fn generated_manifests_declare_what_each_service_needs() {
    let (dir, _) = shop_dir();
    let run = cargo_allframe(
        dir.path(),
        &[
            "ignite",
            "--config",
            "architecture.toml",
            "--runtime-path",
            repository().to_str().expect("utf-8 path"),
        ],
    )
    .ok();
    // The default output directory is ./<architecture name>.
    let ws = dir.path().join("shop");

    let root = toml_file(&ws.join("Cargo.toml"));
    assert_eq!(root["workspace"]["resolver"].as_str(), Some("3"));
    assert_eq!(
        root["workspace"]["package"]["edition"].as_str(),
        Some("2024")
    );
    assert_eq!(
        members(&ws),
        [
            "services/user-service",
            "services/catalog",
            "services/order-saga"
        ]
    );
    assert_eq!(
        std::fs::read(ws.join("architecture.toml")).expect("copy"),
        SHOP.as_bytes()
    );

    let runtime = repository()
        .canonicalize()
        .expect("canonical")
        .join("allframe-runtime");
    let users = toml_file(&ws.join("services/user-service/Cargo.toml"));
    assert_eq!(users["package"]["name"].as_str(), Some("user-service"));
    assert_eq!(users["package"]["edition"].as_str(), Some("2024"));
    assert_eq!(users["package"]["publish"].as_bool(), Some(false));
    assert_eq!(users["bin"][0]["name"].as_str(), Some("user-service"));
    assert_eq!(users["bin"][0]["path"].as_str(), Some("src/main.rs"));
    let allframe = &users["dependencies"]["allframe"];
    assert_eq!(allframe["package"].as_str(), Some("allframe-runtime"));
    assert_eq!(allframe["path"].as_str(), runtime.to_str());
    assert_eq!(allframe["default-features"].as_bool(), Some(false));
    assert!(allframe.get("version").is_none());
    assert_eq!(features(&users), ["sqlite", "postgres", "grpc", "otel"]);
    let deps = table(&users, "dependencies");
    for dep in ["serde", "uuid", "prost", "tonic"] {
        assert!(deps.contains_key(dep), "{dep} in {deps:#?}");
    }
    // The generated services use the runtime's codec, not tonic-prost's.
    assert!(!deps.contains_key("tonic-prost"), "{deps:#?}");
    let build = table(&users, "build-dependencies");
    assert!(build.contains_key("tonic-prost-build") && build.contains_key("protox"));
    let dev = table(&users, "dev-dependencies");
    assert!(dev.contains_key("tokio") && dev.contains_key("serde_json"));

    // REST only, SQLite: no gRPC crates, no build dependencies.
    let catalog = toml_file(&ws.join("services/catalog/Cargo.toml"));
    assert_eq!(features(&catalog), ["sqlite", "otel"]);
    let deps = table(&catalog, "dependencies");
    assert_eq!(
        deps.keys().map(String::as_str).collect::<Vec<_>>(),
        ["allframe", "serde", "uuid"]
    );
    assert!(catalog.get("build-dependencies").is_none());
    // The example entity's plural names the migration and the test.
    let migration = read(&ws.join("services/catalog/migrations/0001_create_sensor_summaries.sql"));
    assert!(migration.contains("CREATE TABLE IF NOT EXISTS sensor_summaries"));

    // The saga orchestrator: generated without a warning, its steps in `src/steps.rs`.
    assert!(!run.stderr.contains("order-saga"), "{}", run.stderr);
    let saga = toml_file(&ws.join("services/order-saga/Cargo.toml"));
    assert_eq!(
        table(&saga, "dependencies")
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["allframe", "serde", "serde_json"]
    );
    let steps = read(&ws.join("services/order-saga/src/steps.rs"));
    assert!(steps.contains("impl PlaceOrder for OrderSaga"), "{steps}");
    assert!(steps.contains("async fn reserve(&self"), "{steps}");
    assert!(steps.contains("async fn release(&self"), "{steps}");
    assert!(read(&ws.join("README.md")).contains("starts a `PlaceOrder`"));

    // The manifest records the hash of every file as written.
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&ws.join(".allframe/manifest.json"))).expect("JSON");
    let files = manifest["files"].as_object().expect("files");
    assert!(files.len() > 20, "{files:#?}");
    for (path, hash) in files {
        let bytes = std::fs::read(ws.join(path)).expect("recorded file exists");
        assert_eq!(
            hash.as_str(),
            Some(cargo_allframe::workspace::sha256(&bytes).as_str())
        );
    }
}

#[test]
fn without_runtime_path_crates_depend_on_the_released_runtime() {
    let (dir, _) = shop_dir();
    cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    let users = toml_file(&dir.path().join("ws/services/user-service/Cargo.toml"));
    let allframe = &users["dependencies"]["allframe"];
    assert_eq!(
        allframe["version"].as_str(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert!(allframe.get("path").is_none());
}

#[test]
fn a_runtime_path_without_the_runtime_is_an_error() {
    let (dir, _) = shop_dir();
    let run = cargo_allframe(
        dir.path(),
        &["ignite", "--out", "ws", "--runtime-path", "."],
    )
    .failed();
    assert!(run.stderr.contains("allframe-runtime"), "{}", run.stderr);
    assert!(run.stderr.contains("--runtime-path"), "{}", run.stderr);
    assert!(!dir.path().join("ws").exists());
}

#[test]
fn reignite_keeps_edits_updates_untouched_files_and_force_overwrites() {
    let (dir, config) = shop_dir();
    let first = SHOP.replace(
        "[[services]]\nname = \"catalog\"\ntype = \"stateless\"\n\n[services.domain]\nentities = [\"SensorSummary\"]\n",
        "",
    );
    assert_ne!(first, SHOP, "the first version drops the catalog service");
    std::fs::write(&config, &first).expect("write");
    cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    let ws = dir.path().join("ws");
    assert_eq!(
        members(&ws),
        ["services/user-service", "services/order-saga"]
    );

    let main_rs = ws.join("services/user-service/src/main.rs");
    let generated = read(&main_rs);
    let edited = format!("{generated}\n// my own code\n");
    std::fs::write(&main_rs, &edited).expect("edit");
    let readme_before = read(&ws.join("README.md"));

    // The architecture gains a service.
    std::fs::write(&config, SHOP).expect("write");
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    assert_eq!(
        read(&main_rs),
        edited,
        "an edited file is never overwritten"
    );
    let kept = run
        .stdout
        .lines()
        .find(|l| l.contains("services/user-service/src/main.rs"))
        .unwrap_or_else(|| panic!("main.rs listed:\n{}", run.stdout));
    assert!(
        kept.contains("kept") && kept.contains("user-modified"),
        "{kept}"
    );
    // Untouched files follow the architecture.
    assert_eq!(
        members(&ws),
        [
            "services/user-service",
            "services/catalog",
            "services/order-saga"
        ]
    );
    assert_ne!(read(&ws.join("README.md")), readme_before);
    let files = listed(&run.stdout);
    assert_eq!(files["Cargo.toml"], "updated", "{}", run.stdout);
    assert_eq!(files["services/catalog/Cargo.toml"], "written");
    assert_eq!(read(&ws.join("architecture.toml")), SHOP);
    toml_file(&ws.join("services/catalog/Cargo.toml"));

    // Still kept on the next run; --force overwrites it.
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    assert_eq!(read(&main_rs), edited);
    assert!(
        run.stdout.contains("0 written, 0 updated, 1 kept"),
        "{}",
        run.stdout
    );
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws", "--force"]).ok();
    assert_eq!(read(&main_rs), generated);
    assert_eq!(
        listed(&run.stdout)["services/user-service/src/main.rs"],
        "overwritten"
    );
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    assert!(
        run.stdout.contains("0 written, 0 updated, 0 kept"),
        "{}",
        run.stdout
    );
}

#[test]
fn dry_run_writes_nothing() {
    let (dir, config) = shop_dir();
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws", "--dry-run"]).ok();
    assert!(!dir.path().join("ws").exists());
    assert_eq!(
        listed(&run.stdout)["services/user-service/Cargo.toml"],
        "would write",
        "{}",
        run.stdout
    );

    cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    let ws = dir.path().join("ws");
    std::fs::write(ws.join("README.md"), "mine").expect("edit");
    std::fs::write(&config, SHOP.replace("shop", "store")).expect("rename");
    let before = snapshot(&ws);
    let run = cargo_allframe(
        dir.path(),
        &["ignite", "--out", "ws", "--dry-run", "--force"],
    )
    .ok();
    assert_eq!(snapshot(&ws), before);
    let files = listed(&run.stdout);
    assert_eq!(files["README.md"], "would overwrite", "{}", run.stdout);
    assert_eq!(files["Cargo.toml"], "would update", "{}", run.stdout);
}

#[test]
fn a_non_empty_foreign_directory_is_refused_unless_forced() {
    let (dir, _) = shop_dir();
    let foreign = dir.path().join("project");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "mine").expect("write");

    let run = cargo_allframe(dir.path(), &["ignite", "--out", "project"]).failed();
    assert!(run.stderr.contains("project"), "{}", run.stderr);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(snapshot(&foreign).len(), 1, "nothing was written");

    cargo_allframe(dir.path(), &["ignite", "--out", "project", "--force"]).ok();
    assert_eq!(read(&foreign.join("notes.txt")), "mine");
    assert_eq!(members(&foreign).len(), 3);
}

#[test]
fn an_invalid_architecture_writes_nothing() {
    let (dir, config) = shop_dir();
    std::fs::write(&config, SHOP.replace("\"stateless\"", "\"stateles\"")).expect("write");
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).failed();
    assert!(run.stderr.contains("services[0].type"), "{}", run.stderr);
    assert!(!Path::new(&dir.path().join("ws")).exists());
}

#[test]
fn without_rustfmt_files_are_written_unformatted_with_a_warning() {
    let (dir, _) = shop_dir();
    let formatted = dir.path().join("formatted");
    cargo_allframe(dir.path(), &["ignite", "--out", "formatted"]).ok();
    let run = cargo_allframe_with_env(
        dir.path(),
        &["ignite", "--out", "raw"],
        &[("RUSTFMT", "/nonexistent/rustfmt")],
    )
    .ok();
    assert!(
        run.stderr.contains("rustfmt could not be run"),
        "{}",
        run.stderr
    );
    let raw = dir.path().join("raw");
    // Written all the same; the templates are rustfmt-clean for ordinary names, so only
    // files whose names made lines long differ.
    assert_eq!(snapshot(&raw).len(), snapshot(&formatted).len());
    let path = "services/catalog/src/application/commands.rs";
    assert_ne!(read(&raw.join(path)), read(&formatted.join(path)));
}

#[test]
fn a_directory_holding_only_its_architecture_file_is_ignited_in_place() {
    let (dir, _) = shop_dir();
    cargo_allframe(dir.path(), &["ignite", "--out", "."]).ok();
    assert_eq!(members(dir.path()).len(), 3);
    assert_eq!(read(&dir.path().join("architecture.toml")), SHOP);
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "."]).ok();
    assert!(
        run.stdout.contains("0 written, 0 updated, 0 kept"),
        "{}",
        run.stdout
    );
}

#[test]
fn declared_patterns_pull_in_their_runtime_features() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("architecture.toml"),
        "[architecture]\nname = \"pat\"\n[settings]\nevent_bus = \"rabbitmq\"\n\
         [[services]]\nname = \"orders\"\ntype = \"stateless\"\n\
         [services.idempotency]\nstorage = \"redis\"\n[services.messaging]\npattern = \"outbox\"\n\
         [[services]]\nname = \"plain\"\ntype = \"stateless\"\n[services.database]\ntype = \"sqlite\"\n",
    )
    .expect("write the architecture");
    cargo_allframe(dir.path(), &["ignite", "--config", "architecture.toml"]).ok();
    let orders = toml_file(&dir.path().join("pat/services/orders/Cargo.toml"));
    assert_eq!(
        features(&orders),
        ["sqlite", "postgres", "redis", "otel", "rabbitmq"],
        "`[observability] tracing` defaults to opentelemetry"
    );
    let plain = toml_file(&dir.path().join("pat/services/plain/Cargo.toml"));
    assert_eq!(features(&plain), ["sqlite", "otel"], "nothing undeclared");

    // `tracing = "none"` exports nothing, so the service does without the feature.
    std::fs::write(
        dir.path().join("quiet.toml"),
        "[architecture]\nname = \"quiet\"\n[observability]\ntracing = \"none\"\n\
         [[services]]\nname = \"plain\"\ntype = \"stateless\"\n[services.database]\ntype = \"sqlite\"\n",
    )
    .expect("write the architecture");
    cargo_allframe(dir.path(), &["ignite", "--config", "quiet.toml"]).ok();
    let quiet = toml_file(&dir.path().join("quiet/services/plain/Cargo.toml"));
    assert_eq!(features(&quiet), ["sqlite"]);
}

#[cfg(unix)]
#[test]
fn links_inside_the_output_directory_are_refused_and_never_written_through() {
    let (dir, config) = shop_dir();
    cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    let ws = dir.path().join("ws");
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir(&outside).expect("mkdir");

    // A service directory moved elsewhere behind a link, a file linked to an outside file, and
    // a dangling link where ignite would create a file.
    std::fs::rename(ws.join("services/catalog"), outside.join("catalog")).expect("move");
    std::os::unix::fs::symlink(outside.join("catalog"), ws.join("services/catalog"))
        .expect("symlink");
    let precious = outside.join("precious.md");
    std::fs::write(&precious, "not ignite's").expect("write");
    std::fs::remove_file(ws.join("README.md")).expect("rm");
    std::os::unix::fs::symlink(&precious, ws.join("README.md")).expect("symlink");
    let sneaky = outside.join("created-through-a-link");
    std::os::unix::fs::symlink(&sneaky, ws.join("services/user-service/Cargo.toml.new"))
        .expect("symlink");
    std::fs::write(&config, SHOP.replace("User registration", "Users")).expect("edit");

    let state = |ws: &Path| {
        (
            snapshot(&outside),
            std::fs::read_link(ws.join("README.md")).ok(),
            read(&ws.join(".allframe/manifest.json")),
            read(&ws.join("architecture.toml")),
        )
    };
    let before = state(&ws);
    for args in [vec![], vec!["--force"], vec!["--dry-run"]] {
        let run = cargo_allframe(
            dir.path(),
            &[&["ignite", "--out", "ws"], &args[..]].concat(),
        )
        .failed();
        assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
        assert!(
            run.stderr.contains("README.md") || run.stderr.contains("services/catalog"),
            "the link is named: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert_eq!(state(&ws), before, "{args:?}");
        assert!(!sneaky.exists());
        assert!(!ws.join(".allframe/lock").exists());
    }
    assert_eq!(read(&precious), "not ignite's");

    // Put back as real directories and files, the workspace is ignited again.
    std::fs::remove_file(ws.join("services/catalog")).expect("rm link");
    std::fs::rename(outside.join("catalog"), ws.join("services/catalog")).expect("move back");
    std::fs::remove_file(ws.join("README.md")).expect("rm link");
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    assert_eq!(
        listed(&run.stdout)["README.md"],
        "written",
        "{}",
        run.stdout
    );
    assert_eq!(read(&precious), "not ignite's");
}

#[test]
fn a_removed_service_is_reported_as_orphaned_and_kept() {
    let (dir, config) = shop_dir();
    cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    let ws = dir.path().join("ws");
    let manifest_before: serde_json::Value =
        serde_json::from_str(&read(&ws.join(".allframe/manifest.json"))).expect("JSON");
    let catalog_files: Vec<String> = manifest_before["files"]
        .as_object()
        .expect("files")
        .keys()
        .filter(|p| p.starts_with("services/catalog/"))
        .cloned()
        .collect();
    assert!(catalog_files.len() > 5, "{catalog_files:?}");

    let without = SHOP.replace(
        "[[services]]\nname = \"catalog\"\ntype = \"stateless\"\n\n[services.domain]\nentities = [\"SensorSummary\"]\n",
        "",
    );
    assert_ne!(without, SHOP);
    std::fs::write(&config, &without).expect("write");

    let before = snapshot(&ws);
    let dry = cargo_allframe(dir.path(), &["ignite", "--out", "ws", "--dry-run"]).ok();
    assert_eq!(snapshot(&ws), before, "a dry run writes nothing");
    for run in [
        dry,
        cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok(),
        // Still reported on the next run: the records stay.
        cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok(),
    ] {
        // One warning for the crate, one listing the other files (its infrastructure).
        assert!(
            run.stderr
                .contains("`services/catalog/` is no longer generated"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains(&format!("its {} files are kept", catalog_files.len())),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("infrastructure/docker/services/catalog/Dockerfile"),
            "{}",
            run.stderr
        );
        let files = listed(&run.stdout);
        assert_eq!(files["services/catalog/"], "orphaned", "{}", run.stdout);
        assert_eq!(
            files["infrastructure/docker/services/catalog/Dockerfile"],
            "orphaned"
        );
        assert!(
            !files.keys().any(|p| p.starts_with("services/catalog/src")),
            "the crate is one line: {}",
            run.stdout
        );
        assert!(run.stdout.contains(" orphaned."), "{}", run.stdout);
    }
    assert_eq!(
        members(&ws),
        ["services/user-service", "services/order-saga"]
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&ws.join(".allframe/manifest.json"))).expect("JSON");
    for path in &catalog_files {
        assert_eq!(
            manifest["files"][path], manifest_before["files"][path],
            "{path} is still recorded"
        );
        assert!(ws.join(path).is_file(), "{path} is kept");
    }
}

#[test]
fn a_second_ignite_is_refused_while_another_holds_the_workspace() {
    let (dir, config) = shop_dir();
    cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    let ws = dir.path().join("ws");
    assert!(!ws.join(".allframe/lock").exists(), "released and removed");
    std::fs::write(&config, SHOP.replace("User registration", "Users")).expect("edit");

    // Another process (this one) holds the lock as a running ignite would.
    let lock = std::fs::File::create(ws.join(".allframe/lock")).expect("lock file");
    lock.lock().expect("lock");
    let before = snapshot(&ws);
    for args in [
        &["ignite", "--out", "ws"][..],
        &["ignite", "--out", "ws", "--dry-run"],
    ] {
        let run = cargo_allframe(dir.path(), args).failed();
        assert!(
            run.stderr.contains("another `cargo allframe ignite`"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(".allframe/lock"), "{}", run.stderr);
        assert_eq!(snapshot(&ws), before, "{args:?}");
    }
    drop(lock);
    let run = cargo_allframe(dir.path(), &["ignite", "--out", "ws"]).ok();
    assert_eq!(
        listed(&run.stdout)["README.md"],
        "updated",
        "{}",
        run.stdout
    );
}
