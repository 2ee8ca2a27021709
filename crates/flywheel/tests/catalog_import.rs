//! Catalog import end to end: product files posted to the admin API and imported with `flywheel catalog import`
//! while the server runs, with their field mappings, per-line rejects, updates in place, and the errors a
//! wrong file or caller gets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

const MASTER: &str = "catalog-test-master-key";

const CSV: &str = "sku,title,price,rating,category,colour\n\
                   zx-1,Zanzibar walnut desk,249.00,4.5,Furniture / Office / Desks,walnut\n\
                   zx-2,Zanzibar oak chair,89.90,,Furniture / Office / Chairs,oak\n\
                   ,nameless,1,1,Furniture,\n\
                   zx-3,Zanzibar pine shelf,cheap,,Storage,pine\n\
                   zx-4,Zanzibar lamp,35,,Lighting,brass\n";

async fn import(server: &Server, key: Option<&str>, query: &str, body: &str) -> (u16, Value) {
    let mut request = common::http_client()
        .post(server.url(&format!("/admin/catalog/import{query}")))
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn product(server: &Server, id: &str) -> (u16, Value) {
    server.call(None, "GET", &format!("/api/products/{id}"), None).await
}

#[tokio::test]
async fn product_files_import_over_http_and_from_the_cli_with_the_server_up() {
    let server = Server::start_with(&["--master-key", MASTER, "--no-embedded-models"]).await;
    let (status, demo) = product(&server, "13").await;
    assert_eq!(
        status, 200,
        "the demo catalog is imported into an empty database: {demo}"
    );

    let (status, report) = import(&server, Some(MASTER), "?format=csv&mapping=id=sku,name=title", CSV).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["valid"].as_u64(), report["inserted"].as_u64()),
        (Some(3), Some(3))
    );
    let rejected: Vec<(u64, &str)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["line"].as_u64().unwrap(), row["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        [(4, "empty id"), (5, "price 'cheap' is not a non-negative number")]
    );
    let (status, desk) = product(&server, "zx-1").await;
    assert_eq!(status, 200);
    assert_eq!(desk["name"], "Zanzibar walnut desk");
    assert_eq!(desk["price"], 249.0);
    assert_eq!(desk["rating"], 4.5);
    assert_eq!(
        desk["category_path"],
        serde_json::json!(["Furniture", "Office", "Desks"])
    );
    assert_eq!(desk["attributes"]["colour"], "walnut");
    let (_, search) = server
        .call(None, "GET", "/api/search?q=zanzibar&mode=keyword&limit=10", None)
        .await;
    let mut ids: Vec<&str> = search["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["zx-1", "zx-2", "zx-4"]);
    // The demo products are still there: an import adds and updates, it does not replace.
    assert_eq!(product(&server, "13").await.0, 200);

    // Re-importing updates in place.
    let changed = CSV.replace("Zanzibar oak chair,89.90", "Zanzibar oak armchair,99.00");
    let (status, report) = import(&server, Some(MASTER), "?mapping=id=sku,name=title", &changed).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["format"], "csv", "detected");
    assert_eq!(
        (
            report["inserted"].as_u64(),
            report["updated"].as_u64(),
            report["unchanged"].as_u64()
        ),
        (Some(0), Some(1), Some(2))
    );
    assert_eq!(product(&server, "zx-2").await.1["name"], "Zanzibar oak armchair");

    // Wrong callers and wrong files get clear errors, and change nothing.
    let (status, body) = import(&server, None, "?format=csv", CSV).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key")),
        "{body}"
    );
    let (status, body) = import(&server, Some(MASTER), "?format=xml", CSV).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = import(&server, Some(MASTER), "?mapping=colour=title", CSV).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = import(&server, Some(MASTER), "?format=csv", CSV).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("catalog_format_invalid")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("'id'"), "{body}");
    let (status, body) = import(&server, Some(MASTER), "?format=jsonl", "not json\n{\"id\": 1}\n").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("none of its 2 rows"),
        "{body}"
    );
    let (status, body) = import(&server, Some(MASTER), "", "").await;
    assert_eq!(status, 400, "{body}");

    // The CLI writes to the same database; the running server notices within seconds.
    let file = server.data_dir.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"id\": \"zx-9\", \"name\": \"Zanzibar rattan stool\", \"price\": 60, \"attributes\": {\"material\": \"rattan\"}}\n\
         {\"id\": \"zx-10\"}\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args(["catalog", "import"])
        .arg(&file)
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 products (1 new, 0 updated, 0 unchanged), 1 rows skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("line 2: empty name for product 'zx-10'"), "{stdout}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, stool) = product(&server, "zx-9").await;
        if status == 200 {
            assert_eq!(stool["attributes"]["material"], "rattan");
            break;
        }
        assert!(Instant::now() < deadline, "the server did not pick up the CLI's import");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, stored) = server.call(Some(MASTER), "GET", "/admin/catalog", None).await;
    assert_eq!(status, 200);
    assert_eq!(stored["products"], 6_482 + 4);
    assert_eq!(stored["version"], stored["served_version"]);

    // A file the CLI cannot use is one readable line and a failing exit.
    let output = Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args(["catalog", "import", "/nonexistent/products.csv", "--data-dir"])
        .arg(server.data_dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read /nonexistent/products.csv"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
