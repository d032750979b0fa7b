//! Rebuild the CLI when anything under `archetypes/` changes, new files included: the scaffold
//! is embedded with `include_dir`, which only tracks the files that existed at the last build.
fn main() {
    println!("cargo:rerun-if-changed=../archetypes");
}
