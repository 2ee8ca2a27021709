//! Tidy checks over the source tree: crate dependencies point down the layer table, no file grows past a size
//! limit, and to-do markers name an issue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// Which of our crates each crate may depend on (see ARCHITECTURE.md); anything not listed is a violation.
const ALLOWED: &[(&str, &[&str])] = &[
    ("inference", &[]),
    ("store", &[]),
    ("fleet", &["store"]),
    ("gateway", &["inference", "fleet", "store"]),
    ("agents", &["gateway", "store"]),
    ("commerce", &["gateway", "agents", "store"]),
    ("insights", &["store", "fleet"]),
    ("web", &["commerce", "gateway", "agents", "insights", "fleet"]),
    (
        "flywheel",
        &[
            "inference",
            "store",
            "fleet",
            "gateway",
            "agents",
            "commerce",
            "insights",
            "web",
        ],
    ),
];

const MAX_LINES: usize = 1200;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("crates"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").exists())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn dependencies_point_down_the_layers() {
    let ours: Vec<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
    for dir in crate_dirs() {
        let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let name = manifest["package"]["name"].as_str().unwrap().to_owned();
        let allowed = ALLOWED
            .iter()
            .find(|(crate_name, _)| *crate_name == name)
            .unwrap_or_else(|| panic!("crate {name} is not in the layer table of tests/tidy.rs"))
            .1;
        let dependencies = manifest
            .get("dependencies")
            .and_then(|d| d.as_table())
            .cloned()
            .unwrap_or_default();
        for dependency in dependencies.keys() {
            if ours.contains(&dependency.as_str()) {
                assert!(
                    allowed.contains(&dependency.as_str()),
                    "{name} must not depend on {dependency}"
                );
            }
        }
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn files_stay_small_and_todos_name_an_issue() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        assert!(
            lines <= MAX_LINES,
            "{} has {lines} lines; split it (limit {MAX_LINES})",
            file.display()
        );
        for (number, line) in text.lines().enumerate() {
            let marker = ["TO", "DO"].concat();
            if let Some(at) = line.find(&marker) {
                assert!(
                    line[at..].contains('#'),
                    "{}:{}: a {marker} must name its issue, like `{marker}(#12)`",
                    file.display(),
                    number + 1
                );
            }
        }
    }
}
