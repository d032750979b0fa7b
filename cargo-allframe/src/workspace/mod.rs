//! The output directory of ignite and its memory of what ignite wrote.
//!
//! `.allframe/manifest.json` records, for every file ignite owns, the sha256 of the content it
//! last wrote. On a re-run a file is written when absent, overwritten when it still has the
//! recorded content, and kept (listed as user-modified) when it was edited or was never written
//! by ignite; `--force` overwrites those too. Files recorded earlier that are no longer planned
//! are orphans: kept on disk and in the manifest, and reported.
//!
//! Nothing below the output directory is ever followed when it is a symbolic link: a link
//! where ignite reads or writes is refused before anything is written. A run holds
//! `.allframe/lock` ([`lock`]) from [`Workspace::open`] (module `open`) to its end, and writes
//! in two phases (module `commit`, driven by [`Workspace::apply`]): every file is staged as a
//! temporary file beside its destination, then renamed into place, with the manifest recording
//! beforehand what is about to be renamed, so that a run that fails part-way is completed by
//! the next plain ignite. docs/ignite.md describes the guarantees.
//!
//! This module never decides *what* to generate.

mod commit;
pub mod fs;
pub mod lock;
pub mod manifest;
mod open;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::error::CliError;
use commit::Writer;
pub use fs::{Fs, Kind, RealFs};
pub use lock::{LOCK, Lock};
pub use manifest::{MANIFEST, Manifest, STATE_DIR, sha256};

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
    /// The sha256 of the file on disk when decided; `None` when there was none.
    pub current: Option<String>,
}

/// How a workspace is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// To write: creates the directory if needed and holds the lock exclusively.
    Write,
    /// To preview (a dry run): creates nothing; holds the lock shared when the lock file
    /// exists, so a preview never reads a workspace another ignite is writing.
    Preview,
}

/// An output directory: where it is, what ignite recorded there, and the run's hold on it.
///
/// Dropping a workspace releases its lock (removing the lock file). If the run changed nothing,
/// the directories opening created (the output directory, `.allframe`) are removed again, so a
/// refused or failed run leaves the directory exactly as it was.
#[derive(Debug)]
pub struct Workspace {
    fs: Arc<dyn Fs>,
    root: PathBuf,
    manifest: Manifest,
    /// The manifest's bytes as found (`None`: there was none), put back when a run fails
    /// before changing anything.
    found: Option<Vec<u8>>,
    lock: Option<Lock>,
    /// Directories opening created, outermost first.
    scaffold: Vec<PathBuf>,
    /// True once the run left something that must stay (a manifest).
    changed: bool,
}

/// What is at a planned path, found without following links.
enum Found {
    Absent,
    File(PathBuf),
}

impl Workspace {
    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the manifest recorded.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// What is at `path`, not following a link.
    fn inspect(&self, path: &Path) -> Result<Option<Kind>, CliError> {
        self.fs
            .kind(path)
            .map_err(|e| CliError::io("inspect", path, e))
    }

    /// The path of the planned `relative` on disk, refusing anything but plain names (no
    /// `..`, no absolute path, nothing inside ignite's own state directory).
    fn path_of(&self, relative: &str) -> Result<PathBuf, CliError> {
        let unsafe_path = || CliError::UnsafePath {
            path: relative.to_owned(),
        };
        let mut path = self.root.clone();
        for (i, part) in relative.split('/').enumerate() {
            let mut components = Path::new(part).components();
            let plain = matches!(components.next(), Some(Component::Normal(_)))
                && components.next().is_none()
                && !part.contains('\\')
                && !(i == 0 && part == STATE_DIR);
            if !plain {
                return Err(unsafe_path());
            }
            path.push(part);
        }
        Ok(path)
    }

    /// Finds the file at `relative` without following a link anywhere below the root: a link
    /// is refused with [`CliError::Symlink`], a directory (or special file) where a file
    /// belongs, or a file where a directory belongs, with [`CliError::Obstructed`].
    fn find(&self, relative: &str) -> Result<Found, CliError> {
        let full = self.path_of(relative)?;
        let mut path = self.root.clone();
        let parts: Vec<_> = relative.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let last = i + 1 == parts.len();
            match self.inspect(&path)? {
                None => return Ok(Found::Absent),
                Some(Kind::Symlink) => return Err(CliError::Symlink { path }),
                Some(Kind::Dir) if !last => {}
                Some(Kind::File) if last => return Ok(Found::File(full)),
                Some(_) => {
                    let needed = if last {
                        "a regular file"
                    } else {
                        "a directory"
                    };
                    return Err(CliError::Obstructed { path, needed });
                }
            }
        }
        Ok(Found::Absent)
    }

    /// The sha256 of the file at `relative`, `None` when there is none; never through a link.
    fn current(&self, relative: &str) -> Result<Option<String>, CliError> {
        match self.find(relative)? {
            Found::Absent => Ok(None),
            Found::File(path) => {
                let bytes = self
                    .fs
                    .read(&path)
                    .map_err(|e| CliError::io("read", &path, e))?;
                Ok(Some(sha256(&bytes)))
            }
        }
    }

    /// Decides, for every planned file, whether it is written, updated, kept or unchanged.
    /// Refuses (before anything is written) a planned path that is, or lies below, a
    /// symbolic link, or that a directory or special file occupies.
    pub fn decide(&self, plan: &[PlannedFile], force: bool) -> Result<Vec<Decision>, CliError> {
        plan.iter()
            .map(|file| {
                let current = self.current(&file.path)?;
                let new = sha256(&file.contents);
                let action = match &current {
                    None => Action::Create,
                    Some(hash) if *hash == new => Action::Unchanged,
                    Some(hash) if self.manifest.owns(&file.path, hash) => Action::Update,
                    Some(_) if force => Action::Overwrite,
                    Some(_) => Action::Keep,
                };
                Ok(Decision {
                    path: file.path.clone(),
                    action,
                    current,
                })
            })
            .collect()
    }

    /// The files ignite recorded that `plan` no longer contains and that are still on disk,
    /// sorted. They are never deleted: [`Workspace::apply`] keeps their records.
    pub fn orphans(&self, plan: &[PlannedFile]) -> Result<Vec<String>, CliError> {
        Ok(self.orphan_records(plan)?.into_keys().collect())
    }

    /// Each orphan with the record it keeps: the recorded hash, or the one an interrupted run
    /// was writing when the file holds exactly that. Records of files no longer on disk are
    /// dropped.
    fn orphan_records(&self, plan: &[PlannedFile]) -> Result<BTreeMap<String, String>, CliError> {
        let planned: BTreeSet<&str> = plan.iter().map(|f| f.path.as_str()).collect();
        let candidates: BTreeSet<&String> = self
            .manifest
            .files
            .keys()
            .chain(self.manifest.pending.keys())
            .filter(|path| !planned.contains(path.as_str()))
            .collect();
        let mut orphans = BTreeMap::new();
        for path in candidates {
            let recorded = self.manifest.files.get(path);
            let pending = self.manifest.pending.get(path);
            let keep = match self.current(path) {
                Ok(None) | Err(CliError::UnsafePath { .. }) => None,
                Ok(Some(current)) if pending == Some(&current) => pending,
                Ok(Some(_)) => recorded,
                // Behind a link or obstructed: not looked at, and its record stays.
                Err(CliError::Symlink { .. } | CliError::Obstructed { .. }) => recorded,
                Err(error) => return Err(error),
            };
            if let Some(hash) = keep {
                orphans.insert(path.clone(), hash.clone());
            }
        }
        Ok(orphans)
    }

    /// Writes the files `decisions` (as [`Workspace::decide`] returned them for `plan`) say
    /// to write, then the manifest: the hash of every planned file now on disk as ignite wrote
    /// it; kept files and orphans keep their old record.
    ///
    /// Either nothing changes (a [`CliError::StageFailed`]: the directory is as it was) or the
    /// manifest records what was being written (a [`CliError::Interrupted`]: the next run
    /// without `--force` completes it). Leftover temporary files of a crashed run are removed
    /// first. After an error, open the workspace again to retry.
    pub fn apply(
        &mut self,
        plan: &[PlannedFile],
        decisions: &[Decision],
        generator: &str,
    ) -> Result<(), CliError> {
        if !self.lock.as_ref().is_some_and(Lock::is_exclusive) {
            return Err(CliError::PreviewOnly {
                dir: self.root.clone(),
            });
        }
        debug_assert!(
            plan.len() == decisions.len()
                && plan.iter().zip(decisions).all(|(f, d)| f.path == d.path),
            "decisions are decide's for this plan"
        );
        commit::sweep(self.fs.as_ref(), &self.root, self.generated_dirs(plan))?;

        let (intent, done) = self.records(plan, decisions, generator)?;
        let mut writes = Vec::new();
        for (file, decision) in plan.iter().zip(decisions) {
            if decision.action.writes() {
                let like = decision.action != Action::Create;
                writes.push((self.path_of(&file.path)?, file, like));
            }
        }

        let manifest_path = self.root.join(MANIFEST);
        if !writes.is_empty() {
            let bytes = intent.to_bytes(&manifest_path)?;
            commit::write_atomic(self.fs.as_ref(), &manifest_path, &bytes)
                .map_err(commit::Failure::nothing_changed)?;
            self.changed = true;
        }

        let mut writer = Writer::new(self.fs.as_ref(), &self.root);
        let mut staged = Vec::with_capacity(writes.len());
        for (path, file, like) in &writes {
            match writer.stage(path, &file.contents, like.then_some(path.as_path())) {
                Ok(temp) => staged.push((temp, path)),
                Err(error) => {
                    writer.discard(staged.iter().map(|(temp, _)| temp));
                    return Err(self.restore(error));
                }
            }
        }
        for (i, (temp, path)) in staged.iter().enumerate() {
            if let Err(source) = self.fs.rename(temp, path) {
                writer.discard(staged[i..].iter().map(|(temp, _)| temp));
                return Err(CliError::Interrupted {
                    action: "rename into place",
                    path: path.to_path_buf(),
                    source,
                });
            }
        }

        let bytes = done.to_bytes(&manifest_path)?;
        commit::write_atomic(self.fs.as_ref(), &manifest_path, &bytes).map_err(|failure| {
            if self.changed {
                failure.interrupted()
            } else {
                failure.nothing_changed()
            }
        })?;
        self.changed = true;
        self.manifest = done;
        self.found = Some(bytes);
        Ok(())
    }

    /// The directories ignite writes in, as names below the root: the root, `.allframe` and
    /// the parents of every planned and recorded file (a path that is not plain, from a
    /// hand-edited manifest, is left out).
    fn generated_dirs<'a>(&'a self, plan: &'a [PlannedFile]) -> BTreeSet<Vec<&'a str>> {
        let recorded = self
            .manifest
            .files
            .keys()
            .chain(self.manifest.pending.keys());
        let mut dirs = BTreeSet::from([vec![], vec![STATE_DIR]]);
        for path in plan.iter().map(|f| &f.path).chain(recorded) {
            if self.path_of(path).is_ok() {
                let mut parts: Vec<&str> = path.split('/').collect();
                parts.pop();
                dirs.insert(parts);
            }
        }
        dirs
    }

    /// The manifest recording the intent of a run (`pending`: what is about to be renamed into
    /// place; for a file `--force` overwrites, the content it replaces as recorded, so that a
    /// re-run completes it) and the manifest once it is done.
    fn records(
        &self,
        plan: &[PlannedFile],
        decisions: &[Decision],
        generator: &str,
    ) -> Result<(Manifest, Manifest), CliError> {
        let mut intent = self.manifest.clone();
        let mut done = Manifest {
            generator: generator.to_owned(),
            files: self.orphan_records(plan)?,
            pending: BTreeMap::new(),
        };
        for (file, decision) in plan.iter().zip(decisions) {
            let new = sha256(&file.contents);
            if decision.action.writes() {
                intent.pending.insert(file.path.clone(), new.clone());
            }
            if let (Action::Overwrite, Some(current)) = (decision.action, &decision.current) {
                intent.files.insert(file.path.clone(), current.clone());
            }
            if decision.action != Action::Keep {
                done.files.insert(file.path.clone(), new);
            } else if let Some(recorded) = self.manifest.files.get(&file.path) {
                done.files.insert(file.path.clone(), recorded.clone());
            }
        }
        Ok((intent, done))
    }

    /// After a staging failure, puts the manifest back as it was found (or removes it), so the
    /// directory is as before; returns the error to report.
    fn restore(&mut self, error: CliError) -> CliError {
        let path = self.root.join(MANIFEST);
        let restored = match &self.found {
            Some(bytes) => commit::write_atomic(self.fs.as_ref(), &path, bytes),
            None => self
                .fs
                .remove_file(&path)
                .map_err(|e| commit::Failure::new("remove", &path, e)),
        };
        match restored {
            Ok(()) => {
                self.changed = false;
                error
            }
            Err(failure) => failure.interrupted(),
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(lock) = &mut self.lock {
            lock.remove_file();
        }
        if !self.changed {
            // Best effort: a directory that is not empty (someone else's now) stays.
            for dir in self.scaffold.iter().rev() {
                let _ = self.fs.remove_dir(dir);
            }
        }
        // The lock is released when `self.lock` is dropped, after this.
    }
}
