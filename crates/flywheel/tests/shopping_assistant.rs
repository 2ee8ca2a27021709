//! The shopping assistant over real HTTP with the embedded model: a need becomes products found through search
//! (sent first, before any model text), prose that cites only those products, an offer to add the best one to
//! the cart that a "yes" carries out; comparisons come with a table of facts; the cart API behind it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use common::Server;
use futures::StreamExt;
use serde_json::{Value, json};

async fn converse(server: &Server, messages: Value) -> Vec<Value> {
    let (status, body) = server
        .call(
            None,
            "POST",
            "/api/assistant",
            Some(json!({"messages": messages, "session": "shopper-1", "stream": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|event| event["type"] == kind).collect()
}

#[tokio::test]
async fn a_need_becomes_grounded_products_an_offer_and_a_cart() {
    let server = Server::start().await;

    let events = converse(
        &server,
        json!([{"role": "user", "content": "I need a king size poster bed"}]),
    )
    .await;
    assert_eq!(events[0]["type"], "products", "products come first: {events:?}");
    assert_eq!(events[0]["intent"], "find");
    let shown: HashSet<&str> = events[0]["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(!shown.is_empty());
    let done = events.last().unwrap();
    assert_eq!(done["type"], "done", "{events:?}");
    for cited in done["cited"].as_array().unwrap() {
        assert!(
            shown.contains(cited.as_str().unwrap()),
            "cited {cited} was not retrieved: {events:?}"
        );
    }
    let offer = of_type(&events, "action");
    assert_eq!(offer.len(), 1, "{events:?}");
    assert_eq!(offer[0]["action"], "offer_add_to_cart");
    let offered = offer[0]["product_id"].as_str().unwrap().to_owned();
    let answer: String = of_type(&events, "text")
        .iter()
        .map(|event| event["text"].as_str().unwrap())
        .collect();
    assert!(answer.contains(&format!("[{offered}] to your cart?")), "{answer}");

    // "Yes" adds the offered product to the shopper's cart.
    let events = converse(
        &server,
        json!([
            {"role": "user", "content": "I need a king size poster bed"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "Yes please"}
        ]),
    )
    .await;
    let added = of_type(&events, "action");
    assert_eq!(
        (added[0]["action"].as_str(), added[0]["product_id"].as_str()),
        (Some("added_to_cart"), Some(offered.as_str()))
    );
    let (status, cart) = server.call(None, "GET", "/api/cart?session=shopper-1", None).await;
    assert_eq!(status, 200);
    assert_eq!(cart["items"], json!([{"product_id": offered, "quantity": 1}]));

    // Comparing two products by id brings a table of their facts.
    let ids: Vec<&str> = shown.iter().copied().take(2).collect();
    let events = converse(
        &server,
        json!([{"role": "user", "content": format!("compare [{}] and [{}]", ids[0], ids[1])}]),
    )
    .await;
    assert_eq!(events[0]["intent"], "compare");
    let table = of_type(&events, "table");
    assert_eq!(table.len(), 1, "{events:?}");
    assert!(table[0]["markdown"].as_str().unwrap().contains(ids[1]), "{table:?}");

    // The stream sends the same events as server-sent events, products first.
    let response = common::http_client()
        .post(server.url("/api/assistant"))
        .json(&json!({"messages": [{"role": "user", "content": "a lamp for a desk"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let names: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"products"), "{text}");
    assert_eq!(names.last(), Some(&"done"), "{text}");

    // Bad conversations and cart requests get clear errors.
    for (body, status) in [
        (json!({"messages": []}), 400),
        (json!({"messages": [{"role": "assistant", "content": "hi"}]}), 400),
        (
            json!({"messages": [{"role": "user", "content": "a bed"}], "session": ""}),
            400,
        ),
        (json!({"messages": "a bed"}), 400),
    ] {
        let (got, answer) = server.call(None, "POST", "/api/assistant", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
    }
    for (body, status) in [
        (json!({"session": "s", "product_id": "no-such-product"}), 404),
        (json!({"session": "s", "product_id": "13", "quantity": 0}), 400),
        (json!({"product_id": "13"}), 400),
    ] {
        let (got, answer) = server.call(None, "POST", "/api/cart/items", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
    }
    let (status, _) = server.call(None, "GET", "/api/cart", None).await;
    assert_eq!(status, 400);
    let path = format!("/api/cart/items/{offered}?session=shopper-1");
    assert_eq!(server.call(None, "DELETE", &path, None).await.0, 204);
    assert_eq!(server.call(None, "DELETE", &path, None).await.0, 404);
}
