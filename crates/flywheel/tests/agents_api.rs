//! The agents API over real HTTP: sessions, runs streamed as server-sent events or answered as JSON, the
//! journal read back, clear errors for bad input, sessions private to their tenant, model calls in the ledger
//! under the agent's own tenant, and a session that carries on after the server restarts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use serde_json::{Value, json};

const MASTER: &str = "sk-master-agents";

/// The service agent's model served by the fault provider, so a run is one quick model call.
const CONFIG: &str = r#"
embedded_models = false

[[models]]
id = "smollm2-135m-instruct"
[[models.deployments]]
provider = "fault"
"#;

async fn start() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flywheel.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap(), "--master-key", MASTER]).await;
    (server, dir)
}

#[tokio::test]
async fn a_session_runs_over_http_and_its_journal_reads_back() {
    let (server, _dir) = start().await;
    let (status, agents) = server.call(Some(MASTER), "GET", "/v1/agents", None).await;
    assert_eq!(status, 200, "{agents}");
    let service = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "retail-service")
        .unwrap();
    assert_eq!(service["tools"].as_array().unwrap().len(), 16);

    let (status, session) = server
        .call(Some(MASTER), "POST", "/v1/agents/retail-service/sessions", None)
        .await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();

    // JSON answer.
    let (status, run) = server
        .call(
            Some(MASTER),
            "POST",
            &format!("/v1/agents/sessions/{id}/messages"),
            Some(json!({"content": "Where is my order?", "stream": false})),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["outcome"]["status"], "idle");
    assert_eq!(run["outcome"]["answer"], "This is the fault provider's reply.");

    // Server-sent events: each journaled step, then done.
    let response = common::http_client()
        .post(server.url(&format!("/v1/agents/sessions/{id}/messages")))
        .bearer_auth(MASTER)
        .json(&json!({"content": "And my refund?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("event: user"), "{text}");
    assert!(text.contains("event: assistant"), "{text}");
    assert!(text.contains("event: done"), "{text}");

    let (status, read) = server
        .call(Some(MASTER), "GET", &format!("/v1/agents/sessions/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = read["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["user", "assistant", "user", "assistant"]);

    // The model calls are in the ledger under the agent's tenant.
    let (status, usage) = server
        .call(Some(MASTER), "GET", "/admin/usage?group_by=tenant", None)
        .await;
    assert_eq!(status, 200, "{usage}");
    assert!(usage.to_string().contains("agent-retail-service"), "{usage}");
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_sessions_stay_private() {
    let (server, _dir) = start().await;
    let (status, body) = server
        .call(Some(MASTER), "POST", "/v1/agents/nobody/sessions", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_agent");
    let (status, _) = server.call(None, "GET", "/v1/agents", None).await;
    assert_eq!(status, 401);

    let (_, session) = server
        .call(Some(MASTER), "POST", "/v1/agents/retail-service/sessions", None)
        .await;
    let id = session["id"].as_str().unwrap();
    let messages = format!("/v1/agents/sessions/{id}/messages");
    let (status, body) = server
        .call(Some(MASTER), "POST", &messages, Some(json!({"content": "  "})))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server
        .call(Some(MASTER), "POST", &messages, Some(json!({"text": "hi"})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("content"), "{body}");
    let (status, body) = server
        .call(
            Some(MASTER),
            "POST",
            &format!("/v1/agents/sessions/{id}/approvals"),
            Some(json!({"call_id": "x", "approved": true})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = server
        .call(Some(MASTER), "GET", "/v1/agents/sessions/sess_missing", None)
        .await;
    assert_eq!(status, 404);

    // A tenant's key sees its own sessions only, and cannot approve.
    let (status, key) = server
        .call(Some(MASTER), "POST", "/admin/keys", Some(json!({"tenant": "acme"})))
        .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap();
    let (status, _) = server
        .call(Some(secret), "GET", &format!("/v1/agents/sessions/{id}"), None)
        .await;
    assert_eq!(status, 404);
    let (status, own) = server
        .call(Some(secret), "POST", "/v1/agents/retail-service/sessions", None)
        .await;
    assert_eq!(status, 201);
    assert_eq!(own["subject"], "acme");
    let (status, list) = server.call(Some(secret), "GET", "/v1/agents/sessions", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let own_id = own["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            Some(secret),
            "POST",
            &format!("/v1/agents/sessions/{own_id}/approvals"),
            Some(json!({"call_id": "x", "approved": true})),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_session_carries_on_after_a_kill_9() {
    let (mut server, dir) = start().await;
    let (_, session) = server
        .call(Some(MASTER), "POST", "/v1/agents/retail-service/sessions", None)
        .await;
    let id = session["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .call(
            Some(MASTER),
            "POST",
            &format!("/v1/agents/sessions/{id}/messages"),
            Some(json!({"content": "hello", "stream": false})),
        )
        .await;
    assert_eq!(status, 200);
    let data_dir = server.data_dir.path().to_owned();
    std::process::Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .unwrap();
    server.wait();

    // The same data directory, a new process.
    let config = dir.path().join("flywheel.toml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--master-key",
            MASTER,
        ])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let address = {
        use std::io::BufRead as _;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split("listening on http://").nth(1).map(|a| a.trim().to_owned()))
            .unwrap()
    };
    let client = common::http_client();
    let url = |path: &str| format!("http://{address}{path}");
    let read: Value = client
        .get(url(&format!("/v1/agents/sessions/{id}")))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["events"].as_array().unwrap().len(), 2, "{read}");
    let run: Value = client
        .post(url(&format!("/v1/agents/sessions/{id}/messages")))
        .bearer_auth(MASTER)
        .json(&json!({"content": "still there?", "stream": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["outcome"]["status"], "idle", "{run}");
    let read: Value = client
        .get(url(&format!("/v1/agents/sessions/{id}")))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["events"].as_array().unwrap().len(), 4);
    let _ = child.kill();
    let _ = child.wait();
}
