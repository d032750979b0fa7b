//! The steps of a workspace write that touch the disk: sweeping temporary files a crashed run
//! left, staging each file as a temporary file beside its destination (creating the missing
//! directories), discarding what was staged, and replacing one file atomically.
//!
//! The order of the steps, and what a failure at each one means, is [`super::Workspace::apply`].

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use super::fs::{self, Fs, Kind};
use crate::error::CliError;

/// A failed file-system operation, before it is known whether the workspace changed.
#[derive(Debug)]
pub struct Failure {
    action: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl Failure {
    /// `action` on `path` failed with `source`.
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The error of a run that left the workspace as it was.
    pub fn nothing_changed(self) -> CliError {
        CliError::StageFailed {
            action: self.action,
            path: self.path,
            source: self.source,
        }
    }

    /// The error of a run that stopped part-way, which the next run completes.
    pub fn interrupted(self) -> CliError {
        CliError::Interrupted {
            action: self.action,
            path: self.path,
            source: self.source,
        }
    }
}

/// Replaces (or creates) the file `path` with `contents` in one step: a temporary file
/// beside it, renamed over it. On failure the temporary file is gone and `path` untouched.
pub fn write_atomic(fs: &dyn Fs, path: &Path, contents: &[u8]) -> Result<(), Failure> {
    let temp = fs::temp_path(path);
    fs.write_new(&temp, contents, None)
        .map_err(|e| Failure::new("write", &temp, e))?;
    fs.rename(&temp, path).map_err(|e| {
        // The rename's error is the one to report.
        let _ = fs.remove_file(&temp);
        Failure::new("replace", path, e)
    })
}

/// Removes ignite's temporary files (see [`fs::is_temp`]) from the directories `dirs` (each
/// given as its names below `root`), skipping a directory that is absent or lies behind a link.
pub fn sweep(fs: &dyn Fs, root: &Path, dirs: BTreeSet<Vec<&str>>) -> Result<(), CliError> {
    'dirs: for parts in dirs {
        let mut dir = root.to_path_buf();
        for part in parts {
            dir.push(part);
            let kind = fs
                .kind(&dir)
                .map_err(|e| CliError::io("inspect", &dir, e))?;
            if kind != Some(Kind::Dir) {
                continue 'dirs;
            }
        }
        let names = match fs.list(&dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CliError::io("list", &dir, e)),
        };
        for name in names.iter().filter(|name| fs::is_temp(name)) {
            let temp = dir.join(name);
            let kind = fs
                .kind(&temp)
                .map_err(|e| CliError::io("inspect", &temp, e))?;
            if kind == Some(Kind::File) {
                fs.remove_file(&temp)
                    .map_err(|e| CliError::io("remove the leftover", &temp, e))?;
            }
        }
    }
    Ok(())
}

/// Stages files below `root`, remembering the directories it creates.
#[derive(Debug)]
pub struct Writer<'a> {
    fs: &'a dyn Fs,
    root: &'a Path,
    /// Directories known to be real directories.
    known: HashSet<PathBuf>,
    /// Directories this writer created, outermost first.
    created: Vec<PathBuf>,
}

impl<'a> Writer<'a> {
    /// A writer below `root`.
    pub fn new(fs: &'a dyn Fs, root: &'a Path) -> Self {
        Self {
            fs,
            root,
            known: HashSet::new(),
            created: Vec::new(),
        }
    }

    /// Writes `contents` to a new temporary file beside `destination` (a path below the root),
    /// creating its missing directories, with the permissions of `like` when given; returns
    /// the temporary file's path. On failure nothing of this call remains but directories it
    /// created, which [`Writer::discard`] removes.
    pub fn stage(
        &mut self,
        destination: &Path,
        contents: &[u8],
        like: Option<&Path>,
    ) -> Result<PathBuf, CliError> {
        if let Some(parent) = destination.parent() {
            self.ensure_dir(parent)?;
        }
        let temp = fs::temp_path(destination);
        self.fs
            .write_new(&temp, contents, like)
            .map_err(|e| Failure::new("write", &temp, e).nothing_changed())?;
        Ok(temp)
    }

    /// Makes `dir` (below the root) a directory, creating it and its missing parents; a link
    /// on the way is refused, never followed.
    fn ensure_dir(&mut self, dir: &Path) -> Result<(), CliError> {
        let Ok(relative) = dir.strip_prefix(self.root) else {
            return Ok(());
        };
        let mut path = self.root.to_path_buf();
        for part in relative.components() {
            path.push(part);
            if self.known.contains(&path) {
                continue;
            }
            match self
                .fs
                .kind(&path)
                .map_err(|e| CliError::io("inspect", &path, e))?
            {
                Some(Kind::Dir) => {}
                None => {
                    self.fs
                        .create_dir(&path)
                        .map_err(|e| Failure::new("create", &path, e).nothing_changed())?;
                    self.created.push(path.clone());
                }
                Some(Kind::Symlink) => return Err(CliError::Symlink { path }),
                Some(_) => {
                    return Err(CliError::Obstructed {
                        path,
                        needed: "a directory",
                    });
                }
            }
            self.known.insert(path.clone());
        }
        Ok(())
    }

    /// Removes the temporary files `temps`, then every directory this writer created that is
    /// empty now. Best effort: whatever stays is swept by the next run.
    pub fn discard<'p>(&mut self, temps: impl IntoIterator<Item = &'p PathBuf>) {
        for temp in temps {
            let _ = self.fs.remove_file(temp);
        }
        for dir in self.created.drain(..).rev() {
            // Fails, as it should, when the directory holds files put in place.
            let _ = self.fs.remove_dir(&dir);
        }
        self.known.clear();
    }
}
