//! Request traces: arrival times and token counts, from the Azure LLM inference traces (CSV with TIMESTAMP,
//! ContextTokens, GeneratedTokens), Mooncake's JSON Lines (timestamp in ms, input_length, output_length), or
//! any CSV with `timestamp`/`arrival_s`, `prompt_tokens` and `output_tokens` columns.

use std::path::Path;

use crate::FleetError;
use crate::series::parse_utc_seconds;

/// One request of a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRequest {
    /// Seconds after the trace's first request.
    pub arrival_s: f64,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
}

/// A whole trace, sorted by arrival.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Unix time of the first request, when the trace dates it.
    pub start_unix_s: Option<f64>,
    /// The requests.
    pub requests: Vec<TraceRequest>,
}

impl Trace {
    /// Reads a trace, choosing the format from the extension (`.jsonl` is Mooncake's) and the CSV header.
    pub fn read(path: &Path) -> Result<Self, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|cause| FleetError::io(path, cause))?;
        Self::parse(path, &text)
    }

    /// [`Trace::read`] over text already read.
    pub fn parse(path: &Path, text: &str) -> Result<Self, FleetError> {
        let is_jsonl = path
            .extension()
            .is_some_and(|extension| extension == "jsonl" || extension == "json");
        let mut trace = if is_jsonl {
            parse_jsonl(path, text)?
        } else {
            parse_csv(path, text)?
        };
        if trace.requests.is_empty() {
            return Err(FleetError::invalid(path, 0, "requests", "the trace has no requests"));
        }
        trace.requests.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
        let first = trace.requests[0].arrival_s;
        trace.requests.iter_mut().for_each(|request| request.arrival_s -= first);
        if let Some(start) = trace.start_unix_s.as_mut() {
            *start += first;
        }
        Ok(trace)
    }

    /// Seconds from the first arrival to the last.
    pub fn span_s(&self) -> f64 {
        self.requests.last().map(|request| request.arrival_s).unwrap_or(0.0)
    }

    /// Prompt plus output tokens over all requests.
    pub fn tokens(&self) -> u64 {
        self.requests
            .iter()
            .map(|request| request.prompt_tokens as u64 + request.output_tokens as u64)
            .sum()
    }
}

fn parse_jsonl(path: &Path, text: &str) -> Result<Trace, FleetError> {
    let mut requests = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|error| FleetError::invalid(path, index + 1, "json", error.to_string()))?;
        let number = |field: &str| -> Result<f64, FleetError> {
            value
                .get(field)
                .and_then(serde_json::Value::as_f64)
                .filter(|number| number.is_finite() && *number >= 0.0)
                .ok_or_else(|| FleetError::invalid(path, index + 1, field, "missing, or not a number >= 0"))
        };
        requests.push(TraceRequest {
            arrival_s: number("timestamp")? / 1e3,
            prompt_tokens: number("input_length")? as u32,
            output_tokens: (number("output_length")? as u32).max(1),
        });
    }
    Ok(Trace {
        start_unix_s: None,
        requests,
    })
}

fn parse_csv(path: &Path, text: &str) -> Result<Trace, FleetError> {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| FleetError::invalid(path, 1, "header", error.to_string()))?
        .clone();
    let find = |names: &[&str]| {
        headers
            .iter()
            .position(|header| names.iter().any(|name| header.trim().eq_ignore_ascii_case(name)))
    };
    let time = find(&["TIMESTAMP", "timestamp", "arrival_s", "arrival_time"]);
    let prompt = find(&["ContextTokens", "prompt_tokens", "input_tokens", "input_length"]);
    let output = find(&["GeneratedTokens", "output_tokens", "completion_tokens", "output_length"]);
    let (Some(time), Some(prompt), Some(output)) = (time, prompt, output) else {
        return Err(FleetError::invalid(
            path,
            1,
            "header",
            "expected columns TIMESTAMP, ContextTokens, GeneratedTokens (Azure) or timestamp|arrival_s, prompt_tokens, output_tokens",
        ));
    };
    let time_is_seconds = headers
        .get(time)
        .is_some_and(|header| header.eq_ignore_ascii_case("arrival_s"));
    let mut requests = Vec::new();
    let mut start_unix_s = None;
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|error| FleetError::invalid(path, line, "row", error.to_string()))?;
        let cell = |index: usize| record.get(index).unwrap_or_default().trim();
        let arrival = if time_is_seconds {
            cell(time)
                .parse::<f64>()
                .ok()
                .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        } else {
            cell(time)
                .parse::<f64>()
                .ok()
                .filter(|seconds| seconds.is_finite())
                .or_else(|| parse_utc_seconds(cell(time)).ok())
        }
        .ok_or_else(|| {
            FleetError::invalid(
                path,
                line,
                headers.get(time).unwrap_or("time"),
                format!("'{}' is not a time", cell(time)),
            )
        })?;
        let tokens = |index: usize| -> Result<u32, FleetError> {
            cell(index).parse::<u32>().map_err(|_| {
                FleetError::invalid(
                    path,
                    line,
                    headers.get(index).unwrap_or("tokens"),
                    format!("'{}' is not a token count", cell(index)),
                )
            })
        };
        if !time_is_seconds && start_unix_s.is_none() && cell(time).parse::<f64>().is_err() {
            start_unix_s = Some(0.0);
        }
        requests.push(TraceRequest {
            arrival_s: arrival,
            prompt_tokens: tokens(prompt)?,
            output_tokens: tokens(output)?.max(1),
        });
    }
    // Dated traces keep their start: times became seconds since the epoch, so the first arrival is it.
    Ok(Trace { start_unix_s, requests })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reads_azure_csv_with_its_dates() {
        let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
            2023-11-16 18:17:04.0319600,3180,8\n2023-11-16 18:17:03.9799600,4808,10\n";
        let trace = Trace::parse(Path::new("t.csv"), text).unwrap();
        assert_eq!(trace.requests.len(), 2);
        assert_eq!(trace.requests[0].prompt_tokens, 4808, "sorted by arrival");
        assert!((trace.requests[1].arrival_s - 0.052).abs() < 1e-6);
        let start = trace.start_unix_s.unwrap();
        assert!((start - 1_700_158_623.979_96).abs() < 1e-3, "{start}");
    }

    #[test]
    fn reads_mooncake_jsonl_and_names_bad_lines() {
        let text = "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 6, \"hash_ids\": [1]}\n\
            {\"timestamp\": 1500, \"input_length\": 50, \"output_length\": 3}\n";
        let trace = Trace::parse(Path::new("t.jsonl"), text).unwrap();
        assert_eq!(trace.requests[1].arrival_s, 1.5);
        assert_eq!(trace.start_unix_s, None);
        let bad = "{\"timestamp\": 0, \"input_length\": -1, \"output_length\": 6}\n";
        let error = Trace::parse(Path::new("t.jsonl"), bad).unwrap_err().to_string();
        assert_eq!(error, "t.jsonl:1: input_length: missing, or not a number >= 0");
        let csv = "arrival_s,prompt_tokens,output_tokens\n0.5,10,x\n";
        let error = Trace::parse(Path::new("t.csv"), csv).unwrap_err().to_string();
        assert!(error.starts_with("t.csv:2: output_tokens:"), "{error}");
    }
}
