//! Merchandising over real HTTP: synonym sets widen what a word finds, rules pin, boost and bury products for
//! matching queries, and hits can carry their names with the matched words marked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use serde_json::{Value, json};

const MASTER: &str = "merchandising-test-master-key";

async fn search(server: &Server, query: &str) -> Value {
    let (status, page) = server
        .call(
            None,
            "GET",
            &format!("/api/search?q={query}&mode=keyword&limit=20&highlight=true"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page
}

fn names(page: &Value) -> Vec<String> {
    page["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn synonyms_rules_and_highlights_shape_the_results() {
    let server = Server::start_with(&["--master-key", MASTER, "--no-embedded-models"]).await;

    let page = search(&server, "king+bed").await;
    let marked = page["hits"][0]["highlighted_name"].as_str().unwrap();
    assert!(
        marked.contains("<em>bed</em>") && marked.contains("<em>king</em>"),
        "{marked}"
    );

    // "settee" alone finds no sofas; once it is a sofa's synonym, it does.
    let before = search(&server, "settee").await;
    assert!(!names(&before).iter().any(|name| name.contains("sofa")), "{before}");
    let (status, set) = server
        .call(
            Some(MASTER),
            "POST",
            "/admin/catalog/synonyms",
            Some(json!({"words": ["settee", "sofa"]})),
        )
        .await;
    assert_eq!(status, 201, "{set}");
    let after = search(&server, "settee").await;
    assert!(names(&after).iter().any(|name| name.contains("sofa")), "{after}");
    let (status, body) = server
        .call(
            Some(MASTER),
            "POST",
            "/admin/catalog/synonyms",
            Some(json!({"words": ["alone"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // A rule for lamps pins a bed first and buries outdoor products.
    let rule = json!({"query": "lamp", "pin": [{"product_id": "13", "position": 1}], "bury": ["category:Outdoor"]});
    let (status, created) = server
        .call(Some(MASTER), "POST", "/admin/catalog/rules", Some(rule))
        .await;
    assert_eq!(status, 201, "{created}");
    let rule_id = created["id"].as_str().unwrap().to_owned();
    let page = search(&server, "table+lamp").await;
    assert_eq!(page["hits"][0]["id"], "13", "{page}");
    assert_eq!(page["rules_applied"], json!([rule_id]));
    let outdoor: Vec<bool> = page["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| {
            hit["category_path"]
                .as_array()
                .unwrap()
                .iter()
                .any(|level| level == "Outdoor")
        })
        .collect();
    assert!(
        outdoor.windows(2).all(|pair| !pair[0] || pair[1]),
        "outdoor products come last: {outdoor:?}"
    );
    assert!(
        search(&server, "bed").await.get("rules_applied").is_none(),
        "other queries are untouched"
    );

    for (rule, needle) in [
        (
            json!({"query": "lamp", "pin": [{"product_id": "no-such", "position": 1}]}),
            "no product",
        ),
        (json!({"query": "lamp", "boost": ["price:cheap"]}), "price"),
        (json!({"query": " ", "bury": ["category:Outdoor"]}), "query"),
        (json!({"query": "lamp"}), "at least one"),
    ] {
        let (status, body) = server
            .call(Some(MASTER), "POST", "/admin/catalog/rules", Some(rule))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {body}"
        );
    }
    let (status, _) = server
        .call(None, "POST", "/admin/catalog/rules", Some(json!({"query": "x"})))
        .await;
    assert_eq!(status, 401);

    let path = format!("/admin/catalog/merchandising/{rule_id}");
    assert_eq!(server.call(Some(MASTER), "DELETE", &path, None).await.0, 204);
    assert_eq!(server.call(Some(MASTER), "DELETE", &path, None).await.0, 404);
    assert_ne!(search(&server, "table+lamp").await["hits"][0]["id"], "13");
    let (_, listed) = server.call(Some(MASTER), "GET", "/admin/catalog/synonyms", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}
