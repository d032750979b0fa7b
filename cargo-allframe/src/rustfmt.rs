//! Formats generated Rust files with `rustfmt --edition 2024`, fed through stdin. When rustfmt
//! cannot run, the text stays as rendered and the caller is told once.

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
}
