//! What the store learns from shoppers, over real HTTP: searches become autocomplete suggestions (only once
//! several sessions asked), views and orders become "customers also viewed / bought", and the pages start a
//! session cookie on their own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::json;

async fn related(server: &Server, path: &str, want: usize) -> Vec<String> {
    // Events are written in batches a few milliseconds behind the request.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.call(None, "GET", path, None).await;
        assert_eq!(status, 200, "{body}");
        let ids: Vec<String> = body["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|product| product["id"].as_str().unwrap().to_owned())
            .collect();
        if ids.len() >= want || Instant::now() > deadline {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn searches_views_and_orders_teach_suggestions_and_related_products() {
    let server = Server::start_with(&["--no-embedded-models"]).await;

    for session in ["a", "b"] {
        let (status, _) = server
            .call(
                None,
                "GET",
                &format!("/api/search?q=Velvet+Sofa&mode=keyword&session={session}"),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
    server
        .call(None, "GET", "/api/search?q=velvet+secret&mode=keyword&session=a", None)
        .await;
    let (status, suggestions) = server.call(None, "GET", "/api/suggest?q=velv", None).await;
    assert_eq!(status, 200, "{suggestions}");
    assert_eq!(
        suggestions["queries"],
        json!([{"text": "velvet sofa", "sessions": 2}]),
        "one session's query stays private"
    );
    let (_, suggestions) = server.call(None, "GET", "/api/suggest?q=bed", None).await;
    let categories: Vec<&str> = suggestions["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    assert!(categories.contains(&"Beds"), "{categories:?}");

    for (session, product) in [("a", "13"), ("a", "4"), ("b", "13"), ("b", "30"), ("c", "30")] {
        let (status, _) = server
            .call(None, "GET", &format!("/api/products/{product}?session={session}"), None)
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(related(&server, "/api/products/13/also-viewed", 2).await, ["30", "4"]);
    for product in ["13", "33"] {
        let (status, body) = server
            .call(
                None,
                "POST",
                "/api/events",
                Some(json!({"kind": "order", "session": "d", "product_id": product})),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(related(&server, "/api/products/13/also-bought", 1).await, ["33"]);

    for (body, status) in [
        (json!({"kind": "bogus", "session": "d", "product_id": "13"}), 400),
        (json!({"kind": "view", "session": "d"}), 400),
        (json!({"kind": "search", "session": "d"}), 400),
        (
            json!({"kind": "view", "session": "d", "product_id": "no-such-product"}),
            404,
        ),
        (
            json!({"kind": "view", "session": "x".repeat(101), "product_id": "13"}),
            400,
        ),
    ] {
        let (got, answer) = server.call(None, "POST", "/api/events", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    let (status, _) = server
        .call(None, "GET", "/api/products/no-such/also-viewed", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .call(None, "GET", "/api/products/13/also-viewed?limit=0", None)
        .await;
    assert_eq!(status, 400);

    // The pages start a session on their own and show what other sessions viewed.
    let response = common::http_client()
        .get(server.url("/products/13"))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("fw_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("Customers also viewed"), "{page}");
    let session = cookie.split(';').next().unwrap();
    let again = common::http_client()
        .get(server.url("/products/13"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert!(
        again.headers().get("set-cookie").is_none(),
        "a known session keeps its cookie"
    );
}
