//! Counters that several flywheel instances share, in Redis: each update is one Lua script that Redis runs
//! atomically, so a check-and-increment (a rate limit, a budget reservation) can never interleave with another
//! instance's.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The URL could not be parsed or the first connection failed.
    #[error("cannot connect to Redis at {location}: {source}")]
    Connect {
        /// The URL, without its password.
        location: String,
        /// The client's error.
        source: redis::RedisError,
    },
    /// A script failed or Redis could not be reached.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A script answered something its caller does not understand.
    #[error("unexpected answer from Redis: {0}")]
    Unexpected(String),
}

/// A Lua script run against [`SharedCounters`]; its SHA is computed once.
#[derive(Debug)]
pub struct SharedScript(redis::Script);

impl SharedScript {
    /// A script from its Lua source. It must return an array of integers.
    pub fn new(lua: &str) -> SharedScript {
        SharedScript(redis::Script::new(lua))
    }
}

/// A connection to the Redis server shared by the instances, with every key under one prefix. Cheap to clone:
/// clones share one multiplexed connection, which reconnects by itself.
#[derive(Clone)]
pub struct SharedCounters {
    connection: ConnectionManager,
    prefix: String,
    location: String,
}

impl std::fmt::Debug for SharedCounters {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SharedCounters")
            .field("location", &self.location)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl SharedCounters {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`) and checks the server answers. Keys are
    /// named `{prefix}:...`, so that several deployments can share one server.
    pub async fn connect(url: &str, prefix: &str) -> Result<SharedCounters, SharedError> {
        let location = crate::without_password(url);
        let connect_failed = |source| SharedError::Connect {
            location: location.clone(),
            source,
        };
        let client = redis::Client::open(url).map_err(connect_failed)?;
        // A request waits on these counters, so a stalled server must fail it quickly rather than hang it.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let connection = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(connect_failed)?;
        Ok(SharedCounters {
            connection,
            prefix: prefix.to_owned(),
            location,
        })
    }

    /// Where the server is, without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The full name of a key: `{prefix}:{name}`.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Runs `script` with `keys` (already prefixed, see [`SharedCounters::key`]) and integer `args`.
    pub async fn run(&self, script: &SharedScript, keys: &[String], args: &[i64]) -> Result<Vec<i64>, SharedError> {
        let mut invocation = script.0.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection.clone();
        Ok(invocation.invoke_async(&mut connection).await?)
    }
}
