//! Hostile values in every free-text field of the reference file: nothing from the file reaches
//! a generated file unescaped. Each string of the reference file is replaced, one at a time, by
//! hostile text; the fields `check` accepts with it (free text: responsibilities, the version,
//! `${VAR}` templates) all get it at once, and every generated file must have as many lines as
//! with harmless text there, carry no raw line break or control character, and still parse
//! (TOML with `toml`, Rust with `syn`, YAML with `serde-saphyr`, JSON with `serde_json`). The
//! real-services suite runs PyYAML and python-hcl2 over the same files
//! (`hostile_files_pass_the_python_parsers`).

use std::collections::BTreeMap;

use allframe_config::SourceFile;
use cargo_allframe::context::RuntimeSource;
use cargo_allframe::escape::breaks_line;
use cargo_allframe::plan;
use cargo_allframe::templates::Renderer;
use toml_edit::{DocumentMut, Item, Value};

use crate::common::{read, repository};

/// Hostile text and a harmless text that `check` treats the same way.
struct Variant {
    hostile: &'static str,
    harmless: &'static str,
}

const VARIANTS: &[Variant] = &[
    // Line breaks of every kind, quotes, comment and string ends, markup, NUL.
    Variant {
        hostile: "one\ntwo\r\nthree \"four\" 'five' \\six */ seven # eight `nine` ten\0eleven\u{2028}twelve\u{2029}thirteen\u{85}fourteen\u{0B}<b>x</b> | [l](m) --> -- '; DROP TABLE x; -- \t%s {}",
        harmless: "one two three four five six seven eight nine ten eleven twelve thirteen fourteen x l m DROP TABLE x s",
    },
    // Template syntax of the languages written: Terraform, Jinja, shell, GitHub Actions.
    Variant {
        hostile: "a ${NOT_A_VAR b %{ if true } $${x} {{ tmpl }} {% raw %} $(rm -rf /) ${{ secrets.X }}",
        harmless: "a b if true x tmpl raw rm rf secrets X",
    },
    // A valid `${VAR}` template (for the fields that are templates) with hostile text around it.
    Variant {
        hostile: "https://x$$$$${AUTH_DOMAIN}/\"x\"\n# y */ `z`",
        harmless: "https://x${AUTH_DOMAIN}/x y z",
    },
];

/// Every string of `item` with its path: a key path, then array indices.
fn strings(item: &Item, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match item {
        Item::Value(value) => value_strings(value, path, out),
        Item::Table(table) => {
            for (key, item) in table.iter() {
                path.push(Step::Key(key.to_owned()));
                strings(item, path, out);
                path.pop();
            }
        }
        Item::ArrayOfTables(array) => {
            for (i, table) in array.iter().enumerate() {
                path.push(Step::Index(i));
                for (key, item) in table.iter() {
                    path.push(Step::Key(key.to_owned()));
                    strings(item, path, out);
                    path.pop();
                }
                path.pop();
            }
        }
        Item::None => {}
    }
}

fn value_strings(value: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        Value::String(_) => out.push(path.clone()),
        Value::Array(array) => {
            for (i, value) in array.iter().enumerate() {
                path.push(Step::Index(i));
                value_strings(value, path, out);
                path.pop();
            }
        }
        Value::InlineTable(table) => {
            for (key, value) in table.iter() {
                path.push(Step::Key(key.to_owned()));
                value_strings(value, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// `document` with the string at `path` set to `text`.
fn replace(document: &mut DocumentMut, path: &[Step], text: &str) {
    fn in_value(value: &mut Value, path: &[Step], text: &str) {
        match (path.first(), value) {
            (None, value) => *value = Value::from(text),
            (Some(Step::Index(i)), Value::Array(array)) => {
                in_value(array.get_mut(*i).expect("index"), &path[1..], text);
            }
            (Some(Step::Key(key)), Value::InlineTable(table)) => {
                in_value(table.get_mut(key).expect("key"), &path[1..], text);
            }
            (step, other) => panic!("{step:?} in {other}"),
        }
    }
    fn in_item(item: &mut Item, path: &[Step], text: &str) {
        match (path.first(), item) {
            (_, Item::Value(value)) => in_value(value, path, text),
            (Some(Step::Key(key)), Item::Table(table)) => {
                in_item(table.get_mut(key).expect("key"), &path[1..], text);
            }
            (Some(Step::Index(i)), Item::ArrayOfTables(array)) => {
                let table = array.get_mut(*i).expect("index");
                let Some(Step::Key(key)) = path.get(1) else {
                    panic!("a key after an index")
                };
                in_item(table.get_mut(key).expect("key"), &path[2..], text);
            }
            (step, other) => panic!("{step:?} in {other}"),
        }
    }
    in_item(document.as_item_mut(), path, text);
}

fn accepted(text: &str) -> bool {
    allframe_config::check(&SourceFile::new("architecture.toml", text)).is_ok()
}

/// What ignite writes for `text` (crates, infrastructure, docs), and the infrastructure of
/// every service as it will be once each type is generated.
fn rendered(text: &str) -> BTreeMap<String, String> {
    let source = SourceFile::new("architecture.toml", text);
    let architecture = allframe_config::check(&source).expect("a valid file");
    let renderer = Renderer::new().expect("templates parse");
    let runtime = RuntimeSource::Version("0.1.0".into());
    let mut files: BTreeMap<String, String> =
        plan::plan(&architecture, text.as_bytes(), &runtime, &renderer)
            .expect("plan")
            .files
            .into_iter()
            .map(|f| (f.path, String::from_utf8(f.contents).expect("utf-8")))
            .collect();
    let every = architecture
        .services()
        .iter()
        .map(|s| s.name().to_owned())
        .collect();
    for file in cargo_allframe::infra::plan(&architecture, &every, &renderer).expect("infra") {
        let text = String::from_utf8(file.contents).expect("utf-8");
        files.insert(format!("(every service)/{}", file.path), text);
    }
    files
}

/// The reference file with every field that accepts `variant` set to it, and to its harmless
/// twin; the paths of those fields.
pub fn hostile_and_harmless(variant_index: usize) -> (String, String, Vec<String>) {
    let variant = &VARIANTS[variant_index];
    let text = read(&repository().join("examples/reference/architecture.toml"));
    let document: DocumentMut = text.parse().expect("the reference file is TOML");
    let mut paths = Vec::new();
    strings(document.as_item(), &mut Vec::new(), &mut paths);
    let free: Vec<Vec<Step>> = paths
        .into_iter()
        .filter(|path| {
            let mut one = document.clone();
            replace(&mut one, path, variant.hostile);
            accepted(&one.to_string())
        })
        .collect();
    let (mut hostile, mut harmless) = (document.clone(), document);
    for path in &free {
        replace(&mut hostile, path, variant.hostile);
        replace(&mut harmless, path, variant.harmless);
    }
    let names = free.iter().map(|p| format!("{p:?}")).collect();
    (hostile.to_string(), harmless.to_string(), names)
}

/// The generated files of `hostile` and `harmless`, checked against each other.
pub fn checked_files(hostile: &str, harmless: &str) -> BTreeMap<String, String> {
    let (bad, good) = (rendered(hostile), rendered(harmless));
    assert_eq!(
        bad.keys().collect::<Vec<_>>(),
        good.keys().collect::<Vec<_>>(),
        "hostile text changed which files are written"
    );
    for (path, text) in &bad {
        if path == plan::ARCHITECTURE_FILE {
            // The user's own file, copied byte for byte.
            continue;
        }
        let lines = |t: &str| t.matches('\n').count();
        if std::env::var_os("HOSTILE_DUMP").is_some() && lines(text) != lines(&good[path]) {
            std::fs::write("/tmp/hostile.txt", text).unwrap();
            std::fs::write("/tmp/harmless.txt", &good[path]).unwrap();
        }
        assert_eq!(
            lines(text),
            lines(&good[path]),
            "{path}: hostile text changed the number of lines:\n{text}"
        );
        if let Some(c) = text
            .chars()
            .find(|c| (breaks_line(*c) && *c != '\n') || (c.is_control() && !"\n\t".contains(*c)))
        {
            panic!("{path} holds a raw {c:?}:\n{text}");
        }
        parses(path, text);
    }
    bad
}

fn parses(path: &str, text: &str) {
    let extension = path.rsplit('.').next().unwrap_or("");
    match extension {
        "toml" => {
            toml::from_str::<toml::Table>(text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
        }
        "rs" => {
            syn::parse_file(text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
        }
        "yaml" | "yml" => {
            serde_saphyr::from_multiple::<serde_json::Value>(text)
                .unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
        }
        "json" | "avsc" => {
            serde_json::from_str::<serde_json::Value>(text)
                .unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
        }
        _ => {}
    }
}

#[test]
fn hostile_text_in_every_free_text_field_stays_inside_its_value() {
    for index in 0..VARIANTS.len() {
        let (hostile, harmless, fields) = hostile_and_harmless(index);
        assert!(
            fields.iter().any(|f| f.contains("responsibility")),
            "variant {index} reached no responsibility: {fields:?}"
        );
        let files = checked_files(&hostile, &harmless);
        // The hostile text did land somewhere, escaped: in comments, docs and strings.
        assert!(
            files.values().any(|t| t.contains("DROP TABLE")
                || t.contains("NOT_A_VAR")
                || t.contains("auth_domain")),
            "variant {index} is not in any generated file"
        );
    }
}

/// Parses every YAML file with PyYAML and every Terraform file with python-hcl2.
const PYTHON_PARSERS: &str = r#"
import pathlib, sys
import hcl2, yaml
root = pathlib.Path(sys.argv[1])
count = 0
for path in sorted(root.rglob("*")):
    if path.suffix in (".yaml", ".yml"):
        list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    elif path.suffix in (".tf", ".tfvars"):
        with path.open(encoding="utf-8") as f:
            hcl2.load(f)
    else:
        continue
    count += 1
print(count)
"#;

#[test]
#[ignore = "validators: needs python3 with PyYAML and python-hcl2 (installed by .ci/run)"]
fn hostile_files_pass_the_python_parsers() {
    for index in 0..VARIANTS.len() {
        let (hostile, harmless, _) = hostile_and_harmless(index);
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in checked_files(&hostile, &harmless) {
            let target = dir
                .path()
                .join(path.replace("(every service)", "every-service"));
            std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&target, text).expect("write");
        }
        let output = std::process::Command::new("python3")
            .args(["-c", PYTHON_PARSERS])
            .arg(dir.path())
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "variant {index}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let parsed: usize = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a count");
        assert!(parsed > 50, "variant {index}: only {parsed} files parsed");
    }
}
