//! `cargo run -p allframe-config --example check -- FILE`: prints the diagnostics of a file.
fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "architecture.toml".into());
    match allframe_config::SourceFile::read(std::path::Path::new(&path)) {
        Err(e) => eprintln!("{path}: {e}"),
        Ok(source) => match allframe_config::check(&source) {
            Ok(arch) => {
                for w in arch
                    .warning_report()
                    .iter()
                    .flat_map(|r| r.iter().map(|d| r.render_one(d)))
                {
                    println!("{w}");
                }
                for s in arch.services() {
                    println!(
                        "{} {} http={} grpc={:?} db={}",
                        s.name(),
                        s.kind(),
                        s.common.http_port,
                        s.common.grpc_port,
                        s.common.database
                    );
                }
            }
            Err(d) => println!("{d}"),
        },
    }
}
