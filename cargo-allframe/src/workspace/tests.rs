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

// ---------------------------------------------------------------------------------------------
// Helpers

/// What is at one path of a tree, links not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Dir,
    Link(PathBuf),
}

/// Everything below `root` (links not followed), by relative path; empty when `root` is absent.
fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(list) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in list {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let relative = path.strip_prefix(root).expect("below").to_path_buf();
            let entry = if meta.file_type().is_symlink() {
                Entry::Link(std::fs::read_link(&path).expect("link"))
            } else if meta.is_dir() {
                pending.push(path);
                Entry::Dir
            } else {
                Entry::File(std::fs::read(&path).expect("read"))
            };
            entries.insert(relative, entry);
        }
    }
    entries
}

fn temps(tree: &BTreeMap<PathBuf, Entry>) -> Vec<&PathBuf> {
    tree.keys()
        .filter(|p| p.file_name().is_some_and(fs::is_temp))
        .collect()
}

/// One whole write run through `fs`: open, decide, apply, release.
fn run_with(
    fs: Arc<dyn Fs>,
    root: &Path,
    plan: &[PlannedFile],
    force: bool,
) -> Result<Vec<Decision>, CliError> {
    let mut ws = Workspace::open_with(fs, root, Access::Write, force, None)?;
    let decisions = ws.decide(plan, force)?;
    ws.apply(plan, &decisions, "test")?;
    Ok(decisions)
}

fn run(root: &Path, plan: &[PlannedFile], force: bool) -> Result<Vec<Decision>, CliError> {
    run_with(Arc::new(RealFs), root, plan, force)
}

fn small(version: &str) -> Vec<PlannedFile> {
    vec![
        PlannedFile::new("Cargo.toml", format!("workspace {version}")),
        PlannedFile::new("README.md", format!("readme {version}")),
        PlannedFile::new("services/a/Cargo.toml", format!("a {version}")),
        PlannedFile::new(
            "services/a/src/main.rs",
            format!("fn main() {{}} // {version}"),
        ),
        PlannedFile::new(
            "infrastructure/docker/a/Dockerfile",
            format!("FROM a {version}"),
        ),
    ]
}

const SHOP: &str = r#"[architecture]
name = "shop"

[[services]]
name = "user-service"
type = "stateless"
protocols = ["rest", "grpc"]

[services.domain]
entities = ["User"]

[services.messaging]
pattern = "outbox"

[[services]]
name = "catalog"
type = "stateless"
"#;

/// Everything ignite plans for a two-service architecture (infrastructure included).
fn shop_plan(architecture: &str) -> Vec<PlannedFile> {
    let source = allframe_config::SourceFile::new("architecture.toml", architecture);
    let architecture_model = allframe_config::check(&source).expect("valid");
    let runtime = crate::context::RuntimeSource::Version("0.1.0".into());
    let renderer = crate::templates::Renderer::new().expect("templates parse");
    crate::plan::plan(
        &architecture_model,
        architecture.as_bytes(),
        &runtime,
        &renderer,
    )
    .expect("plan")
    .files
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

// ---------------------------------------------------------------------------------------------
// Links below the output directory

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
