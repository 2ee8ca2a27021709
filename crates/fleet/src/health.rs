//! What a model server says about its own load: the Prometheus text its `/metrics` endpoint serves (vLLM,
//! SGLang, llama.cpp's server and TGI each name the same three figures differently). Parsing only; the
//! binary fetches the text.

use serde::Serialize;

/// Requests running and queued on one model server, and how full its KV cache is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerMetrics {
    /// Requests being decoded now.
    pub running: Option<f64>,
    /// Requests waiting for a batch slot.
    pub waiting: Option<f64>,
    /// Share of the KV cache in use, 0–1.
    pub kv_cache_usage: Option<f64>,
}

/// Each server's name for each figure (summed over label sets, as one server may report several models).
const RUNNING: [&str; 4] = [
    "vllm:num_requests_running",
    "sglang:num_running_reqs",
    "llamacpp:requests_processing",
    "tgi_batch_current_size",
];
const WAITING: [&str; 4] = [
    "vllm:num_requests_waiting",
    "sglang:num_queue_reqs",
    "llamacpp:requests_deferred",
    "tgi_queue_size",
];
const KV_CACHE: [&str; 4] = [
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "sglang:token_usage",
    "llamacpp:kv_cache_usage_ratio",
];

impl ServerMetrics {
    /// Reads the figures from Prometheus text exposition; lines it does not know or cannot read are skipped,
    /// so a server that adds metrics or a half-written line never breaks routing.
    pub fn parse(text: &str) -> ServerMetrics {
        let mut metrics = ServerMetrics::default();
        let mut kv_cache_samples = 0usize;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = sample(line) else {
                continue;
            };
            let slot = if RUNNING.contains(&name) {
                &mut metrics.running
            } else if WAITING.contains(&name) {
                &mut metrics.waiting
            } else if KV_CACHE.contains(&name) {
                kv_cache_samples += 1;
                &mut metrics.kv_cache_usage
            } else {
                continue;
            };
            *slot = Some(slot.unwrap_or(0.0) + value);
        }
        // Cache usage is a share: several label sets (one per model or engine) are averaged, not summed.
        if let Some(usage) = metrics.kv_cache_usage {
            metrics.kv_cache_usage = Some((usage / kv_cache_samples.max(1) as f64).clamp(0.0, 1.0));
        }
        metrics
    }
}

/// A sample line's metric name and finite, non-negative value: `name{labels} value [timestamp]`.
fn sample(line: &str) -> Option<(&str, f64)> {
    let (name, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].find('}')? + open;
            (&line[..open], &line[close + 1..])
        }
        None => {
            let space = line.find(char::is_whitespace)?;
            (&line[..space], &line[space..])
        }
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some((name.trim(), value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_vllm_sglang_and_llama_cpp_names() {
        let vllm = "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
                    # TYPE vllm:num_requests_running gauge\n\
                    vllm:num_requests_running{engine=\"0\",model_name=\"llama\"} 7.0\n\
                    vllm:num_requests_waiting{engine=\"0\",model_name=\"llama\"} 2.0\n\
                    vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"llama\"} 0.42\n\
                    vllm:prompt_tokens_total{model_name=\"llama\"} 123456.0\n";
        assert_eq!(
            ServerMetrics::parse(vllm),
            ServerMetrics {
                running: Some(7.0),
                waiting: Some(2.0),
                kv_cache_usage: Some(0.42)
            }
        );
        let sglang = "sglang:num_running_reqs{model_name=\"m\"} 3\nsglang:num_queue_reqs{model_name=\"m\"} 0\n\
                      sglang:token_usage{model_name=\"m\"} 0.5\n";
        assert_eq!(ServerMetrics::parse(sglang).running, Some(3.0));
        assert_eq!(ServerMetrics::parse(sglang).kv_cache_usage, Some(0.5));
        let llama = "llamacpp:requests_processing 1\nllamacpp:requests_deferred 4 1700000000000\n";
        assert_eq!(ServerMetrics::parse(llama).waiting, Some(4.0));
        let two_engines = "vllm:num_requests_running{engine=\"0\"} 2\nvllm:num_requests_running{engine=\"1\"} 3\n\
                           vllm:gpu_cache_usage_perc{engine=\"0\"} 0.2\nvllm:gpu_cache_usage_perc{engine=\"1\"} 0.6\n";
        let metrics = ServerMetrics::parse(two_engines);
        assert_eq!(metrics.running, Some(5.0));
        assert!((metrics.kv_cache_usage.unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(
            ServerMetrics::parse("garbage\n{}\nvllm:num_requests_running{a=\"b\" 3\n"),
            ServerMetrics::default()
        );
        assert_eq!(ServerMetrics::parse("vllm:num_requests_running NaN\n").running, None);
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panicking(text in "\\PC{0,400}") {
            let metrics = ServerMetrics::parse(&text);
            prop_assert!(metrics.kv_cache_usage.is_none_or(|usage| (0.0..=1.0).contains(&usage)));
        }

        #[test]
        fn generated_samples_read_back(running in 0u32..500, waiting in 0u32..500, labels in "[a-z_]{0,8}") {
            let text = format!(
                "vllm:num_requests_running{{{labels}=\"x\"}} {running}\nvllm:num_requests_waiting {waiting}\n"
            );
            let metrics = ServerMetrics::parse(&text);
            prop_assert_eq!(metrics.running, Some(running as f64));
            prop_assert_eq!(metrics.waiting, Some(waiting as f64));
        }
    }
}
