//! Starts the real `flywheel` binary on an ephemeral 127.0.0.1 port with a fresh data directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An HTTP client for the tests. The binary links rustls with ring and no built-in default provider, so the
/// test process installs ring before building a client, as the binary does at start-up.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("FLYWHEEL_MODELS_DIR")
        .expect("set FLYWHEEL_MODELS_DIR to the models directory (scripts/fetch-models fetches them)");
    PathBuf::from(dir)
}

pub struct Server {
    pub base: String,
    pub data_dir: tempfile::TempDir,
    child: Option<Child>,
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts the server and waits until `/readyz` says ready.
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// Starts the server with extra `flywheel up` arguments.
    pub async fn start_with(extra_args: &[&str]) -> Server {
        Server::start_with_env(extra_args, &[]).await
    }

    /// Starts the server with extra arguments and extra environment variables (such as upstream API keys).
    pub async fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_in(&models_dir(), extra_args, env).await
    }

    /// Starts the server on the models of `models`, with extra arguments and environment variables.
    pub async fn start_in(models: &std::path::Path, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        let data_dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_flywheel"))
            .envs(env.iter().copied())
            .args(["up", "--listen", "127.0.0.1:0", "--threads", "1"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("--models-dir")
            .arg(models)
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            base: String::new(),
            data_dir,
            child: Some(child),
            log,
        };
        let line = server.wait_for_log("listening on http://", Duration::from_secs(30));
        let address = line.split("listening on http://").nth(1).unwrap().trim().to_owned();
        server.base = format!("http://{address}");
        let client = http_client();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = client
                .get(server.url("/readyz"))
                .send()
                .await
                .map(|r| r.status().is_success());
            if ready.unwrap_or(false) {
                break;
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(error) => panic!("no log line with {needle:?}: {error}"),
            }
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the server process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.take().unwrap().wait().unwrap()
    }

    /// Sends a JSON request with an optional bearer key; returns the status and the body (JSON, or the text as a
    /// JSON string when it is not JSON).
    pub async fn call(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = http_client().request(method.parse().unwrap(), self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Starts a greedy streamed chat completion and returns its body as it arrives.
    pub async fn stream_chat(
        &self,
        model: &str,
        content: &str,
        max_tokens: u32,
    ) -> impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + use<> {
        let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": content}],
                                      "stream": true, "max_tokens": max_tokens, "temperature": 0});
        let response = http_client()
            .post(self.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes_stream()
    }

    /// The server's database, for reading the ledger (after the server has stopped, or alongside it).
    pub async fn database(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!("sqlite://{}", self.database_path().display()))
            .await
            .unwrap()
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.path().join("flywheel.db")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A short chat request for `model` with at most 20 tokens of answer.
pub fn chat_request(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20})
}
