//! Opening an output directory: creating it when absent, refusing a foreign one, taking the
//! lock, reading the manifest — without following a link below it and, when the run is
//! refused, without leaving anything behind (see [`Workspace`]'s `Drop`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Access, Fs, Kind, LOCK, Lock, MANIFEST, Manifest, RealFs, STATE_DIR, Workspace, fs};
use crate::error::CliError;

impl Workspace {
    /// Opens `root` for writing, on the real file system. A directory that exists, is not
    /// empty and has no manifest is refused unless `force`; with `force` an unreadable manifest
    /// counts as absent. `allowed` (the architecture file being ignited) does not count as
    /// content: a directory holding only its own `architecture.toml` can be ignited in place.
    /// Refused with [`CliError::Locked`] while another ignite holds the workspace.
    pub fn open(root: &Path, force: bool, allowed: Option<&Path>) -> Result<Self, CliError> {
        Self::open_with(Arc::new(RealFs), root, Access::Write, force, allowed)
    }

    /// Opens `root` for a dry run, on the real file system: like [`Workspace::open`], but
    /// nothing is created (not the directory, not the lock file) and [`Workspace::apply`]
    /// refuses.
    pub fn preview(root: &Path, force: bool, allowed: Option<&Path>) -> Result<Self, CliError> {
        Self::open_with(Arc::new(RealFs), root, Access::Preview, force, allowed)
    }

    /// Opens `root` through `fs`, for `access`; see [`Workspace::open`].
    pub fn open_with(
        fs: Arc<dyn Fs>,
        root: &Path,
        access: Access,
        force: bool,
        allowed: Option<&Path>,
    ) -> Result<Self, CliError> {
        let mut ws = Self {
            fs,
            root: root.to_path_buf(),
            manifest: Manifest::default(),
            found: None,
            lock: None,
            scaffold: Vec::new(),
            changed: false,
        };
        match ws.fs.follow(root) {
            Ok(Some(Kind::Dir)) => {}
            Ok(Some(_)) => {
                return Err(CliError::OutNotADirectory {
                    dir: root.to_path_buf(),
                });
            }
            Ok(None) if access == Access::Preview => return Ok(ws),
            Ok(None) => ws.create_root()?,
            Err(e) => return Err(CliError::io("inspect", root, e)),
        }
        let state = root.join(STATE_DIR);
        let state_kind = ws.inspect(&state)?;
        match state_kind {
            None | Some(Kind::Dir) => {}
            Some(Kind::Symlink) => return Err(CliError::Symlink { path: state }),
            Some(_) => {
                return Err(CliError::Obstructed {
                    path: state,
                    needed: "a directory",
                });
            }
        }
        // A foreign directory is refused before anything is created in it (and checked again
        // under the lock, below). Once ignite's state directory is there, the check under the
        // lock is the one that counts: what another ignite is writing right now is not
        // foreign, and that ignite's lock answers instead.
        if state_kind.is_none()
            && let Err(error) = ws.check_foreign(force, allowed)
            // Another ignite may have created its state and begun writing since we looked.
            && ws.inspect(&state)? != Some(Kind::Dir)
        {
            return Err(error);
        }
        if state_kind.is_none() {
            match access {
                Access::Preview => return Ok(ws),
                Access::Write => ws.create_dir(state)?,
            }
        }
        let lock = root.join(LOCK);
        ws.lock = match access {
            Access::Write => Some(Lock::exclusive(&lock)?),
            Access::Preview => Lock::shared_if_present(&lock)?,
        };
        ws.read_manifest(force)?;
        if ws.found.is_none() {
            ws.check_foreign(force, allowed)?;
        }
        Ok(ws)
    }

    /// Creates the output directory and its missing parents, remembering them.
    fn create_root(&mut self) -> Result<(), CliError> {
        let mut missing = Vec::new();
        let mut dir = self.root.as_path();
        loop {
            match self.fs.follow(dir) {
                Ok(None) => missing.push(dir.to_path_buf()),
                Ok(Some(_)) => break,
                Err(e) => return Err(CliError::io("inspect", dir, e)),
            }
            match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => dir = parent,
                _ => break,
            }
        }
        for dir in missing.into_iter().rev() {
            self.create_dir(dir)?;
        }
        Ok(())
    }

    /// Creates the directory `dir`, remembering it; one that another ignite created meanwhile
    /// is theirs.
    fn create_dir(&mut self, dir: PathBuf) -> Result<(), CliError> {
        match self.fs.create_dir(&dir) {
            Ok(()) => {
                self.scaffold.push(dir);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match self.fs.kind(&dir) {
                Ok(Some(Kind::Dir)) => Ok(()),
                _ => Err(CliError::io("create", &dir, e)),
            },
            Err(e) => Err(CliError::io("create", &dir, e)),
        }
    }

    fn read_manifest(&mut self, force: bool) -> Result<(), CliError> {
        let path = self.root.join(MANIFEST);
        match self.inspect(&path)? {
            None => return Ok(()),
            Some(Kind::File) => {}
            Some(Kind::Symlink) => return Err(CliError::Symlink { path }),
            Some(_) => {
                return Err(CliError::Obstructed {
                    path,
                    needed: "the manifest file",
                });
            }
        }
        let bytes = self
            .fs
            .read(&path)
            .map_err(|e| CliError::io("read", &path, e))?;
        self.manifest = match Manifest::parse(&path, &bytes) {
            Ok(manifest) => manifest,
            Err(_) if force => Manifest::default(),
            Err(error) => return Err(error),
        };
        self.found = Some(bytes);
        Ok(())
    }

    /// Refuses a directory without a manifest that holds anything but the architecture file
    /// being ignited, ignite's own state directory and temporary files of an interrupted run.
    fn check_foreign(&self, force: bool, allowed: Option<&Path>) -> Result<(), CliError> {
        if force {
            return Ok(());
        }
        let allowed = allowed.and_then(|p| p.canonicalize().ok());
        let names = self
            .fs
            .list(&self.root)
            .map_err(|e| CliError::io("list", &self.root, e))?;
        let foreign = names.iter().any(|name| {
            name != STATE_DIR
                && !fs::is_temp(name)
                && (allowed.is_none() || self.root.join(name).canonicalize().ok() != allowed)
        });
        if foreign {
            return Err(CliError::ForeignOutDir {
                dir: self.root.clone(),
            });
        }
        Ok(())
    }
}
