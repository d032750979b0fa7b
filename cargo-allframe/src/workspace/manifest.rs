//! `.allframe/manifest.json`: what ignite wrote in a workspace, and what a run that did not
//! finish was about to write.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CliError;

/// The manifest's path inside the output directory.
pub const MANIFEST: &str = ".allframe/manifest.json";

/// The directory of ignite's own files (the manifest, the lock) inside the output directory.
pub const STATE_DIR: &str = ".allframe";

/// What ignite records in `.allframe/manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The tool and version that last wrote the workspace.
    pub generator: String,
    /// Relative path → sha256 (hex) of the content ignite wrote there.
    pub files: BTreeMap<String, String>,
    /// Relative path → sha256 (hex) of the content a run that did not finish was putting
    /// there. A file holding that content was written by ignite. Empty (and not serialised)
    /// once a run completes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses the manifest read from `path`.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, CliError> {
        serde_json::from_slice(bytes).map_err(|source| CliError::Manifest {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The manifest as written to `path`: pretty JSON and a final newline.
    pub fn to_bytes(&self, path: &Path) -> Result<Vec<u8>, CliError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| CliError::Manifest {
            path: path.to_path_buf(),
            source,
        })?;
        json.push(b'\n');
        Ok(json)
    }

    /// True when a file at `path` with content hashing to `hash` is ignite's own: the hash is
    /// the recorded one, or the one a run that did not finish was writing.
    pub fn owns(&self, path: &str, hash: &str) -> bool {
        self.files.get(path).is_some_and(|h| h == hash)
            || self.pending.get(path).is_some_and(|h| h == hash)
    }
}

/// The sha256 of `bytes`, as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_records_are_optional_and_own_their_content() {
        let before = br#"{"generator":"cargo-allframe 0.1.0","files":{"a":"1"}}"#;
        let manifest = Manifest::parse(Path::new(MANIFEST), before).expect("an older manifest");
        assert!(manifest.pending.is_empty());
        assert!(manifest.owns("a", "1"));
        assert!(!manifest.owns("a", "2"));
        let text = String::from_utf8(manifest.to_bytes(Path::new(MANIFEST)).expect("json"))
            .expect("utf-8");
        assert!(!text.contains("pending"), "{text}");

        let mut interrupted = manifest.clone();
        interrupted.pending.insert("a".into(), "2".into());
        interrupted.pending.insert("b".into(), "3".into());
        let round = Manifest::parse(
            Path::new(MANIFEST),
            &interrupted.to_bytes(Path::new(MANIFEST)).expect("json"),
        )
        .expect("parse");
        assert_eq!(round, interrupted);
        assert!(round.owns("a", "1") && round.owns("a", "2") && round.owns("b", "3"));
        assert!(!round.owns("b", "1"));
    }
}
