//! The workspace's decisions and refusals, and the helpers of the tests of links
//! ([`links`]), staged writes and their recovery ([`recovery`]), the lock and dry runs
//! ([`access`]) and orphans ([`orphans`]).

mod access;
mod links;
mod orphans;
mod recovery;

use super::fs::{Faulty, Op};
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
    // Refused before anything is created in it.
    let counting = Arc::new(Faulty::counting());
    Workspace::open_with(counting.clone(), dir.path(), Access::Write, false, None)
        .expect_err("foreign");
    assert_eq!(counting.count(Op::CreateDir), 0);
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

/// A starting point of a run, set up in a new temporary directory; returns it and the root.
type Scenario = fn() -> (tempfile::TempDir, PathBuf);

/// The first run into a directory that does not exist yet.
fn brand_new() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("ws");
    (dir, root)
}

/// How many operations of `op` a clean run of `plan` over `scenario` makes, and the tree it
/// leaves.
fn clean_run(
    scenario: Scenario,
    plan: &[PlannedFile],
    force: bool,
) -> (BTreeMap<Op, usize>, BTreeMap<PathBuf, Entry>) {
    let (_dir, root) = scenario();
    let counting = Arc::new(Faulty::counting());
    run_with(counting.clone(), &root, plan, force).expect("clean run");
    let counts = [Op::CreateDir, Op::Write, Op::Rename]
        .into_iter()
        .map(|op| (op, counting.count(op)))
        .collect();
    (counts, tree(&root))
}
