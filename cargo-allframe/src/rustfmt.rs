//! Formats generated Rust files with `rustfmt --edition 2024`: one file through stdin, or a
//! whole batch with one rustfmt process over a scratch directory (ignite's case: starting one
//! process per file dominated its run time). When rustfmt cannot run, the text stays as
//! rendered and the caller is told once.

use std::io::Write;
use std::process::{Command, Stdio};

/// Why a file was not formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// rustfmt could not be started (not installed, not executable).
    Unavailable(String),
    /// rustfmt ran and rejected the input.
    Rejected(String),
}

/// The rustfmt program: `$RUSTFMT`, else `rustfmt` from `PATH`.
pub fn program() -> String {
    std::env::var("RUSTFMT")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "rustfmt".to_owned())
}

/// `source` formatted by `program`.
pub fn format(program: &str, source: &str) -> Result<String, FormatError> {
    let mut child = Command::new(program)
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FormatError::Unavailable(format!("`{program}`: {e}")))?;
    let writer = child.stdin.take().map(|mut stdin| {
        let input = source.to_owned();
        // Written from a thread so a large output cannot block on a full pipe.
        std::thread::spawn(move || stdin.write_all(input.as_bytes()))
    });
    let output = child
        .wait_with_output()
        .map_err(|e| FormatError::Unavailable(format!("`{program}`: {e}")))?;
    if let Some(writer) = writer {
        match writer.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(FormatError::Unavailable(format!("`{program}`: {e}"))),
            Err(_) => return Err(FormatError::Unavailable(format!("`{program}` input"))),
        }
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        // A rustup proxy without the rustfmt component says so on stderr.
        let missing = stderr.is_empty() || stderr.contains("not installed");
        return Err(if missing {
            FormatError::Unavailable(format!("`{program}` exited with {}", output.status))
        } else {
            FormatError::Rejected(stderr)
        });
    }
    String::from_utf8(output.stdout)
        .map_err(|_| FormatError::Rejected("rustfmt produced output that is not UTF-8".into()))
}

/// Every `(relative path, source)` of `files` formatted by `program`, in order, with one
/// rustfmt process. The files are laid out at their relative paths in a scratch directory, so
/// `mod x;` declarations resolve as in the real tree. When that process reports a failure, the
/// sources are formatted one by one instead, so that each rejection is attributed to its file.
pub fn format_all(program: &str, files: &[(&str, &str)]) -> Vec<Result<String, FormatError>> {
    match format_batch(program, files) {
        Ok(formatted) => formatted.into_iter().map(Ok).collect(),
        Err(FormatError::Unavailable(reason)) => files
            .iter()
            .map(|_| Err(FormatError::Unavailable(reason.clone())))
            .collect(),
        Err(FormatError::Rejected(_)) => files
            .iter()
            .map(|(_, source)| format(program, source))
            .collect(),
    }
}

fn format_batch(program: &str, files: &[(&str, &str)]) -> Result<Vec<String>, FormatError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let (_scratch, paths) = match lay_out(in_memory(), files) {
        Ok(laid_out) => laid_out,
        // A small /dev/shm (a container's 64 MiB) fills up: the disk does not.
        Err(_) => lay_out(tempfile::tempdir(), files)?,
    };
    // rustfmt follows `mod x;` into x.rs: a file its parent module declares is formatted through
    // the parent, and naming it too would format it again.
    let declared = declared_modules(files);
    let roots = paths
        .iter()
        .zip(files)
        .filter(|(_, (relative, _))| !declared.contains(*relative))
        .map(|(path, _)| path);
    let output = Command::new(program)
        .args(["--edition", "2024", "--quiet"])
        .args(roots)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FormatError::Unavailable(format!("`{program}`: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(if stderr.is_empty() || stderr.contains("not installed") {
            FormatError::Unavailable(format!("`{program}` exited with {}", output.status))
        } else {
            FormatError::Rejected(stderr)
        });
    }
    paths
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map_err(|e| FormatError::Unavailable(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// A scratch directory in memory (`/dev/shm`), where there is one: the batch is thousands of
/// short-lived files and directories, and creating them on a disk file system cost more than
/// formatting them.
fn in_memory() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("allframe-rustfmt-")
        .tempdir_in("/dev/shm")
}

/// `files` written at their relative paths below `scratch`, with an empty `rustfmt.toml` at the
/// top that ends rustfmt's search for a configuration above every file.
fn lay_out(
    scratch: std::io::Result<tempfile::TempDir>,
    files: &[(&str, &str)],
) -> Result<(tempfile::TempDir, Vec<std::path::PathBuf>), FormatError> {
    let unavailable = |path: &std::path::Path, e: std::io::Error| {
        FormatError::Unavailable(format!("{}: {e}", path.display()))
    };
    let scratch = scratch
        .map_err(|e| FormatError::Unavailable(format!("a scratch directory for rustfmt: {e}")))?;
    let config = scratch.path().join("rustfmt.toml");
    std::fs::write(&config, "").map_err(|e| unavailable(&config, e))?;
    let mut paths = Vec::with_capacity(files.len());
    for (relative, source) in files {
        let path = scratch.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| unavailable(parent, e))?;
        }
        std::fs::write(&path, source).map_err(|e| unavailable(&path, e))?;
        paths.push(path);
    }
    Ok((scratch, paths))
}

/// The files of `files` that another file of `files` declares as a module (`mod x;` in
/// `src/main.rs` declares `src/x.rs` or `src/x/mod.rs`; in `src/a/mod.rs`, `src/a/x.rs` …).
fn declared_modules<'a>(files: &[(&'a str, &str)]) -> std::collections::HashSet<&'a str> {
    let present: std::collections::HashSet<&str> = files.iter().map(|(path, _)| *path).collect();
    let mut declared = std::collections::HashSet::new();
    for (path, source) in files {
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
        // Children of `main.rs`, `lib.rs` and `mod.rs` live beside them; those of `a.rs` in `a/`.
        let base = match file {
            "main.rs" | "lib.rs" | "mod.rs" => dir.to_owned(),
            other => match other.strip_suffix(".rs") {
                Some(stem) if dir.is_empty() => stem.to_owned(),
                Some(stem) => format!("{dir}/{stem}"),
                None => continue,
            },
        };
        let prefix = if base.is_empty() {
            String::new()
        } else {
            format!("{base}/")
        };
        for name in source.lines().filter_map(module_declaration) {
            let name = name.trim_start_matches("r#");
            for candidate in [
                format!("{prefix}{name}.rs"),
                format!("{prefix}{name}/mod.rs"),
            ] {
                if let Some(child) = present.get(candidate.as_str()) {
                    declared.insert(*child);
                }
            }
        }
    }
    declared
}

/// `x` when `line` is an out-of-line module declaration `mod x;` (with any visibility).
fn module_declaration(line: &str) -> Option<&str> {
    let line = line.trim();
    let rest = if let Some(rest) = line.strip_prefix("pub") {
        let rest = rest.trim_start();
        match rest.strip_prefix('(') {
            Some(scoped) => scoped.split_once(')')?.1.trim_start(),
            None => rest,
        }
    } else {
        line
    };
    let name = rest.strip_prefix("mod ")?.trim().strip_suffix(';')?.trim();
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '#')
        .then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_through_stdin_and_reports_a_missing_program() {
        let formatted = format(&program(), "fn  main( ){let x=1;}").expect("rustfmt is installed");
        assert_eq!(formatted, "fn main() {\n    let x = 1;\n}\n");
        assert!(matches!(
            format(&program(), "fn main( {"),
            Err(FormatError::Rejected(_))
        ));
        assert!(matches!(
            format("/nonexistent/rustfmt", "fn main() {}"),
            Err(FormatError::Unavailable(_))
        ));
    }

    #[test]
    fn formats_a_batch_in_order_and_attributes_a_rejection_to_its_file() {
        let program = program();
        // `mod b;` resolves to the listed `src/b.rs`, as in a generated crate.
        let all = format_all(
            &program,
            &[
                ("src/main.rs", "mod  b ;fn  main( ){}"),
                ("src/b.rs", "struct  B ;"),
            ],
        );
        assert_eq!(
            all,
            [
                Ok("mod b;\nfn main() {}\n".to_owned()),
                Ok("struct B;\n".to_owned())
            ]
        );
        let mixed = format_all(
            &program,
            &[
                ("a.rs", "fn  a( ){}"),
                ("b.rs", "fn b( {"),
                ("c.rs", "const  C:u8=1;"),
            ],
        );
        assert_eq!(mixed[0], Ok("fn a() {}\n".to_owned()));
        assert!(
            matches!(mixed[1], Err(FormatError::Rejected(_))),
            "{mixed:?}"
        );
        assert_eq!(mixed[2], Ok("const C: u8 = 1;\n".to_owned()));
        // A declared module is formatted once, through its parent; an undeclared one on its own.
        let tree = format_all(
            &program,
            &[
                (
                    "src/main.rs",
                    "pub(crate) mod  a ;\nmod r#type;\nfn main(){}",
                ),
                ("src/a/mod.rs", "pub mod b;"),
                ("src/a/b.rs", "fn  b( ){}"),
                ("src/type.rs", "fn  t( ){}"),
                ("src/loose.rs", "fn  l( ){}"),
            ],
        );
        assert_eq!(tree[2], Ok("fn b() {}\n".to_owned()));
        assert_eq!(tree[3], Ok("fn t() {}\n".to_owned()));
        assert_eq!(tree[4], Ok("fn l() {}\n".to_owned()));
        let declared = declared_modules(&[
            ("src/main.rs", "pub(crate) mod  a ;\nmod r#type;\n// mod c;"),
            ("src/a/mod.rs", "pub mod b;"),
            ("src/a/b.rs", ""),
            ("src/type.rs", ""),
            ("src/c.rs", ""),
        ]);
        let mut declared: Vec<&str> = declared.into_iter().collect();
        declared.sort_unstable();
        assert_eq!(declared, ["src/a/b.rs", "src/a/mod.rs", "src/type.rs"]);

        let missing = format_all("/nonexistent/rustfmt", &[("a.rs", "fn a() {}")]);
        assert!(matches!(missing[0], Err(FormatError::Unavailable(_))));
        assert!(format_all(&program, &[]).is_empty());
    }
}
