//! End-to-end tests of the storefront over real HTTP: search, product pages, and product questions answered by
//! the embedded model through the gateway, each one a ledger row under the storefront's tenant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use serde_json::{Value, json};

#[tokio::test]
async fn search_product_pages_and_questions_land_in_the_ledger() {
    let mut server = Server::start().await;
    let client = common::http_client();

    let search: Value = client
        .get(server.url("/api/search?q=king+poster+bed&limit=5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = search["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    let id = hits[0]["id"].as_str().unwrap().to_owned();
    let name = hits[0]["name"].as_str().unwrap().to_owned();
    assert!(name.contains("bed"), "{name}");

    let product: Value = client
        .get(server.url(&format!("/api/products/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(product["name"], name);

    // The JSON API answers from the product's facts.
    let response = client
        .post(server.url(&format!("/api/products/{id}/ask")))
        .json(&json!({"question": "What kind of product is this?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["product_id"], id.as_str());
    assert_eq!(answer["model"], "smollm2-135m-instruct");
    assert!(!answer["answer"].as_str().unwrap().is_empty());

    // Bad questions are refused before any model call.
    let response = client
        .post(server.url(&format!("/api/products/{id}/ask")))
        .json(&json!({"question": " "}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    let response = client
        .post(server.url("/api/products/no-such-product/ask"))
        .json(&json!({"question": "Is it big?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Unknown paths: JSON under /api, a store page elsewhere.
    let response = client.get(server.url("/api/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "unknown_url");
    let response = client.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("Page not found"));

    // The pages: home, product, and the question form posted like a browser would.
    let home = client.get(server.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("flywheel store"));
    let page = client
        .get(server.url(&format!("/products/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&name));
    assert!(page.contains("Ask about this product"));
    let response = client
        .post(server.url(&format!("/products/{id}/ask")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("question=Is+this+a+bed%3F")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answered = response.text().await.unwrap();
    assert!(answered.contains("You asked: Is this a bed?"), "{answered}");
    let answer_text = answered
        .split(r#"<p class="answer-text">"#)
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no answer paragraph: {answered}"));
    assert!(!answer_text.trim().is_empty(), "{answered}");
    let first_heading = answered.split("<h1").nth(1).unwrap().split("</h1>").next().unwrap();
    assert!(
        first_heading.contains(&name),
        "the product stays the first heading: {first_heading}"
    );

    assert!(server.terminate().success());
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        // The storefront also embeds its products (and shoppers' queries) for hybrid search; only questions here.
        "SELECT tenant, endpoint, status, prompt_tokens, completion_tokens FROM usage_ledger \
         WHERE endpoint = 'chat.completions' ORDER BY id",
    )
    .fetch_all(&server.database().await)
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        2,
        "one row per answered question, none for refused ones: {rows:?}"
    );
    for (tenant, endpoint, status, prompt_tokens, completion_tokens) in &rows {
        assert_eq!(
            (tenant.as_str(), endpoint.as_str(), status.as_str()),
            ("storefront", "chat.completions", "ok")
        );
        assert!(*prompt_tokens > 0 && *completion_tokens > 0, "{rows:?}");
    }
}
