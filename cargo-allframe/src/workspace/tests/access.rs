//! One ignite at a time; a dry run writes nothing.

use super::*;

#[test]
fn a_second_ignite_is_refused_while_the_first_holds_the_workspace() {
    let (_dir, root) = brand_new();
    let first = Workspace::open(&root, false, None).expect("first");
    for second in [
        Workspace::open(&root, false, None),
        Workspace::open(&root, true, None),
        Workspace::preview(&root, false, None),
    ] {
        match second {
            Err(CliError::Locked { lock }) => assert_eq!(lock, root.join(LOCK)),
            other => panic!("expected a refusal: {other:?}"),
        }
    }
    drop(first);
    assert!(!root.exists(), "the first changed nothing and left nothing");
    run(&root, &small("v1"), false).expect("free again");
    assert!(!root.join(LOCK).exists(), "no lock file left behind");
}

#[test]
fn concurrent_ignites_never_interleave() {
    let plan = shop_plan(SHOP);
    let (_, expected) = clean_run(brand_new, &plan, false);
    let (_dir, root) = brand_new();
    for round in 0..4 {
        let start = std::sync::Barrier::new(6);
        let results: Vec<_> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..6)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        run(&root, &plan, false)
                    })
                })
                .collect();
            runs.into_iter()
                .map(|r| r.join().expect("no panic"))
                .collect()
        });
        for result in &results {
            assert!(
                matches!(result, Ok(_) | Err(CliError::Locked { .. })),
                "round {round}: {result:?}"
            );
        }
        assert!(
            results.iter().any(Result::is_ok) || round > 0,
            "{results:?}"
        );
        assert_eq!(tree(&root), expected, "round {round}");
    }
}

#[test]
fn a_preview_creates_nothing_and_cannot_write() {
    // A directory that does not exist, or exists without `.allframe/`: nothing is created,
    // not even for the time of the preview.
    let (dir, root) = brand_new();
    let preview = Workspace::preview(&root, false, None).expect("absent dir");
    let decisions = preview.decide(&small("v1"), false).expect("decide");
    assert!(decisions.iter().all(|d| d.action == Action::Create));
    assert!(tree(dir.path()).is_empty());
    drop(preview);
    std::fs::create_dir(&root).expect("mkdir");
    let preview = Workspace::preview(&root, false, None).expect("empty dir");
    assert!(tree(&root).is_empty());
    drop(preview);

    // A workspace: no lock file while previewing, and previews share.
    run(&root, &small("v1"), false).expect("v1");
    let before = tree(&root);
    let mut preview = Workspace::preview(&root, false, None).expect("workspace");
    let other = Workspace::preview(&root, false, None).expect("a second preview");
    let decisions = preview.decide(&small("v2"), false).expect("decide");
    assert_eq!(tree(&root), before, "no lock file");
    assert!(matches!(
        preview.apply(&small("v2"), &decisions, "test"),
        Err(CliError::PreviewOnly { .. })
    ));
    drop((preview, other));
    assert_eq!(tree(&root), before, "nothing written");
}
