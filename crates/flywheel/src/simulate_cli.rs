//! `flywheel simulate shoppers`: drives shopping sessions through a running storefront over HTTP, so the loop
//! (shoppers → model calls → load → plan) can be watched moving on one machine. Each session searches with
//! the WANDS queries, views some of the hits, sometimes asks the shopping assistant, adds to the cart and orders,
//! with the same session id throughout, so "also viewed / bought" learn from it too.
//!
//! Bounded on purpose: loopback targets only, at most 50 sessions a second and 100,000 sessions, at most 16 in
//! flight.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

const MAX_RATE: f64 = 50.0;
const MAX_SESSIONS: u64 = 100_000;
const MAX_IN_FLIGHT: usize = 16;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The WANDS queries shoppers search with.
const QUERIES: &str = include_str!("../../../data/wands/public/query.csv");

/// What shoppers ask the assistant: needs, as people phrase them.
const NEEDS: &[&str] = &[
    "a rug for a small dining room under $200",
    "a comfortable office chair for long days",
    "a bed frame for a guest room",
    "outdoor furniture that survives rain",
    "a gift for someone who loves cooking",
];

/// `flywheel simulate` flags.
#[derive(Args)]
pub struct SimulateArgs {
    #[command(subcommand)]
    command: SimulateCommand,
}

#[derive(Subcommand)]
enum SimulateCommand {
    /// Shopping sessions against a storefront on this machine.
    Shoppers(ShopperArgs),
}

#[derive(Args)]
struct ShopperArgs {
    /// The storefront (loopback only)
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// New sessions per second (at most 50)
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Sessions in all (at most 100000)
    #[arg(long, default_value_t = 60)]
    sessions: u64,
    /// Share of sessions that ask the shopping assistant (it runs the chat model)
    #[arg(long, default_value_t = 0.1)]
    assistant_share: f64,
    /// Seed for the shoppers' choices
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// What the sessions did.
#[derive(Default)]
struct Tally {
    requests: u64,
    failed: u64,
}

/// Runs `flywheel simulate`.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let SimulateCommand::Shoppers(args) = args.command;
    if !(args.rate > 0.0 && args.rate <= MAX_RATE) {
        bail!(
            "--rate must be above 0 and at most {MAX_RATE} sessions per second, not {}",
            args.rate
        );
    }
    if !(1..=MAX_SESSIONS).contains(&args.sessions) {
        bail!("--sessions must be 1 to {MAX_SESSIONS}, not {}", args.sessions);
    }
    if !(0.0..=1.0).contains(&args.assistant_share) {
        bail!(
            "--assistant-share must be between 0 and 1, not {}",
            args.assistant_share
        );
    }
    let base = loopback_base(&args.target)?;
    let queries: Vec<String> = QUERIES
        .lines()
        .skip(1)
        .filter_map(|line| line.split('\t').nth(1).map(str::to_owned))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let progress = indicatif::ProgressBar::new(args.sessions).with_message("shopping sessions");
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut sessions = tokio::task::JoinSet::new();
    let mut total = Tally::default();
    let started = tokio::time::Instant::now();
    let mut next_start = started;
    for index in 0..args.sessions {
        tokio::time::sleep_until(next_start).await;
        // Poisson arrivals: exponential gaps with the rate's mean.
        let gap = -(1.0 - rng.f64()).ln() / args.rate;
        next_start += Duration::from_secs_f64(gap.min(60.0));
        let permit = std::sync::Arc::clone(&slots)
            .acquire_owned()
            .await
            .context("the session limiter closed")?;
        let plan = SessionPlan {
            id: format!("sim-{}-{index}", args.seed),
            query: queries[rng.usize(..queries.len().max(1))].clone(),
            second_query: rng.bool().then(|| queries[rng.usize(..queries.len().max(1))].clone()),
            views: rng.usize(1..=3),
            ask: rng.f64() < args.assistant_share,
            need: NEEDS[rng.usize(..NEEDS.len())],
            cart: rng.f64() < 0.3,
            order: rng.f64() < 0.4,
        };
        let client = client.clone();
        let base = base.clone();
        sessions.spawn(async move {
            let tally = plan.run(&client, &base).await;
            drop(permit);
            tally
        });
        while let Some(done) = sessions.try_join_next() {
            record(&progress, &mut total, done);
        }
    }
    while let Some(done) = sessions.join_next().await {
        record(&progress, &mut total, done);
    }
    progress.finish_and_clear();
    outln!(
        "{} sessions in {:.1} s: {} requests, {} failed",
        args.sessions,
        started.elapsed().as_secs_f64(),
        total.requests,
        total.failed
    );
    if total.requests > 0 && total.failed == total.requests {
        bail!("every request failed; is the storefront at {base} up?");
    }
    Ok(())
}

fn record(progress: &indicatif::ProgressBar, total: &mut Tally, done: Result<Tally, tokio::task::JoinError>) {
    progress.inc(1);
    let tally = done.unwrap_or(Tally { requests: 1, failed: 1 });
    total.requests += tally.requests;
    total.failed += tally.failed;
}

/// The target's base URL, refused unless it is on this machine.
fn loopback_base(target: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(target).with_context(|| format!("--target '{target}' is not a URL"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    if !loopback || url.scheme() != "http" {
        bail!("--target must be an http:// address on this machine (127.0.0.1, ::1 or localhost), not '{target}'");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// One shopper's session, decided up front so a seed replays the same sessions.
struct SessionPlan {
    id: String,
    query: String,
    second_query: Option<String>,
    views: usize,
    ask: bool,
    need: &'static str,
    cart: bool,
    order: bool,
}

impl SessionPlan {
    async fn run(self, client: &reqwest::Client, base: &str) -> Tally {
        let mut tally = Tally::default();
        let mut seen: Vec<String> = Vec::new();
        for query in std::iter::once(&self.query).chain(self.second_query.as_ref()) {
            let response = send(
                &mut tally,
                client.get(format!("{base}/api/search")).query(&[
                    ("q", query.as_str()),
                    ("limit", "10"),
                    ("session", self.id.as_str()),
                ]),
            )
            .await;
            if let Some(body) = response {
                seen.extend(
                    body["hits"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|hit| hit["id"].as_str().map(str::to_owned)),
                );
            }
        }
        for product in seen.iter().take(self.views) {
            send(
                &mut tally,
                client
                    .get(format!("{base}/api/products/{product}"))
                    .query(&[("session", self.id.as_str())]),
            )
            .await;
        }
        if self.ask {
            let body = serde_json::json!({
                "messages": [{"role": "user", "content": self.need}],
                "session": self.id,
                "stream": false,
            });
            send(&mut tally, client.post(format!("{base}/api/assistant")).json(&body)).await;
        }
        if let Some(product) = seen.first().filter(|_| self.cart) {
            let body = serde_json::json!({ "session": self.id, "product_id": product });
            send(&mut tally, client.post(format!("{base}/api/cart/items")).json(&body)).await;
            if self.order {
                let body = serde_json::json!({ "kind": "order", "session": self.id, "product_id": product });
                send(&mut tally, client.post(format!("{base}/api/events")).json(&body)).await;
            }
        }
        tally
    }
}

/// Sends one request; its JSON body when it succeeded with one.
async fn send(tally: &mut Tally, request: reqwest::RequestBuilder) -> Option<serde_json::Value> {
    tally.requests += 1;
    match request.send().await {
        Ok(response) if response.status().is_success() => {
            Some(response.json().await.unwrap_or(serde_json::Value::Null))
        }
        _ => {
            tally.failed += 1;
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_driven() {
        assert_eq!(
            loopback_base("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(loopback_base("http://localhost:9").is_ok());
        assert!(loopback_base("http://[::1]:9").is_ok());
        for refused in [
            "http://10.0.0.1:8080",
            "https://127.0.0.1",
            "http://example.test",
            "not a url",
        ] {
            assert!(loopback_base(refused).is_err(), "{refused}");
        }
    }
}
