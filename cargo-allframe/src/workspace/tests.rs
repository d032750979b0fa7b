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

// ---------------------------------------------------------------------------------------------
// Staged writes, interrupted runs and their recovery

/// The shop without its catalog service, and without messaging.
fn shop_v1() -> String {
    SHOP.replace("[services.messaging]\npattern = \"outbox\"\n", "")
        .replace(
            "[[services]]\nname = \"catalog\"\ntype = \"stateless\"\n",
            "",
        )
}

/// A starting point of a run, set up in a new temporary directory; returns it and the root.
type Scenario = fn() -> (tempfile::TempDir, PathBuf);

/// The first run into a directory that does not exist yet.
fn brand_new() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("ws");
    (dir, root)
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

use super::fs::{Faulty, Op};

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

// ---------------------------------------------------------------------------------------------
// One ignite at a time; dry runs write nothing

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
    let (dir, root) = brand_new();
    let preview = Workspace::preview(&root, false, None).expect("absent dir");
    let decisions = preview.decide(&small("v1"), false).expect("decide");
    assert!(decisions.iter().all(|d| d.action == Action::Create));
    drop(preview);
    assert!(tree(dir.path()).is_empty());

    run(&root, &small("v1"), false).expect("v1");
    let before = tree(&root);
    let mut preview = Workspace::preview(&root, false, None).expect("workspace");
    let decisions = preview.decide(&small("v2"), false).expect("decide");
    assert!(matches!(
        preview.apply(&small("v2"), &decisions, "test"),
        Err(CliError::PreviewOnly { .. })
    ));
    drop(preview);
    assert_eq!(tree(&root), before, "no lock file, nothing written");
}

// ---------------------------------------------------------------------------------------------
// Orphans

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
