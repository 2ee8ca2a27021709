//! Rate limits and budgets that hold across gateway instances, kept in Redis. Every check-and-update is one Lua
//! script, which Redis runs atomically: two instances admitting requests at the same moment see each other's
//! counts. Time comes from the Redis server's clock, so instances with skewed clocks still agree on the minute.
//!
//! The rules are those of the in-process versions ([`crate::limits`], [`crate::budget`]): a sliding minute of
//! requests and tokens (the previous minute weighted by how much of it is still in view), and budgets checked
//! against spent plus reserved. A reservation is a hold with an expiry, so an instance that dies mid-request
//! cannot leave money held forever.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use store::{SharedCounters, SharedError, SharedScript};

use crate::limits::{Exceeded, LimitStatus, Limits};

/// KEYS[1]: the scope's key prefix. ARGV: rpm, tpm (-1 when unlimited).
/// Returns {1, remaining requests, remaining tokens} (-1 when unlimited) or {0, 1 for requests | 2 for tokens,
/// milliseconds until a retry can pass}.
const ADMIT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local minute = math.floor(now / 60000)
local weight = 1 - (now - minute * 60000) / 60000
local function count(kind, at) return tonumber(redis.call('GET', KEYS[1] .. ':' .. kind .. ':' .. at) or '0') end
local requests_previous, requests_current = count('r', minute - 1), count('r', minute)
local tokens_previous, tokens_current = count('t', minute - 1), count('t', minute)
local requests = requests_previous * weight + requests_current
local tokens = tokens_previous * weight + tokens_current
local function wait_ms(previous, estimate, target)
  local excess = estimate - target
  local left_of_previous = weight * 60000
  if previous > 0 and excess / previous * 60000 <= left_of_previous then
    return math.max(excess / previous * 60000, 1000)
  end
  return math.max(left_of_previous, 1000)
end
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
if rpm >= 0 and requests + 1 > rpm then return {0, 1, wait_ms(requests_previous, requests, rpm - 1)} end
if tpm >= 0 and tokens >= tpm then return {0, 2, wait_ms(tokens_previous, tokens, tpm - 1)} end
local key = KEYS[1] .. ':r:' .. minute
redis.call('INCR', key)
redis.call('PEXPIRE', key, 120000)
local remaining_requests, remaining_tokens = -1, -1
if rpm >= 0 then remaining_requests = math.max(math.floor(rpm - requests - 1), 0) end
if tpm >= 0 then remaining_tokens = math.max(math.floor(tpm - tokens), 0) end
return {1, remaining_requests, remaining_tokens}
";

/// KEYS[1]: the scope's key prefix. ARGV[1]: tokens a finished request used.
const RECORD_TOKENS: &str = r"
local time = redis.call('TIME')
local minute = math.floor((tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)) / 60000)
local key = KEYS[1] .. ':t:' .. minute
redis.call('INCRBY', key, ARGV[1])
redis.call('PEXPIRE', key, 120000)
return {1}
";

/// KEYS: pairs of (a budget's hash, its holds' sorted set). ARGV: amount, hold id, hold lifetime ms, key lifetime
/// ms, then each budget. A budget's hash has `spent`, `reserved` and `h:<id>` per hold; the sorted set scores
/// each hold by its expiry. Returns {1} when held, {0, budget index, spent plus reserved} when refused, or
/// {-1, budget index} when that budget's spend is not loaded yet.
const RESERVE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local amount, id, hold_ms, key_ms = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local budgets = #KEYS / 2
for i = 1, budgets do
  local budget, holds = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('EXISTS', budget) == 0 then return {-1, i} end
  for _, expired in ipairs(redis.call('ZRANGEBYSCORE', holds, '-inf', now)) do
    local held = tonumber(redis.call('HGET', budget, 'h:' .. expired) or '0')
    redis.call('HINCRBY', budget, 'reserved', -held)
    redis.call('HDEL', budget, 'h:' .. expired)
    redis.call('ZREM', holds, expired)
  end
end
for i = 1, budgets do
  local budget = KEYS[2 * i - 1]
  local spent = tonumber(redis.call('HGET', budget, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', budget, 'reserved') or '0')
  local limit = tonumber(ARGV[4 + i])
  if spent >= limit or (amount > 0 and spent + reserved + amount > limit) then
    return {0, i, spent + reserved}
  end
end
for i = 1, budgets do
  local budget, holds = KEYS[2 * i - 1], KEYS[2 * i]
  if amount > 0 then
    redis.call('HINCRBY', budget, 'reserved', amount)
    redis.call('HSET', budget, 'h:' .. id, amount)
    redis.call('ZADD', holds, now + hold_ms, id)
  end
  redis.call('PEXPIRE', budget, key_ms)
  redis.call('PEXPIRE', holds, key_ms)
end
return {1}
";

/// KEYS[1]: a budget's hash. ARGV: spend read from the ledger, key lifetime ms. Loads the spend unless another
/// instance did first.
const LOAD_SPEND: &str = r"
redis.call('HSETNX', KEYS[1], 'spent', ARGV[1])
redis.call('HSETNX', KEYS[1], 'reserved', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1}
";

/// KEYS: pairs of (a budget's hash, its holds). ARGV: hold id, real cost. Releases the hold (once: an expired
/// hold was already released) and books the cost.
const SETTLE: &str = r"
local id, cost = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local budget, holds = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('ZREM', holds, id) == 1 then
    local held = tonumber(redis.call('HGET', budget, 'h:' .. id) or '0')
    redis.call('HINCRBY', budget, 'reserved', -held)
    redis.call('HDEL', budget, 'h:' .. id)
  end
  if cost > 0 and redis.call('EXISTS', budget) == 1 then redis.call('HINCRBY', budget, 'spent', cost) end
end
return {1}
";

/// How long a hold lasts if its request never settles (its instance died): longer than any request runs.
const HOLD_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long an idle budget's counters stay in Redis before they are loaded from the ledger again.
const BUDGET_KEY_LIFETIME: Duration = Duration::from_secs(60 * 60);

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn limit_arg(limit: Option<u32>) -> i64 {
    limit.map_or(-1, i64::from)
}

fn remaining(value: i64) -> Option<u32> {
    u32::try_from(value).ok()
}

/// The scripts, loaded once, and the connection.
pub(crate) struct SharedState {
    counters: SharedCounters,
    admit: SharedScript,
    record_tokens: SharedScript,
    reserve: SharedScript,
    load_spend: SharedScript,
    settle: SharedScript,
    /// How long a hold lasts if its request never settles.
    hold_lifetime: Duration,
    /// Scopes admitted with a token limit: only their tokens need counting, which spares unlimited requests a
    /// round trip to Redis.
    token_limited: Mutex<HashSet<String>>,
}

/// Scopes remembered as token-limited at most; beyond that the set starts over.
const TOKEN_LIMITED_SCOPES: usize = 100_000;

/// What a shared budget reservation said.
pub(crate) enum Held {
    /// Held under this id.
    Yes,
    /// Refused by the budget at this index; spent plus reserved there.
    Refused { index: usize, committed: i64 },
    /// The budget at this index has no spend loaded yet.
    Unloaded { index: usize },
}

impl SharedState {
    pub(crate) fn new(counters: SharedCounters) -> SharedState {
        SharedState {
            counters,
            admit: SharedScript::new(ADMIT),
            record_tokens: SharedScript::new(RECORD_TOKENS),
            reserve: SharedScript::new(RESERVE),
            load_spend: SharedScript::new(LOAD_SPEND),
            settle: SharedScript::new(SETTLE),
            token_limited: Mutex::new(HashSet::new()),
            hold_lifetime: HOLD_LIFETIME,
        }
    }

    fn limit_key(&self, scope: &str) -> String {
        self.counters.key(&format!("rl:{scope}"))
    }

    /// Admits one request for `scope`, or says which limit it would exceed.
    pub(crate) async fn admit(
        &self,
        scope: &str,
        limits: Limits,
    ) -> Result<Result<LimitStatus, Exceeded>, SharedError> {
        if limits.tpm.is_some() {
            let mut limited = self.token_limited.lock().unwrap_or_else(PoisonError::into_inner);
            if !limited.contains(scope) {
                if limited.len() >= TOKEN_LIMITED_SCOPES {
                    limited.clear();
                }
                limited.insert(scope.to_owned());
            }
        }
        let reply = self
            .counters
            .run(
                &self.admit,
                &[self.limit_key(scope)],
                &[limit_arg(limits.rpm), limit_arg(limits.tpm)],
            )
            .await?;
        Ok(match reply.as_slice() {
            [1, requests, tokens] => Ok(LimitStatus {
                limit_requests: limits.rpm,
                remaining_requests: remaining(*requests),
                limit_tokens: limits.tpm,
                remaining_tokens: remaining(*tokens),
            }),
            [0, what, retry_ms] => {
                let (what, limit) = if *what == 1 {
                    ("requests", limits.rpm.unwrap_or(0))
                } else {
                    ("tokens", limits.tpm.unwrap_or(0))
                };
                Err(Exceeded {
                    what,
                    limit,
                    retry_after: Duration::from_millis(u64::try_from(*retry_ms).unwrap_or(1000)),
                })
            }
            other => return Err(unexpected("admit", other)),
        })
    }

    /// Counts the tokens a finished request used against `scope`.
    pub(crate) async fn record_tokens(&self, scope: &str, tokens: u32) -> Result<(), SharedError> {
        let limited = self
            .token_limited
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(scope);
        if !limited || tokens == 0 {
            return Ok(());
        }
        self.counters
            .run(&self.record_tokens, &[self.limit_key(scope)], &[i64::from(tokens)])
            .await?;
        Ok(())
    }

    /// The Redis keys of one budget: its hash and its holds.
    pub(crate) fn budget_keys(&self, scope: &str, period_start: &str) -> [String; 2] {
        let budget = self.counters.key(&format!("budget:{scope}:{period_start}"));
        let holds = format!("{budget}:holds");
        [budget, holds]
    }

    /// Holds `amount` under `hold_id` against every budget in `keys` (pairs from [`SharedState::budget_keys`])
    /// whose limits are `budgets`.
    pub(crate) async fn reserve(
        &self,
        keys: &[String],
        budgets: &[i64],
        amount: i64,
        hold_id: i64,
    ) -> Result<Held, SharedError> {
        let mut args = vec![amount, hold_id, millis(self.hold_lifetime), millis(BUDGET_KEY_LIFETIME)];
        args.extend_from_slice(budgets);
        let reply = self.counters.run(&self.reserve, keys, &args).await?;
        let index = |value: i64| usize::try_from(value - 1).unwrap_or(0);
        match reply.as_slice() {
            [1] => Ok(Held::Yes),
            [0, budget, committed] => Ok(Held::Refused {
                index: index(*budget),
                committed: *committed,
            }),
            [-1, budget] => Ok(Held::Unloaded { index: index(*budget) }),
            other => Err(unexpected("reserve", other)),
        }
    }

    /// Sets a budget's spend as read from the ledger, unless another instance already did.
    pub(crate) async fn load_spend(&self, budget_key: &str, spent: i64) -> Result<(), SharedError> {
        self.counters
            .run(
                &self.load_spend,
                &[budget_key.to_owned()],
                &[spent, millis(BUDGET_KEY_LIFETIME)],
            )
            .await?;
        Ok(())
    }

    /// Releases a hold and books the real cost to the budgets in `keys`.
    pub(crate) async fn settle(&self, keys: &[String], hold_id: i64, cost: i64) -> Result<(), SharedError> {
        self.counters.run(&self.settle, keys, &[hold_id, cost]).await?;
        Ok(())
    }
}

fn unexpected(script: &str, reply: &[i64]) -> SharedError {
    SharedError::Unexpected(format!("the {script} script answered {reply:?}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// A connection under a prefix of its own, or `None` when no test Redis is set (outside CI).
    async fn connect() -> Option<SharedCounters> {
        let Ok(url) = std::env::var("FLYWHEEL_TEST_REDIS_URL") else {
            assert!(std::env::var_os("CI").is_none(), "CI must set FLYWHEEL_TEST_REDIS_URL");
            eprintln!("skipped: FLYWHEEL_TEST_REDIS_URL is not set (scripts/test sets it)");
            return None;
        };
        let prefix = format!("test-{}", fastrand::u64(..));
        Some(SharedCounters::connect(&url, &prefix).await.unwrap())
    }

    #[tokio::test]
    async fn requests_per_minute_are_counted_once_for_all() {
        let Some(counters) = connect().await else { return };
        let first = SharedState::new(counters.clone());
        let second = SharedState::new(counters);
        let limits = Limits {
            rpm: Some(2),
            tpm: Some(100),
        };
        let status = first.admit("k", limits).await.unwrap().unwrap();
        assert_eq!(
            (status.remaining_requests, status.remaining_tokens),
            (Some(1), Some(100))
        );
        assert!(second.admit("k", limits).await.unwrap().is_ok());
        let refused = first.admit("k", limits).await.unwrap().unwrap_err();
        assert_eq!((refused.what, refused.limit), ("requests", 2));
        assert!(refused.retry_after >= Duration::from_secs(1), "{refused:?}");

        let tokens = Limits {
            rpm: None,
            tpm: Some(100),
        };
        assert!(second.admit("t", tokens).await.unwrap().is_ok());
        second.record_tokens("t", 150).await.unwrap();
        // The other instance never admitted "t" itself, yet sees its tokens.
        assert_eq!(first.admit("t", tokens).await.unwrap().unwrap_err().what, "tokens");
    }

    #[tokio::test]
    async fn holds_stop_overspend_and_expire_when_never_settled() {
        let Some(counters) = connect().await else { return };
        let mut shared = SharedState::new(counters);
        shared.hold_lifetime = Duration::from_millis(200);
        let keys = shared.budget_keys("key:k", "0000-01-01T00:00:00.000Z");
        let budget = [100];
        assert!(matches!(
            shared.reserve(&keys, &budget, 60, 1).await.unwrap(),
            Held::Unloaded { index: 0 }
        ));
        shared.load_spend(&keys[0], 10).await.unwrap();
        assert!(matches!(
            shared.reserve(&keys, &budget, 60, 1).await.unwrap(),
            Held::Yes
        ));
        assert!(matches!(
            shared.reserve(&keys, &budget, 60, 2).await.unwrap(),
            Held::Refused {
                index: 0,
                committed: 70
            }
        ));
        // Hold 1's instance died: its hold expires and frees the money.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(matches!(
            shared.reserve(&keys, &budget, 60, 3).await.unwrap(),
            Held::Yes
        ));
        // A late settle of the expired hold books its cost without releasing anything twice.
        shared.settle(&keys, 1, 25).await.unwrap();
        assert!(matches!(
            shared.reserve(&keys, &budget, 10, 4).await.unwrap(),
            Held::Refused {
                index: 0,
                committed: 95
            }
        ));
        shared.settle(&keys, 3, 5).await.unwrap();
        assert!(matches!(
            shared.reserve(&keys, &budget, 10, 5).await.unwrap(),
            Held::Yes
        ));
    }
}
