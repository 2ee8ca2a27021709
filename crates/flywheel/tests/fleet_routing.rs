//! The gateway routing live on the fleet: a `routing = "fleet"` model goes to the deployment at the site the
//! fleet router picks (cheapest energy plus carbon among sites meeting the SLO from the user's region), says so
//! in `x-flywheel-route`, and explains itself at `GET /admin/placement`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, http_client};
use serde_json::{Value, json};

const MASTER: &str = "fleet-routing-master-key";

const FLEET: &str = r#"
name = "test"
carbon_price_usd_per_tonne = 190

[slo.interactive]
ttft_ms = 150
tpot_ms = 100

[[models]]
name = "llama-70b"
class = "70b"

[[sites]]
name = "dirty"
region = "us-east-1"
lat = 40.7
lon = -74.0
power_cap_mw = 1
pue = 1.2
price = { constant = 150 }
carbon = { constant = 700 }
replicas = [{ model = "llama-70b", accelerator = "h100", count = 2 }]

[[sites]]
name = "clean"
region = "ca-central-1"
lat = 43.65
lon = -79.38
power_cap_mw = 1
pue = 1.1
price = { constant = 20 }
carbon = { constant = 40 }
replicas = [{ model = "llama-70b", accelerator = "h100", count = 2 }]

[[sites]]
name = "tokyo"
region = "ap-northeast-1"
lat = 35.68
lon = 139.69
power_cap_mw = 1
pue = 1.2
price = { constant = 100 }
carbon = { constant = 450 }
replicas = [{ model = "llama-70b", accelerator = "h100", count = 2 }]

[[user_regions]]
name = "east"
lat = 40.7
lon = -74.0
share = 0.7
latency_ms = { dirty = 5, clean = 15, tokyo = 180 }

[[user_regions]]
name = "asia"
lat = 35.68
lon = 139.69
share = 0.3
latency_ms = { dirty = 190, clean = 200, tokyo = 5 }
"#;

const GATEWAY: &str = r#"
embedded_models = false

[[models]]
id = "llama-70b"
routing = "fleet"
[[models.deployments]]
name = "dep-dirty"
provider = "fault"
site = "dirty"
[[models.deployments]]
name = "dep-clean"
provider = "fault"
site = "clean"
[[models.deployments]]
name = "dep-tokyo"
provider = "fault"
site = "tokyo"
"#;

async fn start(with_fleet: bool) -> (Server, tempfile::TempDir) {
    start_with_fleet(with_fleet.then_some(FLEET)).await
}

async fn start_with_fleet(fleet_text: Option<&str>) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flywheel.toml");
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&config, GATEWAY).unwrap();
    let mut args = vec!["--config", config.to_str().unwrap(), "--master-key", MASTER];
    if let Some(text) = fleet_text {
        std::fs::write(&fleet, text).unwrap();
        args.extend(["--fleet", fleet.to_str().unwrap()]);
    }
    (Server::start_with(&args).await, dir)
}

/// A model server's health and metrics endpoints (vLLM's paths and metric names), whose health can be turned
/// off to inject a failure; returns its OpenAI-compatible base URL.
async fn model_server_health(healthy: Arc<AtomicBool>) -> String {
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(move || {
                let healthy = healthy.load(Ordering::SeqCst);
                async move { if healthy { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE } }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(|| async {
                "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"llama-70b\"} 3\n\
                 vllm:num_requests_waiting{model_name=\"llama-70b\"} 1\nvllm:kv_cache_usage_perc{model_name=\"llama-70b\"} 0.5\n"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1")
}

/// The route header of one chat request sent with `headers`, and its status.
async fn route_of(server: &Server, headers: &[(&str, &str)], stream: bool) -> (u16, String) {
    let mut request = http_client()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(
            &json!({"model": "llama-70b", "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": 20, "stream": stream}),
        );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let route = response
        .headers()
        .get("x-flywheel-route")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    response.bytes().await.unwrap();
    (status, route)
}

/// `GET /admin/placement` for a request from the east.
async fn placement_from_east(server: &Server) -> Value {
    let (status, body) = server
        .call(
            Some(MASTER),
            "GET",
            "/admin/placement?model=llama-70b&region=east",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn fleet_routing_follows_price_carbon_and_the_slo_and_explains_itself() {
    let (server, _dir) = start(true).await;

    // From the east, every site but Tokyo meets the 150 ms TTFT; the clean, cheap one wins.
    let (status, route) = route_of(&server, &[("x-flywheel-region", "east")], false).await;
    assert_eq!(status, 200);
    assert!(
        route.starts_with("deployment=dep-clean; site=clean; attempts=1; fleet multi-objective: clean for east"),
        "{route}"
    );
    let (status, route) = route_of(&server, &[("x-flywheel-region", "east")], true).await;
    assert_eq!(status, 200);
    assert!(
        route.starts_with("deployment=dep-clean; site=clean"),
        "streamed: {route}"
    );

    // From Asia only Tokyo is near enough.
    let (_, route) = route_of(
        &server,
        &[("x-flywheel-region", "asia"), ("x-flywheel-slo", "interactive")],
        false,
    )
    .await;
    assert!(
        route.starts_with("deployment=dep-tokyo; site=tokyo; attempts=1; fleet multi-objective: tokyo for asia"),
        "{route}"
    );

    // A hint the fleet does not know never fails the request: it is served, and the header says why routing
    // could not use it.
    let (status, route) = route_of(&server, &[("x-flywheel-region", "mars")], false).await;
    assert_eq!(status, 200);
    assert!(route.contains("no user region 'mars'"), "{route}");

    // The debug endpoint scores every replica.
    let (status, body) = server
        .call(
            Some(MASTER),
            "GET",
            "/admin/placement?model=llama-70b&region=asia&prompt_tokens=500",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["policy"], "multi-objective");
    let candidates = body["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 6);
    let tokyo: Vec<&Value> = candidates
        .iter()
        .filter(|candidate| candidate["site"] == "tokyo")
        .collect();
    assert!(tokyo.iter().all(|candidate| candidate["meets_slo"] == true));
    assert!(body["chosen"].as_str().unwrap().contains("tokyo"), "{body}");

    let (status, body) = server
        .call(Some(MASTER), "GET", "/admin/placement?model=gpt-9", None)
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("no model 'gpt-9'"),
        "{body}"
    );
    let (status, _) = server.call(Some(MASTER), "GET", "/admin/placement", None).await;
    assert_eq!(status, 400, "model is required");
    let (status, _) = server.call(None, "GET", "/admin/placement?model=llama-70b", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn without_a_fleet_routing_still_serves_and_placement_says_what_to_configure() {
    let (server, _dir) = start(false).await;
    let (status, route) = route_of(&server, &[("x-flywheel-region", "east")], false).await;
    assert_eq!(status, 200);
    assert!(route.starts_with("deployment=dep-"), "{route}");
    let (status, body) = server
        .call(Some(MASTER), "GET", "/admin/placement?model=llama-70b", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "fleet_not_configured", "{body}");
}

#[tokio::test]
async fn replicas_that_fail_their_health_check_leave_rotation_and_their_metrics_are_their_load() {
    let healthy = Arc::new(AtomicBool::new(true));
    let endpoint = model_server_health(Arc::clone(&healthy)).await;
    let clean_replicas = r#"name = "clean"
region = "ca-central-1"
lat = 43.65
lon = -79.38
power_cap_mw = 1
pue = 1.1
price = { constant = 20 }
carbon = { constant = 40 }
replicas = [{ model = "llama-70b", accelerator = "h100", count = 2 }]"#;
    assert!(FLEET.contains(clean_replicas));
    let fleet = FLEET.replace(
        clean_replicas,
        &clean_replicas.replace("count = 2 }", &format!("count = 2, endpoint = \"{endpoint}\" }}")),
    );
    let (server, _dir) = start_with_fleet(Some(&fleet)).await;
    let health_of = |body: &Value| -> Vec<Value> {
        body["health"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["endpoint"].is_string())
            .cloned()
            .collect()
    };

    let placement = || placement_from_east(&server);
    let mut checked = Vec::new();
    for _ in 0..100 {
        checked = health_of(&placement().await);
        if checked.iter().all(|entry| entry["checked"] == true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(checked.len(), 2, "{checked:?}");
    for entry in &checked {
        assert_eq!(entry["healthy"], true, "{entry}");
        assert_eq!(entry["metrics"]["running"], 3.0, "{entry}");
        assert_eq!(entry["metrics"]["waiting"], 1.0, "{entry}");
        assert_eq!(entry["metrics"]["kv_cache_usage"], 0.5, "{entry}");
    }
    let (_, route) = route_of(&server, &[("x-flywheel-region", "east")], false).await;
    assert!(route.contains("site=clean"), "{route}");

    healthy.store(false, Ordering::SeqCst);
    let mut route = String::new();
    for _ in 0..100 {
        route = route_of(&server, &[("x-flywheel-region", "east")], false).await.1;
        if !route.contains("site=clean") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        route.starts_with("deployment=dep-dirty; site=dirty"),
        "the next best site takes over: {route}"
    );
    for entry in health_of(&placement().await) {
        assert_eq!(entry["healthy"], false, "{entry}");
        assert!(entry["error"].as_str().unwrap().contains("answered 503"), "{entry}");
    }
}

/// The test fleet without Tokyo, whose cheap, clean site has no replicas in the file, only chips to place
/// them on; a looser TTFT target fits the history's longer prompts.
fn planned_fleet() -> String {
    let (sites, _) = FLEET.split_once("[[sites]]\nname = \"tokyo\"").unwrap();
    let clean_replicas =
        "carbon = { constant = 40 }\nreplicas = [{ model = \"llama-70b\", accelerator = \"h100\", count = 2 }]";
    assert!(sites.contains(clean_replicas));
    sites
        .replace(
            clean_replicas,
            "carbon = { constant = 40 }\naccelerators_available = { h100 = 16 }",
        )
        .replace("ttft_ms = 150", "ttft_ms = 2000")
        + "[[user_regions]]\nname = \"east\"\nlat = 40.7\nlon = -74.0\nshare = 1.0\nlatency_ms = { dirty = 5, clean = 15 }\n"
}

/// Two days of ledger history for `llama-70b`, a few requests an hour.
async fn write_llama_history(pool: &sqlx::SqlitePool) {
    let now_hour = jiff::Timestamp::now().as_second().div_euclid(3600);
    for hours_ago in 1..=48 {
        let at = jiff::Timestamp::from_second((now_hour - hours_ago) * 3600 + 60).unwrap();
        for index in 0..3 {
            sqlx::query(
                "INSERT INTO usage_ledger (request_id, created_at, tenant, model, endpoint, prompt_tokens, \
                 completion_tokens, latency_ms, status, cost_micros) VALUES ($1, $2, 'acme', 'llama-70b', \
                 'chat.completions', 800, 200, 900.0, 'ok', 0)",
            )
            .bind(format!("history-{hours_ago}-{index}"))
            .bind(format!("{}", at.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

#[tokio::test]
async fn the_router_routes_over_the_placement_the_loop_plans_from_the_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flywheel.toml");
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &config,
        GATEWAY.replace(
            "[[models.deployments]]\nname = \"dep-tokyo\"\nprovider = \"fault\"\nsite = \"tokyo\"\n",
            "",
        ),
    )
    .unwrap();
    std::fs::write(&fleet, planned_fleet()).unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("shared.db").display());
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--master-key",
        MASTER,
        "--fleet",
        fleet.to_str().unwrap(),
        "--database-url",
        &database,
    ];

    // With no demand yet, the router routes over the file's replicas, all at the dirty site.
    let server = Server::start_with(&args).await;
    let (status, route) = route_of(&server, &[("x-flywheel-region", "east")], false).await;
    assert_eq!(status, 200);
    assert!(
        route.starts_with("deployment=dep-dirty; site=dirty") && route.contains("placement from the fleet file"),
        "{route}"
    );
    drop(server);

    // Two days of demand: the next start forecasts it, plans its peak where energy and carbon are cheapest,
    // and routes over that placement.
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    write_llama_history(&pool).await;
    pool.close().await;
    let server = Server::start_with(&args).await;
    let mut placement = Value::Null;
    for _ in 0..100 {
        placement = placement_from_east(&server).await["placement"].clone();
        if placement["source"] == "plan" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(placement["source"], "plan", "{placement}");
    assert!(
        placement["basis"].as_str().unwrap().contains("llama-70b"),
        "{placement}"
    );
    let replicas = placement["replicas"].as_array().unwrap();
    assert!(
        replicas.iter().all(|row| row["site"] == "clean") && !replicas.is_empty(),
        "{placement}"
    );
    let (status, route) = route_of(&server, &[("x-flywheel-region", "east")], false).await;
    assert_eq!(status, 200);
    assert!(
        route.starts_with("deployment=dep-clean; site=clean") && route.contains("placement from the plan"),
        "{route}"
    );
}
