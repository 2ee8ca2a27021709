//! `flywheel report` over a real server's data: shopper events and model calls made over HTTP, plus three days
//! of earlier ledger history written into the same database, become a seasonal forecast and a fleet plan.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{Server, chat_request, http_client};

fn flywheel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args(args)
        .output()
        .unwrap()
}

/// Writes `requests` ledger rows for each of the 72 hours before the current one, busier by day than by night.
async fn write_history(pool: &sqlx::SqlitePool) -> i64 {
    let now_hour = jiff::Timestamp::now().as_second().div_euclid(3600);
    let mut id = 0;
    for hours_ago in 1..=72 {
        let hour = now_hour - hours_ago;
        let busy = (hour % 24) >= 8 && (hour % 24) < 20;
        let at = jiff::Timestamp::from_second(hour * 3600 + 60).unwrap();
        for _ in 0..if busy { 6 } else { 2 } {
            id += 1;
            sqlx::query(
                "INSERT INTO usage_ledger (request_id, created_at, tenant, model, endpoint, prompt_tokens, \
                 completion_tokens, latency_ms, status, cost_micros) VALUES ($1, $2, 'storefront', \
                 'smollm2-135m-instruct', 'chat.completions', 400, 40, 900.0, 'ok', 3)",
            )
            .bind(format!("history-{id}"))
            .bind(format!("{}", at.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
            .execute(pool)
            .await
            .unwrap();
        }
    }
    id
}

#[tokio::test]
async fn shoppers_and_model_calls_become_a_forecast_and_a_fleet_plan() {
    let mut server = Server::start().await;
    let client = http_client();
    for session in ["a", "b"] {
        let search = client
            .get(server.url("/api/search"))
            .query(&[("q", "king poster bed"), ("session", session)])
            .send()
            .await
            .unwrap();
        assert_eq!(search.status(), 200);
    }
    let chat = client
        .post(server.url("/v1/chat/completions"))
        .json(&chat_request("smollm2-135m-instruct"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    assert!(server.terminate().success());
    let history = write_history(&server.database().await).await;

    let data_dir = server.data_dir.path().to_str().unwrap();
    let output = flywheel(&["report", "--json", "--data-dir", data_dir]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["shoppers"]["events"].as_i64().unwrap() >= 2, "{report}");
    let forecast = report["forecasts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|forecast| forecast["model"] == "smollm2-135m-instruct")
        .unwrap();
    assert_eq!(forecast["fitted"]["method"], "holt_winters");
    let backtest = &forecast["backtest"];
    assert_eq!(backtest["holdout_hours"], 24);
    assert!(backtest["mae"].as_f64().unwrap() < 2.0, "{backtest}");
    assert!(forecast["peak_requests_per_hour"].as_f64().unwrap() >= 5.0);
    assert_eq!(report["plan"]["status"], "planned", "{}", report["plan"]);
    assert_eq!(report["plan"]["sites"].as_array().unwrap().len(), 3);
    assert!(server.data_dir.path().join("fleet/storefront.toml").exists());

    let output = flywheel(&["report", "--data-dir", data_dir, "--growth", "2"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("plan on fleet storefront for the forecast peak x2"),
        "{text}"
    );
    assert!(text.contains("holt_winters"), "{text}");

    // Ask-your-data over the same tables: the expected answers are what was written.
    let output = flywheel(&[
        "ask",
        "--json",
        "--data-dir",
        data_dir,
        "how many requests per model this week?",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let chat = answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["labels"][0] == "smollm2-135m-instruct")
        .unwrap();
    assert_eq!(chat["value"].as_f64().unwrap(), (history + 1) as f64, "{answer}");
    let output = flywheel(&["ask", "--json", "--data-dir", data_dir, "how many searches today?"]);
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["rows"][0]["value"], 2.0, "{answer}");
    let output = flywheel(&["ask", "--data-dir", data_dir, "what is the capital of France?"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot answer"));
}

#[test]
fn bad_report_and_simulation_flags_are_one_clear_line() {
    let data_dir = tempfile::tempdir().unwrap();
    let data_dir = data_dir.path().to_str().unwrap();
    for (args, expected) in [
        (
            vec!["report", "--data-dir", data_dir, "--growth", "0"],
            "growth must be above 0",
        ),
        (
            vec!["report", "--data-dir", data_dir, "--from", "last week"],
            "is not a time",
        ),
        (
            vec![
                "report",
                "--data-dir",
                data_dir,
                "--from",
                "2026-12-02",
                "--to",
                "2026-12-01",
            ],
            "time range is empty",
        ),
        (
            vec!["simulate", "shoppers", "--target", "http://192.0.2.1:8080"],
            "on this machine",
        ),
        (vec!["simulate", "shoppers", "--rate", "500"], "at most 50"),
    ] {
        let output = flywheel(&args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
