//! The `flywheel` binary: parses flags and configuration, then wires the crates into one server.

/// `println!` for command output: a reader that goes away (`flywheel ... | head`) ends the command quietly
/// instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout_line(format_args!($($arg)*))
    };
}

/// mimalloc instead of the system allocator: the gateway allocates and frees many small buffers per request from
/// several threads, where glibc's malloc took about a seventh of the gateway's CPU (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agents_cli;
mod ask_cli;
mod catalog_cli;
mod config;
mod fleet_advisor;
mod fleet_cli;
mod keys_cli;
mod loop_source;
mod models;
mod models_cli;
mod report_cli;
mod serve;
mod server;
mod simulate_cli;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// flywheel: an open, self-hostable AI stack in one binary.
#[derive(Parser)]
#[command(name = "flywheel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server: OpenAI-compatible API, storefront, metrics.
    Up(config::UpArgs),
    /// Manage tenants' virtual keys.
    Keys(keys_cli::KeysArgs),
    /// List, add and remove the embedded models.
    Models(models_cli::ModelsArgs),
    /// Work on the product catalog: import product files, measure search relevance.
    Catalog(catalog_cli::CatalogArgs),
    /// Work on the fleet: sites, accelerators, routing, simulation, planning, Kubernetes export.
    Fleet(fleet_cli::FleetArgs),
    /// Build and evaluate agents: scaffold a spec, run the retail service evaluation.
    Agents(agents_cli::AgentsArgs),
    /// The flywheel loop's figures for a time range: shoppers, model calls and tokens, forecast load, and the
    /// fleet plan it needs (MW, cost, carbon).
    Report(report_cli::ReportArgs),
    /// Ask a question about the platform's own data (model calls, cost, shopper events); answered read-only.
    Ask(ask_cli::AskArgs),
    /// Drive load through a running flywheel on this machine: shopping sessions through the storefront.
    Simulate(simulate_cli::SimulateArgs),
}

fn write_stdout_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(line).and_then(|()| stdout.write_all(b"\n")) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {error}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS provider for the process, ring (which the gateway's upstream client is built on), so that any
    // rustls client built without an explicit provider finds it; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Up(args) => run_up(args),
        Command::Keys(args) => run_keys(args),
        Command::Catalog(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
            match runtime
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(catalog_cli::run(args)))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ask(args) => block_on(tokio::runtime::Builder::new_current_thread(), ask_cli::run(args)),
        Command::Report(args) => block_on(tokio::runtime::Builder::new_current_thread(), report_cli::run(args)),
        Command::Simulate(args) => block_on(tokio::runtime::Builder::new_multi_thread(), simulate_cli::run(args)),
        Command::Agents(args) => block_on(tokio::runtime::Builder::new_multi_thread(), agents_cli::run(args)),
        Command::Fleet(args) => match fleet_cli::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Models(args) => match models_cli::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run_keys(args: keys_cli::KeysArgs) -> ExitCode {
    block_on(tokio::runtime::Builder::new_current_thread(), keys_cli::run(args))
}

fn run_up(args: config::UpArgs) -> ExitCode {
    let settings = match config::Settings::resolve(args) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let tracer = match telemetry::init(&settings.log, settings.log_format, settings.otlp_endpoint.as_deref()) {
        Ok(tracer) => tracer,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let code = block_on(tokio::runtime::Builder::new_multi_thread(), server::run(settings));
    if let Some(tracer) = tracer {
        // Sends the spans still buffered.
        let _ = tracer.shutdown();
    }
    code
}

/// Runs `work` on a runtime from `builder`; any failure is one readable line on stderr and a non-zero exit.
fn block_on(mut builder: tokio::runtime::Builder, work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The database: PostgreSQL at `url` when given (shared by several instances), else SQLite in `data_dir`.
async fn open_database(url: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<store::Database> {
    use anyhow::Context as _;
    match url {
        Some(url) => Ok(store::Database::open_url(url).await?),
        None => store::Database::open_in_data_dir(data_dir)
            .await
            .with_context(|| format!("opening the database in {}", data_dir.display())),
    }
}
