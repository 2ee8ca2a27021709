//! Seller tools end to end with the embedded model: a listing written from rough notes (valid by construction,
//! its category one of the catalog's), billed to the seller's own tenant; a quality score with reasons; and bulk
//! listings from a CSV that resume where an earlier run stopped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::Server;
use serde_json::json;

const MASTER: &str = "seller-test-master-key";

#[tokio::test]
async fn listings_are_written_from_notes_scored_and_billed_to_the_seller() {
    let mut server = Server::start_with(&["--master-key", MASTER]).await;
    let (status, created) = server
        .call(
            Some(MASTER),
            "POST",
            "/admin/keys",
            Some(json!({"tenant": "acme-seller"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();

    let notes = json!({"notes": "solid oak writing desk, two drawers, 120 cm wide, natural finish"});
    let (status, written) = server
        .call(Some(&key), "POST", "/api/seller/listings", Some(notes.clone()))
        .await;
    assert_eq!(status, 200, "{written}");
    let listing = &written["listing"];
    assert!(!listing["title"].as_str().unwrap().is_empty(), "{written}");
    let bullets = listing["bullets"].as_array().unwrap().len();
    assert!((3..=5).contains(&bullets), "{written}");
    let category = listing["category"].as_array().unwrap();
    assert!(!category.is_empty(), "{written}");
    // The category is one the catalog has: filtering a search by its last level finds products in it.
    let last = category.last().unwrap().as_str().unwrap();
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|byte| match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (byte as char).to_string(),
                _ => format!("%{byte:02X}"),
            })
            .collect()
    };
    let path = format!(
        "/api/search?mode=keyword&q={}&filter={}",
        encode(last),
        encode(&format!("category:{last}"))
    );
    let (_, found) = server.call(None, "GET", &path, None).await;
    assert!(found["total"].as_u64().unwrap() > 0, "{category:?}: {found}");
    let score = written["quality"]["score"].as_u64().unwrap();
    assert!(score <= 100);

    let (status, _) = server.call(None, "POST", "/api/seller/listings", Some(notes)).await;
    assert_eq!(status, 401, "a seller needs a key when auth is on");
    let (status, body) = server
        .call(Some(&key), "POST", "/api/seller/listings", Some(json!({"notes": " "})))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")));

    let poor = json!({"title": "DESK", "bullets": ["the best desk"], "description": "Nice.", "attributes": {}, "category": []});
    let (status, quality) = server
        .call(Some(&key), "POST", "/api/seller/listings/score", Some(poor))
        .await;
    assert_eq!(status, 200, "{quality}");
    assert!(quality["score"].as_u64().unwrap() < 50, "{quality}");
    assert!(quality["reasons"].as_array().unwrap().len() >= 5, "{quality}");

    assert!(server.terminate().success());
    let rows: Vec<(String,)> = sqlx::query_as("SELECT tenant FROM usage_ledger WHERE endpoint = 'chat.completions'")
        .fetch_all(&server.database().await)
        .await
        .unwrap();
    assert_eq!(
        rows,
        [("acme-seller".to_owned(),)],
        "the seller's tenant pays for its listing"
    );
}

#[test]
fn bulk_listings_resume_after_the_rows_already_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.csv");
    std::fs::write(
        &input,
        "sku,notes\n1,\"grey velvet three seat sofa, wooden legs\"\n2,\n3,round brass floor lamp with linen shade\n",
    )
    .unwrap();
    let output = dir.path().join("listings.jsonl");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_flywheel"))
            .args(["catalog", "listings"])
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--models-dir")
            .arg(common::models_dir())
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("2 listings written, 1 rows failed, 0 already done"),
        "{stdout}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1]["error"].as_str().unwrap().contains("notes must be"),
        "{}",
        lines[1]
    );
    assert!(lines[0]["listing"]["title"].is_string() && lines[0]["quality"]["score"].is_u64());

    let second = run();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("0 listings written, 0 rows failed, 3 already done"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&output).unwrap().lines().count(), 3);

    let missing = Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args(["catalog", "listings", "/nonexistent.csv", "--output"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert_eq!(String::from_utf8_lossy(&missing.stderr).trim().lines().count(), 1);
}
