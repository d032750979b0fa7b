//! The output directory of ignite and its memory of what ignite wrote.
//!
//! `.allframe/manifest.json` records, for every file ignite owns, the sha256 of the content it
//! last wrote. On a re-run a file is written when absent, overwritten when it still has the
//! recorded content, and kept (listed as user-modified) when it was edited or was never written
//! by ignite; `--force` overwrites those too. This module never decides *what* to generate.

use std::collections::BTreeMap;
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CliError;

/// The manifest's path inside the output directory.
pub const MANIFEST: &str = ".allframe/manifest.json";

/// One file ignite wants on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Relative to the workspace root, `/`-separated.
    pub path: String,
    /// The content.
    pub contents: Vec<u8>,
}

impl PlannedFile {
    /// A file at `path` with `contents`.
    pub fn new(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
        }
    }
}

/// What ignite records in `.allframe/manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The tool and version that last wrote the workspace.
    pub generator: String,
    /// Relative path → sha256 (hex) of the content ignite wrote there.
    pub files: BTreeMap<String, String>,
}

/// The sha256 of `bytes`, as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// What happens to one planned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Absent: written.
    Create,
    /// Present with the recorded content and different new content: overwritten.
    Update,
    /// Present with exactly the new content: left as is.
    Unchanged,
    /// Edited since ignite wrote it, or not written by ignite: left as is.
    Keep,
    /// Edited or not written by ignite, overwritten because of `--force`.
    Overwrite,
}

impl Action {
    /// True when the file is written.
    pub fn writes(self) -> bool {
        matches!(self, Action::Create | Action::Update | Action::Overwrite)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "written",
            Action::Update => "updated",
            Action::Unchanged => "unchanged",
            Action::Keep => "kept",
            Action::Overwrite => "overwritten",
        })
    }
}

/// The action decided for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Relative path.
    pub path: String,
    /// What happens to it.
    pub action: Action,
}

/// An output directory: where it is and what ignite recorded there.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    manifest: Manifest,
}

impl Workspace {
    /// Opens `root` for writing. A directory that exists, is not empty and has no manifest is
    /// refused unless `force`; with `force` an unreadable manifest counts as absent. `allowed`
    /// (the architecture file being ignited) does not count as content: a directory holding
    /// only its own `architecture.toml` can be ignited in place.
    pub fn open(root: &Path, force: bool, allowed: Option<&Path>) -> Result<Self, CliError> {
        let empty = || Self {
            root: root.to_path_buf(),
            manifest: Manifest::default(),
        };
        match std::fs::metadata(root) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(empty()),
            Err(e) => return Err(CliError::io("inspect", root, e)),
            Ok(meta) if !meta.is_dir() => {
                return Err(CliError::OutNotADirectory {
                    dir: root.to_path_buf(),
                });
            }
            Ok(_) => {}
        }
        let manifest_path = root.join(MANIFEST);
        match std::fs::read(&manifest_path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(manifest) => Ok(Self {
                    root: root.to_path_buf(),
                    manifest,
                }),
                Err(_) if force => Ok(empty()),
                Err(source) => Err(CliError::Manifest {
                    path: manifest_path,
                    source,
                }),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let allowed = allowed.and_then(|p| p.canonicalize().ok());
                let mut entries = std::fs::read_dir(root)
                    .map_err(|e| CliError::io("list", root, e))?
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().canonicalize().ok() != allowed);
                if entries.next().is_some() && !force {
                    return Err(CliError::ForeignOutDir {
                        dir: root.to_path_buf(),
                    });
                }
                Ok(empty())
            }
            Err(e) => Err(CliError::io("read", manifest_path, e)),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the manifest recorded.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The path of `relative` on disk.
    fn path_of(&self, relative: &str) -> PathBuf {
        relative
            .split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    /// Decides, for every planned file, whether it is written, updated, kept or unchanged.
    pub fn decide(&self, plan: &[PlannedFile], force: bool) -> Result<Vec<Decision>, CliError> {
        plan.iter()
            .map(|file| {
                let path = self.path_of(&file.path);
                let action = match std::fs::read(&path) {
                    Err(e) if e.kind() == ErrorKind::NotFound => Action::Create,
                    Err(e) => return Err(CliError::io("read", path, e)),
                    Ok(current) => {
                        let current = sha256(&current);
                        let recorded = self.manifest.files.get(&file.path);
                        if current == sha256(&file.contents) {
                            Action::Unchanged
                        } else if recorded == Some(&current) {
                            Action::Update
                        } else if force {
                            Action::Overwrite
                        } else {
                            Action::Keep
                        }
                    }
                };
                Ok(Decision {
                    path: file.path.clone(),
                    action,
                })
            })
            .collect()
    }

    /// Writes the files `decisions` say to write, then the manifest: the hash of every planned
    /// file now on disk as ignite wrote it; kept files keep their old record.
    pub fn apply(
        &mut self,
        plan: &[PlannedFile],
        decisions: &[Decision],
        generator: &str,
    ) -> Result<(), CliError> {
        for (file, decision) in plan.iter().zip(decisions) {
            if decision.action.writes() {
                let path = self.path_of(&file.path);
                write_file(&path, &file.contents)?;
            }
            if decision.action != Action::Keep {
                self.manifest
                    .files
                    .insert(file.path.clone(), sha256(&file.contents));
            }
        }
        self.manifest.generator = generator.to_owned();
        let mut json =
            serde_json::to_vec_pretty(&self.manifest).map_err(|source| CliError::Manifest {
                path: self.root.join(MANIFEST),
                source,
            })?;
        json.push(b'\n');
        write_file(&self.path_of(MANIFEST), &json)
    }
}

/// Writes `contents` to `path`, creating its directory.
fn write_file(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| CliError::io("create", parent, e))?;
    }
    std::fs::write(path, contents).map_err(|e| CliError::io("write", path, e))
}

#[cfg(test)]
mod tests {
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
}
