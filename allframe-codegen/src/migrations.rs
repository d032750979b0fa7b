//! Embeds the crate's `migrations/*.sql` (sqlx naming: `<version>_<description>.sql`) so the
//! binary carries its schema. Each file goes through `include_str!`, so editing one rebuilds the
//! crate; the generated `build.rs` reruns the build when a file is added.

use std::path::Path;

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;

/// One migration file found on disk.
struct Migration {
    version: i64,
    description: String,
    path: String,
}

/// `static __ALLFRAME_MIGRATIONS: &[EmbeddedMigration] = &[…];`
pub(crate) fn migrations(
    krate: &syn::Path,
    manifest_dir: &Path,
    span: Span,
) -> Result<TokenStream, syn::Error> {
    let found = scan(&manifest_dir.join("migrations"), span)?;
    let p = quote!(#krate::__private);
    let entries = found.iter().map(|m| {
        let (version, description, path) = (Literal::i64_unsuffixed(m.version), &m.description, &m.path);
        quote!(#p::EmbeddedMigration { version: #version, description: #description, sql: ::core::include_str!(#path) })
    });
    Ok(quote! {
        /// The crate's `migrations/`, embedded at compile time and applied at start-up.
        static __ALLFRAME_MIGRATIONS: &[#p::EmbeddedMigration] = &[#(#entries),*];
    })
}

fn scan(dir: &Path, span: Span) -> Result<Vec<Migration>, syn::Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(syn::Error::new(
                span,
                format!("cannot read {}: {e}", dir.display()),
            ));
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        if stem.ends_with(".down") {
            continue;
        }
        let stem = stem.strip_suffix(".up").unwrap_or(stem);
        let parsed = stem
            .split_once('_')
            .and_then(|(v, d)| v.parse::<i64>().ok().map(|v| (v, d.replace('_', " "))));
        let Some((version, description)) = parsed else {
            return Err(syn::Error::new(
                span,
                format!(
                    "migration `migrations/{file}` is not named `<version>_<description>.sql`; rename it, e.g. `0002_add_email.sql`"
                ),
            ));
        };
        if let Some(other) = found.iter().find(|m: &&Migration| m.version == version) {
            return Err(syn::Error::new(
                span,
                format!(
                    "migrations `{}` and `migrations/{file}` share version {version}; give each its own number",
                    other.path
                ),
            ));
        }
        found.push(Migration {
            version,
            description,
            path: path.to_string_lossy().into_owned(),
        });
    }
    found.sort_by_key(|m| m.version);
    Ok(found)
}
