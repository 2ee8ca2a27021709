//! Sponsored products end to end over HTTP: a campaign created through the admin API wins sponsored slots on
//! matching searches (labelled, apart from the organic hits), clicks are charged the auction's price within
//! the daily budget, orders are attributed to the click before them, and the report adds it all up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use serde_json::{Value, json};

const MASTER: &str = "ads-test-master-key";

async fn sponsored(server: &Server, query: &str) -> Vec<Value> {
    let (status, page) = server
        .call(
            None,
            "GET",
            &format!("/api/search?q={query}&mode=keyword&limit=5"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page.get("sponsored")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn campaigns_win_slots_pay_per_click_within_budget_and_report_sales() {
    let server = Server::start_with(&["--master-key", MASTER, "--no-embedded-models"]).await;
    // Two bed products of the demo catalog, advertised on "bed" and on the Beds category.
    let (_, beds) = server
        .call(None, "GET", "/api/search?q=king+bed&mode=keyword&limit=3", None)
        .await;
    let bed_ids: Vec<String> = beds["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(sponsored(&server, "king+bed").await.is_empty(), "no campaigns, no ads");

    let campaign = json!({
        "advertiser": "Acme Beds", "name": "winter beds", "daily_budget_usd": 1.0,
        "products": [bed_ids[0], bed_ids[1]],
        "keywords": [{"value": "beds", "bid_usd": 0.6}],
        "categories": [{"value": "Beds", "bid_usd": 0.4}]
    });
    let (status, created) = server
        .call(Some(MASTER), "POST", "/admin/ads/campaigns", Some(campaign.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    let campaign_id = created["id"].as_str().unwrap().to_owned();

    // Bad campaigns are refused with the reason.
    for (body, needle) in [
        (
            json!({"advertiser": "x", "name": "y", "daily_budget_usd": 1.0, "products": ["no-such-product"], "keywords": [{"value": "bed", "bid_usd": 1.0}]}),
            "no product",
        ),
        (
            json!({"advertiser": "x", "name": "y", "daily_budget_usd": -1.0, "products": [bed_ids[0]], "keywords": [{"value": "bed", "bid_usd": 1.0}]}),
            "daily_budget_usd",
        ),
        (
            json!({"advertiser": "x", "name": "y", "daily_budget_usd": 1.0, "products": [bed_ids[0]]}),
            "at least one",
        ),
        (
            json!({"advertiser": "x", "name": "y", "daily_budget_usd": 1.0, "products": [bed_ids[0]], "keywords": [{"value": "bed", "bid_usd": 0}]}),
            "bid",
        ),
    ] {
        let (status, body) = server
            .call(Some(MASTER), "POST", "/admin/ads/campaigns", Some(body))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {body}"
        );
    }
    let (status, _) = server.call(None, "POST", "/admin/ads/campaigns", Some(campaign)).await;
    assert_eq!(status, 401);

    // A matching search shows the ads, labelled; an unrelated one does not.
    let ads = sponsored(&server, "king+beds").await;
    assert!(!ads.is_empty(), "the keyword target matches");
    for ad in &ads {
        assert_eq!(ad["label"], "Sponsored");
        assert_eq!(ad["campaign_id"], campaign_id.as_str());
        assert!(bed_ids.contains(&ad["id"].as_str().unwrap().to_owned()));
    }
    assert!(sponsored(&server, "garden+hose").await.is_empty());
    let (_, no_ads) = server
        .call(None, "GET", "/api/search?q=king+beds&mode=keyword&ads=false", None)
        .await;
    assert!(no_ads.get("sponsored").is_none());

    // Clicks are charged once each, never past the day's budget.
    let mut charged = 0;
    let mut clicked_product = None;
    for _ in 0..20 {
        for ad in sponsored(&server, "king+beds").await {
            let impression = ad["impression_id"].as_str().unwrap();
            let (status, click) = server
                .call(
                    None,
                    "POST",
                    "/api/ads/clicks",
                    Some(json!({"impression_id": impression})),
                )
                .await;
            if status == 404 {
                // The impression is written in the background; a shopper's click never beats it, a test's may.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            assert_eq!(status, 200, "{click}");
            let price = click["charged_micros"].as_i64().unwrap();
            assert!(price <= 600_000, "never more than the bid: {click}");
            charged += price;
            clicked_product.get_or_insert_with(|| ad["id"].as_str().unwrap().to_owned());
            let (_, again) = server
                .call(
                    None,
                    "POST",
                    "/api/ads/clicks",
                    Some(json!({"impression_id": impression})),
                )
                .await;
            assert_eq!(
                (again["repeated"].as_bool(), again["charged_micros"].as_i64()),
                (Some(true), Some(0))
            );
        }
    }
    assert!(charged > 0 && charged <= 1_000_000, "spend {charged} within the budget");
    let (status, missing) = server
        .call(None, "POST", "/api/ads/clicks", Some(json!({"impression_id": "nope"})))
        .await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_found")));

    // An order of the clicked product is the campaign's sale; one of another product is nobody's.
    let product = clicked_product.unwrap();
    let (status, order) = server
        .call(
            None,
            "POST",
            "/api/ads/orders",
            Some(json!({"product_id": product, "amount_usd": 300.0})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["attributed_campaign_id"], campaign_id.as_str());
    let (_, unattributed) = server
        .call(
            None,
            "POST",
            "/api/ads/orders",
            Some(json!({"product_id": "4", "amount_usd": 10.0})),
        )
        .await;
    assert_eq!(unattributed["attributed_campaign_id"], Value::Null);

    let (status, report) = server.call(Some(MASTER), "GET", "/admin/ads/report", None).await;
    assert_eq!(status, 200, "{report}");
    let row = &report["data"][0];
    assert_eq!(row["campaign_id"], campaign_id.as_str());
    assert!(row["impressions"].as_i64().unwrap() >= row["clicks"].as_i64().unwrap());
    assert!(row["clicks"].as_i64().unwrap() > 0);
    assert_eq!(row["spend_micros"].as_i64(), Some(charged));
    assert_eq!(row["sales_micros"].as_i64(), Some(300_000_000));
    let acos = row["acos"].as_f64().unwrap();
    assert!((acos - charged as f64 / 300e6).abs() < 1e-9, "{row}");

    // A paused campaign stops serving.
    let (status, paused) = server
        .call(
            Some(MASTER),
            "PATCH",
            &format!("/admin/ads/campaigns/{campaign_id}"),
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(status, 200, "{paused}");
    assert!(sponsored(&server, "king+beds").await.is_empty());
}
