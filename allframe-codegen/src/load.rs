//! Finds, reads, checks and caches the architecture file named by `config = "…"`.
//!
//! The path is resolved against `CARGO_MANIFEST_DIR` (absolute paths are refused, as sqlx does,
//! so a crate builds the same on every machine). A file is checked once per compilation and
//! content: several services of one crate, or several expansions, share the result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use allframe_config::{
    Architecture, Diagnostics, ReadError, ResolvedService, Severity, SourceFile,
};
use proc_macro2::Span;

use crate::{Env, ServiceArgs};

/// A checked architecture file and where it lives.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Absolute path of the file (for `include_bytes!`).
    pub path: PathBuf,
    /// The checked model.
    pub architecture: Arc<Architecture>,
}

type Checked = Result<Arc<Architecture>, Arc<Diagnostics>>;

fn cache() -> &'static Mutex<HashMap<PathBuf, (String, Checked)>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, (String, Checked)>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Reads and checks the file, reporting every error of the file at the `config` argument.
pub fn load(args: &ServiceArgs, env: &Env) -> Result<Loaded, syn::Error> {
    let relative = Path::new(&args.config);
    if relative.is_absolute() {
        return Err(syn::Error::new(
            args.config_span,
            format!(
                "`config = \"{}\"` is absolute; write it relative to the crate's Cargo.toml (e.g. \"../../architecture.toml\") so the crate builds on every machine",
                args.config
            ),
        ));
    }
    let path = env.manifest_dir.join(relative);
    let source = match SourceFile::read_as(&path, &args.config) {
        Ok(source) => source,
        Err(e) => {
            let hint = match e {
                ReadError::NotFound { .. } => {
                    "`config` is resolved relative to this crate's Cargo.toml: check the path"
                }
                _ => e.help(),
            };
            return Err(syn::Error::new(
                args.config_span,
                format!("cannot read the architecture file: {e}; {hint}"),
            ));
        }
    };
    let checked = {
        let mut map = cache()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match map.get(&path) {
            Some((cached_text, checked)) if cached_text == source.text() => checked.clone(),
            _ => {
                let checked = allframe_config::check(&source)
                    .map(Arc::new)
                    .map_err(Arc::new);
                map.insert(path.clone(), (source.text().to_owned(), checked.clone()));
                checked
            }
        }
    };
    match checked {
        Ok(architecture) => Ok(Loaded { path, architecture }),
        Err(diagnostics) => Err(errors_at(args.config_span, &diagnostics)),
    }
}

/// One `compile_error!` per error of the file, all at `span`.
fn errors_at(span: Span, diagnostics: &Diagnostics) -> syn::Error {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| syn::Error::new(span, diagnostics.render_one(d)))
        .reduce(|mut all, next| {
            all.combine(next);
            all
        })
        .unwrap_or_else(|| syn::Error::new(span, "the architecture file is invalid"))
}

impl Loaded {
    /// The service named by the attribute, or an error suggesting the nearest name.
    pub fn service(&self, args: &ServiceArgs) -> Result<&ResolvedService, syn::Error> {
        self.architecture.service(&args.name).ok_or_else(|| {
            let names: Vec<&str> = self
                .architecture
                .services()
                .iter()
                .map(|s| s.name())
                .collect();
            let hint = allframe_config::suggest::closest(&args.name, names.iter().copied())
                .map(|n| format!("did you mean `{n}`?"))
                .unwrap_or_else(|| {
                    let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                    format!("the services are: {}", listed.join(", "))
                });
            syn::Error::new(
                args.name_span,
                format!(
                    "`{}` declares no service named `{}`; {hint}",
                    args.config, args.name
                ),
            )
        })
    }
}
