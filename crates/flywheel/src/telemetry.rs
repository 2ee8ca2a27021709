//! Logs and traces: a log on stderr (text for people, or JSON lines for log collectors), and, when an OTLP
//! endpoint is configured, the gateway's model-call spans (named and attributed by the OpenTelemetry GenAI
//! conventions) exported to it in batches from a background thread. The standard `OTEL_*` variables (protocol,
//! headers, service name, batch delay, timeout) apply as usual. An `https://` collector is verified against the
//! Mozilla roots, or against the CA in `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM file) when that is set.

use std::io::IsTerminal;

use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, with its fields.
    Json,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("cannot export traces to {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// The CA certificate for the collector could not be read.
    #[error("cannot read the collector's CA certificate {path} (OTEL_EXPORTER_OTLP_CERTIFICATE): {reason}")]
    Certificate { path: String, reason: String },
    /// The HTTP client for the exporter could not be built.
    #[error("cannot build the HTTP client for traces: {0}")]
    HttpClient(String),
}

/// The CA file that verifies an `https://` collector instead of the built-in roots (OpenTelemetry's name).
const CERTIFICATE_VARIABLE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
/// The export timeout in milliseconds (OpenTelemetry's name), 10 s when unset, as the specification says.
const TIMEOUT_VARIABLE: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";

/// Installs the log on stderr, filtered by `filter`, and the trace exporter when `otlp_endpoint` (the collector's
/// base URL, e.g. `http://127.0.0.1:4318`) is set. Returns the tracer provider to shut down at exit.
pub fn init(
    filter: &str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only where a person reads them, not in log files and pipes.
        LogFormat::Text => log.with_target(false).with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => log.json().flatten_event(true).init(),
    }
    let Some(endpoint) = otlp_endpoint else {
        return Ok(None);
    };
    let traces_url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http_client()?)
        .with_endpoint(&traces_url)
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: traces_url.clone(),
            source,
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    tracing::info!(endpoint = traces_url, "exporting model-call traces over OTLP");
    Ok(Some(provider))
}

/// The exporter's HTTP client: reqwest's blocking one with rustls over ring (as the gateway's upstream client),
/// trusting the Mozilla roots or the CA file the environment names. Must be built outside the async runtime.
fn http_client() -> Result<reqwest::blocking::Client, TelemetryError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let mut roots = rustls::RootCertStore::empty();
    match std::env::var(CERTIFICATE_VARIABLE) {
        Ok(path) if !path.is_empty() => {
            let certificate = |reason: String| TelemetryError::Certificate {
                path: path.clone(),
                reason,
            };
            let certificates = CertificateDer::pem_file_iter(&path)
                .map_err(|error| certificate(error.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| certificate(error.to_string()))?;
            if certificates.is_empty() {
                return Err(certificate("no PEM certificate in it".to_owned()));
            }
            for der in certificates {
                roots.add(der).map_err(|error| certificate(error.to_string()))?;
            }
        }
        _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TelemetryError::HttpClient(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let timeout_ms = std::env::var(TIMEOUT_VARIABLE)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(10_000);
    reqwest::blocking::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(std::time::Duration::from_millis(timeout_ms))
        .build()
        .map_err(|error| TelemetryError::HttpClient(error.to_string()))
}

/// The process's resource: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` when set, else service `flywheel`.
fn resource() -> opentelemetry_sdk::Resource {
    let builder = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name("flywheel").build()
    }
}
