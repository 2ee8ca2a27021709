//! Keys and tenants end to end: the master key, virtual keys from the admin API and from the CLI, model lists,
//! rotation and revocation, and the ledger's record of who spent what.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use serde_json::{Value, json};

const MASTER: &str = "fw-master-key-for-tests-0123456789";
const CHAT_MODEL: &str = "smollm2-135m-instruct";
const EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

fn chat() -> Option<Value> {
    Some(json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}))
}

fn cli(server: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flywheel"))
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .output()
        .unwrap()
}

#[tokio::test]
async fn keys_gate_the_api_and_the_ledger_knows_who_spent() {
    let mut server = Server::start_with(&["--master-key", MASTER]).await;

    // Without a valid key: 401 in OpenAI's shape.
    for key in [None, Some("fw-not-a-key")] {
        let (status, body) = server.call(key, "POST", "/v1/chat/completions", chat()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{body}"
        );
        assert_eq!(body["error"]["type"], "authentication_error");
    }
    assert_eq!(server.call(None, "GET", "/v1/models", None).await.0, 401);
    assert_eq!(server.call(None, "GET", "/admin/keys", None).await.0, 401);

    // The master key creates a key for a tenant, with all models.
    let (status, created) = server
        .call(
            Some(MASTER),
            "POST",
            "/admin/keys",
            Some(json!({"tenant": "acme", "name": "web app", "budget_usd": 5.5})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let acme_key = created["key"].as_str().unwrap().to_owned();
    let acme_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["budget_micros"], 5_500_000);
    assert_eq!(
        server
            .call(Some(&acme_key), "POST", "/v1/chat/completions", chat())
            .await
            .0,
        200
    );
    // Anthropic-style header works too.
    let response = common::http_client()
        .post(server.url("/v1/embeddings"))
        .header("x-api-key", &acme_key)
        .json(&json!({"model": EMBEDDING_MODEL, "input": "sofa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A tenant key is not an admin key.
    let (status, body) = server.call(Some(&acme_key), "GET", "/admin/keys", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("admin_required")));

    // The CLI creates a key limited to the embedder, with the server running.
    let output = cli(
        &server,
        &[
            "create",
            "--tenant",
            "globex",
            "--models",
            EMBEDDING_MODEL,
            "--rpm",
            "60",
        ],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let globex_key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(globex_key.starts_with("fw-"));
    let (status, body) = server
        .call(Some(&globex_key), "POST", "/v1/chat/completions", chat())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed")),
        "{body}"
    );
    let (_, models) = server.call(Some(&globex_key), "GET", "/v1/models", None).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [EMBEDDING_MODEL]);
    let (status, _) = server
        .call(
            Some(&globex_key),
            "POST",
            "/v1/embeddings",
            Some(json!({"model": EMBEDDING_MODEL, "input": "x"})),
        )
        .await;
    assert_eq!(status, 200);

    // Listing never shows secrets.
    let (status, listed) = server.call(Some(MASTER), "GET", "/admin/keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&acme_key[3..]));
    let output = cli(&server, &["list"]);
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.contains("acme") && table.contains("globex") && !table.contains(&globex_key[3..]),
        "{table}"
    );

    // Rotation: the old secret stops at once, the new one works.
    let (status, rotated) = server
        .call(Some(MASTER), "POST", &format!("/admin/keys/{acme_id}/rotate"), None)
        .await;
    assert_eq!(status, 200);
    let rotated_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .call(Some(&acme_key), "POST", "/v1/chat/completions", chat())
            .await
            .0,
        401
    );
    assert_eq!(
        server
            .call(Some(&rotated_key), "POST", "/v1/chat/completions", chat())
            .await
            .0,
        200
    );

    // Revocation, and errors for unknown keys and bad bodies.
    let (status, revoked) = server
        .call(Some(MASTER), "DELETE", &format!("/admin/keys/{acme_id}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_i64());
    let (status, body) = server
        .call(Some(&rotated_key), "POST", "/v1/chat/completions", chat())
        .await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"));
    assert_eq!(
        server
            .call(Some(MASTER), "DELETE", "/admin/keys/key_nope", None)
            .await
            .0,
        404
    );
    for bad in [
        json!({"tenant": ""}),
        json!({"tenant": "x", "budget_usd": -1}),
        json!({"tenat": "x"}),
    ] {
        let (status, body) = server
            .call(Some(MASTER), "POST", "/admin/keys", Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let output = cli(&server, &["revoke", "key_nope"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no key has the id 'key_nope'"));

    // The master key may call models too, as the admin tenant.
    assert_eq!(
        server
            .call(Some(MASTER), "POST", "/v1/chat/completions", chat())
            .await
            .0,
        200
    );

    // A call names the product feature behind it; the ledger groups by it. A malformed name is a 400.
    let featured = |feature: &'static str| {
        common::http_client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(MASTER)
            .header("x-flywheel-feature", feature)
            .json(&chat().unwrap())
            .send()
    };
    assert_eq!(featured("checkout-helper").await.unwrap().status(), 200);
    let refused = featured("not a feature!").await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["param"], "x-flywheel-feature", "{body}");
    let (status, by_feature) = server
        .call(Some(MASTER), "GET", "/admin/usage?group_by=feature", None)
        .await;
    assert_eq!(status, 200, "{by_feature}");
    let checkout = by_feature["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["feature"] == "checkout-helper")
        .unwrap_or_else(|| panic!("{by_feature}"));
    assert_eq!(checkout["requests"], 1);

    // Usage reports from the ledger, for admins only.
    let (status, report) = server
        .call(Some(MASTER), "GET", "/admin/usage?group_by=tenant,status", None)
        .await;
    assert_eq!(status, 200, "{report}");
    let acme_ok = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["tenant"] == "acme" && g["status"] == "ok")
        .unwrap();
    assert_eq!(acme_ok["requests"], 3);
    assert!(acme_ok["prompt_tokens"].as_i64().unwrap() > 0);
    let (status, empty) = server
        .call(Some(MASTER), "GET", "/admin/usage?from=2999-01-01", None)
        .await;
    assert_eq!((status, empty["data"].as_array().unwrap().len()), (200, 0));
    for bad in [
        "/admin/usage?group_by=planet",
        "/admin/usage?from=yesterday",
        "/admin/usage?grup_by=tenant",
    ] {
        assert_eq!(server.call(Some(MASTER), "GET", bad, None).await.0, 400, "{bad}");
    }
    assert_eq!(server.call(Some(&globex_key), "GET", "/admin/usage", None).await.0, 403);

    assert!(server.terminate().success());
    let rows: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT tenant, key_id, status FROM usage_ledger ORDER BY id")
            .fetch_all(&server.database().await)
            .await
            .unwrap();
    let acme: Vec<_> = rows.iter().filter(|row| row.0 == "acme").collect();
    assert_eq!(acme.len(), 3, "{rows:?}");
    assert!(
        acme.iter()
            .all(|row| row.1.as_deref() == Some(acme_id.as_str()) && row.2 == "ok")
    );
    let globex: Vec<&str> = rows
        .iter()
        .filter(|row| row.0 == "globex")
        .map(|row| row.2.as_str())
        .collect();
    assert_eq!(globex, ["model_not_allowed", "ok"]);
    assert!(rows.iter().any(|row| row.0 == "admin" && row.1.is_none()));
}

#[tokio::test]
async fn rate_limits_per_key_with_headers_and_429() {
    let mut server = Server::start_with(&["--master-key", MASTER]).await;
    let create = |body: Value| {
        let server = &server;
        async move {
            server.call(Some(MASTER), "POST", "/admin/keys", Some(body)).await.1["key"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let rpm_key = create(json!({"tenant": "acme", "rpm": 2})).await;
    let tpm_key = create(json!({"tenant": "acme", "tpm": 10})).await;
    let client = common::http_client();
    let send = |key: String| {
        client
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}))
            .send()
    };

    for remaining in ["1", "0"] {
        let response = send(rpm_key.clone()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit-requests"], "2");
        assert_eq!(response.headers()["x-ratelimit-remaining-requests"], remaining);
    }
    let refused = send(rpm_key.clone()).await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    // Tokens: the first request spends more than the 10-token minute, so the next one waits.
    let first = send(tpm_key.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-remaining-tokens"], "10");
    let second = send(tpm_key.clone()).await.unwrap();
    assert_eq!(second.status(), 429);
    assert!(
        second.json::<Value>().await.unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens")
    );

    assert!(server.terminate().success());
    let statuses: Vec<(String,)> = sqlx::query_as("SELECT status FROM usage_ledger ORDER BY id")
        .fetch_all(&server.database().await)
        .await
        .unwrap();
    let statuses: Vec<&str> = statuses.iter().map(|row| row.0.as_str()).collect();
    assert_eq!(
        statuses,
        ["ok", "ok", "rate_limit_exceeded", "ok", "rate_limit_exceeded"]
    );
}

#[tokio::test]
async fn a_keys_limits_change_in_place_and_apply_to_its_next_request() {
    let server = Server::start_with(&["--master-key", MASTER]).await;
    let (status, created) = server
        .call(
            Some(MASTER),
            "POST",
            "/admin/keys",
            Some(json!({"tenant": "acme", "rpm": 1, "metadata": {"team": "web"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let path = format!("/admin/keys/{}", created["id"].as_str().unwrap());
    assert_eq!(
        server.call(Some(&key), "POST", "/v1/chat/completions", chat()).await.0,
        200
    );
    assert_eq!(
        server.call(Some(&key), "POST", "/v1/chat/completions", chat()).await.0,
        429
    );

    // Lifting the limit (null) and restricting the models; what is left out stays.
    let (status, updated) = server
        .call(
            Some(MASTER),
            "PATCH",
            &path,
            Some(json!({"rpm": null, "models": [EMBEDDING_MODEL], "budget_usd": 2, "name": "renamed"})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["rpm"], Value::Null);
    assert_eq!(updated["models"], json!([EMBEDDING_MODEL]));
    assert_eq!(updated["budget_micros"], 2_000_000);
    assert_eq!(updated["name"], "renamed");
    assert_eq!(updated["metadata"], json!({"team": "web"}), "left out, so unchanged");
    assert_eq!(updated["tenant"], "acme");
    let (status, body) = server.call(Some(&key), "POST", "/v1/chat/completions", chat()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed"))
    );
    let embed = json!({"model": EMBEDDING_MODEL, "input": "sofa"});
    for _ in 0..3 {
        assert_eq!(
            server
                .call(Some(&key), "POST", "/v1/embeddings", Some(embed.clone()))
                .await
                .0,
            200,
            "no rpm limit any more"
        );
    }

    // Guardrails set later apply at once.
    let guardrails = json!({"guardrails": {"pii": "block"}, "models": null});
    let (status, updated) = server.call(Some(MASTER), "PATCH", &path, Some(guardrails)).await;
    assert_eq!(status, 200, "{updated}");
    let leaky = json!({"model": CHAT_MODEL, "max_tokens": 2,
                       "messages": [{"role": "user", "content": "mail me at jane@example.com"}]});
    let (status, body) = server
        .call(Some(&key), "POST", "/v1/chat/completions", Some(leaky))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("content_blocked")),
        "{body}"
    );

    // Bad changes: a clear 4xx each, and the key unchanged.
    for (change, code) in [
        (json!({"tenant": "other"}), 400),
        (json!({"rmp": 5}), 400),
        (json!({"models": []}), 400),
        (json!({"budget_usd": -1}), 400),
        (json!({"budget_usd": "lots"}), 400),
        (json!({"budget_micros": 5}), 400),
        (json!({"expires_at": 1}), 400),
        (json!({"cache": {"mode": "psychic"}}), 400),
    ] {
        let (status, body) = server.call(Some(MASTER), "PATCH", &path, Some(change.clone())).await;
        assert_eq!(status, code, "{change} -> {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let (_, unchanged) = server.call(Some(MASTER), "GET", &path, None).await;
    assert_eq!(unchanged["budget_micros"], 2_000_000);
    assert_eq!(unchanged["tenant"], "acme");

    // Only the master key changes keys; unknown keys are 404, revoked ones 409.
    assert_eq!(
        server.call(Some(&key), "PATCH", &path, Some(json!({"rpm": 9}))).await.0,
        403
    );
    let (status, body) = server
        .call(Some(MASTER), "PATCH", "/admin/keys/key_nope", Some(json!({"rpm": 9})))
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("key_not_found")));
    assert_eq!(server.call(Some(MASTER), "DELETE", &path, None).await.0, 200);
    let (status, body) = server.call(Some(MASTER), "PATCH", &path, Some(json!({"rpm": 9}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
}
