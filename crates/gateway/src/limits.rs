//! Per-key rate limits: requests and tokens per minute, with a sliding-window counter (the previous minute's
//! count weighted by how much of it still overlaps the last 60 seconds, plus the current minute's). It needs two
//! counters per key, never blocks, and is exact enough that a burst at a window edge cannot double the limit.
//!
//! [`RateLimiter`] is in-process state, one instance's view; with Redis, [`Limiter::Shared`] applies the same rule
//! across every instance (see [`crate::shared`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::GatewayError;
use crate::shared::SharedState;

const WINDOW: Duration = Duration::from_secs(60);

/// The limiter's name for a tenant's own window (key ids start with `key_`, so the two never collide).
pub(crate) fn tenant_scope(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// One key's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) rpm: Option<u32>,
    pub(crate) tpm: Option<u32>,
}

/// Where a key stands after admitting a request: what the `x-ratelimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitStatus {
    /// Requests per minute allowed, if limited.
    pub limit_requests: Option<u32>,
    /// Requests left in the sliding minute.
    pub remaining_requests: Option<u32>,
    /// Tokens per minute allowed, if limited.
    pub limit_tokens: Option<u32>,
    /// Tokens left in the sliding minute.
    pub remaining_tokens: Option<u32>,
}

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exceeded {
    pub(crate) what: &'static str,
    pub(crate) limit: u32,
    pub(crate) retry_after: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    previous: f64,
    current: f64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    requests: Counter,
    tokens: Counter,
}

impl Window {
    /// Rolls the window forward to `now`; returns the weight of the previous minute still in view.
    fn roll(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed >= WINDOW * 2 {
            self.started = now;
            self.requests = Counter::default();
            self.tokens = Counter::default();
        } else if elapsed >= WINDOW {
            self.started += WINDOW;
            for counter in [&mut self.requests, &mut self.tokens] {
                counter.previous = counter.current;
                counter.current = 0.0;
            }
        }
        let into_current = now.saturating_duration_since(self.started).as_secs_f64() / WINDOW.as_secs_f64();
        1.0 - into_current.min(1.0)
    }
}

fn estimate(counter: Counter, previous_weight: f64) -> f64 {
    counter.previous * previous_weight + counter.current
}

/// How long until the estimate drops to `target`, as the previous minute slides out of view.
fn wait_until_below(counter: Counter, previous_weight: f64, target: f64) -> Duration {
    let excess = estimate(counter, previous_weight) - target;
    if excess <= 0.0 {
        return Duration::ZERO;
    }
    if counter.previous > 0.0 {
        let seconds = excess / counter.previous * WINDOW.as_secs_f64();
        if seconds <= previous_weight * WINDOW.as_secs_f64() {
            return Duration::from_secs_f64(seconds.max(1.0));
        }
    }
    // The current minute alone is over: wait for it to become the previous one and fade.
    Duration::from_secs_f64((previous_weight * WINDOW.as_secs_f64()).max(1.0))
}

/// Where the rate-limit counters live.
pub(crate) enum Limiter {
    /// In this process.
    Local(RateLimiter),
    /// In Redis, shared by every instance.
    Shared(Arc<SharedState>),
}

impl Limiter {
    /// Admits one request for `scope` (a key id or [`tenant_scope`]), or says which limit it would exceed.
    pub(crate) async fn admit(
        &self,
        scope: &str,
        limits: Limits,
    ) -> Result<Result<LimitStatus, Exceeded>, GatewayError> {
        if limits.rpm.is_none() && limits.tpm.is_none() {
            return Ok(Ok(LimitStatus {
                limit_requests: None,
                remaining_requests: None,
                limit_tokens: None,
                remaining_tokens: None,
            }));
        }
        match self {
            Limiter::Local(limiter) => Ok(limiter.admit(scope, limits, Instant::now())),
            Limiter::Shared(shared) => shared
                .admit(scope, limits)
                .await
                .map_err(|error| GatewayError::SharedStateUnavailable(error.to_string())),
        }
    }

    /// Counts the tokens a finished request used against `scope`. A failure is logged: the request was served.
    pub(crate) async fn record_tokens(&self, scope: &str, tokens: u32) {
        match self {
            Limiter::Local(limiter) => limiter.record_tokens(scope, tokens, Instant::now()),
            Limiter::Shared(shared) => {
                if let Err(error) = shared.record_tokens(scope, tokens).await {
                    tracing::warn!(%error, "could not count tokens against the shared rate limits");
                }
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct RateLimiter {
    windows: Mutex<HashMap<String, Window>>,
}

impl RateLimiter {
    /// Admits one request for `key_id` at `now`, or says which limit it would exceed.
    pub(crate) fn admit(&self, key_id: &str, limits: Limits, now: Instant) -> Result<LimitStatus, Exceeded> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = windows.entry(key_id.to_owned()).or_insert_with(|| Window {
            started: now,
            requests: Counter::default(),
            tokens: Counter::default(),
        });
        let weight = window.roll(now);
        let requests = estimate(window.requests, weight);
        let tokens = estimate(window.tokens, weight);
        if let Some(rpm) = limits.rpm
            && requests + 1.0 > f64::from(rpm)
        {
            let retry_after = wait_until_below(window.requests, weight, f64::from(rpm) - 1.0);
            return Err(Exceeded {
                what: "requests",
                limit: rpm,
                retry_after,
            });
        }
        // Tokens are only known afterwards: admit while any of the minute's tokens are left.
        if let Some(tpm) = limits.tpm
            && tokens >= f64::from(tpm)
        {
            let retry_after = wait_until_below(window.tokens, weight, f64::from(tpm) - 1.0);
            return Err(Exceeded {
                what: "tokens",
                limit: tpm,
                retry_after,
            });
        }
        window.requests.current += 1.0;
        let left = |limit: Option<u32>, used: f64| limit.map(|limit| (f64::from(limit) - used).max(0.0).floor() as u32);
        Ok(LimitStatus {
            limit_requests: limits.rpm,
            remaining_requests: left(limits.rpm, requests + 1.0),
            limit_tokens: limits.tpm,
            remaining_tokens: left(limits.tpm, tokens),
        })
    }

    /// Counts the tokens a finished request used against `key_id`.
    pub(crate) fn record_tokens(&self, key_id: &str, tokens: u32, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(window) = windows.get_mut(key_id) {
            window.roll(now);
            window.tokens.current += f64::from(tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RPM_3: Limits = Limits {
        rpm: Some(3),
        tpm: None,
    };

    #[test]
    fn requests_per_minute_hold_and_recover() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for remaining in [2, 1, 0] {
            assert_eq!(
                limiter.admit("k", RPM_3, start).unwrap().remaining_requests,
                Some(remaining)
            );
        }
        let refused = limiter.admit("k", RPM_3, start).unwrap_err();
        assert_eq!((refused.what, refused.limit), ("requests", 3));
        assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= WINDOW * 2);
        // Other keys are not affected.
        assert!(limiter.admit("other", RPM_3, start).is_ok());
        // Two minutes later everything has slid out of view.
        assert!(limiter.admit("k", RPM_3, start + WINDOW * 2).is_ok());
    }

    #[test]
    fn a_burst_at_the_window_edge_cannot_double_the_limit() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        let edge = start + Duration::from_secs(59);
        let admitted = (0..6).filter(|_| limiter.admit("k", RPM_3, edge).is_ok()).count();
        assert_eq!(admitted, 3);
        // Just after the edge the previous minute still weighs almost fully.
        let just_after = start + Duration::from_secs(61);
        assert!(limiter.admit("k", RPM_3, just_after).is_err());
    }

    #[test]
    fn tokens_per_minute_count_what_requests_used() {
        let limiter = RateLimiter::default();
        let limits = Limits {
            rpm: None,
            tpm: Some(100),
        };
        let now = Instant::now();
        assert_eq!(limiter.admit("k", limits, now).unwrap().remaining_tokens, Some(100));
        limiter.record_tokens("k", 120, now);
        let refused = limiter.admit("k", limits, now).unwrap_err();
        assert_eq!(refused.what, "tokens");
        assert!(limiter.admit("k", limits, now + WINDOW * 2).is_ok());
    }

    #[test]
    fn unlimited_keys_are_always_admitted() {
        let limiter = RateLimiter::default();
        let status = limiter
            .admit("k", Limits { rpm: None, tpm: None }, Instant::now())
            .unwrap();
        assert_eq!(status.remaining_requests, None);
    }
}
