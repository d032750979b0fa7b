//! Compile-fail UI tests: every class of config and attribute mistake, with its exact message.
//!
//! trybuild compiles each case in its own project under the target directory; the macro reads
//! `config` relative to that project's manifest, so the fixtures are copied there first
//! (askama's `testing/tests/ui.rs` does the same with links).

use std::path::PathBuf;

fn trybuild_project_dir() -> PathBuf {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(allframe_tests::manifest_dir().join("Cargo.toml"))
        .no_deps()
        .exec()
        .expect("cargo metadata");
    metadata
        .target_directory
        .into_std_path_buf()
        .join("tests/trybuild")
        .join(env!("CARGO_PKG_NAME"))
}

#[test]
fn ui() {
    let project = trybuild_project_dir();
    std::fs::create_dir_all(&project).expect("trybuild project dir");
    let fixtures = allframe_tests::manifest_dir().join("ui/fixtures");
    for entry in std::fs::read_dir(&fixtures).expect("fixtures") {
        let path = entry.expect("fixture").path();
        let name = path.file_name().expect("file name");
        std::fs::copy(&path, project.join(name)).expect("copy fixture");
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*/fail/*.rs");
}
