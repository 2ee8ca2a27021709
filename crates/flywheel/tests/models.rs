//! `flywheel models list|add|remove` on a models directory of its own, and `flywheel up` serving what was added.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Server;
use serde_json::{Value, json};

const CHAT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn models(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .arg("models")
        .arg("--models-dir")
        .arg(dir)
        .args(args)
        .env_remove("FLYWHEEL_MODELS_DIR")
        .output()
        .unwrap()
}

/// The command failed with one readable line on stderr containing `needle`.
fn fails_with(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a failure: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{stderr}");
}

/// A models directory holding the built-in models as links to the shared ones.
fn models_dir_with_built_ins() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shared = common::models_dir();
    for name in [CHAT_MODEL_FILE, "all-MiniLM-L6-v2"] {
        std::os::unix::fs::symlink(shared.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

#[tokio::test]
async fn added_models_are_listed_served_and_removed() {
    let dir = models_dir_with_built_ins();
    let listed = models(dir.path(), &["list", "--json"]);
    assert!(listed.status.success());
    let listing: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listing.as_array().unwrap().len(), 2);
    assert_eq!(listing[0]["architecture"], "llama");
    assert_eq!(listing[0]["quantization"], "Q4_1");
    assert_eq!(listing[0]["context_length"], 8192);
    assert_eq!(listing[1]["kind"], "embedding");

    // A second chat model, from the same GGUF, registered where it is; and a copied embedder.
    let gguf = common::models_dir().join(CHAT_MODEL_FILE);
    let added = models(
        dir.path(),
        &["add", gguf.to_str().unwrap(), "--id", "second-chat", "--link"],
    );
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let embedder = common::models_dir().join("all-MiniLM-L6-v2");
    let added = models(
        dir.path(),
        &["add", embedder.to_str().unwrap(), "--id", "second-embedder"],
    );
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(
        dir.path().join("second-embedder/model.safetensors").is_file(),
        "copied under its id"
    );
    let table = String::from_utf8(models(dir.path(), &["list"]).stdout).unwrap();
    assert!(
        table.contains("second-chat") && table.contains("second-embedder"),
        "{table}"
    );

    // Bad inputs: one line each, and nothing changes.
    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "hello").unwrap();
    fails_with(
        &models(dir.path(), &["add", not_gguf.to_str().unwrap()]),
        "not a usable GGUF model",
    );
    fails_with(&models(dir.path(), &["add", "/no/such/model.gguf"]), "no such file");
    fails_with(
        &models(
            dir.path(),
            &["add", gguf.to_str().unwrap(), "--id", "second-chat", "--link"],
        ),
        "exists already",
    );
    fails_with(
        &models(dir.path(), &["add", gguf.to_str().unwrap(), "--id", "Bad Id", "--link"]),
        "invalid model id",
    );
    fails_with(&models(dir.path(), &["remove", "smollm2-135m-instruct"]), "built in");
    fails_with(&models(dir.path(), &["remove", "nothing-here"]), "no added model");

    // `up` serves both chat models and both embedders.
    let mut server = Server::start_in(dir.path(), &[], &[]).await;
    let (status, models_list) = server.call(None, "GET", "/v1/models", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = models_list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"second-chat") && ids.contains(&"second-embedder"),
        "{models_list}"
    );
    let chat = json!({"model": "second-chat", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4});
    let (status, answer) = server.call(None, "POST", "/v1/chat/completions", Some(chat)).await;
    assert_eq!(status, 200, "{answer}");
    let embed = json!({"model": "second-embedder", "input": "a velvet sofa"});
    let (status, vectors) = server.call(None, "POST", "/v1/embeddings", Some(embed)).await;
    assert_eq!(status, 200, "{vectors}");
    assert_eq!(vectors["data"][0]["embedding"].as_array().unwrap().len(), 384);
    assert!(server.terminate().success());

    // Removing: the copy goes, the linked file stays.
    assert!(models(dir.path(), &["remove", "second-embedder"]).status.success());
    assert!(!dir.path().join("second-embedder").exists());
    assert!(models(dir.path(), &["remove", "second-chat"]).status.success());
    assert!(gguf.is_file());
    let listing: Value = serde_json::from_slice(&models(dir.path(), &["list", "--json"]).stdout).unwrap();
    assert_eq!(listing.as_array().unwrap().len(), 2);
}
