//! What the tools cost, each beside its floor measured in the same run:
//! - `check`: parse + resolve + validate the seed's reference file, beside `toml::from_str` of it
//!   into an untyped table (the least any tool reading the file must do);
//! - `expand`: `#[allframe::service]` for one stateless service, in-process, beside the same
//!   `toml::from_str` (the file is cached across expansions, as in one compilation);
//! - `ignite`: the whole reference file into a fresh directory, beside `cp -r` of the tree it
//!   produced;
//! - `scale`: `check` of a file with 10,000 services and `ignite` of one with 1,000, beside
//!   `toml::from_str` and `cp -r` of the same: both must stay linear in the number of services.
//!
//! `cargo bench -p allframe-bench --bench compile_time` (`-- scale` for the large files only)

use std::path::{Path, PathBuf};
use std::process::Command;

use allframe_codegen::{Env, expand_service};
use cargo_allframe::ignite::{IgniteArgs, ignite};
use cargo_allframe::report::Reporter;
use criterion::{Criterion, criterion_group, criterion_main};
use quote::quote;

fn repo() -> PathBuf {
    // The directory `cargo bench` runs this from, not the one it was compiled in.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

fn reference() -> PathBuf {
    repo().join("examples/reference/architecture.toml")
}

fn check_and_expand(c: &mut Criterion) {
    let text = std::fs::read_to_string(reference()).expect("reference file");
    let mut group = c.benchmark_group("config");
    group.bench_function("toml::from_str (floor)", |b| {
        b.iter(|| toml::from_str::<toml::Table>(&text).expect("toml"))
    });
    group.bench_function("allframe_config::check", |b| {
        b.iter(|| {
            let source = allframe_config::SourceFile::new("architecture.toml", text.clone());
            allframe_config::check(&source).expect("valid")
        })
    });
    group.finish();

    let env = Env {
        manifest_dir: reference()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        debug: false,
    };
    let mut group = c.benchmark_group("expand");
    group.bench_function("toml::from_str (floor)", |b| {
        b.iter(|| toml::from_str::<toml::Table>(&text).expect("toml"))
    });
    group.bench_function("user-service", |b| {
        b.iter(|| {
            expand_service(
                quote!(config = "architecture.toml", name = "user-service"),
                quote!(
                    pub struct UserService;
                ),
                &env,
            )
        })
    });
    group.finish();
}

fn ignite_reference(c: &mut Criterion) {
    let mut group = c.benchmark_group("ignite");
    group.sample_size(20);
    let template = tempfile::tempdir().expect("tempdir");
    let produced = template.path().join("tree");
    run_ignite(&produced);
    group.bench_function("cp -r of the output (floor)", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                let status = Command::new("cp")
                    .arg("-r")
                    .arg(&produced)
                    .arg(dir.path().join("copy"))
                    .status()
                    .expect("cp");
                assert!(status.success());
                dir
            },
        )
    });
    group.bench_function("reference architecture", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                run_ignite(&dir.path().join("out"));
                dir
            },
        )
    });
    group.finish();
}

/// An architecture of `services` services: four stateless services with an entity, an event,
/// ports, outbound calls and an outbox for each consumer of the previous one's event (and of an
/// event no service declares).
fn large_architecture(services: usize) -> String {
    let mut out =
        String::from("[architecture]\nname = \"large\"\n\n[settings]\nevent_bus = \"nats\"\n");
    for i in 0..services {
        if i % 5 == 4 {
            out.push_str(&format!(
                "\n[[services]]\nname = \"svc-{i}\"\ntype = \"consumer\"\nresponsibility = \"Reacts to thing {prev}\"\n\n[services.consumer]\nevents = [\"Thing{prev}Created\", \"External{i}\"]\n",
                prev = i - 1
            ));
        } else {
            out.push_str(&format!(
                "\n[[services]]\nname = \"svc-{i}\"\ntype = \"stateless\"\nresponsibility = \"Service number {i}\"\n\n[services.domain]\nentities = [\"Thing{i}\"]\nevents = [\"Thing{i}Created\"]\n\n[services.ports]\ninbound = [\"rest:{port}\"]\noutbound = [\"postgres\", \"svc-{next}\"]\n\n[services.messaging]\npattern = \"outbox\"\n",
                port = 10_000 + i,
                next = (i + 1) % services
            ));
        }
    }
    out
}

fn scale(c: &mut Criterion) {
    let large = large_architecture(10_000);
    let mut group = c.benchmark_group("scale");
    group.sample_size(10);
    group.bench_function("toml::from_str of 10,000 services (floor)", |b| {
        b.iter(|| toml::from_str::<toml::Table>(&large).expect("toml"))
    });
    group.bench_function("allframe_config::check of 10,000 services", |b| {
        b.iter(|| {
            let source = allframe_config::SourceFile::new("architecture.toml", large.clone());
            allframe_config::check(&source).expect("valid")
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("architecture.toml");
    std::fs::write(&config, large_architecture(1_000)).expect("write");
    let produced = dir.path().join("tree");
    run_ignite_of(&config, &produced);
    group.bench_function("cp -r of 1,000 services' workspace (floor)", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().expect("tempdir"),
            |copy| {
                let status = Command::new("cp")
                    .arg("-r")
                    .arg(&produced)
                    .arg(copy.path().join("copy"))
                    .status()
                    .expect("cp");
                assert!(status.success());
                copy
            },
        )
    });
    group.bench_function("ignite of 1,000 services", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().expect("tempdir"),
            |out| {
                run_ignite_of(&config, &out.path().join("out"));
                out
            },
        )
    });
    group.finish();
}

fn run_ignite(out: &Path) {
    run_ignite_of(&reference(), out);
}

fn run_ignite_of(config: &Path, out: &Path) {
    let args = IgniteArgs {
        config: config.to_path_buf(),
        out: Some(out.to_path_buf()),
        runtime_path: Some(repo()),
        dry_run: false,
        force: false,
        deny_warnings: false,
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut reporter = Reporter::new(&mut stdout, &mut stderr, false);
    ignite(&args, &mut reporter).expect("ignite");
}

criterion_group!(benches, check_and_expand, ignite_reference, scale);
criterion_main!(benches);
