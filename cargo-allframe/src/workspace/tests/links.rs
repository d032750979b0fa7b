//! Links below the output directory are never followed; planned paths never leave it.

use super::*;

/// A workspace written from `small("v1")`, and an empty directory outside it.
fn written_with_outside() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("ws");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    run(&root, &small("v1"), false).expect("first run");
    (dir, root, outside)
}

/// Runs `small("v2")` with and without force, and as a preview: each is refused with the
/// link named, and neither the workspace nor `outside` changes.
#[cfg(unix)]
fn assert_refused(root: &Path, outside: &Path, link: &Path) {
    let (before, outside_before) = (tree(root), tree(outside));
    for force in [false, true] {
        match run(root, &small("v2"), force) {
            Err(CliError::Symlink { path }) => assert_eq!(path, link, "force {force}"),
            other => panic!("expected a refusal naming {}: {other:?}", link.display()),
        }
        assert_eq!(tree(root), before, "nothing written (force {force})");
        assert_eq!(tree(outside), outside_before, "nothing written outside");
    }
    let preview = Workspace::preview(root, false, None).expect("preview");
    assert!(matches!(
        preview.decide(&small("v2"), true),
        Err(CliError::Symlink { .. })
    ));
}

#[cfg(unix)]
#[test]
fn a_linked_directory_below_the_output_is_never_followed() {
    let (_dir, root, outside) = written_with_outside();
    // The user moved `services/` elsewhere and left a link: even an identical copy out there
    // is neither read nor written.
    std::fs::rename(root.join("services"), outside.join("services")).expect("move");
    symlink(&outside.join("services"), &root.join("services"));
    assert_refused(&root, &outside, &root.join("services"));
}

#[cfg(unix)]
#[test]
fn a_linked_file_is_never_written_through_not_even_with_force() {
    let (_dir, root, outside) = written_with_outside();
    let target = outside.join("precious.txt");
    // The same content as ignite recorded: following the link would count it as ignite's
    // own and overwrite it even without --force.
    std::fs::write(&target, "readme v1").expect("write");
    std::fs::remove_file(root.join("README.md")).expect("rm");
    symlink(&target, &root.join("README.md"));
    assert_refused(&root, &outside, &root.join("README.md"));
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "readme v1");
}

#[cfg(unix)]
#[test]
fn a_dangling_link_is_refused_and_its_target_never_created() {
    let (_dir, root, outside) = written_with_outside();
    std::fs::remove_file(root.join("services/a/Cargo.toml")).expect("rm");
    let target = outside.join("created-through-the-link");
    symlink(&target, &root.join("services/a/Cargo.toml"));
    assert_refused(&root, &outside, &root.join("services/a/Cargo.toml"));
    assert!(!target.exists());
}

#[cfg(unix)]
#[test]
fn links_at_ignites_own_files_are_refused() {
    let (_dir, root, outside) = written_with_outside();
    let manifest = root.join(MANIFEST);
    std::fs::rename(&manifest, outside.join("manifest.json")).expect("move");
    symlink(&outside.join("manifest.json"), &manifest);
    match Workspace::open(&root, false, None) {
        Err(CliError::Symlink { path }) => assert_eq!(path, manifest),
        other => panic!("expected a refusal: {other:?}"),
    }
    std::fs::remove_file(&manifest).expect("rm");
    std::fs::rename(outside.join("manifest.json"), &manifest).expect("move back");

    let state = root.join(STATE_DIR);
    std::fs::rename(&state, outside.join("state")).expect("move");
    symlink(&outside.join("state"), &state);
    let before = tree(&outside);
    match Workspace::open(&root, false, None) {
        Err(CliError::Symlink { path }) => assert_eq!(path, state),
        other => panic!("expected a refusal: {other:?}"),
    }
    assert_eq!(
        tree(&outside),
        before,
        "no lock file created through the link"
    );
}

#[cfg(unix)]
#[test]
fn the_output_directory_itself_may_be_a_link() {
    let dir = tempfile::tempdir().expect("temp dir");
    let real = dir.path().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    let link = dir.path().join("ws");
    symlink(&real, &link);
    run(&link, &small("v1"), false).expect("through the link given as --out");
    run(&link, &small("v2"), false).expect("and again");
    assert_eq!(
        std::fs::read_to_string(real.join("services/a/Cargo.toml")).expect("read"),
        "a v2"
    );
}

#[test]
fn planned_paths_never_leave_the_output_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("ws");
    for bad in [
        "../escape",
        "a/../../escape",
        "/etc/escape",
        "a//b",
        ".allframe/x",
        "",
    ] {
        let plan = [PlannedFile::new(bad, "x")];
        match run(&root, &plan, true) {
            Err(CliError::UnsafePath { path }) => assert_eq!(path, bad),
            other => panic!("{bad:?}: expected a refusal, got {other:?}"),
        }
    }
    assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));
}

#[test]
fn a_directory_where_a_file_belongs_is_refused_before_writing() {
    let (_dir, root, _outside) = written_with_outside();
    std::fs::remove_file(root.join("README.md")).expect("rm");
    std::fs::create_dir(root.join("README.md")).expect("mkdir");
    let before = tree(&root);
    match run(&root, &small("v2"), true) {
        Err(CliError::Obstructed { path, .. }) => assert_eq!(path, root.join("README.md")),
        other => panic!("expected a refusal: {other:?}"),
    }
    assert_eq!(tree(&root), before);
}
