//! Staged writes: a failure before anything is in place changes nothing; an interrupted run
//! is completed by the next plain run; leftovers of a crash are swept.

use super::*;

/// The shop without its catalog service, and without messaging.
fn shop_v1() -> String {
    SHOP.replace("[services.messaging]\npattern = \"outbox\"\n", "")
        .replace(
            "[[services]]\nname = \"catalog\"\ntype = \"stateless\"\n",
            "",
        )
}

/// A workspace written from the shop's first version, with two files edited by the user.
fn edited_workspace() -> (tempfile::TempDir, PathBuf) {
    let (dir, root) = brand_new();
    static V1: std::sync::OnceLock<Vec<PlannedFile>> = std::sync::OnceLock::new();
    let v1 = V1.get_or_init(|| shop_plan(&shop_v1()));
    run(&root, v1, false).expect("first version");
    for path in ["README.md", "services/user-service/src/main.rs"] {
        let path = root.join(path);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, format!("{text}\n// mine\n")).expect("edit");
    }
    (dir, root)
}

/// The small plan's first version, with its README edited by the user.
fn edited_small() -> (tempfile::TempDir, PathBuf) {
    let (dir, root) = brand_new();
    run(&root, &small("v1"), false).expect("first version");
    std::fs::write(root.join("README.md"), "mine").expect("edit");
    (dir, root)
}

/// A run to interrupt: where it starts, what it writes, and whether to try every `k` (the
/// shop's hundred files on a slow disk take too long; a sample of `k` covers its beginning,
/// middle and end).
struct Case {
    name: &'static str,
    scenario: Scenario,
    plan: Vec<PlannedFile>,
    every_k: bool,
}

fn cases() -> Vec<Case> {
    let shop = shop_plan(SHOP);
    vec![
        Case {
            name: "brand-new small",
            scenario: brand_new,
            plan: small("v2"),
            every_k: true,
        },
        Case {
            name: "edited small",
            scenario: edited_small,
            plan: small("v2"),
            every_k: true,
        },
        Case {
            name: "brand-new shop",
            scenario: brand_new,
            plan: shop.clone(),
            every_k: false,
        },
        Case {
            name: "edited shop",
            scenario: edited_workspace,
            plan: shop,
            every_k: false,
        },
    ]
}

/// The `k`s of `1..=n` to fail: all of them, or the first three, the middle and the last three.
fn ks(n: usize, every: bool) -> Vec<usize> {
    let mut ks: Vec<usize> = if every {
        (1..=n).collect()
    } else {
        [1, 2, 3, n / 2, n.saturating_sub(2), n.saturating_sub(1), n]
            .into_iter()
            .filter(|k| (1..=n).contains(k))
            .collect()
    };
    ks.sort_unstable();
    ks.dedup();
    ks
}

#[test]
fn a_failure_before_anything_is_in_place_leaves_the_directory_exactly_as_it_was() {
    for case in cases() {
        let (counts, _) = clean_run(case.scenario, &case.plan, false);
        // Directory creations, staged files and the manifest's intent record (the first write,
        // the first rename); the last write is the final manifest's, after the files are in
        // place.
        let writes = counts[&Op::Write];
        let failures = ks(counts[&Op::CreateDir], case.every_k)
            .into_iter()
            .map(|k| (Op::CreateDir, k))
            .chain(
                ks(writes - 1, case.every_k)
                    .into_iter()
                    .map(|k| (Op::Write, k)),
            )
            .chain([(Op::Rename, 1)]);
        for (op, k) in failures {
            let (_dir, root) = (case.scenario)();
            let before = tree(&root);
            let error = run_with(Arc::new(Faulty::new(op, k)), &root, &case.plan, false)
                .expect_err("the injected failure stops the run");
            let name = case.name;
            assert!(
                !matches!(error, CliError::Interrupted { .. }),
                "{name}, {op:?} #{k}: {error:?}"
            );
            assert_eq!(tree(&root), before, "{name}, {op:?} #{k}: {error:?}");
            if before.is_empty() {
                assert!(!root.exists(), "{name}, {op:?} #{k}");
            }
        }
    }
}

#[test]
fn an_interrupted_run_is_completed_by_the_next_plain_run() {
    for case in cases() {
        let name = case.name;
        let (counts, expected) = clean_run(case.scenario, &case.plan, false);
        assert!(temps(&expected).is_empty());
        assert!(!expected.contains_key(Path::new(LOCK)));
        // The renames of the intent record, of each file and of the final manifest; and the
        // final manifest's write.
        let failures = ks(counts[&Op::Rename], case.every_k)
            .into_iter()
            .map(|k| (Op::Rename, k))
            .chain([(Op::Write, counts[&Op::Write])]);
        for (op, k) in failures {
            let (_dir, root) = (case.scenario)();
            let error = run_with(Arc::new(Faulty::new(op, k)), &root, &case.plan, false)
                .expect_err("the injected failure stops the run");
            if (op, k) != (Op::Rename, 1) {
                assert!(
                    matches!(error, CliError::Interrupted { .. }),
                    "{name}, {op:?} #{k}: {error:?}"
                );
            }
            let left = tree(&root);
            assert!(temps(&left).is_empty(), "{name}, {op:?} #{k}: {left:?}");
            // Not foreign, and nothing ignite wrote counts as the user's.
            let decisions = run(&root, &case.plan, false).expect("the next plain run");
            assert!(
                decisions.iter().all(|d| d.action != Action::Overwrite),
                "{name}, {op:?} #{k}"
            );
            assert_eq!(tree(&root), expected, "{name}, {op:?} #{k}");
        }
    }
}

#[test]
fn files_an_interrupted_run_put_in_place_stay_ignites_when_the_plan_changes() {
    // The user changes the architecture before re-running: what the interrupted run renamed
    // into place is neither the recorded nor the new content, and must still not count as
    // edited.
    let edits: [(Scenario, &[&str]); 2] = [(brand_new, &[]), (edited_small, &["README.md"])];
    for (scenario, edited) in edits {
        let (counts, _) = clean_run(scenario, &small("v2"), false);
        let (_, expected) = clean_run(scenario, &small("v3"), false);
        for k in 2..counts[&Op::Rename] {
            let (_dir, root) = scenario();
            run_with(
                Arc::new(Faulty::new(Op::Rename, k)),
                &root,
                &small("v2"),
                false,
            )
            .expect_err("the injected failure stops the run");
            let decisions = run(&root, &small("v3"), false).expect("the next plain run");
            let kept: Vec<_> = decisions
                .iter()
                .filter(|d| d.action == Action::Keep)
                .map(|d| d.path.as_str())
                .collect();
            assert_eq!(kept, edited, "rename #{k}");
            assert_eq!(tree(&root), expected, "rename #{k}");
        }
    }
}

#[test]
fn an_interrupted_forced_run_is_completed_without_force() {
    for case in cases().into_iter().filter(|c| c.name.starts_with("edited")) {
        let (counts, expected) = clean_run(case.scenario, &case.plan, true);
        for k in ks(counts[&Op::Rename], case.every_k)
            .into_iter()
            .filter(|k| *k > 1)
        {
            let (_dir, root) = (case.scenario)();
            run_with(
                Arc::new(Faulty::new(Op::Rename, k)),
                &root,
                &case.plan,
                true,
            )
            .expect_err("the injected failure stops the run");
            run(&root, &case.plan, false).expect("the next plain run");
            assert_eq!(tree(&root), expected, "{}, rename #{k}", case.name);
        }
    }
}

#[test]
fn leftovers_of_a_crashed_run_are_never_foreign_never_listed_and_swept() {
    let plan = small("v1");
    let (_, expected) = clean_run(brand_new, &plan, false);

    // Crashed right after taking the lock: only its lock file is left.
    let (_dir, root) = brand_new();
    std::fs::create_dir_all(root.join(STATE_DIR)).expect("mkdir");
    std::fs::write(root.join(LOCK), "").expect("lock file");
    run(&root, &plan, false).expect("not foreign");
    assert_eq!(tree(&root), expected);

    // Crashed while staging: the intent is recorded, some files are staged.
    let (_dir, root) = brand_new();
    std::fs::create_dir_all(root.join("services/a/src")).expect("mkdir");
    std::fs::create_dir_all(root.join(STATE_DIR)).expect("mkdir");
    std::fs::write(root.join(LOCK), "").expect("lock file");
    let intent = Manifest {
        generator: "test".into(),
        files: BTreeMap::new(),
        pending: plan
            .iter()
            .map(|f| (f.path.clone(), sha256(&f.contents)))
            .collect(),
    };
    let manifest = root.join(MANIFEST);
    std::fs::write(&manifest, intent.to_bytes(&manifest).expect("json")).expect("intent");
    for temp in [
        ".Cargo.toml.allframe-tmp-4242",
        "services/a/src/.main.rs.allframe-tmp-4242",
        ".allframe/.manifest.json.allframe-tmp-4243",
    ] {
        std::fs::write(root.join(temp), "half").expect("temp");
    }
    let ws = Workspace::open(&root, false, None).expect("not foreign");
    let decisions = ws.decide(&plan, false).expect("decide");
    assert!(decisions.iter().all(|d| d.action == Action::Create));
    assert_eq!(ws.orphans(&plan).expect("orphans"), Vec::<String>::new());
    drop(ws);
    run(&root, &plan, false).expect("completes");
    assert_eq!(tree(&root), expected);

    // A directory holding nothing but temporary files is not foreign either.
    let (_dir, root) = brand_new();
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::write(root.join(".README.md.allframe-tmp-7"), "half").expect("temp");
    run(&root, &plan, false).expect("not foreign");
    assert_eq!(tree(&root), expected);
}

#[cfg(unix)]
#[test]
fn a_replaced_file_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, root) = brand_new();
    run(&root, &small("v1"), false).expect("v1");
    let script = root.join("services/a/src/main.rs");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    run(&root, &small("v2"), false).expect("v2");
    let mode = std::fs::metadata(&script)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    assert!(
        std::fs::read_to_string(&script)
            .expect("read")
            .contains("v2")
    );
}
