//! The scaffold of each archetype, driven by data: `archetypes/<kind>/manifest.toml` lists the
//! folder's templates, the path each renders to and when it applies. The whole `archetypes/`
//! tree is embedded in the binary (`include_dir`; `build.rs` rebuilds the CLI when a file is
//! added), so an installed `cargo-allframe` needs no checkout and adding a template to an
//! archetype needs no code change.

use std::sync::OnceLock;

use allframe_config::model::ServiceType;
use allframe_config::support::GENERATED_TYPES;
use include_dir::{Dir, include_dir};
use serde::Deserialize;

use crate::error::CliError;
use crate::templates::{Each, Template, When};

/// Every file under `archetypes/`.
static ARCHETYPES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../archetypes");

/// One `[[files]]` entry of a manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// The template, relative to the archetype's folder.
    template: String,
    /// The path it renders to (itself a template).
    output: String,
    /// When it applies.
    #[serde(default = "always")]
    when: When,
    /// How many files it renders to: `once` (the default), or one per item of the
    /// archetype's list of that name (`ingestion`, `aggregate`, `projection`).
    #[serde(default)]
    each: Each,
}

fn always() -> When {
    When::Always
}

/// One `[[partials]]` entry of a manifest: a template rendered only where another includes it
/// (`{% include "stateless/README.section.md.jinja" %}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Partial {
    /// The template, relative to the archetype's folder.
    template: String,
}

/// A manifest: its files, in order, and its partials.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    files: Vec<Entry>,
    #[serde(default)]
    partials: Vec<Partial>,
}

/// The scaffold templates of every archetype folder, read once.
#[derive(Debug)]
pub struct Scaffold {
    /// Per generated service type, its folder's templates: a service crate, relative to
    /// `services/<name>/`.
    archetypes: Vec<(ServiceType, Vec<Template>)>,
    /// `workspace/`: the workspace root.
    pub workspace: Vec<Template>,
}

impl Scaffold {
    /// The scaffold, read from the embedded manifests on first use.
    pub fn get() -> Result<&'static Scaffold, CliError> {
        static SCAFFOLD: OnceLock<Result<Scaffold, String>> = OnceLock::new();
        SCAFFOLD
            .get_or_init(|| {
                // Every type the support stage says is generated has a folder of its own.
                let archetypes = GENERATED_TYPES
                    .iter()
                    .map(|&kind| Ok((kind, folder(kind.as_str())?)))
                    .collect::<Result<_, String>>()?;
                Ok(Scaffold {
                    archetypes,
                    workspace: folder("workspace")?,
                })
            })
            .as_ref()
            .map_err(|reason| CliError::Scaffold {
                reason: reason.clone(),
            })
    }

    /// The templates of a `kind` service's crate (none for a type not generated).
    pub fn archetype(&self, kind: ServiceType) -> &[Template] {
        self.archetypes
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(&[], |(_, templates)| templates.as_slice())
    }

    /// Every scaffold template, for registration.
    pub fn all(&self) -> impl Iterator<Item = &Template> {
        self.archetypes
            .iter()
            .flat_map(|(_, templates)| templates)
            .chain(&self.workspace)
    }
}

/// The templates `archetypes/<kind>/manifest.toml` lists, with their embedded text.
fn folder(kind: &str) -> Result<Vec<Template>, String> {
    let path = format!("{kind}/manifest.toml");
    let text = ARCHETYPES
        .get_file(&path)
        .and_then(|f| f.contents_utf8())
        .ok_or_else(|| format!("archetypes/{path} is missing"))?;
    let manifest: Manifest =
        toml::from_str(text).map_err(|e| format!("archetypes/{path} is invalid: {e}"))?;
    let partials = manifest.partials.into_iter().map(|partial| Entry {
        output: String::new(),
        template: partial.template,
        when: When::Included,
        each: Each::Once,
    });
    manifest
        .files
        .into_iter()
        .chain(partials)
        .map(|entry| {
            let name = format!("{kind}/{}", entry.template);
            let source = ARCHETYPES
                .get_file(&name)
                .and_then(|f| f.contents_utf8())
                .ok_or_else(|| {
                    format!("archetypes/{path} lists `{name}`, which is not a UTF-8 file there")
                })?;
            // Read once per process and kept for its life, like the embedded text itself.
            Ok(Template {
                name: name.leak(),
                output: entry.output.leak(),
                when: entry.when,
                each: entry.each,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_of_an_archetype_folder_is_in_its_manifest() {
        let scaffold = Scaffold::get().expect("the manifests parse");
        let folders = GENERATED_TYPES
            .iter()
            .map(|&kind| (kind.as_str(), scaffold.archetype(kind)))
            .chain([("workspace", scaffold.workspace.as_slice())]);
        for (kind, listed) in folders {
            let dir = ARCHETYPES.get_dir(kind).expect("the folder");
            let mut on_disk = Vec::new();
            let mut stack = vec![dir];
            while let Some(dir) = stack.pop() {
                on_disk.extend(
                    dir.files()
                        // `/` on every platform, as the manifests write paths.
                        .map(|f| f.path().to_string_lossy().replace('\\', "/"))
                        .filter(|p| p.ends_with(".jinja")),
                );
                stack.extend(dir.dirs());
            }
            for file in &on_disk {
                assert!(
                    listed.iter().any(|t| t.name == file),
                    "{file} is not listed in archetypes/{kind}/manifest.toml"
                );
            }
            assert_eq!(on_disk.len(), listed.len(), "{kind}: {on_disk:?}");
        }
    }

    #[test]
    fn a_manifest_naming_a_missing_template_is_an_error_naming_it() {
        let error = folder("no-such-archetype").expect_err("no manifest");
        assert_eq!(
            error,
            "archetypes/no-such-archetype/manifest.toml is missing"
        );
    }
}
