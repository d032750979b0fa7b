//! The file-system operations ignite writes a workspace with, behind a trait so that tests can
//! make any one of them fail (CI runs as root, where permission tricks fail nothing).
//!
//! The operations are the small set the staged write needs: look at a path without following a
//! link, read, list, create a directory, create a new file, rename, remove. Nothing here decides
//! what to write or in which order; that is [`super::Workspace::apply`].

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only reported by [`Fs::kind`], which does not follow links).
    Symlink,
    /// Anything else: a FIFO, a socket, a device.
    Other,
}

impl Kind {
    fn of(file_type: fs::FileType) -> Self {
        if file_type.is_symlink() {
            Kind::Symlink
        } else if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            Kind::File
        } else {
            Kind::Other
        }
    }
}

/// The file-system operations of a workspace write.
pub trait Fs: fmt::Debug + Send + Sync {
    /// What is at `path`, following a link there; `None` when nothing is. Used for the output
    /// directory itself only, which the user may give as a link.
    fn follow(&self, path: &Path) -> io::Result<Option<Kind>>;
    /// What is at `path`, not following a link there; `None` when nothing is.
    fn kind(&self, path: &Path) -> io::Result<Option<Kind>>;
    /// The content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The names of the entries of the directory `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Creates the directory `path`, whose parent exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates the file `path`, which must not exist (not even as a link, which is not
    /// followed), with `contents`; with the permissions of the file `like` when given.
    fn write_new(&self, path: &Path, contents: &[u8], like: Option<&Path>) -> io::Result<()>;
    /// Renames `from` to `to` in one step, replacing a file (never following a link) at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file (or link) `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes the directory `path` if it is empty.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

fn kind_of(metadata: io::Result<fs::Metadata>) -> io::Result<Option<Kind>> {
    match metadata {
        Ok(metadata) => Ok(Some(Kind::of(metadata.file_type()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Fs for RealFs {
    fn follow(&self, path: &Path) -> io::Result<Option<Kind>> {
        kind_of(fs::metadata(path))
    }

    fn kind(&self, path: &Path) -> io::Result<Option<Kind>> {
        kind_of(fs::symlink_metadata(path))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn write_new(&self, path: &Path, contents: &[u8], like: Option<&Path>) -> io::Result<()> {
        // `create_new` is O_CREAT|O_EXCL: it fails on any existing entry, a dangling link too.
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let written = write_all(&mut file, contents, like);
        if written.is_err() {
            drop(file);
            // The error being returned is the one that matters.
            let _ = fs::remove_file(path);
        }
        written
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }
}

fn write_all(file: &mut File, contents: &[u8], like: Option<&Path>) -> io::Result<()> {
    file.write_all(contents)?;
    if let Some(like) = like {
        file.set_permissions(fs::symlink_metadata(like)?.permissions())?;
    }
    Ok(())
}

/// The infix of every temporary file ignite stages: `.<name>.allframe-tmp-<pid>`.
const TEMP_INFIX: &str = ".allframe-tmp-";

/// The temporary file a new `destination` is staged in: beside it, so that the rename into
/// place stays in one directory and is atomic.
pub fn temp_path(destination: &Path) -> PathBuf {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    destination.with_file_name(format!(".{name}{TEMP_INFIX}{}", std::process::id()))
}

/// True when `name` is a temporary file of ignite's (of this run or of one that crashed):
/// `.<name>.allframe-tmp-<digits>`.
pub fn is_temp(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some((stem, pid)) = name.rsplit_once(TEMP_INFIX) else {
        return false;
    };
    stem.len() > 1
        && stem.starts_with('.')
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
pub use faulty::{Faulty, Op};

#[cfg(test)]
mod faulty {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// A kind of operation that [`Faulty`] counts and can fail.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Op {
        /// [`Fs::create_dir`].
        CreateDir,
        /// [`Fs::write_new`].
        Write,
        /// [`Fs::rename`].
        Rename,
        /// [`Fs::remove_file`] and [`Fs::remove_dir`].
        Remove,
    }

    /// The real file system, except that the `nth` (1-based) operation of kind `op` fails with
    /// an I/O error. Counts every operation of each kind.
    #[derive(Debug)]
    pub struct Faulty {
        fail: Option<(Op, usize)>,
        counts: Mutex<BTreeMap<Op, usize>>,
    }

    impl Faulty {
        /// Fails the `nth` operation of kind `op`.
        pub fn new(op: Op, nth: usize) -> Self {
            Self {
                fail: Some((op, nth)),
                counts: Mutex::default(),
            }
        }

        /// Fails nothing; only counts.
        pub fn counting() -> Self {
            Self {
                fail: None,
                counts: Mutex::default(),
            }
        }

        /// How many operations of kind `op` were attempted.
        pub fn count(&self, op: Op) -> usize {
            self.counts
                .lock()
                .expect("counts")
                .get(&op)
                .copied()
                .unwrap_or(0)
        }

        fn tick(&self, op: Op, path: &Path) -> io::Result<()> {
            let mut counts = self.counts.lock().expect("counts");
            let n = counts.entry(op).or_default();
            *n += 1;
            if self.fail == Some((op, *n)) {
                return Err(io::Error::other(format!(
                    "injected failure of {op:?} #{n} on {}",
                    path.display()
                )));
            }
            Ok(())
        }
    }

    impl Fs for Faulty {
        fn follow(&self, path: &Path) -> io::Result<Option<Kind>> {
            RealFs.follow(path)
        }

        fn kind(&self, path: &Path) -> io::Result<Option<Kind>> {
            RealFs.kind(path)
        }

        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            RealFs.read(path)
        }

        fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
            RealFs.list(dir)
        }

        fn create_dir(&self, path: &Path) -> io::Result<()> {
            self.tick(Op::CreateDir, path)?;
            RealFs.create_dir(path)
        }

        fn write_new(&self, path: &Path, contents: &[u8], like: Option<&Path>) -> io::Result<()> {
            self.tick(Op::Write, path)?;
            RealFs.write_new(path, contents, like)
        }

        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.tick(Op::Rename, to)?;
            RealFs.rename(from, to)
        }

        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.tick(Op::Remove, path)?;
            RealFs.remove_file(path)
        }

        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            self.tick(Op::Remove, path)?;
            RealFs.remove_dir(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_nothing_else_is() {
        let temp = temp_path(Path::new("ws/services/a/Cargo.toml"));
        assert_eq!(temp.parent(), Some(Path::new("ws/services/a")));
        assert!(is_temp(temp.file_name().expect("a name")));
        for name in [
            ".Cargo.toml.allframe-tmp-12",
            "..allframe-tmp-1.allframe-tmp-3",
        ] {
            assert!(is_temp(name.as_ref()), "{name}");
        }
        for name in [
            "Cargo.toml",
            "Cargo.toml.allframe-tmp-12",
            ".allframe-tmp-12",
            ".x.allframe-tmp-",
            ".x.allframe-tmp-12a",
        ] {
            assert!(!is_temp(name.as_ref()), "{name}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_is_never_written_through_a_link() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = dir.path().join("outside");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        assert!(RealFs.write_new(&link, b"x", None).is_err());
        assert!(
            !outside.exists(),
            "the dangling link's target was not created"
        );
        assert_eq!(RealFs.kind(&link).expect("lstat"), Some(Kind::Symlink));
    }
}
