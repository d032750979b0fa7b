//! Files no longer planned are kept, recorded and listed.

use super::*;

fn with_service_b(version: &str) -> Vec<PlannedFile> {
    let mut plan = small(version);
    plan.extend([
        PlannedFile::new("services/b/Cargo.toml", format!("b {version}")),
        PlannedFile::new("services/b/src/main.rs", format!("b main {version}")),
        PlannedFile::new(
            "infrastructure/docker/b/Dockerfile",
            format!("FROM b {version}"),
        ),
    ]);
    plan
}

#[test]
fn orphans_are_kept_on_disk_and_in_the_manifest_and_listed() {
    let (_dir, root) = brand_new();
    run(&root, &with_service_b("v1"), false).expect("v1");
    std::fs::write(root.join("services/b/src/main.rs"), "edited").expect("edit");
    std::fs::remove_file(root.join("infrastructure/docker/b/Dockerfile")).expect("rm");

    for _ in 0..2 {
        let mut ws = Workspace::open(&root, false, None).expect("open");
        let v2 = small("v2");
        assert_eq!(
            ws.orphans(&v2).expect("orphans"),
            ["services/b/Cargo.toml", "services/b/src/main.rs"]
        );
        let decisions = ws.decide(&v2, false).expect("decide");
        ws.apply(&v2, &decisions, "test").expect("apply");
        let files = &ws.manifest().files;
        assert_eq!(files["services/b/Cargo.toml"], sha256(b"b v1"));
        assert_eq!(files["services/b/src/main.rs"], sha256(b"b main v1"));
        assert!(!files.contains_key("infrastructure/docker/b/Dockerfile"));
        assert_eq!(files["services/a/Cargo.toml"], sha256(b"a v2"));
        assert_eq!(
            std::fs::read_to_string(root.join("services/b/src/main.rs")).expect("kept"),
            "edited"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("services/b/Cargo.toml")).expect("kept"),
            "b v1"
        );
    }

    // The service comes back: its untouched file is ignite's again, the edited one is kept.
    let ws = Workspace::open(&root, false, None).expect("open");
    let back = with_service_b("v3");
    let decisions = ws.decide(&back, false).expect("decide");
    let action = |path: &str| {
        decisions
            .iter()
            .find(|d| d.path == path)
            .map(|d| d.action)
            .expect("decided")
    };
    assert_eq!(action("services/b/Cargo.toml"), Action::Update);
    assert_eq!(action("services/b/src/main.rs"), Action::Keep);
    assert_eq!(ws.orphans(&back).expect("orphans"), Vec::<String>::new());
}

#[test]
fn files_an_interrupted_run_put_in_place_are_orphans_when_the_plan_drops_them() {
    let (_dir, root) = brand_new();
    run(&root, &small("v1"), false).expect("v1");
    let v2 = with_service_b("v2");
    // Stop before the last file (infrastructure/docker/b/Dockerfile) and the final manifest.
    let (counts, _) = clean_run(
        || {
            let (dir, root) = brand_new();
            run(&root, &small("v1"), false).expect("v1");
            (dir, root)
        },
        &v2,
        false,
    );
    run_with(
        Arc::new(Faulty::new(Op::Rename, counts[&Op::Rename] - 1)),
        &root,
        &v2,
        false,
    )
    .expect_err("interrupted");
    let ws = Workspace::open(&root, false, None).expect("open");
    assert!(!ws.manifest().files.contains_key("services/b/Cargo.toml"));
    assert_eq!(
        ws.orphans(&small("v3")).expect("orphans"),
        ["services/b/Cargo.toml", "services/b/src/main.rs"],
        "written by the interrupted run: ignite's; the Dockerfile never got there"
    );
}
