//! Configuration: built-in defaults, overridden by `flywheel.toml`, then by `FLYWHEEL_*` environment variables,
//! then by command-line flags. No file is needed at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = ".flywheel";
const DEFAULT_CONFIG: &str = "flywheel.toml";
/// llama.cpp reports every tensor it loads at info level; keep that out of the default log.
/// The request log (target `requests`, one event per model call) is off unless the filter names it.
const DEFAULT_LOG: &str = "info,llama-cpp-2=warn,requests=off";

/// Flags of `flywheel up`; each also reads a `FLYWHEEL_*` variable. No `Debug`: it holds the master key.
#[derive(clap::Args, Default)]
pub struct UpArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "FLYWHEEL_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the database and state [default: ./.flywheel]
    #[arg(long, env = "FLYWHEEL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL for keys, tenants and the ledger, shared by several instances, e.g.
    /// `postgres://user:password@host/flywheel` [default: SQLite in the data directory]
    #[arg(long, env = "FLYWHEEL_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis for rate limits and budgets shared by several instances, e.g. `redis://host:6379`
    /// [default: kept in this process]
    #[arg(long, env = "FLYWHEEL_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Directory holding the embedded models [default: <data-dir>/models]
    #[arg(long, env = "FLYWHEEL_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// Configuration file [default: ./flywheel.toml when it exists]
    #[arg(long, env = "FLYWHEEL_CONFIG")]
    config: Option<PathBuf>,
    /// Product file imported into the catalog at start (WANDS, CSV or JSON Lines, detected) [default: the
    /// built-in demo catalog, when the catalog is empty]
    #[arg(long, env = "FLYWHEEL_CATALOG")]
    catalog: Option<PathBuf>,
    /// Where the catalog's product vectors are kept between starts [default: <data-dir>/search]
    #[arg(long, env = "FLYWHEEL_VECTOR_CACHE_DIR")]
    vector_cache_dir: Option<PathBuf>,
    /// CPU threads for the embedded chat model [default: all cores]
    #[arg(long, env = "FLYWHEEL_THREADS")]
    threads: Option<usize>,
    /// Context window of the embedded chat model, in tokens [default: 4096]
    #[arg(long, env = "FLYWHEEL_CONTEXT_LENGTH")]
    context_length: Option<u32>,
    /// Requests the embedded chat model decodes together [default: 16]
    #[arg(long, env = "FLYWHEEL_MAX_SEQUENCES")]
    max_sequences: Option<usize>,
    /// KV cache of the embedded chat model in tokens, shared by the requests it runs: its memory cap
    /// [default: 8192, at least the context length]
    #[arg(long, env = "FLYWHEEL_KV_CACHE_TOKENS")]
    kv_cache_tokens: Option<u32>,
    /// Master key: when set, every request needs a key (this one, or a tenant's virtual key) and the admin API
    /// needs this one [default: none, auth off for local use]
    #[arg(long, env = "FLYWHEEL_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
    /// OpenTelemetry collector (OTLP over HTTP or HTTPS) to export model-call traces to, e.g.
    /// `http://127.0.0.1:4318` [default: none, no traces]
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Log filter, e.g. `debug` or `info,requests=info` (adds one line per model call) [default:
    /// info,llama-cpp-2=warn,requests=off]
    #[arg(long, env = "FLYWHEEL_LOG")]
    log: Option<String>,
    /// Log lines as text or as JSON objects [default: text]
    #[arg(long, env = "FLYWHEEL_LOG_FORMAT", value_enum)]
    log_format: Option<crate::telemetry::LogFormat>,
    /// Do not load the embedded CPU models: serve only the models of `[[models]]` (and no storefront assistant)
    #[arg(long, env = "FLYWHEEL_NO_EMBEDDED_MODELS")]
    no_embedded_models: bool,
    /// A fleet description (TOML, as `flywheel fleet` reads): models with `routing = "fleet"` then go to the
    /// deployment whose site the fleet router picks, by energy price, carbon, load and SLO [default: none]
    #[arg(long, env = "FLYWHEEL_FLEET")]
    fleet: Option<PathBuf>,
    /// The fleet router's policy [default: multi-objective]
    #[arg(long, env = "FLYWHEEL_FLEET_POLICY")]
    fleet_policy: Option<String>,
}

/// The `flywheel.toml` file: every key optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    redis_url: Option<String>,
    models_dir: Option<PathBuf>,
    catalog: Option<PathBuf>,
    vector_cache_dir: Option<PathBuf>,
    threads: Option<usize>,
    context_length: Option<u32>,
    max_sequences: Option<usize>,
    kv_cache_tokens: Option<u32>,
    max_body_bytes: Option<usize>,
    master_key: Option<String>,
    otlp_endpoint: Option<String>,
    log: Option<String>,
    log_format: Option<crate::telemetry::LogFormat>,
    embedded_models: Option<bool>,
    fleet: Option<PathBuf>,
    fleet_policy: Option<String>,
    #[serde(default)]
    models: Vec<gateway::ModelConfig>,
    routing: Option<gateway::RoutingConfig>,
}

/// The resolved settings of one run. No `Debug`: it holds the master key, which must never reach a log.
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// A shared database (PostgreSQL) instead of SQLite in the data directory.
    pub database_url: Option<String>,
    /// Redis for shared rate limits and budgets.
    pub redis_url: Option<String>,
    pub models_dir: PathBuf,
    pub catalog: Option<PathBuf>,
    /// Where the product vectors are cached.
    pub vector_cache_dir: PathBuf,
    pub threads: usize,
    pub context_length: u32,
    /// Requests the embedded chat model decodes together.
    pub max_sequences: usize,
    /// The embedded chat model's KV cache, in tokens.
    pub kv_cache_tokens: u32,
    pub max_body_bytes: usize,
    pub master_key: Option<String>,
    /// Where to export traces (OTLP over HTTP), if anywhere.
    pub otlp_endpoint: Option<String>,
    pub log: String,
    /// How log lines are written.
    pub log_format: crate::telemetry::LogFormat,
    /// Load the embedded CPU models (off for a gateway that only fronts upstream providers).
    pub embedded_models: bool,
    /// Models served by upstream providers (`[[models]]`).
    pub models: Vec<gateway::ModelConfig>,
    /// Retries, backoff and circuit breaking (`[routing]`).
    pub routing: gateway::RoutingConfig,
    /// The fleet that `fleet` routing asks, if any.
    pub fleet: Option<PathBuf>,
    /// Its router's policy.
    pub fleet_policy: fleet::Policy,
}

/// Why the settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Merges defaults, the config file, the environment and the flags (clap has already merged the last two).
    pub fn resolve(args: UpArgs) -> Result<Settings, ConfigError> {
        let file = load_file(args.config.as_deref())?;
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let models_dir = args
            .models_dir
            .or(file.models_dir)
            .unwrap_or_else(|| data_dir.join("models"));
        let threads = args
            .threads
            .or(file.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
        if threads == 0 {
            return Err(ConfigError::Invalid("threads must be at least 1".to_owned()));
        }
        let context_length = args.context_length.or(file.context_length).unwrap_or(4096);
        if context_length < 64 {
            return Err(ConfigError::Invalid(
                "context_length must be at least 64 tokens".to_owned(),
            ));
        }
        let max_sequences = args.max_sequences.or(file.max_sequences).unwrap_or(16);
        if !(1..=256).contains(&max_sequences) {
            return Err(ConfigError::Invalid(
                "max_sequences must be between 1 and 256".to_owned(),
            ));
        }
        let kv_cache_tokens = args
            .kv_cache_tokens
            .or(file.kv_cache_tokens)
            .unwrap_or(context_length.max(8192));
        if kv_cache_tokens < context_length {
            return Err(ConfigError::Invalid(format!(
                "kv_cache_tokens ({kv_cache_tokens}) must be at least context_length ({context_length}): one \
                 request must fit the cache"
            )));
        }
        let listen = match args.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("bad built-in listen address {DEFAULT_LISTEN}")))?,
        };
        let vector_cache_dir = args
            .vector_cache_dir
            .or(file.vector_cache_dir)
            .unwrap_or_else(|| data_dir.join("search"));
        let fleet_policy = match args.fleet_policy.or(file.fleet_policy) {
            None => fleet::Policy::MultiObjective,
            Some(name) => fleet::Policy::parse(&name).ok_or_else(|| {
                let known: Vec<&str> = fleet::Policy::ALL.iter().map(|policy| policy.name()).collect();
                ConfigError::Invalid(format!("unknown fleet_policy '{name}'; known: {}", known.join(", ")))
            })?,
        };
        Ok(Settings {
            listen,
            data_dir,
            database_url: args.database_url.or(file.database_url),
            redis_url: args.redis_url.or(file.redis_url),
            models_dir,
            catalog: args.catalog.or(file.catalog),
            vector_cache_dir,
            threads,
            context_length,
            max_sequences,
            kv_cache_tokens,
            max_body_bytes: file.max_body_bytes.unwrap_or(4 * 1024 * 1024),
            master_key: match args.master_key.or(file.master_key) {
                Some(key) if key.trim().len() < 16 => {
                    return Err(ConfigError::Invalid(
                        "the master key must be at least 16 characters".to_owned(),
                    ));
                }
                key => key,
            },
            otlp_endpoint: args.otlp_endpoint.or(file.otlp_endpoint),
            log: args.log.or(file.log).unwrap_or_else(|| DEFAULT_LOG.to_owned()),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            embedded_models: !args.no_embedded_models && file.embedded_models.unwrap_or(true),
            models: file.models,
            routing: file.routing.unwrap_or_default(),
            fleet: args.fleet.or(file.fleet),
            fleet_policy,
        })
    }
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(FileConfig::default()),
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path,
        message: error.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Flags as clap would hand them over; built directly so that FLYWHEEL_* variables of the test environment
    /// cannot leak in.
    fn settings(config: Option<&Path>, listen: Option<&str>, threads: Option<usize>) -> Result<Settings, ConfigError> {
        Settings::resolve(UpArgs {
            config: config.map(Path::to_path_buf),
            listen: listen.map(|listen| listen.parse().unwrap()),
            threads,
            ..UpArgs::default()
        })
    }

    #[test]
    fn file_values_are_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flywheel.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/srv/fw\"\nthreads = 3\n",
        )
        .unwrap();
        let from_file = settings(Some(&path), None, None).unwrap();
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.models_dir, PathBuf::from("/srv/fw/models"));
        assert_eq!(from_file.threads, 3);
        let overridden = settings(Some(&path), Some("127.0.0.1:9100"), Some(1)).unwrap();
        assert_eq!(overridden.listen.port(), 9100);
        assert_eq!(overridden.threads, 1);
    }

    #[test]
    fn the_kubernetes_export_writes_a_config_flywheel_up_accepts() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fleet/example.toml");
        let fleet = fleet::Fleet::read(&example).unwrap();
        let manifests = fleet::kubernetes_manifests(&fleet, &fleet::K8sOptions::default()).unwrap();
        let config_map = manifests
            .iter()
            .find(|manifest| manifest.file_name == "flywheel-config.configmap.yaml")
            .unwrap();
        let config_map: serde_json::Value = serde_yaml_ng::from_str(&config_map.yaml).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flywheel.toml");
        std::fs::write(&path, config_map["data"]["flywheel.toml"].as_str().unwrap()).unwrap();
        let settings = settings(Some(&path), None, None).unwrap();
        assert_eq!(settings.listen.to_string(), "0.0.0.0:8080");
        assert!(!settings.embedded_models);
        assert_eq!(settings.models.len(), 1);
        assert_eq!(settings.models[0].deployments.len(), 6);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flywheel.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let error = settings(Some(&path), None, None).err().unwrap();
        assert!(error.to_string().contains("lisen"), "{error}");
        assert!(settings(None, None, Some(0)).is_err());
        let missing = settings(Some(Path::new("/nonexistent/flywheel.toml")), None, None)
            .err()
            .unwrap();
        assert!(missing.to_string().contains("/nonexistent/flywheel.toml"), "{missing}");
    }
}
