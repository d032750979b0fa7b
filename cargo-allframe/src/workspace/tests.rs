//! The workspace's decisions, refusals, orphans, staged writes and their recovery.

use super::*;

fn actions(ws: &Workspace, plan: &[PlannedFile], force: bool) -> Vec<Action> {
    ws.decide(plan, force)
        .expect("decide")
        .into_iter()
        .map(|d| d.action)
        .collect()
}

#[test]
fn edits_are_kept_untouched_files_follow_and_force_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("ws");
    let mut ws = Workspace::open(&root, false, None).expect("absent dir");
    let v1 = vec![
        PlannedFile::new("a.txt", "a1"),
        PlannedFile::new("sub/b.txt", "b1"),
    ];
    let decisions = ws.decide(&v1, false).expect("decide");
    assert!(decisions.iter().all(|d| d.action == Action::Create));
    ws.apply(&v1, &decisions, "test").expect("apply");

    drop(ws);

    std::fs::write(root.join("sub/b.txt"), "edited").expect("edit");
    let mut ws = Workspace::open(&root, false, None).expect("own workspace");
    let v2 = vec![
        PlannedFile::new("a.txt", "a2"),
        PlannedFile::new("sub/b.txt", "b2"),
        PlannedFile::new("c.txt", "c"),
    ];
    assert_eq!(
        actions(&ws, &v2, false),
        [Action::Update, Action::Keep, Action::Create]
    );
    let decisions = ws.decide(&v2, false).expect("decide");
    ws.apply(&v2, &decisions, "test").expect("apply");
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "a2");
    assert_eq!(
        std::fs::read_to_string(root.join("sub/b.txt")).unwrap(),
        "edited"
    );

    drop(ws);

    // Still kept on the next run: the record was not replaced by the edited content.
    let ws = Workspace::open(&root, false, None).expect("own workspace");
    assert_eq!(ws.manifest().files["sub/b.txt"], sha256(b"b1"));
    assert_eq!(
        actions(&ws, &v2, false),
        [Action::Unchanged, Action::Keep, Action::Unchanged]
    );
    assert_eq!(
        actions(&ws, &v2, true),
        [Action::Unchanged, Action::Overwrite, Action::Unchanged]
    );
}

#[test]
fn foreign_directories_are_refused_unless_forced() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
    let error = Workspace::open(dir.path(), false, None).expect_err("foreign");
    assert!(matches!(error, CliError::ForeignOutDir { .. }));
    let ws = Workspace::open(dir.path(), true, None).expect("forced");
    let plan = [PlannedFile::new("notes.txt", "generated")];
    assert_eq!(actions(&ws, &plan, false), [Action::Keep]);

    let empty = tempfile::tempdir().expect("temp dir");
    Workspace::open(empty.path(), false, None).expect("an empty directory is fine");

    // A directory holding only the architecture file being ignited is not foreign.
    let in_place = tempfile::tempdir().expect("temp dir");
    let config = in_place.path().join("architecture.toml");
    std::fs::write(&config, "[architecture]\n").expect("write");
    Workspace::open(in_place.path(), false, Some(&config)).expect("in place");
    let error = Workspace::open(in_place.path(), false, None).expect_err("foreign");
    assert!(matches!(error, CliError::ForeignOutDir { .. }));
}
