//! `.allframe/lock`: one ignite at a time per workspace.
//!
//! A run that writes holds an exclusive lock on the file from opening the workspace to the
//! end of the run; a second one refuses at once with [`CliError::Locked`] rather than waiting
//! (a script that starts two ignites learns of it instead of hanging). A dry run takes a shared
//! lock when the file exists and never creates it. The operating system releases the lock when
//! the process ends, so a crashed run never leaves the workspace locked.
//!
//! The writer removes the file before releasing it, so a finished workspace holds no lock file.
//! Whoever locks then checks that the path still names the file it locked (it may have opened
//! the file just before the previous holder removed it) and starts again if not.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// The lock file's path inside the output directory.
pub const LOCK: &str = ".allframe/lock";

/// How many times a lock whose file was replaced under it is taken again before giving up.
const ATTEMPTS: usize = 16;

/// A held lock on a workspace; released when dropped.
#[derive(Debug)]
pub struct Lock {
    /// Held open for its lock; closing it releases the lock.
    _file: File,
    path: PathBuf,
    exclusive: bool,
    /// True until the exclusive holder removed the file.
    present: bool,
}

impl Lock {
    /// The lock of a run that writes: creates `path` if needed and locks it exclusively.
    pub fn exclusive(path: &Path) -> Result<Self, CliError> {
        Self::take(path, true)?.ok_or_else(|| CliError::Locked {
            lock: path.to_path_buf(),
        })
    }

    /// The lock of a run that only reads: a shared lock on `path` when it exists; `None` (no
    /// lock, nothing created) when it does not.
    pub fn shared_if_present(path: &Path) -> Result<Option<Self>, CliError> {
        Self::take(path, false)
    }

    /// True for the lock of a run that writes.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Removes the lock file while still holding the lock (exclusive holder only); releasing
    /// happens when `self` is dropped.
    pub fn remove_file(&mut self) {
        if self.exclusive && self.present {
            // Whoever locks next checks the file's identity, so a file left here by a failed
            // removal only costs them a retry.
            let _ = std::fs::remove_file(&self.path);
            self.present = false;
        }
    }

    fn take(path: &Path, exclusive: bool) -> Result<Option<Self>, CliError> {
        for _ in 0..ATTEMPTS {
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(CliError::Symlink {
                        path: path.to_path_buf(),
                    });
                }
                Ok(meta) if !meta.is_file() => {
                    return Err(CliError::Obstructed {
                        path: path.to_path_buf(),
                        needed: "a lock file",
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound && !exclusive => return Ok(None),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(CliError::io("inspect", path, e)),
            }
            let opened = if exclusive {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
            } else {
                File::open(path)
            };
            let file = match opened {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::NotFound && !exclusive => return Ok(None),
                // Removed between the look and the open: look again.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(CliError::io("open", path, e)),
            };
            let locked = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match locked {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(CliError::Locked {
                        lock: path.to_path_buf(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(CliError::io("lock", path, e)),
            }
            if still_named(&file, path)? {
                return Ok(Some(Self {
                    _file: file,
                    path: path.to_path_buf(),
                    exclusive,
                    present: true,
                }));
            }
        }
        Err(CliError::Locked {
            lock: path.to_path_buf(),
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.remove_file();
        // Closing `self._file` (after this) releases the lock.
    }
}

/// True when `path` still names the open `file` (not removed, not replaced).
#[cfg(unix)]
fn still_named(file: &File, path: &Path) -> Result<bool, CliError> {
    use std::os::unix::fs::MetadataExt;
    let held = file
        .metadata()
        .map_err(|e| CliError::io("inspect", path, e))?;
    match std::fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::io("inspect", path, e)),
    }
}

/// Elsewhere a file cannot be removed while another process has it open and locked, so the
/// file locked is the one named.
#[cfg(not(unix))]
fn still_named(_file: &File, _path: &Path) -> Result<bool, CliError> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_or_reader_is_refused_while_a_writer_holds_the_lock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("lock");
        assert!(Lock::shared_if_present(&path).expect("absent").is_none());
        assert!(!path.exists(), "a reader creates nothing");

        let held = Lock::exclusive(&path).expect("first");
        assert!(held.is_exclusive());
        for second in [
            Lock::exclusive(&path).map(|_| ()),
            Lock::shared_if_present(&path).map(|_| ()),
        ] {
            match second {
                Err(CliError::Locked { lock }) => assert_eq!(lock, path),
                other => panic!("expected Locked, got {other:?}"),
            }
        }
        drop(held);
        assert!(!path.exists(), "the writer removes its lock file");
        drop(Lock::exclusive(&path).expect("free again"));
    }

    #[test]
    fn readers_share_and_keep_a_writer_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("lock");
        std::fs::write(&path, "").expect("a lock file left by a crashed run");
        let first = Lock::shared_if_present(&path)
            .expect("shared")
            .expect("present");
        let second = Lock::shared_if_present(&path)
            .expect("shared")
            .expect("present");
        assert!(matches!(
            Lock::exclusive(&path),
            Err(CliError::Locked { .. })
        ));
        drop((first, second));
        assert!(path.exists(), "readers never remove the file");
        drop(Lock::exclusive(&path).expect("free"));
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_on_a_file_removed_under_it_is_taken_again_on_the_new_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("lock");
        std::fs::write(&path, "").expect("write");
        let stale = File::open(&path).expect("open");
        std::fs::remove_file(&path).expect("remove");
        // The stale file is unlinked: locking it must not count as holding the workspace.
        assert!(!still_named(&stale, &path).expect("inspect"));
        std::fs::write(&path, "").expect("a new lock file");
        assert!(!still_named(&stale, &path).expect("inspect"));
        let lock = Lock::exclusive(&path).expect("the new file");
        assert!(still_named(&lock._file, &path).expect("inspect"));
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_lock_path_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = dir.path().join("outside");
        let path = dir.path().join("lock");
        std::os::unix::fs::symlink(&outside, &path).expect("symlink");
        assert!(matches!(
            Lock::exclusive(&path),
            Err(CliError::Symlink { .. })
        ));
        assert!(!outside.exists());
    }
}
