//! The exact versions generated gRPC crates pin: `tonic` and `prost` as the runtime depends on
//! them, `tonic-prost-build` and `protox` as listed beside them, all read from the AllFrame
//! workspace manifest this CLI was built from. The code tonic-prost-build writes names
//! `tonic::` paths and build dependencies cannot be re-exported, so a generated crate must
//! build with the very tonic the runtime uses: `=` pins, from one place.

use std::sync::OnceLock;

use serde::Serialize;

/// The workspace manifest, embedded at build time.
const WORKSPACE_MANIFEST: &str = include_str!("../../Cargo.toml");

/// The `=` version requirements a generated gRPC crate writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrpcVersions {
    /// `tonic`, as the runtime depends on it.
    pub tonic: String,
    /// `prost`, as the runtime depends on it.
    pub prost: String,
    /// `tonic-prost-build` (build dependency).
    pub tonic_prost_build: String,
    /// `protox` (build dependency: compiles `.proto` files without `protoc`).
    pub protox: String,
}

/// The versions, read once from the embedded manifest.
pub fn grpc() -> &'static GrpcVersions {
    static VERSIONS: OnceLock<GrpcVersions> = OnceLock::new();
    VERSIONS.get_or_init(|| {
        parse(WORKSPACE_MANIFEST)
            .unwrap_or_else(|missing| panic!("the AllFrame workspace manifest lacks {missing}"))
    })
}

/// Reads the versions from a workspace manifest; `Err` names what is missing.
fn parse(manifest: &str) -> Result<GrpcVersions, &'static str> {
    let doc: toml::Table = manifest.parse().map_err(|_| "valid TOML")?;
    let workspace = doc.get("workspace").ok_or("[workspace]")?;
    let dependencies = workspace
        .get("dependencies")
        .ok_or("[workspace.dependencies]")?;
    let build = workspace
        .get("metadata")
        .and_then(|m| m.get("allframe"))
        .and_then(|a| a.get("generated-build-dependencies"))
        .ok_or("[workspace.metadata.allframe.generated-build-dependencies]")?;
    let version = |table: &toml::Value, name: &'static str| -> Result<String, &'static str> {
        let entry = table.get(name).ok_or(name)?;
        let text = entry
            .as_str()
            .or_else(|| entry.get("version").and_then(toml::Value::as_str))
            .ok_or(name)?;
        text.starts_with('=').then(|| text.to_owned()).ok_or(name)
    };
    Ok(GrpcVersions {
        tonic: version(dependencies, "tonic")?,
        prost: version(dependencies, "prost")?,
        tonic_prost_build: version(build, "tonic-prost-build")?,
        protox: version(build, "protox")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_are_exact_and_tonic_prost_build_moves_with_tonic() {
        let versions = grpc();
        for pin in [
            &versions.tonic,
            &versions.prost,
            &versions.tonic_prost_build,
            &versions.protox,
        ] {
            assert!(pin.starts_with('='), "{pin} is not an exact pin");
        }
        assert_eq!(versions.tonic, versions.tonic_prost_build);
    }

    #[test]
    fn a_manifest_without_a_pin_names_it() {
        let loose = "[workspace.dependencies]\ntonic = \"0.14\"\nprost = \"=0.14.6\"\n[workspace.metadata.allframe.generated-build-dependencies]\ntonic-prost-build = \"=0.14.9\"\nprotox = \"=0.9.1\"\n";
        assert_eq!(parse(loose), Err("tonic"));
    }
}
